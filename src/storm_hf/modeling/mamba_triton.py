"""The Mamba layer's selective scan and causal convolution as Triton kernels, with their backward passes.

They run on CUDA tensors with nothing to compile ahead (Triton ships with torch on Linux and compiles at the first
call), and on CPU tensors in Triton's interpreter (`TRITON_INTERPRET=1`, set before the first call), which is how
the tests check them. Same arguments and results as `mamba_scan.selective_scan_reference` /
`causal_conv1d_reference`, plus what mamba_ssm's kernels lack: the scan starts from an `initial_state` and returns
its last state, and the convolution starts from the last `width - 1` inputs before the clip and returns the clip's,
so that a long sequence can be processed a part at a time with the same result. Inputs may be fp32, fp16 or bf16;
all maths is fp32, and outputs take the input's dtype and memory layout (a `(batch, channels, length)` view of
token-major memory is read and written in place, without copies).

The scan's backward pass keeps the state at the start of every chunk of `chunk_size` steps (fp32,
`batch x dim x d_state` per chunk) and recomputes each chunk's states from it.

Hub code: imports torch. Each launch imports its kernel from `mamba_triton_kernels` (`from .x import`, so that
transformers copies that module with the Hub code), which imports Triton inside a guard: at the first call, so
that `TRITON_INTERPRET` set before it applies.
"""

import importlib
import os

import torch

# Steps per scan chunk (the same for both passes), channels and warps per program, for each pass; the
# convolution's tiles. Picked by the register report of Triton's compiler for sm_90 (no spills, at most ~110
# registers) and not yet timed on a GPU; any power-of-two values give the same result.
SCAN_CONFIG = {"chunk_size": 64, "block_dim": 8, "num_warps": 4, "block_dim_backward": 8, "num_warps_backward": 8}
CONV_CONFIG = {
    "block_length": 64,
    "block_dim": 32,
    "num_warps": 4,
    "block_length_backward": 32,
    "block_dim_backward": 32,
    "num_warps_backward": 4,
}

_SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def unavailable_reason(tensor: torch.Tensor) -> str | None:
    """Why the Triton kernels cannot run on `tensor` (None if they can)."""
    if not tensor.is_cuda and not interpreting():
        where = tensor.device.type
        return f"the tensors are on {where}; the Triton kernels run on CUDA (or on CPU under TRITON_INTERPRET=1)"
    if tensor.dtype not in _SUPPORTED_DTYPES:
        return f"{tensor.dtype} is not supported (fp32, fp16 and bf16 are)"
    try:
        importlib.import_module("triton")
    except Exception as error:  # not installed, or broken
        return f"Triton cannot be imported ({type(error).__name__}: {error})"
    return None


