"""Forward-only Mamba blocks run as a stream: the state a stream carries per layer, and the step that goes on from it.

A unidirectional `StormMambaMixer` run over a sequence a chunk at a time, each chunk starting from the state the
previous one left, gives the output it gives over the whole sequence: the causal convolution needs the previous
chunk's last inputs, the selective scan its last state. `StormMambaCache` holds both for every layer, in the layout
of transformers' Mamba cache: the convolution's last `d_conv` inputs `(batch, inner, d_conv)` in the model's dtype,
and the SSM state `(batch, inner, d_state)` in fp32. `block_step` runs one residual block on the next chunk and
updates its layer's state in place.

On CUDA tensors, with the kernels installed, `causal_conv1d_update` convolves the chunk from the cached inputs and
mamba_ssm's `selective_state_update` advances the SSM state one token at a time (the single-step kernels decoding
uses), unless `mamba_kernel` asks for another implementation. Everywhere else `mamba_scan`'s convolution and scan
run the chunk from the same state, with the implementation `kernel_choice` picks (Triton's scan takes an initial
state on CUDA; pure PyTorch on the CPU).

Hub code: imports torch and siblings in this folder; the kernels lazily, inside guards (`kernel_choice.step_kernel`).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .configuration_storm import StormTemporalConfig
from .kernel_choice import step_kernel
from .mamba_scan import _KERNEL_DTYPES, causal_conv1d


@dataclass
class StormMambaLayerState:
    """One layer's stream state: `conv` (batch, inner, d_conv) the convolution's last inputs (zeros before the
    first), `ssm` (batch, inner, d_state) fp32 the scan's state."""

    conv: torch.Tensor
    ssm: torch.Tensor


class StormMambaCache:
    """The state a forward-only temporal encoder carries from one chunk of a stream to the next, one
    `StormMambaLayerState` per Mamba block (`layers`). Its size does not depend on how much has been streamed."""

    def __init__(self, config: StormTemporalConfig, batch_size: int = 1, dtype=torch.float32, device=None):
        inner = config.intermediate_size
        self.layers = [
            StormMambaLayerState(
                conv=torch.zeros(batch_size, inner, config.d_conv, dtype=dtype, device=device),
                ssm=torch.zeros(batch_size, inner, config.d_state, dtype=torch.float32, device=device),
            )
            for _ in range(config.num_layers)
        ]

    def reset(self) -> None:
        """Back to the state before the first frame."""
        for layer in self.layers:
            layer.conv.zero_()
            layer.ssm.zero_()

    def copy(self) -> "StormMambaCache":
        """An independent copy (to run ahead of the stream without changing it)."""
        copy = StormMambaCache.__new__(StormMambaCache)
        copy.layers = [StormMambaLayerState(layer.conv.clone(), layer.ssm.clone()) for layer in self.layers]
        return copy

    @property
    def nbytes(self) -> int:
        return sum(layer.conv.nbytes + layer.ssm.nbytes for layer in self.layers)


def block_step(block, hidden_states: torch.Tensor, state: StormMambaLayerState) -> torch.Tensor:
    """A `StormMambaBlock` on the next chunk of a stream: (B, n, hidden) -> (B, n, hidden); `state` is updated."""
    return hidden_states + mixer_step(block.mixer, block.norm(hidden_states), state)


def mixer_step(mixer, hidden_states: torch.Tensor, state: StormMambaLayerState) -> torch.Tensor:
    """A unidirectional `StormMambaMixer` on the next chunk of a stream, from `state` (updated in place):
    (B, n, hidden) -> (B, n, hidden). The same operations as the mixer's forward, in the same order."""
    if mixer.bidirectional:
        raise ValueError("A bidirectional Mamba mixer cannot run as a stream: its backward branch needs the future.")
    x, z = mixer.in_proj(hidden_states).chunk(2, dim=-1)  # 2 x (B, n, inner)
    gate = F.silu(z)
    x = _convolve(mixer, x, state)  # (B, n, inner)
    state_update = None
    if x.dtype in _KERNEL_DTYPES:
        state_update = step_kernel("selective_state_update", mixer.mamba_kernel, x)
    if state_update is None:
        y, state.ssm = mixer._scan(x, state.ssm)  # (B, n, inner), (B, inner, N)
    else:
        y = _scan_token_by_token(mixer, x, state, state_update)
    return mixer.out_proj(y * gate)


def _convolve(mixer, x: torch.Tensor, state: StormMambaLayerState) -> torch.Tensor:
    """The causal depthwise convolution (and SiLU) of the chunk x (B, n, inner), from the cached inputs; the cache
    then holds the last `d_conv` inputs."""
    weight, bias = mixer._conv_parameters()  # (inner, d_conv), (inner,) or None
    width = weight.shape[-1]
    channels_first = x.transpose(1, 2)  # (B, inner, n)
    kernel = None
    if x.dtype in _KERNEL_DTYPES and 2 <= width <= 4:  # what causal_conv1d's kernels support
        kernel = step_kernel("causal_conv1d_update", mixer.mamba_kernel, x)
    if kernel is not None:
        bias = None if bias is None else bias.to(weight.dtype)
        out = kernel(channels_first.contiguous(), state.conv, weight, bias, activation="silu")  # (B, inner, n)
        return out.transpose(1, 2)
    window = torch.cat([state.conv, channels_first], dim=-1)  # (B, inner, d_conv + n)
    state.conv.copy_(window[..., -width:])
    # outputs from position d_conv on read only real inputs: the cached ones, then the chunk's
    return causal_conv1d(window, weight, bias, "silu", mixer.mamba_kernel)[..., width:].transpose(1, 2)


def _scan_token_by_token(mixer, x: torch.Tensor, state: StormMambaLayerState, state_update) -> torch.Tensor:
    """mamba_ssm's single-step kernel over the chunk x (B, n, inner), one token at a time; returns y (B, n, inner)."""
    dt, B, C = mixer.x_proj(x).split([mixer.time_step_rank, mixer.state_size, mixer.state_size], dim=-1)
    dt = F.linear(dt, mixer.dt_proj.weight)  # (B, n, inner); its bias is added inside the kernel, in fp32
    A = -torch.exp(mixer.A_log.float())  # (inner, N)
    D, dt_bias = mixer.D.float(), mixer.dt_proj.bias.float()
    y = torch.empty_like(x)
    for t in range(x.shape[1]):
        y[:, t] = state_update(
            state.ssm, x[:, t], dt[:, t], A, B[:, t], C[:, t], D=D, dt_bias=dt_bias, dt_softplus=True
        )
    return y


__all__ = ["StormMambaCache", "StormMambaLayerState", "block_step", "mixer_step"]
