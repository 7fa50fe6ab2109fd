#!/usr/bin/env bash
# The CPU rows of exp/README.md: CartPole-v1 (DQN, DDQN, DDQN+pmdb, R2D2) and Pendulum-v1 (DDPG, D4PG),
# seeds 1-3 each, then --test --record on each run's final checkpoint, the curves and the table.
# About 30 minutes on 2 cores. Usage: bash exp/cpu_runs.sh [SEEDS...]
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${*:-1 2 3}
LOGS=logs
CARTPOLE="--num_agents=2 --max_steps=60000 --batch_size=128 --lr=2.5e-4 --dueling --target_period=2000 --replay_start=2000 --eval_period=2500 --eval_episodes=5 --stop_return=500"
declare -A RUNS=(
  [cartpole_dqn]="CartPole-v1 --alg=DQN --buffer=mmdb $CARTPOLE"
  [cartpole_ddqn]="CartPole-v1 --alg=DDQN --buffer=mmdb $CARTPOLE"
  [cartpole_ddqn_pmdb]="CartPole-v1 --alg=DDQN --buffer=pmdb $CARTPOLE"
  [cartpole_r2d2]="CartPole-v1 --alg=R2D2 --buffer=pmdb --num_agents=2 --max_steps=60000 --seq_len=20 --overlap=10 --burn_in=5 --lstm=64 --batch_size=32 --lr=1e-3 --target_period=250 --replay_start=10000 --speed=32 --eval_period=2500 --eval_episodes=5 --stop_return=500"
  [pendulum_ddpg]="Pendulum-v1 --alg=DDPG --buffer=pmdb --num_agents=2 --max_steps=20000 --replay_start=1000 --speed=64 --eval_period=2000 --eval_episodes=5"
  [pendulum_d4pg]="Pendulum-v1 --alg=D4PG --buffer=mmdb --num_agents=2 --max_steps=20000 --replay_start=1000 --speed=64 --v_min=-1000 --v_max=0 --eval_period=2000 --eval_episodes=5"
)
env=""
for name in cartpole_dqn cartpole_ddqn cartpole_ddqn_pmdb cartpole_r2d2 pendulum_ddpg pendulum_d4pg; do
  for seed in $SEEDS; do
    args=${RUNS[$name]}
    env=${args%% *}
    summary=$LOGS/$env/${name}_s$seed/summary.json
    if [ ! -f "$summary" ]; then   # a finished run is not repeated
      python main.py $args --seed=$seed --suffix=${name}_s$seed --logdir=$LOGS --status_period=30 > /tmp/${name}_s$seed.log 2>&1
    fi
    ckpt=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint'])" "$summary")
    python main.py $env --test --record --test_episodes=10 --resume="$ckpt" --logdir=$LOGS | tail -n 1
  done
  python -m exp.plot $LOGS/${env}/${name}_s* --out exp/plots --name ${env}_${name}
done
python -m exp.table --out exp/README.md
