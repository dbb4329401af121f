"""Fused conv2d + bias + ReLU forward (stride 1, 'same' padding, odd square kernel) as an implicit GEMM.

GEMM view: rows are the M = N*H*W output pixels, columns the Cout output channels, and the reduction
runs over K = Cin*k*k as nested loops over (kh, kw) and blocks of input channels. Nested loops, not one
flattened ``for ijk in range(KH*KW*K_BLOCKS)`` loop: the flattened form was miscompiled at num_warps=8
(pytorch#173068).

``conv2d_bias_relu_pair`` runs two such convs with the same pixels (the block's 3x3 on t2 and 5x5 on t3)
in one grouped launch; both kernels share the ``conv_tile`` body.

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
def conv_tile(
    x_ptr, w_ptr, b_ptr, out_ptr, pid_m, pid_n,
    M, H, W, Cin, Cout,
    sxn, sxc, sxh, sxw,
    swo, swi, swh, sww,
    sb,
    son, soc, soh, sow,
    KS: tl.constexpr,
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # out[pixel block pid_m, channel block pid_n] <- relu(conv2d + bias); the conv body of both kernels
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
    pid_m, pid_n, in_range = program_tile(tl.cdiv(Cout, BLOCK_N), M, BLOCK_M)
    if in_range:
        conv_tile(x_ptr, w_ptr, b_ptr, out_ptr, pid_m, pid_n, M, H, W, Cin, Cout,
                  sxn, sxc, sxh, sxw, swo, swi, swh, sww, sb, son, soc, soh, sow,
                  KS, USE_DOT, PRECISION, ACC_DTYPE, BLOCK_M, BLOCK_N, BLOCK_K)


@triton.jit
def _conv2d_bias_relu_pair_kernel(
    xa_ptr, wa_ptr, ba_ptr, oa_ptr, xb_ptr, wb_ptr, bb_ptr, ob_ptr,
    M, H, W, Cin_a, Cout_a, Cin_b, Cout_b,
    sxn_a, sxc_a, sxh_a, sxw_a, swo_a, swi_a, swh_a, sww_a, sb_a, son_a, soc_a, soh_a, sow_a,
    sxn_b, sxc_b, sxh_b, sxw_b, swo_b, swi_b, swh_b, sww_b, sb_b, son_b, soc_b, soh_b, sow_b,
    KS_A: tl.constexpr, KS_B: tl.constexpr,
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # Two problems with the same pixels (M = N*H*W), both Cout > 0. Flattened program ids [0, tiles_a) are
    # problem a's tiles, the rest problem b's; within each, column blocks fastest as in program_tile.
    pid = tl.program_id(1).to(tl.int64) * tl.num_programs(0) + tl.program_id(0)
    num_n_a = tl.cdiv(Cout_a, BLOCK_N)
    tiles_a = tl.cdiv(M, BLOCK_M) * num_n_a
    if pid < tiles_a:
        conv_tile(xa_ptr, wa_ptr, ba_ptr, oa_ptr, pid // num_n_a, pid % num_n_a, M, H, W, Cin_a, Cout_a,
                  sxn_a, sxc_a, sxh_a, sxw_a, swo_a, swi_a, swh_a, sww_a, sb_a, son_a, soc_a, soh_a, sow_a,
                  KS_A, USE_DOT, PRECISION, ACC_DTYPE, BLOCK_M, BLOCK_N, BLOCK_K)
    else:
        num_n_b = tl.cdiv(Cout_b, BLOCK_N)
        pid_b = pid - tiles_a
        pid_m = pid_b // num_n_b
        # a grid spilled onto axis 1 rounds up past the last tile
        if pid_m * BLOCK_M < M:
            conv_tile(xb_ptr, wb_ptr, bb_ptr, ob_ptr, pid_m, pid_b % num_n_b, M, H, W, Cin_b, Cout_b,
                      sxn_b, sxc_b, sxh_b, sxw_b, swo_b, swi_b, swh_b, sww_b, sb_b, son_b, soc_b, soh_b, sow_b,
                      KS_B, USE_DOT, PRECISION, ACC_DTYPE, BLOCK_M, BLOCK_N, BLOCK_K)


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
# one config serves both halves of a pair, tuned on both problems together
_PAIR_AUTOTUNE_KEY = ["M", "Cin_a", "Cout_a", "KS_A", "sxc_a", "soc_a", "Cin_b", "Cout_b", "KS_B", "sxc_b", "soc_b"]
_autotuned_pair_kernel = autotuned_by_mma(_conv2d_bias_relu_pair_kernel, _DOT_CONFIGS, _PAIR_AUTOTUNE_KEY)


def _check_problem(x, weight, bias, out, names=("x", "weight", "bias", "out")):
    """Shapes of one conv problem, its tensors called ``names`` in errors; returns (N, Cin, H, W, Cout, k)."""
    xn, wn, bn, on = names
    for name, t in ((xn, x), (wn, weight), (bn, bias), (on, out)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{xn} must be 4-D (N, Cin, H, W), got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"{wn} must be 4-D (Cout, Cin, k, k), got shape {tuple(weight.shape)}")
    N, Cin, H, W = x.shape
    Cout, w_cin, kh, kw = weight.shape
    if w_cin != Cin:
        raise ValueError(f"{wn} has {w_cin} input channels, {xn} has {Cin}")
    if kh != kw or kh % 2 != 1:
        raise ValueError(f"{wn} must have an odd square kernel (1, 3, 5, ...), got {kh}x{kw}")
    check_shape(bn, bias, (Cout,))
    check_shape(on, out, (N, Cout, H, W))
    return N, Cin, H, W, Cout, kh


def _conv_args(x, weight, bias, out):
    # per-problem kernel arguments after the pointers and M, H, W: channels, then every stride
    return (x.shape[1], weight.shape[0]), (*x.stride(), *weight.stride(), bias.stride(0), *out.stride())


def conv2d_bias_relu(x, weight, bias, out, *, allow_tf32=False, config=None) -> torch.Tensor:
    """out <- relu(conv2d(x, weight, bias, stride=1, padding=k//2)), one kernel launch.

    x: (N, Cin, H, W); weight: (Cout, Cin, k, k) with k odd; bias: (Cout,); out: (N, Cout, H, W).
    Any strides (NCHW, channels_last, channel slices). ``config``: None (autotuned on GPU, a small
    fixed tile under the interpreter) or {"BLOCK_M", "BLOCK_N", "BLOCK_K", "num_warps", "num_stages"};
    a forced fp64 tile should stay small (fp64 holds a BLOCK_M x BLOCK_K x BLOCK_N product in registers).
    Returns out.
    """
    N, _, H, W, Cout, k = _check_problem(x, weight, bias, out)
    check_same_dtype_and_device({"x": x, "weight": weight, "bias": bias, "out": out})
    if config is not None:
        check_config(config)

    M = N * H * W
    if out.numel() == 0:
        return out

    channels, strides = _conv_args(x, weight, bias, out)
    args = (x, weight, bias, out, M, H, W, *channels, *strides)
    meta = dict(KS=k, **mma_meta(x.dtype, allow_tf32))
    launch(_conv2d_bias_relu_kernel, _autotuned_kernel(meta["USE_DOT"]),
           lambda META: tile_grid(M, Cout, META["BLOCK_M"], META["BLOCK_N"]), args, meta, config, INTERPRET_CONFIG)
    return out


def conv2d_bias_relu_pair(x_a, w_a, b_a, out_a, x_b, w_b, b_b, out_b, *, allow_tf32=False, config=None) -> None:
    """ONE launch computing out_a <- relu(conv2d(x_a, w_a, b_a, padding k_a//2)) and
    out_b <- relu(conv2d(x_b, w_b, b_b, padding k_b//2)): the block's 3x3 and 5x5 convs as one grouped launch.

    Same N, H, W, dtype and device for both problems; channel counts and odd kernel sizes may differ; any
    strides for every tensor. The grid is the two problems' tile grids end to end: flattened program ids
    below problem a's tile count work on a, the rest on b (k_a and k_b are constexpr, so each path's loops
    are specialised). ``config`` as in ``conv2d_bias_relu``, one tile for both halves. An empty problem is
    skipped: the other then runs alone in the single-problem kernel (still one launch); nothing launches when
    both are empty.
    """
    N, _, H, W, Cout_a, k_a = _check_problem(x_a, w_a, b_a, out_a, ("x_a", "w_a", "b_a", "out_a"))
    shape_b = _check_problem(x_b, w_b, b_b, out_b, ("x_b", "w_b", "b_b", "out_b"))
    if (shape_b[0], shape_b[2], shape_b[3]) != (N, H, W):
        raise ValueError(f"x_a and x_b must have the same N, H, W, got {tuple(x_a.shape)} and {tuple(x_b.shape)}")
    Cout_b, k_b = shape_b[4], shape_b[5]
    check_same_dtype_and_device({"x_a": x_a, "w_a": w_a, "b_a": b_a, "out_a": out_a,
                                 "x_b": x_b, "w_b": w_b, "b_b": b_b, "out_b": out_b})
    if config is not None:
        check_config(config)

    M = N * H * W
    if M == 0 or (Cout_a == 0 and Cout_b == 0):
        return
    # the pair kernel assumes both halves have column blocks
    if Cout_b == 0:
        conv2d_bias_relu(x_a, w_a, b_a, out_a, allow_tf32=allow_tf32, config=config)
        return
    if Cout_a == 0:
        conv2d_bias_relu(x_b, w_b, b_b, out_b, allow_tf32=allow_tf32, config=config)
        return

    channels_a, strides_a = _conv_args(x_a, w_a, b_a, out_a)
    channels_b, strides_b = _conv_args(x_b, w_b, b_b, out_b)
    args = (x_a, w_a, b_a, out_a, x_b, w_b, b_b, out_b, M, H, W, *channels_a, *channels_b, *strides_a, *strides_b)
    meta = dict(KS_A=k_a, KS_B=k_b, **mma_meta(x_a.dtype, allow_tf32))

    def grid(META):
        # problem a's columns rounded up to whole column blocks, then b's: both tile grids, end to end
        bn = META["BLOCK_N"]
        return tile_grid(M, triton.cdiv(Cout_a, bn) * bn + Cout_b, META["BLOCK_M"], bn)

    launch(_conv2d_bias_relu_pair_kernel, _autotuned_pair_kernel(meta["USE_DOT"]), grid, args, meta, config,
           INTERPRET_CONFIG)
