"""Selective-scan speed and memory on CPU: storm_hf's blocked scan vs transformers' recurrent scan vs our reference.

    python benchmarks/scan.py            # writes benchmarks/results/scan-cpu.json

Shapes: d_inner (dim) 2048, as in a Mamba layer with d_model 1024, d_state 16, batch 1, fp32, L in {4096, 16384}
tokens. Everything is timed in this one process after a warm-up call at L = 256, the implementations taking turns
within each repetition; the median and the best run (the one least disturbed by other processes) are reported. Each
runs with torch's default thread count and with 1 thread: on a shared machine a busy core stalls every
multi-threaded op, and 1 thread shows the speed without that. transformers' path and the reference take tens of
seconds at L = 16384, so they get fewer repetitions (`repeats` in the JSON).

Peak extra memory is measured in a fresh subprocess per implementation and length: the inputs are built and a small
call is made, the kernel's peak-RSS mark is reset (`/proc/self/clear_refs`), then one call runs and the peak RSS
(VmHWM) minus the RSS before the call is reported. It includes the output tensor. tracemalloc cannot see torch's
allocations, hence RSS.
"""

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import transformers
from transformers.models.mamba.modeling_mamba import mamba_selective_scan

from storm_hf.modeling.mamba_scan import selective_scan_blocked, selective_scan_reference

DIM, D_STATE, BATCH = 2048, 16, 1
LENGTHS = (4096, 16384)
RESULTS = Path(__file__).parent / "results" / "scan-cpu.json"


