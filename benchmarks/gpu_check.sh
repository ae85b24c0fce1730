#!/usr/bin/env bash
# The GPU check: what this project cannot run without a GPU, in one command that a lent GPU machine runs start to
# finish in under 10 minutes (docs/kernels.md, "The GPU check").
#
#   bash benchmarks/gpu_fetch.sh                  # first, where a registry is reachable: what it carries, into .gpu/
#   bash benchmarks/gpu_check.sh                  # on the GPU machine (the device tool: carry [".gpu"], timeout 600)
#   bash benchmarks/gpu_check.sh --resume         # a later command on the same warm machine: wait for the kernel
#                                                 # build an earlier one started, then only the mamba_ssm steps
#   bash benchmarks/gpu_check.sh --cpu-dry-run    # here: every step at toy sizes on CPU, Triton in its interpreter
#                                                 # (e2e on pure PyTorch; the build only unpacked and patched)
#
# Steps, each time-boxed inside --budget seconds (default 540; 5x that, and 5x each step's limit, in the dry run), a
# skipped or failed step reported and the next one run:
#   1. PyAV from the carried wheel (the e2e benchmark decodes video with it);
#   2. mamba-ssm and causal-conv1d built from the carried sdists for this GPU only, detached (setsid), while:
#   3. the Triton kernels compiled for this GPU's architecture: registers and spills;
#   4. correctness of Triton and pure PyTorch against the reference loops and each other: the scan and the
#      convolution alone, a Mamba mixer and a whole STORM model, forward and backward, fp32 and bf16 under autocast;
#   5. speed at the paper's shape (32,768 tokens, hidden 3,584): Triton (4 tile configurations) and pure PyTorch;
#   6. storm-hf benchmark e2e --scale paper --frames 128 on the Triton kernels;
#   7. the wait for the build, as long as the budget allows; if it runs out, a line says so and the mamba_ssm steps
#      are skipped (everything above ran on the pure-PyTorch and Triton paths);
#   8. correctness of mamba_ssm, and its speed beside Triton's in one process (before 6 if the build is done by then);
#   9. the kernel tests on CUDA (tests/modeling), if time is left.
# Everything goes to benchmarks/results/gpu-check[-cpu-dry-run]/; with $OUT set (the device tool), gpu-check.tar.gz
# (all of it), summary.txt and gpu-check.log are copied there. Exit status 1 if a step failed.
set -uo pipefail
cd "$(dirname "$0")/.."

dry=0 resume=0 budget=
while [ $# -gt 0 ]; do
    case $1 in
    --cpu-dry-run) dry=1 ;;
    --resume) resume=1 ;;
    --budget) budget=$2 && shift ;;
    *) echo "unknown option $1 (--cpu-dry-run, --resume, --budget SECONDS)" && exit 2 ;;
    esac
    shift
done
# the dry run's steps are slower (Triton's interpreter on a few CPU cores): every time limit is 5x as long
slow=1 && [ $dry = 1 ] && slow=5
budget=${budget:-$((540 * slow))}

start=$SECONDS
name=gpu-check && [ $dry = 1 ] && name=gpu-check-cpu-dry-run
results=benchmarks/results/$name
[ $resume = 1 ] || rm -rf "$results"
mkdir -p "$results"
summary=$results/summary.txt
exec > >(tee -a "$results/gpu-check.log") 2>&1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python=${PYTHON:-python3}
dry_flag=() && [ $dry = 1 ] && dry_flag=(--cpu-dry-run)
build_dir=/tmp/storm-kernel-build && [ $dry = 1 ] && build_dir=/tmp/storm-kernel-build-dry-run
failed=0

