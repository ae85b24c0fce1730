"""The Triton kernels against the reference loops: forward, last state, initial state and gradients.

Without a GPU they run in Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1), on small shapes and small
chunks so that sequences cross several chunks; with one, the same tests run the compiled kernels on CUDA.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from scan_testing import PER_STEP, assert_exact, causal_conv_loop, make_inputs, token_major
from test_temporal_encoder import trained_scale_mixer

from storm_hf.modeling import mamba_scan, mamba_triton
from storm_hf.modeling.mamba_scan import causal_conv1d_reference, selective_scan_reference
from storm_hf.modeling.mamba_triton import causal_conv1d_triton, selective_scan_triton

pytest.importorskip("triton")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# fp32: the interpreter does the reference's maths in another order; compiled for a GPU, the kernels use its fast
# exp2, so there the bounds are mamba_ssm's own for its CUDA kernel (rtol 6e-4, atol 2e-3)
FP32 = dict(rtol=1e-5, atol=1e-5) if DEVICE == "cpu" else dict(rtol=6e-4, atol=2e-3)
SMALL = {"chunk_size": 8, "block_dim": 4, "block_dim_backward": 4}  # several chunks on short sequences
SCAN_ARGUMENTS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")

# mamba_ssm's tests (tests/ops/test_selective_scan.py) bound its kernel against the reference, for bf16 inputs, by
# rtol 3e-2 / atol 5e-2 on the output, twice that on du, 5x / 10x on ddelta; weights (dA, dD, dz, d bias) by the same
# (with z); dB and dC by the output's. causal_conv1d's tests use rtol 1e-2 / atol 5e-2 for bf16.
BF16 = dict(rtol=3e-2, atol=5e-2)
BF16_GRADIENTS = {"u": dict(rtol=6e-2, atol=1e-1), "delta": dict(rtol=1.5e-1, atol=5e-1)}
CONV_BF16 = dict(rtol=1e-2, atol=5e-2)


def assert_matches(actual, expected):
    """`scan_testing.assert_exact` in the interpreter; the FP32 bounds compiled on a GPU."""
    if DEVICE == "cpu":
        assert_exact(actual, expected)
    else:
        torch.testing.assert_close(actual.float(), expected.float(), **FP32)


def on_device(inputs: dict) -> dict:
    return {k: v.to(DEVICE) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def gradients(fn, inputs: dict, names, weights, state_weights=None, **kwargs):
    """d(sum(out * weights) [+ sum(last state * state_weights)]) / d inputs[name] for each name."""
    out, state = fn(**inputs, return_last_state=True, **kwargs)
    loss = (out.float() * weights).sum()
    if state_weights is not None:
        loss = loss + (state * state_weights).sum()
    return dict(zip(names, torch.autograd.grad(loss, [inputs[name] for name in names])))


# batch, dim, d_state, length, groups (None: B and C without a groups axis); the chunk is 8 steps
SHAPES = [
    (1, 4, 1, 1, None),  # one step
    (2, 8, 4, 21, 2),  # odd length, not a multiple of the chunk; two groups (the mixer's two directions)
    (3, 6, 3, 16, 2),  # two whole chunks; 3 channels per group and d_state 3 (not powers of two)
    (1, 8, 16, 13, None),  # the model's d_state
]


@pytest.mark.parametrize("batch, dim, d_state, length, groups", SHAPES)
def test_scan_matches_reference_fp32(batch, dim, d_state, length, groups):
    inputs = on_device(make_inputs(batch, dim, d_state, length, groups))
    y, state = selective_scan_triton(**inputs, return_last_state=True, config=SMALL)
    y_ref, state_ref = selective_scan_reference(**inputs, return_last_state=True)
    assert y.shape == (batch, dim, length) and y.dtype == torch.float32
    assert state.shape == (batch, dim, d_state) and state.dtype == torch.float32
    assert_matches(y, y_ref)
    assert_matches(state, state_ref)


@pytest.mark.parametrize(
    "use_D, use_z, use_bias, softplus",
    [(False, False, False, False), (True, False, True, True), (False, True, False, True)],
)
def test_scan_optional_arguments(use_D, use_z, use_bias, softplus):
    inputs = make_inputs(2, 8, 4, 11, groups=2, dt_scale=3.0, A_noise=0.5)  # some exp(dt A) far below 1
    inputs.update(
        D=inputs["D"] if use_D else None,
        z=inputs["z"] if use_z else None,
        delta_bias=inputs["delta_bias"] if use_bias else None,
        delta_softplus=softplus,
    )
    if not softplus:  # then delta (+ bias) must be a positive step by itself
        inputs["delta"] = torch.nn.functional.softplus(inputs["delta"] - 3.0)
    inputs = on_device(inputs)
    assert_matches(selective_scan_triton(**inputs, config=SMALL), selective_scan_reference(**inputs))


def test_scan_starts_from_an_initial_state_and_runs_in_parts():
    inputs = on_device(make_inputs(2, 8, 4, 29, groups=2))
    y_ref, state_ref = selective_scan_reference(**inputs, return_last_state=True)
    ys, state = [], None
    for start, stop in [(0, 1), (1, 9), (9, 22), (22, 29)]:  # a single step, a whole chunk, across chunk boundaries
        part = {k: v[..., start:stop] if k in PER_STEP else v for k, v in inputs.items()}
        y, state = selective_scan_triton(**part, return_last_state=True, initial_state=state, config=SMALL)
        ys.append(y)
    assert_matches(torch.cat(ys, dim=-1), y_ref)
    assert_matches(state, state_ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_scan_reads_token_major_views_and_writes_token_major_output(dtype):
    inputs = on_device(make_inputs(2, 8, 4, 19, groups=2, dtype=dtype))
    viewed = {**inputs, **{k: token_major(inputs[k]) for k in PER_STEP}}
    y, state = selective_scan_triton(**inputs, return_last_state=True, config=SMALL)
    y_view, state_view = selective_scan_triton(**viewed, return_last_state=True, config=SMALL)
    assert y_view.stride(1) == 1 and y.stride(-1) == 1  # each output keeps its input's memory order
    assert torch.equal(y_view, y) and torch.equal(state_view, state)


@pytest.mark.parametrize("groups", [None, 2])
def test_scan_gradients_match_reference_fp32(groups):
    inputs = on_device(make_inputs(2, 8, 4, 19, groups=groups, dt_scale=2.0, A_noise=0.5))
    inputs["initial_state"] = torch.randn(2, 8, 4, device=DEVICE)
    names = [*SCAN_ARGUMENTS, "initial_state"]
    for name in names:
        inputs[name].requires_grad_(True)
    gen = torch.Generator().manual_seed(1)
    weights, state_weights = torch.randn(2, 8, 19, generator=gen), torch.randn(2, 8, 4, generator=gen)
    weights, state_weights = weights.to(DEVICE), state_weights.to(DEVICE)
    grads = gradients(selective_scan_triton, inputs, names, weights, state_weights, config=SMALL)
    grads_ref = gradients(selective_scan_reference, inputs, names, weights, state_weights)
    for name in names:
        torch.testing.assert_close(grads[name], grads_ref[name], **FP32, msg=f"gradient of {name}")


def test_scan_gradients_of_plain_sums():
    # d(sum)/d(out) reaches the backward pass as an expanded tensor (stride 0), for the output and the last state
    inputs = on_device(make_inputs(2, 8, 4, 19, groups=2))
    for name in SCAN_ARGUMENTS:
        inputs[name].requires_grad_(True)
    grads = {}
    runs = {"triton": (selective_scan_triton, {"config": SMALL}), "reference": (selective_scan_reference, {})}
    for name, (fn, kwargs) in runs.items():
        y, state = fn(**inputs, return_last_state=True, **kwargs)
        grads[name] = torch.autograd.grad(y.sum() + state.sum(), [inputs[n] for n in SCAN_ARGUMENTS])
    for name, grad, grad_ref in zip(SCAN_ARGUMENTS, grads["triton"], grads["reference"]):
        torch.testing.assert_close(grad, grad_ref, **FP32, msg=f"gradient of {name}")


def test_scan_bf16_inputs_within_mamba_ssm_tolerances():
    inputs = on_device(make_inputs(2, 8, 4, 19, groups=2, dtype=torch.bfloat16))
    for name in SCAN_ARGUMENTS:
        inputs[name].requires_grad_(True)
    weights = torch.randn(2, 8, 19, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    y, state = selective_scan_triton(**inputs, return_last_state=True, config=SMALL)
    y_ref, state_ref = selective_scan_reference(**inputs, return_last_state=True)
    assert y.dtype == torch.bfloat16 and state.dtype == torch.float32
    torch.testing.assert_close(y.float(), y_ref.float(), **BF16)
    torch.testing.assert_close(state, state_ref, **BF16)
    grads = gradients(selective_scan_triton, inputs, SCAN_ARGUMENTS, weights, config=SMALL)
    grads_ref = gradients(selective_scan_reference, inputs, SCAN_ARGUMENTS, weights)
    for name in SCAN_ARGUMENTS:
        assert grads[name].dtype == inputs[name].dtype
        tolerance = BF16_GRADIENTS.get(name, BF16)
        torch.testing.assert_close(grads[name].float(), grads_ref[name].float(), **tolerance, msg=f"gradient of {name}")


# ----------------------------------------------------------------------------------------------------- convolution


def conv_reference(x, weight, bias, activation, initial_state):
    """The reference over [carried inputs, x], minus the carried steps' outputs."""
    carried = initial_state if initial_state is not None else x.new_zeros(x.shape[0], x.shape[1], weight.shape[-1] - 1)
    out = causal_conv1d_reference(torch.cat([carried.to(x.dtype), x], dim=-1), weight, bias, activation)
    return out[..., carried.shape[-1] :]


