# Source on a lent GPU machine, in the repository root:  . bench/gpu_env.sh
# Installs the packages that bench/gpu_bundle.sh packed into .gpu/ (carried with the call) under
# /tmp/gpu-site once per machine, and puts them and the project on PYTHONPATH. GPU_AGENTS: the agents
# a run there gets, the machine's cores less four (learner, loaders, replay, evaluator), at least one.
site=/tmp/gpu-site
if [ ! -f "$site/.done" ]; then
  [ -f .gpu/ray.tar.xz ] || { echo "gpu_env: no .gpu/ray.tar.xz: run bash bench/gpu_bundle.sh and carry .gpu" >&2; return 2; }
  mkdir -p "$site"
  python3 -m pip install -q --no-index --no-deps --target "$site" .gpu/wheels/*.whl
  xz -dc .gpu/ray.tar.xz | tar -C "$site" -xf -
  touch "$site/.done"
fi
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export GPU_AGENTS=$(( $(nproc) - 4 > 1 ? $(nproc) - 4 : 1 ))
