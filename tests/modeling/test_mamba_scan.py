"""The selective scan and causal convolution: fast paths against the reference loops, the CUDA kernels' contract."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from scan_testing import EXACT, PER_STEP, assert_exact, causal_conv_loop, make_inputs, token_major

from storm_hf.modeling import kernel_choice, mamba_scan
from storm_hf.modeling.mamba_scan import (
    causal_conv1d,
    causal_conv1d_reference,
    causal_conv1d_shifted,
    selective_scan,
    selective_scan_blocked,
    selective_scan_reference,
)

# batch, dim, d_state, length, groups (None: B and C without a groups axis). The blocked scan's chunk is 16 steps.
SHAPES = [
    (1, 4, 1, 1, None),
    (1, 4, 16, 5, None),  # shorter than a chunk
    (2, 8, 4, 16, None),  # exactly one chunk
    (3, 16, 8, 17, 1),  # one step past a chunk
    (2, 6, 2, 33, 2),
    (3, 12, 3, 48, 2),
    (2, 32, 16, 100, 2),
    (1, 64, 16, 257, 2),
    (1, 64, 16, 300, None),
]


@pytest.mark.parametrize("batch, dim, d_state, length, groups", SHAPES)
def test_blocked_matches_reference_fp32(batch, dim, d_state, length, groups):
    inputs = make_inputs(batch, dim, d_state, length, groups)
    y, state = selective_scan_blocked(**inputs, return_last_state=True)
    y_ref, state_ref = selective_scan_reference(**inputs, return_last_state=True)
    assert y.shape == (batch, dim, length) and y.dtype == torch.float32
    assert state.shape == (batch, dim, d_state) and state.dtype == torch.float32
    assert_exact(y, y_ref)
    assert_exact(state, state_ref)


def test_blocked_matches_reference_with_learned_A_and_large_steps():
    # A away from its initial structure, and steps up to ~3 so that some exp(dt A) underflow towards 0
    inputs = make_inputs(2, 32, 16, 70, groups=2, dt_scale=3.0, A_noise=1.0)
    y, state = selective_scan_blocked(**inputs, return_last_state=True)
    y_ref, state_ref = selective_scan_reference(**inputs, return_last_state=True)
    assert_exact(y, y_ref)
    assert_exact(state, state_ref)


@pytest.mark.parametrize("chunk_size", [1, 7, 16, 64])
def test_blocked_chunk_size_does_not_change_the_result(chunk_size):
    inputs = make_inputs(2, 16, 8, 50, groups=2)
    assert_exact(selective_scan_blocked(**inputs, chunk_size=chunk_size), selective_scan_reference(**inputs))


@pytest.mark.parametrize("use_D, use_z, use_bias, softplus", list(itertools.product([False, True], repeat=4)))
def test_optional_arguments(use_D, use_z, use_bias, softplus):
    inputs = make_inputs(2, 8, 4, 37, groups=2)
    inputs.update(
        D=inputs["D"] if use_D else None,
        z=inputs["z"] if use_z else None,
        delta_bias=inputs["delta_bias"] if use_bias else None,
        delta_softplus=softplus,
    )
    if not softplus:  # without softplus, delta (+ bias) must be a positive step by itself
        inputs["delta"] = F.softplus(inputs["delta"] - 3.0)
        if use_bias:
            inputs["delta_bias"] = 0.05 * torch.rand(8)
    assert_exact(selective_scan_blocked(**inputs), selective_scan_reference(**inputs))
    assert_exact(selective_scan(**inputs), selective_scan_reference(**inputs))


@pytest.mark.parametrize("batch, dim, d_state, length, groups", [SHAPES[2], SHAPES[4], SHAPES[7]])
def test_blocked_matches_reference_bf16_inputs(batch, dim, d_state, length, groups):
    # Both paths read the same bf16 values and do fp32 math, so before the final rounding they agree to ~1e-6. That
    # difference can move a value across a bf16 rounding boundary: one bf16 ulp, at most 2**-7 relative (8
    # significant bits). Hence rtol 2**-7 plus the fp32 agreement as atol. The last state is fp32: exact.
    inputs = make_inputs(batch, dim, d_state, length, groups, dtype=torch.bfloat16)
    y, state = selective_scan_blocked(**inputs, return_last_state=True)
    y_ref, state_ref = selective_scan_reference(**inputs, return_last_state=True)
    assert y.dtype == torch.bfloat16 and state.dtype == torch.float32
    torch.testing.assert_close(y.float(), y_ref.float(), rtol=2**-7, atol=EXACT)
    assert_exact(state, state_ref)


def test_blocked_scan_keeps_fp32_maths_under_autocast():
    # autocast would run the scan's matrix product (C h) in bf16: errors of ~0.1 instead of ~1e-6
    inputs = make_inputs(2, 32, 16, 70, groups=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, state = selective_scan_blocked(**inputs, return_last_state=True)
    y_ref, state_ref = selective_scan_reference(**inputs, return_last_state=True)
    assert y.dtype == torch.float32
    assert_exact(y, y_ref)
    assert_exact(state, state_ref)


def test_reference_conv_keeps_fp32_maths_under_autocast():
    gen = torch.Generator().manual_seed(1)
    x, weight, bias = torch.randn(2, 6, 30, generator=gen), torch.randn(6, 4, generator=gen), torch.randn(6, generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = causal_conv1d_reference(x, weight, bias, "silu")
    assert (out.double() - causal_conv_loop(x, weight, bias, "silu")).abs().max().item() < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("batch, dim, d_state, length, groups", [SHAPES[3], SHAPES[6], SHAPES[8]])
def test_blocked_reads_token_major_views_and_writes_token_major_output(dtype, batch, dim, d_state, length, groups):
    # The layout a Mamba layer's Linear writes: the same values give the same result, bit for bit, and the output
    # keeps the input's memory order.
    inputs = make_inputs(batch, dim, d_state, length, groups, dtype=dtype)
    y, state = selective_scan_blocked(**inputs, return_last_state=True)
    viewed = {**inputs, **{k: token_major(inputs[k]) for k in PER_STEP}}
    y_view, state_view = selective_scan_blocked(**viewed, return_last_state=True)
    assert viewed["u"].stride(1) == 1 and y_view.stride(1) == 1 and y.stride(-1) == 1
    assert torch.equal(y_view, y) and torch.equal(state_view, state)


@pytest.mark.parametrize("steps", [dict(), dict(dt_scale=3.0, A_noise=0.5)], ids=["init", "large-steps"])
def test_blocked_gradients_match_reference(steps):
    inputs = make_inputs(2, 16, 4, 40, groups=2, **steps)
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    for name in names:
        inputs[name].requires_grad_(True)
    weights = torch.randn(2, 16, 40)
    grads = torch.autograd.grad((selective_scan_blocked(**inputs) * weights).sum(), [inputs[n] for n in names])
    grads_ref = torch.autograd.grad((selective_scan_reference(**inputs) * weights).sum(), [inputs[n] for n in names])
    for name, grad, grad_ref in zip(names, grads, grads_ref):
        torch.testing.assert_close(grad, grad_ref, rtol=1e-4, atol=1e-5, msg=f"gradient of {name}")


def test_blocked_matches_transformers_recurrent_path():
    modeling_mamba = pytest.importorskip("transformers.models.mamba.modeling_mamba")
    if not hasattr(modeling_mamba, "mamba_selective_scan"):
        pytest.skip("this transformers version has no mamba_selective_scan")
    inputs = make_inputs(2, 32, 16, 70)  # transformers takes B and C without a groups axis
    y, state = selective_scan_blocked(**inputs, return_last_state=True)
    y_hf, state_hf = modeling_mamba.mamba_selective_scan(
        inputs["u"],
        inputs["delta"],
        inputs["A"],
        inputs["B"],
        inputs["C"],
        inputs["D"],
        inputs["z"],
        inputs["delta_bias"],
        delta_softplus=True,
        return_last_state=True,
        use_mambapy=False,
        use_associative_scan=False,
    )
    assert_exact(y, y_hf)
    assert_exact(state, state_hf)


def test_fast_softplus_matches_softplus():
    x = torch.linspace(-40.0, 40.0, 200_001)
    expected = F.softplus(x.double())
    relative = (mamba_scan._softplus(x).double() - expected).abs() / expected
    # a few fp32 roundings (eps = 1.2e-7), plus |x| 2**-24 from exp(-|x|) taken as exp2(-|x| log2(e))
    assert (relative / (4e-7 + x.double().abs() * 2**-24)).max().item() < 1


@pytest.mark.parametrize("fn", [selective_scan_blocked, selective_scan_reference, selective_scan])
def test_groups_must_divide_dim(fn):
    inputs = make_inputs(1, 6, 4, 10, groups=4)
    with pytest.raises(ValueError, match="not divisible"):
        fn(**inputs)


def test_B_with_wrong_length_is_rejected():
    inputs = make_inputs(1, 8, 4, 10)
    inputs["B"] = inputs["B"][..., :-1]
    with pytest.raises(ValueError, match="B must be"):
        selective_scan(**inputs)


# ----------------------------------------------------------------------------------------------- causal convolution


@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("length", [1, 3, 20])
@pytest.mark.parametrize("use_bias, activation", [(True, "silu"), (False, None), (True, None)])
def test_causal_conv_matches_explicit_loop(width, length, use_bias, activation):
    gen = torch.Generator().manual_seed(width * 100 + length)
    x = torch.randn(2, 6, length, generator=gen)
    weight = torch.randn(6, width, generator=gen)
    bias = torch.randn(6, generator=gen) if use_bias else None
    expected = causal_conv_loop(x, weight, bias, activation)
    for fn in (causal_conv1d_reference, causal_conv1d):
        out = fn(x, weight, bias, activation=activation)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert (out.double() - expected).abs().max().item() < 1e-5


@pytest.mark.parametrize("width", [1, 2, 4])
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 128])  # shorter than the halo of width - 1 steps, and longer
@pytest.mark.parametrize("layout", ["channel-major", "token-major"])
def test_shifted_conv_matches_explicit_loop_in_either_layout(width, chunk_size, layout):
    gen = torch.Generator().manual_seed(width * 10 + chunk_size)
    x = torch.randn(2, 6, 23, generator=gen)
    x = token_major(x) if layout == "token-major" else x
    weight, bias = torch.randn(6, width, generator=gen), torch.randn(6, generator=gen)
    out = causal_conv1d_shifted(x, weight, bias, activation="silu", chunk_size=chunk_size)
    assert out.stride() == x.stride()  # the output keeps the input's memory order
    assert (out.double() - causal_conv_loop(x, weight, bias, "silu")).abs().max().item() < 1e-5


def test_shifted_conv_gradients_match_reference():
    gen = torch.Generator().manual_seed(3)
    shapes = [(2, 6, 40), (6, 4), (6,)]  # x, weight, bias
    tensors = [torch.randn(*shape, generator=gen).requires_grad_(True) for shape in shapes]
    weights = torch.randn(2, 6, 40, generator=gen)
    grads = torch.autograd.grad((causal_conv1d_shifted(*tensors, "silu", chunk_size=16) * weights).sum(), tensors)
    grads_ref = torch.autograd.grad((causal_conv1d_reference(*tensors, "silu") * weights).sum(), tensors)
    for name, grad, grad_ref in zip(["x", "weight", "bias"], grads, grads_ref):
        torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-5, msg=f"gradient of {name}")


def test_causal_conv_bf16_input_keeps_dtype_and_computes_in_fp32():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 30, generator=gen).bfloat16()
    weight, bias = torch.randn(8, 4, generator=gen), torch.randn(8, generator=gen)  # fp32 parameters
    out = causal_conv1d(x, weight, bias, activation="silu")
    assert out.dtype == torch.bfloat16
    # exact math on the bf16 values, then one rounding to bf16: at most one bf16 ulp (2**-7 relative) apart
    expected = causal_conv_loop(x, weight, bias, "silu")
    torch.testing.assert_close(out.double(), expected, rtol=2**-7, atol=1e-5)


def test_causal_conv_rejects_bad_arguments():
    x, weight = torch.randn(1, 4, 8), torch.randn(4, 3)
    with pytest.raises(ValueError, match="activation"):
        causal_conv1d(x, weight, activation="relu")
    with pytest.raises(ValueError, match="weight must be"):
        causal_conv1d(x, weight.unsqueeze(1))


# ------------------------------------------------------------------------------------------------ kernel contract


def fake_selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                           return_last_state=False):
    """mamba_ssm's selective_scan_fn with the checks of its C++ entry point (selective_scan.cpp), on CPU."""
    assert u.dtype in (torch.float32, torch.float16, torch.bfloat16)
    assert delta.dtype == u.dtype and B.dtype == u.dtype and C.dtype == u.dtype
    assert A.dtype == torch.float32 and A.shape == (u.shape[1], B.shape[-2])
    for tensor in (D, delta_bias):
        assert tensor is None or (tensor.dtype == torch.float32 and tensor.stride(-1) == 1)
    assert z is None or z.dtype == u.dtype
    return selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def fake_causal_conv1d_fn(x, weight, bias=None, seq_idx=None, initial_states=None, return_final_states=False,
                          final_states_out=None, activation=None):
    """causal_conv1d's causal_conv1d_fn with the checks of its C++ entry point (causal_conv1d.cpp), on CPU."""
    assert x.dtype in (torch.float32, torch.float16, torch.bfloat16)
    assert weight.shape == (x.shape[1], weight.shape[-1]) and 2 <= weight.shape[-1] <= 4
    assert bias is None or (bias.dtype == weight.dtype and bias.stride(-1) == 1)
    assert x.stride(2) == 1 or x.stride(1) == 1
    assert activation in (None, "silu", "swish")
    return causal_conv1d_reference(x, weight, bias, activation)


