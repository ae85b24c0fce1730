#!/usr/bin/env bash
# Builds and installs mamba-ssm and causal-conv1d from the sdists in .gpu/ (benchmarks/gpu_fetch.sh), for this
# machine's GPU architecture only, side by side: their setup.py files compile for up to nine architectures, which
# takes far longer than a lent GPU machine's 10-minute command. Started detached by benchmarks/gpu_check.sh, so that a
# build that outlasts one command goes on, and a following command on the same machine can wait for it.
#
#   bash benchmarks/build_kernels.sh STATUS_DIR [--prepare-only]
#
# STATUS_DIR receives <package>.log, <package>.status ("ok", or "failed: ...") and, when both have ended, done.
# --prepare-only unpacks and patches the sources without compiling (the CPU dry run of the GPU check).
set -uo pipefail
cd "$(dirname "$0")/.."
status_dir=$1
prepare_only=${2:-}
work=/tmp/storm-kernel-sources
mkdir -p "$status_dir" && rm -rf "$work" && mkdir -p "$work"
rm -f "$status_dir"/done "$status_dir"/*.status

# compute capability as "90"; 90 without a GPU (the dry run)
arch=$(python3 -c "import torch; print(''.join(map(str, torch.cuda.get_device_capability())) if torch.cuda.is_available() else '90')")
# files compiled at once: mamba-ssm has 10 CUDA files, causal-conv1d 3; nvcc runs 4 threads per file (their setup.py)
mamba_jobs=$(( $(nproc) / 3 > 1 ? $(nproc) / 3 : 1 ))

build() {  # package sdist-glob environment...
    local package=$1 pattern=$2
    shift 2
    local status="$status_dir/$package.status" log="$status_dir/$package.log"
    local sdist
    sdist=$(ls .gpu/$pattern 2>/dev/null | head -1)
    if [ -z "$sdist" ]; then
        echo "failed: no .gpu/$pattern (run benchmarks/gpu_fetch.sh where a registry is reachable)" >"$status"
        return
    fi
    tar xzf "$sdist" -C "$work"
    local source="$work/$(basename "$sdist" .tar.gz)"
    # Build for this GPU only: replace the list of -gencode flags before setup.py hands it to nvcc.
    if ! python3 - "$source/setup.py" "$arch" >>"$log" 2>&1 <<'PY'
import sys
from pathlib import Path

path, arch = Path(sys.argv[1]), sys.argv[2]
text = path.read_text()
anchor = "    # HACK: The compiler flag -D_GLIBCXX_USE_CXX11_ABI"
if text.count(anchor) != 1:
    sys.exit(f"{path}: the line to patch before was not found once; building for every architecture")
line = f'    cc_flag = ["-gencode", "arch=compute_{arch},code=sm_{arch}"]  # storm-hf GPU check: this GPU only\n'
path.write_text(text.replace(anchor, line + anchor))
print(f"{path}: building for sm_{arch} only")
PY
    then
        echo "patch failed: see $log" >>"$log"
    fi
    if [ "$prepare_only" = "--prepare-only" ]; then
        echo "prepared (not compiled): $(tail -1 "$log")" >"$status"
        return
    fi
    local started=$SECONDS
    if (cd "$source" && env "$@" TORCH_CUDA_ARCH_LIST="${arch:0:-1}.${arch: -1}" \
        python3 -m pip install --no-build-isolation --no-deps --no-index --no-cache-dir -v . >>"$log" 2>&1); then
        echo "ok (built in $((SECONDS - started)) s)" >"$status"
    else
        echo "failed after $((SECONDS - started)) s: $(grep -m1 -iE 'error' "$log" | cut -c1-300)" >"$status"
    fi
}

build mamba-ssm 'mamba_ssm-*.tar.gz' MAMBA_FORCE_BUILD=TRUE MAMBA_KEEP_CUDA_BUILD=TRUE MAX_JOBS=$mamba_jobs &
build causal-conv1d 'causal_conv1d-*.tar.gz' CAUSAL_CONV1D_FORCE_BUILD=TRUE MAX_JOBS=3 &
wait
touch "$status_dir/done"
