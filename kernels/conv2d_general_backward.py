"""Backward of the general conv (``conv2d_general``): ``y = relu?(conv2d(x, w, b, stride, padding))`` for any
kernel, stride and padding, as two implicit GEMMs.

- input grad: ``gx[p, ci] (+)= sum_{kh, kw, co} g'[(p + pad - (kh, kw)) / stride, co] * w[co, ci, kh, kw]``, the
  sum over the taps whose output position is whole and inside the output; g' = grad_y, zeroed where the saved y is
  ``<= 0`` when the conv has a ReLU (``tiles.relu_grad``, as PyTorch's ReLU backward). One launch sums the input
  grads of one or two convs (a split: two convs reading the same input), and may add to what ``gx`` holds
  (ACCUMULATE: several branches read the block's input).
- weight and bias grads: ``gw[co, ci, kh, kw] = sum_p g'[p, co] * x[p * stride + (kh, kw) - pad, ci]`` and
  ``gb[co] = sum_p g'[p, co]``, one program per (output-channel block, input-channel block, tap, pixel chunk).
  When those tiles alone fill a wave of the GPU's SMs, or the pixels fit one chunk, there is one chunk and the programs
  write the grads; otherwise the pixel sum is split into fixed chunks (``weight_grad_splits``) whose fp32
  partial sums a second launch adds up in a fixed order, as GoogLeNet's weight grads do. No atomics: bitwise
  reproducible either way. Without ``x`` only the bias grad is computed (the bias of a commuted average pool,
  added after the pool).

Accumulation in fp32 (fp64 for fp64); tl.dot under the forward's precision rule (tf32 for fp32 only when allowed).
Unchecked launchers, as ``conv2d_general``'s: the program plan's backward calls them with shapes it built.
"""
import triton
import triton.language as tl

from .conv2d_backward import partial_buffer, pixel_splits, reduce_partials
from .conv2d_general import GENERAL_CONV_CONFIGS, GENERAL_CONV_IEEE_CONFIGS, GENERAL_CONV_TF32_CONFIGS
from .launch import (
    FP64_CONFIGS,
    INTERPRET_CONFIG,
    INTERPRET_WGRAD_CONFIG,
    FitPrune,
    index_dtype,
    launch,
    mma_meta,
    pixel_bucket,
    strides,
    tile_grid,
)
from .tiles import chunk_row, mma, pc_ptrs, pixel_coords, relu_grad, store_partial


def _copies(configs):
    # FitPrune tells a kernel's precision lists apart by identity: each kernel gets its own objects
    return [triton.Config(dict(c.kwargs), num_warps=c.num_warps, num_stages=c.num_stages) for c in configs]


# The input grad loads two A tiles (the gradient and the ReLU mask): of the forward's fp32 lists, the tiles that did
# not spill on sm_90 here (offline compiles of v3 C and D's backward: 128x32x16 with 4 warps spilled 120 bytes in
# ieee; in tf32 128x64x32 with 4 warps 568-1200, 128x128x32 with 8 warps 96, and 128x32x16 with 4 warps 136 on D's
# stride-2 3x3 convs once the mask became a byte tensor)
DGRAD_IEEE_CONFIGS = [c for c in _copies(GENERAL_CONV_IEEE_CONFIGS) if c.num_warps == 8]
DGRAD_TF32_CONFIGS = [c for c in _copies(GENERAL_CONV_TF32_CONFIGS)
                      if (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps)
                      not in ((128, 64, 4), (128, 128, 8), (128, 32, 4))]