@pytest.fixture
def fake_kernels(monkeypatch):
    """The CUDA kernels replaced by the fakes, chosen whenever `mamba_scan` finds the call's arguments supported,
    whatever the device; records which kernels ran."""
    calls = []
    fakes = {"selective_scan": fake_selective_scan_fn, "causal_conv1d": fake_causal_conv1d_fn}

    def choose_kernel(operation, configured, tensor, unsupported):
        if unsupported["mamba_ssm"]:
            return "torch"
        calls.append(operation)
        return "mamba_ssm"

    monkeypatch.setattr(mamba_scan, "choose_kernel", choose_kernel)
    monkeypatch.setattr(mamba_scan, "cuda_kernel", lambda operation: (fakes[operation], None))
    return calls


def test_scan_kernel_receives_its_dtypes(fake_kernels):
    # As in a bf16 model: u, z bf16; delta, B, C computed in fp32; A, D, delta_bias fp32 parameters.
    inputs = make_inputs(2, 16, 8, 30, groups=2)
    inputs["u"], inputs["z"] = inputs["u"].bfloat16(), inputs["z"].bfloat16()
    y, state = selective_scan(**inputs, return_last_state=True)
    assert fake_kernels == ["selective_scan"]
    assert y.dtype == torch.bfloat16 and state.dtype == torch.float32
    inputs.update(delta=inputs["delta"].bfloat16(), B=inputs["B"].bfloat16(), C=inputs["C"].bfloat16())
    torch.testing.assert_close(y, selective_scan_reference(**inputs), rtol=0, atol=0)


