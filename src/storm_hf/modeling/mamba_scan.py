"""Selective-scan (Mamba-1 SSM) and causal depthwise convolution: the reference loops, the pure-PyTorch paths, and
the call that picks an implementation (`kernel_choice`).

* `selective_scan_reference`: a short sequential loop that reads like the equations; used by tests.
* `selective_scan_blocked`: the fast pure-PyTorch path (CPU, or CUDA without the kernels). Time is cut into chunks
  of 16 steps, turned time-major with the state index before the channel index, so every op (broadcasts included)
  runs along the long `dim` axis innermost; each chunk is discretised with a few whole-chunk ops into reused
  buffers, the recurrence is one fused multiply-add per step in place, and the output (with `D` and the `z` gate) is
  one batched matmul and two ops per chunk. The only `(length, dim, d_state)`-sized memory is a few chunks'. Under
  autograd the recurrence is one `autograd.Function` with a hand-written backward (the same in-place loop, run
  backwards), not a graph of one node per step.
* on CUDA, the `mamba_ssm` / `causal_conv1d` kernels or the Triton kernels of `mamba_triton`.

The causal depthwise convolution likewise has a reference (`causal_conv1d_reference`, torch's `conv1d`) and a fast
pure-PyTorch path (`causal_conv1d_shifted`, `width` shifted multiply-adds).

All functions take mamba_ssm's layout: `u`, `delta`, `z` are `(batch, dim, length)`; `A` is `(dim, d_state)`;
`B`, `C` are `(batch, d_state, length)` or, with groups of channels sharing them, `(batch, groups, d_state, length)`
(`dim` divisible by `groups`); `D` and `delta_bias` are `(dim,)`. Math is fp32 whatever the input dtype, also inside
a `torch.autocast` region; the output has `u`'s dtype and the last state is fp32 `(batch, dim, d_state)`. The
pure-PyTorch fast paths (and the Triton kernels) also read `(batch, dim, length)` views of token-major
`(batch, length, dim)` memory (what a Linear layer writes) without transposing them, and return their output in the
same token-major memory order.

The pure-PyTorch and Triton scans also start from a given `initial_state` (the last state of the sequence's previous
part, the same layout), so that a long sequence can be scanned a part at a time. mamba_ssm's kernel takes no initial
state: given one, `selective_scan` runs another implementation.

Hub code: imports torch and siblings in this folder; the optional kernels only lazily, inside guards.
"""

import math

import torch
import torch.nn.functional as F

from .kernel_choice import choose_kernel, cuda_kernel
from .mamba_triton import causal_conv1d_triton, selective_scan_triton

_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_LOG2_E = 1 / math.log(2)


def _grouped(BC: torch.Tensor) -> torch.Tensor:
    """(batch, n, L) or (batch, g, n, L) -> (batch, g, n, L)."""
    return BC.unsqueeze(1) if BC.dim() == 3 else BC


def _check_scan_shapes(u, A, B, C) -> None:
    batch, dim, length = u.shape
    for label, BC in (("B", B), ("C", C)):
        if BC.dim() not in (3, 4) or BC.shape[0] != batch or BC.shape[-2:] != (A.shape[-1], length):
            raise ValueError(
                f"{label} must be (batch, d_state, length) or (batch, groups, d_state, length) = "
                f"({batch}, [groups,] {A.shape[-1]}, {length}), got {tuple(BC.shape)}"
            )
        if dim % _grouped(BC).shape[1]:
            raise ValueError(f"dim {dim} is not divisible by the {_grouped(BC).shape[1]} groups of {label}")


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """F.softplus to fp32 rounding, several times faster on CPU (torch's CPU log1p is not vectorised).

    softplus(x) = max(x, 0) + log1p(y) with y = exp(-|x|) in (0, 1]. With u = fl(1 + y), e = y - (u - 1) is the
    rounding error of 1 + y, computed exactly; log1p(y) = log(u) + log(1 + e/u), and log(1 + e/u) = e to within
    |e| (1 - 1/u) <= 2**-24 y, i.e. 1e-7 relative. y is computed as exp2(-|x| log2(e)): exp2 is several times
    faster than exp on CPU, and rounding the product changes y by |x| 2**-24 relative at most, 2.2e-8 absolute.
    """
    y = torch.abs(x).mul_(-_LOG2_E).exp2_()
    u = y + 1
    return torch.log(u).add_(y - (u - 1)).add_(x.relu())


