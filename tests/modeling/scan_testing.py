"""Inputs and checks shared by the tests of the selective scan and the causal convolution."""

import math

import torch
import torch.nn.functional as F

# fp32: both paths do the same fp32 math in another order. Bounds on the max abs diff, absolute and relative to the
# largest expected value (16 fp32 epsilons; the paths differ by 3.5e-7 relative at most over these tests).
EXACT = 1e-5
RELATIVE = 2e-6


def make_inputs(batch, dim, d_state, length, groups=None, dtype=torch.float32, seed=0, dt_scale=0.5, A_noise=0.0):
    """Values as in a Mamba layer at initialisation: A = -exp(A_log) with A_log = log(1..d_state), and a dt bias
    such that softplus(bias) is log-uniform in [0.001, 0.1]; delta is the input-dependent part added to it.
    `groups=None` gives B and C as (batch, d_state, L), otherwise (batch, groups, d_state, L)."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    dt0 = torch.exp(torch.rand(dim, generator=gen) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
    A_log = torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(dim, 1) + A_noise * randn(dim, d_state)
    BC_shape = (batch, d_state, length) if groups is None else (batch, groups, d_state, length)
    return dict(
        u=randn(batch, dim, length).to(dtype),
        delta=(dt_scale * randn(batch, dim, length)).to(dtype),
        A=-torch.exp(A_log),
        B=randn(*BC_shape).to(dtype),
        C=randn(*BC_shape).to(dtype),
        D=randn(dim),
        z=randn(batch, dim, length).to(dtype),
        delta_bias=dt0 + torch.log(-torch.expm1(-dt0)),  # inverse of softplus
        delta_softplus=True,
    )


def assert_exact(actual, expected):
    diff = (actual.float() - expected.float()).abs().max().item()
    scale = expected.float().abs().max().item()
    assert diff <= EXACT, f"max abs diff {diff:.3g} > {EXACT}"
    assert diff <= RELATIVE * scale, f"max abs diff {diff:.3g} is {diff / scale:.3g} of the largest value"


PER_STEP = ("u", "delta", "z", "B", "C")  # the scan's inputs with a time axis (the last)


def token_major(x: torch.Tensor) -> torch.Tensor:
    """The same `(batch, channels, length)` values, as a view of token-major `(batch, length, channels)` memory."""
    return x.transpose(-1, -2).contiguous().transpose(-1, -2)


def causal_conv_loop(x, weight, bias, activation):
    """out[b, d, t] = bias[d] + sum_k weight[d, k] * x[b, d, t - (width - 1) + k], with x = 0 before t = 0."""
    batch, dim, length = x.shape
    width = weight.shape[1]
    x, weight = x.double(), weight.double()
    out = torch.zeros(batch, dim, length, dtype=torch.float64)
    for t in range(length):
        for k in range(width):
            source = t - (width - 1) + k
            if source >= 0:
                out[:, :, t] += weight[:, k] * x[:, :, source]
    if bias is not None:
        out += bias.double()[:, None]
    return F.silu(out) if activation == "silu" else out
