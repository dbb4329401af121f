"""Backward of the Inception stem: the three 1x1 convs that read ``x`` and the max-pool -> 1x1 conv branch.

Forward (per pixel p, channels c): out1 = relu(x W1 + b1), t2 = relu(x W2a + b2a), t3 = relu(x W3a + b3a),
out4 = relu(maxpool3x3(x) W4 + b4). Gradients, with g1 = grad_out1 * (out1 > 0), g4 = grad_out4 * (out4 > 0) and
grad_t2 / grad_t3 already pre-activation gradients:

- grad_x = [g1 | grad_t2 | grad_t3] @ [W1; W2a; W3a] + maxpool3x3_backward(g4 @ W4)
- gW1 | gW2a | gW3a = x^T [g1 | grad_t2 | grad_t3], gW4 = maxpool3x3(x)^T g4, biases = column sums.

The three gradient blocks and weights are read from their own pointers and strides (no concatenation); the pool is
recomputed while loading, never stored. The max-pool backward is a gather that reproduces PyTorch's argmax rule.
ReLU masks zero a gradient where the saved output is ``<= 0``, as PyTorch's ReLU backward does.
"""
import torch
import triton
import triton.language as tl

from .common import dot_precision, require_launchable
from .conv2d_backward import launch_input_grad, partial_buffer, pixel_splits, reduce_partials
from .launch import (
    BACKWARD_CONFIG_DEFAULTS, INTERPRET_CONFIG, INTERPRET_WGRAD_CONFIG, acc_dtype, autotuned_partials, check_4d,
    check_tensor, gemm_configs, launch, partial_dtype, pixel_channel_grid,
)
from .tiles import (
    chunk_row, cp_ptrs, dgrad_channels, maxpool3x3_pc, pc_ptrs, pixel_coords, relu_grad_cp, store_partial,
)


@triton.jit
def _dgrad_segment(acc, g_ptr, s_g_n, s_g_c, s_g_h, s_g_w, o_ptr, s_o_n, s_o_c, s_o_h, s_o_w,
                   w_ptr, s_w_o, s_w_i, C, img, oh, ow, m_ok, offs_n, n_ok,
                   MASKED: tl.constexpr, PREC: tl.constexpr, BLOCK_K: tl.constexpr):
    # acc[BM pixels, BN in-channels] += (g * (o > 0 if MASKED))[BM, C] @ w[C, BN] (w read as (C, Cin, 1, 1)).
    g_row = img * s_g_n + oh * s_g_h + ow * s_g_w
    o_row = img * s_o_n + oh * s_o_h + ow * s_o_w
    return dgrad_channels(acc, g_ptr, g_row, s_g_c, o_ptr, o_row, s_o_c, w_ptr, s_w_o, s_w_i, C, m_ok, offs_n, n_ok,
                          MASKED, PREC, BLOCK_K)


@triton.jit
def _or_if(acc, d, COND: tl.constexpr):
    if COND:
        acc = acc | d
    return acc


@triton.jit
def _add_window(acc, dpool_ptr, beaten, img, ch, cw, H, W, C_IN, m_ok, offs_n, n_ok):
    # acc += dpool[window centre (ch, cw)] where that window is in the image and its argmax is this pixel.
    c_ok = m_ok & (ch >= 0) & (ch < H) & (cw >= 0) & (cw < W)
    mine = c_ok[:, None] & n_ok[None, :] & (beaten == 0)
    c_pix = (img * H + ch) * W + cw
    d = tl.load(dpool_ptr + c_pix[:, None] * C_IN + offs_n[None, :], mask=mine, other=0.0)
    return acc + d.to(acc.dtype)


