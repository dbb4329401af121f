"""Backward of ``y = relu(conv2d(t, weight, bias))`` (stride 1, padding k // 2, odd k), ``t`` itself a ReLU output.

Both gradients are implicit GEMMs over pixels, with the ReLU masks applied on load from the saved outputs
(``relu(z) > 0`` iff ``z > 0``), so branch gradients can be channel-slice views of ``grad_out`` with no copy.
As in PyTorch's ReLU backward, a gradient is zeroed where the saved output is ``<= 0`` (a NaN output passes it).

- input grad:  grad_t[p, ci] = (t > 0) * sum_{kh, kw, co} gy'[p + pad - (kh, kw), co] * W[co, ci, kh, kw]
  (flipped, transposed weight), one launch.
- weight grad: gW[co, ci, kh, kw] = sum_p gy'[p, co] * t[p + (kh, kw) - pad, ci], gb[co] = sum_p gy'[p, co],
  with gy' = grad_y * (y > 0). The pixel reduction is split into fixed chunks written to a partial buffer, then the
  chunks are summed in a fixed order by ``_reduce_partials_kernel`` (bitwise reproducible); with
  ``deterministic=False`` the chunks are added with float atomics instead.

Every tensor is addressed through explicit (n, c, h, w) strides; offsets are int32, or int64 (INDEX) when a tensor
spans 2**31 elements or more.
Accumulation is fp32 (fp64 for fp64 inputs, so float64 gradcheck under the interpreter is meaningful).
The launchers here check nothing (``checked.py`` validates the public entry points once).
"""
import functools

import torch
import triton
import triton.language as tl

from .common import dot_precision, interpreting
from .launch import (
    BACKWARD_CONFIG_DEFAULTS,
    INTERPRET_CONFIG,
    INTERPRET_WGRAD_CONFIG,
    SM90_SM_COUNT,
    FitPrune,
    acc_dtype,
    index_dtype,
    launch,
    partial_dtype,
    pixel_bucket,
    pixel_channel_grid,
    run_launch,
    strides,
    zero_if_atomic,
)
from .tiles import chunk_row, dgrad_channels, pc_ptrs, pixel_coords, relu_grad, relu_grad_cp, store_partial

# BLOCK_M is pixels, BLOCK_N input channels, BLOCK_K output channels.
DGRAD_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=4, num_stages=3),
    # 128x64x64 on 4 warps spilled registers (sm_90): 8 warps share that tile
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 64}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_M": 32, "BLOCK_N": 64, "BLOCK_K": 64}, num_warps=4, num_stages=4),
]


@triton.autotune(
    configs=DGRAD_CONFIGS,
    # y / t given or None (masked or not) join the key through their dtypes, as does the grad_t buffer's dtype
    key=["P_BUCKET", "C_OUT", "C_IN", "KSIZE"],
    prune_configs_by={"early_config_prune": FitPrune(
        stage_elems=lambda m, n, k: 2 * m * k + k * n,  # grad_y and y [BM, BK] + W [BK, BN]
        dtype_arg="gy_ptr",
        extents=lambda a: {"BLOCK_M": a["P_BUCKET"], "BLOCK_N": a["C_IN"], "BLOCK_K": a["C_OUT"]},
    )},
)
@triton.jit(do_not_specialize=["P_BUCKET"])
def _conv_relu_dgrad_kernel(
    # pointers
    gy_ptr, y_ptr, w_ptr, t_ptr, gt_ptr,
    # sizes (P_BUCKET: autotune key only)
    P, P_BUCKET, H, W, C_IN, C_OUT,
    # strides
    stride_gy_n, stride_gy_c, stride_gy_h, stride_gy_w,
    stride_y_n, stride_y_c, stride_y_h, stride_y_w,
    stride_w_o, stride_w_i, stride_w_h, stride_w_w,
    stride_t_n, stride_t_c, stride_t_h, stride_t_w,
    stride_gt_n, stride_gt_c, stride_gt_h, stride_gt_w,
    # meta-parameters
    KSIZE: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # Tile: BLOCK_M pixels x BLOCK_N input channels; reduction over (kh, kw, output channel).
    # y_ptr None: no (y > 0) mask on grad_y; t_ptr None: no (t > 0) mask in the epilogue.
    # gt_ptr may be a scratch buffer of any float dtype (the stem's fp32 dpool).
    pid_m = tl.program_id(0).to(INDEX)
    pid_n = tl.program_id(1).to(INDEX)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)  # [BM] pixel = (n, h, w)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX)  # [BN] input channel
    m_ok = offs_m < P
    n_ok = offs_n < C_IN
    img, oh, ow = pixel_coords(offs_m, H, W)
    PAD = KSIZE // 2

    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC_DTYPE)
    # Nested loops (not one flattened tap*channel loop, which some Triton versions miscompile at num_warps=8).
    for kh in range(KSIZE):
        ih = oh + PAD - kh
        h_ok = m_ok & (ih >= 0) & (ih < H)
        for kw in range(KSIZE):
            iw = ow + PAD - kw
            pix_ok = h_ok & (iw >= 0) & (iw < W)  # zero padding of grad_y
            gy_row = img * stride_gy_n + ih * stride_gy_h + iw * stride_gy_w  # [BM]
            y_row = img * stride_y_n + ih * stride_y_h + iw * stride_y_w
            w_tap = kh * stride_w_h + kw * stride_w_w
            acc = dgrad_channels(acc, gy_ptr, y_ptr, w_ptr + w_tap,
                                 gy_row, y_row, pix_ok, offs_n, n_ok,
                                 C_OUT,
                                 stride_gy_c, stride_y_c, stride_w_o, stride_w_i,
                                 y_ptr is not None, PRECISION, BLOCK_K)

    out_mask = m_ok[:, None] & n_ok[None, :]
    if t_ptr is not None:
        tv = tl.load(pc_ptrs(t_ptr, img, oh, ow, offs_n, stride_t_n, stride_t_c, stride_t_h, stride_t_w),
                     mask=out_mask, other=0.0)
        acc = relu_grad(acc, tv)
    tl.store(pc_ptrs(gt_ptr, img, oh, ow, offs_n, stride_gt_n, stride_gt_c, stride_gt_h, stride_gt_w),
             acc.to(gt_ptr.dtype.element_ty), mask=out_mask)


