"""Inception stem forward: the four 1x1 branches that read x, in one launch.

Columns of the GEMM over the P = N*H*W pixels:
  [0, C1+C2+C3)  main blocks: A = x, B = [W1 | W2a | W3a] read from the three weight pointers,
                 the epilogue routes each column to out1 / t2 / t3;
  [0, C4)        pool blocks: A = maxpool3x3(x) computed while loading (never written), B = W4,
                 written to out4.
(C2, C3 are the reduced widths c2a, c3a; w2 / w3 / b2 / b3 are W2a / W3a and their biases.)
A program owns one pixel tile and one column block; the column blocks of a pixel tile are neighbours
in launch order, so x is read from DRAM about once for all four branches.

Max-pool semantics follow torch.max_pool2d: padding is -inf (never wins), NaN propagates.
Precision as in conv2d_forward: fp32 accumulation via tl.dot, fp64 via tl.sum of a broadcast product.
The launcher here checks nothing (``checked.stem_forward`` validates the public entry point once).
"""
import triton
import triton.language as tl

from .launch import (
    FP64_CONFIGS,
    INTERPRET_CONFIG,
    FitPrune,
    index_dtype,
    launch,
    mma_meta,
    pixel_bucket,
    strides,
    tile_grid,
)
from .tiles import bias_relu, maxpool3x3_pc, mma, pc_ptrs, pixel_coords, program_tile, store_relu_mask


@triton.jit
def _stem_pool_tile(
    # pointers (mask4_ptr: None, or where out4's ReLU mask goes)
    x_ptr, w4_ptr, b4_ptr, out4_ptr, mask4_ptr,
    # this program's column block, and its pixel tile: mask and coordinates
    pid_n, mask_m, n_idx, oh, ow,
    # sizes
    H, W, C_IN, C4,
    # strides
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_w4_o, stride_w4_i,
    stride_b4,
    stride_out4_n, stride_out4_c, stride_out4_h, stride_out4_w,
    stride_mask4_n, stride_mask4_c, stride_mask4_h, stride_mask4_w,
    # meta-parameters
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(pid_n.dtype)  # [BN] channels of out4
    mask_n = offs_n < C4
    offs_k = tl.arange(0, BLOCK_K).to(pid_n.dtype)  # [BK]
    w_ptrs = w4_ptr + offs_n[None, :] * stride_w4_o + offs_k[:, None] * stride_w4_i  # [BK, BN]
    w_step = tl.full((), BLOCK_K, pid_n.dtype) * stride_w4_i

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    for c0 in range(0, C_IN, BLOCK_K):
        offs_c = c0 + offs_k
        mask_k = offs_c < C_IN
        a = maxpool3x3_pc(x_ptr, n_idx, oh, ow, mask_m, offs_c, mask_k, H, W,
                          stride_x_n, stride_x_c, stride_x_h, stride_x_w, BLOCK_M, BLOCK_K)
        b = tl.load(w_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
        acc = mma(acc, a, b, USE_DOT, PRECISION)
        w_ptrs += w_step

    acc = bias_relu(acc, tl.load(b4_ptr + offs_n * stride_b4, mask=mask_n, other=0.0).to(ACC_DTYPE))
    y = acc.to(out4_ptr.dtype.element_ty)
    out_mask = mask_m[:, None] & mask_n[None, :]
    tl.store(pc_ptrs(out4_ptr, n_idx, oh, ow, offs_n, stride_out4_n, stride_out4_c, stride_out4_h, stride_out4_w), y,
             mask=out_mask)
    if mask4_ptr is not None:
        store_relu_mask(pc_ptrs(mask4_ptr, n_idx, oh, ow, offs_n,
                                stride_mask4_n, stride_mask4_c, stride_mask4_h, stride_mask4_w), y, out_mask)


# tl.dot configs (fp64 tunes over FP64_CONFIGS instead). The pool branch's nine shifted A loads are each
# multi-buffered: with fp32 three stages of 128x128x32 need ~350 KB of shared memory (sm_90), so the big tiles
# get two stages, and FitPrune drops what still cannot fit the device.
STEM_CONFIGS = [
    # 128 columns wide, a tile spills registers on sm_90 (the pool blocks hold nine shifted loads in flight)
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=8, num_stages=2),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 16}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 16}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 16}, num_warps=4, num_stages=2),
]
# fp32 without tf32 (tl.dot on CUDA cores, operands in registers) and with tf32 (wider fp32 tiles in registers):
# the tiles that do not spill with the ReLU mask's stores in the epilogue (sm_90)
STEM_IEEE_CONFIGS = [
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 16}, num_warps=4, num_stages=2),
]
STEM_TF32_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 16}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 16}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 16}, num_warps=4, num_stages=2),
]