def make_inputs(length, seed=0):
    """Mamba's initial values: A = -exp(log(1..16)), dt bias so that softplus(bias) is in [0.001, 0.1]."""
    gen = torch.Generator().manual_seed(seed)
    dt0 = torch.exp(torch.rand(DIM, generator=gen) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
    return dict(
        u=torch.randn(BATCH, DIM, length, generator=gen),
        delta=torch.randn(BATCH, DIM, length, generator=gen).mul_(0.5),
        A=-torch.exp(torch.log(torch.arange(1, D_STATE + 1, dtype=torch.float32))).repeat(DIM, 1),
        B=torch.randn(BATCH, D_STATE, length, generator=gen),  # transformers' scan takes no groups axis
        C=torch.randn(BATCH, D_STATE, length, generator=gen),
        D=torch.ones(DIM),
        z=torch.randn(BATCH, DIM, length, generator=gen),
        delta_bias=dt0 + torch.log(-torch.expm1(-dt0)),
        delta_softplus=True,
        return_last_state=True,
    )


def transformers_recurrent(inputs):
    args = [inputs[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    return mamba_selective_scan(
        *args, delta_softplus=True, return_last_state=True, use_mambapy=False, use_associative_scan=False
    )


IMPLEMENTATIONS = {  # each returns (y, last_state)
    "storm_hf_blocked": lambda inputs: selective_scan_blocked(**inputs),
    "transformers_recurrent": transformers_recurrent,
    "storm_hf_reference": lambda inputs: selective_scan_reference(**inputs),
}


def _status_kib(field):
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))


def measure_memory(name, length):
    """Run in a fresh process: peak RSS growth (bytes) during one call."""
    inputs = make_inputs(length)
    IMPLEMENTATIONS[name](make_inputs(256))
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark to the current RSS
    IMPLEMENTATIONS[name](inputs)
    return (_status_kib("VmHWM") - before) * 1024


def memory_in_subprocess(name, length):
    command = [sys.executable, __file__, "--memory-child", name, str(length)]
    return int(subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()[-1])


def machine_info():
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    return {
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


def benchmark(length, repeats, thread_counts):
    """Timings per (threads, implementation), taking turns within each repetition; the reference runs once per
    repetition at the first thread count only (it is the yardstick for exactness)."""
    inputs = make_inputs(length)
    runs = [(threads, name) for threads in thread_counts for name in IMPLEMENTATIONS]
    runs = [run for run in runs if run[1] != "storm_hf_reference" or run[0] == thread_counts[0]]
    timings = {run: [] for run in runs}
    outputs = {}
    for turn in range(max(repeats.values())):
        for threads, name in runs:
            if turn < repeats[name]:
                torch.set_num_threads(threads)
                start = time.perf_counter()
                out = IMPLEMENTATIONS[name](inputs)
                timings[threads, name].append(time.perf_counter() - start)
                outputs.setdefault(name, out)
                print(f"  L={length} threads={threads} {name}: {timings[threads, name][-1]:.3f} s", flush=True)
    torch.set_num_threads(thread_counts[0])
    y_ref, state_ref = outputs["storm_hf_reference"]
    scale = y_ref.abs().max().item()
    result = {}
    for threads, name in runs:
        seconds = statistics.median(timings[threads, name])
        y, state = outputs[name]
        diff = (y - y_ref).abs().max().item()
        result.setdefault(f"threads_{threads}", {})[name] = {
            "repeats": len(timings[threads, name]),
            "seconds_median": seconds,
            "seconds_all": timings[threads, name],
            "tokens_per_s": length / seconds,
            "tokens_per_s_best": length / min(timings[threads, name]),
            "blocked_speedup": seconds / statistics.median(timings[threads, "storm_hf_blocked"]),
            "blocked_speedup_best": min(timings[threads, name]) / min(timings[threads, "storm_hf_blocked"]),
            "max_abs_diff_vs_reference": diff,
            "max_rel_diff_vs_reference": diff / scale,
            "last_state_max_abs_diff_vs_reference": (state.float() - state_ref).abs().max().item(),
        }
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="repetitions of storm_hf's blocked scan")
    parser.add_argument("--slow-repeats", type=int, nargs=2, default=(3, 2), metavar=("L4096", "L16384"),
                        help="repetitions of transformers' scan and of the reference at each length")
    parser.add_argument("--memory-child", nargs=2, metavar=("NAME", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(measure_memory(args.memory_child[0], int(args.memory_child[1])))
        return

    # torch's default thread count, and 1 thread: on a shared machine, a busy core stalls every multi-threaded op
    thread_counts = sorted({torch.get_num_threads(), 1}, reverse=True)
    report = {"machine": machine_info(), "shape": {"dim": DIM, "d_state": D_STATE, "batch": BATCH, "dtype": "fp32"}}
    for name in IMPLEMENTATIONS:  # warm-up: first-call costs (lazy init, allocator) out of the timings
        IMPLEMENTATIONS[name](make_inputs(256))
    for length, slow in zip(LENGTHS, args.slow_repeats):
        repeats = {"storm_hf_blocked": args.repeats, "transformers_recurrent": slow, "storm_hf_reference": slow}
        report[f"L{length}"] = benchmark(length, repeats, thread_counts)
        report[f"L{length}"]["peak_extra_memory_bytes"] = {
            name: memory_in_subprocess(name, length) for name in IMPLEMENTATIONS
        }
    report["machine"]["load_average_at_end"] = os.getloadavg()

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    machine = report["machine"]
    load = f"{machine['load_average_at_start'][0]:.1f} at start, {machine['load_average_at_end'][0]:.1f} at end"
    print(f"\n{machine['cpu_model']}, {machine['cpu_cores']} cores, torch {machine['torch']}, load average {load}")
    print(f"{'L':>6} {'threads':>7} {'implementation':<24} {'reps':>4} {'median s':>9} {'tokens/s':>9} "
          f"{'blocked is':>10} {'best tok/s':>10} {'blocked is':>10} {'max abs diff':>12}")
    for length in LENGTHS:
        for threads in thread_counts:
            for name, row in report[f"L{length}"][f"threads_{threads}"].items():
                print(f"{length:>6} {threads:>7} {name:<24} {row['repeats']:>4} {row['seconds_median']:>9.3f} "
                      f"{row['tokens_per_s']:>9.0f} {row['blocked_speedup']:>9.1f}x "
                      f"{row['tokens_per_s_best']:>10.0f} {row['blocked_speedup_best']:>9.1f}x "
                      f"{row['max_abs_diff_vs_reference']:>12.2e}")
    print(f"\n{'L':>6} peak extra memory of one call, MiB (fresh process, {thread_counts[0]} threads)")
    for length in LENGTHS:
        memory = report[f"L{length}"]["peak_extra_memory_bytes"]
        print(f"{length:>6} " + "  ".join(f"{name} {size / 2**20:.0f}" for name, size in memory.items()))
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
