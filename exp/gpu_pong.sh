#!/usr/bin/env bash
# The GPU row of exp/README.md: Pong, DDQN + pmdb with Ape-X settings, on a lent GPU machine, across
# several device calls (one call runs at most 10 minutes; the run goes on in the background between
# them, and the machine stays held while calls follow each other). Here, once: `bash bench/gpu_bundle.sh`;
# then with the device tool, carrying .gpu each time:
#   run(command="bash exp/gpu_pong.sh start", carry=[".gpu"])        # returns at once
#   run(command="bash exp/gpu_pong.sh wait 560", carry=[".gpu"])     # repeat until it says finished
#   run(command="bash exp/gpu_pong.sh finish", carry=[".gpu"])       # curves, --test --record, files to $OUT
# Back here: put the files of $OUT where `finish` says, then `python -m exp.table`.
# MAX_TIME (seconds, default 1800) bounds the training; it stops earlier at a mean evaluation of 18.
# GPUS=0 makes a dry run of the script on a machine without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/gpu_env.sh || exit 2
logs=/tmp/pong-logs
models=/tmp/pong-model
suffix=apex
run=$logs/Pong/$suffix
case "${1:-}" in
  start)
    mkdir -p "$logs"
    setsid nohup python3 main.py Pong --alg=DDQN --buffer=pmdb --num_gpus=${GPUS:-1} --num_agents=$GPU_AGENTS --envs_per_agent=4 \
      --num_loaders=3 --batch_size=512 --lr=2.5e-4 --dueling --suffix=$suffix --max_time="${MAX_TIME:-1800}" \
      --stop_return=18 --eval_period=250000 --eval_episodes=5 --logdir=$logs --modeldir=$models --status_period=30 \
      > $logs/train.log 2>&1 < /dev/null &
    echo $! > $logs/pid
    sleep 60
    tail -n 5 $logs/train.log
    ;;
  wait)
    end=$(( $(date +%s) + ${2:-560} ))
    while kill -0 "$(cat $logs/pid)" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 10; done
    grep -E "^env_steps|eval" $logs/train.log | tail -n 4
    kill -0 "$(cat $logs/pid)" 2>/dev/null && echo "still running" || { echo "finished"; tail -n 1 $logs/train.log; }
    ;;
  finish)
    out=${OUT:-/tmp/pong-out}
    mkdir -p "$out"
    ckpt=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint'])" "$run/summary.json") || exit 2
    python3 main.py Pong --test --record --test_episodes=10 --resume="$ckpt" --logdir=$logs | tail -n 2
    python3 -m exp.plot "$run" --out "$out"
    cp "$run"/summary.json "$run"/config.json "$run"/test.json $logs/train.log "$out"/
    cp "$run"/events.out.tfevents.* "$out"/ 2>/dev/null
    cp exp/gifs/Pong_*"$suffix"*.gif "$out"/ 2>/dev/null
    ls -la "$out"
    echo "here: mkdir -p logs/Pong/$suffix; copy summary/config/test.json and events.* there, the PNG to exp/plots/,"
    echo "the GIF to exp/gifs/, then python -m exp.table"
    ;;
  *)
    echo "usage: bash exp/gpu_pong.sh start|wait [SECONDS]|finish" >&2
    exit 2
    ;;
esac
