"""The ReLU mask of a block program's output: one byte per element (``tiles.store_relu_mask``: 1 where a gradient
passes the ReLU).

What the backward of a block program keeps instead of the output itself, which the caller may then change in place
(``y += r``, ``y.relu_()``): the gradient kernels read an output only through its ReLU (``tiles.relu_grad``), and the
mask gives them the same answer. One light pass over the output, run only when autograd records (GoogLeNet's
kernels write theirs in the epilogue). Tiles are [pixels, channels], as the other kernels'.
"""
import triton
import triton.language as tl

from .launch import index_dtype, launch, strides, tile_grid
from .tiles import pc_ptrs, pixel_coords, program_tile, store_relu_mask


@triton.autotune(
    configs=[triton.Config({"BLOCK_M": 64, "BLOCK_N": 64}, num_warps=4),
             triton.Config({"BLOCK_M": 128, "BLOCK_N": 32}, num_warps=4)],
    key=["C", "stride_y_c", "stride_m_c"],
)
@triton.jit
def _relu_mask_kernel(
    y_ptr, m_ptr,
    # sizes: P = N*H*W pixels
    P, H, W, C,
    # strides
    stride_y_n, stride_y_c, stride_y_h, stride_y_w,
    stride_m_n, stride_m_c, stride_m_h, stride_m_w,
    # meta-parameters
    INDEX: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_m, pid_n, in_range = program_tile(tl.cdiv(C, BLOCK_N), P, BLOCK_M, INDEX)
    if in_range:
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX)
        img, h, w = pixel_coords(offs_m, H, W)
        mask = (offs_m < P)[:, None] & (offs_n < C)[None, :]
        y = tl.load(pc_ptrs(y_ptr, img, h, w, offs_n, stride_y_n, stride_y_c, stride_y_h, stride_y_w), mask=mask,
                    other=0.0)
        store_relu_mask(pc_ptrs(m_ptr, img, h, w, offs_n, stride_m_n, stride_m_c, stride_m_h, stride_m_w), y, mask)


INTERPRET_MASK_CONFIG = {"BLOCK_M": 64, "BLOCK_N": 64}


def launch_relu_mask(y, mask, config=None) -> None:
    """``mask`` (uint8) <- the ReLU mask of ``y``, both (N, C, H, W), any strides. Unchecked."""
    N, C, H, W = y.shape
    P = N * H * W
    if P == 0 or C == 0:
        return
    kwargs = dict(y_ptr=y, m_ptr=mask, P=P, H=H, W=W, C=C, **strides("y", y), **strides("m", mask),
                  INDEX=index_dtype(y, mask))
    launch(_relu_mask_kernel, lambda META: tile_grid(P, C, META["BLOCK_M"], META["BLOCK_N"]), kwargs, config,
           INTERPRET_MASK_CONFIG)