@triton.jit
def _stem_dgrad_kernel(
    x_ptr, g1_ptr, o1_ptr, g2_ptr, g3_ptr, w1_ptr, w2_ptr, w3_ptr, dpool_ptr, gx_ptr,
    P, H, W, C_IN, C1, C2, C3,
    s_x_n, s_x_c, s_x_h, s_x_w,
    s_g1_n, s_g1_c, s_g1_h, s_g1_w,
    s_o1_n, s_o1_c, s_o1_h, s_o1_w,
    s_g2_n, s_g2_c, s_g2_h, s_g2_w,
    s_g3_n, s_g3_c, s_g3_h, s_g3_w,
    s_w1_o, s_w1_i, s_w2_o, s_w2_i, s_w3_o, s_w3_i,
    s_gx_n, s_gx_c, s_gx_h, s_gx_w,
    PREC: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # Tile: BLOCK_M pixels x BLOCK_N input channels of grad_x; K = C1 + C2 + C3 in three segments.
    # dpool_ptr: [P, C_IN] contiguous (g4 @ W4 per pixel), or None when there is no pool branch.
    pid_m = tl.program_id(0).to(tl.int64)
    pid_n = tl.program_id(1).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)  # [BM] pixel
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)  # [BN] input channel
    m_ok = offs_m < P
    n_ok = offs_n < C_IN
    img, oh, ow = pixel_coords(offs_m, H, W)

    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC_DTYPE)
    acc = _dgrad_segment(acc, g1_ptr, s_g1_n, s_g1_c, s_g1_h, s_g1_w, o1_ptr, s_o1_n, s_o1_c, s_o1_h, s_o1_w,
                         w1_ptr, s_w1_o, s_w1_i, C1, img, oh, ow, m_ok, offs_n, n_ok, True, PREC, BLOCK_K)
    acc = _dgrad_segment(acc, g2_ptr, s_g2_n, s_g2_c, s_g2_h, s_g2_w, g2_ptr, s_g2_n, s_g2_c, s_g2_h, s_g2_w,
                         w2_ptr, s_w2_o, s_w2_i, C2, img, oh, ow, m_ok, offs_n, n_ok, False, PREC, BLOCK_K)
    acc = _dgrad_segment(acc, g3_ptr, s_g3_n, s_g3_c, s_g3_h, s_g3_w, g3_ptr, s_g3_n, s_g3_c, s_g3_h, s_g3_w,
                         w3_ptr, s_w3_o, s_w3_i, C3, img, oh, ow, m_ok, offs_n, n_ok, False, PREC, BLOCK_K)

    if dpool_ptr is not None:
        # Max-pool backward as a gather: pixel q receives dpool[c] from every window centre c (|c - q| <= 1, in the
        # image) whose argmax is q. PyTorch's kernels scan the in-image part of a window row-major from its first
        # position and take a value when `v > max || isnan(v)`: the argmax is the last NaN if there is one, else the
        # first maximum. So q is a window's argmax unless some in-window p "defeats" it: a NaN after q; or, for a
        # non-NaN q, any NaN, a p before q with p >= q, or a p after q with p > q. Row-major order does not depend
        # on the window, so each of the 24 neighbours in q's 5x5 neighbourhood is loaded once and its defeat ORed
        # into the (up to 9) windows that contain it: 25 loads instead of 81.
        xq = tl.load(pc_ptrs(x_ptr, img, oh, ow, offs_n, s_x_n, s_x_c, s_x_h, s_x_w),
                     mask=m_ok[:, None] & n_ok[None, :], other=0.0)
        q_num = xq == xq  # q is not NaN
        # beaten_AB: the window centred at q + (A - 1, B - 1) has an argmax other than q
        beaten_00 = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int1)
        beaten_01 = beaten_00
        beaten_02 = beaten_00
        beaten_10 = beaten_00
        beaten_11 = beaten_00
        beaten_12 = beaten_00
        beaten_20 = beaten_00
        beaten_21 = beaten_00
        beaten_22 = beaten_00
        for a in tl.static_range(5):
            for b in tl.static_range(5):
                if (a != 2) | (b != 2):
                    ih = oh + (a - 2)
                    iw = ow + (b - 2)
                    ok = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
                    v = tl.load(pc_ptrs(x_ptr, img, ih, iw, offs_n, s_x_n, s_x_c, s_x_h, s_x_w),
                                mask=ok[:, None] & n_ok[None, :], other=0.0)
                    v_nan = v != v
                    if (a < 2) | ((a == 2) & (b < 2)):  # p before q in the scan
                        d = q_num & (v_nan | (v >= xq))
                    else:
                        d = v_nan | (q_num & (v > xq))
                    d = d & ok[:, None]
                    # p = q + (a - 2, b - 2) lies in the window centred at q + (A - 1, B - 1) iff A <= a <= A + 2
                    # and B <= b <= B + 2
                    beaten_00 = _or_if(beaten_00, d, (a <= 2) & (b <= 2))
                    beaten_01 = _or_if(beaten_01, d, (a <= 2) & (b >= 1) & (b <= 3))
                    beaten_02 = _or_if(beaten_02, d, (a <= 2) & (b >= 2))
                    beaten_10 = _or_if(beaten_10, d, (a >= 1) & (a <= 3) & (b <= 2))
                    beaten_11 = _or_if(beaten_11, d, (a >= 1) & (a <= 3) & (b >= 1) & (b <= 3))
                    beaten_12 = _or_if(beaten_12, d, (a >= 1) & (a <= 3) & (b >= 2))
                    beaten_20 = _or_if(beaten_20, d, (a >= 2) & (b <= 2))
                    beaten_21 = _or_if(beaten_21, d, (a >= 2) & (b >= 1) & (b <= 3))
                    beaten_22 = _or_if(beaten_22, d, (a >= 2) & (b >= 2))
        acc = _add_window(acc, dpool_ptr, beaten_00, img, oh - 1, ow - 1, H, W, C_IN, m_ok, offs_n, n_ok)
        acc = _add_window(acc, dpool_ptr, beaten_01, img, oh - 1, ow, H, W, C_IN, m_ok, offs_n, n_ok)
        acc = _add_window(acc, dpool_ptr, beaten_02, img, oh - 1, ow + 1, H, W, C_IN, m_ok, offs_n, n_ok)
        acc = _add_window(acc, dpool_ptr, beaten_10, img, oh, ow - 1, H, W, C_IN, m_ok, offs_n, n_ok)
        acc = _add_window(acc, dpool_ptr, beaten_11, img, oh, ow, H, W, C_IN, m_ok, offs_n, n_ok)
        acc = _add_window(acc, dpool_ptr, beaten_12, img, oh, ow + 1, H, W, C_IN, m_ok, offs_n, n_ok)
        acc = _add_window(acc, dpool_ptr, beaten_20, img, oh + 1, ow - 1, H, W, C_IN, m_ok, offs_n, n_ok)
        acc = _add_window(acc, dpool_ptr, beaten_21, img, oh + 1, ow, H, W, C_IN, m_ok, offs_n, n_ok)
        acc = _add_window(acc, dpool_ptr, beaten_22, img, oh + 1, ow + 1, H, W, C_IN, m_ok, offs_n, n_ok)

    tl.store(pc_ptrs(gx_ptr, img, oh, ow, offs_n, s_gx_n, s_gx_c, s_gx_h, s_gx_w), acc.to(gx_ptr.dtype.element_ty),
             mask=m_ok[:, None] & n_ok[None, :])