def _discretised_delta(delta, delta_bias, delta_softplus):
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    return F.softplus(delta) if delta_softplus else delta


def selective_scan_reference(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=False,
    return_last_state=False,
    initial_state=None,
):
    """h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t ;  y_t = C_t h_t + D u_t ;  y *= silu(z). Computed in fp32."""
    _check_scan_shapes(u, A, B, C)
    batch, dim, length = u.shape
    delta = _discretised_delta(delta, delta_bias, delta_softplus)
    B, C = _grouped(B).float(), _grouped(C).float()  # (batch, g, n, L)
    channels_per_group = dim // B.shape[1]
    A = A.float()
    x = u.float()
    state = x.new_zeros(batch, dim, A.shape[-1]) if initial_state is None else initial_state.float()
    ys = []
    for t in range(length):
        dt = delta[:, :, t, None]  # (batch, dim, 1)
        # (batch, g, n) -> (batch, dim, n): every channel sees its group's B and C
        B_t = B[..., t].repeat_interleave(channels_per_group, dim=1)
        C_t = C[..., t].repeat_interleave(channels_per_group, dim=1)
        state = torch.exp(dt * A) * state + dt * B_t * x[:, :, t, None]
        ys.append((state * C_t).sum(-1))
    y = torch.stack(ys, dim=-1)  # (batch, dim, L)
    if D is not None:
        y = y + x * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    y = y.to(u.dtype)
    return (y, state) if return_last_state else y


def _is_token_major(x: torch.Tensor) -> bool:
    """Whether a `(batch, dim, length)` tensor is a view of token-major `(batch, length, dim)` memory."""
    return x.shape[1] > 1 and x.stride(1) == 1


