"""BatchNorm with batch statistics then ReLU, backward: from the gradient of the activation ``a = relu(z)``,
``z = gamma * xhat + beta``, ``xhat = (y - mean) * rstd``, to the gradient of the conv's output ``y``.

With ``g = da * (z > 0)`` (z recomputed from the saved ``y`` by ``tiles.bn_activation``, as the forward computed
it): ``dgamma = sum g * xhat``, ``dbeta = sum g`` over the channel's pixels, and
``dy = gamma * rstd * (g - dbeta / P - xhat * dgamma / P)``. Three light launches, no atomics:
``launch_bn_grad_partials`` writes each pixel tile's two sums per channel to its own row of a partial buffer,
``launch_bn_grad_combine`` adds the rows from first to last (a fixed order: the same bits every run) into dgamma and
dbeta, and ``launch_bn_input_grad`` writes dy, which the conv's backward kernels then read.
"""
import triton
import triton.language as tl

from .batchnorm_forward import BN_TILE
from .launch import acc_dtype, index_dtype, partial_dtype, run_launch, strides, tile_grid
from .tiles import bn_activation, pc_ptrs, pixel_coords, program_tile


@triton.jit
def _masked_grad(
    da_ptr, y_ptr, stat_ptr, g_ptr, b_ptr,
    pid_m, pid_n, P, H, W, C,
    stride_da_n, stride_da_c, stride_da_h, stride_da_w,
    stride_y_n, stride_y_c, stride_y_h, stride_y_w,
    stride_stat_k,
    ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # this tile's (g, xhat, pixel coordinates, channels, masks): g the activation's gradient through the ReLU
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX)
    img, h, w = pixel_coords(offs_m, H, W)
    mask_n = offs_n < C
    mask = (offs_m < P)[:, None] & mask_n[None, :]
    y = tl.load(pc_ptrs(y_ptr, img, h, w, offs_n, stride_y_n, stride_y_c, stride_y_h, stride_y_w), mask=mask,
                other=0.0).to(ACC_DTYPE)
    da = tl.load(pc_ptrs(da_ptr, img, h, w, offs_n, stride_da_n, stride_da_c, stride_da_h, stride_da_w), mask=mask,
                 other=0.0).to(ACC_DTYPE)
    xhat, z = bn_activation(y, stat_ptr, g_ptr, b_ptr, offs_n, mask_n, stride_stat_k, ACC_DTYPE)
    g = tl.where((z > 0) & mask, da, 0.0)  # PyTorch's ReLU backward: the gradient passes where the output is > 0
    return g, tl.where(mask, xhat, 0.0), img, h, w, offs_n, mask_n, mask


