"""The bidirectional Mamba mixer against an independent reference written from the paper's description.

STORM's temporal encoder is "bidirectional: a forward scan and a scan of the reversed sequence". The reference below
is written from that sentence and the Mamba-1 equations, not from the mixer's code: one sequence at a time, in
float64, a plain loop over time steps. Each direction is a full Mamba-1 branch with its own causal depthwise
convolution, x_proj, dt_proj, A and D; in_proj and out_proj are shared; the two directions' gated outputs are summed
(the project's choices where the paper is silent, STORM_SPEC.md section 1).
"""

import pytest
import torch
import torch.nn.functional as F

from storm_hf.modeling.configuration_storm import StormTemporalConfig
from storm_hf.modeling.mamba_mixer import StormMambaMixer

# fp32 mixer against the float64 reference
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def linear(x, weight, bias=None):
    """x @ W^T + b, written out."""
    out = x @ weight.T
    return out if bias is None else out + bias


def causal_depthwise_conv(x, weight, bias):
    """x (L, E); weight (E, 1, width): output t of channel e is sum_k weight[e, k] * x[t - width + 1 + k, e]."""
    width = weight.shape[-1]
    padded = torch.cat([x.new_zeros(width - 1, x.shape[1]), x])  # steps before the sequence read zeros
    windows = torch.stack([padded[t : t + width] for t in range(len(x))])  # (L, width, E)
    out = (windows * weight[:, 0].T).sum(dim=1)  # (L, E)
    return out if bias is None else out + bias


def selective_ssm(u, delta, A, B, C, D):
    """Mamba-1's selective state space model, one step at a time.

    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t ;  y_t = C_t . h_t + D u_t
    u, delta: (L, E); A: (E, N); B, C: (L, N); D: (E,). Returns y (L, E).
    """
    state = torch.zeros_like(A)  # (E, N)
    ys = []
    for t in range(len(u)):
        state = torch.exp(delta[t, :, None] * A) * state + delta[t, :, None] * B[t] * u[t, :, None]
        ys.append(state @ C[t] + D * u[t])
    return torch.stack(ys)


def mamba_branch(x, params: dict, time_step_rank: int, d_state: int):
    """One direction of a Mamba-1 layer on x (L, E), the in_proj output it scans: conv -> SiLU -> selective SSM."""
    u = F.silu(causal_depthwise_conv(x, params["conv_weight"], params["conv_bias"]))
    dt, B, C = linear(u, params["x_proj"]).split([time_step_rank, d_state, d_state], dim=-1)
    delta = F.softplus(linear(dt, params["dt_weight"], params["dt_bias"]))
    return selective_ssm(u, delta, -torch.exp(params["A_log"]), B, C, params["D"])


def branch_parameters(mixer, suffix: str) -> dict:
    """One direction's own parameters, as float64 copies."""
    get = lambda name: mixer.get_parameter(name).detach().double()  # noqa: E731
    conv_bias = getattr(mixer, f"conv1d{suffix}").bias
    return {
        "conv_weight": get(f"conv1d{suffix}.weight"),
        "conv_bias": None if conv_bias is None else conv_bias.detach().double(),
        "x_proj": get(f"x_proj{suffix}.weight"),
        "dt_weight": get(f"dt_proj{suffix}.weight"),
        "dt_bias": get(f"dt_proj{suffix}.bias"),
        "A_log": get(f"A{suffix}_log"),
        "D": get(f"D{suffix}"),
    }


def reference_mixer(mixer, hidden, backward_params=None):
    """hidden (B, L, H) -> (B, L, H). Forward scan + scan of the reversed sequence (flipped back), each gated by
    SiLU(z), summed, then out_proj. `backward_params` replaces the backward branch's parameters (to show that the
    comparison sees them)."""
    in_w, out_w = mixer.in_proj.weight.detach().double(), mixer.out_proj.weight.detach().double()
    in_b, out_b = (None if m.bias is None else m.bias.detach().double() for m in (mixer.in_proj, mixer.out_proj))
    rank, d_state = mixer.time_step_rank, mixer.state_size
    forward_params = branch_parameters(mixer, "")
    if mixer.bidirectional:
        backward_params = backward_params or branch_parameters(mixer, "_b")
    outputs = []
    for sequence in hidden.double():  # (L, H)
        x, z = linear(sequence, in_w, in_b).chunk(2, dim=-1)  # (L, E) each
        gate = F.silu(z)
        y = mamba_branch(x, forward_params, rank, d_state) * gate
        if mixer.bidirectional:
            y = y + mamba_branch(x.flip(0), backward_params, rank, d_state).flip(0) * gate
        outputs.append(linear(y, out_w, out_b))
    return torch.stack(outputs)


def trained_scale_mixer(seed=0, **settings):
    """A mixer with Mamba's SSM initialisation and weights of a trained model's scale, so every parameter matters."""
    config = StormTemporalConfig(**{"hidden_size": 16, "d_state": 4, **settings})
    torch.manual_seed(seed)
    mixer = StormMambaMixer(config)
    mixer.init_ssm_parameters(config)
    with torch.no_grad():
        for name, parameter in mixer.named_parameters():
            if name.endswith("weight"):
                parameter.normal_(std=0.3)
            elif name.endswith("conv1d.bias") or name.endswith("conv1d_b.bias"):
                parameter.normal_(std=0.1)
            elif name.startswith(("A", "D")):  # A_log, A_b_log, D, D_b: no longer the same in both branches
                parameter.add_(0.2 * torch.randn_like(parameter))
    return mixer


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(
    "path, scan_chunk_size",
    [("whole", 512), ("chunked", 8)],  # 21 steps at once, or in 3 chunks (CPU, no gradients, longer than a chunk)
)
def test_mixer_equals_the_reference_from_the_paper(bidirectional, path, scan_chunk_size):
    mixer = trained_scale_mixer(bidirectional=bidirectional, scan_chunk_size=scan_chunk_size)
    hidden = torch.randn(2, 21, 16)
    expected = reference_mixer(mixer, hidden)
    if path == "whole":
        got = mixer(hidden).detach()  # with gradients: always the whole sequence at once
    else:
        with torch.no_grad():
            got = mixer(hidden)
    torch.testing.assert_close(got.double(), expected, **TOLERANCE)


def test_the_reference_sees_each_backward_parameter():
    """Giving the backward scan any one of the forward branch's parameters moves the output far beyond the tolerance,
    so the comparison above fails for a mixer that mixes the branches' parameters up."""
    mixer = trained_scale_mixer(bidirectional=True)
    hidden = torch.randn(1, 21, 16)
    expected = reference_mixer(mixer, hidden)
    backward, forward = branch_parameters(mixer, "_b"), branch_parameters(mixer, "")
    for name in backward:
        if backward[name] is None:
            continue
        mixed_up = reference_mixer(mixer, hidden, backward_params={**backward, name: forward[name]})
        moved = (mixed_up - expected).abs().max().item()
        assert moved > 100 * TOLERANCE["atol"], f"{name}: {moved:.2e}"

