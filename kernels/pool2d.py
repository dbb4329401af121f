"""Max and average pooling as PyTorch defines them (kernel, stride, padding, ceil_mode, count_include_pad), written
straight into a channel slice of the output, with an optional bias + ReLU epilogue.

Two uses in a block program: a pass-through pool branch (BN-Inception's and v3's stride-2 max-pools, ceil_mode
too), and the pool half of a commuted average-pool branch: avg_pool(x) followed by a 1x1 conv equals the 1x1 conv
(without bias, joined to the stem GEMM) followed by avg_pool, then the bias and ReLU, which this kernel adds on the
conv's few output channels instead of pooling all of x's.

Semantics as ``torch.nn.functional.max_pool2d`` / ``avg_pool2d``: a max window ignores the padding and lets a NaN
win; an average divides by the window clipped to the padded input (count_include_pad) or by its taps inside the
input (not), and ceil_mode's extra windows are clipped the same way. Tiles are [pixels, channels], so a
channels-last tensor is read along channels. Unchecked, as the other launchers.
"""
import triton
import triton.language as tl

from .launch import acc_dtype, index_dtype, launch, strides, tile_grid
from .tiles import pc_ptrs, pixel_coords, program_tile


@triton.jit
def avg_pool_divisor(h0, w0, H, W, KH: tl.constexpr, KW: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
                     COUNT_PAD: tl.constexpr):
    # PyTorch's divisor of the windows at origins (h0, w0): the window clipped to the padded input, or to the input
    h_end = tl.minimum(h0 + KH, H + PH)
    w_end = tl.minimum(w0 + KW, W + PW)
    if COUNT_PAD:
        count = (h_end - h0) * (w_end - w0)
    else:
        count = (tl.minimum(h_end, H) - tl.maximum(h0, 0)) * (tl.minimum(w_end, W) - tl.maximum(w0, 0))
    return tl.maximum(count, 1)


@triton.autotune(
    configs=[
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 64}, num_warps=4),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 32}, num_warps=4),
        triton.Config({"BLOCK_M": 32, "BLOCK_N": 128}, num_warps=4),
    ],
    key=["C", "H", "W", "OH", "OW", "stride_x_c", "stride_out_c", "KH", "KW", "SH", "SW", "IS_MAX"],
)
@triton.jit
def _pool2d_kernel(
    # pointers (b_ptr: None, or the bias added before the ReLU of the epilogue)
    x_ptr, b_ptr, out_ptr,
    # sizes: P = N*OH*OW output pixels
    P, H, W, OH, OW, C,
    # strides
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_b,
    stride_out_n, stride_out_c, stride_out_h, stride_out_w,
    # meta-parameters
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
    IS_MAX: tl.constexpr, COUNT_PAD: tl.constexpr, RELU: tl.constexpr, ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_m, pid_n, in_range = program_tile(tl.cdiv(C, BLOCK_N), P, BLOCK_M, INDEX)
    if in_range:
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)
        mask_m = offs_m < P
        n_idx, oh, ow = pixel_coords(offs_m, OH, OW)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX)
        mask_n = offs_n < C
        h0 = oh * SH - PH  # [BM] window origin, in input rows
        w0 = ow * SW - PW
        if IS_MAX:
            acc = tl.full((BLOCK_M, BLOCK_N), float("-inf"), dtype=ACC_DTYPE)
        else:
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
        for kh in range(KH):
            ih = h0 + kh
            ok_h = mask_m & (ih >= 0) & (ih < H)
            for kw in range(KW):
                iw = w0 + kw
                ok = ok_h & (iw >= 0) & (iw < W)
                ptrs = pc_ptrs(x_ptr, n_idx, ih, iw, offs_n, stride_x_n, stride_x_c, stride_x_h, stride_x_w)
                if IS_MAX:
                    v = tl.load(ptrs, mask=ok[:, None] & mask_n[None, :], other=float("-inf")).to(ACC_DTYPE)
                    acc = tl.where((v > acc) | (v != v), v, acc)  # a NaN wins and then stays
                else:
                    acc += tl.load(ptrs, mask=ok[:, None] & mask_n[None, :], other=0.0).to(ACC_DTYPE)
        if not IS_MAX:
            acc = acc / avg_pool_divisor(h0, w0, H, W, KH, KW, PH, PW, COUNT_PAD).to(ACC_DTYPE)[:, None]
        if b_ptr is not None:
            acc += tl.load(b_ptr + offs_n * stride_b, mask=mask_n, other=0.0).to(ACC_DTYPE)[None, :]
        if RELU:
            acc = tl.where(acc < 0, 0.0, acc)
        tl.store(pc_ptrs(out_ptr, n_idx, oh, ow, offs_n, stride_out_n, stride_out_c, stride_out_h, stride_out_w),
                 acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


INTERPRET_POOL_CONFIG = {"BLOCK_M": 32, "BLOCK_N": 32}


def launch_pool2d(x, out, *, kind, kernel, stride, padding, count_include_pad=True, bias=None, relu=False,
                  config=None) -> None:
    """out <- relu?(pool(x) + bias?), one launch. ``kind`` "max" or "avg"; out's (OH, OW) says the output size
    (ceil_mode included); ``bias`` (C,) or None. Any strides. Unchecked."""
    N, C, H, W = x.shape
    OH, OW = out.shape[2], out.shape[3]
    P = N * OH * OW
    if P == 0 or C == 0:
        return
    kwargs = dict(x_ptr=x, b_ptr=bias, out_ptr=out, P=P, H=H, W=W, OH=OH, OW=OW, C=C,
                  **strides("x", x), stride_b=0 if bias is None else bias.stride(0), **strides("out", out),
                  KH=kernel[0], KW=kernel[1], SH=stride[0], SW=stride[1], PH=padding[0], PW=padding[1],
                  IS_MAX=kind == "max", COUNT_PAD=count_include_pad, RELU=relu, ACC_DTYPE=acc_dtype(x.dtype),
                  INDEX=index_dtype(x, out))
    launch(_pool2d_kernel, lambda META: tile_grid(P, C, META["BLOCK_M"], META["BLOCK_N"]), kwargs, config,
           INTERPRET_POOL_CONFIG)