@triton.jit
def _dgrad_taps(
    acc,
    # pointers: the conv's output gradient, its saved output (for the ReLU mask), its weight
    gy_ptr, y_ptr, w_ptr,
    # tile: input pixel coordinates and mask [BM], input channels and mask [BN], channel offsets of a K step [BK]
    img, ih, iw, mask_m, offs_n, mask_n, offs_k,
    # sizes (of the conv's output)
    OH, OW, C_OUT,
    # strides
    stride_gy_n, stride_gy_c, stride_gy_h, stride_gy_w,
    stride_y_n, stride_y_c, stride_y_h, stride_y_w,
    stride_w_o, stride_w_i, stride_w_h, stride_w_w,
    # meta-parameters
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
    RELU: tl.constexpr, USE_DOT: tl.constexpr, PRECISION: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # acc[BM input pixels, BN input channels] += this conv's input gradient
    for kh in range(KH):
        num_h = ih + (PH - kh)  # = oh * SH when this tap of output row oh reads row ih
        oh = num_h // SH
        ok_h = mask_m & (num_h >= 0) & (num_h % SH == 0) & (oh < OH)
        for kw in range(KW):
            num_w = iw + (PW - kw)
            ow = num_w // SW
            ok = ok_h & (num_w >= 0) & (num_w % SW == 0) & (ow < OW)
            gy_row = img * stride_gy_n + oh * stride_gy_h + ow * stride_gy_w  # [BM]
            y_row = img * stride_y_n + oh * stride_y_h + ow * stride_y_w
            w_tap = w_ptr + kh * stride_w_h + kw * stride_w_w
            for c0 in range(0, C_OUT, BLOCK_K):
                chans = c0 + offs_k
                k_ok = chans < C_OUT
                a_mask = ok[:, None] & k_ok[None, :]
                a = tl.load(gy_ptr + gy_row[:, None] + chans[None, :] * stride_gy_c, mask=a_mask, other=0.0)
                if RELU:
                    yv = tl.load(y_ptr + y_row[:, None] + chans[None, :] * stride_y_c, mask=a_mask, other=0.0)
                    a = relu_grad(a, yv)
                b = tl.load(w_tap + chans[:, None] * stride_w_o + offs_n[None, :] * stride_w_i,
                            mask=k_ok[:, None] & mask_n[None, :], other=0.0)  # [BK, BN] = w[co, ci]
                acc = mma(acc, a, b.to(a.dtype), USE_DOT, PRECISION)
    return acc


@triton.autotune(
    configs=_copies(GENERAL_CONV_CONFIGS) + DGRAD_IEEE_CONFIGS + DGRAD_TF32_CONFIGS + _copies(FP64_CONFIGS),
    key=["C_IN", "C_OUT_A", "C_OUT_B", "H", "W", "OH", "OW", "stride_gx_c", "ACCUMULATE",
         "KH_A", "KW_A", "SH_A", "SW_A", "PH_A", "PW_A", "RELU_A",
         "KH_B", "KW_B", "SH_B", "SW_B", "PH_B", "PW_B", "RELU_B"],
    prune_configs_by={"early_config_prune": FitPrune(
        stage_elems=lambda m, n, k: 2 * m * k + k * n,  # grad_y and y [BM, BK] + w [BK, BN]
        dtype_arg="gya_ptr",
        extents=lambda a: {"BLOCK_N": a["C_IN"], "BLOCK_K": max(a["C_OUT_A"], a["C_OUT_B"])},
        precision_configs={"ieee": DGRAD_IEEE_CONFIGS, "tf32": DGRAD_TF32_CONFIGS},
        output_channel_strides=("stride_gx_c",),
    )},
    # ACCUMULATE reads gx: every benchmark run would add to it again
    restore_value=["gx_ptr"],
)
@triton.jit
def _conv2d_input_grad_kernel(
    # pointers: conv a's output gradient, saved output, weight; conv b's (absent when C_OUT_B is 0); the input grad
    gya_ptr, ya_ptr, wa_ptr, gyb_ptr, yb_ptr, wb_ptr, gx_ptr,
    # sizes: P = N*H*W input pixels
    P, H, W, OH, OW, C_IN, C_OUT_A, C_OUT_B,
    # strides
    stride_gya_n, stride_gya_c, stride_gya_h, stride_gya_w,
    stride_ya_n, stride_ya_c, stride_ya_h, stride_ya_w,
    stride_wa_o, stride_wa_i, stride_wa_h, stride_wa_w,
    stride_gyb_n, stride_gyb_c, stride_gyb_h, stride_gyb_w,
    stride_yb_n, stride_yb_c, stride_yb_h, stride_yb_w,
    stride_wb_o, stride_wb_i, stride_wb_h, stride_wb_w,
    stride_gx_n, stride_gx_c, stride_gx_h, stride_gx_w,
    # meta-parameters
    KH_A: tl.constexpr, KW_A: tl.constexpr, SH_A: tl.constexpr, SW_A: tl.constexpr, PH_A: tl.constexpr,
    PW_A: tl.constexpr, RELU_A: tl.constexpr,
    KH_B: tl.constexpr, KW_B: tl.constexpr, SH_B: tl.constexpr, SW_B: tl.constexpr, PH_B: tl.constexpr,
    PW_B: tl.constexpr, RELU_B: tl.constexpr,
    SCALE: tl.constexpr, ACCUMULATE: tl.constexpr, USE_DOT: tl.constexpr, PRECISION: tl.constexpr,
    ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(1).to(INDEX) * tl.num_programs(0) + tl.program_id(0)
    num_n = tl.cdiv(C_IN, BLOCK_N)
    pid_m = pid // num_n
    if pid_m * BLOCK_M < P:  # a grid spilled onto axis 1 rounds up past the last tile
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)  # [BM] input pixels
        mask_m = offs_m < P
        img, ih, iw = pixel_coords(offs_m, H, W)
        offs_n = (pid % num_n) * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX)  # [BN] input channels
        mask_n = offs_n < C_IN
        offs_k = tl.arange(0, BLOCK_K).to(INDEX)
        acc = _dgrad_taps(tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE), gya_ptr, ya_ptr, wa_ptr,
                          img, ih, iw, mask_m, offs_n, mask_n, offs_k, OH, OW, C_OUT_A,
                          stride_gya_n, stride_gya_c, stride_gya_h, stride_gya_w,
                          stride_ya_n, stride_ya_c, stride_ya_h, stride_ya_w,
                          stride_wa_o, stride_wa_i, stride_wa_h, stride_wa_w,
                          KH_A, KW_A, SH_A, SW_A, PH_A, PW_A, RELU_A, USE_DOT, PRECISION, BLOCK_K)
        if C_OUT_B > 0:
            acc = _dgrad_taps(acc, gyb_ptr, yb_ptr, wb_ptr,
                              img, ih, iw, mask_m, offs_n, mask_n, offs_k, OH, OW, C_OUT_B,
                              stride_gyb_n, stride_gyb_c, stride_gyb_h, stride_gyb_w,
                              stride_yb_n, stride_yb_c, stride_yb_h, stride_yb_w,
                              stride_wb_o, stride_wb_i, stride_wb_h, stride_wb_w,
                              KH_B, KW_B, SH_B, SW_B, PH_B, PW_B, RELU_B, USE_DOT, PRECISION, BLOCK_K)
        if SCALE != 1.0:
            acc = acc * SCALE
        ptrs = pc_ptrs(gx_ptr, img, ih, iw, offs_n, stride_gx_n, stride_gx_c, stride_gx_h, stride_gx_w)
        mask = mask_m[:, None] & mask_n[None, :]
        if ACCUMULATE:
            acc += tl.load(ptrs, mask=mask, other=0.0).to(ACC_DTYPE)
        tl.store(ptrs, acc.to(gx_ptr.dtype.element_ty), mask=mask)