def _time_major(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(batch, dim, n) -> (n, batch, groups, 1, dim // groups), contiguous fp32.

    Time-major, every per-chunk op runs along the long `dim` axis. A view of token-major memory already is (up to
    the batch axis). A channel-major slice is made contiguous first: transposing it straight out of a long (dim, L)
    tensor would read one element per row, a new page each time.
    """
    batch, dim, n = x.shape
    if _is_token_major(x):
        x = x.permute(2, 0, 1).float()  # (n, batch, dim)
    else:
        x = x.float().contiguous().permute(2, 0, 1)  # (n, batch, dim)
    return x.reshape(n, batch, groups, 1, dim // groups).contiguous()


def _recur_(decay: torch.Tensor, states: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """h_t = decay_t * h_{t-1} + states_t along dim 0, in place in `states` (h_{-1} = `state`); returns `states`."""
    steps, decays = states.unbind(0), decay.unbind(0)  # every step's view at once, not three indexing ops per step
    steps[0].addcmul_(decays[0], state)
    for t in range(1, len(steps)):
        steps[t].addcmul_(decays[t], steps[t - 1])
    return states


def _states_in_place(dt, dt_u, A2, B, state, decay_buffer, states_buffer) -> torch.Tensor:
    """A chunk's states h_t, `(n, batch, g, N, dg)`, from h_{-1} = `state`: the decays exp2(dt A log2 e) into
    `decay_buffer`, dt B u into `states_buffer`, which becomes the states in place; returns `states_buffer`.

    dt, dt_u: `(n, batch, g, 1, dg)`; A2 = A log2(e): `(g, N, dg)`; B: `(n, batch, g, N, 1)`. This is the scan's
    d_state-sized work (every other op of a chunk is `(n, dim)`-sized), apart so that it can be timed alone.
    """
    decay = torch.mul(dt, A2, out=decay_buffer).exp2_()
    return _recur_(decay, torch.mul(dt_u, B, out=states_buffer), state)


class _LinearRecurrence(torch.autograd.Function):
    """`_recur_` as one differentiable op (the states overwrite `inputs`). With g_t the gradient reaching h_t, the
    gradient of the loss with respect to h_t is G_t = g_t + decay_{t+1} G_{t+1} (the same recurrence, run
    backwards); then d inputs_t = G_t, d decay_t = G_t h_{t-1} and d state = decay_0 G_0."""

    @staticmethod
    def forward(ctx, decay, inputs, state):
        # `inputs` becomes the states in place: callers pass a temporary (dt B u) that nothing else reads
        ctx.mark_dirty(inputs)
        states = _recur_(decay, inputs, state)
        ctx.save_for_backward(decay, states, state)
        return states

    @staticmethod
    def backward(ctx, grad_states):
        decay, states, state = ctx.saved_tensors
        grad = grad_states.clone()  # becomes G, last step first
        steps, decays = grad.unbind(0), decay.unbind(0)
        for t in range(len(steps) - 2, -1, -1):
            steps[t].addcmul_(decays[t + 1], steps[t + 1])
        grad_decay = torch.empty_like(grad)
        torch.mul(grad[0], state, out=grad_decay[0])
        torch.mul(grad[1:], states[:-1], out=grad_decay[1:])
        return grad_decay, grad, decay[0] * grad[0]


def selective_scan_blocked(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=False,
    return_last_state=False,
    chunk_size=16,
    initial_state=None,
):
    """Same result as `selective_scan_reference`, fast in pure PyTorch; extra memory is a few chunks of states.

    Differentiable: when autograd records, each chunk's recurrence is a `_LinearRecurrence` that keeps the chunk's
    states for the backward pass; otherwise it runs in place in three reused `(chunk, batch, d_state, dim)`-sized
    buffers. Autocast is off inside: its matrix product would otherwise run in bf16 / fp16.
    """
    with torch.autocast(u.device.type, enabled=False):
        return _blocked_scan(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, chunk_size, initial_state
        )


def _blocked_scan(
    u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, chunk_size, initial_state
):  # fmt: skip
    _check_scan_shapes(u, A, B, C)
    batch, dim, length = u.shape
    B, C = _grouped(B), _grouped(C)
    groups, d_state = B.shape[1], B.shape[2]
    dg = dim // groups
    # exp(dt A) = exp2(dt A log2(e)): exp2 is several times faster than exp on CPU, and as accurate here
    # (dim, N) -> (groups, N, dg): channels innermost, like every chunk tensor
    A2 = (A.float() * _LOG2_E).reshape(groups, dg, d_state).transpose(1, 2).contiguous()
    # (dim,) -> (groups, 1, dg), to broadcast against time-major chunks
    bias, D = (None if t is None else t.float().reshape(groups, 1, dg) for t in (delta_bias, D))
    tensors = (u, delta, A, B, C, D, z, bias, initial_state)
    in_place = not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors))
    f32 = dict(dtype=torch.float32, device=u.device)
    chunk = max(1, min(chunk_size, length))
    if in_place:
        decay_buffer = torch.empty(chunk, batch, groups, d_state, dg, **f32)
        # two state buffers taken in turn: a chunk's last state stays readable while the next chunk fills the other
        states_buffers = torch.empty(2, *decay_buffer.shape, **f32)
    if initial_state is None:
        state = torch.zeros(batch, groups, d_state, dg, **f32)
    else:  # (batch, dim, N) -> (batch, g, dg, N) -> (batch, g, N, dg)
        state = initial_state.float().reshape(batch, groups, dg, d_state).transpose(2, 3).contiguous()
    # the output in u's memory order: (batch, dim, L), or a (batch, dim, L) view of token-major (batch, L, dim)
    if _is_token_major(u):
        y = torch.empty(batch, length, dim, dtype=u.dtype, device=u.device).transpose(1, 2)
    else:
        y = torch.empty(batch, dim, length, dtype=u.dtype, device=u.device)
    for index, start in enumerate(range(0, length, chunk)):
        stop = min(start + chunk, length)
        n = stop - start
        dt = _time_major(delta[..., start:stop], groups)  # (n, batch, g, 1, dg)
        if bias is not None:
            dt = dt + bias
        if delta_softplus:
            dt = _softplus(dt)
        x = _time_major(u[..., start:stop], groups)  # (n, batch, g, 1, dg)
        Bc = B[..., start:stop].float().permute(3, 0, 1, 2).unsqueeze(4).contiguous()  # (n, batch, g, N, 1)
        # (batch, g, N, n) -> (n * batch * g, 1, N)
        Cc = C[..., start:stop].float().permute(3, 0, 1, 2).reshape(n * batch * groups, 1, d_state)
        if in_place:
            states = _states_in_place(dt, dt * x, A2, Bc, state, decay_buffer[:n], states_buffers[index % 2, :n])
        else:
            states = _LinearRecurrence.apply(torch.exp2(dt * A2), dt * x * Bc, state)  # (n, batch, g, N, dg)
        state = states[n - 1]
        # y_t = C_t h_t: (n*batch*g, 1, N) @ (n*batch*g, N, dg) -> (n*batch*g, 1, dg) -> (n, batch, g, 1, dg)
        yc = torch.bmm(Cc, states.view(n * batch * groups, d_state, dg))
        yc = yc.view(n, batch, groups, 1, dg)
        if D is not None:
            yc.addcmul_(x, D)
        if z is not None:
            yc.mul_(F.silu(_time_major(z[..., start:stop], groups)))
        y[..., start:stop] = yc.view(n, batch, dim).permute(1, 2, 0)
    if not return_last_state:
        return y
    return y, state.transpose(2, 3).reshape(batch, dim, d_state)  # (batch, g, N, dg) -> (batch, dim, N)


def selective_scan(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=False,
    return_last_state=False,
    initial_state=None,
    kernel="auto",
):
    """Run the selective scan with the implementation `kernel` asks for ("auto", "mamba_ssm", "triton", "torch";
    the environment variable STORM_MAMBA_KERNEL overrides it): see `kernel_choice`."""
    _check_scan_shapes(u, A, B, C)
    if u.dtype not in _KERNEL_DTYPES:
        mamba_ssm_unsupported = f"{u.dtype} inputs"
    elif A.shape[-1] > 256:
        mamba_ssm_unsupported = f"d_state {A.shape[-1]} (at most 256)"
    elif initial_state is not None:
        mamba_ssm_unsupported = "an initial state (its kernel always starts from zeros)"
    else:
        mamba_ssm_unsupported = None
    choice = choose_kernel("selective_scan", kernel, u, {"mamba_ssm": mamba_ssm_unsupported})
    arguments = (u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if choice == "torch":
        return selective_scan_blocked(*arguments, initial_state=initial_state)
    if choice == "triton":
        return selective_scan_triton(*arguments, initial_state=initial_state)
    # The kernel wants u, delta, B, C and z in one input dtype, A, D and delta_bias in fp32 (unit last stride;
    # its wrapper makes u, delta, B, C, z contiguous when they are not).
    return cuda_kernel("selective_scan")[0](
        u,
        delta.to(u.dtype),
        A.float(),
        B.to(u.dtype),
        C.to(u.dtype),
        D=None if D is None else D.float().contiguous(),
        z=None if z is None else z.to(u.dtype),
        delta_bias=None if delta_bias is None else delta_bias.float().contiguous(),
        delta_softplus=delta_softplus,
        return_last_state=return_last_state,
    )


def _check_activation(activation) -> None:
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"activation must be None, 'silu' or 'swish', got {activation!r}")


def causal_conv1d_reference(x, weight, bias=None, activation=None):
    """Depthwise causal convolution: x (batch, dim, L), weight (dim, width), bias (dim,). fp32 math (also under
    autocast), x's dtype out."""
    _check_activation(activation)
    width = weight.shape[-1]
    bias = None if bias is None else bias.float()
    with torch.autocast(x.device.type, enabled=False):
        out = F.conv1d(x.float(), weight.float().unsqueeze(1), bias, padding=width - 1, groups=x.shape[1])
    out = out[..., : x.shape[-1]]
    return (out if activation is None else F.silu(out)).to(x.dtype)


def causal_conv1d_shifted(x, weight, bias=None, activation=None, chunk_size=128):
    """Same result as `causal_conv1d_reference`: `width` shifted multiply-adds in fp32, `chunk_size` steps at a time.

    Several times faster than oneDNN's depthwise `conv1d` on CPU, and without its fp32 copy of the whole input: the
    fp32 temporaries are one chunk's. Every op follows `x`'s memory order, so a `(batch, dim, L)` view of token-major
    memory is read along its rows and the output is token-major too.
    """
    _check_activation(activation)
    width, length = weight.shape[-1], x.shape[-1]
    # (dim, width) -> (width, dim): each tap's weights contiguous (a strided operand is not vectorised, 5x slower)
    taps = weight.float().t().contiguous()
    bias = x.new_zeros(x.shape[1], dtype=torch.float32) if bias is None else bias.float()
    out = torch.empty_like(x)  # x's dtype and memory order
    for start in range(0, length, chunk_size):
        stop = min(start + chunk_size, length)
        n = stop - start
        halo = min(start, width - 1)  # the earlier steps this chunk's first outputs read
        src = x[..., start - halo : stop].float()  # (batch, dim, halo + n): steps start - halo .. stop - 1
        # out_t = bias + sum_k taps[width - 1 - k] x_{t - k}; steps before the clip's start read zero
        acc = torch.addcmul(bias[:, None], src[..., halo:], taps[-1, :, None])  # (batch, dim, n)
        for k in range(1, width):
            first = max(k - halo, 0)  # the first output whose x_{t - k} lies inside the clip
            acc[..., first:].addcmul_(src[..., halo - k + first : halo - k + n], taps[width - 1 - k, :, None])
        if activation is not None:
            acc = F.silu(acc, inplace=not acc.requires_grad)
        out[..., start:stop] = acc
    return out


def causal_conv1d(x, weight, bias=None, activation=None, kernel="auto"):
    """Depthwise causal convolution with the implementation `kernel` asks for (see `selective_scan`): causal_conv1d's
    CUDA kernel (widths 2-4), the Triton kernel, or `causal_conv1d_shifted`."""
    _check_activation(activation)
    if weight.dim() != 2 or weight.shape[0] != x.shape[1]:
        raise ValueError(f"weight must be (dim, width) with dim = {x.shape[1]}, got {tuple(weight.shape)}")
    if x.dtype not in _KERNEL_DTYPES:
        cuda_unsupported = f"{x.dtype} inputs"
    elif not 2 <= weight.shape[-1] <= 4:
        cuda_unsupported = f"width {weight.shape[-1]} (2 to 4)"
    else:
        cuda_unsupported = None
    choice = choose_kernel("causal_conv1d", kernel, x, {"mamba_ssm": cuda_unsupported})
    if choice == "torch":
        return causal_conv1d_shifted(x, weight, bias, activation)
    if choice == "triton":
        return causal_conv1d_triton(x, weight, bias, activation)
    # The kernel reads x with unit stride along L (or along dim, with extra constraints), and bias in weight's dtype.
    return cuda_kernel("causal_conv1d")[0](
        x if x.stride(-1) == 1 else x.contiguous(),
        weight,
        None if bias is None else bias.to(weight.dtype).contiguous(),
        activation=activation,
    )


__all__ = [
    "causal_conv1d",
    "causal_conv1d_reference",
    "causal_conv1d_shifted",
    "selective_scan",
    "selective_scan_blocked",
    "selective_scan_reference",
]
