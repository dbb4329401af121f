"""Backward of the Inception stem: the three 1x1 convs that read ``x`` and the max-pool -> 1x1 conv branch.

Forward (per pixel p, channels c): out1 = relu(x W1 + b1), t2 = relu(x W2a + b2a), t3 = relu(x W3a + b3a),
out4 = relu(maxpool3x3(x) W4 + b4). Gradients, with g1 = grad_out1 * (out1 > 0), g4 = grad_out4 * (out4 > 0) and
grad_t2 / grad_t3 already pre-activation gradients:

- grad_x = [g1 | grad_t2 | grad_t3] @ [W1; W2a; W3a] + maxpool3x3_backward(g4 @ W4)
- gW1 | gW2a | gW3a = x^T [g1 | grad_t2 | grad_t3], gW4 = maxpool3x3(x)^T g4, biases = column sums.

The three gradient blocks and weights are read from their own pointers and strides (no concatenation); the pool is
recomputed while loading, never stored. The max-pool backward is a gather that reproduces PyTorch's argmax rule.
ReLU masks zero a gradient where the saved output is ``<= 0``, as PyTorch's ReLU backward does.
In the kernels g1 / g2 / g3 / g4 are grad_out1 / grad_t2 / grad_t3 / grad_out4, w2 / w3 are W2a / W3a.
The launchers here check nothing (``checked.py`` validates the public entry points once).
"""
import torch
import triton
import triton.language as tl

from .common import dot_precision
from .conv2d_backward import launch_dgrad, partial_buffer, pixel_splits, reduce_partials
from .launch import (
    BACKWARD_CONFIG_DEFAULTS,
    INTERPRET_CONFIG,
    INTERPRET_WGRAD_CONFIG,
    FitPrune,
    acc_dtype,
    index_dtype,
    launch,
    partial_dtype,
    pixel_bucket,
    pixel_channel_grid,
    strides,
    zero_if_atomic,
)
from .tiles import (
    chunk_row,
    cp_ptrs,
    dgrad_channels,
    maxpool3x3_pc,
    pc_ptrs,
    pixel_coords,
    relu_grad_cp,
    store_partial,
)


