#!/usr/bin/env bash
# The CPU rows of exp/README.md: CartPole-v1 (DQN, DDQN, DDQN+mmdb, R2D2) and Pendulum-v1 (DDPG, D4PG)
# with their presets, seeds 1-3 each, then --test --record on each run's final checkpoint, the curves and
# the table. About an hour on 2 cores. Usage: bash exp/cpu_runs.sh [SEEDS...]
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${*:-1 2 3}
LOGS=logs
# every setting comes from the presets (agents/presets/<ALG>.toml); only the algorithm, buffer and seed vary
declare -A RUNS=(
  [preset_dqn]="CartPole-v1 --alg=DQN"
  [preset_ddqn]="CartPole-v1 --alg=DDQN"
  [preset_ddqn_mmdb]="CartPole-v1 --alg=DDQN --buffer=mmdb"
  [preset_r2d2]="CartPole-v1 --alg=R2D2"
  [preset_ddpg]="Pendulum-v1 --alg=DDPG"
  [preset_d4pg]="Pendulum-v1 --alg=D4PG"
)
env=""
for name in preset_dqn preset_ddqn preset_ddqn_mmdb preset_r2d2 preset_ddpg preset_d4pg; do
  for seed in $SEEDS; do
    args=${RUNS[$name]}
    env=${args%% *}
    summary=$LOGS/$env/${name}_s$seed/summary.json
    if [ ! -f "$summary" ]; then   # a finished run is not repeated
      python main.py $args --seed=$seed --suffix=${name}_s$seed --logdir=$LOGS --status_period=30 > /tmp/${name}_s$seed.log 2>&1
    fi
    ckpt=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint'])" "$summary")
    python main.py $env --test --record --resume="$ckpt" --logdir=$LOGS | tail -n 1
  done
  python -m exp.plot $LOGS/${env}/${name}_s* --out exp/plots --name ${env}_${name}
done
python -m exp.table --out exp/README.md
