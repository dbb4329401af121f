"""@triton.jit building blocks shared by the forward and backward kernels.

Tensors are addressed through explicit (n, c, h, w) strides, named ``stride_<tensor>_<dim>`` as in the kernels. A
pixel index p is (img, oh, ow) of an N x H x W grid; "pc" tiles have pixels as rows and channels as columns, "cp"
tiles the transpose. Offsets are in each kernel's INDEX dtype: int32, or int64 when a tensor spans 2**31 elements or
more (``launch.index_dtype``); helpers take it from the index tensors they are given.
"""
import triton
import triton.language as tl


@triton.jit
def mma(acc, a, b, USE_DOT: tl.constexpr, PRECISION: tl.constexpr):
    # acc[BM, BN] += a[BM, BK] @ b[BK, BN]
    if USE_DOT:
        acc = tl.dot(a, b, acc=acc, input_precision=PRECISION, out_dtype=acc.dtype)
    else:
        acc += tl.sum(a[:, :, None] * b[None, :, :], axis=1)
    return acc


@triton.jit
def conv_taps(
    acc,
    # pointers
    x_ptr, w_ptr,
    # tile: output pixel coordinates and mask [BM], output channels and mask [BN], the channel offsets of a K step [BK]
    n_idx, oh, ow, mask_m, offs_n, mask_n, offs_k,
    # sizes (of x)
    H, W, C_IN,
    # strides
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_w_o, stride_w_i, stride_w_h, stride_w_w,
    # meta-parameters: kernel, stride and padding
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # acc += the KH x KW conv of x (stride SH, SW; zero padding PH, PW) at these output pixels, as an implicit GEMM:
    # loops over kh, kw, then channel blocks (the pipeliner sees only the innermost)
    # pointer steps along channels in the index dtype (strides may arrive as int32 or as constexpr 1)
    a_step = tl.full((), BLOCK_K, offs_k.dtype) * stride_x_c
    b_step = tl.full((), BLOCK_K, offs_k.dtype) * stride_w_i
    for kh in range(KH):
        ih = oh * SH + (kh - PH)
        row_h = mask_m & (ih >= 0) & (ih < H)
        for kw in range(KW):
            iw = ow * SW + (kw - PW)
            row_ok = row_h & (iw >= 0) & (iw < W)  # [BM]; taps outside the image are the zero padding
            a_ptrs = (x_ptr + (n_idx * stride_x_n + ih * stride_x_h + iw * stride_x_w)[:, None]
                      + offs_k[None, :] * stride_x_c)  # [BM, BK]
            b_ptrs = (w_ptr + (offs_n * stride_w_o + kh * stride_w_h + kw * stride_w_w)[None, :]
                      + offs_k[:, None] * stride_w_i)  # [BK, BN]
            for c0 in range(0, C_IN, BLOCK_K):
                mask_k = (c0 + offs_k) < C_IN
                a = tl.load(a_ptrs, mask=row_ok[:, None] & mask_k[None, :], other=0.0)
                b = tl.load(b_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
                acc = mma(acc, a, b, USE_DOT, PRECISION)
                a_ptrs += a_step
                b_ptrs += b_step
    return acc


@triton.jit
def program_tile(NUM_N, P, BLOCK_M: tl.constexpr, INDEX: tl.constexpr):
    # Flattened program id with the column blocks fastest, so programs that share a pixel tile run
    # together and its input is read from DRAM once. Returns (pid_m, pid_n, in_range), in INDEX.
    pid = tl.program_id(1).to(INDEX) * tl.num_programs(0) + tl.program_id(0)
    pid_m = pid // NUM_N
    pid_n = pid % NUM_N
    return pid_m, pid_n, pid_m * BLOCK_M < P


@triton.jit
def pixel_coords(offs, H, W):
    # pixel index -> (img, oh, ow); no H*W product: it could overflow int32 for a huge single image
    row = offs // W
    ow = offs % W
    img = row // H
    oh = row % H
    return img, oh, ow


@triton.jit
def pc_ptrs(
    # pointers
    ptr,
    # tile: pixel coordinates [BM] and channels [BN]
    img, oh, ow, chans,
    # strides
    stride_n, stride_c, stride_h, stride_w,
):
    # [pixels, channels] tile of pointers
    return ptr + (img * stride_n + oh * stride_h + ow * stride_w)[:, None] + (chans * stride_c)[None, :]


@triton.jit
def cp_ptrs(
    # pointers
    ptr,
    # tile: channels [BM] and pixel coordinates [BN]
    chans, img, oh, ow,
    # strides
    stride_n, stride_c, stride_h, stride_w,
):
    # [channels, pixels] tile of pointers
    return ptr + chans[:, None] * stride_c + (img * stride_n + oh * stride_h + ow * stride_w)[None, :]


@triton.jit
def relu_grad(g, out):
    # ReLU backward from the saved output, or from its mask (store_relu_mask: 0 or 1): zero where out <= 0 (a NaN
    # output passes g), as PyTorch does
    return tl.where(out <= 0, tl.zeros_like(g), g)


@triton.jit
def store_relu_mask(ptrs, y, mask):
    # The ReLU's backward mask of the stored output y (in its own dtype), one byte per element: 1 where the gradient
    # passes (y > 0, or y NaN), 0 where relu_grad zeroes it. Saved for backward instead of the output, which the
    # caller may then modify in place.
    tl.store(ptrs, ((y > 0) | (y != y)).to(tl.uint8), mask=mask)


@triton.jit
def relu_grad_cp(
    # pointers
    g_ptr, out_ptr,
    # tile: channels, pixel coordinates, mask
    chans, img, oh, ow, mask,
    # strides
    stride_g_n, stride_g_c, stride_g_h, stride_g_w,
    stride_out_n, stride_out_c, stride_out_h, stride_out_w,
):
    # [channels, pixels] tile of relu_grad(g, out); masked lanes are 0
    g = tl.load(cp_ptrs(g_ptr, chans, img, oh, ow, stride_g_n, stride_g_c, stride_g_h, stride_g_w),
                mask=mask, other=0.0)
    o = tl.load(cp_ptrs(out_ptr, chans, img, oh, ow, stride_out_n, stride_out_c, stride_out_h, stride_out_w),
                mask=mask, other=0.0)
    return relu_grad(g, o)


@triton.jit
def bias_relu(acc, bias):
    # acc + bias per column, then a relu that keeps NaN, as torch.relu does
    acc += bias[None, :]
    return tl.where(acc < 0, 0.0, acc)


@triton.jit
def maxpool3x3_pc(
    # pointers
    x_ptr,
    # tile: pixel coordinates and channels, with their masks
    img, oh, ow, pix_ok, chans, chan_ok,
    # sizes
    H, W,
    # strides
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    # meta-parameters
    ROWS: tl.constexpr, COLS: tl.constexpr,
):
    # [pixels, channels] tile of max_pool2d(x, 3, stride=1, padding=1), built from 9 shifted loads: one tile of
    # pointers at the window centres, each tap a scalar offset from it (nine pointer tiles would cost registers).
    pooled = tl.full((ROWS, COLS), float("-inf"), dtype=x_ptr.dtype.element_ty)
    centre = pc_ptrs(x_ptr, img, oh, ow, chans, stride_x_n, stride_x_c, stride_x_h, stride_x_w)
    for dh in tl.static_range(3):
        ih = oh + (dh - 1)
        ok_h = pix_ok & (ih >= 0) & (ih < H)
        for dw in tl.static_range(3):
            iw = ow + (dw - 1)
            ok = ok_h & (iw >= 0) & (iw < W)
            v = tl.load(centre + ((dh - 1) * stride_x_h + (dw - 1) * stride_x_w),
                        mask=ok[:, None] & chan_ok[None, :], other=float("-inf"))
            # padding (-inf) never wins; a NaN wins and then stays, as in torch.max_pool2d
            pooled = tl.where((v > pooled) | (v != v), v, pooled)
    # rows/channels outside the problem are -inf: zero them so they add nothing (and -inf * 0 cannot make NaN)
    return tl.where(pix_ok[:, None] & chan_ok[None, :], pooled, tl.zeros_like(pooled))


@triton.jit
def dgrad_channels(
    acc,
    # pointers: g and out at their pixel rows' base, w at this tap
    g_ptr, out_ptr, w_ptr,
    # tile: per-pixel row offsets of g and out [BM], pixel mask, input channels [BN] and their mask
    g_row, out_row, pix_ok, offs_n, n_ok,
    # sizes
    C,
    # strides
    stride_g_c, stride_out_c, stride_w_o, stride_w_i,
    # meta-parameters
    MASKED: tl.constexpr, PRECISION: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # acc[BM pixels, BN in-channels] += (g * (out > 0 if MASKED))[BM, C] @ w[C, BN], reduced over C in BLOCK_K steps
    for k0 in range(0, C, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K).to(offs_n.dtype)  # [BK] gradient channel
        k_ok = offs_k < C
        a_mask = pix_ok[:, None] & k_ok[None, :]
        a = tl.load(g_ptr + g_row[:, None] + offs_k[None, :] * stride_g_c, mask=a_mask, other=0.0)
        if MASKED:
            ov = tl.load(out_ptr + out_row[:, None] + offs_k[None, :] * stride_out_c, mask=a_mask, other=0.0)
            a = relu_grad(a, ov)
        b = tl.load(w_ptr + offs_k[:, None] * stride_w_o + offs_n[None, :] * stride_w_i,
                    mask=k_ok[:, None] & n_ok[None, :], other=0.0)  # [BK, BN] = W[co, ci]
        acc = tl.dot(a, b, acc, input_precision=PRECISION, out_dtype=acc.dtype)
    return acc


@triton.jit
def chunk_row(part_ptr, split, R, ATOMIC: tl.constexpr):
    # The partial-sum row a weight-gradient program writes: its own chunk row (written, never accumulated, so
    # safe to autotune), or the one shared row that atomics accumulate into.
    row = part_ptr
    if not ATOMIC:
        row = part_ptr + split * R
    return row


@triton.jit
def store_partial(
    # pointers
    row_ptr,
    # tile: weight rows, bias rows and their mask [BM], input channels and their mask [BN], the sums, bias owner
    w_rows, b_rows, rows_ok, offs_n, n_ok, acc, bacc, owns_bias,
    # sizes
    C_IN, R_W,
    # meta-parameters
    HAS_W: tl.constexpr, HAS_B: tl.constexpr, ATOMIC: tl.constexpr,
):
    # Weight partials at [w_rows, C_IN] of the chunk row; bias partials at R_W + b_rows, written by the one
    # program per row block that owns_bias.
    if HAS_W:
        w_ptrs = row_ptr + w_rows[:, None] * C_IN + offs_n[None, :]
        w_mask = rows_ok[:, None] & n_ok[None, :]
        if ATOMIC:
            tl.atomic_add(w_ptrs, acc, mask=w_mask, sem="relaxed")
        else:
            tl.store(w_ptrs, acc, mask=w_mask)
    if HAS_B:
        if owns_bias:
            if ATOMIC:
                tl.atomic_add(row_ptr + R_W + b_rows, bacc, mask=rows_ok, sem="relaxed")
            else:
                tl.store(row_ptr + R_W + b_rows, bacc, mask=rows_ok)


@triton.jit
def bn_activation(y, stat_ptr, g_ptr, b_ptr, offs_n, mask_n, stride_stat_k, ACC_DTYPE: tl.constexpr):
    # BatchNorm of a [pixels, channels] tile y (in ACC_DTYPE) from its channels' saved mean and rstd ([2, C]):
    # (xhat, gamma * xhat + beta), gamma / beta None for 1 / 0. The forward's activation and the backward's ReLU
    # decision both come from here, so they agree bit for bit.
    mean = tl.load(stat_ptr + offs_n, mask=mask_n, other=0.0).to(ACC_DTYPE)
    rstd = tl.load(stat_ptr + stride_stat_k + offs_n, mask=mask_n, other=0.0).to(ACC_DTYPE)
    xhat = (y - mean[None, :]) * rstd[None, :]
    z = xhat
    if g_ptr is not None:
        z = z * tl.load(g_ptr + offs_n, mask=mask_n, other=0.0).to(ACC_DTYPE)[None, :]
    if b_ptr is not None:
        z = z + tl.load(b_ptr + offs_n, mask=mask_n, other=0.0).to(ACC_DTYPE)[None, :]
    return xhat, z
