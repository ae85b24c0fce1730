"""Selective-scan (Mamba-1 SSM) and causal depthwise convolution, with three implementations behind one call.

* `selective_scan_reference`: a short sequential loop that reads like the equations; used by tests.
* `selective_scan_blocked`: the fast pure-PyTorch path (CPU, or CUDA without the kernels). Each chunk of time steps
  is discretised at once, the recurrence runs as one fused multiply-add per step in place, and the output is one
  batched matmul per chunk, so the only state kept is one chunk's.
* the `mamba_ssm` / `causal_conv1d` CUDA kernels, used when they are installed and the tensors live on CUDA.

All functions take mamba_ssm's layout: `u`, `delta`, `z` are `(batch, dim, length)`; `A` is `(dim, d_state)`;
`B`, `C` are `(batch, d_state, length)` or, with groups of channels sharing them, `(batch, groups, d_state, length)`
(`dim` divisible by `groups`); `D` and `delta_bias` are `(dim,)`.

Hub code: imports only torch and, lazily and guarded, the optional kernels.
"""

import importlib
import warnings

import torch
import torch.nn.functional as F

_KERNELS = {}
_WARNED = set()


def _kernel(module: str, name: str):
    """The kernel function `module.name`, or None when the package is not installed (looked up once)."""
    key = f"{module}.{name}"
    if key not in _KERNELS:
        try:
            _KERNELS[key] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            _KERNELS[key] = None
    return _KERNELS[key]


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, stacklevel=3)


def _grouped(BC: torch.Tensor) -> torch.Tensor:
    """(batch, n, L) or (batch, g, n, L) -> (batch, g, n, L)."""
    return BC.unsqueeze(1) if BC.dim() == 3 else BC


def _discretised_delta(delta, delta_bias, delta_softplus):
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    return F.softplus(delta) if delta_softplus else delta


def selective_scan_reference(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False
):
    """h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t ;  y_t = C_t h_t + D u_t ;  y *= silu(z). Computed in fp32."""
    batch, dim, length = u.shape
    delta = _discretised_delta(delta, delta_bias, delta_softplus)
    groups = _grouped(B).shape[1]
    # (batch, g, n, L) -> (batch, dim, n, L): every channel sees its group's B and C
    B = _grouped(B).float().repeat_interleave(dim // groups, dim=1)
    C = _grouped(C).float().repeat_interleave(dim // groups, dim=1)
    A = A.float()
    x = u.float()
    state = x.new_zeros(batch, dim, A.shape[-1])
    ys = []
    for t in range(length):
        dt = delta[:, :, t, None]  # (batch, dim, 1)
        state = torch.exp(dt * A) * state + dt * B[..., t] * x[:, :, t, None]
        ys.append((state * C[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1)  # (batch, dim, L)
    if D is not None:
        y = y + x * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    y = y.to(u.dtype)
    return (y, state) if return_last_state else y


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
    chunk_size=64,
):
    """Same result as `selective_scan_reference`, fast in pure PyTorch; memory is one chunk of states."""
    batch, dim, length = u.shape
    B, C = _grouped(B), _grouped(C)
    groups, d_state = B.shape[1], B.shape[2]
    dg = dim // groups
    A = A.float().view(groups, dg, d_state)
    dt_all = _discretised_delta(delta, delta_bias, delta_softplus)  # (batch, dim, L) fp32
    y = torch.empty(batch, length, dim, dtype=torch.float32, device=u.device)
    state = torch.zeros(batch, groups, dg, d_state, dtype=torch.float32, device=u.device)
    for start in range(0, length, chunk_size):
        stop = min(start + chunk_size, length)
        dt = dt_all[:, :, start:stop].transpose(1, 2).reshape(batch, stop - start, groups, dg)  # (b, l, g, dg)
        x = u[:, :, start:stop].transpose(1, 2).reshape(batch, stop - start, groups, dg).float()
        Bc = B[..., start:stop].permute(0, 3, 1, 2).float()  # (b, l, g, n)
        Cc = C[..., start:stop].permute(0, 3, 1, 2).float()
        dA = torch.exp(dt.unsqueeze(-1) * A)  # (b, l, g, dg, n)
        states = (dt * x).unsqueeze(-1) * Bc.unsqueeze(3)  # (b, l, g, dg, n): dt*B*u, becomes h in place
        states[:, 0].addcmul_(dA[:, 0], state)
        for t in range(1, stop - start):
            states[:, t].addcmul_(dA[:, t], states[:, t - 1])
        state = states[:, -1]
        # (b, l, g, dg, n) @ (b, l, g, n, 1) -> (b, l, g, dg)
        y[:, start:stop] = torch.matmul(states, Cc.unsqueeze(-1)).reshape(batch, stop - start, dim)
    y = y.transpose(1, 2)  # (batch, dim, L)
    if D is not None:
        y = y + u.float() * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    y = y.to(u.dtype)
    return (y, state.reshape(batch, dim, d_state)) if return_last_state else y


def _use_kernel(tensor: torch.Tensor, module: str, name: str):
    if not tensor.is_cuda:
        return None
    kernel = _kernel(module, name)
    if kernel is None:
        _warn_once(
            module,
            f"`{module}` is not installed: the Mamba scan runs in pure PyTorch on CUDA, which is slower. "
            "Install the kernels with `pip install storm-hf[cuda]` (needs a CUDA toolkit).",
        )
    return kernel


def selective_scan(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False
):
    """Run the selective scan with the best implementation for where the tensors live."""
    kernel = _use_kernel(u, "mamba_ssm.ops.selective_scan_interface", "selective_scan_fn")
    if kernel is not None:
        return kernel(
            u.contiguous(),
            delta.contiguous(),
            A.float().contiguous(),
            B.contiguous(),
            C.contiguous(),
            D=None if D is None else D.float(),
            z=None if z is None else z.contiguous(),
            delta_bias=None if delta_bias is None else delta_bias.float(),
            delta_softplus=delta_softplus,
            return_last_state=return_last_state,
        )
    return selective_scan_blocked(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def causal_conv1d_reference(x, weight, bias=None, activation=None):
    """Depthwise causal convolution: x (batch, dim, L), weight (dim, width), bias (dim,)."""
    width = weight.shape[-1]
    out = F.conv1d(x, weight.unsqueeze(1), bias, padding=width - 1, groups=x.shape[1])[..., : x.shape[-1]]
    return F.silu(out) if activation == "silu" else out


def causal_conv1d(x, weight, bias=None, activation=None):
    kernel = _use_kernel(x, "causal_conv1d", "causal_conv1d_fn")
    if kernel is not None:
        return kernel(x.contiguous(), weight.contiguous(), bias, activation=activation)
    return causal_conv1d_reference(x, weight, bias, activation)


__all__ = [
    "causal_conv1d",
    "causal_conv1d_reference",
    "selective_scan",
    "selective_scan_blocked",
    "selective_scan_reference",
]