left() { echo $((budget - (SECONDS - start))); }
say() { echo "$*" | tee -a "$summary"; }
step() { # NAME SECONDS_NEEDED SECONDS_AT_MOST COMMAND...: run COMMAND time-boxed, or skip it if the budget is short
    local title=$1 need=$2 most=$3 remaining limit began status
    shift 3
    remaining=$(left) need=$((need * slow)) most=$((most * slow))
    if [ "$remaining" -lt "$need" ]; then
        say "SKIPPED $title: $remaining s of the budget left, it needs about $need s"
        return 1
    fi
    limit=$((most < remaining - 5 ? most : remaining - 5))
    echo && echo "=== $title (at $((SECONDS - start)) s; at most $limit s)"
    began=$SECONDS
    timeout --kill-after=10 "$limit" "$@"
    status=$?
    if [ $status -eq 0 ]; then
        say "ok      $title ($((SECONDS - began)) s)"
    elif [ $status -eq 124 ] || [ $status -eq 137 ]; then
        say "TIMEOUT $title: stopped after $((SECONDS - began)) s (limit $limit s)" && failed=1
    else
        say "FAILED  $title (exit $status after $((SECONDS - began)) s): see gpu-check.log" && failed=1
    fi
    return $status
}

say "GPU check ($([ $dry = 1 ] && echo 'CPU dry run' || echo GPU)) $(date -u +%Y-%m-%dT%H:%M:%SZ), budget $budget s"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU (nvidia-smi)"
    $python -c "import platform, torch, transformers; print('python', platform.python_version(), '| torch', torch.__version__, '| cuda', torch.version.cuda, '| transformers', transformers.__version__)"
    $python -c "import triton; print('triton', triton.__version__)" 2>&1 | tail -1
    echo "cpus $(nproc)"
} | tee "$results/environment.txt"
arch=$($python -c "import torch; print(''.join(map(str, torch.cuda.get_device_capability())) if torch.cuda.is_available() else '90')")