def test_scan_kernel_is_skipped_for_what_it_does_not_support(fake_kernels):
    inputs = make_inputs(1, 8, 4, 12)
    inputs.update({k: v.double() for k, v in inputs.items() if k in ("u", "delta", "B", "C", "z")})
    assert selective_scan(**inputs).dtype == torch.float64  # float64: pure PyTorch path
    assert fake_kernels == []


def test_conv_kernel_receives_its_layout_and_dtypes(fake_kernels):
    x = torch.randn(2, 8, 40)[..., ::2].bfloat16()  # stride 2 along L: the kernel needs a copy
    weight, bias = torch.randn(8, 4), torch.randn(8).bfloat16()
    out = causal_conv1d(x, weight, bias, activation="silu")
    assert fake_kernels == ["causal_conv1d"] and out.dtype == torch.bfloat16
    torch.testing.assert_close(out, causal_conv1d_reference(x, weight, bias.float(), "silu"), rtol=0, atol=0)
    causal_conv1d(x, torch.randn(8, 5))  # width 5: not supported by the kernel
    assert fake_kernels == ["causal_conv1d"]


# ------------------------------------------------------------------------------------------------------------- CUDA


def _skip_without_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")


def _skip_without_kernel(operation):
    _skip_without_cuda()
    kernel, reason = kernel_choice.cuda_kernel(operation)
    if kernel is None:
        pytest.skip(reason)