CONV_SMALL = {"block_length": 8, "block_dim": 4, "block_length_backward": 8, "block_dim_backward": 4}


@pytest.mark.parametrize("width", [2, 4])
@pytest.mark.parametrize("length", [1, 3, 19])
@pytest.mark.parametrize("activation, use_bias, carried", [("silu", True, True), (None, False, False)])
def test_conv_matches_reference(width, length, activation, use_bias, carried):
    gen = torch.Generator().manual_seed(width * 100 + length)
    x = torch.randn(2, 6, length, generator=gen).to(DEVICE)
    weight, bias = torch.randn(6, width, generator=gen).to(DEVICE), torch.randn(6, generator=gen).to(DEVICE)
    initial = torch.randn(2, 6, width - 1, generator=gen).to(DEVICE) if carried else None
    bias = bias if use_bias else None
    out, final = causal_conv1d_triton(x, weight, bias, activation, initial, return_final_state=True, config=CONV_SMALL)
    assert out.shape == x.shape and out.dtype == x.dtype and final.shape == (2, 6, width - 1)
    assert_matches(out, conv_reference(x, weight, bias, activation, initial))
    if initial is None:
        cpu_bias = None if bias is None else bias.cpu()
        assert_matches(out, causal_conv_loop(x.cpu(), weight.cpu(), cpu_bias, activation).to(DEVICE))
    carried_inputs = torch.cat([initial if initial is not None else x.new_zeros(2, 6, width - 1), x], dim=-1)
    assert torch.equal(final, carried_inputs[..., -(width - 1) :])


