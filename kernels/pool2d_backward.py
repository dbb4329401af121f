"""Backward of ``pool2d``: the input gradient of a max or average pool (any kernel, stride, padding, ceil_mode,
count_include_pad), optionally through the ReLU of its bias + ReLU epilogue, optionally added to what the gradient
buffer holds (several branches read the block's input).

Gather form, no atomics: each program owns a [input pixels, channels] tile and visits the windows that contain its
pixels (at most ceil(KH / SH) x ceil(KW / SW) of them).
- average: adds each window's gradient divided by that window's divisor, computed as the forward does;
- max: recomputes each window's winner with the forward's rule, which is PyTorch's: scanning rows then columns, a
  larger value or a NaN takes over, so among equal maxima the first wins and among NaNs the last; a window of
  nothing but -inf keeps its first tap inside the input. The gradient goes to the winner only.
Accumulation in fp32 (fp64 for fp64). Unchecked, as the other launchers.
"""
import triton
import triton.language as tl

from .launch import acc_dtype, index_dtype, launch, strides, tile_grid
from .pool2d import INTERPRET_POOL_CONFIG, avg_pool_divisor
from .tiles import pc_ptrs, pixel_coords, program_tile, relu_grad


@triton.autotune(
    configs=[
        # 8 warps: a max window's winner takes three tiles more (value, row, column); 4 warps spilled in fp32 (sm_90)
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 64}, num_warps=8),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 32}, num_warps=8),
        triton.Config({"BLOCK_M": 32, "BLOCK_N": 128}, num_warps=8),
    ],
    key=["C", "H", "W", "OH", "OW", "stride_gx_c", "stride_gy_c", "KH", "KW", "SH", "SW", "IS_MAX", "RELU",
         "ACCUMULATE"],
    restore_value=["gx_ptr"],  # ACCUMULATE reads gx
)
@triton.jit
def _pool2d_input_grad_kernel(
    # pointers: the pool's input (max only), output (RELU only), output gradient, input gradient
    x_ptr, y_ptr, gy_ptr, gx_ptr,
    # sizes: P = N*H*W input pixels
    P, H, W, OH, OW, C,
    # strides
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_y_n, stride_y_c, stride_y_h, stride_y_w,
    stride_gy_n, stride_gy_c, stride_gy_h, stride_gy_w,
    stride_gx_n, stride_gx_c, stride_gx_h, stride_gx_w,
    # meta-parameters
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
    IS_MAX: tl.constexpr, COUNT_PAD: tl.constexpr, RELU: tl.constexpr, ACCUMULATE: tl.constexpr,
    ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_m, pid_n, in_range = program_tile(tl.cdiv(C, BLOCK_N), P, BLOCK_M, INDEX)
    if in_range:
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)  # [BM] input pixels
        mask_m = offs_m < P
        img, ih, iw = pixel_coords(offs_m, H, W)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX)  # [BN] channels
        mask_n = offs_n < C
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
        for jh in range((KH + SH - 1) // SH):
            oh = (ih + PH) // SH - jh  # windows from the last one starting at or before ih, backwards
            h0 = oh * SH - PH
            ok_h = mask_m & (oh >= 0) & (oh < OH) & (ih - h0 < KH)
            for jw in range((KW + SW - 1) // SW):
                ow = (iw + PW) // SW - jw
                w0 = ow * SW - PW
                ok = ok_h & (ow >= 0) & (ow < OW) & (iw - w0 < KW)
                mask = ok[:, None] & mask_n[None, :]
                g = tl.load(pc_ptrs(gy_ptr, img, oh, ow, offs_n, stride_gy_n, stride_gy_c, stride_gy_h, stride_gy_w),
                            mask=mask, other=0.0).to(ACC_DTYPE)
                if RELU:
                    yv = tl.load(pc_ptrs(y_ptr, img, oh, ow, offs_n, stride_y_n, stride_y_c, stride_y_h, stride_y_w),
                                 mask=mask, other=0.0)
                    g = relu_grad(g, yv)
                if IS_MAX:
                    best = tl.full((BLOCK_M, BLOCK_N), float("-inf"), dtype=ACC_DTYPE)
                    first_h = tl.maximum(h0, 0)
                    first_w = tl.maximum(w0, 0)
                    win_h = tl.zeros((BLOCK_M, BLOCK_N), dtype=INDEX) + first_h[:, None]
                    win_w = tl.zeros((BLOCK_M, BLOCK_N), dtype=INDEX) + first_w[:, None]
                    for kh in range(KH):
                        th = h0 + kh
                        tap_h = ok & (th >= 0) & (th < H)
                        for kw in range(KW):
                            tw = w0 + kw
                            tap = tap_h & (tw >= 0) & (tw < W)
                            v = tl.load(pc_ptrs(x_ptr, img, th, tw, offs_n,
                                                stride_x_n, stride_x_c, stride_x_h, stride_x_w),
                                        mask=tap[:, None] & mask_n[None, :], other=float("-inf")).to(ACC_DTYPE)
                            take = (v > best) | (v != v)
                            best = tl.where(take, v, best)
                            win_h = tl.where(take, th[:, None], win_h)
                            win_w = tl.where(take, tw[:, None], win_w)
                    won = (win_h == ih[:, None]) & (win_w == iw[:, None])
                    acc += tl.where(won & mask, g, 0.0)
                else:
                    acc += g / avg_pool_divisor(h0, w0, H, W, KH, KW, PH, PW, COUNT_PAD).to(ACC_DTYPE)[:, None]
        ptrs = pc_ptrs(gx_ptr, img, ih, iw, offs_n, stride_gx_n, stride_gx_c, stride_gx_h, stride_gx_w)
        mask = mask_m[:, None] & mask_n[None, :]
        if ACCUMULATE:
            acc += tl.load(ptrs, mask=mask, other=0.0).to(ACC_DTYPE)
        tl.store(ptrs, acc.to(gx_ptr.dtype.element_ty), mask=mask)


def launch_pool2d_input_grad(grad_y, grad_x, *, kind, kernel, stride, padding, count_include_pad=True, x=None,
                             y=None, relu=False, accumulate=False, config=None) -> None:
    """``grad_x <- (grad_x +) dL/dx`` of ``y = relu?(pool(x) (+ bias))`` from ``grad_y``: ``x`` is needed for a max
    pool, ``y`` (the saved output) when ``relu``. ``grad_x`` (N, C, H, W) of the pool's input, any dtype and
    strides; grad_y's (OH, OW) says the output size (ceil_mode included). Unchecked."""
    N, C, H, W = grad_x.shape
    OH, OW = grad_y.shape[2], grad_y.shape[3]
    P = N * H * W
    if P == 0 or C == 0:
        return
    is_max = kind == "max"
    kwargs = dict(x_ptr=x if is_max else None, y_ptr=y if relu else None, gy_ptr=grad_y, gx_ptr=grad_x,
                  P=P, H=H, W=W, OH=OH, OW=OW, C=C,
                  **strides("x", x if is_max else None), **strides("y", y if relu else None),
                  **strides("gy", grad_y), **strides("gx", grad_x),
                  KH=kernel[0], KW=kernel[1], SH=stride[0], SW=stride[1], PH=padding[0], PW=padding[1],
                  IS_MAX=is_max, COUNT_PAD=count_include_pad, RELU=relu, ACCUMULATE=accumulate,
                  ACC_DTYPE=acc_dtype(grad_y.dtype), INDEX=index_dtype(grad_x, grad_y, x, y))
    launch(_pool2d_input_grad_kernel, lambda META: tile_grid(P, C, META["BLOCK_M"], META["BLOCK_N"]), kwargs,
           config, INTERPRET_POOL_CONFIG)