@triton.jit
def _bn_grad_partials_kernel(
    # pointers: the activation's gradient, the conv's saved output, [2, C] mean and rstd, gamma, beta; partials
    da_ptr, y_ptr, stat_ptr, g_ptr, b_ptr, part_ptr,
    # sizes
    P, H, W, C,
    # strides
    stride_da_n, stride_da_c, stride_da_h, stride_da_w,
    stride_y_n, stride_y_c, stride_y_h, stride_y_w,
    stride_stat_k, stride_p_k, stride_p_t,
    # meta-parameters
    ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_m, pid_n, in_range = program_tile(tl.cdiv(C, BLOCK_N), P, BLOCK_M, INDEX)
    if in_range:
        g, xhat, _, _, _, offs_n, mask_n, _ = _masked_grad(
            da_ptr, y_ptr, stat_ptr, g_ptr, b_ptr, pid_m, pid_n, P, H, W, C,
            stride_da_n, stride_da_c, stride_da_h, stride_da_w, stride_y_n, stride_y_c, stride_y_h, stride_y_w,
            stride_stat_k, ACC_DTYPE, INDEX, BLOCK_M, BLOCK_N)
        row = part_ptr + pid_m * stride_p_t + offs_n
        tl.store(row, tl.sum(g, axis=0), mask=mask_n)
        tl.store(row + stride_p_k, tl.sum(g * xhat, axis=0), mask=mask_n)


@triton.jit
def _bn_grad_combine_kernel(
    # pointers: partials [2, T, C]; sums [2, C] (dbeta, dgamma in ACC_DTYPE); gamma's and beta's gradients or None
    part_ptr, sum_ptr, dg_ptr, db_ptr,
    # sizes
    T, C,
    # strides
    stride_p_k, stride_p_t, stride_sum_k,
    # meta-parameters
    ACC_DTYPE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr,
):
    chans = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = chans < C
    sum_g = tl.zeros((BLOCK_C,), dtype=ACC_DTYPE)
    sum_gx = tl.zeros((BLOCK_C,), dtype=ACC_DTYPE)
    for t0 in range(0, T, BLOCK_T):
        rows = t0 + tl.arange(0, BLOCK_T)
        mask = (rows < T)[:, None] & c_ok[None, :]
        ptrs = part_ptr + rows[:, None] * stride_p_t + chans[None, :]
        sum_g += tl.sum(tl.load(ptrs, mask=mask, other=0.0), axis=0)
        sum_gx += tl.sum(tl.load(ptrs + stride_p_k, mask=mask, other=0.0), axis=0)
    tl.store(sum_ptr + chans, sum_g, mask=c_ok)
    tl.store(sum_ptr + stride_sum_k + chans, sum_gx, mask=c_ok)
    if db_ptr is not None:
        tl.store(db_ptr + chans, sum_g.to(db_ptr.dtype.element_ty), mask=c_ok)
    if dg_ptr is not None:
        tl.store(dg_ptr + chans, sum_gx.to(dg_ptr.dtype.element_ty), mask=c_ok)


@triton.jit
def _bn_input_grad_kernel(
    # pointers: as the partials', the sums [2, C], and the conv output's gradient
    da_ptr, y_ptr, stat_ptr, g_ptr, b_ptr, sum_ptr, dy_ptr,
    # sizes
    P, H, W, C,
    # strides
    stride_da_n, stride_da_c, stride_da_h, stride_da_w,
    stride_y_n, stride_y_c, stride_y_h, stride_y_w,
    stride_stat_k, stride_sum_k,
    stride_dy_n, stride_dy_c, stride_dy_h, stride_dy_w,
    # meta-parameters
    ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_m, pid_n, in_range = program_tile(tl.cdiv(C, BLOCK_N), P, BLOCK_M, INDEX)
    if in_range:
        g, xhat, img, h, w, offs_n, mask_n, mask = _masked_grad(
            da_ptr, y_ptr, stat_ptr, g_ptr, b_ptr, pid_m, pid_n, P, H, W, C,
            stride_da_n, stride_da_c, stride_da_h, stride_da_w, stride_y_n, stride_y_c, stride_y_h, stride_y_w,
            stride_stat_k, ACC_DTYPE, INDEX, BLOCK_M, BLOCK_N)
        inv_p = 1.0 / P.to(ACC_DTYPE)
        mean_g = tl.load(sum_ptr + offs_n, mask=mask_n, other=0.0) * inv_p
        mean_gx = tl.load(sum_ptr + stride_sum_k + offs_n, mask=mask_n, other=0.0) * inv_p
        scale = tl.load(stat_ptr + stride_stat_k + offs_n, mask=mask_n, other=0.0).to(ACC_DTYPE)  # rstd
        if g_ptr is not None:
            scale = scale * tl.load(g_ptr + offs_n, mask=mask_n, other=0.0).to(ACC_DTYPE)
        dy = scale[None, :] * (g - mean_g[None, :] - xhat * mean_gx[None, :])
        tl.store(pc_ptrs(dy_ptr, img, h, w, offs_n, stride_dy_n, stride_dy_c, stride_dy_h, stride_dy_w),
                 dy.to(dy_ptr.dtype.element_ty), mask=mask)


def launch_bn_relu_backward(grad_act, y, stats, gamma, beta, grad_y, grad_gamma=None, grad_beta=None) -> None:
    """``grad_y <- dL/dy`` of ``a = relu(gamma * (y - mean) * rstd + beta)`` with batch statistics (``stats`` [2, C]:
    the forward's mean and rstd) from ``grad_act``; ``grad_gamma`` / ``grad_beta`` receive theirs when not None.
    ``gamma`` / ``beta`` None for 1 / 0. Three launches. Unchecked."""
    N, C, H, W = y.shape
    P = N * H * W
    if P == 0 or C == 0:
        return
    bm, bn = BN_TILE["BLOCK_M"], BN_TILE["BLOCK_N"]
    T = triton.cdiv(P, bm)
    part = y.new_empty((2, T, C), dtype=partial_dtype(y.dtype))
    sums = y.new_empty((2, C), dtype=partial_dtype(y.dtype))
    common = dict(da_ptr=grad_act, y_ptr=y, stat_ptr=stats, g_ptr=gamma, b_ptr=beta, P=P, H=H, W=W, C=C,
                  **strides("da", grad_act), **strides("y", y), stride_stat_k=stats.stride(0),
                  ACC_DTYPE=acc_dtype(y.dtype), INDEX=index_dtype(y, grad_act, grad_y), **BN_TILE)
    grid = tile_grid(P, C, bm, bn)
    run_launch(lambda: _bn_grad_partials_kernel[grid](**common, part_ptr=part, stride_p_k=part.stride(0),
                                                      stride_p_t=part.stride(1), num_warps=4))
    block_c = 64
    run_launch(lambda: _bn_grad_combine_kernel[(triton.cdiv(C, block_c),)](
        part_ptr=part, sum_ptr=sums, dg_ptr=grad_gamma, db_ptr=grad_beta, T=T, C=C, stride_p_k=part.stride(0),
        stride_p_t=part.stride(1), stride_sum_k=sums.stride(0), ACC_DTYPE=common["ACC_DTYPE"], BLOCK_T=16,
        BLOCK_C=block_c, num_warps=4))
    run_launch(lambda: _bn_input_grad_kernel[grid](**common, sum_ptr=sums, dy_ptr=grad_y,
                                                   stride_sum_k=sums.stride(0), **strides("dy", grad_y),
                                                   num_warps=4))