@triton.jit
def _dgrad_segment(
    acc,
    # pointers
    g_ptr, out_ptr, w_ptr,
    # tile: pixel coordinates and mask [BM], input channels and mask [BN]
    img, oh, ow, m_ok, offs_n, n_ok,
    # sizes
    C,
    # strides
    stride_g_n, stride_g_c, stride_g_h, stride_g_w,
    stride_out_n, stride_out_c, stride_out_h, stride_out_w,
    stride_w_o, stride_w_i,
    # meta-parameters
    MASKED: tl.constexpr, PRECISION: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # acc[BM pixels, BN in-channels] += (g * (out > 0 if MASKED))[BM, C] @ w[C, BN] (w read as (C, C_IN, 1, 1)).
    g_row = img * stride_g_n + oh * stride_g_h + ow * stride_g_w
    out_row = img * stride_out_n + oh * stride_out_h + ow * stride_out_w
    return dgrad_channels(acc, g_ptr, out_ptr, w_ptr,
                          g_row, out_row, m_ok, offs_n, n_ok,
                          C,
                          stride_g_c, stride_out_c, stride_w_o, stride_w_i,
                          MASKED, PRECISION, BLOCK_K)


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


# The pool-backward epilogue keeps about a dozen [BLOCK_M, BLOCK_N] masks live: tiles of at most 16 elements per
# thread keep it out of register spills (a 128x64 tile on 4 warps took ptxas about 90 s, 64x32 about 8 s).
STEM_DGRAD_CONFIGS = [
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_M": 32, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4, num_stages=4),
]


@triton.autotune(
    configs=STEM_DGRAD_CONFIGS,
    key=["P_BUCKET", "C_IN", "C1", "C2", "C3"],
    prune_configs_by={"early_config_prune": FitPrune(
        # one segment's loop at a time: g and out [BM, BK] + W [BK, BN]
        stage_elems=lambda m, n, k: 2 * m * k + k * n,
        dtype_arg="x_ptr",
        extents=lambda a: {"BLOCK_M": a["P_BUCKET"], "BLOCK_N": a["C_IN"], "BLOCK_K": max(a["C1"], a["C2"], a["C3"])},
    )},
)
@triton.jit(do_not_specialize=["P_BUCKET"])
def _stem_dgrad_kernel(
    # pointers
    x_ptr, g1_ptr, out1_ptr, g2_ptr, g3_ptr, w1_ptr, w2_ptr, w3_ptr, dpool_ptr, gx_ptr,
    # sizes (P_BUCKET: autotune key only)
    P, P_BUCKET, H, W, C_IN, C1, C2, C3,
    # strides
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_g1_n, stride_g1_c, stride_g1_h, stride_g1_w,
    stride_out1_n, stride_out1_c, stride_out1_h, stride_out1_w,
    stride_g2_n, stride_g2_c, stride_g2_h, stride_g2_w,
    stride_g3_n, stride_g3_c, stride_g3_h, stride_g3_w,
    stride_w1_o, stride_w1_i, stride_w2_o, stride_w2_i, stride_w3_o, stride_w3_i,
    stride_gx_n, stride_gx_c, stride_gx_h, stride_gx_w,
    # meta-parameters
    PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # Tile: BLOCK_M pixels x BLOCK_N input channels of grad_x; K = C1 + C2 + C3 in three segments.
    # dpool_ptr: [P, C_IN] contiguous (g4 @ W4 per pixel), or None when there is no pool branch.
    pid_m = tl.program_id(0).to(INDEX)
    pid_n = tl.program_id(1).to(INDEX)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)  # [BM] pixel
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX)  # [BN] input channel
    m_ok = offs_m < P
    n_ok = offs_n < C_IN
    img, oh, ow = pixel_coords(offs_m, H, W)

    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC_DTYPE)
    acc = _dgrad_segment(acc, g1_ptr, out1_ptr, w1_ptr, img, oh, ow, m_ok, offs_n, n_ok, C1,
                         stride_g1_n, stride_g1_c, stride_g1_h, stride_g1_w,
                         stride_out1_n, stride_out1_c, stride_out1_h, stride_out1_w,
                         stride_w1_o, stride_w1_i,
                         True, PRECISION, BLOCK_K)
    acc = _dgrad_segment(acc, g2_ptr, g2_ptr, w2_ptr, img, oh, ow, m_ok, offs_n, n_ok, C2,
                         stride_g2_n, stride_g2_c, stride_g2_h, stride_g2_w,
                         stride_g2_n, stride_g2_c, stride_g2_h, stride_g2_w,
                         stride_w2_o, stride_w2_i,
                         False, PRECISION, BLOCK_K)
    acc = _dgrad_segment(acc, g3_ptr, g3_ptr, w3_ptr, img, oh, ow, m_ok, offs_n, n_ok, C3,
                         stride_g3_n, stride_g3_c, stride_g3_h, stride_g3_w,
                         stride_g3_n, stride_g3_c, stride_g3_h, stride_g3_w,
                         stride_w3_o, stride_w3_i,
                         False, PRECISION, BLOCK_K)

    if dpool_ptr is not None:
        # Max-pool backward as a gather: pixel q receives dpool[c] from every window centre c (|c - q| <= 1, in the
        # image) whose argmax is q. PyTorch's kernels scan the in-image part of a window row-major from its first
        # position and take a value when `v > max || isnan(v)`: the argmax is the last NaN if there is one, else the
        # first maximum. So q is a window's argmax unless some in-window p "defeats" it: a NaN after q; or, for a
        # non-NaN q, any NaN, a p before q with p >= q, or a p after q with p > q. Row-major order does not depend
        # on the window, so each of the 24 neighbours in q's 5x5 neighbourhood is loaded once and its defeat ORed
        # into the (up to 9) windows that contain it: 25 loads instead of 81.
        xq = tl.load(pc_ptrs(x_ptr, img, oh, ow, offs_n, stride_x_n, stride_x_c, stride_x_h, stride_x_w),
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
                    v = tl.load(pc_ptrs(x_ptr, img, ih, iw, offs_n, stride_x_n, stride_x_c, stride_x_h, stride_x_w),
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

    tl.store(pc_ptrs(gx_ptr, img, oh, ow, offs_n, stride_gx_n, stride_gx_c, stride_gx_h, stride_gx_w),
             acc.to(gx_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


# The pool rows recompute their B tile from nine shifted loads, each multi-buffered: shared memory is about
# (9 * BLOCK_K * BLOCK_N + 2 * BLOCK_M * BLOCK_K) * bytes per buffer, so these tiles stay small and shallow to fit
# the 227 KB of an H100/H200 in fp32 and fp64; FitPrune drops what cannot fit a smaller device.
# zero_if_atomic zeroes the one accumulator row before every run of the atomic variant.
STEM_WGRAD_CONFIGS = [
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=1, pre_hook=zero_if_atomic),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4, num_stages=2, pre_hook=zero_if_atomic),
    triton.Config({"BLOCK_M": 32, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=2, pre_hook=zero_if_atomic),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 64}, num_warps=4, num_stages=1, pre_hook=zero_if_atomic),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4, num_stages=1, pre_hook=zero_if_atomic),
    triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4, num_stages=1, pre_hook=zero_if_atomic),
]