@triton.jit
def _stem_wgrad_kernel(
    x_ptr, g1_ptr, o1_ptr, g2_ptr, g3_ptr, g4_ptr, o4_ptr, part_ptr,
    P, H, W, C_IN, C1, C12, C123, C4, PIX_PER_SPLIT, R_W, R,
    s_x_n, s_x_c, s_x_h, s_x_w,
    s_g1_n, s_g1_c, s_g1_h, s_g1_w,
    s_o1_n, s_o1_c, s_o1_h, s_o1_w,
    s_g2_n, s_g2_c, s_g2_h, s_g2_w,
    s_g3_n, s_g3_c, s_g3_h, s_g3_w,
    s_g4_n, s_g4_c, s_g4_h, s_g4_w,
    s_o4_n, s_o4_c, s_o4_h, s_o4_w,
    HAS_W123: tl.constexpr, HAS_B123: tl.constexpr, HAS_W4: tl.constexpr, HAS_B4: tl.constexpr,
    USE123: tl.constexpr, ATOMIC: tl.constexpr, PREC: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # Grid: (split, row blocks of [g1 | g2 | g3] (none unless USE123) then row blocks of g4, Cin blocks).
    # Tile: BLOCK_M gradient channels (partial rows) x BLOCK_N input channels, reduced over one pixel chunk.
    # part: [S, R], R = R_W ([C123 + C4, C_IN] weight partials) + C123 + C4 (bias partials).
    split = tl.program_id(0).to(tl.int64)
    pid_m = tl.program_id(1).to(tl.int64)
    pid_n = tl.program_id(2).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)  # [BN] input channel
    n_ok = offs_n < C_IN
    p_start = split * PIX_PER_SPLIT
    p_end = tl.minimum(p_start + PIX_PER_SPLIT, P)
    row_ptr = chunk_row(part_ptr, split, R, ATOMIC)

    NB123 = 0
    if USE123:
        NB123 = tl.cdiv(C123, BLOCK_M)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC_DTYPE)
    bacc = tl.zeros([BLOCK_M], dtype=ACC_DTYPE)
    if pid_m < NB123:
        offs_j = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)  # [BM] row of [g1 | g2 | g3]
        j_ok = offs_j < C123
        r1 = offs_j < C1
        r2 = (offs_j >= C1) & (offs_j < C12)
        r3 = (offs_j >= C12) & j_ok
        for p0 in range(p_start, p_end, BLOCK_K):
            offs_k = p0 + tl.arange(0, BLOCK_K).to(tl.int64)  # [BK] pixel
            k_ok = offs_k < p_end
            img, oh, ow = pixel_coords(offs_k, H, W)
            # A = [g1 | g2 | g3]^T tile [BM, BK]: each row block read from its own tensor, the others masked off.
            g1 = relu_grad_cp(g1_ptr, o1_ptr, offs_j, img, oh, ow, s_g1_n, s_g1_c, s_g1_h, s_g1_w,
                              s_o1_n, s_o1_c, s_o1_h, s_o1_w, r1[:, None] & k_ok[None, :])
            g2 = tl.load(cp_ptrs(g2_ptr, offs_j - C1, img, oh, ow, s_g2_n, s_g2_c, s_g2_h, s_g2_w),
                         mask=r2[:, None] & k_ok[None, :], other=0.0)
            g3 = tl.load(cp_ptrs(g3_ptr, offs_j - C12, img, oh, ow, s_g3_n, s_g3_c, s_g3_h, s_g3_w),
                         mask=r3[:, None] & k_ok[None, :], other=0.0)
            a = tl.where(r1[:, None], g1, tl.where(r2[:, None], g2, g3))
            if HAS_B123:
                bacc += tl.sum(a.to(ACC_DTYPE), axis=1)
            if HAS_W123:
                b = tl.load(pc_ptrs(x_ptr, img, oh, ow, offs_n, s_x_n, s_x_c, s_x_h, s_x_w),
                            mask=k_ok[:, None] & n_ok[None, :], other=0.0)  # [BK, BN]
                acc = tl.dot(a, b, acc, input_precision=PREC, out_dtype=acc.dtype)
        store_partial(row_ptr, offs_j, offs_j, j_ok, offs_n, n_ok, acc, bacc, pid_n == 0, C_IN, R_W, HAS_W123, HAS_B123,
                      ATOMIC)
    else:
        offs_c = (pid_m - NB123) * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)  # [BM] channel of g4
        c_ok = offs_c < C4
        for p0 in range(p_start, p_end, BLOCK_K):
            offs_k = p0 + tl.arange(0, BLOCK_K).to(tl.int64)  # [BK] pixel
            k_ok = offs_k < p_end
            img, oh, ow = pixel_coords(offs_k, H, W)
            a = relu_grad_cp(g4_ptr, o4_ptr, offs_c, img, oh, ow, s_g4_n, s_g4_c, s_g4_h, s_g4_w,
                             s_o4_n, s_o4_c, s_o4_h, s_o4_w, c_ok[:, None] & k_ok[None, :])  # [BM, BK]
            if HAS_B4:
                bacc += tl.sum(a.to(ACC_DTYPE), axis=1)
            if HAS_W4:
                # maxpool3x3(x) tile [BK, BN], recomputed
                pooled = maxpool3x3_pc(x_ptr, img, oh, ow, k_ok, offs_n, n_ok, H, W, s_x_n, s_x_c, s_x_h, s_x_w,
                                       BLOCK_K, BLOCK_N)
                acc = tl.dot(a, pooled, acc, input_precision=PREC, out_dtype=acc.dtype)
        store_partial(row_ptr, C123 + offs_c, C123 + offs_c, c_ok, offs_n, n_ok, acc, bacc, pid_n == 0, C_IN, R_W,
                      HAS_W4, HAS_B4, ATOMIC)