def test_conv_in_parts_with_carried_state_equals_the_whole_sequence():
    gen = torch.Generator().manual_seed(5)
    x = token_major(torch.randn(2, 6, 23, generator=gen)).to(DEVICE)  # the mixer's layout
    weight, bias = torch.randn(6, 4, generator=gen).to(DEVICE), torch.randn(6, generator=gen).to(DEVICE)
    whole = causal_conv1d_triton(x, weight, bias, "silu", config=CONV_SMALL)
    assert whole.stride(1) == 1  # token-major output for token-major input
    outs, state = [], None
    for start, stop in [(0, 2), (2, 11), (11, 23)]:  # a part shorter than the carried 3 steps, then longer ones
        out, state = causal_conv1d_triton(
            x[..., start:stop], weight, bias, "silu", state, return_final_state=True, config=CONV_SMALL
        )
        outs.append(out)
    assert_matches(torch.cat(outs, dim=-1), whole)
    assert_matches(whole, conv_reference(x, weight, bias, "silu", None))


@pytest.mark.parametrize("width, length", [(4, 19), (3, 2)])
def test_conv_gradients_match_reference_with_carried_state(width, length):
    gen = torch.Generator().manual_seed(width)
    shapes = [(2, 6, length), (6, width), (6,), (2, 6, width - 1)]  # x, weight, bias, carried inputs
    tensors = [torch.randn(*shape, generator=gen).to(DEVICE).requires_grad_(True) for shape in shapes]
    weights = torch.randn(2, 6, length, generator=gen).to(DEVICE)
    x, weight, bias, initial = tensors
    out = causal_conv1d_triton(x, weight, bias, "silu", initial, config=CONV_SMALL)
    grads = torch.autograd.grad((out * weights).sum(), tensors)
    grads_ref = torch.autograd.grad((conv_reference(x, weight, bias, "silu", initial) * weights).sum(), tensors)
    for name, grad, grad_ref in zip(["x", "weight", "bias", "initial_state"], grads, grads_ref):
        torch.testing.assert_close(grad, grad_ref, **FP32, msg=f"gradient of {name}")


