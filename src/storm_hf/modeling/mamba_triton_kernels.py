"""Triton kernels of the Mamba layer: the selective scan (forward, backward) and the causal depthwise convolution
(forward, backward). `mamba_triton` wraps them in autograd Functions and is the only module that imports this one,
lazily: `@triton.jit` decides at decoration time whether a kernel runs compiled or in Triton's interpreter
(`TRITON_INTERPRET=1`), so this module is imported at the first call, not with the model.

Layouts are given by strides, so the kernels read `(batch, channels, length)` views of token-major
`(batch, length, channels)` memory (what the mixer's Linear layers write) without copies. Every value is loaded as
fp32 and all maths is fp32; stores convert to the output's dtype.

Selective scan. One program owns `BLOCK_D` channels of one batch row, all of whose channels share one group's B and
C, and walks the sequence in chunks of `BLOCK_L` steps, carrying the `(BLOCK_D, d_state)` state from chunk to chunk.
Inside a chunk, for each state index in turn, the recurrence h_t = a_t h_{t-1} + b_t (a = exp(dt A), b = dt B u)
is an associative scan along time over a `(BLOCK_L, BLOCK_D)` tile, the carried state folded into the first step's
b; y accumulates C h over the state indices. Steps past the end have dt = 0, so a = 1 and b = 0: the state passes
through them unchanged. The backward pass walks the chunks last to first from the chunk-start states the forward
pass saved, recomputes each chunk's states, and runs the gradient recurrence G_t = g_t + a_{t+1} G_{t+1} as a
reverse scan.

Hub code: imports torch and, inside a guard, Triton.
"""

try:
    import triton
    import triton.language as tl
except ImportError as error:  # mamba_triton checks that Triton imports before it imports this module
    raise ImportError(f"The Triton kernels of the Mamba layer need Triton ({error}).") from error

_LOG2_E = tl.constexpr(1.4426950408889634)


@triton.jit
def _linear_recurrence(a_left, h_left, a_right, h_right):
    """Combines two runs of h_t = a_t h_{t-1} + b_t: the later run applied after the earlier one."""
    return a_left * a_right, h_left * a_right + h_right


@triton.jit
def _softplus(x):
    """log(1 + exp(x)) in fp32 without overflow: max(x, 0) + log1p(exp(-|x|)), log1p(y) = log(1 + y) corrected by
    the rounding error of 1 + y (computed exactly), as fp32 accurate as log1p itself."""
    y = tl.exp(-tl.abs(x))
    one_plus_y = 1.0 + y
    return tl.maximum(x, 0.0) + tl.log(one_plus_y) + (y - (one_plus_y - 1.0))