@triton.autotune(
    configs=STEM_WGRAD_CONFIGS,
    # no pixel-chunk size in the key: it follows from the pixel count and the channels
    key=["P_BUCKET", "C_IN", "C1", "C2", "C3", "C4", "HAS_W123", "HAS_B123", "HAS_W4", "HAS_B4", "ATOMIC"],
    prune_configs_by={"early_config_prune": FitPrune(
        # 1x1 rows: g1, out1, g2, g3 [BM, BK] + x [BK, BN]; pool rows: g4, out4 [BM, BK] + nine shifted x loads
        stage_elems=lambda m, n, k: max(4 * m * k + k * n, 2 * m * k + 9 * k * n),
        dtype_arg="x_ptr",
        extents=lambda a: {"BLOCK_M": max(a["C1"] + a["C2"] + a["C3"], a["C4"]), "BLOCK_N": a["C_IN"]},
    )},
)
@triton.jit(do_not_specialize=["P_BUCKET"])
def _stem_wgrad_kernel(
    # pointers
    x_ptr, g1_ptr, out1_ptr, g2_ptr, g3_ptr, g4_ptr, out4_ptr, part_ptr,
    # sizes (P_BUCKET: autotune key only)
    P, P_BUCKET, H, W, C_IN, C1, C2, C3, C4, PIX_PER_SPLIT, R_W, R,
    # strides
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_g1_n, stride_g1_c, stride_g1_h, stride_g1_w,
    stride_out1_n, stride_out1_c, stride_out1_h, stride_out1_w,
    stride_g2_n, stride_g2_c, stride_g2_h, stride_g2_w,
    stride_g3_n, stride_g3_c, stride_g3_h, stride_g3_w,
    stride_g4_n, stride_g4_c, stride_g4_h, stride_g4_w,
    stride_out4_n, stride_out4_c, stride_out4_h, stride_out4_w,
    # meta-parameters
    HAS_W123: tl.constexpr, HAS_B123: tl.constexpr, HAS_W4: tl.constexpr, HAS_B4: tl.constexpr,
    USE123: tl.constexpr, ATOMIC: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr,
    INDEX: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # Grid: (split, row blocks of [g1 | g2 | g3] (none unless USE123) then row blocks of g4, C_IN blocks).
    # Tile: BLOCK_M gradient channels (partial rows) x BLOCK_N input channels, reduced over one pixel chunk.
    # part: [S, R], R = R_W ([C123 + C4, C_IN] weight partials) + C123 + C4 (bias partials).
    C12 = C1 + C2
    C123 = C12 + C3
    split = tl.program_id(0).to(INDEX)
    pid_m = tl.program_id(1).to(INDEX)
    pid_n = tl.program_id(2).to(INDEX)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX)  # [BN] input channel
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
        offs_j = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)  # [BM] row of [g1 | g2 | g3]
        j_ok = offs_j < C123
        r1 = offs_j < C1
        r2 = (offs_j >= C1) & (offs_j < C12)
        r3 = (offs_j >= C12) & j_ok
        for p0 in range(p_start, p_end, BLOCK_K):
            offs_k = p0 + tl.arange(0, BLOCK_K).to(INDEX)  # [BK] pixel
            k_ok = offs_k < p_end
            img, oh, ow = pixel_coords(offs_k, H, W)
            # A = [g1 | g2 | g3]^T tile [BM, BK]: each row block read from its own tensor, the others masked off.
            g1 = relu_grad_cp(g1_ptr, out1_ptr,
                              offs_j, img, oh, ow, r1[:, None] & k_ok[None, :],
                              stride_g1_n, stride_g1_c, stride_g1_h, stride_g1_w,
                              stride_out1_n, stride_out1_c, stride_out1_h, stride_out1_w)
            g2 = tl.load(cp_ptrs(g2_ptr, offs_j - C1, img, oh, ow, stride_g2_n, stride_g2_c, stride_g2_h, stride_g2_w),
                         mask=r2[:, None] & k_ok[None, :], other=0.0)
            g3 = tl.load(cp_ptrs(g3_ptr, offs_j - C12, img, oh, ow,
                                 stride_g3_n, stride_g3_c, stride_g3_h, stride_g3_w),
                         mask=r3[:, None] & k_ok[None, :], other=0.0)
            a = tl.where(r1[:, None], g1, tl.where(r2[:, None], g2, g3))
            if HAS_B123:
                bacc += tl.sum(a.to(ACC_DTYPE), axis=1)
            if HAS_W123:
                b = tl.load(pc_ptrs(x_ptr, img, oh, ow, offs_n, stride_x_n, stride_x_c, stride_x_h, stride_x_w),
                            mask=k_ok[:, None] & n_ok[None, :], other=0.0)  # [BK, BN]
                acc = tl.dot(a, b, acc, input_precision=PRECISION, out_dtype=acc.dtype)
        store_partial(row_ptr,
                      offs_j, offs_j, j_ok, offs_n, n_ok, acc, bacc, pid_n == 0,
                      C_IN, R_W,
                      HAS_W123, HAS_B123, ATOMIC)
    else:
        offs_c = (pid_m - NB123) * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)  # [BM] channel of g4
        c_ok = offs_c < C4
        for p0 in range(p_start, p_end, BLOCK_K):
            offs_k = p0 + tl.arange(0, BLOCK_K).to(INDEX)  # [BK] pixel
            k_ok = offs_k < p_end
            img, oh, ow = pixel_coords(offs_k, H, W)
            a = relu_grad_cp(g4_ptr, out4_ptr,
                             offs_c, img, oh, ow, c_ok[:, None] & k_ok[None, :],
                             stride_g4_n, stride_g4_c, stride_g4_h, stride_g4_w,
                             stride_out4_n, stride_out4_c, stride_out4_h, stride_out4_w)  # [BM, BK]
            if HAS_B4:
                bacc += tl.sum(a.to(ACC_DTYPE), axis=1)
            if HAS_W4:
                # maxpool3x3(x) tile [BK, BN], recomputed
                pooled = maxpool3x3_pc(x_ptr, img, oh, ow, k_ok, offs_n, n_ok, H, W,
                                       stride_x_n, stride_x_c, stride_x_h, stride_x_w, BLOCK_K, BLOCK_N)
                acc = tl.dot(a, pooled, acc, input_precision=PRECISION, out_dtype=acc.dtype)
        store_partial(row_ptr,
                      C123 + offs_c, C123 + offs_c, c_ok, offs_n, n_ok, acc, bacc, pid_n == 0,
                      C_IN, R_W,
                      HAS_W4, HAS_B4, ATOMIC)


