"""Any conv of a block program as an implicit GEMM: rectangular kernels (1x7, 7x1, 1x3, 3x1, 5x5, ...), any stride and
padding, bias and ReLU optional, written straight into a channel slice of its destination.

GEMM view: rows are the P = N*OH*OW output pixels, columns the output channels; the reduction runs over the kernel
taps (kh, kw) and blocks of input channels. One launch runs one conv, or the two convs of a split (v3's E block: a
1x3 and a 3x1 on the same input, written to adjacent slices): the grid is the two problems' tile grids end to end, so
the split's input is read by one launch. GoogLeNet's block keeps its own square, stride-1 kernels
(``conv2d_forward``, whose sm_90 code the compile tests pin); both run the tap loop of ``tiles.conv_taps``.

The tiling does not depend on the batch: every output pixel is reduced in the same order whatever batch it comes
in (the autotune key leaves the pixel count out), so once the autotuner has chosen (once per process) an image's
result is bitwise the same in any batch.

Precision as in ``conv2d_forward``: tl.dot with an fp32 accumulator (tf32 for fp32 only when allowed), fp64 through
a broadcast sum. The launcher checks nothing: the program plan (``ops/program_plan_triton.py``) and
``ops/triton_conv.py`` give it tensors whose shapes come from the program or the conv.
"""
import triton
import triton.language as tl

from .launch import FP64_CONFIGS, INTERPRET_CONFIG, FitPrune, index_dtype, launch, mma_meta, strides, tile_grid
from .tiles import conv_taps, pc_ptrs, pixel_coords


