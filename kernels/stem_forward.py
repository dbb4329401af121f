"""Inception stem forward: the four 1x1 branches that read x, in one launch.

Columns of the GEMM over the M = N*H*W pixels:
  [0, C1+C2+C3)  main blocks: A = x, B = [W1 | W2a | W3a] read from the three weight pointers,
                 the epilogue routes each column to out1 / t2 / t3;
  [0, C4)        pool blocks: A = maxpool3x3(x) computed while loading (never written), B = W4,
                 written to out4.
A program owns one pixel tile and one column block; the column blocks of a pixel tile are neighbours
in launch order, so x is read from DRAM about once for all four branches.

Max-pool semantics follow torch.max_pool2d: padding is -inf (never wins), NaN propagates.
Precision as in conv2d_forward: fp32 accumulation via tl.dot, fp64 via tl.sum of a broadcast product.
"""
import triton
import triton.language as tl

from .launch import (
    INTERPRET_CONFIG, autotuned_by_mma, check_config, check_same_dtype_and_device, check_shape, launch, mma_meta,
    tile_grid,
)
from .tiles import bias_relu, maxpool3x3_pc, mma, pc_ptrs, pixel_coords, program_tile


@triton.jit
def _stem_pool_tile(
    x_ptr, w4_ptr, b4_ptr, o4_ptr,
    pid_n, mask_m, n_idx, oh, ow,
    H, W, Cin, C4,
    sxn, sxc, sxh, sxw,
    sw4o, sw4i, sb4,
    so4n, so4c, so4h, so4w,
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)  # [BN] channels of out4
    mask_n = offs_n < C4
    offs_k = tl.arange(0, BLOCK_K).to(tl.int64)  # [BK]
    w_ptrs = w4_ptr + offs_n[None, :] * sw4o + offs_k[:, None] * sw4i  # [BK, BN]
    w_step = tl.full((), BLOCK_K, tl.int64) * sw4i

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    for c0 in range(0, Cin, BLOCK_K):
        offs_c = c0 + offs_k
        mask_k = offs_c < Cin
        a = maxpool3x3_pc(x_ptr, n_idx, oh, ow, mask_m, offs_c, mask_k, H, W, sxn, sxc, sxh, sxw, BLOCK_M, BLOCK_K)
        b = tl.load(w_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
        acc = mma(acc, a, b, USE_DOT, PRECISION)
        w_ptrs += w_step

    acc = bias_relu(acc, tl.load(b4_ptr + offs_n * sb4, mask=mask_n, other=0.0).to(ACC_DTYPE))
    tl.store(pc_ptrs(o4_ptr, n_idx, oh, ow, offs_n, so4n, so4c, so4h, so4w), acc.to(o4_ptr.dtype.element_ty),
             mask=mask_m[:, None] & mask_n[None, :])


@triton.jit
def _stem_forward_kernel(
    x_ptr, w1_ptr, w2_ptr, w3_ptr, w4_ptr, b1_ptr, b2_ptr, b3_ptr, b4_ptr,
    o1_ptr, t2_ptr, t3_ptr, o4_ptr,
    M, H, W, Cin, C1, C2, C3, C4,
    sxn, sxc, sxh, sxw,
    sw1o, sw1i, sw2o, sw2i, sw3o, sw3i, sw4o, sw4i,
    sb1, sb2, sb3, sb4,
    so1n, so1c, so1h, so1w,
    st2n, st2c, st2h, st2w,
    st3n, st3c, st3h, st3w,
    so4n, so4c, so4h, so4w,
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    NB_MAIN = tl.cdiv(C1 + C2 + C3, BLOCK_N)
    NB_POOL = tl.cdiv(C4, BLOCK_N)
    pid_m, pid_n, in_range = program_tile(NB_MAIN + NB_POOL, M, BLOCK_M)
    if in_range:
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)  # [BM] pixels
        mask_m = offs_m < M
        n_idx, oh, ow = pixel_coords(offs_m, H, W)
        if pid_n < NB_MAIN:
            # column j of the virtual [W1 | W2a | W3a] -> (segment, local channel); clamp masked lanes to 0
            offs_j = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)  # [BN]
            in1 = offs_j < C1
            in2 = (offs_j >= C1) & (offs_j < C1 + C2)
            in3 = (offs_j >= C1 + C2) & (offs_j < C1 + C2 + C3)
            j1 = tl.where(in1, offs_j, 0)
            j2 = tl.where(in2, offs_j - C1, 0)
            j3 = tl.where(in3, offs_j - C1 - C2, 0)
            offs_k = tl.arange(0, BLOCK_K).to(tl.int64)  # [BK]

            a_ptrs = x_ptr + (n_idx * sxn + oh * sxh + ow * sxw)[:, None] + offs_k[None, :] * sxc  # [BM, BK]
            w1_ptrs = w1_ptr + j1[None, :] * sw1o + offs_k[:, None] * sw1i  # [BK, BN]
            w2_ptrs = w2_ptr + j2[None, :] * sw2o + offs_k[:, None] * sw2i
            w3_ptrs = w3_ptr + j3[None, :] * sw3o + offs_k[:, None] * sw3i
            a_step = tl.full((), BLOCK_K, tl.int64) * sxc
            w1_step = tl.full((), BLOCK_K, tl.int64) * sw1i
            w2_step = tl.full((), BLOCK_K, tl.int64) * sw2i
            w3_step = tl.full((), BLOCK_K, tl.int64) * sw3i

            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
            for c0 in range(0, Cin, BLOCK_K):
                mask_k = (c0 + offs_k) < Cin
                a = tl.load(a_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
                # each column is live in exactly one segment: the other two loads contribute exact zeros
                b = tl.load(w1_ptrs, mask=mask_k[:, None] & in1[None, :], other=0.0)
                b += tl.load(w2_ptrs, mask=mask_k[:, None] & in2[None, :], other=0.0)
                b += tl.load(w3_ptrs, mask=mask_k[:, None] & in3[None, :], other=0.0)
                acc = mma(acc, a, b, USE_DOT, PRECISION)
                a_ptrs += a_step
                w1_ptrs += w1_step
                w2_ptrs += w2_step
                w3_ptrs += w3_step

            bias = tl.load(b1_ptr + j1 * sb1, mask=in1, other=0.0).to(ACC_DTYPE)
            bias += tl.load(b2_ptr + j2 * sb2, mask=in2, other=0.0).to(ACC_DTYPE)
            bias += tl.load(b3_ptr + j3 * sb3, mask=in3, other=0.0).to(ACC_DTYPE)
            y = bias_relu(acc, bias).to(o1_ptr.dtype.element_ty)

            # epilogue routing: every column goes to exactly one of out1 / t2 / t3
            tl.store(pc_ptrs(o1_ptr, n_idx, oh, ow, j1, so1n, so1c, so1h, so1w), y,
                     mask=mask_m[:, None] & in1[None, :])
            tl.store(pc_ptrs(t2_ptr, n_idx, oh, ow, j2, st2n, st2c, st2h, st2w), y,
                     mask=mask_m[:, None] & in2[None, :])
            tl.store(pc_ptrs(t3_ptr, n_idx, oh, ow, j3, st3n, st3c, st3h, st3w), y,
                     mask=mask_m[:, None] & in3[None, :])
        else:
            _stem_pool_tile(
                x_ptr, w4_ptr, b4_ptr, o4_ptr,
                pid_n - NB_MAIN, mask_m, n_idx, oh, ow,
                H, W, Cin, C4,
                sxn, sxc, sxh, sxw,
                sw4o, sw4i, sb4,
                so4n, so4c, so4h, so4w,
                USE_DOT, PRECISION, ACC_DTYPE, BLOCK_M, BLOCK_N, BLOCK_K,
            )


# ---------------------------------------------------------------------------------------------
# launcher

# Two pipeline stages at most for the big tiles: the pool branch's nine shifted A loads are each
# multi-buffered, and with fp32 three stages of 128x128x32 need ~350 KB of shared memory (sm_90).
_STEM_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=8, num_stages=2),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=8, num_stages=2),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 16}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 16}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 16}, num_warps=4, num_stages=2),
]
_AUTOTUNE_KEY = ["M", "Cin", "C1", "C2", "C3", "C4", "sxc"]
_autotuned_kernel = autotuned_by_mma(_stem_forward_kernel, _STEM_CONFIGS, _AUTOTUNE_KEY)