# ----------------------------------------------------------------------------------------------------------------------
# Launchers (unchecked)

def launch_stem_input_grad(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, w1, w2a, w3a, w4, grad_x, *,
                           allow_tf32=False, config=None) -> torch.Tensor:
    """grad_x <- [grad_out1*(out1>0) | grad_t2 | grad_t3] @ [W1; W2a; W3a] + maxpool3x3_backward(dpool),
    dpool = (grad_out4*(out4>0)) @ W4. Unchecked: arguments as ``checked.stem_input_grad`` validates them.
    Two launches:

    1. dpool (N*H*W x C_IN) into an fp32 scratch buffer (fp64 for fp64 inputs), channels innermost: a 1x1
       data-gradient GEMM. The pool backward needs dpool of neighbouring pixels, which other programs own,
       so it cannot be formed inside the main launch without recomputing it nine times.
    2. One data-gradient GEMM over pixels, K = c1 + c2a + c3a, reading the three gradient blocks and the three
       weights from their own pointers; its epilogue adds the max-pool backward as a gather: each input pixel
       sums the dpool of every 3x3 window (stride 1, pad 1) whose argmax it is, the argmax chosen exactly as
       PyTorch's max_pool2d does (row-major scan, update on ``v > max or isnan(v)``: ties go to the first,
       NaNs to the last; padding never wins). grad_x is overwritten, not accumulated into.

    x, grad_x: (N, C_IN, H, W); grad_out1/out1: (N, c1, H, W); grad_t2: (N, c2a, H, W); grad_t3: (N, c3a, H, W);
    grad_out4/out4: (N, c4, H, W); any strides. w1/w2a/w3a/w4: (c, C_IN, 1, 1). grad_t2 and grad_t3 are
    pre-activation gradients (already masked). Returns grad_x.
    """
    n, c_in, h, w = x.shape
    P = n * h * w
    if P == 0 or c_in == 0:
        return grad_x
    dtype, device = x.dtype, x.device
    precision = dot_precision(dtype, allow_tf32)

    dpool = None
    if w4.shape[0] > 0:
        # [N, H, W, C_IN] scratch, channels innermost, passed as an (n, c, h, w) view
        dpool = torch.empty((n, h, w, c_in), dtype=partial_dtype(dtype), device=device)
        launch_dgrad(grad_out4, out4, w4, None, dpool.permute(0, 3, 1, 2), precision, config)

    kwargs = dict(
        x_ptr=x, g1_ptr=grad_out1, out1_ptr=out1, g2_ptr=grad_t2, g3_ptr=grad_t3,
        w1_ptr=w1, w2_ptr=w2a, w3_ptr=w3a, dpool_ptr=dpool, gx_ptr=grad_x,
        P=P, P_BUCKET=pixel_bucket(P), H=h, W=w, C_IN=c_in, C1=w1.shape[0], C2=w2a.shape[0], C3=w3a.shape[0],
        **strides("x", x), **strides("g1", grad_out1), **strides("out1", out1), **strides("g2", grad_t2),
        **strides("g3", grad_t3), **strides("w1", w1, "oi"), **strides("w2", w2a, "oi"), **strides("w3", w3a, "oi"),
        **strides("gx", grad_x),
        PRECISION=precision, ACC_DTYPE=acc_dtype(dtype),
        INDEX=index_dtype(x, grad_out1, out1, grad_t2, grad_t3, w1, w2a, w3a, dpool, grad_x),
    )
    launch(_stem_dgrad_kernel, pixel_channel_grid(P, c_in), kwargs, config, INTERPRET_CONFIG,
           BACKWARD_CONFIG_DEFAULTS)
    return grad_x