# The pool-backward epilogue keeps about a dozen [BLOCK_M, BLOCK_N] masks live: tiles of at most 16 elements per
# thread keep it out of register spills (a 128x64 tile on 4 warps took ptxas about 90 s, 64x32 about 8 s).
STEM_DGRAD_SHAPES = [
    (64, 32, 32, 4, 3), (32, 64, 32, 4, 3), (64, 64, 32, 8, 3), (128, 32, 32, 8, 3), (32, 32, 32, 4, 4),
]
_stem_dgrad_tuned = triton.autotune(configs=gemm_configs(STEM_DGRAD_SHAPES), key=["P", "C_IN", "C1", "C2", "C3"])(
    _stem_dgrad_kernel)
# The pool rows recompute their B tile from nine shifted loads, each multi-buffered: shared memory is about
# (9 * BLOCK_K * BLOCK_N + BLOCK_M * BLOCK_K) * bytes * stages, so these tiles stay small and shallow to fit
# the 227 KB of an H100/H200 in fp32 (the last two fit in fp64 too).
STEM_WGRAD_SHAPES = [
    (64, 64, 32, 4, 1), (128, 32, 32, 4, 2), (32, 64, 32, 4, 2), (64, 32, 64, 4, 1), (64, 32, 32, 4, 1),
    (32, 32, 32, 4, 1),
]
_WGRAD_KEY = ["P", "C_IN", "C123", "C4", "PIX_PER_SPLIT", "HAS_W123", "HAS_B123", "HAS_W4", "HAS_B4"]
_stem_wgrad_tuned, _stem_wgrad_atomic_tuned = autotuned_partials(_stem_wgrad_kernel, STEM_WGRAD_SHAPES, _WGRAD_KEY)


