"""Fused conv2d + bias + ReLU forward (stride 1, 'same' padding, odd square kernel) as an implicit GEMM.

GEMM view: rows are the M = N*H*W output pixels, columns the Cout output channels, and the reduction
runs over K = Cin*k*k as nested loops over (kh, kw) and blocks of input channels. Nested loops, not one
flattened ``for ijk in range(KH*KW*K_BLOCKS)`` loop: the flattened form was miscompiled at num_warps=8
(pytorch#173068).

Every tensor comes with explicit strides, so NCHW, channels_last and channel-slice views need no copy.
Offsets are int64: tensors may exceed 2**31 elements.

Precision: fp16/bf16/fp32 use ``tl.dot`` with an fp32 accumulator (tf32 for fp32 only when allowed).
fp64 (used for gradcheck) accumulates in fp64 with ``tl.sum`` of a broadcast product instead of
``tl.dot``: fp64 dot support differs between Triton versions and GPUs, and the sum works everywhere.
"""
import torch
import triton
import triton.language as tl

from .launch import (
    INTERPRET_CONFIG, autotuned_by_mma, check_config, check_same_dtype_and_device, check_shape, launch, mma_meta,
    tile_grid,
)
from .tiles import bias_relu, mma, pc_ptrs, pixel_coords, program_tile


@triton.jit
def _conv2d_bias_relu_kernel(
    x_ptr, w_ptr, b_ptr, out_ptr,
    M, H, W, Cin, Cout,
    sxn, sxc, sxh, sxw,
    swo, swi, swh, sww,
    sb,
    son, soc, soh, sow,
    KS: tl.constexpr,
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    NUM_N = tl.cdiv(Cout, BLOCK_N)
    pid_m, pid_n, in_range = program_tile(NUM_N, M, BLOCK_M)
    if in_range:
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)  # [BM] pixels
        mask_m = offs_m < M
        n_idx, oh, ow = pixel_coords(offs_m, H, W)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)  # [BN]
        mask_n = offs_n < Cout
        offs_k = tl.arange(0, BLOCK_K).to(tl.int64)  # [BK]
        # int64 pointer steps along channels (strides may arrive as int32 or as constexpr 1)
        a_step = tl.full((), BLOCK_K, tl.int64) * sxc
        b_step = tl.full((), BLOCK_K, tl.int64) * swi

        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
        for kh in range(KS):
            ih = oh + (kh - KS // 2)
            row_h = mask_m & (ih >= 0) & (ih < H)
            for kw in range(KS):
                iw = ow + (kw - KS // 2)
                row_ok = row_h & (iw >= 0) & (iw < W)  # [BM]; out-of-image taps are the zero padding
                a_ptrs = x_ptr + (n_idx * sxn + ih * sxh + iw * sxw)[:, None] + offs_k[None, :] * sxc  # [BM, BK]
                b_ptrs = w_ptr + (offs_n * swo + kh * swh + kw * sww)[None, :] + offs_k[:, None] * swi  # [BK, BN]
                for c0 in range(0, Cin, BLOCK_K):
                    mask_k = (c0 + offs_k) < Cin
                    a = tl.load(a_ptrs, mask=row_ok[:, None] & mask_k[None, :], other=0.0)
                    b = tl.load(b_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
                    acc = mma(acc, a, b, USE_DOT, PRECISION)
                    a_ptrs += a_step
                    b_ptrs += b_step

        acc = bias_relu(acc, tl.load(b_ptr + offs_n * sb, mask=mask_n, other=0.0).to(ACC_DTYPE))
        tl.store(pc_ptrs(out_ptr, n_idx, oh, ow, offs_n, son, soc, soh, sow), acc.to(out_ptr.dtype.element_ty),
                 mask=mask_m[:, None] & mask_n[None, :])


# ---------------------------------------------------------------------------------------------
# launcher

# tl.dot configs: large tiles for wide layers, BLOCK_K=16 for the narrow reduced inputs (c3a=16).
_DOT_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 64}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 32, "BLOCK_K": 16}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 16}, num_warps=4, num_stages=3),
]
_AUTOTUNE_KEY = ["M", "Cout", "Cin", "KS", "sxc", "soc"]
_autotuned_kernel = autotuned_by_mma(_conv2d_bias_relu_kernel, _DOT_CONFIGS, _AUTOTUNE_KEY)


def conv2d_bias_relu(x, weight, bias, out, *, allow_tf32=False, config=None) -> torch.Tensor:
    """out <- relu(conv2d(x, weight, bias, stride=1, padding=k//2)), one kernel launch.

    x: (N, Cin, H, W); weight: (Cout, Cin, k, k) with k odd; bias: (Cout,); out: (N, Cout, H, W).
    Any strides (NCHW, channels_last, channel slices). ``config``: None (autotuned on GPU, a small
    fixed tile under the interpreter) or {"BLOCK_M", "BLOCK_N", "BLOCK_K", "num_warps", "num_stages"};
    a forced fp64 tile should stay small (fp64 holds a BLOCK_M x BLOCK_K x BLOCK_N product in registers).
    Returns out.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be 4-D (N, Cin, H, W), got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"weight must be 4-D (Cout, Cin, k, k), got shape {tuple(weight.shape)}")
    N, Cin, H, W = x.shape
    Cout, w_cin, kh, kw = weight.shape
    if w_cin != Cin:
        raise ValueError(f"weight has {w_cin} input channels, x has {Cin}")
    if kh != kw or kh % 2 != 1:
        raise ValueError(f"weight must have an odd square kernel (1, 3, 5, ...), got {kh}x{kw}")
    check_shape("bias", bias, (Cout,))
    check_shape("out", out, (N, Cout, H, W))
    check_same_dtype_and_device({"x": x, "weight": weight, "bias": bias, "out": out})
    if config is not None:
        check_config(config)

    M = N * H * W
    if out.numel() == 0:
        return out

    args = (
        x, weight, bias, out,
        M, H, W, Cin, Cout,
        *x.stride(), *weight.stride(), bias.stride(0), *out.stride(),
    )
    meta = dict(KS=kh, **mma_meta(x.dtype, allow_tf32))
    launch(_conv2d_bias_relu_kernel, _autotuned_kernel(meta["USE_DOT"]),
           lambda META: tile_grid(M, Cout, META["BLOCK_M"], META["BLOCK_N"]), args, meta, config, INTERPRET_CONFIG)
    return out
