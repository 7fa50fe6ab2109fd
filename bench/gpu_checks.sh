#!/usr/bin/env bash
# The GPU checks of issue 6 in one device call (about 7 minutes). Here, once: `bash bench/gpu_bundle.sh`;
# then with the device tool:  run(command="bash bench/gpu_checks.sh", carry=[".gpu"], timeout_s=600)
# Each check's log and one JSON line per check (gpu_checks.jsonl) land in $OUT:
#   staging  bench/gpu_staging.py: every staged batch arrives intact, buffers pinned, staged vs bare
#   learner  bench/learner_throughput.py: DDQN, batch 512, pipeline vs bare (target efficiency >= 0.9)
#   r2d2     bench/r2d2_learner.py: the same for R2D2 sequence batches
#   pong     main.py on the GPU for 2 minutes with the machine's cores as agents: its summary.json
# GPUS=0 makes a dry run of the script on a machine without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/gpu_env.sh || exit 2
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
res=$out/gpu_checks.jsonl
: > "$res"
nvidia-smi -L
echo "cores: $(nproc)"
python3 -c "import torch, ray, gymnasium, ale_py, lz4; print('torch', torch.__version__, 'ray', ray.__version__, 'cuda', torch.cuda.is_available())" || exit 2
status=0
check() {   # check NAME LIMIT_S COMMAND...: run it, keep its log, append its last line (JSON) to $res
  local name=$1 limit=$2
  shift 2
  echo "== $name"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  [ $rc -eq 0 ] || status=1
  tail -n 1 "$out/$name.log" | tee -a "$res"
  echo "rc=$rc"
}
check staging 120 python3 bench/gpu_staging.py
check learner 180 python3 bench/learner_throughput.py --seconds 20
check r2d2 180 python3 bench/r2d2_learner.py --seconds 20
check pong 200 python3 main.py Pong --alg=DDQN --buffer=pmdb --num_gpus=${GPUS:-1} --num_agents=$GPU_AGENTS --envs_per_agent=4 \
  --num_loaders=3 --batch_size=512 --max_time=120 --eval_period=0 --suffix=gpu_check --logdir=/tmp/gpu-logs \
  --modeldir=/tmp/gpu-model --status_period=15
summary=$(tail -n 1 "$out/pong.log")
[ -f "$summary" ] && python3 -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))" "$summary" | tee -a "$res"
exit $status