class TestCUDA:
    """mamba_ssm's own tests bound its kernel against a reference by rtol/atol 6e-4/2e-3 in fp32, 3e-2/5e-2 in bf16
    (different summation order, fast exp on the GPU); the same bounds apply here."""

    TOLERANCES = {torch.float32: dict(rtol=6e-4, atol=2e-3), torch.bfloat16: dict(rtol=3e-2, atol=5e-2)}

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
    @pytest.mark.parametrize("batch, dim, d_state, length, groups", [(2, 64, 16, 300, None), (1, 128, 16, 4100, 2)])
    def test_scan_kernel_matches_reference(self, dtype, batch, dim, d_state, length, groups):
        _skip_without_kernel("selective_scan")
        inputs = {
            k: v.cuda() if isinstance(v, torch.Tensor) else v
            for k, v in make_inputs(batch, dim, d_state, length, groups, dtype=dtype).items()
        }
        y, state = selective_scan(**inputs, return_last_state=True, kernel="mamba_ssm")  # raises if it cannot run
        y_ref, state_ref = selective_scan_reference(**inputs, return_last_state=True)
        assert y.dtype == dtype and state.dtype == torch.float32
        torch.testing.assert_close(y.float(), y_ref.float(), **self.TOLERANCES[dtype])
        torch.testing.assert_close(state, state_ref, **self.TOLERANCES[dtype])

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
    @pytest.mark.parametrize("width", [2, 3, 4])
    def test_conv_kernel_matches_reference(self, dtype, width):
        _skip_without_kernel("causal_conv1d")
        x = torch.randn(2, 64, 300, device="cuda").to(dtype)
        weight, bias = torch.randn(64, width, device="cuda"), torch.randn(64, device="cuda")
        out = causal_conv1d(x, weight, bias, "silu", kernel="mamba_ssm")
        assert out.dtype == dtype
        torch.testing.assert_close(
            out.float(), causal_conv1d_reference(x, weight, bias, "silu").float(), **self.TOLERANCES[dtype]
        )

    def test_blocked_scan_on_cuda_matches_reference(self):
        _skip_without_cuda()
        inputs = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in make_inputs(2, 64, 16, 300, 2).items()}
        y, state = selective_scan_blocked(**inputs, return_last_state=True)
        y_ref, state_ref = selective_scan_reference(**inputs, return_last_state=True)
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=EXACT)
        torch.testing.assert_close(state, state_ref, rtol=1e-5, atol=EXACT)