WGRAD_CONFIGS = [
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 64}, num_warps=4, num_stages=3),
]


@triton.autotune(
    configs=WGRAD_CONFIGS + _copies(FP64_CONFIGS),
    # no pixel-chunk size in the key: it follows from the pixel count, the channels and the taps
    key=["P_BUCKET", "C_IN", "C_OUT", "H", "W", "OH", "OW", "KH", "KW", "SH", "SW", "PH", "PW", "RELU", "HAS_W",
         "HAS_B"],
    prune_configs_by={"early_config_prune": FitPrune(
        stage_elems=lambda m, n, k: 2 * m * k + k * n,  # grad_y and y [BM, BK] + shifted x [BK, BN]
        dtype_arg="gy_ptr",
        extents=lambda a: {"BLOCK_M": a["C_OUT"], "BLOCK_N": a["C_IN"]},
    )},
)
@triton.jit(do_not_specialize=["P_BUCKET"])
def _conv2d_weight_grad_kernel(
    # pointers (x_ptr None: bias grad only; part_ptr None: one chunk, the grads written here)
    gy_ptr, y_ptr, x_ptr, gw_ptr, gb_ptr, part_ptr,
    # sizes: P = N*OH*OW output pixels (P_BUCKET: autotune key only); chunks of PIX_PER_SPLIT pixels
    P, P_BUCKET, H, W, OH, OW, C_IN, C_OUT, PIX_PER_SPLIT, R_W, R,
    # strides
    stride_gy_n, stride_gy_c, stride_gy_h, stride_gy_w,
    stride_y_n, stride_y_c, stride_y_h, stride_y_w,
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_gw_o, stride_gw_i, stride_gw_h, stride_gw_w,
    stride_gb,
    # meta-parameters
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
    RELU: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr, SCALE: tl.constexpr,
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # Grid: (C_OUT blocks x C_IN blocks, tap, chunk). Tile: BLOCK_M output x BLOCK_N input channels of one tap,
    # reduced over the BLOCK_K-pixel steps of one fixed chunk. With part_ptr, each chunk's sums go to its own row of
    # the [S, R] partial buffer (R = R_W tap-major [KH*KW, C_OUT, C_IN] weight partials + C_OUT bias partials), which
    # conv2d_backward.reduce_partials sums in a fixed order.
    num_n = tl.cdiv(C_IN, BLOCK_N)
    pid_m = tl.program_id(0) // num_n
    pid_n = tl.program_id(0) % num_n
    tap = tl.program_id(1)
    split = tl.program_id(2).to(INDEX)
    kh = tap // KW
    kw = tap % KW
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)  # [BM] output channels
    mask_m = offs_m < C_OUT
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX)  # [BN] input channels
    mask_n = offs_n < C_IN
    owns_bias = (tap == 0) & (pid_n == 0)  # one program per (chunk, output-channel block) sums the bias grad
    p_start = split * PIX_PER_SPLIT
    p_end = tl.minimum(p_start + PIX_PER_SPLIT, P)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    bacc = tl.zeros((BLOCK_M,), dtype=ACC_DTYPE)
    for p0 in range(p_start, p_end, BLOCK_K):
        offs_p = p0 + tl.arange(0, BLOCK_K).to(INDEX)  # [BK] output pixels
        p_ok = offs_p < p_end
        img, oh, ow = pixel_coords(offs_p, OH, OW)
        a_mask = mask_m[:, None] & p_ok[None, :]
        a = tl.load(gy_ptr + offs_m[:, None] * stride_gy_c
                    + (img * stride_gy_n + oh * stride_gy_h + ow * stride_gy_w)[None, :], mask=a_mask, other=0.0)
        if RELU:
            yv = tl.load(y_ptr + offs_m[:, None] * stride_y_c
                         + (img * stride_y_n + oh * stride_y_h + ow * stride_y_w)[None, :], mask=a_mask, other=0.0)
            a = relu_grad(a, yv)  # [BM, BK] = g'[pixel, co] transposed
        if HAS_B:
            if owns_bias:
                bacc += tl.sum(a.to(ACC_DTYPE), axis=1)
        if HAS_W:
            ih = oh * SH + (kh - PH)
            iw = ow * SW + (kw - PW)
            x_ok = p_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)  # zero padding
            b = tl.load(x_ptr + (img * stride_x_n + ih * stride_x_h + iw * stride_x_w)[:, None]
                        + offs_n[None, :] * stride_x_c, mask=x_ok[:, None] & mask_n[None, :], other=0.0)
            acc = mma(acc, a, b.to(a.dtype), USE_DOT, PRECISION)
    if SCALE != 1.0:
        acc = acc * SCALE
        bacc = bacc * SCALE
    if part_ptr is not None:
        store_partial(chunk_row(part_ptr, split, R, False),
                      tap * C_OUT + offs_m, offs_m, mask_m, offs_n, mask_n, acc, bacc, owns_bias,
                      C_IN, R_W,
                      HAS_W, HAS_B, False)
    else:
        if HAS_W:
            tl.store(gw_ptr + offs_m[:, None] * stride_gw_o + offs_n[None, :] * stride_gw_i + kh * stride_gw_h
                     + kw * stride_gw_w, acc.to(gw_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])
        if HAS_B:
            if owns_bias:
                tl.store(gb_ptr + offs_m * stride_gb, bacc.to(gb_ptr.dtype.element_ty), mask=mask_m)


