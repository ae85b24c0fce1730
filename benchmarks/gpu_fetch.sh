#!/usr/bin/env bash
# Downloads what benchmarks/gpu_check.sh carries to a lent GPU machine, which cannot reach a package registry:
#   - the sdists of mamba-ssm and causal-conv1d (compiled there, for that GPU only: benchmarks/build_kernels.sh);
#   - a PyAV wheel for Python 3.12 (the e2e benchmark writes and decodes its test video with PyAV).
# Into .gpu/ at the repository root, which git ignores (.gitignore): never commit it. Run it here, from
# the project's virtual environment (pip prepares the sdists' metadata by running their setup.py, which imports
# torch); then name .gpu in the device tool's `carry`. About 36 MiB, nearly all of it PyAV.
set -euo pipefail
cd "$(dirname "$0")/.."

MAMBA_SSM=2.3.1       # the newest mamba-ssm without tilelang / quack-kernels requirements; >= 2.3.0 for transformers 5
CAUSAL_CONV1D=1.6.1   # >= 1.5.3 for CUDA 13 (see setup.cfg)
AV=18.1.0

mkdir -p .gpu

python3 -m pip download --no-deps --no-binary :all: --no-build-isolation -d .gpu \
    "mamba-ssm==$MAMBA_SSM" "causal-conv1d==$CAUSAL_CONV1D"
python3 -m pip download --no-deps --only-binary :all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu \
    "av==$AV"
ls -l .gpu