# BLOCK_M is output channels, BLOCK_N input channels, BLOCK_K pixels. zero_if_atomic zeroes the one accumulator
# row before every run of the atomic variant.
WGRAD_CONFIGS = [
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 64}, num_warps=4, num_stages=3, pre_hook=zero_if_atomic),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=3, pre_hook=zero_if_atomic),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=4, num_stages=3, pre_hook=zero_if_atomic),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=8, num_stages=3, pre_hook=zero_if_atomic),
    triton.Config({"BLOCK_M": 32, "BLOCK_N": 64, "BLOCK_K": 64}, num_warps=4, num_stages=4, pre_hook=zero_if_atomic),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 64}, num_warps=4, num_stages=4, pre_hook=zero_if_atomic),
    triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 128}, num_warps=4, num_stages=3, pre_hook=zero_if_atomic),
]


@triton.autotune(
    configs=WGRAD_CONFIGS,
    # no pixel-chunk size in the key: it follows from the pixel count and the channels
    key=["P_BUCKET", "C_OUT", "C_IN", "KSIZE", "HAS_W", "HAS_B", "ATOMIC"],
    prune_configs_by={"early_config_prune": FitPrune(
        stage_elems=lambda m, n, k: 2 * m * k + k * n,  # grad_y and y [BM, BK] + shifted t [BK, BN]
        dtype_arg="gy_ptr",
        extents=lambda a: {"BLOCK_M": a["C_OUT"], "BLOCK_N": a["C_IN"]},
    )},
)
@triton.jit(do_not_specialize=["P_BUCKET"])
def _conv_relu_wgrad_kernel(
    # pointers
    gy_ptr, y_ptr, t_ptr, part_ptr,
    # sizes (P_BUCKET: autotune key only)
    P, P_BUCKET, H, W, C_IN, C_OUT, PIX_PER_SPLIT, R_W, R,
    # strides
    stride_gy_n, stride_gy_c, stride_gy_h, stride_gy_w,
    stride_y_n, stride_y_c, stride_y_h, stride_y_w,
    stride_t_n, stride_t_c, stride_t_h, stride_t_w,
    # meta-parameters
    KSIZE: tl.constexpr, TAPS: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr, ATOMIC: tl.constexpr,
    PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # Grid: (split * TAPS + tap, C_OUT blocks, C_IN blocks). Tile: BLOCK_M output x BLOCK_N input channels of one
    # tap, reduced over the BLOCK_K-pixel steps of one fixed chunk of PIX_PER_SPLIT pixels.
    # part layout: [S, R] rows, R = R_W (tap-major [TAPS, C_OUT, C_IN] weight partials) + C_OUT (bias partials).
    pid0 = tl.program_id(0).to(INDEX)
    tap = pid0 % TAPS
    split = pid0 // TAPS
    pid_m = tl.program_id(1).to(INDEX)
    pid_n = tl.program_id(2).to(INDEX)
    kh = tap // KSIZE
    kw = tap % KSIZE
    PAD = KSIZE // 2
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)  # [BM] output channel
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX)  # [BN] input channel
    m_ok = offs_m < C_OUT
    n_ok = offs_n < C_IN
    p_start = split * PIX_PER_SPLIT
    p_end = tl.minimum(p_start + PIX_PER_SPLIT, P)

    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC_DTYPE)
    bacc = tl.zeros([BLOCK_M], dtype=ACC_DTYPE)
    for p0 in range(p_start, p_end, BLOCK_K):
        offs_k = p0 + tl.arange(0, BLOCK_K).to(INDEX)  # [BK] pixel
        k_ok = offs_k < p_end
        img, oh, ow = pixel_coords(offs_k, H, W)
        a = relu_grad_cp(gy_ptr, y_ptr,
                         offs_m, img, oh, ow, m_ok[:, None] & k_ok[None, :],
                         stride_gy_n, stride_gy_c, stride_gy_h, stride_gy_w,
                         stride_y_n, stride_y_c, stride_y_h, stride_y_w)  # [BM, BK] = gy'^T
        if HAS_B:
            bacc += tl.sum(a.to(ACC_DTYPE), axis=1)
        if HAS_W:
            ih = oh + kh - PAD
            iw = ow + kw - PAD
            b_ok = k_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)  # zero padding of t
            b = tl.load(pc_ptrs(t_ptr, img, ih, iw, offs_n, stride_t_n, stride_t_c, stride_t_h, stride_t_w),
                        mask=b_ok[:, None] & n_ok[None, :], other=0.0)  # [BK, BN] shifted patch of t
            acc = tl.dot(a, b, acc, input_precision=PRECISION, out_dtype=acc.dtype)

    # one program per (split, C_OUT block) owns the bias
    store_partial(chunk_row(part_ptr, split, R, ATOMIC),
                  tap * C_OUT + offs_m, offs_m, m_ok, offs_n, n_ok, acc, bacc, (tap == 0) & (pid_n == 0),
                  C_IN, R_W,
                  HAS_W, HAS_B, ATOMIC)


