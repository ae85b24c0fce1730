"""Speed of the Mamba kernels side by side at the paper's shape: storm_hf's Triton kernels, mamba_ssm's CUDA kernels
and the pure-PyTorch path, forward and forward+backward, bf16 activations.

    python benchmarks/kernel_bench.py                                # on CUDA, every kernel installed
    python benchmarks/kernel_bench.py --kernels triton mamba_ssm     # some of them
    python benchmarks/kernel_bench.py --cpu-dry-run                  # toy shape on CPU, Triton in its interpreter

The paper's shape (docs/kernels.md): one clip of 128 frames x 256 tokens = 32,768 tokens, hidden 3,584, expand 2,
d_state 16, both directions: the scan runs 2 x 7,168 channels in two groups with their own B and C. Inputs are laid
out as the mixer lays them out (token-major views). Timed, per kernel: the selective scan, the causal convolution
(width 4, SiLU) and a whole bf16 Mamba mixer (in_proj .. out_proj), each forward only (no autograd) and forward +
backward. The pure-PyTorch path keeps every chunk's states for its backward pass (tens of GiB at this length), so
its forward+backward runs at `--short-tokens` (4,096) and is reported per token beside the others. Triton's scan is
also timed in a few tile configurations (`--sweep`): the row `triton` is the default configuration.

CUDA events around each call, after a warm-up call; median of `--repeats`. All kernels are timed in this one process
on the same inputs. Writes one JSON file and prints a table with tokens per second and the ratios the goals are set
in (Triton within 1.5x of mamba_ssm's time, and at least 20x the pure path's speed).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

# first: for the dry run it switches Triton's interpreter on, before any kernel is decorated
from kernel_common import add_arguments, available_kernels, device_for, machine

import torch

from storm_hf.modeling import mamba_triton
from storm_hf.modeling.configuration_storm import StormTemporalConfig
from storm_hf.modeling.mamba_mixer import StormMambaMixer
from storm_hf.modeling.mamba_scan import causal_conv1d, selective_scan

# tokens, hidden size, d_state, pure-PyTorch forward+backward tokens
SHAPES = {"paper": (128 * 256, 3584, 16, 4096), "dry": (48, 8, 4, 48)}
# Triton scan tiles tried (chunk, channels and warps per program, forward then backward); the first is the default
SWEEP = [
    mamba_triton.SCAN_CONFIG,
    {"chunk_size": 64, "block_dim": 16, "num_warps": 8, "block_dim_backward": 16, "num_warps_backward": 8},
    {"chunk_size": 128, "block_dim": 16, "num_warps": 8, "block_dim_backward": 16, "num_warps_backward": 8},
    {"chunk_size": 32, "block_dim": 32, "num_warps": 4, "block_dim_backward": 16, "num_warps_backward": 4},
]


def timed(fn, repeats: int, device: str) -> tuple[float, float]:
    """(median seconds, peak memory above the start in GiB) of `fn()`, after one warm-up call."""
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start_memory = torch.cuda.memory_allocated()
    seconds = []
    for _ in range(repeats):
        if device == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            seconds.append(begin.elapsed_time(end) / 1000)
        else:
            begin = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - begin)
    peak = (torch.cuda.max_memory_allocated() - start_memory) / 2**30 if device == "cuda" else float("nan")
    return statistics.median(seconds), peak


def scan_inputs(tokens, hidden, d_state, device, seed=0):
    """The scan's inputs as the bf16 mixer passes them: u, delta (batch, channels, L) views of token-major memory; B,
    C (batch, 2, d_state, L) views of the stacked per-direction x_proj outputs; A, D, delta_bias fp32."""
    gen = torch.Generator(device=device).manual_seed(seed)
    channels = 2 * 2 * hidden  # expand 2, two directions
    bf16 = dict(dtype=torch.bfloat16, device=device)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, device=device) * scale).to(bf16["dtype"])

    dt0 = torch.exp(torch.rand(channels, generator=gen, device=device) * 4.6 - 6.9)  # 0.001 .. 0.1
    return dict(
        u=randn(1, tokens, channels).transpose(1, 2),
        delta=randn(1, tokens, channels, scale=0.1).transpose(1, 2),
        A=-torch.arange(1, d_state + 1, dtype=torch.float32, device=device).repeat(channels, 1),
        B=randn(1, 2, tokens, d_state).transpose(2, 3),
        C=randn(1, 2, tokens, d_state).transpose(2, 3),
        D=torch.ones(channels, device=device),
        delta_bias=dt0 + torch.log(-torch.expm1(-dt0)),
        delta_softplus=True,
        return_last_state=True,
    )


def forward_backward(fn, tensors: list):
    """fn() then a backward pass from a random-free loss touching every output."""

    def run():
        for tensor in tensors:
            tensor.grad = None
        out = fn()
        out = out[0] if isinstance(out, tuple) else out
        out.float().square().mean().backward()

    return run


def bench_scan(kernel, shape, device, repeats, config=None) -> list[dict]:
    tokens, hidden, d_state, short = shape
    rows = []
    for mode, length in (("forward", tokens), ("forward+backward", tokens if kernel != "torch" else short)):
        inputs = scan_inputs(length, hidden, d_state, device)
        if config is not None:
            previous = dict(mamba_triton.SCAN_CONFIG)
            mamba_triton.SCAN_CONFIG.update(config)
        try:
            if mode == "forward":
                with torch.no_grad():
                    seconds, peak = timed(lambda: selective_scan(**inputs, kernel=kernel), repeats, device)
            else:
                tensors = [inputs[name].requires_grad_(True) for name in ("u", "delta", "B", "C", "A", "D")]
                step = forward_backward(lambda: selective_scan(**inputs, kernel=kernel), tensors)
                seconds, peak = timed(step, repeats, device)
        finally:
            if config is not None:
                mamba_triton.SCAN_CONFIG.clear()
                mamba_triton.SCAN_CONFIG.update(previous)
        rows.append(record("selective scan", kernel, mode, length, seconds, peak, config))
    return rows


def bench_conv(kernel, shape, device, repeats) -> list[dict]:
    tokens, hidden, _, short = shape
    gen = torch.Generator(device=device).manual_seed(1)
    channels = 4 * hidden
    rows = []
    for mode, length in (("forward", tokens), ("forward+backward", tokens)):
        x = torch.randn(1, length, channels, generator=gen, device=device).to(torch.bfloat16).transpose(1, 2)
        weight = torch.randn(channels, 4, generator=gen, device=device).to(torch.bfloat16)
        bias = torch.randn(channels, generator=gen, device=device).to(torch.bfloat16)
        if mode == "forward":
            with torch.no_grad():
                seconds, peak = timed(lambda: causal_conv1d(x, weight, bias, "silu", kernel=kernel), repeats, device)
        else:
            tensors = [x.requires_grad_(True), weight.requires_grad_(True), bias.requires_grad_(True)]
            step = forward_backward(lambda: causal_conv1d(x, weight, bias, "silu", kernel=kernel), tensors)
            seconds, peak = timed(step, repeats, device)
        rows.append(record("causal conv1d + SiLU", kernel, mode, length, seconds, peak))
    return rows


def bench_mixer(kernel, shape, device, repeats) -> list[dict]:
    tokens, hidden, d_state, short = shape
    config = StormTemporalConfig(vision_hidden_size=8, hidden_size=hidden, d_state=d_state, mamba_kernel=kernel)
    torch.manual_seed(0)
    mixer = StormMambaMixer(config).to(device)
    mixer.init_ssm_parameters(config)
    mixer = mixer.to(torch.bfloat16)
    rows = []
    for mode, length in (("forward", tokens), ("forward+backward", tokens if kernel != "torch" else short)):
        hidden_states = torch.randn(1, length, hidden, device=device).to(torch.bfloat16)
        if mode == "forward":
            with torch.no_grad():
                seconds, peak = timed(lambda: mixer(hidden_states), repeats, device)
        else:
            tensors = [hidden_states.requires_grad_(True), *mixer.parameters()]
            seconds, peak = timed(forward_backward(lambda: mixer(hidden_states), tensors), repeats, device)
        rows.append(record("Mamba mixer (bf16)", kernel, mode, length, seconds, peak))
    return rows


def record(op, kernel, mode, tokens, seconds, peak, config=None) -> dict:
    return {"op": op, "kernel": kernel, "mode": mode, "tokens": tokens, "seconds": seconds,
            "tokens_per_second": tokens / seconds, "peak_gib": peak, "config": config}  # fmt: skip


def ratios(rows) -> list[dict]:
    """Per op and mode: Triton's time over mamba_ssm's, and Triton's speed over the pure path's (per token)."""
    speed = {(r["op"], r["mode"], r["kernel"]): r["tokens_per_second"] for r in rows if r["config"] is None}
    out = []
    for op, mode in sorted({(r["op"], r["mode"]) for r in rows}):
        triton, mamba, torch_ = (speed.get((op, mode, k)) for k in ("triton", "mamba_ssm", "torch"))
        out.append({
            "op": op, "mode": mode,
            "triton_time_over_mamba_ssm": mamba / triton if triton and mamba else None,
            "triton_speed_over_torch": triton / torch_ if triton and torch_ else None,
        })  # fmt: skip
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, "kernel-bench")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-sweep", action="store_true", help="time the Triton scan in its default tiles only")
    parser.add_argument("--ops", nargs="+", default=["scan", "conv", "mixer"])
    args = parser.parse_args(argv)
    device = device_for(parser, args)
    shape = SHAPES["dry" if args.cpu_dry_run else "paper"]
    sweep = [] if args.no_sweep else SWEEP[1:]
    if args.cpu_dry_run and sweep:  # one other tiling, small enough for the interpreter
        sweep = [{"chunk_size": 8, "block_dim": 8, "block_dim_backward": 8}]
    kernels, skipped = available_kernels(args.kernels, device)
    rows, started = [], time.perf_counter()
    for kernel in kernels:
        repeats = args.repeats if kernel != "torch" else max(1, min(args.repeats, 2))
        for op in args.ops:
            bench = {"scan": bench_scan, "conv": bench_conv, "mixer": bench_mixer}[op]
            rows += bench(kernel, shape, device, repeats)
            print(f"{op:6s} {kernel:9s} done at {time.perf_counter() - started:6.1f} s", flush=True)
        if kernel == "triton" and "scan" in args.ops:
            for config in sweep:
                rows += bench_scan(kernel, shape, device, repeats, {**mamba_triton.SCAN_CONFIG, **config})
                print(f"scan   triton {config} done at {time.perf_counter() - started:6.1f} s", flush=True)
    tokens, hidden, d_state, short = shape
    result = {
        "machine": machine(device),
        "shape": {"tokens": tokens, "hidden": hidden, "d_state": d_state, "scan_channels": 4 * hidden,
                  "torch_forward_backward_tokens": short},
        "repeats": args.repeats,
        "skipped": skipped,
        "rows": rows,
        "ratios": ratios(rows),
        "seconds": time.perf_counter() - started,
    }  # fmt: skip
    out = Path(args.out or f"benchmarks/results/kernel-bench-{device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print("\n| op | kernel | mode | tokens | ms | tokens/s | peak GiB | tiles |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        tiles = "default" if r["config"] is None else ", ".join(f"{k}={v}" for k, v in r["config"].items())
        print(f"| {r['op']} | {r['kernel']} | {r['mode']} | {r['tokens']:,} | {r['seconds'] * 1e3:.2f} | "
              f"{r['tokens_per_second']:,.0f} | {r['peak_gib']:.2f} | {tiles} |")  # fmt: skip
    print("\n| op | mode | Triton time / mamba_ssm time | Triton speed / pure PyTorch speed |\n|---|---|---|---|")
    for r in result["ratios"]:
        over_mamba, over_torch = r["triton_time_over_mamba_ssm"], r["triton_speed_over_torch"]
        print(f"| {r['op']} | {r['mode']} | {f'{over_mamba:.2f}x' if over_mamba else '-'} | "
              f"{f'{over_torch:.1f}x' if over_torch else '-'} |")  # fmt: skip
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
