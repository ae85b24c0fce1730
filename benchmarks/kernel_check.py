"""Correctness of the Mamba kernels on a GPU: every implementation available here against the reference loops (the
scan and the convolution alone) and against the pure-PyTorch path (one Mamba mixer, a whole STORM model), forward and
backward, in fp32 and in bf16 under torch.autocast.

    python benchmarks/kernel_check.py                           # on CUDA; the kernels that are installed
    python benchmarks/kernel_check.py --kernels torch triton    # some of them
    python benchmarks/kernel_check.py --cpu-dry-run             # toy sizes on CPU, Triton in its interpreter

Errors are relative, ||out - ref|| / ||ref|| in float64, over every output and gradient. A row passes when the error
is at most 1e-4 in fp32 (fp32 maths in another order; GPU kernels use fast exp), and, under bf16 autocast, when the
kernel's error against the fp32 pure-PyTorch run is at most twice that of the pure-PyTorch path under the same
autocast, or 1e-2. Writes one JSON file (every row, the machine) and prints a table; exits 1 if a row failed.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

# first: for the dry run it switches Triton's interpreter on, before any kernel is decorated
from kernel_common import add_arguments, available_kernels, device_for, machine

import torch

from storm_hf.benchmarking.scales import SCALES, SETTINGS, build_config
from storm_hf.benchmarking.tokens import count_tokens, prompt_ids
from storm_hf.modeling.configuration_storm import StormTemporalConfig
from storm_hf.modeling.mamba_mixer import StormMambaMixer
from storm_hf.modeling.mamba_scan import (
    causal_conv1d,
    causal_conv1d_reference,
    selective_scan,
    selective_scan_reference,
)
from storm_hf.modeling.modeling_storm import StormForConditionalGeneration

FP32_BOUND, BF16_FLOOR = 1e-4, 1e-2
# (batch, scan channels in 2 groups, d_state, length, mixer hidden size, model scale, model frames, model d_state)
SIZES = {"gpu": (2, 512, 16, 2051, 256, "cpu", 16, 16), "dry": (2, 8, 4, 21, 8, "tiny", 4, 4)}


def relative_error(actual, expected) -> float:
    actual, expected = actual.double(), expected.double()
    return ((actual - expected).norm() / expected.norm().clamp_min(1e-30)).item()


def worst(actuals, expecteds) -> float:
    return max(relative_error(a, e) for a, e in zip(actuals, expecteds))


def scan_inputs(batch, dim, d_state, length, dtype, device, seed=0):
    """Values as in a Mamba layer at initialisation, B and C per group of channels (two groups, the two
    directions), u / delta / B / C in the mixer's token-major layout."""
    gen = torch.Generator().manual_seed(seed)
    dt0 = torch.exp(torch.rand(dim, generator=gen) * math.log(100) + math.log(0.001))  # softplus(bias): 0.001..0.1

    def token_major(*shape):  # (batch, channels, L) view of (batch, L, channels) memory
        return torch.randn(shape[0], shape[-1], *shape[1:-1], generator=gen).movedim(1, -1)

    inputs = dict(
        u=token_major(batch, dim, length),
        delta=token_major(batch, dim, length) * 0.5,
        A=-torch.arange(1, d_state + 1, dtype=torch.float32).repeat(dim, 1),
        B=torch.randn(batch, 2, length, d_state, generator=gen).transpose(2, 3),
        C=torch.randn(batch, 2, length, d_state, generator=gen).transpose(2, 3),
        D=torch.randn(dim, generator=gen),
        delta_bias=dt0 + torch.log(-torch.expm1(-dt0)),
    )
    per_step = ("u", "delta", "B", "C")
    return {k: (v.to(dtype) if k in per_step else v).to(device).requires_grad_(True) for k, v in inputs.items()}