@triton.jit
def _store_segment(
    # pointers
    w_ptr,
    # tile: weight row, input channel and tap of each element, the values and their mask
    row, ci, kh, kw, val, mask,
    # strides
    stride_w_o, stride_w_i, stride_w_h, stride_w_w,
):
    tl.store(w_ptr + row * stride_w_o + ci * stride_w_i + kh * stride_w_h + kw * stride_w_w,
             val.to(w_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _reduce_partials_kernel(
    # pointers
    part_ptr, w0_ptr, w1_ptr, w2_ptr, w3_ptr, b0_ptr, b1_ptr, b2_ptr, b3_ptr,
    # sizes
    S, R_W, R, C_TOT, C_IN, SEG1, SEG2, SEG3,
    # strides
    stride_w0_o, stride_w0_i, stride_w0_h, stride_w0_w,
    stride_w1_o, stride_w1_i, stride_w1_h, stride_w1_w,
    stride_w2_o, stride_w2_i, stride_w2_h, stride_w2_w,
    stride_w3_o, stride_w3_i, stride_w3_h, stride_w3_w,
    stride_b0, stride_b1, stride_b2, stride_b3,
    # meta-parameters
    KSIZE: tl.constexpr, INDEX: tl.constexpr, BLOCK: tl.constexpr,
):
    # out[r] = sum_{s < S} part[s, r], s in increasing order: the same bits every run. S == 0 writes zeros.
    # Rows j of the [TAPS, C_TOT, C_IN] weight region (and of the C_TOT bias region) belong to up to four outputs:
    # [0, SEG1) -> w0/b0, [SEG1, SEG2) -> w1/b1, [SEG2, SEG3) -> w2/b2, [SEG3, C_TOT) -> w3/b3.
    # None outputs are skipped. Tap t is kernel position (t // KSIZE, t % KSIZE): KSIZE is the kernel's width.
    offs = tl.program_id(0).to(INDEX) * BLOCK + tl.arange(0, BLOCK).to(INDEX)
    ok = offs < R
    acc = tl.zeros([BLOCK], dtype=part_ptr.dtype.element_ty)
    ptrs = part_ptr + offs
    for _ in range(0, S):
        acc += tl.load(ptrs, mask=ok, other=0.0)
        ptrs += R  # pointer arithmetic is 64-bit: no int32 overflow of s * R

    is_w = ok & (offs < R_W)
    tap = offs // (C_TOT * C_IN)
    j = (offs // C_IN) % C_TOT
    ci = offs % C_IN
    kh = tap // KSIZE
    kw = tap % KSIZE
    if w0_ptr is not None:
        _store_segment(w0_ptr, j, ci, kh, kw, acc, is_w & (j < SEG1),
                       stride_w0_o, stride_w0_i, stride_w0_h, stride_w0_w)
    if w1_ptr is not None:
        _store_segment(w1_ptr, j - SEG1, ci, kh, kw, acc, is_w & (j >= SEG1) & (j < SEG2),
                       stride_w1_o, stride_w1_i, stride_w1_h, stride_w1_w)
    if w2_ptr is not None:
        _store_segment(w2_ptr, j - SEG2, ci, kh, kw, acc, is_w & (j >= SEG2) & (j < SEG3),
                       stride_w2_o, stride_w2_i, stride_w2_h, stride_w2_w)
    if w3_ptr is not None:
        _store_segment(w3_ptr, j - SEG3, ci, kh, kw, acc, is_w & (j >= SEG3),
                       stride_w3_o, stride_w3_i, stride_w3_h, stride_w3_w)

    is_b = ok & (offs >= R_W)
    jb = offs - R_W
    if b0_ptr is not None:
        tl.store(b0_ptr + jb * stride_b0, acc.to(b0_ptr.dtype.element_ty), mask=is_b & (jb < SEG1))
    if b1_ptr is not None:
        tl.store(b1_ptr + (jb - SEG1) * stride_b1, acc.to(b1_ptr.dtype.element_ty),
                 mask=is_b & (jb >= SEG1) & (jb < SEG2))
    if b2_ptr is not None:
        tl.store(b2_ptr + (jb - SEG2) * stride_b2, acc.to(b2_ptr.dtype.element_ty),
                 mask=is_b & (jb >= SEG2) & (jb < SEG3))
    if b3_ptr is not None:
        tl.store(b3_ptr + (jb - SEG3) * stride_b3, acc.to(b3_ptr.dtype.element_ty), mask=is_b & (jb >= SEG3))


# ----------------------------------------------------------------------------------------------------------------------
# Launchers (unchecked). On GPU: autotuned per problem shape. Under the interpreter: one small fixed tile.

REDUCE_BLOCK = 1024
INTERPRETER_REDUCE_BLOCK = 256
# Pixels per deterministic chunk under the interpreter: small enough that tests exercise several chunks.
INTERPRETER_PIX_PER_SPLIT = 128
# The fewest pixels a chunk on a GPU: 8 to 16 pixel steps of the candidate tiles (BLOCK_K 32 to 64), enough to fill
# a 3-stage pipeline; and a 64x64 tile's fp32 partials (16 KB written, read back by the reduction) cost at most a
# quarter of the chunk's own loads (512 pixels of 64 gradient and 64 input channels in fp16: 128 KB).
MIN_PIX_PER_SPLIT = 512
# The split aims at this many programs per SM: one full wave of the 64 x 32 and 64 x 64 tiles (four resident on an
# sm_90 SM), several waves of the larger ones.
SPLIT_WAVES = 4
# Tiles are counted at 64x64 (the smallest wgmma-sized tile), the same for every candidate config.
SPLIT_TILE = 64


@functools.cache
def _sm_count(device) -> int:
    device = torch.device(device)
    if device.type != "cuda":  # no device to ask (the interpreter's CPU tensors): an H100 SXM / H200's
        return SM90_SM_COUNT
    return torch.cuda.get_device_properties(device).multi_processor_count


def pixel_splits(P, rows, cols, taps, device, *, whole_if_full=False):
    """(S, pixels per chunk) of a weight gradient's pixel sum over a ``rows`` x ``cols`` x ``taps`` output (gradient
    channels x input channels x kernel taps): S fixed chunks, independent of the tile config, so every autotuning
    candidate writes the same [S, R] partial buffer. S == 0 when there are no pixels.

    At least enough chunks for SPLIT_WAVES x SMs programs of SPLIT_TILE-square tiles (a full wave where up to
    SPLIT_WAVES such programs are resident on an SM), each at least MIN_PIX_PER_SPLIT pixels
    (INTERPRETER_PIX_PER_SPLIT under the interpreter). ``whole_if_full``: S is 1 when the tiles alone are that many
    programs (for a launcher that then writes its outputs itself, with no reduction launch)."""
    if P == 0:
        return 0, 1
    tiles = taps * triton.cdiv(rows, SPLIT_TILE) * triton.cdiv(max(cols, 1), SPLIT_TILE)
    programs = SPLIT_WAVES * _sm_count(device)
    if whole_if_full and tiles >= programs:
        return 1, P
    if interpreting():
        per = INTERPRETER_PIX_PER_SPLIT
    else:
        want = max(1, triton.cdiv(programs, tiles))
        # whole BLOCK_K steps for every candidate tile, rounded down so that the chunks are at least ``want``
        per = max(MIN_PIX_PER_SPLIT, P // want // 128 * 128)
    return triton.cdiv(P, per), per


def partial_buffer(S, r, dtype, device, deterministic, config):
    """(buffer, atomic): S chunk rows of r partial sums, or one row that float atomics accumulate into."""
    atomic = not deterministic and S > 0
    if atomic:
        # autotuning zeroes the row before each run itself; a forced or interpreted launch needs it zeroed here
        forced = config is not None or interpreting()
        return (torch.zeros if forced else torch.empty)((r,), dtype=partial_dtype(dtype), device=device), True
    return torch.empty((S, r), dtype=partial_dtype(dtype), device=device), False


def reduce_partials(part, S, r_w, r, c_tot, c_in, segs, weights, biases, ksize):
    """One launch: sum the S partial rows into up to four weight and four bias outputs (None entries skipped).
    ``ksize``: the weights' kernel width (the partials' taps run along kernel rows)."""
    kwargs = dict(part_ptr=part, S=S, R_W=r_w, R=r, C_TOT=c_tot, C_IN=c_in, SEG1=segs[0], SEG2=segs[1],
                  SEG3=segs[2], KSIZE=ksize, INDEX=index_dtype(part, *weights, *biases))
    for i, (w, b) in enumerate(zip(weights, biases)):
        kwargs.update({f"w{i}_ptr": w, **strides(f"w{i}", w, "oihw"), f"b{i}_ptr": b})
        kwargs[f"stride_b{i}"] = b.stride(0) if b is not None else 0
    block = INTERPRETER_REDUCE_BLOCK if interpreting() else REDUCE_BLOCK
    run_launch(lambda: _reduce_partials_kernel[(triton.cdiv(r, block),)](**kwargs, BLOCK=block, num_warps=4))


def launch_dgrad(grad_y, y, weight, t, grad_t, precision, config):
    """The input-gradient launch on non-empty arguments; ``y`` None: no (y > 0) mask on grad_y, ``t`` None: no
    (t > 0) mask. grad_t may be a scratch buffer of any float dtype."""
    N, C_OUT, H, W = grad_y.shape
    C_IN = weight.shape[1]
    P = N * H * W
    kwargs = dict(
        gy_ptr=grad_y, y_ptr=y, w_ptr=weight, t_ptr=t, gt_ptr=grad_t,
        P=P, P_BUCKET=pixel_bucket(P), H=H, W=W, C_IN=C_IN, C_OUT=C_OUT,
        **strides("gy", grad_y), **strides("y", y), **strides("w", weight, "oihw"), **strides("t", t),
        **strides("gt", grad_t),
        KSIZE=weight.shape[2], PRECISION=precision, ACC_DTYPE=acc_dtype(grad_y.dtype),
        INDEX=index_dtype(grad_y, y, weight, t, grad_t),
    )
    launch(_conv_relu_dgrad_kernel, pixel_channel_grid(P, C_IN), kwargs, config, INTERPRET_CONFIG,
           BACKWARD_CONFIG_DEFAULTS)


def launch_conv2d_relu_input_grad(grad_y, y, weight, t, grad_t, *, allow_tf32=False, config=None) -> torch.Tensor:
    """grad_t <- conv2d_input_grad(grad_y * (y > 0), weight) * (t > 0), one launch. Unchecked: arguments as
    ``checked.conv2d_relu_input_grad`` validates them.

    Forward was ``y = relu(conv2d(t, weight, b, stride 1, padding k // 2))`` with ``t`` itself a ReLU output.
    Implicit GEMM over pixels (M = N*H*W, N = C_IN, K = C_OUT*k*k) with the flipped, transposed weight; the
    ``y > 0`` mask is applied while loading grad_y, the ``t > 0`` mask in the epilogue.

    grad_y, y: (N, C_OUT, H, W), any strides (channel slices of grad_out / out). weight: (C_OUT, C_IN, k, k), k odd.
    t, grad_t: (N, C_IN, H, W), any strides. grad_t is overwritten and returned.
    ``allow_tf32``: fp32 dots in tf32. ``config``: None (autotuned on GPU) or a dict of BLOCK_M, BLOCK_N, BLOCK_K
    and optionally num_warps, num_stages.
    """
    n, _, h, w = grad_y.shape
    if n * h * w == 0 or weight.shape[1] == 0:
        return grad_t
    launch_dgrad(grad_y, y, weight, t, grad_t, dot_precision(grad_y.dtype, allow_tf32), config)
    return grad_t


def launch_conv2d_relu_weight_grad(grad_y, y, t, grad_weight, grad_bias, *, deterministic=True, allow_tf32=False,
                                   config=None) -> None:
    """grad_weight <- sum over (n, h, w) of (grad_y * (y > 0)) x (zero-padded k x k patches of t);
    grad_bias <- sum over (n, h, w) of grad_y * (y > 0). Either output may be None (its work is skipped).
    Unchecked: arguments as ``checked.conv2d_relu_weight_grad`` validates them.

    Two launches: the GEMM over pixels (M = C_OUT, N = C_IN per tap, K = pixels) writes fp32 (fp64 for fp64) partial
    sums of fixed pixel chunks into a [S, k*k*C_OUT*C_IN + C_OUT] buffer; a second kernel sums the chunks in a fixed
    order and writes each output in its own dtype (same bits every run). With ``deterministic=False`` the chunks
    are added into one buffer with float atomics instead (order, hence last bits, may vary).
    With no pixels (N*H*W == 0) the outputs are set to zero by the second kernel alone.

    grad_y, y: (N, C_OUT, H, W); t: (N, C_IN, H, W); any strides. grad_weight: (C_OUT, C_IN, k, k), k odd;
    grad_bias: (C_OUT,); outputs may have a dtype of their own (the parameter dtype). ``allow_tf32``: fp32 dots in
    tf32, as the forward's.
    """
    if grad_weight is None and grad_bias is None:
        return None
    n, c_out, h, w = grad_y.shape
    c_in = t.shape[1]
    dtype, device = grad_y.dtype, grad_y.device
    if c_out == 0 or (c_in == 0 and grad_bias is None):
        return None

    k = grad_weight.shape[2] if grad_weight is not None else 1
    has_w = grad_weight is not None and c_in > 0
    taps = k * k if has_w else 1
    r_w = taps * c_out * c_in if has_w else 0
    r = r_w + c_out
    P = n * h * w
    S, per = pixel_splits(P, c_out, c_in, taps, device)
    part, atomic = partial_buffer(S, r, dtype, device, deterministic, config)

    if S > 0:
        n_blocks = c_in if has_w else 1

        def grid(meta):
            return (S * taps, triton.cdiv(c_out, meta["BLOCK_M"]), triton.cdiv(n_blocks, meta["BLOCK_N"]))

        kwargs = dict(
            gy_ptr=grad_y, y_ptr=y, t_ptr=t, part_ptr=part,
            P=P, P_BUCKET=pixel_bucket(P), H=h, W=w, C_IN=c_in, C_OUT=c_out, PIX_PER_SPLIT=per, R_W=r_w, R=r,
            **strides("gy", grad_y), **strides("y", y), **strides("t", t),
            KSIZE=k, TAPS=taps, HAS_W=has_w, HAS_B=grad_bias is not None, ATOMIC=atomic,
            PRECISION=dot_precision(dtype, allow_tf32), ACC_DTYPE=acc_dtype(dtype),
            INDEX=index_dtype(grad_y, y, t, part),
        )
        launch(_conv_relu_wgrad_kernel, grid, kwargs, config, INTERPRET_WGRAD_CONFIG, BACKWARD_CONFIG_DEFAULTS)

    gw = grad_weight if (grad_weight is not None and grad_weight.numel() > 0) else None
    reduce_partials(part, 1 if atomic else S, r_w, r, c_out, max(c_in, 1), (c_out, c_out, c_out),
                    (gw, None, None, None), (grad_bias, None, None, None), k)
    return None