@triton.jit
def _time_step(delta_ptr, bias, offsets, mask, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """dt = softplus(delta + bias) (or without softplus / bias), and the value softplus was applied to; 0 where
    `mask` is off."""
    raw = tl.load(delta_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        raw += bias[None, :]
    dt = _softplus(raw) if SOFTPLUS else raw
    return tl.where(mask, dt, 0.0), raw


@triton.jit
def _column(x, cols, n):
    """Column `n` of a `(BLOCK_D, BLOCK_N)` tile, `(BLOCK_D,)`."""
    return tl.sum(tl.where(cols[None, :] == n, x, 0.0), axis=1)


@triton.jit
def _placed(values, cols, n):
    """A `(BLOCK_D, BLOCK_N)` tile holding `values` in column `n` and zeros elsewhere."""
    return tl.where(cols[None, :] == n, values[:, None], 0.0)


@triton.jit
def _row(x, rows, row):
    """Row `row` of a `(BLOCK_L, BLOCK_D)` tile, `(BLOCK_D,)`."""
    return tl.sum(tl.where(rows[:, None] == row, x, 0.0), axis=0)


@triton.jit
def _states(a, bx, start, rows):
    """h_t = a_t h_{t-1} + bx_t along a chunk, `(BLOCK_L, BLOCK_D)`, for one state index, from h = `start` before
    the chunk's first step."""
    bx = tl.where(rows[:, None] == 0, bx + a * start[None, :], bx)
    _, states = tl.associative_scan((a, bx), 0, _linear_recurrence)
    return states


@triton.jit
def _per_step(ptr, batch, t, t_ok, d, s_b, s_l, s_d):
    """A `(BLOCK_L, BLOCK_D)` tile of a `(batch, channels, length)` tensor, fp32, 0 past the end."""
    return tl.load(ptr + batch * s_b + t * s_l + d[None, :] * s_d, mask=t_ok, other=0.0).to(tl.float32)


@triton.jit
def selective_scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, initial_ptr,
    out_ptr, last_ptr, chunk_states_ptr,
    length, dim, channels_per_group,
    su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, so_b, so_d, so_l,
    sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l,
    D_STATE: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
    SOFTPLUS: tl.constexpr, HAS_INITIAL: tl.constexpr, SAVE_CHUNK_STATES: tl.constexpr,
    BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Scans one batch row's `BLOCK_D` channels (`BLOCK_N` >= D_STATE, a power of two, for the state tile)."""
    batch = tl.program_id(1).to(tl.int64)
    first = tl.program_id(0) * BLOCK_D
    d = first + tl.arange(0, BLOCK_D)  # channels; BLOCK_D divides the channels per group
    group = first // channels_per_group
    cols = tl.arange(0, BLOCK_N)
    channel_state = d[:, None] * D_STATE + cols[None, :]  # into (dim, D_STATE)
    state_offsets = batch * dim * D_STATE + channel_state  # into (batch, dim, D_STATE)
    state_mask = (cols < D_STATE)[None, :]
    if HAS_INITIAL:
        state = tl.load(initial_ptr + state_offsets, mask=state_mask, other=0.0)
    else:
        state = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    D = tl.load(D_ptr + d) if HAS_D else None
    bias = tl.load(bias_ptr + d) if HAS_BIAS else None
    B_base = B_ptr + batch * sB_b + group * sB_g
    C_base = C_ptr + batch * sC_b + group * sC_g
    rows = tl.arange(0, BLOCK_L)
    chunks = tl.cdiv(length, BLOCK_L)
    for chunk in range(chunks):
        if SAVE_CHUNK_STATES:  # (batch, chunks, dim, D_STATE): the state before each chunk
            chunk_offsets = (batch * chunks + chunk) * dim * D_STATE + channel_state
            tl.store(chunk_states_ptr + chunk_offsets, state, mask=state_mask)
        t = chunk * BLOCK_L + rows[:, None]  # (BLOCK_L, 1)
        t_ok = t < length
        u = _per_step(u_ptr, batch, t, t_ok, d, su_b, su_l, su_d)
        dt, _ = _time_step(delta_ptr, bias, batch * sdt_b + t * sdt_l + d[None, :] * sdt_d, t_ok, HAS_BIAS, SOFTPLUS)
        dt_u = dt * u
        y = tl.zeros((BLOCK_L, BLOCK_D), dtype=tl.float32)
        next_state = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        for n in range(D_STATE):
            A2 = tl.load(A_ptr + d * D_STATE + n) * _LOG2_E  # exp(dt A) = exp2(dt A log2(e))
            B = tl.load(B_base + t * sB_l + n * sB_n, mask=t_ok, other=0.0).to(tl.float32)  # (BLOCK_L, 1)
            C = tl.load(C_base + t * sC_l + n * sC_n, mask=t_ok, other=0.0).to(tl.float32)
            states = _states(tl.exp2(dt * A2[None, :]), dt_u * B, _column(state, cols, n), rows)
            y += states * C
            next_state += _placed(_row(states, rows, BLOCK_L - 1), cols, n)  # steps past the end keep it
        state = next_state
        if HAS_D:
            y += u * D[None, :]
        if HAS_Z:
            z = _per_step(z_ptr, batch, t, t_ok, d, sz_b, sz_l, sz_d)
            y *= z * tl.sigmoid(z)
        tl.store(out_ptr + batch * so_b + t * so_l + d[None, :] * so_d, y, mask=t_ok)
    tl.store(last_ptr + state_offsets, state, mask=state_mask)


@triton.jit
def selective_scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, chunk_states_ptr, dout_ptr, dlast_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr, dbias_ptr, dinitial_ptr,
    length, dim, channels_per_group, groups,
    su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sg_b, sg_d, sg_l,
    sB_b, sB_g, sB_n, sB_l, sC_b, sC_g, sC_n, sC_l,
    sdu_b, sdu_d, sdu_l, sddt_b, sddt_d, sddt_l, sdz_b, sdz_d, sdz_l,
    D_STATE: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
    SOFTPLUS: tl.constexpr, HAS_DLAST: tl.constexpr,
    BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Gradients of one program's channels. dA, dD, d(bias) are per batch row (summed by the caller); dB and dC,
    sums over a group's channels, are added atomically into fp32 `(batch, groups, D_STATE, length)` buffers; the
    gradient of the initial state is always written."""
    batch = tl.program_id(1).to(tl.int64)
    first = tl.program_id(0) * BLOCK_D
    d = first + tl.arange(0, BLOCK_D)
    group = first // channels_per_group
    cols = tl.arange(0, BLOCK_N)
    channel_state = d[:, None] * D_STATE + cols[None, :]
    state_offsets = batch * dim * D_STATE + channel_state
    state_mask = (cols < D_STATE)[None, :]
    # dL/dh at the current chunk's last step, from everything after it
    if HAS_DLAST:
        carry = tl.load(dlast_ptr + state_offsets, mask=state_mask, other=0.0)
    else:
        carry = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dA = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dD = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dbias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    D = tl.load(D_ptr + d) if HAS_D else None
    bias = tl.load(bias_ptr + d) if HAS_BIAS else None
    B_base = B_ptr + batch * sB_b + group * sB_g
    C_base = C_ptr + batch * sC_b + group * sC_g
    dBC_base = (batch * groups + group) * D_STATE * length  # into (batch, groups, D_STATE, length)
    rows = tl.arange(0, BLOCK_L)
    chunks = tl.cdiv(length, BLOCK_L)
    for step in range(chunks):
        chunk = chunks - 1 - step
        chunk_offsets = (batch * chunks + chunk) * dim * D_STATE + channel_state
        start = tl.load(chunk_states_ptr + chunk_offsets, mask=state_mask, other=0.0)  # the state before the chunk
        t = chunk * BLOCK_L + rows[:, None]
        t_ok = t < length
        u = _per_step(u_ptr, batch, t, t_ok, d, su_b, su_l, su_d)
        dt_offsets = batch * sdt_b + t * sdt_l + d[None, :] * sdt_d
        dt, raw = _time_step(delta_ptr, bias, dt_offsets, t_ok, HAS_BIAS, SOFTPLUS)
        # dt_{t+1}: a_{t+1} carries dL/dh_{t+1} back to step t (a = 1 past the end)
        dt_next, _ = _time_step(delta_ptr, bias, dt_offsets + sdt_l, t + 1 < length, HAS_BIAS, SOFTPLUS)
        dt_u = dt * u
        dy = _per_step(dout_ptr, batch, t, t_ok, d, sg_b, sg_l, sg_d)  # dL/dy before the gate
        if HAS_Z:  # the gate's gradient needs y: a first pass over the state indices
            y = tl.zeros((BLOCK_L, BLOCK_D), dtype=tl.float32)
            for n in range(D_STATE):
                A2 = tl.load(A_ptr + d * D_STATE + n) * _LOG2_E
                B = tl.load(B_base + t * sB_l + n * sB_n, mask=t_ok, other=0.0).to(tl.float32)
                C = tl.load(C_base + t * sC_l + n * sC_n, mask=t_ok, other=0.0).to(tl.float32)
                y += _states(tl.exp2(dt * A2[None, :]), dt_u * B, _column(start, cols, n), rows) * C
            if HAS_D:
                y += u * D[None, :]
            z = _per_step(z_ptr, batch, t, t_ok, d, sz_b, sz_l, sz_d)
            gate = tl.sigmoid(z)
            dz = dy * y * gate * (1.0 + z * (1.0 - gate))  # silu'(z) = s (1 + z (1 - s))
            tl.store(dz_ptr + batch * sdz_b + t * sdz_l + d[None, :] * sdz_d, dz, mask=t_ok)
            dy = dy * z * gate
        ddt = tl.zeros((BLOCK_L, BLOCK_D), dtype=tl.float32)
        du = tl.zeros((BLOCK_L, BLOCK_D), dtype=tl.float32)
        next_carry = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
        for n in range(D_STATE):
            A = tl.load(A_ptr + d * D_STATE + n)
            A2 = A * _LOG2_E
            B = tl.load(B_base + t * sB_l + n * sB_n, mask=t_ok, other=0.0).to(tl.float32)
            C = tl.load(C_base + t * sC_l + n * sC_n, mask=t_ok, other=0.0).to(tl.float32)
            a = tl.exp2(dt * A2[None, :])
            bx = dt_u * B
            states = _states(a, bx, _column(start, cols, n), rows)
            g = dy * C  # dL/dh_t through y_t
            g = tl.where(rows[:, None] == BLOCK_L - 1, g + _column(carry, cols, n)[None, :], g)
            # G_t = g_t + a_{t+1} G_{t+1}: dL/dh_t
            _, G = tl.associative_scan((tl.exp2(dt_next * A2[None, :]), g), 0, _linear_recurrence, reverse=True)
            next_carry += _placed(_row(a * G, rows, 0), cols, n)  # dL/dh before the chunk
            G = tl.where(t_ok, G, 0.0)
            # a_t h_{t-1} = h_t - bx_t, and d a_t / d dt_t = A a_t: d(dt_t A) receives G_t a_t h_{t-1}
            G_decay = G * (states - bx)
            dA += _placed(tl.sum(G_decay * dt, axis=0), cols, n)
            GB = G * B
            ddt += GB * u + G_decay * A[None, :]
            du += GB * dt
            dBC_index = dBC_base + n * length + t
            tl.atomic_add(dB_ptr + dBC_index, tl.sum(G * dt_u, axis=1)[:, None], mask=t_ok)
            tl.atomic_add(dC_ptr + dBC_index, tl.sum(states * dy, axis=1)[:, None], mask=t_ok)
        carry = next_carry
        if HAS_D:
            du += dy * D[None, :]
            dD += tl.sum(dy * u, axis=0)
        if SOFTPLUS:
            ddt = ddt * tl.sigmoid(raw)
        ddt = tl.where(t_ok, ddt, 0.0)
        if HAS_BIAS:
            dbias += tl.sum(ddt, axis=0)
        tl.store(du_ptr + batch * sdu_b + t * sdu_l + d[None, :] * sdu_d, du, mask=t_ok)
        tl.store(ddelta_ptr + batch * sddt_b + t * sddt_l + d[None, :] * sddt_d, ddt, mask=t_ok)
    tl.store(dinitial_ptr + state_offsets, carry, mask=state_mask)
    tl.store(dA_ptr + state_offsets, dA, mask=state_mask)
    if HAS_D:
        tl.store(dD_ptr + batch * dim + d, dD)
    if HAS_BIAS:
        tl.store(dbias_ptr + batch * dim + d, dbias)


@triton.jit
def _conv_input(x_ptr, initial_ptr, batch, s, d, d_ok, length, sx_b, sx_d, sx_l, si_b, si_d, si_l,
                WIDTH: tl.constexpr, HAS_INITIAL: tl.constexpr):  # fmt: skip
    """x at steps `s` (`(rows, 1)`) and channels `d` (`(BLOCK_D,)`, valid where `d_ok`), fp32: the carried inputs
    before step 0, zeros elsewhere outside the clip."""
    channel = d[None, :]
    valid = d_ok[None, :]
    x = tl.load(x_ptr + batch * sx_b + s * sx_l + channel * sx_d, mask=(s >= 0) & (s < length) & valid, other=0.0)
    x = x.to(tl.float32)
    if HAS_INITIAL:  # initial[:, :, WIDTH - 1 + s] holds x at step s < 0
        carried = (s < 0) & (s >= 1 - WIDTH) & valid
        x += tl.load(initial_ptr + batch * si_b + (s + WIDTH - 1) * si_l + channel * si_d, mask=carried, other=0.0)
    return x


@triton.jit
def _conv_pre_activation(x_ptr, w_ptr, bias_ptr, initial_ptr, batch, s, d, d_ok, length,
                         sx_b, sx_d, sx_l, si_b, si_d, si_l, WIDTH: tl.constexpr, HAS_BIAS: tl.constexpr,
                         HAS_INITIAL: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    """bias + sum_k w_k x_{s - (WIDTH - 1) + k} at steps `s` (`(BLOCK_L, 1)`), fp32 `(BLOCK_L, BLOCK_D)`."""
    acc = tl.zeros((BLOCK_L, BLOCK_D), dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + d, mask=d_ok, other=0.0).to(tl.float32)[None, :]
    for k in tl.static_range(WIDTH):
        w = tl.load(w_ptr + d * WIDTH + k, mask=d_ok, other=0.0).to(tl.float32)
        x = _conv_input(x_ptr, initial_ptr, batch, s - (WIDTH - 1) + k, d, d_ok, length, sx_b, sx_d, sx_l,
                        si_b, si_d, si_l, WIDTH, HAS_INITIAL)  # fmt: skip
        acc += x * w[None, :]
    return acc


@triton.jit
def causal_conv1d_fwd_kernel(
    x_ptr, w_ptr, bias_ptr, initial_ptr, out_ptr,
    length, dim, sx_b, sx_d, sx_l, si_b, si_d, si_l, so_b, so_d, so_l,
    WIDTH: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_INITIAL: tl.constexpr, SILU: tl.constexpr,
    BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    batch = tl.program_id(2).to(tl.int64)
    t = (tl.program_id(0) * BLOCK_L + tl.arange(0, BLOCK_L))[:, None]
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    d_ok = d < dim
    pre = _conv_pre_activation(x_ptr, w_ptr, bias_ptr, initial_ptr, batch, t, d, d_ok, length, sx_b, sx_d, sx_l,
                               si_b, si_d, si_l, WIDTH, HAS_BIAS, HAS_INITIAL, BLOCK_L, BLOCK_D)  # fmt: skip
    out = pre * tl.sigmoid(pre) if SILU else pre
    tl.store(out_ptr + batch * so_b + t * so_l + d[None, :] * so_d, out, mask=(t < length) & d_ok[None, :])


@triton.jit
def causal_conv1d_bwd_kernel(
    x_ptr, w_ptr, bias_ptr, initial_ptr, dout_ptr, dx_ptr, dw_ptr, dbias_ptr, dinitial_ptr,
    length, dim, sx_b, sx_d, sx_l, si_b, si_d, si_l, sg_b, sg_d, sg_l, sdx_b, sdx_d, sdx_l,
    WIDTH: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_INITIAL: tl.constexpr, SILU: tl.constexpr,
    BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """dx for this tile's steps; dw and d(bias) added atomically into fp32 buffers; the gradient of the carried
    inputs (fp32 `(batch, dim, WIDTH - 1)`) written by the first tile along time (BLOCK_L >= WIDTH)."""
    batch = tl.program_id(2).to(tl.int64)
    rows = tl.arange(0, BLOCK_L)[:, None]
    t = tl.program_id(0) * BLOCK_L + rows
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    d_ok = d < dim
    dx = tl.zeros((BLOCK_L, BLOCK_D), dtype=tl.float32)
    dpre_here = tl.zeros((BLOCK_L, BLOCK_D), dtype=tl.float32)
    for j in tl.static_range(WIDTH):  # the output at step t + j reads x_t through tap WIDTH - 1 - j
        s = t + j
        s_ok = (s < length) & d_ok[None, :]
        dpre = tl.load(dout_ptr + batch * sg_b + s * sg_l + d[None, :] * sg_d, mask=s_ok, other=0.0).to(tl.float32)
        if SILU:
            pre = _conv_pre_activation(x_ptr, w_ptr, bias_ptr, initial_ptr, batch, s, d, d_ok, length,
                                       sx_b, sx_d, sx_l, si_b, si_d, si_l,
                                       WIDTH, HAS_BIAS, HAS_INITIAL, BLOCK_L, BLOCK_D)  # fmt: skip
            gate = tl.sigmoid(pre)
            dpre = dpre * gate * (1.0 + pre * (1.0 - gate))
        w = tl.load(w_ptr + d * WIDTH + (WIDTH - 1 - j), mask=d_ok, other=0.0).to(tl.float32)
        dx += dpre * w[None, :]
        if j == 0:
            dpre_here = dpre
    tl.store(dx_ptr + batch * sdx_b + t * sdx_l + d[None, :] * sdx_d, dx, mask=(t < length) & d_ok[None, :])
    for k in tl.static_range(WIDTH):
        x = _conv_input(x_ptr, initial_ptr, batch, t - (WIDTH - 1) + k, d, d_ok, length, sx_b, sx_d, sx_l,
                        si_b, si_d, si_l, WIDTH, HAS_INITIAL)  # fmt: skip
        tl.atomic_add(dw_ptr + d * WIDTH + k, tl.sum(dpre_here * x, axis=0), mask=d_ok)
    if HAS_BIAS:
        tl.atomic_add(dbias_ptr + d, tl.sum(dpre_here, axis=0), mask=d_ok)
    if HAS_INITIAL:
        if tl.program_id(0) == 0:
            # carried input i sits at step i - (WIDTH - 1); the output at step t reads it through tap i - t
            for i in tl.static_range(WIDTH - 1):
                taps = tl.zeros((BLOCK_L, BLOCK_D), dtype=tl.float32)
                for k in tl.static_range(i + 1):
                    w = tl.load(w_ptr + d * WIDTH + k, mask=d_ok, other=0.0).to(tl.float32)
                    taps += tl.where(rows == i - k, w[None, :], 0.0)
                offsets = batch * dim * (WIDTH - 1) + d * (WIDTH - 1) + i
                tl.store(dinitial_ptr + offsets, tl.sum(dpre_here * taps, axis=0), mask=d_ok)