def check_scan(kernel, sizes, device) -> list[dict]:
    batch, dim, d_state, length = sizes[:4]
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        inputs = scan_inputs(batch, dim, d_state, length, dtype, device)
        names = list(inputs)
        weights = torch.randn(batch, dim, length, generator=torch.Generator().manual_seed(1)).to(device)
        results = {}
        for implementation in (kernel, "reference"):
            if implementation == "reference":
                y, state = selective_scan_reference(**inputs, delta_softplus=True, return_last_state=True)
            else:
                y, state = selective_scan(**inputs, delta_softplus=True, return_last_state=True, kernel=kernel)
            grads = torch.autograd.grad((y.float() * weights).sum() + state.sum(), [inputs[n] for n in names])
            results[implementation] = [y, state, *grads]
        error = worst(results[kernel], results["reference"])
        bound = FP32_BOUND if dtype == torch.float32 else 3e-2  # bf16 inputs: mamba_ssm's own output tolerance
        rows.append(row("scan vs reference loop", kernel, dtype, error, bound, "y, last state, 8 gradients"))
    if kernel in ("triton", "torch"):  # runs in parts from the carried state equal one whole run
        with torch.no_grad():
            inputs = scan_inputs(batch, dim, d_state, length, torch.float32, device)
            y_whole, state_whole = selective_scan(**inputs, delta_softplus=True, return_last_state=True, kernel=kernel)
            ys, state = [], None
            for start, stop in ((0, 1), (1, length // 3), (length // 3, length)):
                part = {k: v[..., start:stop] if k in ("u", "delta", "B", "C") else v for k, v in inputs.items()}
                y, state = selective_scan(
                    **part, delta_softplus=True, return_last_state=True, initial_state=state, kernel=kernel
                )
                ys.append(y)
        error = worst([torch.cat(ys, dim=-1), state], [y_whole, state_whole])
        rows.append(row("scan in 3 parts vs whole", kernel, torch.float32, error, FP32_BOUND, "from carried states"))
    return rows


def check_conv(kernel, sizes, device) -> list[dict]:
    batch, dim, _, length = sizes[:4]
    rows = []
    gen = torch.Generator().manual_seed(2)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(batch, length, dim, generator=gen).transpose(1, 2).to(device, dtype).requires_grad_(True)
        weight = torch.randn(dim, 4, generator=gen).to(device).requires_grad_(True)
        bias = torch.randn(dim, generator=gen).to(device).requires_grad_(True)
        weights = torch.randn(batch, dim, length, generator=gen).to(device)
        results = {}
        for implementation in (kernel, "reference"):
            if implementation == "reference":
                out = causal_conv1d_reference(x, weight, bias, "silu")
            else:
                out = causal_conv1d(x, weight, bias, "silu", kernel=kernel)
            results[implementation] = [out, *torch.autograd.grad((out.float() * weights).sum(), [x, weight, bias])]
        bound = FP32_BOUND if dtype == torch.float32 else 1e-2  # bf16: causal_conv1d's own tolerance
        error = worst(results[kernel], results["reference"])
        rows.append(row("conv + SiLU vs reference", kernel, dtype, error, bound, "out, dx, dweight, dbias"))
    return rows


def with_kernel(module: torch.nn.Module, kernel: str) -> torch.nn.Module:
    for mixer in module.modules():
        if isinstance(mixer, StormMambaMixer):
            mixer.mamba_kernel = kernel
    return module


def autocast_rows(level, kernel, run, note) -> list[dict]:
    """fp32 rows (kernel vs pure PyTorch) and bf16-autocast rows (each against the fp32 pure-PyTorch run)."""
    reference = run("torch", autocast=False)
    rows = [row(level, kernel, torch.float32, worst(run(kernel, autocast=False), reference), FP32_BOUND, note)]
    ours, theirs = worst(run(kernel, autocast=True), reference), worst(run("torch", autocast=True), reference)
    bound = max(2 * theirs, BF16_FLOOR)
    rows.append(row(level, kernel, "bf16 autocast", ours, bound, f"{note}; pure PyTorch under autocast: {theirs:.2e}"))
    return rows


def check_mixer(kernel, sizes, device) -> list[dict]:
    batch, _, d_state, length, hidden = sizes[:5]
    config = StormTemporalConfig(vision_hidden_size=8, hidden_size=hidden, d_state=d_state)
    torch.manual_seed(0)
    mixer = StormMambaMixer(config).to(device)
    mixer.init_ssm_parameters(config)
    with torch.no_grad():  # weights of a trained model's scale: information crosses the sequence
        for name, parameter in mixer.named_parameters():
            if name.endswith("proj.weight"):
                parameter.normal_(std=0.3 / hidden**0.25)
    hidden_states = torch.randn(batch, length, hidden, generator=torch.Generator().manual_seed(3)).to(device)

    def run(implementation, autocast):
        x = hidden_states.clone().requires_grad_(True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            out = with_kernel(mixer, implementation)(x)
        grads = torch.autograd.grad((out.float() ** 2).mean(), [x, *mixer.parameters()])
        return [out, *grads]

    note = f"out and {1 + len(list(mixer.parameters()))} grads"
    return autocast_rows("Mamba mixer vs pure PyTorch", kernel, run, note)


def check_model(kernel, sizes, device) -> list[dict]:
    scale, frames = SCALES[sizes[5]], sizes[6]
    config = build_config(scale, SETTINGS["k4"])
    config.temporal_config.d_state = sizes[7]
    torch.manual_seed(0)
    model = StormForConditionalGeneration(config).to(device)
    count = count_tokens(config, SETTINGS["k4"], frames)
    ids = prompt_ids(config, count).to(device)
    side = config.vision_config.image_size
    pixels = torch.randn(1, frames, 3, side, side, generator=torch.Generator().manual_seed(4)).to(device)
    encoder = [p for name, p in model.named_parameters() if "temporal_encoder" in name]

    def run(implementation, autocast):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            out = with_kernel(model, implementation)(input_ids=ids, pixel_values_videos=pixels, labels=ids)
        return [out.logits, out.loss, *torch.autograd.grad(out.loss, encoder)]

    note = f"{sizes[5]} scale, {frames} frames, k4: logits, loss, {len(encoder)} temporal-encoder grads"
    return autocast_rows("STORM model vs pure PyTorch", kernel, run, note)


def row(level, kernel, dtype, error, bound, note) -> dict:
    dtype = str(dtype).replace("torch.", "")
    return {"check": level, "kernel": kernel, "dtype": dtype, "error": error, "bound": bound,
            "pass": error <= bound, "note": note}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, "kernel-check")
    args = parser.parse_args(argv)
    device = device_for(parser, args)
    sizes = SIZES["dry" if args.cpu_dry_run else "gpu"]
    kernels, skipped = available_kernels(args.kernels, device)
    started, rows = time.perf_counter(), []
    for kernel in kernels:
        checks = (check_scan, check_conv) + ((check_mixer, check_model) if kernel != "torch" else ())
        for check in checks:
            rows += check(kernel, sizes, device)
            print(f"{rows[-1]['check']:32s} {kernel:9s} done at {time.perf_counter() - started:6.1f} s", flush=True)
    result = {"machine": machine(device), "sizes": sizes, "skipped": skipped, "rows": rows,
              "seconds": time.perf_counter() - started}  # fmt: skip
    out = Path(args.out or f"benchmarks/results/kernel-check-{device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print("\n| check | kernel | dtype | relative error | bound | |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['check']} | {r['kernel']} | {r['dtype']} | {r['error']:.2e} | {r['bound']:.0e} | "
              f"{'pass' if r['pass'] else 'FAIL'} |")  # fmt: skip
    print(f"\nwrote {out}")
    return 0 if all(r["pass"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
