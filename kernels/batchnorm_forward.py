"""BatchNorm with batch statistics after a conv, forward: the statistics' combine (and the running averages' update),
then normalisation, affine and ReLU in one light pass.

The conv (``conv2d_general`` with ``stats=``) leaves, per group of ``STATS_ROWS`` output pixels and per channel, the
group's sum and its sum of squares about the group's own mean. ``launch_bn_finalize`` combines the groups in a fixed
order (blocks of groups merged at once, then the blocks one after the other with Chan's parallel update: no
atomics, the same bits every run), writes each channel's batch mean and 1 / sqrt(biased variance + eps) for the
normalisation and the backward, and updates the running statistics in place as ``nn.BatchNorm2d`` does: unbiased
variance, ``momentum``, or the cumulative average over ``num_batches_tracked`` + 1 when momentum is None. One program
per block of channels. ``launch_bn_relu`` then writes ``relu(gamma * (y - mean) * rstd + beta)`` where the next
kernel reads it (a slice of the block's output or a branch buffer), keeping the conv's output ``y`` for the
backward, and increments ``num_batches_tracked``: in a later launch than the finalize's, whose programs all read the
counter, so that no program can see it already incremented.
"""
import triton
import triton.language as tl

from .launch import acc_dtype, index_dtype, run_launch, strides, tile_grid
from .tiles import bn_activation, pc_ptrs, pixel_coords, program_tile