def _conv_args(suffix, grad_y, y, weight, kernel, stride, padding, relu):
    up = suffix.upper()
    return {
        f"gy{suffix}_ptr": grad_y, f"y{suffix}_ptr": y if relu else None, f"w{suffix}_ptr": weight,
        f"C_OUT_{up}": grad_y.shape[1],
        **strides(f"gy{suffix}", grad_y), **strides(f"y{suffix}", y if relu else None),
        **strides(f"w{suffix}", weight, "oihw"),
        f"KH_{up}": kernel[0], f"KW_{up}": kernel[1], f"SH_{up}": stride[0], f"SW_{up}": stride[1],
        f"PH_{up}": padding[0], f"PW_{up}": padding[1], f"RELU_{up}": relu,
    }


def launch_conv2d_input_grad(grad_x, convs, *, accumulate=False, scale=1.0, allow_tf32=False, config=None) -> None:
    """``grad_x <- (grad_x +) scale * the sum of the input grads of one or two convs`` that read the same input, one
    launch (``scale``: an Inception-ResNet projection's).
    ``convs``: ``(grad_y, y, weight, kernel, stride, padding, relu)`` each; ``y`` (the saved output) is read only
    when ``relu``. ``grad_x`` is (N, C_in, H, W) of the convs' input, any dtype and strides. Unchecked."""
    if not 1 <= len(convs) <= 2:
        raise ValueError(f"one launch sums one or two convs, got {len(convs)}")
    N, C_IN, H, W = grad_x.shape
    grad_y = convs[0][0]
    P = N * H * W
    if P == 0 or C_IN == 0:
        return
    second = convs[1] if len(convs) == 2 else convs[0]
    kwargs = dict(gx_ptr=grad_x, P=P, H=H, W=W, OH=grad_y.shape[2], OW=grad_y.shape[3], C_IN=C_IN,
                  **strides("gx", grad_x), **_conv_args("a", *convs[0]), **_conv_args("b", *second),
                  SCALE=float(scale), ACCUMULATE=accumulate,
                  INDEX=index_dtype(grad_x, *(t for c in convs for t in c[:2])),
                  **mma_meta(grad_y.dtype, allow_tf32))
    if len(convs) == 1:
        kwargs["C_OUT_B"] = 0
    launch(_conv2d_input_grad_kernel, lambda META: tile_grid(P, C_IN, META["BLOCK_M"], META["BLOCK_N"]), kwargs,
           config, INTERPRET_CONFIG)


