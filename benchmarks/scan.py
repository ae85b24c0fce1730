"""Selective-scan speed and memory on CPU: storm_hf's blocked scan vs transformers' recurrent scan vs our reference.

    python benchmarks/scan.py            # writes benchmarks/results/scan-cpu.json

Shapes: d_inner (dim) 2048, as in a Mamba layer with d_model 1024, d_state 16, batch 1, fp32, L in {4096, 16384}
tokens. The same values are given to every implementation in two memory layouts, because transformers' path runs
2-3x faster on one than on the other:

- `channel_major`: every `(batch, channels, L)` input contiguous, the layout of mamba_ssm's `selective_scan_fn`;
- `mamba_mixer`: as transformers' `MambaMixer` passes them to its scan: `u` and `delta` contiguous, `B` and `C`
  `(batch, d_state, L)` views of the token-major x_proj output `(batch, L, dt_rank + 2 d_state)`, `z` a view of the
  token-major in_proj output `(batch, L, 2 dim)`. Checked at start against the strides a `MambaMixer` passes.

Everything is timed in this one process after a warm-up call at L = 256, the implementations taking turns within
each repetition; the median and the best run (the one least disturbed by other processes) are reported. Each runs
with torch's default thread count and with 1 thread: on a shared machine a busy core stalls every multi-threaded op,
and 1 thread shows the speed without that. transformers' path and the reference take seconds to tens of seconds, so
they get fewer repetitions (`repeats` in the JSON), and the reference, the yardstick for exactness, is timed in the
first layout at the first thread count only.

Peak extra memory is measured in a fresh subprocess per implementation, length and layout: the inputs are built and
a small call is made, the kernel's peak-RSS mark is reset (`/proc/self/clear_refs`), then one call runs and the peak
RSS (VmHWM) minus the RSS before the call is reported. It includes the output tensor. tracemalloc cannot see torch's
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
from transformers.models.mamba import modeling_mamba
from transformers.models.mamba.modeling_mamba import mamba_selective_scan

from storm_hf.modeling.mamba_scan import (
    _LOG2_E,
    _softplus,
    _states_in_place,
    _time_major,
    selective_scan_blocked,
    selective_scan_reference,
)

DIM, D_STATE, BATCH = 2048, 16, 1
DT_RANK = 64  # ceil(d_model / 16): x_proj's output is (dt, B, C), DT_RANK + 2 * D_STATE channels per token
LENGTHS = (4096, 16384)
LAYOUTS = ("channel_major", "mamba_mixer")
CHUNK = 16  # selective_scan_blocked's default chunk_size
RESULTS = Path(__file__).parent / "results" / "scan-cpu.json"


def make_inputs(length, layout="channel_major", seed=0):
    """Mamba's initial values: A = -exp(log(1..16)), dt bias so that softplus(bias) is in [0.001, 0.1]; the values
    do not depend on `layout` (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    dt0 = torch.exp(torch.rand(DIM, generator=gen) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
    inputs = dict(
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
    if layout == "mamba_mixer":
        x_proj_out = torch.zeros(BATCH, length, DT_RANK + 2 * D_STATE)  # (dt, B, C) per token
        in_proj_out = torch.zeros(BATCH, length, 2 * DIM)  # (x, z) per token
        for key, out, start in (("B", x_proj_out, DT_RANK), ("C", x_proj_out, DT_RANK + D_STATE),
                                ("z", in_proj_out, DIM)):
            view = out[..., start:start + inputs[key].shape[1]].transpose(1, 2)  # (batch, channels, L) view
            inputs[key] = view.copy_(inputs[key])
    return inputs


SCAN_ARGUMENTS = ("u", "delta", "A", "B", "C")  # mamba_selective_scan's positional arguments, in order


def transformers_recurrent(inputs):
    return mamba_selective_scan(
        *(inputs[key] for key in SCAN_ARGUMENTS),
        D=inputs["D"],
        z=inputs["z"],
        delta_bias=inputs["delta_bias"],
        delta_softplus=True,
        return_last_state=True,
        use_mambapy=False,
        use_associative_scan=False,
    )


def check_mamba_mixer_layout(length=64):
    """Raise unless `make_inputs(..., "mamba_mixer")` has the strides transformers' MambaMixer gives its scan: one
    forward of a MambaMixer of this benchmark's shape, its scan function wrapped to record them."""
    config = transformers.MambaConfig(
        hidden_size=DIM // 2, intermediate_size=DIM, state_size=D_STATE, time_step_rank=DT_RANK, num_hidden_layers=1
    )
    mixer = modeling_mamba.MambaMixer(config, layer_idx=0).eval()
    passed = {}

    def recording_scan(*args, **kwargs):
        passed.update(zip(SCAN_ARGUMENTS, args), z=kwargs["z"])
        return mamba_selective_scan(*args, **kwargs)

    modeling_mamba.mamba_selective_scan = recording_scan
    try:
        with torch.no_grad():
            mixer(torch.randn(BATCH, length, DIM // 2))
    finally:
        modeling_mamba.mamba_selective_scan = mamba_selective_scan
    ours = make_inputs(length, "mamba_mixer")
    for key, tensor in passed.items():
        if tensor.stride() != ours[key].stride():
            raise RuntimeError(f"MambaMixer passes {key} with strides {tensor.stride()}, this benchmark "
                               f"{ours[key].stride()}: update make_inputs")


REFERENCE = "storm_hf_reference"
IMPLEMENTATIONS = {  # each returns (y, last_state)
    "storm_hf_blocked": lambda inputs: selective_scan_blocked(**inputs),
    "transformers_recurrent": transformers_recurrent,
    REFERENCE: lambda inputs: selective_scan_reference(**inputs),
}


def _status_kib(field):
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))


def measure_memory(name, length, layout):
    """Run in a fresh process: peak RSS growth (bytes) during one call."""
    inputs = make_inputs(length, layout)
    IMPLEMENTATIONS[name](make_inputs(256, layout))
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark to the current RSS
    IMPLEMENTATIONS[name](inputs)
    return (_status_kib("VmHWM") - before) * 1024


def memory_in_subprocess(name, length, layout):
    command = [sys.executable, __file__, "--memory-child", name, str(length), layout]
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


def benchmark(length, layout, repeats, thread_counts, reference=None):
    """Timings per (threads, implementation) on one layout, taking turns within each repetition, and the reference's
    (y, last_state). The reference runs, at the first thread count only, when its output is not passed in
    (`reference`, from another layout: the values are the same)."""
    inputs = make_inputs(length, layout)
    runs = [(threads, name) for threads in thread_counts for name in IMPLEMENTATIONS]
    runs = [run for run in runs if run[1] != REFERENCE or (reference is None and run[0] == thread_counts[0])]
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
                print(f"  L={length} {layout} threads={threads} {name}: {timings[threads, name][-1]:.3f} s", flush=True)
    torch.set_num_threads(thread_counts[0])
    y_ref, state_ref = reference = reference or outputs[REFERENCE]
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
    return result, reference


def state_work_chunks(inputs):
    """Every 16-step chunk's inputs to the d_state-sized work, prepared as `selective_scan_blocked` prepares them:
    (dt, dt u, B, C)."""
    u, delta, B, C = (inputs[key] for key in ("u", "delta", "B", "C"))
    bias = inputs["delta_bias"].reshape(1, 1, DIM)
    chunks = []
    for start in range(0, u.shape[-1], CHUNK):
        window = slice(start, start + CHUNK)
        dt = _softplus(_time_major(delta[..., window], 1) + bias)  # (n, batch, 1, 1, dim)
        Bc = B[..., window].permute(2, 0, 1).reshape(CHUNK, BATCH, 1, D_STATE, 1).contiguous()
        Cc = C[..., window].permute(2, 0, 1).reshape(CHUNK * BATCH, 1, D_STATE).contiguous()
        chunks.append((dt, dt * _time_major(u[..., window], 1), Bc, Cc))
    return chunks


def state_work(chunks, A2):
    """The scan's d_state-sized work alone, over the whole sequence: per chunk the decays, dt B u, the recurrence
    (`_states_in_place`, as in `selective_scan_blocked`) and y_t = C_t h_t. Returns the last state."""
    decay_buffer = torch.empty(CHUNK, BATCH, 1, D_STATE, DIM)
    states_buffers = torch.empty(2, *decay_buffer.shape)
    state = torch.zeros(BATCH, 1, D_STATE, DIM)
    for index, (dt, dt_u, Bc, Cc) in enumerate(chunks):
        states = _states_in_place(dt, dt_u, A2, Bc, state, decay_buffer, states_buffers[index % 2])
        state = states[-1]
        torch.bmm(Cc, states.view(CHUNK * BATCH, D_STATE, DIM))
    return state


def time_state_work(length, repeats, thread_counts):
    """Seconds of `state_work` per thread count: the least time a scan made of these ops can take. Checked against
    the blocked scan's last state, so it times the same work."""
    inputs = make_inputs(length)
    chunks = state_work_chunks(inputs)
    A2 = (inputs["A"] * _LOG2_E).reshape(1, DIM, D_STATE).transpose(1, 2).contiguous()  # (1, N, dim)
    state = state_work(chunks, A2)  # (batch, 1, N, dim)
    if not torch.equal(state[:, 0].transpose(1, 2), selective_scan_blocked(**inputs)[1]):
        raise RuntimeError("state_work does not compute the blocked scan's states")
    result = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            state_work(chunks, A2)
            timings.append(time.perf_counter() - start)
        result[f"threads_{threads}"] = {"seconds_median": statistics.median(timings), "seconds_all": timings}
    torch.set_num_threads(thread_counts[0])
    return result


def print_report(report, thread_counts):
    machine = report["machine"]
    load = f"{machine['load_average_at_start'][0]:.1f} at start, {machine['load_average_at_end'][0]:.1f} at end"
    print(f"\n{machine['cpu_model']}, {machine['cpu_cores']} cores, torch {machine['torch']}, load average {load}")
    print(f"{'L':>6} {'layout':<14} {'threads':>7} {'implementation':<24} {'reps':>4} {'median s':>9} {'tokens/s':>9} "
          f"{'blocked is':>10} {'best tok/s':>10} {'blocked is':>10} {'max abs diff':>12}")
    for length in LENGTHS:
        for layout in LAYOUTS:
            for threads in thread_counts:
                for name, row in report[f"L{length}"][layout][f"threads_{threads}"].items():
                    print(f"{length:>6} {layout:<14} {threads:>7} {name:<24} {row['repeats']:>4} "
                          f"{row['seconds_median']:>9.3f} {row['tokens_per_s']:>9.0f} {row['blocked_speedup']:>9.1f}x "
                          f"{row['tokens_per_s_best']:>10.0f} {row['blocked_speedup_best']:>9.1f}x "
                          f"{row['max_abs_diff_vs_reference']:>12.2e}")
    print(f"\n{'L':>6} {'threads':>7} d_state-sized work alone: median s, and transformers' median / it per layout")
    for length in LENGTHS:
        for threads in thread_counts:
            seconds = report[f"L{length}"]["state_work"][f"threads_{threads}"]["seconds_median"]
            transformers_seconds = {
                layout: report[f"L{length}"][layout][f"threads_{threads}"]["transformers_recurrent"]["seconds_median"]
                for layout in LAYOUTS
            }
            ceilings = "  ".join(f"{layout} {value / seconds:.1f}x" for layout, value in transformers_seconds.items())
            print(f"{length:>6} {threads:>7} {seconds:.3f} s  {ceilings}")
    print(f"\n{'L':>6} {'layout':<14} peak extra memory of one call, MiB (fresh process, {thread_counts[0]} threads)")
    for length in LENGTHS:
        for layout in LAYOUTS:
            memory = report[f"L{length}"][layout]["peak_extra_memory_bytes"]
            sizes = "  ".join(f"{name} {size / 2**20:.0f}" for name, size in memory.items())
            print(f"{length:>6} {layout:<14} {sizes}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="repetitions of storm_hf's blocked scan")
    parser.add_argument("--slow-repeats", type=int, nargs=2, default=(3, 3), metavar=("L4096", "L16384"),
                        help="repetitions of transformers' scan and of the reference at each length")
    parser.add_argument("--memory-child", nargs=3, metavar=("NAME", "LENGTH", "LAYOUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        name, length, layout = args.memory_child
        print(measure_memory(name, int(length), layout))
        return

    # torch's default thread count, and 1 thread: on a shared machine, a busy core stalls every multi-threaded op
    thread_counts = sorted({torch.get_num_threads(), 1}, reverse=True)
    check_mamba_mixer_layout()
    report = {"machine": machine_info(), "shape": {"dim": DIM, "d_state": D_STATE, "batch": BATCH, "dtype": "fp32"}}
    for layout in LAYOUTS:  # warm-up: first-call costs (lazy init, allocator) out of the timings
        for name in IMPLEMENTATIONS:
            IMPLEMENTATIONS[name](make_inputs(256, layout))
    for length, slow in zip(LENGTHS, args.slow_repeats):
        repeats = {"storm_hf_blocked": args.repeats, "transformers_recurrent": slow, REFERENCE: slow}
        reference = None
        for layout in LAYOUTS:
            result, reference = benchmark(length, layout, repeats, thread_counts, reference)
            result["peak_extra_memory_bytes"] = {
                name: memory_in_subprocess(name, length, layout) for name in IMPLEMENTATIONS
            }
            report.setdefault(f"L{length}", {})[layout] = result
        report[f"L{length}"]["state_work"] = time_state_work(length, args.repeats, thread_counts)
    report["machine"]["load_average_at_end"] = os.getloadavg()

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report, thread_counts)
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