@triton.jit
def _bn_finalize_kernel(
    # pointers: the conv's partials [2, T, C]; out: [2, C] mean and rstd; running stats and counter (None: no update;
    # the counter is read here, not written)
    part_ptr, stat_ptr, rm_ptr, rv_ptr, nbt_ptr,
    # sizes: P pixels in T groups of ROWS
    P, T, C,
    # strides
    stride_p_k, stride_p_t, stride_stat_k,
    # meta-parameters (EPS and MOMENTUM compile-time constants: a runtime float argument is fp32 on a GPU, and fp64
    # statistics need them exactly)
    EPS: tl.constexpr, MOMENTUM: tl.constexpr, CUMULATIVE: tl.constexpr, ROWS: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    chans = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = chans < C
    n = tl.zeros((BLOCK_C,), dtype=ACC_DTYPE)
    mean = tl.zeros((BLOCK_C,), dtype=ACC_DTYPE)
    m2 = tl.zeros((BLOCK_C,), dtype=ACC_DTYPE)
    for t0 in range(0, T, BLOCK_T):
        rows = t0 + tl.arange(0, BLOCK_T)
        counts = tl.maximum(tl.minimum(P - rows * ROWS, ROWS), 0).to(ACC_DTYPE)  # [BT]
        mask = (rows < T)[:, None] & c_ok[None, :]
        ptrs = part_ptr + rows[:, None] * stride_p_t + chans[None, :]
        sums = tl.load(ptrs, mask=mask, other=0.0)
        squares = tl.load(ptrs + stride_p_k, mask=mask, other=0.0)
        # the block's groups at once: M2 = sum M2_i + sum n_i (mean_i - mean_b)^2
        n_b = tl.sum(counts, axis=0)
        mean_b = tl.sum(sums, axis=0) / n_b
        dev = tl.where(mask, sums / tl.maximum(counts, 1.0)[:, None] - mean_b[None, :], 0.0)
        m2_b = tl.sum(squares, axis=0) + tl.sum(counts[:, None] * dev * dev, axis=0)
        # then into the running combine (Chan et al.)
        total = n + n_b
        delta = mean_b - mean
        mean += delta * (n_b / total)
        m2 += m2_b + delta * delta * (n * n_b / total)
        n = total
    var = m2 / n
    if ACC_DTYPE == tl.float64:
        rstd = 1.0 / tl.sqrt(var + EPS)
    else:
        rstd = 1.0 / tl.sqrt_rn(var + EPS)  # IEEE-rounded, not the approximate square root
    tl.store(stat_ptr + chans, mean, mask=c_ok)
    tl.store(stat_ptr + stride_stat_k + chans, rstd, mask=c_ok)
    if rm_ptr is not None:
        rm = tl.load(rm_ptr + chans, mask=c_ok, other=0.0)
        rv = tl.load(rv_ptr + chans, mask=c_ok, other=0.0)
        unbiased = m2 / (n - 1.0)
        if CUMULATIVE:  # momentum None: the cumulative average over num_batches_tracked + 1 (bn_relu stores it)
            f = 1.0 / (tl.load(nbt_ptr) + 1).to(ACC_DTYPE)
            new_rm = (1.0 - f) * rm.to(ACC_DTYPE) + f * mean
            new_rv = (1.0 - f) * rv.to(ACC_DTYPE) + f * unbiased
        else:
            new_rm = (1.0 - MOMENTUM) * rm.to(ACC_DTYPE) + MOMENTUM * mean
            new_rv = (1.0 - MOMENTUM) * rv.to(ACC_DTYPE) + MOMENTUM * unbiased
        tl.store(rm_ptr + chans, new_rm.to(rm.dtype), mask=c_ok)
        tl.store(rv_ptr + chans, new_rv.to(rv.dtype), mask=c_ok)


# 16 channels a program (narrow, for more programs: each walks every group of its channels); 64 groups a step
FINALIZE_TILE = {"BLOCK_T": 64, "BLOCK_C": 16}


def launch_bn_finalize(partials, pixels, stats, *, eps, running_mean=None, running_var=None,
                       num_batches_tracked=None, momentum=0.1) -> None:
    """``stats[0] <- mean``, ``stats[1] <- 1 / sqrt(var + eps)`` (biased variance) of each channel from a conv's
    ``partials`` ([2, T, C], ``conv2d_general.launch_conv2d_general(stats=)``) over ``pixels`` values; with
    ``running_mean`` / ``running_var`` their update as BatchNorm's (``momentum`` None: the cumulative average over
    ``num_batches_tracked`` + 1, which ``launch_bn_relu`` then stores). One program per 16 channels. Unchecked."""
    from .conv2d_general import STATS_ROWS

    _, T, C = partials.shape
    kwargs = dict(part_ptr=partials, stat_ptr=stats, rm_ptr=running_mean, rv_ptr=running_var,
                  nbt_ptr=num_batches_tracked, P=pixels, T=T, C=C, stride_p_k=partials.stride(0),
                  stride_p_t=partials.stride(1), stride_stat_k=stats.stride(0), EPS=float(eps),
                  MOMENTUM=0.0 if momentum is None else float(momentum), CUMULATIVE=momentum is None,
                  ROWS=STATS_ROWS, ACC_DTYPE=acc_dtype(partials.dtype), **FINALIZE_TILE)
    run_launch(lambda: _bn_finalize_kernel[(triton.cdiv(C, FINALIZE_TILE["BLOCK_C"]),)](**kwargs, num_warps=4))


@triton.jit
def _bn_relu_kernel(
    # pointers: the conv's output, [2, C] mean and rstd, gamma and beta (None: 1 and 0), the activation, BatchNorm's
    # num_batches_tracked (None: nothing to count)
    y_ptr, stat_ptr, g_ptr, b_ptr, a_ptr, nbt_ptr,
    # sizes: P = N*H*W pixels
    P, H, W, C,
    # strides
    stride_y_n, stride_y_c, stride_y_h, stride_y_w,
    stride_stat_k,
    stride_a_n, stride_a_c, stride_a_h, stride_a_w,
    # meta-parameters
    ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    if nbt_ptr is not None:
        if tl.program_id(0) == 0:
            tl.store(nbt_ptr, tl.load(nbt_ptr) + 1)
    pid_m, pid_n, in_range = program_tile(tl.cdiv(C, BLOCK_N), P, BLOCK_M, INDEX)
    if in_range:
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX)
        img, h, w = pixel_coords(offs_m, H, W)
        mask_n = offs_n < C
        mask = (offs_m < P)[:, None] & mask_n[None, :]
        y = tl.load(pc_ptrs(y_ptr, img, h, w, offs_n, stride_y_n, stride_y_c, stride_y_h, stride_y_w), mask=mask,
                    other=0.0)
        _, z = bn_activation(y.to(ACC_DTYPE), stat_ptr, g_ptr, b_ptr, offs_n, mask_n, stride_stat_k, ACC_DTYPE)
        a = tl.where(z < 0, 0.0, z)  # keeps NaN, as torch.relu does
        tl.store(pc_ptrs(a_ptr, img, h, w, offs_n, stride_a_n, stride_a_c, stride_a_h, stride_a_w),
                 a.to(a_ptr.dtype.element_ty), mask=mask)


# light passes: one fixed tile (no autotuning), the interpreter's as the GPU's
BN_TILE = {"BLOCK_M": 64, "BLOCK_N": 32}


def launch_bn_relu(y, stats, gamma, beta, act, num_batches_tracked=None) -> None:
    """``act <- relu(gamma * (y - mean) * rstd + beta)`` per channel, ``stats`` [2, C] (mean, rstd) from
    ``launch_bn_finalize``; ``gamma`` / ``beta`` None for 1 / 0. ``y`` and ``act`` (N, C, H, W), any strides.
    ``num_batches_tracked`` (BatchNorm's counter, read by the finalize before) is incremented. Unchecked."""
    N, C, H, W = y.shape
    P = N * H * W
    if P == 0 or C == 0:
        return
    kwargs = dict(y_ptr=y, stat_ptr=stats, g_ptr=gamma, b_ptr=beta, a_ptr=act, nbt_ptr=num_batches_tracked,
                  P=P, H=H, W=W, C=C, **strides("y", y), stride_stat_k=stats.stride(0), **strides("a", act),
                  ACC_DTYPE=acc_dtype(y.dtype), INDEX=index_dtype(y, act), **BN_TILE)
    grid = tile_grid(P, C, BN_TILE["BLOCK_M"], BN_TILE["BLOCK_N"])
    run_launch(lambda: _bn_relu_kernel[grid](**kwargs, num_warps=4))