def _check_stem(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4):
    check_4d("x", x)
    n, c_in, h, w = x.shape
    dtype, device = x.dtype, x.device
    chans = []
    for name, g in (("grad_out1", grad_out1), ("grad_t2", grad_t2), ("grad_t3", grad_t3), ("grad_out4", grad_out4)):
        check_4d(name, g)
        check_tensor(name, g, (n, g.shape[1], h, w), dtype, device)
        chans.append(g.shape[1])
    c1, c2a, c3a, c4 = chans
    check_tensor("out1", out1, (n, c1, h, w), dtype, device)
    check_tensor("out4", out4, (n, c4, h, w), dtype, device)
    return n, c_in, h, w, c1, c2a, c3a, c4


def stem_input_grad(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, w1, w2a, w3a, w4, grad_x, *,
                    allow_tf32=False, config=None) -> torch.Tensor:
    """grad_x <- [grad_out1*(out1>0) | grad_t2 | grad_t3] @ [W1; W2a; W3a] + maxpool3x3_backward(dpool),
    dpool = (grad_out4*(out4>0)) @ W4. Two launches:

    1. dpool (N*H*W x Cin) into an fp32 scratch buffer (fp64 for fp64 inputs), channels innermost: a 1x1
       data-gradient GEMM. The pool backward needs dpool of neighbouring pixels, which other programs own,
       so it cannot be formed inside the main launch without recomputing it nine times.
    2. One data-gradient GEMM over pixels, K = c1 + c2a + c3a, reading the three gradient blocks and the three
       weights from their own pointers; its epilogue adds the max-pool backward as a gather: each input pixel
       sums the dpool of every 3x3 window (stride 1, pad 1) whose argmax it is, the argmax chosen exactly as
       PyTorch's max_pool2d does (row-major scan, update on ``v > max or isnan(v)``: ties go to the first,
       NaNs to the last; padding never wins). grad_x is overwritten, not accumulated into.

    x, grad_x: (N, Cin, H, W); grad_out1/out1: (N, c1, H, W); grad_t2: (N, c2a, H, W); grad_t3: (N, c3a, H, W);
    grad_out4/out4: (N, c4, H, W); any strides. w1/w2a/w3a/w4: (c, Cin, 1, 1). grad_t2 and grad_t3 are
    pre-activation gradients (already masked). Returns grad_x.
    """
    n, c_in, h, w, c1, c2a, c3a, c4 = _check_stem(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4)
    dtype, device = x.dtype, x.device
    for name, wt, c in (("w1", w1, c1), ("w2a", w2a, c2a), ("w3a", w3a, c3a), ("w4", w4, c4)):
        check_tensor(name, wt, (c, c_in, 1, 1), dtype, device)
    check_tensor("grad_x", grad_x, (n, c_in, h, w), dtype, device)
    require_launchable(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, w1, w2a, w3a, w4, grad_x)
    P = n * h * w
    if P == 0 or c_in == 0:
        return grad_x
    prec = dot_precision(dtype, allow_tf32)

    dpool = None
    if c4 > 0:
        # [N, H, W, Cin] scratch, channels innermost, passed as an (n, c, h, w) view
        dpool = torch.empty((n, h, w, c_in), dtype=partial_dtype(dtype), device=device)
        launch_input_grad(grad_out4, out4, w4, None, dpool.permute(0, 3, 1, 2), prec, config)

    args = (x, grad_out1, out1, grad_t2, grad_t3, w1, w2a, w3a, dpool, grad_x, P, h, w, c_in, c1, c2a, c3a,
            *x.stride(), *grad_out1.stride(), *out1.stride(), *grad_t2.stride(), *grad_t3.stride(),
            *w1.stride()[:2], *w2a.stride()[:2], *w3a.stride()[:2], *grad_x.stride())
    consts = dict(PREC=prec, ACC_DTYPE=acc_dtype(dtype))
    launch(_stem_dgrad_kernel, _stem_dgrad_tuned, pixel_channel_grid(P, c_in), args, consts, config, INTERPRET_CONFIG,
           BACKWARD_CONFIG_DEFAULTS)
    return grad_x


