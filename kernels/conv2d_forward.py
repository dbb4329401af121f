"""Fused conv2d + bias + ReLU forward (stride 1, 'same' padding, odd square kernel) as an implicit GEMM.

GEMM view: rows are the P = N*H*W output pixels, columns the C_OUT output channels, and the reduction
runs over K = C_IN*k*k, over (kh, kw) and blocks of input channels. Two forms of that loop, chosen per config by
the FLAT meta-parameter: one flattened loop over every (tap, channel block), which Triton's pipeliner can keep full
across taps (with C_IN / BLOCK_K of 1 to 3, nested loops drain the pipeline at each of the 9 or 25 taps), for
num_warps=4 configs; and nested loops for num_warps=8 (``tiles.conv_taps``, shared with ``conv2d_general``), where
the flattened form was miscompiled (pytorch#173068).

``launch_conv2d_bias_relu_pair`` runs two such convs with the same pixels (the block's 3x3 on t2 and 5x5 on t3)
in one grouped launch; both kernels share the ``conv_tile`` body.

Every tensor comes with explicit strides, so NCHW, channels_last and channel-slice views need no copy.
Offsets are int32, or int64 (the INDEX meta-parameter) when a tensor spans 2**31 elements or more: int64 offset
tiles double the registers the addresses take.

Precision: fp16/bf16/fp32 use ``tl.dot`` with an fp32 accumulator (tf32 for fp32 only when allowed).
fp64 (used for gradcheck) accumulates in fp64 with ``tl.sum`` of a broadcast product instead of
``tl.dot``: fp64 dot support differs between Triton versions and GPUs, and the sum works everywhere.

The launchers here check nothing (``checked.py`` validates the public entry points once).
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
from .tiles import bias_relu, conv_taps, mma, pc_ptrs, pixel_coords, program_tile, store_relu_mask


@triton.jit
def _conv_flat_k(
    acc,
    # pointers
    x_ptr, w_ptr,
    # tile: pixel coordinates and mask [BM], output channels and mask [BN], the channel offsets of a K step [BK]
    n_idx, oh, ow, mask_m, offs_n, mask_n, offs_k,
    # sizes
    H, W, C_IN,
    # strides
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_w_o, stride_w_i, stride_w_h, stride_w_w,
    # meta-parameters
    KSIZE: tl.constexpr, USE_DOT: tl.constexpr, PRECISION: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # acc += the k x k conv of x at these pixels: one loop over every (tap, channel block), so the loads of the
    # next tap are in flight while this one multiplies
    K_BLOCKS = tl.cdiv(C_IN, BLOCK_K)
    for step in range(0, KSIZE * KSIZE * K_BLOCKS):
        tap = step // K_BLOCKS
        chans = (step - tap * K_BLOCKS) * BLOCK_K + offs_k  # [BK]
        kh = tap // KSIZE
        kw = tap - kh * KSIZE
        ih = oh + (kh - KSIZE // 2)
        iw = ow + (kw - KSIZE // 2)
        row_ok = mask_m & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)  # [BM]; out-of-image taps are the padding
        mask_k = chans < C_IN
        a = tl.load(x_ptr + (n_idx * stride_x_n + ih * stride_x_h + iw * stride_x_w)[:, None]
                    + chans[None, :] * stride_x_c, mask=row_ok[:, None] & mask_k[None, :], other=0.0)  # [BM, BK]
        b = tl.load(w_ptr + (offs_n * stride_w_o + kh * stride_w_h + kw * stride_w_w)[None, :]
                    + chans[:, None] * stride_w_i, mask=mask_k[:, None] & mask_n[None, :], other=0.0)  # [BK, BN]
        acc = mma(acc, a, b, USE_DOT, PRECISION)
    return acc


@triton.jit
def conv_tile(
    # pointers (mask_ptr: None, or where the output's ReLU mask goes)
    x_ptr, w_ptr, b_ptr, out_ptr, mask_ptr,
    # this program's tile
    pid_m, pid_n,
    # sizes
    P, H, W, C_IN, C_OUT,
    # strides
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_w_o, stride_w_i, stride_w_h, stride_w_w,
    stride_b,
    stride_out_n, stride_out_c, stride_out_h, stride_out_w,
    stride_mask_n, stride_mask_c, stride_mask_h, stride_mask_w,
    # meta-parameters
    KSIZE: tl.constexpr,
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr, FLAT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # out[pixel block pid_m, channel block pid_n] <- relu(conv2d + bias); the conv body of both kernels
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(pid_m.dtype)  # [BM] pixels
    mask_m = offs_m < P
    n_idx, oh, ow = pixel_coords(offs_m, H, W)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(pid_n.dtype)  # [BN]
    mask_n = offs_n < C_OUT
    offs_k = tl.arange(0, BLOCK_K).to(pid_m.dtype)  # [BK]

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    if FLAT:
        acc = _conv_flat_k(acc, x_ptr, w_ptr, n_idx, oh, ow, mask_m, offs_n, mask_n, offs_k, H, W, C_IN,
                           stride_x_n, stride_x_c, stride_x_h, stride_x_w,
                           stride_w_o, stride_w_i, stride_w_h, stride_w_w,
                           KSIZE, USE_DOT, PRECISION, BLOCK_K)
    else:  # 'same' padding, stride 1
        acc = conv_taps(acc, x_ptr, w_ptr, n_idx, oh, ow, mask_m, offs_n, mask_n, offs_k, H, W, C_IN,
                        stride_x_n, stride_x_c, stride_x_h, stride_x_w,
                        stride_w_o, stride_w_i, stride_w_h, stride_w_w,
                        KSIZE, KSIZE, 1, 1, KSIZE // 2, KSIZE // 2, USE_DOT, PRECISION, BLOCK_K)

    acc = bias_relu(acc, tl.load(b_ptr + offs_n * stride_b, mask=mask_n, other=0.0).to(ACC_DTYPE))
    y = acc.to(out_ptr.dtype.element_ty)
    out_mask = mask_m[:, None] & mask_n[None, :]
    tl.store(pc_ptrs(out_ptr, n_idx, oh, ow, offs_n, stride_out_n, stride_out_c, stride_out_h, stride_out_w), y,
             mask=out_mask)
    if mask_ptr is not None:
        store_relu_mask(pc_ptrs(mask_ptr, n_idx, oh, ow, offs_n,
                                stride_mask_n, stride_mask_c, stride_mask_h, stride_mask_w), y, out_mask)


def _with_loop_form(config):
    """A config dict with FLAT set as the module docstring says: the flattened K loop unless num_warps is 8."""
    if config is None or "FLAT" in config:
        return config
    return {**config, "FLAT": config.get("num_warps", 4) < 8}


# Under the interpreter the nested loops: the flattened one recomputes its addresses at every step, three times the
# Python work per step there (tests run both forms explicitly).
INTERPRET_NESTED = {**INTERPRET_CONFIG, "FLAT": False}


def _config(m, n, k, warps, stages):
    return triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "FLAT": warps < 8}, num_warps=warps,
                         num_stages=stages)


# tl.dot configs: large tiles for wide layers, BLOCK_K=16 for the narrow reduced inputs (c3a=16), 64-row tiles
# for Hopper's wgmma; fp64 tunes over the FP64 shapes instead (FitPrune keeps one set by USE_DOT).
CONV_CONFIGS = [
    _config(128, 128, 32, 8, 3),
    _config(128, 64, 32, 4, 4),
    _config(64, 128, 32, 4, 4),
    _config(128, 64, 64, 8, 3),
    _config(64, 64, 32, 4, 4),
    _config(128, 32, 16, 4, 4),
    _config(64, 32, 16, 4, 3),
]
# fp32 without tf32: tl.dot on CUDA cores, operands and accumulator in registers, so the larger tiles spill
CONV_IEEE_CONFIGS = [_config(128, 32, 16, 4, 4), _config(64, 32, 16, 4, 3)]
CONV_ALL_CONFIGS = CONV_CONFIGS + CONV_IEEE_CONFIGS + [
    _config(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"], c.num_warps, c.num_stages)
    for c in FP64_CONFIGS]


@triton.autotune(
    configs=CONV_ALL_CONFIGS,
    # the channel strides tell NCHW from channels_last: a different access pattern
    key=["P_BUCKET", "C_OUT", "C_IN", "KSIZE", "stride_x_c", "stride_out_c"],
    prune_configs_by={"early_config_prune": FitPrune(
        stage_elems=lambda m, n, k: m * k + k * n,  # A [BM, BK] + B [BK, BN]
        dtype_arg="x_ptr",
        extents=lambda a: {"BLOCK_M": a["P_BUCKET"], "BLOCK_N": a["C_OUT"], "BLOCK_K": a["C_IN"]},
        precision_configs={"ieee": CONV_IEEE_CONFIGS},
        output_channel_strides=("stride_out_c",),
    )},
)
@triton.jit(do_not_specialize=["P_BUCKET"])
def _conv2d_bias_relu_kernel(
    # pointers
    x_ptr, w_ptr, b_ptr, out_ptr, mask_ptr,
    # sizes (P_BUCKET: autotune key only)
    P, P_BUCKET, H, W, C_IN, C_OUT,
    # strides
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_w_o, stride_w_i, stride_w_h, stride_w_w,
    stride_b,
    stride_out_n, stride_out_c, stride_out_h, stride_out_w,
    stride_mask_n, stride_mask_c, stride_mask_h, stride_mask_w,
    # meta-parameters
    KSIZE: tl.constexpr,
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr,
    FLAT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m, pid_n, in_range = program_tile(tl.cdiv(C_OUT, BLOCK_N), P, BLOCK_M, INDEX)
    if in_range:
        conv_tile(x_ptr, w_ptr, b_ptr, out_ptr, mask_ptr,
                  pid_m, pid_n,
                  P, H, W, C_IN, C_OUT,
                  stride_x_n, stride_x_c, stride_x_h, stride_x_w,
                  stride_w_o, stride_w_i, stride_w_h, stride_w_w,
                  stride_b,
                  stride_out_n, stride_out_c, stride_out_h, stride_out_w,
                  stride_mask_n, stride_mask_c, stride_mask_h, stride_mask_w,
                  KSIZE, USE_DOT, PRECISION, ACC_DTYPE, FLAT, BLOCK_M, BLOCK_N, BLOCK_K)


# One config serves both halves of a pair, tuned on both problems together, over the single conv's configs.
@triton.autotune(
    configs=CONV_ALL_CONFIGS,
    key=["P_BUCKET", "C_IN_A", "C_OUT_A", "KSIZE_A", "stride_xa_c", "stride_outa_c",
         "C_IN_B", "C_OUT_B", "KSIZE_B", "stride_xb_c", "stride_outb_c"],
    prune_configs_by={"early_config_prune": FitPrune(
        stage_elems=lambda m, n, k: m * k + k * n,  # A [BM, BK] + B [BK, BN], one half at a time
        dtype_arg="xa_ptr",
        precision_configs={"ieee": CONV_IEEE_CONFIGS},
        output_channel_strides=("stride_outa_c", "stride_outb_c"),
        extents=lambda a: {"BLOCK_M": a["P_BUCKET"], "BLOCK_N": max(a["C_OUT_A"], a["C_OUT_B"]),
                           "BLOCK_K": max(a["C_IN_A"], a["C_IN_B"])},
    )},
)
@triton.jit(do_not_specialize=["P_BUCKET"])
def _conv2d_bias_relu_pair_kernel(
    # pointers: problem a, then problem b (mask*_ptr: None, or where that output's ReLU mask goes)
    xa_ptr, wa_ptr, ba_ptr, outa_ptr, maska_ptr,
    xb_ptr, wb_ptr, bb_ptr, outb_ptr, maskb_ptr,
    # sizes (P_BUCKET: autotune key only)
    P, P_BUCKET, H, W, C_IN_A, C_OUT_A, C_IN_B, C_OUT_B,
    # strides
    stride_xa_n, stride_xa_c, stride_xa_h, stride_xa_w,
    stride_wa_o, stride_wa_i, stride_wa_h, stride_wa_w,
    stride_ba,
    stride_outa_n, stride_outa_c, stride_outa_h, stride_outa_w,
    stride_maska_n, stride_maska_c, stride_maska_h, stride_maska_w,
    stride_xb_n, stride_xb_c, stride_xb_h, stride_xb_w,
    stride_wb_o, stride_wb_i, stride_wb_h, stride_wb_w,
    stride_bb,
    stride_outb_n, stride_outb_c, stride_outb_h, stride_outb_w,
    stride_maskb_n, stride_maskb_c, stride_maskb_h, stride_maskb_w,
    # meta-parameters
    KSIZE_A: tl.constexpr, KSIZE_B: tl.constexpr,
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr,
    FLAT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # Two problems with the same pixels (P = N*H*W), both C_OUT > 0. Flattened program ids [0, tiles_a) are
    # problem a's tiles, the rest problem b's; within each, column blocks fastest as in program_tile.
    pid = tl.program_id(1).to(INDEX) * tl.num_programs(0) + tl.program_id(0)
    num_n_a = tl.cdiv(C_OUT_A, BLOCK_N)
    tiles_a = tl.cdiv(P, BLOCK_M) * num_n_a
    if pid < tiles_a:
        conv_tile(xa_ptr, wa_ptr, ba_ptr, outa_ptr, maska_ptr,
                  pid // num_n_a, pid % num_n_a,
                  P, H, W, C_IN_A, C_OUT_A,
                  stride_xa_n, stride_xa_c, stride_xa_h, stride_xa_w,
                  stride_wa_o, stride_wa_i, stride_wa_h, stride_wa_w,
                  stride_ba,
                  stride_outa_n, stride_outa_c, stride_outa_h, stride_outa_w,
                  stride_maska_n, stride_maska_c, stride_maska_h, stride_maska_w,
                  KSIZE_A, USE_DOT, PRECISION, ACC_DTYPE, FLAT, BLOCK_M, BLOCK_N, BLOCK_K)
    else:
        num_n_b = tl.cdiv(C_OUT_B, BLOCK_N)
        pid_b = pid - tiles_a
        pid_m = pid_b // num_n_b
        # a grid spilled onto axis 1 rounds up past the last tile
        if pid_m * BLOCK_M < P:
            conv_tile(xb_ptr, wb_ptr, bb_ptr, outb_ptr, maskb_ptr,
                      pid_m, pid_b % num_n_b,
                      P, H, W, C_IN_B, C_OUT_B,
                      stride_xb_n, stride_xb_c, stride_xb_h, stride_xb_w,
                      stride_wb_o, stride_wb_i, stride_wb_h, stride_wb_w,
                      stride_bb,
                      stride_outb_n, stride_outb_c, stride_outb_h, stride_outb_w,
                      stride_maskb_n, stride_maskb_c, stride_maskb_h, stride_maskb_w,
                      KSIZE_B, USE_DOT, PRECISION, ACC_DTYPE, FLAT, BLOCK_M, BLOCK_N, BLOCK_K)


# ---------------------------------------------------------------------------------------------
# launchers (unchecked)

def _conv_args(suffix, x, weight, bias, out, mask):
    # one problem's pointers, channels and strides, named as the kernels name them (suffix "" or "a" / "b")
    up = f"_{suffix.upper()}" if suffix else ""
    return {
        f"x{suffix}_ptr": x, f"w{suffix}_ptr": weight, f"b{suffix}_ptr": bias, f"out{suffix}_ptr": out,
        f"mask{suffix}_ptr": mask,
        f"C_IN{up}": x.shape[1], f"C_OUT{up}": weight.shape[0],
        **strides(f"x{suffix}", x), **strides(f"w{suffix}", weight, "oihw"), **strides(f"b{suffix}", bias),
        **strides(f"out{suffix}", out), **strides(f"mask{suffix}", mask),
    }


def launch_conv2d_bias_relu(x, weight, bias, out, *, mask=None, allow_tf32=False, config=None):
    """out <- relu(conv2d(x, weight, bias, stride=1, padding=k//2)), one kernel launch. Unchecked: arguments as
    ``checked.conv2d_bias_relu`` validates them. ``mask`` (uint8, out's shape, any strides) receives the ReLU's
    backward mask (``tiles.store_relu_mask``) when given.

    x: (N, C_IN, H, W); weight: (C_OUT, C_IN, k, k) with k odd; bias: (C_OUT,); out: (N, C_OUT, H, W).
    Any strides (NCHW, channels_last, channel slices). ``config``: None (autotuned on GPU, a small
    fixed tile under the interpreter) or {"BLOCK_M", "BLOCK_N", "BLOCK_K", "num_warps", "num_stages"};
    a forced fp64 tile should stay small (fp64 holds a BLOCK_M x BLOCK_K x BLOCK_N product in registers).
    Returns out.
    """
    N, _, H, W = x.shape
    C_OUT = weight.shape[0]
    P = N * H * W
    if out.numel() == 0:
        return out
    kwargs = dict(**_conv_args("", x, weight, bias, out, mask), P=P, P_BUCKET=pixel_bucket(P), H=H, W=W,
                  KSIZE=weight.shape[2], INDEX=index_dtype(x, weight, out, mask), **mma_meta(x.dtype, allow_tf32))
    launch(_conv2d_bias_relu_kernel, lambda META: tile_grid(P, C_OUT, META["BLOCK_M"], META["BLOCK_N"]), kwargs,
           _with_loop_form(config), INTERPRET_NESTED)
    return out


def launch_conv2d_bias_relu_pair(x_a, w_a, b_a, out_a, x_b, w_b, b_b, out_b, *, mask_a=None, mask_b=None,
                                 allow_tf32=False, config=None) -> None:
    """ONE launch computing out_a <- relu(conv2d(x_a, w_a, b_a, padding k_a//2)) and
    out_b <- relu(conv2d(x_b, w_b, b_b, padding k_b//2)): the block's 3x3 and 5x5 convs as one grouped launch.
    Unchecked: arguments as ``checked.conv2d_bias_relu_pair`` validates them.

    Same N, H, W, dtype and device for both problems; channel counts and odd kernel sizes may differ; any
    strides for every tensor. The grid is the two problems' tile grids end to end: flattened program ids
    below problem a's tile count work on a, the rest on b (k_a and k_b are constexpr, so each path's loops
    are specialised). ``mask_a`` / ``mask_b``: the ReLU masks, as in ``launch_conv2d_bias_relu``. ``config`` as in
    ``launch_conv2d_bias_relu``, one tile for both halves. An empty problem is
    skipped: the other then runs alone in the single-problem kernel (still one launch); nothing launches when
    both are empty.
    """
    N, _, H, W = x_a.shape
    C_OUT_A, C_OUT_B = w_a.shape[0], w_b.shape[0]
    P = N * H * W
    if P == 0 or (C_OUT_A == 0 and C_OUT_B == 0):
        return
    # the pair kernel assumes both halves have column blocks
    if C_OUT_B == 0:
        launch_conv2d_bias_relu(x_a, w_a, b_a, out_a, mask=mask_a, allow_tf32=allow_tf32, config=config)
        return
    if C_OUT_A == 0:
        launch_conv2d_bias_relu(x_b, w_b, b_b, out_b, mask=mask_b, allow_tf32=allow_tf32, config=config)
        return

    kwargs = dict(**_conv_args("a", x_a, w_a, b_a, out_a, mask_a), **_conv_args("b", x_b, w_b, b_b, out_b, mask_b),
                  P=P, P_BUCKET=pixel_bucket(P), H=H, W=W, KSIZE_A=w_a.shape[2], KSIZE_B=w_b.shape[2],
                  INDEX=index_dtype(x_a, w_a, out_a, mask_a, x_b, w_b, out_b, mask_b),
                  **mma_meta(x_a.dtype, allow_tf32))

    def grid(META):
        # problem a's columns rounded up to whole column blocks, then b's: both tile grids, end to end
        bn = META["BLOCK_N"]
        return tile_grid(P, triton.cdiv(C_OUT_A, bn) * bn + C_OUT_B, META["BLOCK_M"], bn)

    launch(_conv2d_bias_relu_pair_kernel, grid, kwargs, _with_loop_form(config), INTERPRET_NESTED)
