#!/usr/bin/env bash
# Packs what the lent GPU machines lack into .gpu/ (ignored by git), for the device tool's `carry`.
# Those machines hold Python 3.12 with PyTorch, numpy, tensorboard, matplotlib and opencv, but no Ray,
# gymnasium, ale-py or lz4, and reach no package registry. Ray's wheel (79 MB) is over the 64 MiB a
# call may carry, so it is unpacked, the libraries this trainer never imports (RLlib, Tune, Serve,
# Data, Train, LLM, the Java jars) are dropped and the rest is xz-compressed (about 25 MB).
# Run here, where PyPI is reachable:  bash bench/gpu_bundle.sh     (GPU_PYTHON=3.11 for a local trial)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${GPU_PYTHON:-3.12}
out=.gpu
ver() { python -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
rm -rf "$out" && mkdir -p "$out/wheels"
python -m pip download -q -d "$out/wheels" --no-deps --only-binary=:all: --python-version "$py" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_28_x86_64 \
  "ray==$(ver ray)" "gymnasium==$(ver gymnasium)" "ale-py==$(ver ale-py)" "lz4==$(ver lz4)" \
  farama-notifications jsonschema jsonschema-specifications referencing rpds-py
tmp=$(mktemp -d)
unzip -q "$out"/wheels/ray-*.whl -d "$tmp"
rm -rf "$tmp"/ray/{rllib,tune,serve,data,train,llm,jars} "$out"/wheels/ray-*.whl
tar -C "$tmp" -cf - . | xz -6 -T0 > "$out/ray.tar.xz"
rm -rf "$tmp"
du -sh "$out"