@triton.autotune(
    configs=STEM_CONFIGS + STEM_IEEE_CONFIGS + STEM_TF32_CONFIGS + FP64_CONFIGS,
    key=["P_BUCKET", "C_IN", "C1", "C2", "C3", "C4", "stride_x_c"],
    prune_configs_by={"early_config_prune": FitPrune(
        # pool blocks (nine shifted A loads + B) need more than main blocks (A + B)
        stage_elems=lambda m, n, k: 9 * m * k + k * n,
        dtype_arg="x_ptr",
        extents=lambda a: {"BLOCK_M": a["P_BUCKET"], "BLOCK_N": max(a["C1"] + a["C2"] + a["C3"], a["C4"]),
                           "BLOCK_K": a["C_IN"]},
        precision_configs={"ieee": STEM_IEEE_CONFIGS, "tf32": STEM_TF32_CONFIGS},
        output_channel_strides=("stride_out1_c", "stride_out4_c"),
    )},
)
@triton.jit(do_not_specialize=["P_BUCKET"])
def _stem_forward_kernel(
    # pointers (mask1_ptr / mask4_ptr: None, or where out1's / out4's ReLU masks go)
    x_ptr, w1_ptr, w2_ptr, w3_ptr, w4_ptr, b1_ptr, b2_ptr, b3_ptr, b4_ptr,
    out1_ptr, t2_ptr, t3_ptr, out4_ptr, mask1_ptr, mask4_ptr,
    # sizes (P_BUCKET: autotune key only)
    P, P_BUCKET, H, W, C_IN, C1, C2, C3, C4,
    # strides
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_w1_o, stride_w2_o, stride_w3_o, stride_w123_i, stride_w4_o, stride_w4_i,
    stride_b1, stride_b2, stride_b3, stride_b4,
    stride_out1_n, stride_out1_c, stride_out1_h, stride_out1_w,
    stride_t2_n, stride_t2_c, stride_t2_h, stride_t2_w,
    stride_t3_n, stride_t3_c, stride_t3_h, stride_t3_w,
    stride_out4_n, stride_out4_c, stride_out4_h, stride_out4_w,
    stride_mask1_n, stride_mask1_c, stride_mask1_h, stride_mask1_w,
    stride_mask4_n, stride_mask4_c, stride_mask4_h, stride_mask4_w,
    # meta-parameters
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    NB_MAIN = tl.cdiv(C1 + C2 + C3, BLOCK_N)
    NB_POOL = tl.cdiv(C4, BLOCK_N)
    pid_m, pid_n, in_range = program_tile(NB_MAIN + NB_POOL, P, BLOCK_M, INDEX)
    if in_range:
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)  # [BM] pixels
        mask_m = offs_m < P
        n_idx, oh, ow = pixel_coords(offs_m, H, W)
        if pid_n < NB_MAIN:
            # column j of the virtual [W1 | W2a | W3a] -> (segment, local channel); clamp masked lanes to 0
            offs_j = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX)  # [BN]
            in1 = offs_j < C1
            in2 = (offs_j >= C1) & (offs_j < C1 + C2)
            in3 = (offs_j >= C1 + C2) & (offs_j < C1 + C2 + C3)
            j1 = tl.where(in1, offs_j, 0)
            j2 = tl.where(in2, offs_j - C1, 0)
            j3 = tl.where(in3, offs_j - C1 - C2, 0)
            offs_k = tl.arange(0, BLOCK_K).to(INDEX)  # [BK]

            a_ptrs = (x_ptr + (n_idx * stride_x_n + oh * stride_x_h + ow * stride_x_w)[:, None]
                      + offs_k[None, :] * stride_x_c)  # [BM, BK]
            # one pointer per column into the weight of its segment: each K step is one load for all three (they
            # share their input-channel stride, stride_w123_i)
            w_cols = tl.where(in1, w1_ptr + j1 * stride_w1_o,
                              tl.where(in2, w2_ptr + j2 * stride_w2_o, w3_ptr + j3 * stride_w3_o))  # [BN]
            w_ptrs = w_cols[None, :] + offs_k[:, None] * stride_w123_i  # [BK, BN]
            in123 = offs_j < C1 + C2 + C3
            a_step = tl.full((), BLOCK_K, INDEX) * stride_x_c
            w_step = tl.full((), BLOCK_K, INDEX) * stride_w123_i

            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
            for c0 in range(0, C_IN, BLOCK_K):
                mask_k = (c0 + offs_k) < C_IN
                a = tl.load(a_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
                b = tl.load(w_ptrs, mask=mask_k[:, None] & in123[None, :], other=0.0)
                acc = mma(acc, a, b, USE_DOT, PRECISION)
                a_ptrs += a_step
                w_ptrs += w_step

            bias = tl.load(b1_ptr + j1 * stride_b1, mask=in1, other=0.0).to(ACC_DTYPE)
            bias += tl.load(b2_ptr + j2 * stride_b2, mask=in2, other=0.0).to(ACC_DTYPE)
            bias += tl.load(b3_ptr + j3 * stride_b3, mask=in3, other=0.0).to(ACC_DTYPE)
            y = bias_relu(acc, bias).to(out1_ptr.dtype.element_ty)

            # epilogue routing: every column goes to exactly one of out1 / t2 / t3, through one tile of pointers
            # (each column's tensor and channel, each row that tensor's pixel offset) and one store
            row1 = n_idx * stride_out1_n + oh * stride_out1_h + ow * stride_out1_w  # [BM]
            row2 = n_idx * stride_t2_n + oh * stride_t2_h + ow * stride_t2_w
            row3 = n_idx * stride_t3_n + oh * stride_t3_h + ow * stride_t3_w
            cols = tl.where(in1, out1_ptr + j1 * stride_out1_c,
                            tl.where(in2, t2_ptr + j2 * stride_t2_c, t3_ptr + j3 * stride_t3_c))  # [BN]
            rows = tl.where(in1[None, :], row1[:, None], tl.where(in2[None, :], row2[:, None], row3[:, None]))
            tl.store(cols[None, :] + rows, y, mask=mask_m[:, None] & (in1 | in2 | in3)[None, :])
            if mask1_ptr is not None:
                store_relu_mask(pc_ptrs(mask1_ptr, n_idx, oh, ow, j1,
                                        stride_mask1_n, stride_mask1_c, stride_mask1_h, stride_mask1_w),
                                y, mask_m[:, None] & in1[None, :])
        else:
            _stem_pool_tile(
                x_ptr, w4_ptr, b4_ptr, out4_ptr, mask4_ptr,
                pid_n - NB_MAIN, mask_m, n_idx, oh, ow,
                H, W, C_IN, C4,
                stride_x_n, stride_x_c, stride_x_h, stride_x_w,
                stride_w4_o, stride_w4_i,
                stride_b4,
                stride_out4_n, stride_out4_c, stride_out4_h, stride_out4_w,
                stride_mask4_n, stride_mask4_c, stride_mask4_h, stride_mask4_w,
                USE_DOT, PRECISION, ACC_DTYPE, BLOCK_M, BLOCK_N, BLOCK_K,
            )


# ---------------------------------------------------------------------------------------------
# launcher (unchecked)

def launch_stem_forward(x, w1, b1, w2a, b2a, w3a, b3a, w4, b4, out1, t2, t3, out4, *, mask1=None, mask4=None,
                        allow_tf32=False, config=None) -> None:
    """One launch computing the four 1x1 branches of an Inception block that read x. Unchecked: arguments as
    ``checked.stem_forward`` validates them.

    out1 <- relu(conv1x1(x, w1) + b1); t2 <- relu(conv1x1(x, w2a) + b2a); t3 <- relu(conv1x1(x, w3a) + b3a);
    out4 <- relu(conv1x1(maxpool2d(x, 3, stride=1, padding=1), w4) + b4).
    x: (N, C_IN, H, W); w*: (c, C_IN, 1, 1); b*: (c,); outputs (N, c, H, W). Any strides. ``mask1`` / ``mask4``
    (uint8, out1's / out4's shape, any strides) receive those outputs' ReLU masks (``tiles.store_relu_mask``) when
    given.
    """
    N, C_IN, H, W = x.shape
    c1, c2, c3, c4 = w1.shape[0], w2a.shape[0], w3a.shape[0], w4.shape[0]
    P = N * H * W
    if P == 0 or c1 + c2 + c3 + c4 == 0:
        return None
    if not w1.stride(1) == w2a.stride(1) == w3a.stride(1):  # the kernel reads the three with one K stride
        w1, w2a, w3a = (w.contiguous() for w in (w1, w2a, w3a))

    kwargs = dict(
        x_ptr=x, w1_ptr=w1, w2_ptr=w2a, w3_ptr=w3a, w4_ptr=w4, b1_ptr=b1, b2_ptr=b2a, b3_ptr=b3a, b4_ptr=b4,
        out1_ptr=out1, t2_ptr=t2, t3_ptr=t3, out4_ptr=out4, mask1_ptr=mask1, mask4_ptr=mask4,
        P=P, P_BUCKET=pixel_bucket(P), H=H, W=W, C_IN=C_IN, C1=c1, C2=c2, C3=c3, C4=c4,
        **strides("x", x),
        stride_w1_o=w1.stride(0), stride_w2_o=w2a.stride(0), stride_w3_o=w3a.stride(0), stride_w123_i=w1.stride(1),
        **strides("w4", w4, "oi"),
        **strides("b1", b1), **strides("b2", b2a), **strides("b3", b3a), **strides("b4", b4),
        **strides("out1", out1), **strides("t2", t2), **strides("t3", t3), **strides("out4", out4),
        **strides("mask1", mask1), **strides("mask4", mask4),
        INDEX=index_dtype(x, out1, t2, t3, out4, mask1, mask4), **mma_meta(x.dtype, allow_tf32),
    )

    def grid(META):
        # main and pool column blocks share BLOCK_N; each range is rounded up on its own
        num_n = triton.cdiv(c1 + c2 + c3, META["BLOCK_N"]) + triton.cdiv(c4, META["BLOCK_N"])
        return tile_grid(P, num_n * META["BLOCK_N"], META["BLOCK_M"], META["BLOCK_N"])

    launch(_stem_forward_kernel, grid, kwargs, config, INTERPRET_CONFIG)
    return None