def _power_of_two_at_least(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _largest_power_of_two_dividing(n: int, at_most: int) -> int:
    block = 1
    while block * 2 <= at_most and n % (block * 2) == 0:
        block *= 2
    return block


def _empty_like_layout(reference: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A `(batch, channels, length)` tensor in `reference`'s memory order: token-major if it is a view of
    token-major memory, else contiguous."""
    batch, channels, length = reference.shape
    if channels > 1 and reference.stride(1) == 1:
        return torch.empty(batch, length, channels, dtype=dtype, device=reference.device).transpose(1, 2)
    return torch.empty(batch, channels, length, dtype=dtype, device=reference.device)


def _strides(tensor: torch.Tensor | None, rank: int) -> tuple[int, ...]:
    return tensor.stride() if tensor is not None else (0,) * rank


def _scan_blocks(dim: int, groups: int, d_state: int, block_dim: int) -> tuple[int, int]:
    """(channels per program, padded d_state): a power of two dividing the channels of a group."""
    return _largest_power_of_two_dividing(dim // groups, block_dim), _power_of_two_at_least(d_state)


def _scan_forward(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus, save_chunk_states, config):
    batch, dim, length = u.shape
    groups, d_state = B.shape[1], A.shape[1]
    chunk = config["chunk_size"]
    block_d, block_n = _scan_blocks(dim, groups, d_state, config["block_dim"])
    out = _empty_like_layout(u, u.dtype)
    last = torch.empty(batch, dim, d_state, dtype=torch.float32, device=u.device)
    chunks = -(-length // chunk)
    chunk_states = (
        torch.empty(batch, chunks, dim, d_state, dtype=torch.float32, device=u.device) if save_chunk_states else last
    )
    from .mamba_triton_kernels import selective_scan_fwd_kernel  # decorated at the first call (TRITON_INTERPRET)

    selective_scan_fwd_kernel[(dim // block_d, batch)](
        u, delta, A, B, C, D if D is not None else A, z if z is not None else u,
        delta_bias if delta_bias is not None else A, initial_state if initial_state is not None else last,
        out, last, chunk_states,
        length, dim, dim // groups,
        *u.stride(), *delta.stride(), *_strides(z, 3), *out.stride(), *B.stride(), *C.stride(),
        D_STATE=d_state, HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=delta_softplus,
        HAS_INITIAL=initial_state is not None, SAVE_CHUNK_STATES=save_chunk_states,
        BLOCK_L=chunk, BLOCK_D=block_d, BLOCK_N=block_n, num_warps=config["num_warps"],
    )  # fmt: skip
    return out, last, chunk_states


def _scan_backward(saved, dout, dlast, delta_softplus, config):
    u, delta, A, B, C, D, z, delta_bias, chunk_states = saved
    batch, dim, length = u.shape
    groups, d_state = B.shape[1], A.shape[1]
    block_d, block_n = _scan_blocks(dim, groups, d_state, config["block_dim_backward"])
    f32 = dict(dtype=torch.float32, device=u.device)
    du, ddelta = _empty_like_layout(u, u.dtype), _empty_like_layout(delta, delta.dtype)
    dz = _empty_like_layout(z, z.dtype) if z is not None else None
    dB, dC = torch.zeros(batch, groups, d_state, length, **f32), torch.zeros(batch, groups, d_state, length, **f32)
    dA, dinitial = torch.empty(batch, dim, d_state, **f32), torch.empty(batch, dim, d_state, **f32)
    dD, dbias = torch.empty(batch, dim, **f32), torch.empty(batch, dim, **f32)
    if dlast is not None:  # read as contiguous (batch, dim, d_state); autograd may pass an expanded tensor
        dlast = dlast.float().contiguous()
    from .mamba_triton_kernels import selective_scan_bwd_kernel

    selective_scan_bwd_kernel[(dim // block_d, batch)](
        u, delta, A, B, C, D if D is not None else A, z if z is not None else u,
        delta_bias if delta_bias is not None else A, chunk_states, dout, dlast if dlast is not None else dA,
        du, ddelta, dz if dz is not None else du, dB, dC, dA, dD, dbias, dinitial,
        length, dim, dim // groups, groups,
        *u.stride(), *delta.stride(), *_strides(z, 3), *dout.stride(), *B.stride(), *C.stride(),
        *du.stride(), *ddelta.stride(), *_strides(dz, 3),
        D_STATE=d_state, HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=delta_softplus,
        HAS_DLAST=dlast is not None,
        BLOCK_L=config["chunk_size"], BLOCK_D=block_d, BLOCK_N=block_n, num_warps=config["num_warps_backward"],
    )  # fmt: skip
    return du, ddelta, dA.sum(0), dB, dC, dD.sum(0), dz, dbias.sum(0), dinitial


class _SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus, config):
        save = any(ctx.needs_input_grad)
        out, last, chunk_states = _scan_forward(
            u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus, save, config
        )
        if save:
            ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, chunk_states)
            ctx.delta_softplus, ctx.config = delta_softplus, config
        return out, last

    @staticmethod
    def backward(ctx, dout, dlast):
        du, ddelta, dA, dB, dC, dD, dz, dbias, dinitial = _scan_backward(
            ctx.saved_tensors, dout, dlast, ctx.delta_softplus, ctx.config
        )
        needs = ctx.needs_input_grad
        B, C = ctx.saved_tensors[3], ctx.saved_tensors[4]
        grads = [du, ddelta, dA, dB.to(B.dtype), dC.to(C.dtype), dD, dz, dbias, dinitial]
        return (*[grad if need else None for grad, need in zip(grads, needs)], None, None)


def selective_scan_triton(
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
    config=None,
):
    """`selective_scan_reference`'s contract, run by the Triton kernels; differentiable in every tensor argument.

    `config` overrides `SCAN_CONFIG` entries (tests use small chunks to cross chunk boundaries on short sequences).
    """
    config = {**SCAN_CONFIG, **(config or {})}
    if B.dim() == 3:  # (batch, d_state, L) -> (batch, 1, d_state, L): one group
        B, C = B.unsqueeze(1), C.unsqueeze(1)
    out, last = _SelectiveScan.apply(
        u,
        delta,
        A.float().contiguous(),
        B,
        C,
        None if D is None else D.float().contiguous(),
        z,
        None if delta_bias is None else delta_bias.float().contiguous(),
        None if initial_state is None else initial_state.float().contiguous(),
        delta_softplus,
        config,
    )
    return (out, last) if return_last_state else out


def _conv_config(width: int, config: dict | None) -> dict:
    config = {**CONV_CONFIG, **(config or {})}
    # the first tile along time also writes the gradient of the carried inputs: it must span them
    config["block_length_backward"] = max(config["block_length_backward"], _power_of_two_at_least(width))
    return config


class _CausalConv1d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, initial_state, silu, config):
        batch, dim, length = x.shape
        width = weight.shape[-1]
        out = _empty_like_layout(x, x.dtype)
        grid = (-(-length // config["block_length"]), -(-dim // config["block_dim"]), batch)
        from .mamba_triton_kernels import causal_conv1d_fwd_kernel

        causal_conv1d_fwd_kernel[grid](
            x, weight, bias if bias is not None else weight, initial_state if initial_state is not None else x, out,
            length, dim, *x.stride(), *_strides(initial_state, 3), *out.stride(),
            WIDTH=width, HAS_BIAS=bias is not None, HAS_INITIAL=initial_state is not None, SILU=silu,
            BLOCK_L=config["block_length"], BLOCK_D=config["block_dim"], num_warps=config["num_warps"],
        )  # fmt: skip
        ctx.save_for_backward(x, weight, bias, initial_state)
        ctx.silu, ctx.config = silu, config
        return out

    @staticmethod
    def backward(ctx, dout):
        x, weight, bias, initial_state = ctx.saved_tensors
        config = ctx.config
        batch, dim, length = x.shape
        width = weight.shape[-1]
        f32 = dict(dtype=torch.float32, device=x.device)
        dx = _empty_like_layout(x, x.dtype)
        dweight, dbias = torch.zeros(dim, width, **f32), torch.zeros(dim, **f32)
        dinitial = torch.empty(batch, dim, width - 1, **f32) if initial_state is not None else None
        block_l, block_d = config["block_length_backward"], config["block_dim_backward"]
        grid = (-(-length // block_l), -(-dim // block_d), batch)
        from .mamba_triton_kernels import causal_conv1d_bwd_kernel

        causal_conv1d_bwd_kernel[grid](
            x, weight, bias if bias is not None else weight, initial_state if initial_state is not None else x,
            dout, dx, dweight, dbias, dinitial if dinitial is not None else dbias,
            length, dim, *x.stride(), *_strides(initial_state, 3), *dout.stride(), *dx.stride(),
            WIDTH=width, HAS_BIAS=bias is not None, HAS_INITIAL=initial_state is not None, SILU=ctx.silu,
            BLOCK_L=block_l, BLOCK_D=block_d, num_warps=config["num_warps_backward"],
        )  # fmt: skip
        return (
            dx,
            dweight.to(weight.dtype),
            None if bias is None else dbias.to(bias.dtype),
            None if initial_state is None else dinitial.to(initial_state.dtype),
            None,
            None,
        )


def causal_conv1d_triton(x, weight, bias=None, activation=None, initial_state=None, return_final_state=False,
                         config=None):  # fmt: skip
    """`causal_conv1d_reference`'s contract, run by the Triton kernels; differentiable in x, weight, bias and
    initial_state.

    `initial_state`: the `width - 1` inputs before the clip, `(batch, dim, width - 1)`, oldest first (zeros when
    None). With `return_final_state`, also returns the clip's last `width - 1` inputs in that layout, to pass as the
    next part's `initial_state`.
    """
    width = weight.shape[-1]
    out = _CausalConv1d.apply(
        x, weight.contiguous(), None if bias is None else bias.contiguous(),
        None if initial_state is None else initial_state.contiguous(),
        activation is not None, _conv_config(width, config),
    )  # fmt: skip
    if not return_final_state:
        return out
    carried, length = width - 1, x.shape[-1]
    if length >= carried:  # the clip's last width - 1 inputs
        return out, x[..., length - carried :].contiguous()
    if initial_state is None:
        initial_state = x.new_zeros(x.shape[0], x.shape[1], carried)
    return out, torch.cat([initial_state[..., length:].to(x.dtype), x], dim=-1)