def launch_stem_weight_grad(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, gw1, gb1, gw2a, gb2a, gw3a, gb3a,
                            gw4, gb4, *, deterministic=True, allow_tf32=False, config=None) -> None:
    """gW1 | gW2a | gW3a <- x^T [grad_out1*(out1>0) | grad_t2 | grad_t3], gW4 <- maxpool3x3(x)^T (grad_out4*(out4>0)),
    biases <- column sums of the same gradients. Unchecked: arguments as ``checked.stem_weight_grad`` validates
    them. Two launches:

    1. One weight-gradient GEMM over pixels (rows: the c1+c2a+c3a gradient channels, then the c4 pool-branch
       channels, whose B tile is the max-pool recomputed from x while loading) writing fp32 (fp64 for fp64) partial
       sums of fixed pixel chunks into a [S, (C + c4) * C_IN + C + c4] buffer (C = c1 + c2a + c3a).
    2. A fixed-order sum of the chunks into all eight outputs, each written in its own dtype (same bits every run).
    With ``deterministic=False`` the chunks are added with float atomics instead. With no pixels the outputs are
    set to zero by the second launch alone.

    Any output may be None: the 1x1 group (gw1, gw2a, gw3a and their biases) and the pool group (gw4, gb4) are
    skipped whole when all their outputs are None, and weight GEMMs are skipped when only biases are asked for.
    Weights are (c, C_IN, 1, 1), biases (c,); outputs may have a dtype of their own (the parameter dtype).
    """
    n, c_in, h, w = x.shape
    c1, c2a, c3a, c4 = grad_out1.shape[1], grad_t2.shape[1], grad_t3.shape[1], grad_out4.shape[1]
    dtype, device = x.dtype, x.device
    # treat empty outputs as absent: nothing to write
    outs = [gw1, gb1, gw2a, gb2a, gw3a, gb3a, gw4, gb4]
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
    S, per = pixel_splits(P, c_tot, c_in, 1, device)
    part, atomic = partial_buffer(S, r, dtype, device, deterministic, config)

    if S > 0:
        use123 = has_w123 or has_b123
        use4 = has_w4 or has_b4
        n_cols = c_in if (has_w123 or has_w4) else 1

        def grid(meta):
            nb123 = triton.cdiv(c123, meta["BLOCK_M"]) if use123 else 0
            nb4 = triton.cdiv(c4, meta["BLOCK_M"]) if use4 else 0
            return (S, nb123 + nb4, triton.cdiv(n_cols, meta["BLOCK_N"]))

        kwargs = dict(
            x_ptr=x, g1_ptr=grad_out1, out1_ptr=out1, g2_ptr=grad_t2, g3_ptr=grad_t3, g4_ptr=grad_out4,
            out4_ptr=out4, part_ptr=part,
            P=P, P_BUCKET=pixel_bucket(P), H=h, W=w, C_IN=c_in, C1=c1, C2=c2a, C3=c3a, C4=c4, PIX_PER_SPLIT=per,
            R_W=r_w, R=r,
            **strides("x", x), **strides("g1", grad_out1), **strides("out1", out1), **strides("g2", grad_t2),
            **strides("g3", grad_t3), **strides("g4", grad_out4), **strides("out4", out4),
            HAS_W123=has_w123, HAS_B123=has_b123, HAS_W4=has_w4, HAS_B4=has_b4, USE123=use123,
            ATOMIC=atomic, PRECISION=dot_precision(dtype, allow_tf32), ACC_DTYPE=acc_dtype(dtype),
            INDEX=index_dtype(x, grad_out1, out1, grad_t2, grad_t3, grad_out4, out4, part),
        )
        launch(_stem_wgrad_kernel, grid, kwargs, config, INTERPRET_WGRAD_CONFIG, BACKWARD_CONFIG_DEFAULTS)

    reduce_partials(part, 1 if atomic else S, r_w, r, c_tot, max(c_in, 1), (c1, c12, c123),
                    (gw1, gw2a, gw3a, gw4), (gb1, gb2a, gb3a, gb4), 1)
    return None
