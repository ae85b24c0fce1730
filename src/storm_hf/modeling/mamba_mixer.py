"""Bidirectional Mamba-1 mixer and the residual block of STORM's temporal encoder.

The forward branch uses mamba_ssm's parameter names (`in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj`), so
its weights interchange with mamba_ssm and with transformers' `MambaMixer`. The backward branch scans the reversed
sequence with its own `conv1d_b, x_proj_b, dt_proj_b, A_b_log, D_b`; `in_proj` and `out_proj` are shared and the
two branch outputs are summed. Both branches run as one scan: their channels are stacked and each branch is a group
with its own B and C.

Hub code: imports torch, transformers' public API and siblings in this folder.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.integrations.accelerate import force_accelerate_hooks
from transformers.modeling_layers import GradientCheckpointingLayer

from .configuration_storm import StormTemporalConfig
from .mamba_scan import causal_conv1d, selective_scan


class StormMambaMixer(nn.Module):
    def __init__(self, config: StormTemporalConfig):
        super().__init__()
        hidden, inner = config.hidden_size, config.intermediate_size
        self.inner_size = inner
        self.state_size = config.d_state
        self.time_step_rank = config.time_step_rank
        self.bidirectional = config.bidirectional
        self.scan_chunk_size = config.scan_chunk_size
        self.mamba_kernel = config.mamba_kernel  # what runs the scan and the convolution (kernel_choice.py)
        self.in_proj = nn.Linear(hidden, 2 * inner, bias=config.use_bias)
        self.out_proj = nn.Linear(inner, hidden, bias=config.use_bias)
        for suffix in self._branch_suffixes():
            self.add_module(
                f"conv1d{suffix}",
                nn.Conv1d(
                    inner,
                    inner,
                    kernel_size=config.d_conv,
                    groups=inner,
                    padding=config.d_conv - 1,
                    bias=config.use_conv_bias,
                ),
            )
            self.add_module(f"x_proj{suffix}", nn.Linear(inner, self.time_step_rank + 2 * self.state_size, bias=False))
            self.add_module(f"dt_proj{suffix}", nn.Linear(self.time_step_rank, inner, bias=True))
            self.register_parameter(f"A{suffix}_log", nn.Parameter(torch.empty(inner, self.state_size)))
            self.register_parameter(f"D{suffix}", nn.Parameter(torch.empty(inner)))
        if not self.bidirectional:  # no backward branch: `forward`'s offload hooks skip what is None
            self.conv1d_b = self.dt_proj_b = None

    def _branch_suffixes(self) -> tuple[str, ...]:
        return ("", "_b") if self.bidirectional else ("",)

    def _branch_modules(self, name: str) -> list[nn.Module]:
        """One submodule of every branch, forward branch first; `name` has a `{}` where the suffix goes."""
        return [self.get_submodule(name.format(suffix)) for suffix in self._branch_suffixes()]

    def _stacked(self, name: str) -> list[torch.Tensor]:
        """One parameter of every branch, forward branch first; `name` has a `{}` where the suffix goes."""
        return [self.get_parameter(name.format(suffix)) for suffix in self._branch_suffixes()]

    @torch.no_grad()
    def init_ssm_parameters(self, config: StormTemporalConfig) -> None:
        """Mamba's initialisation: S4D-real A, D = 1, and dt_proj so that softplus(dt) spans [dt_min, dt_max]."""
        for suffix in self._branch_suffixes():
            A_log, D = self.get_parameter(f"A{suffix}_log"), self.get_parameter(f"D{suffix}")
            dt_proj, conv = self.get_submodule(f"dt_proj{suffix}"), self.get_submodule(f"conv1d{suffix}")
            A = torch.arange(1, self.state_size + 1, dtype=torch.float32, device=A_log.device)
            init.copy_(A_log, torch.log(A).expand(self.inner_size, -1))
            init.ones_(D)
            std = self.time_step_rank**-0.5
            init.uniform_(dt_proj.weight, -std, std)
            log_min, log_max = math.log(config.time_step_min), math.log(config.time_step_max)
            dt = torch.exp(torch.rand(self.inner_size, device=dt_proj.bias.device) * (log_max - log_min) + log_min)
            dt = dt.clamp(min=config.time_step_floor)
            init.copy_(dt_proj.bias, dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus
            init.kaiming_uniform_(conv.weight, a=math.sqrt(5))
            if conv.bias is not None:
                init.zeros_(conv.bias)

    # The convolutions' and dt_proj's weights are read directly, not by calling the modules: their accelerate hooks
    # (CPU / disk offload, device maps) must be fired here to bring the weights in.
    @force_accelerate_hooks(["conv1d", "dt_proj", "conv1d_b", "dt_proj_b"])
    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, L, hidden) -> (B, L, hidden).

        Activations stay token-major, `(B, L, channels)` as the Linear layers write them; the convolution and the
        scan take `(B, channels, L)` views of that memory, which their pure-PyTorch paths read without transposing.
        Without gradients on the CPU, a sequence longer than `scan_chunk_size` runs a chunk at a time
        (`_forward_chunked`); the result is the same.
        """
        length = hidden_states.shape[1]
        if torch.is_grad_enabled() or hidden_states.is_cuda or length <= self.scan_chunk_size:
            return self._forward_whole(hidden_states)
        return self._forward_chunked(hidden_states)

    def _forward_whole(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Every step over the whole sequence at once (mamba_ssm's kernel takes no initial state to go on from)."""
        x, z = self.in_proj(hidden_states).chunk(2, dim=-1)  # 2 x (B, L, inner)
        gate = F.silu(z)  # (B, L, inner), taken now so that in_proj's output is freed once x is consumed
        del z
        if self.bidirectional:
            x = torch.cat([x, x.flip(1)], dim=-1)  # (B, L, 2*inner): the sequence's channels, then the reversed one's
        conv_weight, conv_bias = self._conv_parameters()
        x = causal_conv1d(x.transpose(1, 2), conv_weight, conv_bias, "silu", self.mamba_kernel).transpose(1, 2)
        y, _ = self._scan(x)  # (B, L, G*inner)
        del x
        if self.bidirectional:
            # the backward branch flipped back to forward time, plus the forward branch
            y = y[..., self.inner_size :].flip(1).add_(y[..., : self.inner_size])  # (B, L, inner)
        # the gate is elementwise, so it applies once to the branches' sum: (y_f + flip(y_b)) * silu(z) equals
        # y_f * silu(z) + flip(y_b * silu(flip(z)))
        return self.out_proj(y * gate)

    def _forward_chunked(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`scan_chunk_size` tokens at a time: in_proj, then the forward branch over the sequence's chunks in order
        side by side with the backward branch over the reversed sequence's, each carrying its convolution's last
        inputs and its scan state from one chunk to the next.

        Held for the whole sequence: in_proj's x, the gate silu(z) and the branches' sum, `(B, L, inner)` each; the
        stacked, convolved and projected activations exist for one chunk only. Fresh memory for every
        sequence-sized intermediate is what the whole-sequence pass spends much of its CPU time on (first touches
        of newly mapped pages).
        """
        batch, length, _ = hidden_states.shape
        chunk, inner, halo = self.scan_chunk_size, self.inner_size, self.conv1d.kernel_size[0] - 1
        x = gate = None
        for start in range(0, length, chunk):
            part, z = self.in_proj(hidden_states[:, start : start + chunk]).chunk(2, dim=-1)  # 2 x (B, n, inner)
            if x is None:
                x, gate = part.new_empty(batch, length, inner), part.new_empty(batch, length, inner)
            x[:, start : start + chunk] = part
            gate[:, start : start + chunk] = F.silu(z)
        conv_weight, conv_bias = self._conv_parameters()
        groups = len(self._branch_suffixes())
        # rows 0..halo-1: the previous chunk's last convolution inputs; then this chunk's, both branches stacked
        stacked = x.new_empty(batch, halo + chunk, groups * inner)
        y = torch.empty_like(x)  # forward + backward branch outputs
        state = None
        for start in range(0, length, chunk):
            stop = min(start + chunk, length)
            n = stop - start
            if start:
                stacked[:, :halo] = stacked[:, chunk : chunk + halo]
            stacked[:, halo : halo + n, :inner] = x[:, start:stop]
            if self.bidirectional:  # the reversed sequence's steps start..stop-1
                stacked[:, halo : halo + n, inner:] = x[:, length - stop : length - start].flip(1)
            first = 0 if start else halo  # before the sequence's first step the convolution reads zeros
            conv_input = stacked[:, first : halo + n].transpose(1, 2)  # (B, G*inner, halo + n - first)
            x_conv = causal_conv1d(conv_input, conv_weight, conv_bias, "silu", self.mamba_kernel).transpose(1, 2)
            ys, state = self._scan(x_conv[:, halo - first :], state)  # (B, n, G*inner)
            # forward branch: steps start..stop-1; the backward branch has written steps length-start.. so far
            written = range(length - start, length) if self.bidirectional else range(0)
            _write_or_add(y, start, stop, ys[..., :inner], written)
            if self.bidirectional:  # backward branch, flipped to forward time; the forward one has written ..stop-1
                _write_or_add(y, length - stop, length - start, ys[..., inner:].flip(1), range(stop))
        return self.out_proj(y.mul_(gate))

    def _conv_parameters(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The branches' depthwise convolutions stacked: weight (G*inner, d_conv) and bias (G*inner,) or None."""
        weight = torch.cat([w.squeeze(1) for w in self._stacked("conv1d{}.weight")])
        bias = torch.cat(self._stacked("conv1d{}.bias")) if self.conv1d.bias is not None else None
        return weight, bias

    def _scan(self, x: torch.Tensor, initial_state: torch.Tensor | None = None):
        """Both branches' selective scan over the convolved, stacked x (B, n, G*inner), from `initial_state`.
        Returns y (B, n, G*inner) and the last state (B, G*inner, d_state)."""
        deltas, Bs, Cs = [], [], []
        # x_proj runs as a module (a PEFT adapter on it applies); dt_proj's weight alone, as in mamba_ssm: its bias
        # is added in fp32 inside the scan, so dt_proj takes no adapter (training.stages refuses one)
        projections = zip(self._branch_modules("x_proj{}"), self._stacked("dt_proj{}.weight"))
        for branch_x, (x_proj, dt_proj) in zip(x.split(self.inner_size, dim=-1), projections):  # (B, n, inner) each
            dt, B, C = x_proj(branch_x).split([self.time_step_rank, self.state_size, self.state_size], dim=-1)
            deltas.append(F.linear(dt, dt_proj))  # (B, n, inner)
            Bs.append(B)
            Cs.append(C)
        delta = torch.cat(deltas, dim=-1) if self.bidirectional else deltas[0]  # (B, n, G*inner)
        # (B, n, N) per branch -> (B, G, N, n): each branch is a group with its own B and C
        B, C = (torch.stack(BC, dim=1).transpose(2, 3) for BC in (Bs, Cs))
        y, state = selective_scan(
            x.transpose(1, 2),
            delta.transpose(1, 2),
            -torch.exp(torch.cat(self._stacked("A{}_log")).float()),
            B,
            C,
            D=torch.cat(self._stacked("D{}")),
            delta_bias=torch.cat(self._stacked("dt_proj{}.bias")),
            delta_softplus=True,
            return_last_state=True,
            initial_state=initial_state,
            kernel=self.mamba_kernel,
        )
        return y.transpose(1, 2), state


def _write_or_add(out, start, stop, values, written: range) -> None:
    """out[:, start:stop] = values, adding instead at the steps in `written` (where the other branch already wrote)."""
    lo, hi = max(start, written.start), min(stop, written.stop)
    if lo >= hi:
        out[:, start:stop] = values
        return
    out[:, start:lo] = values[:, : lo - start]
    out[:, lo:hi] += values[:, lo - start : hi - start]
    out[:, hi:stop] = values[:, hi - start :]


class StormMambaBlock(GradientCheckpointingLayer):
    """X = X + Mixer(LayerNorm(X)) over the whole clip flattened to one sequence."""

    def __init__(self, config: StormTemporalConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mixer = StormMambaMixer(config)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states + self.mixer(self.norm(hidden_states))