@pytest.mark.parametrize("fn", [selective_scan_blocked, selective_scan_reference, selective_scan])
@pytest.mark.parametrize("split", [1, 16, 21])  # after one step, at a chunk boundary, inside a chunk
def test_a_scan_goes_on_from_an_initial_state(fn, split):
    inputs = make_inputs(2, 8, 4, 40, groups=2)

    def part(start, stop):
        return {k: v[..., start:stop] if k in PER_STEP else v for k, v in inputs.items()}

    y_whole, state_whole = selective_scan_reference(**inputs, return_last_state=True)
    y_first, state_first = fn(**part(0, split), return_last_state=True)
    y_second, state_second = fn(**part(split, 40), return_last_state=True, initial_state=state_first)
    assert_exact(torch.cat([y_first, y_second], dim=-1), y_whole)
    assert_exact(state_second, state_whole)


def test_the_blocked_scan_differentiates_through_an_initial_state():
    inputs = make_inputs(1, 4, 3, 20)
    state = torch.randn(1, 4, 3, requires_grad=True)
    weights = torch.randn(1, 4, 20)
    grad = torch.autograd.grad((selective_scan_blocked(**inputs, initial_state=state) * weights).sum(), state)[0]
    grad_ref = torch.autograd.grad((selective_scan_reference(**inputs, initial_state=state) * weights).sum(), state)[0]
    assert_exact(grad, grad_ref)