# 1. PyAV
wheels=$(ls .gpu/*.whl 2>/dev/null)
if [ -z "$wheels" ]; then
    say "no wheels in .gpu/ (benchmarks/gpu_fetch.sh): the e2e step needs PyAV"
elif [ $dry = 1 ]; then
    say "carried wheels (not installed in the dry run): $(echo $wheels | xargs -n1 basename | tr '\n' ' ')"
elif step "install the carried wheels" 10 60 $python -m pip install -q --no-index --no-deps --no-compile \
    --target /tmp/storm-site $wheels; then
    export PYTHONPATH="$PYTHONPATH:/tmp/storm-site"
fi

# 2. the kernel build, detached: it goes on when this command ends, and a later command can wait for it (--resume)
mkdir -p "$build_dir"
if [ $dry = 1 ]; then
    step "unpack and patch the kernel sdists for sm_$arch (no compiling in the dry run)" 5 60 \
        bash benchmarks/build_kernels.sh "$build_dir" --prepare-only
elif [ -f "$build_dir/done" ]; then
    say "kernel build: already finished in an earlier command"
elif [ -f "$build_dir/pid" ] && kill -0 "$(cat "$build_dir/pid")" 2>/dev/null; then
    say "kernel build: still running from an earlier command (pid $(cat "$build_dir/pid"))"
elif [ $resume = 1 ]; then
    say "kernel build: none started on this machine (a fresh machine? run without --resume)" && failed=1
else
    setsid nohup bash benchmarks/build_kernels.sh "$build_dir" >"$build_dir/driver.log" 2>&1 </dev/null &
    echo $! >"$build_dir/pid"
    say "kernel build: started at $((SECONDS - start)) s for sm_$arch, detached (pid $!)"
fi

build_statuses() {
    local status
    for status in "$build_dir"/*.status; do
        [ -f "$status" ] && say "kernel build, $(basename "$status" .status): $(cat "$status")"
    done
}
mamba_done=0
mamba_steps() { # 8. mamba_ssm's correctness, and its speed beside Triton's in one process
    local reason
    mamba_done=1
    build_statuses
    reason=$($python -c "
import torch
from storm_hf.modeling.kernel_choice import unavailable_reason
print(unavailable_reason('mamba_ssm', torch.empty(0, device='cuda' if torch.cuda.is_available() else 'cpu')) or '')")
    if [ -n "$reason" ]; then
        say "mamba_ssm: not usable here ($reason)"
        return
    fi
    step "correctness of mamba_ssm (scan, conv, mixer, model; fp32, bf16 autocast)" 40 150 \
        $python benchmarks/kernel_check.py --kernels mamba_ssm --out "$results/kernel-check-mamba_ssm.json"
    step "speed at the paper's shape: mamba_ssm beside Triton" 40 180 $python benchmarks/kernel_bench.py \
        --kernels mamba_ssm triton --no-sweep --out "$results/kernel-bench-mamba_ssm.json"
}
build_finished() { [ $dry = 1 ] || [ -f "$build_dir/done" ]; }

if [ $resume = 0 ]; then
    # 3-6. everything that needs no mamba_ssm, while it builds
    step "Triton kernels compiled for sm_$arch: registers, spills" 20 120 env -u TRITON_INTERPRET \
        $python -m storm_hf.benchmarking.triton_compile --arch "$arch" --out "$results/triton-compile.json"
    step "correctness of Triton and pure PyTorch (scan, conv, mixer, model; fp32, bf16 autocast)" 60 210 \
        $python benchmarks/kernel_check.py --kernels triton torch "${dry_flag[@]}" --out "$results/kernel-check-triton.json"
    step "speed at the paper's shape: Triton (4 tile configurations), pure PyTorch" 60 180 \
        $python benchmarks/kernel_bench.py --kernels triton torch "${dry_flag[@]}" --out "$results/kernel-bench-triton.json"
    if [ $dry = 1 ]; then  # Triton's interpreter would take many minutes even at the tiny scale
        e2e=(--scale tiny --frames 8 --memory-frames 8 --repeats 1 --new-tokens 2) kernel=torch
    else
        e2e=(--scale paper --frames 128) kernel=triton
    fi
    build_finished && mamba_steps  # the build is done already: mamba_ssm before e2e
    step "storm-hf benchmark e2e ${e2e[*]}, STORM_MAMBA_KERNEL=$kernel" 150 270 \
        env STORM_MAMBA_KERNEL=$kernel $python benchmarks/e2e.py "${e2e[@]}" --out "$results"
fi

# 7. the build, waited for as long as the budget leaves time for the mamba_ssm steps
mamba_needs=100
while ! build_finished && [ "$(left)" -gt $mamba_needs ] && [ -f "$build_dir/pid" ] &&
    kill -0 "$(cat "$build_dir/pid")" 2>/dev/null; do
    sleep 5
done
if ! build_finished; then
    build_statuses
    say "kernel build: not finished with $(left) s of the budget left: the mamba_ssm steps are skipped; the checks" \
        "above ran on the pure-PyTorch and Triton paths. On the same warm machine: bash benchmarks/gpu_check.sh --resume"
elif [ $mamba_done = 0 ]; then
    mamba_steps
fi


# 9. the kernel tests, compiled on CUDA
if [ $dry = 0 ]; then
    step "kernel tests on CUDA (tests/modeling: Triton, scan, kernel choice)" 60 300 $python -m pytest -q \
        -p no:cacheprovider tests/modeling/test_mamba_triton.py tests/modeling/test_mamba_scan.py \
        tests/modeling/test_kernel_choice.py
fi

mkdir -p "$results/build"
cp "$build_dir"/*.log "$build_dir"/*.status "$results/build/" 2>/dev/null
say "done at $((SECONDS - start)) s of the $budget s budget"
if [ -n "${OUT:-}" ]; then
    tar czf "$OUT/gpu-check.tar.gz" -C benchmarks/results "$name" && cp "$summary" "$results/gpu-check.log" "$OUT/"
fi
echo && echo "=== summary ($results/summary.txt)" && cat "$summary"
exit $failed