def stem_weight_grad(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, gw1, gb1, gw2a, gb2a, gw3a, gb3a, gw4, gb4,
                     *, deterministic=True, config=None) -> None:
    """gW1 | gW2a | gW3a <- x^T [grad_out1*(out1>0) | grad_t2 | grad_t3], gW4 <- maxpool3x3(x)^T (grad_out4*(out4>0)),
    biases <- column sums of the same gradients. Two launches:

    1. One weight-gradient GEMM over pixels (rows: the c1+c2a+c3a gradient channels, then the c4 pool-branch
       channels, whose B tile is the max-pool recomputed from x while loading) writing fp32 (fp64 for fp64) partial
       sums of fixed pixel chunks into a [S, (C + c4) * Cin + C + c4] buffer (C = c1 + c2a + c3a).
    2. A fixed-order sum of the chunks into all eight outputs, each written in its own dtype (same bits every run).
    With ``deterministic=False`` the chunks are added with float atomics instead. With no pixels the outputs are
    set to zero by the second launch alone.

    Any output may be None: the 1x1 group (gw1, gw2a, gw3a and their biases) and the pool group (gw4, gb4) are
    skipped whole when all their outputs are None, and weight GEMMs are skipped when only biases are asked for.
    Weights are (c, Cin, 1, 1), biases (c,); outputs may have a dtype of their own (the parameter dtype).
    """
    n, c_in, h, w, c1, c2a, c3a, c4 = _check_stem(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4)
    dtype, device = x.dtype, x.device
    for name, gw, gb, c in (("gw1", gw1, gb1, c1), ("gw2a", gw2a, gb2a, c2a), ("gw3a", gw3a, gb3a, c3a),
                            ("gw4", gw4, gb4, c4)):
        if gw is not None:
            check_tensor(name, gw, (c, c_in, 1, 1), None, device)
        if gb is not None:
            check_tensor("gb" + name[2:], gb, (c,), None, device)
    outs = [gw1, gb1, gw2a, gb2a, gw3a, gb3a, gw4, gb4]
    require_launchable(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, *outs)
    # treat empty outputs as absent: nothing to write
    gw1, gb1, gw2a, gb2a, gw3a, gb3a, gw4, gb4 = [o if o is not None and o.numel() > 0 else None for o in outs]
    has_w123 = any(o is not None for o in (gw1, gw2a, gw3a))
    has_b123 = any(o is not None for o in (gb1, gb2a, gb3a))
    has_w4, has_b4 = gw4 is not None, gb4 is not None
    if not (has_w123 or has_b123 or has_w4 or has_b4):
        return None

    c12, c123 = c1 + c2a, c1 + c2a + c3a
    c_tot = c123 + c4
    r_w = c_tot * c_in if (has_w123 or has_w4) else 0
    r = r_w + c_tot
    P = n * h * w
    tiles = triton.cdiv(c_tot, 64) * triton.cdiv(c_in, 64)
    S, per = pixel_splits(P, tiles, device)
    part, atomic = partial_buffer(S, r, dtype, device, deterministic, config)

    if S > 0:
        use123 = has_w123 or has_b123
        use4 = has_w4 or has_b4
        n_cols = c_in if (has_w123 or has_w4) else 1

        def grid(meta):
            nb123 = triton.cdiv(c123, meta["BLOCK_M"]) if use123 else 0
            nb4 = triton.cdiv(c4, meta["BLOCK_M"]) if use4 else 0
            return (S, nb123 + nb4, triton.cdiv(n_cols, meta["BLOCK_N"]))

        args_head = (x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, part, P, h, w, c_in, c1, c12, c123, c4)
        args_tail = (per, r_w, r, *x.stride(), *grad_out1.stride(), *out1.stride(), *grad_t2.stride(),
                     *grad_t3.stride(), *grad_out4.stride(), *out4.stride())
        consts = dict(HAS_W123=has_w123, HAS_B123=has_b123, HAS_W4=has_w4, HAS_B4=has_b4, USE123=use123,
                      ATOMIC=atomic, PREC=dot_precision(dtype, False), ACC_DTYPE=acc_dtype(dtype))
        tuned = _stem_wgrad_atomic_tuned if atomic else _stem_wgrad_tuned
        launch(_stem_wgrad_kernel, tuned, grid, (*args_head, *args_tail), consts, config, INTERPRET_WGRAD_CONFIG,
               BACKWARD_CONFIG_DEFAULTS)

    reduce_partials(part, 1 if atomic else S, r_w, r, c_tot, max(c_in, 1), (c1, c12, c123),
                    (gw1, gw2a, gw3a, gw4), (gb1, gb2a, gb3a, gb4), 1)
    return None