def test_conv_bf16_within_causal_conv1d_tolerances():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 8, 30, generator=gen).to(DEVICE, torch.bfloat16).requires_grad_(True)
    weight = torch.randn(8, 4, generator=gen).to(DEVICE).requires_grad_(True)
    bias = torch.randn(8, generator=gen).to(DEVICE).requires_grad_(True)
    weights = torch.randn(2, 8, 30, generator=gen).to(DEVICE)
    out = causal_conv1d_triton(x, weight, bias, "silu", config=CONV_SMALL)
    out_ref = causal_conv1d_reference(x, weight, bias, "silu")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), out_ref.float(), **CONV_BF16)
    grads = torch.autograd.grad((out.float() * weights).sum(), [x, weight, bias])
    grads_ref = torch.autograd.grad((out_ref.float() * weights).sum(), [x, weight, bias])
    for grad, grad_ref in zip(grads, grads_ref):
        torch.testing.assert_close(grad.float(), grad_ref.float(), **CONV_BF16)


# ----------------------------------------------------------------------------------------------------------- mixer


@pytest.mark.parametrize("bidirectional", [True, False])
def test_mixer_on_triton_kernels_equals_pure_pytorch(monkeypatch, bidirectional):
    # one program per branch and batch row (16 channels), 8-step chunks
    for name, value in {**SMALL, "block_dim": 16, "block_dim_backward": 16}.items():
        monkeypatch.setitem(mamba_triton.SCAN_CONFIG, name, value)
    for name, value in {**CONV_SMALL, "block_dim": 32, "block_dim_backward": 32}.items():
        monkeypatch.setitem(mamba_triton.CONV_CONFIG, name, value)
    calls = []
    for name in ("selective_scan_triton", "causal_conv1d_triton"):
        monkeypatch.setattr(mamba_scan, name, counted(getattr(mamba_scan, name), calls))
    mixers = {
        kernel: trained_scale_mixer(
            bidirectional=bidirectional, hidden_size=8, scan_chunk_size=8, mamba_kernel=kernel
        ).to(DEVICE)
        for kernel in ("torch", "triton")
    }
    hidden = torch.randn(1, 13, 8, generator=torch.Generator().manual_seed(3)).to(DEVICE).requires_grad_(True)
    outputs, grads = {}, {}
    for kernel, mixer in mixers.items():
        outputs[kernel] = mixer(hidden)
        parameters = [hidden, *mixer.parameters()]
        grads[kernel] = torch.autograd.grad((outputs[kernel] ** 2).sum(), parameters)
    torch.testing.assert_close(outputs["triton"], outputs["torch"], **FP32)
    for grad, grad_ref in zip(grads["triton"], grads["torch"]):
        torch.testing.assert_close(grad, grad_ref, **FP32)
    with torch.no_grad():  # on the CPU: 8-token chunks, carrying the scan state and the convolution's inputs
        chunked = mixers["triton"](hidden)
    torch.testing.assert_close(chunked, outputs["torch"].detach(), **FP32)
    # each pass: one convolution and one scan (whole), then one of each per chunk (2 chunks)
    assert calls == ["selective_scan_triton" if i % 2 else "causal_conv1d_triton" for i in range(6)]


def counted(function, calls: list):
    """`function`, recording its name in `calls` at each call."""

    def wrapper(*args, **kwargs):
        calls.append(function.__name__)
        return function(*args, **kwargs)

    return wrapper


def test_kernels_compile_for_hopper_without_a_gpu(tmp_path):
    # The interpreter runs Python, not the compiler: this builds every kernel a Mamba block launches for sm_90 with
    # Triton's compiler and ptxas, in a process where the kernels are not interpreted.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "kernels.json"
    command = [sys.executable, "-m", "storm_hf.benchmarking.triton_compile", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["kernels"]
    assert [row["kernel"] for row in rows] == [
        "selective_scan_fwd", "selective_scan_bwd", "causal_conv1d_fwd", "causal_conv1d_bwd"
    ]  # fmt: skip
    assert all(row["registers"] > 0 for row in rows)