def _check_1x1(name, w, cin):
    if w.dim() != 4 or w.shape[1] != cin or w.shape[2] != 1 or w.shape[3] != 1:
        raise ValueError(f"{name} must have shape (C, {cin}, 1, 1), got {tuple(w.shape)}")
    return w.shape[0]


def stem_forward(x, w1, b1, w2a, b2a, w3a, b3a, w4, b4, out1, t2, t3, out4, *, allow_tf32=False, config=None) -> None:
    """One launch computing the four 1x1 branches of an Inception block that read x:

    out1 <- relu(conv1x1(x, w1) + b1); t2 <- relu(conv1x1(x, w2a) + b2a); t3 <- relu(conv1x1(x, w3a) + b3a);
    out4 <- relu(conv1x1(maxpool2d(x, 3, stride=1, padding=1), w4) + b4).
    x: (N, Cin, H, W); w*: (c, Cin, 1, 1); b*: (c,); outputs (N, c, H, W). Any strides.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be 4-D (N, Cin, H, W), got shape {tuple(x.shape)}")
    N, Cin, H, W = x.shape
    c1 = _check_1x1("w1", w1, Cin)
    c2 = _check_1x1("w2a", w2a, Cin)
    c3 = _check_1x1("w3a", w3a, Cin)
    c4 = _check_1x1("w4", w4, Cin)
    for name, b, c in (("b1", b1, c1), ("b2a", b2a, c2), ("b3a", b3a, c3), ("b4", b4, c4)):
        check_shape(name, b, (c,))
    for name, o, c in (("out1", out1, c1), ("t2", t2, c2), ("t3", t3, c3), ("out4", out4, c4)):
        check_shape(name, o, (N, c, H, W))
    check_same_dtype_and_device({
        "x": x, "w1": w1, "b1": b1, "w2a": w2a, "b2a": b2a, "w3a": w3a, "b3a": b3a, "w4": w4, "b4": b4,
        "out1": out1, "t2": t2, "t3": t3, "out4": out4,
    })
    if config is not None:
        check_config(config)

    M = N * H * W
    cols = c1 + c2 + c3 + c4
    if M == 0 or cols == 0:
        return None

    args = (
        x, w1, w2a, w3a, w4, b1, b2a, b3a, b4,
        out1, t2, t3, out4,
        M, H, W, Cin, c1, c2, c3, c4,
        *x.stride(),
        w1.stride(0), w1.stride(1), w2a.stride(0), w2a.stride(1),
        w3a.stride(0), w3a.stride(1), w4.stride(0), w4.stride(1),
        b1.stride(0), b2a.stride(0), b3a.stride(0), b4.stride(0),
        *out1.stride(), *t2.stride(), *t3.stride(), *out4.stride(),
    )
    meta = mma_meta(x.dtype, allow_tf32)

    def grid(META):
        # main and pool column blocks share BLOCK_N; each range is rounded up on its own
        num_n = triton.cdiv(c1 + c2 + c3, META["BLOCK_N"]) + triton.cdiv(c4, META["BLOCK_N"])
        return tile_grid(M, num_n * META["BLOCK_N"], META["BLOCK_M"], META["BLOCK_N"])

    launch(_stem_forward_kernel, _autotuned_kernel(meta["USE_DOT"]), grid, args, meta, config, INTERPRET_CONFIG)
    return None
