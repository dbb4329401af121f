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

Every tensor is addressed through explicit (n, c, h, w) strides; offsets are int64.
Accumulation is fp32 (fp64 for fp64 inputs, so float64 gradcheck under the interpreter is meaningful).
"""
import functools

import torch
import triton
import triton.language as tl

from .common import dot_precision, interpreting, require_launchable
from .launch import (
    BACKWARD_CONFIG_DEFAULTS, INTERPRET_CONFIG, INTERPRET_WGRAD_CONFIG, acc_dtype, autotuned_partials, check_4d,
    check_tensor, gemm_configs, launch, partial_dtype, pixel_channel_grid,
)
from .tiles import chunk_row, dgrad_channels, pc_ptrs, pixel_coords, relu_grad, relu_grad_cp, store_partial


@triton.jit
def _conv_relu_dgrad_kernel(
    gy_ptr, y_ptr, w_ptr, t_ptr, gt_ptr,
    P, H, W, C_OUT, C_IN,
    s_gy_n, s_gy_c, s_gy_h, s_gy_w,
    s_y_n, s_y_c, s_y_h, s_y_w,
    s_w_o, s_w_i, s_w_h, s_w_w,
    s_t_n, s_t_c, s_t_h, s_t_w,
    s_gt_n, s_gt_c, s_gt_h, s_gt_w,
    KSIZE: tl.constexpr, PREC: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # Tile: BLOCK_M pixels x BLOCK_N input channels; reduction over (kh, kw, output channel).
    # y_ptr None: no (y > 0) mask on grad_y; t_ptr None: no (t > 0) mask in the epilogue.
    # gt_ptr may be a scratch buffer of any float dtype (the stem's fp32 dpool).
    pid_m = tl.program_id(0).to(tl.int64)
    pid_n = tl.program_id(1).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)  # [BM] pixel = (n, h, w)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)  # [BN] input channel
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
            gy_row = img * s_gy_n + ih * s_gy_h + iw * s_gy_w  # [BM]
            y_row = img * s_y_n + ih * s_y_h + iw * s_y_w
            w_tap = kh * s_w_h + kw * s_w_w
            acc = dgrad_channels(acc, gy_ptr, gy_row, s_gy_c, y_ptr, y_row, s_y_c, w_ptr + w_tap, s_w_o, s_w_i, C_OUT,
                                 pix_ok, offs_n, n_ok, y_ptr is not None, PREC, BLOCK_K)

    out_mask = m_ok[:, None] & n_ok[None, :]
    if t_ptr is not None:
        tv = tl.load(pc_ptrs(t_ptr, img, oh, ow, offs_n, s_t_n, s_t_c, s_t_h, s_t_w), mask=out_mask, other=0.0)
        acc = relu_grad(acc, tv)
    tl.store(pc_ptrs(gt_ptr, img, oh, ow, offs_n, s_gt_n, s_gt_c, s_gt_h, s_gt_w), acc.to(gt_ptr.dtype.element_ty),
             mask=out_mask)


@triton.jit
def _conv_relu_wgrad_kernel(
    gy_ptr, y_ptr, t_ptr, part_ptr,
    P, H, W, C_OUT, C_IN, PIX_PER_SPLIT, R_W, R,
    s_gy_n, s_gy_c, s_gy_h, s_gy_w,
    s_y_n, s_y_c, s_y_h, s_y_w,
    s_t_n, s_t_c, s_t_h, s_t_w,
    KSIZE: tl.constexpr, TAPS: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr, ATOMIC: tl.constexpr,
    PREC: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # Grid: (split * TAPS + tap, Cout blocks, Cin blocks). Tile: BLOCK_M output x BLOCK_N input channels of one tap,
    # reduced over the BLOCK_K-pixel steps of one fixed chunk of PIX_PER_SPLIT pixels.
    # part layout: [S, R] rows, R = R_W (tap-major [TAPS, Cout, Cin] weight partials) + Cout (bias partials).
    pid0 = tl.program_id(0).to(tl.int64)
    tap = pid0 % TAPS
    split = pid0 // TAPS
    pid_m = tl.program_id(1).to(tl.int64)
    pid_n = tl.program_id(2).to(tl.int64)
    kh = tap // KSIZE
    kw = tap % KSIZE
    PAD = KSIZE // 2
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)  # [BM] output channel
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)  # [BN] input channel
    m_ok = offs_m < C_OUT
    n_ok = offs_n < C_IN
    p_start = split * PIX_PER_SPLIT
    p_end = tl.minimum(p_start + PIX_PER_SPLIT, P)

    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC_DTYPE)
    bacc = tl.zeros([BLOCK_M], dtype=ACC_DTYPE)
    for p0 in range(p_start, p_end, BLOCK_K):
        offs_k = p0 + tl.arange(0, BLOCK_K).to(tl.int64)  # [BK] pixel
        k_ok = offs_k < p_end
        img, oh, ow = pixel_coords(offs_k, H, W)
        a = relu_grad_cp(gy_ptr, y_ptr, offs_m, img, oh, ow, s_gy_n, s_gy_c, s_gy_h, s_gy_w, s_y_n, s_y_c, s_y_h, s_y_w,
                         m_ok[:, None] & k_ok[None, :])  # [BM, BK] = gy'^T
        if HAS_B:
            bacc += tl.sum(a.to(ACC_DTYPE), axis=1)
        if HAS_W:
            ih = oh + kh - PAD
            iw = ow + kw - PAD
            b_ok = k_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)  # zero padding of t
            b = tl.load(pc_ptrs(t_ptr, img, ih, iw, offs_n, s_t_n, s_t_c, s_t_h, s_t_w),
                        mask=b_ok[:, None] & n_ok[None, :], other=0.0)  # [BK, BN] shifted patch of t
            acc = tl.dot(a, b, acc, input_precision=PREC, out_dtype=acc.dtype)

    # one program per (split, Cout block) owns the bias
    store_partial(chunk_row(part_ptr, split, R, ATOMIC), tap * C_OUT + offs_m, offs_m, m_ok, offs_n, n_ok, acc, bacc,
                  (tap == 0) & (pid_n == 0), C_IN, R_W, HAS_W, HAS_B, ATOMIC)


@triton.jit
def _store_segment(ptr, s_o, s_i, s_h, s_w, row, ci, kh, kw, val, mask):
    tl.store(ptr + row * s_o + ci * s_i + kh * s_h + kw * s_w, val.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _reduce_partials_kernel(
    part_ptr, S, R_W, R, C_TOT, C_IN, SEG1, SEG2, SEG3,
    w0_ptr, s_w0_o, s_w0_i, s_w0_h, s_w0_w,
    w1_ptr, s_w1_o, s_w1_i, s_w1_h, s_w1_w,
    w2_ptr, s_w2_o, s_w2_i, s_w2_h, s_w2_w,
    w3_ptr, s_w3_o, s_w3_i, s_w3_h, s_w3_w,
    b0_ptr, s_b0, b1_ptr, s_b1, b2_ptr, s_b2, b3_ptr, s_b3,
    KSIZE: tl.constexpr, BLOCK: tl.constexpr,
):
    # out[r] = sum_{s < S} part[s, r], s in increasing order: the same bits every run. S == 0 writes zeros.
    # Rows j of the [TAPS, C_TOT, C_IN] weight region (and of the C_TOT bias region) belong to up to four outputs:
    # [0, SEG1) -> w0/b0, [SEG1, SEG2) -> w1/b1, [SEG2, SEG3) -> w2/b2, [SEG3, C_TOT) -> w3/b3.
    # None outputs are skipped.
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    ok = offs < R
    acc = tl.zeros([BLOCK], dtype=part_ptr.dtype.element_ty)
    ptrs = part_ptr + offs
    for s in range(0, S):
        acc += tl.load(ptrs, mask=ok, other=0.0)
        ptrs += R  # pointer arithmetic is 64-bit: no int32 overflow of s * R

    is_w = ok & (offs < R_W)
    tap = offs // (C_TOT * C_IN)
    j = (offs // C_IN) % C_TOT
    ci = offs % C_IN
    kh = tap // KSIZE
    kw = tap % KSIZE
    if w0_ptr is not None:
        _store_segment(w0_ptr, s_w0_o, s_w0_i, s_w0_h, s_w0_w, j, ci, kh, kw, acc, is_w & (j < SEG1))
    if w1_ptr is not None:
        _store_segment(w1_ptr, s_w1_o, s_w1_i, s_w1_h, s_w1_w, j - SEG1, ci, kh, kw, acc,
                       is_w & (j >= SEG1) & (j < SEG2))
    if w2_ptr is not None:
        _store_segment(w2_ptr, s_w2_o, s_w2_i, s_w2_h, s_w2_w, j - SEG2, ci, kh, kw, acc,
                       is_w & (j >= SEG2) & (j < SEG3))
    if w3_ptr is not None:
        _store_segment(w3_ptr, s_w3_o, s_w3_i, s_w3_h, s_w3_w, j - SEG3, ci, kh, kw, acc, is_w & (j >= SEG3))

    is_b = ok & (offs >= R_W)
    jb = offs - R_W
    if b0_ptr is not None:
        tl.store(b0_ptr + jb * s_b0, acc.to(b0_ptr.dtype.element_ty), mask=is_b & (jb < SEG1))
    if b1_ptr is not None:
        tl.store(b1_ptr + (jb - SEG1) * s_b1, acc.to(b1_ptr.dtype.element_ty), mask=is_b & (jb >= SEG1) & (jb < SEG2))
    if b2_ptr is not None:
        tl.store(b2_ptr + (jb - SEG2) * s_b2, acc.to(b2_ptr.dtype.element_ty), mask=is_b & (jb >= SEG2) & (jb < SEG3))
    if b3_ptr is not None:
        tl.store(b3_ptr + (jb - SEG3) * s_b3, acc.to(b3_ptr.dtype.element_ty), mask=is_b & (jb >= SEG3))


# ----------------------------------------------------------------------------------------------------------------------
# Launch configurations. On GPU: autotuned per problem shape. Under the interpreter: one small fixed tile.

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages); BLOCK_M is pixels (dgrad) or output channels (wgrad).
DGRAD_SHAPES = [
    (128, 64, 32, 4, 3), (64, 64, 32, 4, 3), (128, 128, 32, 8, 3), (64, 128, 32, 4, 3),
    (128, 64, 64, 4, 3), (64, 32, 32, 4, 4), (32, 64, 64, 4, 4),
]
WGRAD_SHAPES = [
    (64, 64, 64, 4, 3), (128, 64, 32, 4, 3), (64, 128, 32, 4, 3), (128, 128, 32, 8, 3),
    (32, 64, 64, 4, 4), (64, 32, 64, 4, 4), (32, 32, 128, 4, 3),
]
REDUCE_BLOCK = 1024
INTERPRETER_REDUCE_BLOCK = 256
# Pixels per deterministic chunk under the interpreter: small enough that tests exercise several chunks.
INTERPRETER_PIX_PER_SPLIT = 128


_dgrad_tuned = triton.autotune(configs=gemm_configs(DGRAD_SHAPES), key=["P", "C_OUT", "C_IN", "KSIZE"])(
    _conv_relu_dgrad_kernel)
_wgrad_tuned, _wgrad_atomic_tuned = autotuned_partials(
    _conv_relu_wgrad_kernel, WGRAD_SHAPES, ["P", "C_OUT", "C_IN", "PIX_PER_SPLIT", "KSIZE", "HAS_W", "HAS_B"])


@functools.lru_cache(maxsize=None)
def _sm_count(device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def pixel_splits(P, tiles, device):
    """(S, pixels per chunk) for the deterministic pixel reduction; independent of the tile config, so every
    autotuning candidate writes the same [S, R] partial buffer. S == 0 when there are no pixels."""
    if P == 0:
        return 0, 1
    if interpreting():
        per = INTERPRETER_PIX_PER_SPLIT
    else:
        sms = _sm_count(device)
        want = max(1, triton.cdiv(4 * sms, max(tiles, 1)))  # enough programs to fill the machine a few times over
        per = max(512, triton.cdiv(P, want))
        per = triton.cdiv(per, 128) * 128  # whole BLOCK_K steps for every candidate tile
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
    """One launch: sum the S partial rows into up to four weight and four bias outputs (None entries skipped)."""
    w_args = []
    for w in weights:
        w_args += [w, *(w.stride() if w is not None else (0, 0, 0, 0))]
    b_args = []
    for b in biases:
        b_args += [b, b.stride(0) if b is not None else 0]
    block = INTERPRETER_REDUCE_BLOCK if interpreting() else REDUCE_BLOCK
    grid = (triton.cdiv(r, block),)
    _reduce_partials_kernel[grid](part, S, r_w, r, c_tot, c_in, *segs, *w_args, *b_args, KSIZE=ksize, BLOCK=block,
                                  num_warps=4)


# ----------------------------------------------------------------------------------------------------------------------
# Launchers.

def conv2d_relu_input_grad(grad_y, y, weight, t, grad_t, *, allow_tf32=False, config=None) -> torch.Tensor:
    """grad_t <- conv2d_input_grad(grad_y * (y > 0), weight) * (t > 0), one launch.

    Forward was ``y = relu(conv2d(t, weight, b, stride 1, padding k // 2))`` with ``t`` itself a ReLU output.
    Implicit GEMM over pixels (M = N*H*W, N = Cin, K = Cout*k*k) with the flipped, transposed weight; the
    ``y > 0`` mask is applied while loading grad_y, the ``t > 0`` mask in the epilogue.

    grad_y, y: (N, Cout, H, W), any strides (channel slices of grad_out / out). weight: (Cout, Cin, k, k), k odd.
    t, grad_t: (N, Cin, H, W), any strides. grad_t is overwritten and returned.
    ``allow_tf32``: fp32 dots in tf32. ``config``: None (autotuned on GPU) or a dict of BLOCK_M, BLOCK_N, BLOCK_K
    and optionally num_warps, num_stages.
    """
    check_4d("grad_y", grad_y)
    n, c_out, h, w = grad_y.shape
    check_4d("weight", weight)
    if weight.shape[0] != c_out or weight.shape[2] != weight.shape[3] or weight.shape[2] % 2 != 1:
        raise ValueError(f"weight: expected shape ({c_out}, Cin, k, k) with k odd, got {tuple(weight.shape)}")
    c_in = weight.shape[1]
    dtype, device = grad_y.dtype, grad_y.device
    check_tensor("y", y, (n, c_out, h, w), dtype, device)
    check_tensor("weight", weight, weight.shape, dtype, device)
    check_tensor("t", t, (n, c_in, h, w), dtype, device)
    check_tensor("grad_t", grad_t, (n, c_in, h, w), dtype, device)
    require_launchable(grad_y, y, weight, t, grad_t)
    if n * h * w == 0 or c_in == 0:
        return grad_t
    launch_input_grad(grad_y, y, weight, t, grad_t, dot_precision(dtype, allow_tf32), config)
    return grad_t


def launch_input_grad(grad_y, y, weight, t, grad_t, prec, config):
    """The input-gradient launch of ``conv2d_relu_input_grad`` on checked, non-empty arguments; ``t`` None: no
    (t > 0) mask. grad_t may be a scratch buffer of any float dtype."""
    n, c_out, h, w = grad_y.shape
    c_in, k = weight.shape[1], weight.shape[2]
    P = n * h * w
    args = (grad_y, y, weight, t, grad_t, P, h, w, c_out, c_in, *grad_y.stride(), *y.stride(), *weight.stride(),
            *(t.stride() if t is not None else (0, 0, 0, 0)), *grad_t.stride())
    consts = dict(KSIZE=k, PREC=prec, ACC_DTYPE=acc_dtype(grad_y.dtype))
    launch(_conv_relu_dgrad_kernel, _dgrad_tuned, pixel_channel_grid(P, c_in), args, consts, config, INTERPRET_CONFIG,
           BACKWARD_CONFIG_DEFAULTS)


def conv2d_relu_weight_grad(grad_y, y, t, grad_weight, grad_bias, *, deterministic=True, config=None) -> None:
    """grad_weight <- sum over (n, h, w) of (grad_y * (y > 0)) x (zero-padded k x k patches of t);
    grad_bias <- sum over (n, h, w) of grad_y * (y > 0). Either output may be None (its work is skipped).

    Two launches: the GEMM over pixels (M = Cout, N = Cin per tap, K = pixels) writes fp32 (fp64 for fp64) partial
    sums of fixed pixel chunks into a [S, k*k*Cout*Cin + Cout] buffer; a second kernel sums the chunks in a fixed
    order and writes each output in its own dtype (same bits every run). With ``deterministic=False`` the chunks
    are added into one buffer with float atomics instead (order, hence last bits, may vary).
    With no pixels (N*H*W == 0) the outputs are set to zero by the second kernel alone.

    grad_y, y: (N, Cout, H, W); t: (N, Cin, H, W); any strides. grad_weight: (Cout, Cin, k, k), k odd;
    grad_bias: (Cout,); outputs may have a dtype of their own (the parameter dtype).
    """
    if grad_weight is None and grad_bias is None:
        return None
    check_4d("grad_y", grad_y)
    n, c_out, h, w = grad_y.shape
    dtype, device = grad_y.dtype, grad_y.device
    check_tensor("y", y, (n, c_out, h, w), dtype, device)
    check_4d("t", t)
    c_in = t.shape[1]
    check_tensor("t", t, (n, c_in, h, w), dtype, device)
    k = 1
    if grad_weight is not None:
        check_4d("grad_weight", grad_weight)
        k = grad_weight.shape[2]
        if k % 2 != 1:
            raise ValueError(f"grad_weight: expected an odd kernel size, got shape {tuple(grad_weight.shape)}")
        check_tensor("grad_weight", grad_weight, (c_out, c_in, k, k), None, device)
    if grad_bias is not None:
        check_tensor("grad_bias", grad_bias, (c_out,), None, device)
    require_launchable(grad_y, y, t, grad_weight, grad_bias)
    if c_out == 0 or (c_in == 0 and grad_bias is None):
        return None

    has_w = grad_weight is not None and c_in > 0
    taps = k * k if has_w else 1
    r_w = taps * c_out * c_in if has_w else 0
    r = r_w + c_out
    P = n * h * w
    tiles = taps * triton.cdiv(c_out, 64) * triton.cdiv(max(c_in, 1), 64)
    S, per = pixel_splits(P, tiles, device)
    part, atomic = partial_buffer(S, r, dtype, device, deterministic, config)

    if S > 0:
        n_blocks = c_in if has_w else 1

        def grid(meta):
            return (S * taps, triton.cdiv(c_out, meta["BLOCK_M"]), triton.cdiv(n_blocks, meta["BLOCK_N"]))

        args = (grad_y, y, t, part, P, h, w, c_out, c_in, per, r_w, r,
                *grad_y.stride(), *y.stride(), *t.stride())
        consts = dict(KSIZE=k, TAPS=taps, HAS_W=has_w, HAS_B=grad_bias is not None, ATOMIC=atomic,
                      PREC=dot_precision(dtype, False), ACC_DTYPE=acc_dtype(dtype))
        tuned = _wgrad_atomic_tuned if atomic else _wgrad_tuned
        launch(_conv_relu_wgrad_kernel, tuned, grid, args, consts, config, INTERPRET_WGRAD_CONFIG,
               BACKWARD_CONFIG_DEFAULTS)

    gw = grad_weight if (grad_weight is not None and grad_weight.numel() > 0) else None
    reduce_partials(part, 1 if atomic else S, r_w, r, c_out, max(c_in, 1), (c_out, c_out, c_out),
                    (gw, None, None, None), (grad_bias, None, None, None), k)
    return None