def weight_grad_splits(pixels, c_out, c_in, taps, device):
    """(S, pixels per chunk) of a weight-grad launch over ``pixels`` output pixels (``c_in`` 1 and ``taps`` 1 for a
    bias grad alone): S == 1, one launch writing the grads, when the (output-channel block, input-channel block,
    tap) tiles alone fill a wave (``pixel_splits``: SPLIT_WAVES programs per SM) or the pixels fit one chunk; else
    S fixed chunks (``pixel_splits``, as GoogLeNet's weight grads), whose fp32 partials a second launch sums in a
    fixed order."""
    return pixel_splits(pixels, c_out, c_in, taps, device, whole_if_full=True)


def launch_conv2d_weight_grad(grad_y, y, x, grad_weight, grad_bias, *, kernel, stride, padding, relu, scale=1.0,
                              allow_tf32=False, config=None) -> None:
    """``grad_weight <- dL/dw`` (skipped when None) and ``grad_bias <- dL/db`` (when not None) of ``y =
    relu?(r + scale * conv2d(x, w, b))`` (``scale`` 1 and no r: a plain conv) from ``grad_y``; ``y`` is read only
    when ``relu``. ``x`` may be None when only the bias grad is wanted. Every output element is written.
    One launch, or two when the pixel sum is split (``weight_grad_splits``): fp32 (fp64 for fp64) partial sums of
    fixed pixel chunks, then ``conv2d_backward.reduce_partials`` adds them up in a fixed order (the same bits every
    run). Unchecked."""
    N, C_OUT, OH, OW = grad_y.shape
    has_w = grad_weight is not None
    if not has_w and grad_bias is None:
        return
    P = N * OH * OW
    if P == 0 or C_OUT == 0:  # nothing to sum: the grads are zeros
        for g in (grad_weight, grad_bias):
            if g is not None:
                g.zero_()
        return
    C_IN, H, W = (x.shape[1], x.shape[2], x.shape[3]) if has_w else (1, OH, OW)
    taps = kernel[0] * kernel[1] if has_w else 1
    S, per = weight_grad_splits(P, C_OUT, C_IN, taps, grad_y.device)
    r_w = taps * C_OUT * C_IN if has_w else 0
    part = partial_buffer(S, r_w + C_OUT, grad_y.dtype, grad_y.device, True, config)[0] if S > 1 else None
    kwargs = dict(gy_ptr=grad_y, y_ptr=y if relu else None, x_ptr=x if has_w else None, gw_ptr=grad_weight,
                  gb_ptr=grad_bias, part_ptr=part, P=P, P_BUCKET=pixel_bucket(P), H=H, W=W, OH=OH, OW=OW,
                  C_IN=C_IN, C_OUT=C_OUT, PIX_PER_SPLIT=per if S > 1 else P, R_W=r_w, R=r_w + C_OUT,
                  **strides("gy", grad_y), **strides("y", y if relu else None), **strides("x", x if has_w else None),
                  **strides("gw", grad_weight, "oihw"),
                  stride_gb=0 if grad_bias is None else grad_bias.stride(0),
                  KH=kernel[0], KW=kernel[1], SH=stride[0], SW=stride[1], PH=padding[0], PW=padding[1],
                  RELU=relu, HAS_W=has_w, HAS_B=grad_bias is not None, SCALE=float(scale),
                  INDEX=index_dtype(grad_y, y, x, part), **mma_meta(grad_y.dtype, allow_tf32))

    def grid(META):
        return (triton.cdiv(C_OUT, META["BLOCK_M"]) * triton.cdiv(C_IN, META["BLOCK_N"]), taps, S)

    launch(_conv2d_weight_grad_kernel, grid, kwargs, config, INTERPRET_WGRAD_CONFIG)
    if S > 1:
        reduce_partials(part, S, r_w, r_w + C_OUT, C_OUT, C_IN, (C_OUT,) * 3, (grad_weight, None, None, None),
                        (grad_bias, None, None, None), kernel[1])