@triton.jit
def _conv_tile(
    # pointers (b_ptr: None for a conv without bias; r_ptr: None, or the residual added before the ReLU; s_ptr: None,
    # or the [2, cdiv(P, STATS_ROWS), C_OUT] buffer of each output channel's per-row-group sum and centred squares)
    x_ptr, w_ptr, b_ptr, out_ptr, r_ptr, s_ptr,
    # this program's tile
    pid_m, pid_n,
    # sizes: P = N*OH*OW output pixels
    P, H, W, OH, OW, C_IN, C_OUT,
    # strides
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_w_o, stride_w_i, stride_w_h, stride_w_w,
    stride_b,
    stride_out_n, stride_out_c, stride_out_h, stride_out_w,
    stride_r_n, stride_r_c, stride_r_h, stride_r_w,
    stride_s_k, stride_s_t,
    # meta-parameters
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
    RELU: tl.constexpr, R_SCALE: tl.constexpr, STATS_ROWS: tl.constexpr,
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(pid_m.dtype)  # [BM] output pixels
    mask_m = offs_m < P
    n_idx, oh, ow = pixel_coords(offs_m, OH, OW)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(pid_n.dtype)  # [BN] output channels
    mask_n = offs_n < C_OUT
    offs_k = tl.arange(0, BLOCK_K).to(pid_m.dtype)  # [BK] input channels of one step
    acc = conv_taps(tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE), x_ptr, w_ptr, n_idx, oh, ow, mask_m, offs_n,
                    mask_n, offs_k, H, W, C_IN,
                    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
                    stride_w_o, stride_w_i, stride_w_h, stride_w_w,
                    KH, KW, SH, SW, PH, PW, USE_DOT, PRECISION, BLOCK_K)
    if b_ptr is not None:
        acc += tl.load(b_ptr + offs_n * stride_b, mask=mask_n, other=0.0).to(ACC_DTYPE)[None, :]
    if r_ptr is not None:  # Inception-ResNet's projection: r + scale * conv
        acc = tl.load(pc_ptrs(r_ptr, n_idx, oh, ow, offs_n, stride_r_n, stride_r_c, stride_r_h, stride_r_w),
                      mask=mask_m[:, None] & mask_n[None, :], other=0.0).to(ACC_DTYPE) + R_SCALE * acc
    if RELU:
        acc = tl.where(acc < 0, 0.0, acc)  # keeps NaN, as torch.relu does
    if s_ptr is not None:
        # BatchNorm's batch statistics of the values as stored, per group of STATS_ROWS pixels (a fixed grouping,
        # whatever the tile: the combine's order, and so its bits, does not depend on the autotuner's choice)
        _store_channel_stats(acc.to(out_ptr.dtype.element_ty).to(ACC_DTYPE), s_ptr, pid_m, offs_n, mask_n, P,
                             stride_s_k, stride_s_t, STATS_ROWS, BLOCK_M, BLOCK_N)
    tl.store(pc_ptrs(out_ptr, n_idx, oh, ow, offs_n, stride_out_n, stride_out_c, stride_out_h, stride_out_w),
             acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


@triton.jit
def _store_channel_stats(v, s_ptr, pid_m, offs_n, mask_n, P, stride_s_k, stride_s_t,
                         ROWS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # v [BM, BN]: for each group of ROWS pixels, each channel's sum and sum of squares about the group's own mean
    # (Chan's form: combined later without the cancellation of sum(v^2) - n * mean^2)
    GROUPS: tl.constexpr = BLOCK_M // ROWS
    rows = pid_m * GROUPS + tl.arange(0, GROUPS).to(pid_m.dtype)  # [G] group index
    pix = rows[:, None] * ROWS + tl.arange(0, ROWS)[None, :]  # [G, ROWS] pixel index
    valid = (pix < P)[:, :, None]
    v3 = tl.where(valid, tl.reshape(v, (GROUPS, ROWS, BLOCK_N)), 0.0)
    count = tl.minimum(P - rows * ROWS, ROWS)  # [G], <= 0 for groups past the last pixel
    total = tl.sum(v3, axis=1)  # [G, BN]
    mean = total / tl.maximum(count, 1).to(v.dtype)[:, None]
    centred = tl.where(valid, v3 - mean[:, None, :], 0.0)
    squares = tl.sum(centred * centred, axis=1)
    ptrs = s_ptr + rows[:, None] * stride_s_t + offs_n[None, :]
    mask = (count > 0)[:, None] & mask_n[None, :]
    tl.store(ptrs, total, mask=mask)
    tl.store(ptrs + stride_s_k, squares, mask=mask)


def _config(m, n, k, warps, stages):
    return triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=warps, num_stages=stages)


# tl.dot configs (64-row tiles for Hopper's wgmma, BLOCK_K=16 for narrow inputs); fp64 tunes over FP64_CONFIGS
GENERAL_CONV_CONFIGS = [
    _config(128, 128, 32, 8, 3),
    _config(128, 64, 32, 4, 4),
    _config(64, 128, 32, 4, 4),
    _config(64, 64, 32, 4, 4),
    _config(128, 32, 16, 4, 4),
    _config(64, 32, 16, 4, 3),
]
# fp32 without tf32 (tl.dot on CUDA cores, operands in registers): tiles that do not spill on sm_90 (offline compiles
# of the v3 blocks' convs; 64x32x16 with 4 warps spilled 48-72 bytes)
GENERAL_CONV_IEEE_CONFIGS = [_config(128, 32, 16, 4, 4), _config(64, 32, 16, 8, 3)]
# ... and with BatchNorm's statistics in the epilogue, where both of those spilled (up to 176 bytes, the stride-2
# 3x3 convs of v3's D block): 64x64x16 with 8 warps did not, on any v3 block's conv
GENERAL_CONV_IEEE_STATS_CONFIGS = [_config(64, 64, 16, 8, 3), _config(64, 64, 16, 8, 4)]
# tf32 holds fp32 operands: 64x128x32 with 4 warps spilled (32 bytes, the 7x1 conv of v3's C block)
# (copies: FitPrune tells the lists apart by identity)
GENERAL_CONV_TF32_CONFIGS = [_config(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"], c.num_warps,
                                     c.num_stages)
                             for c in GENERAL_CONV_CONFIGS
                             if (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps) != (64, 128, 4)]

_SHAPE_KEYS = ["KH", "KW", "SH", "SW", "PH", "PW", "RELU"]


@triton.autotune(
    configs=GENERAL_CONV_CONFIGS + GENERAL_CONV_IEEE_CONFIGS + GENERAL_CONV_IEEE_STATS_CONFIGS
    + GENERAL_CONV_TF32_CONFIGS + FP64_CONFIGS,
    # no pixel count: the tiling (and so every pixel's summation order) must not depend on the batch;
    # stride_sa_t (C_OUT_A with statistics, else 0) tells the statistics' variant apart
    key=["C_IN", "C_OUT_A", "C_OUT_B", "H", "W", "OH", "OW", "stride_x_c", "stride_outa_c", "stride_outb_c",
         "stride_sa_t"]
    + [k + "_A" for k in _SHAPE_KEYS] + [k + "_B" for k in _SHAPE_KEYS],
    prune_configs_by={"early_config_prune": FitPrune(
        stage_elems=lambda m, n, k: m * k + k * n,
        dtype_arg="x_ptr",
        extents=lambda a: {"BLOCK_N": max(a["C_OUT_A"], a["C_OUT_B"]), "BLOCK_K": a["C_IN"]},
        precision_configs={"ieee": GENERAL_CONV_IEEE_CONFIGS, "ieee+stats": GENERAL_CONV_IEEE_STATS_CONFIGS,
                           "tf32": GENERAL_CONV_TF32_CONFIGS},
        stats_arg="sa_ptr",
        output_channel_strides=("stride_outa_c",),
    )},
)
@triton.jit
def _conv2d_general_kernel(
    # pointers: the shared input, then problem a (with its residual, or None) and problem b (absent when C_OUT_B is 0)
    x_ptr, wa_ptr, ba_ptr, outa_ptr, ra_ptr, sa_ptr, wb_ptr, bb_ptr, outb_ptr,
    # sizes
    P, H, W, OH, OW, C_IN, C_OUT_A, C_OUT_B,
    # strides
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_wa_o, stride_wa_i, stride_wa_h, stride_wa_w,
    stride_ba,
    stride_outa_n, stride_outa_c, stride_outa_h, stride_outa_w,
    stride_ra_n, stride_ra_c, stride_ra_h, stride_ra_w,
    stride_sa_k, stride_sa_t,
    stride_wb_o, stride_wb_i, stride_wb_h, stride_wb_w,
    stride_bb,
    stride_outb_n, stride_outb_c, stride_outb_h, stride_outb_w,
    # meta-parameters
    KH_A: tl.constexpr, KW_A: tl.constexpr, SH_A: tl.constexpr, SW_A: tl.constexpr, PH_A: tl.constexpr,
    PW_A: tl.constexpr, RELU_A: tl.constexpr, R_SCALE_A: tl.constexpr, STATS_ROWS: tl.constexpr,
    KH_B: tl.constexpr, KW_B: tl.constexpr, SH_B: tl.constexpr, SW_B: tl.constexpr, PH_B: tl.constexpr,
    PW_B: tl.constexpr, RELU_B: tl.constexpr,
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # flattened program ids [0, tiles_a) are problem a's tiles (column blocks fastest), the rest problem b's
    pid = tl.program_id(1).to(INDEX) * tl.num_programs(0) + tl.program_id(0)
    num_n_a = tl.cdiv(C_OUT_A, BLOCK_N)
    tiles_a = tl.cdiv(P, BLOCK_M) * num_n_a
    if pid < tiles_a:
        _conv_tile(x_ptr, wa_ptr, ba_ptr, outa_ptr, ra_ptr, sa_ptr, pid // num_n_a, pid % num_n_a,
                   P, H, W, OH, OW, C_IN, C_OUT_A,
                   stride_x_n, stride_x_c, stride_x_h, stride_x_w,
                   stride_wa_o, stride_wa_i, stride_wa_h, stride_wa_w,
                   stride_ba,
                   stride_outa_n, stride_outa_c, stride_outa_h, stride_outa_w,
                   stride_ra_n, stride_ra_c, stride_ra_h, stride_ra_w,
                   stride_sa_k, stride_sa_t,
                   KH_A, KW_A, SH_A, SW_A, PH_A, PW_A, RELU_A, R_SCALE_A, STATS_ROWS, USE_DOT, PRECISION, ACC_DTYPE,
                   BLOCK_M, BLOCK_N, BLOCK_K)
    elif C_OUT_B > 0:
        num_n_b = tl.cdiv(C_OUT_B, BLOCK_N)
        pid_b = pid - tiles_a
        pid_m = pid_b // num_n_b
        if pid_m * BLOCK_M < P:  # a grid spilled onto axis 1 rounds up past the last tile
            _conv_tile(x_ptr, wb_ptr, bb_ptr, outb_ptr, None, None, pid_m, pid_b % num_n_b,
                       P, H, W, OH, OW, C_IN, C_OUT_B,
                       stride_x_n, stride_x_c, stride_x_h, stride_x_w,
                       stride_wb_o, stride_wb_i, stride_wb_h, stride_wb_w,
                       stride_bb,
                       stride_outb_n, stride_outb_c, stride_outb_h, stride_outb_w,
                       0, 0, 0, 0,
                       0, 0,
                       KH_B, KW_B, SH_B, SW_B, PH_B, PW_B, RELU_B, 1.0, STATS_ROWS, USE_DOT, PRECISION, ACC_DTYPE,
                       BLOCK_M, BLOCK_N, BLOCK_K)


def _problem(suffix, weight, bias, out, kernel, stride, padding, relu):
    up = suffix.upper()
    return {
        f"w{suffix}_ptr": weight, f"b{suffix}_ptr": bias, f"out{suffix}_ptr": out, f"C_OUT_{up}": weight.shape[0],
        **strides(f"w{suffix}", weight, "oihw"), f"stride_b{suffix}": 0 if bias is None else bias.stride(0),
        **strides(f"out{suffix}", out),
        f"KH_{up}": kernel[0], f"KW_{up}": kernel[1], f"SH_{up}": stride[0], f"SW_{up}": stride[1],
        f"PH_{up}": padding[0], f"PW_{up}": padding[1], f"RELU_{up}": relu,
    }


# pixels per group of the batch-statistics partials (every tile's BLOCK_M is a multiple of it)
STATS_ROWS = 32


def stats_groups(pixels: int) -> int:
    """Rows of a conv's batch-statistics partial buffer: one per STATS_ROWS output pixels."""
    return triton.cdiv(pixels, STATS_ROWS)


def launch_conv2d_general(x, convs, *, residual=None, stats=None, allow_tf32=False, config=None) -> None:
    """One launch running one or two convs on ``x``: ``convs`` is a list of one or two ``(weight, bias, out, kernel,
    stride, padding, relu)``; each ``out[...] <- act(conv2d(x, weight, bias, stride, padding))``, with ``bias`` None
    for none and ``relu`` a bool. Both outputs have the same (N, OH, OW). ``residual``: None, or ``(r, scale)`` for
    the first conv only: ``out <- act(r + scale * conv2d(...))``, r shaped as out. ``stats``: None, or for the first
    conv a [2, stats_groups(P), C_out] buffer (contiguous, fp32; fp64 for fp64) that receives, per group of
    STATS_ROWS output pixels and output channel, the sum and the sum of squares about the group's mean of the values
    stored (BatchNorm's batch statistics, combined by ``batchnorm_forward``). Any strides for every tensor.
    Unchecked."""
    if not 1 <= len(convs) <= 2:
        raise ValueError(f"one launch runs one or two convs, got {len(convs)}")
    N, C_IN, H, W = x.shape
    out_a = convs[0][2]
    OH, OW = out_a.shape[2], out_a.shape[3]
    P = N * OH * OW
    if P == 0:
        return
    # an absent problem b repeats a's tensors with no channels: its tile range is empty
    second = convs[1] if len(convs) == 2 else convs[0]
    kwargs = dict(x_ptr=x, P=P, H=H, W=W, OH=OH, OW=OW, C_IN=C_IN, **strides("x", x),
                  **_problem("a", *convs[0]), **_problem("b", *second),
                  ra_ptr=None if residual is None else residual[0],
                  **strides("ra", None if residual is None else residual[0]),
                  R_SCALE_A=1.0 if residual is None else float(residual[1]),
                  sa_ptr=stats, stride_sa_k=0 if stats is None else stats.stride(0),
                  stride_sa_t=0 if stats is None else stats.stride(1), STATS_ROWS=STATS_ROWS,
                  INDEX=index_dtype(x, *(c[2] for c in convs), None if residual is None else residual[0]),
                  **mma_meta(x.dtype, allow_tf32))
    if len(convs) == 1:
        kwargs["C_OUT_B"] = 0
    c_a, c_b = kwargs["C_OUT_A"], kwargs["C_OUT_B"]

    def grid(META):
        bn = META["BLOCK_N"]
        return tile_grid(P, triton.cdiv(c_a, bn) * bn + c_b, META["BLOCK_M"], bn)

    launch(_conv2d_general_kernel, grid, kwargs, config, INTERPRET_CONFIG)
