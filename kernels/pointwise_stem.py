"""The pointwise convs of a block program that read x, in one launch: GoogLeNet's stem generalised to any program.

Columns of the GEMM over the P = N*H*W pixels:
  [0, C0+C1+C2+C3)  main blocks: A = x, B = [W0 | W1 | W2 | W3] read through one pointer per column into the weight
                    of its segment; the epilogue adds each segment's bias (if it has one), applies its ReLU (if it
                    has one) and routes each column to its segment's destination (a slice of the block output or
                    a buffer the branch continues from);
  [0, CP)           pool blocks (when CP > 0): A = maxpool3x3(x) computed while loading, B = WP, bias and ReLU,
                    written to the pool destination (GoogLeNet's and BN-Inception's max-pool branch).
A segment with no channels is absent. A commuted average-pool branch is a segment without bias or ReLU: its raw 1x1
output is pooled afterwards (``pool2d``). A program with more than four such convs takes more than one launch.
Unchecked, as the other launchers.
"""
import triton
import triton.language as tl

from .launch import FP64_CONFIGS, INTERPRET_CONFIG, FitPrune, index_dtype, launch, mma_meta, strides, tile_grid
from .stem_forward import STEM_CONFIGS, STEM_IEEE_CONFIGS, STEM_TF32_CONFIGS, _stem_pool_tile
from .tiles import mma, pixel_coords, program_tile

SEGMENTS = 4


@triton.jit
def _segment_cols(offs_j, start, count):
    # which columns are this segment's, and their local channel (0 elsewhere, so masked lanes stay in bounds)
    inside = (offs_j >= start) & (offs_j < start + count)
    return inside, tl.where(inside, offs_j - start, 0)


@triton.jit
def _segment_bias(bias, b_ptr, stride_b, inside, local, ACC_DTYPE: tl.constexpr):
    if b_ptr is not None:
        bias += tl.load(b_ptr + local * stride_b, mask=inside, other=0.0).to(ACC_DTYPE)
    return bias


@triton.autotune(
    configs=STEM_CONFIGS + STEM_IEEE_CONFIGS + STEM_TF32_CONFIGS + FP64_CONFIGS,
    # no pixel count: the tiling must not depend on the batch (see conv2d_general)
    key=["C_IN", "C0", "C1", "C2", "C3", "CP", "stride_x_c"],
    prune_configs_by={"early_config_prune": FitPrune(
        stage_elems=lambda m, n, k: 9 * m * k + k * n,  # pool blocks: nine shifted A loads + B
        dtype_arg="x_ptr",
        extents=lambda a: {"BLOCK_N": max(a["C0"] + a["C1"] + a["C2"] + a["C3"], a["CP"]), "BLOCK_K": a["C_IN"]},
        precision_configs={"ieee": STEM_IEEE_CONFIGS, "tf32": STEM_TF32_CONFIGS},
        output_channel_strides=("stride_d0_c",),
    )},
)
@triton.jit
def _pointwise_stem_kernel(
    # pointers: x; four segments' weights, biases (None: no bias) and destinations; the max-pool segment's
    x_ptr, w0_ptr, w1_ptr, w2_ptr, w3_ptr, b0_ptr, b1_ptr, b2_ptr, b3_ptr, d0_ptr, d1_ptr, d2_ptr, d3_ptr,
    wp_ptr, bp_ptr, dp_ptr,
    # sizes
    P, H, W, C_IN, C0, C1, C2, C3, CP,
    # strides (the four segments' weights share their input-channel stride)
    stride_x_n, stride_x_c, stride_x_h, stride_x_w,
    stride_w0_o, stride_w1_o, stride_w2_o, stride_w3_o, stride_w_i,
    stride_b0, stride_b1, stride_b2, stride_b3,
    stride_d0_n, stride_d0_c, stride_d0_h, stride_d0_w,
    stride_d1_n, stride_d1_c, stride_d1_h, stride_d1_w,
    stride_d2_n, stride_d2_c, stride_d2_h, stride_d2_w,
    stride_d3_n, stride_d3_c, stride_d3_h, stride_d3_w,
    stride_wp_o, stride_wp_i, stride_bp,
    stride_dp_n, stride_dp_c, stride_dp_h, stride_dp_w,
    # meta-parameters
    RELU0: tl.constexpr, RELU1: tl.constexpr, RELU2: tl.constexpr, RELU3: tl.constexpr,
    USE_DOT: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr, INDEX: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    C_MAIN = C0 + C1 + C2 + C3
    NB_MAIN = tl.cdiv(C_MAIN, BLOCK_N)
    pid_m, pid_n, in_range = program_tile(NB_MAIN + tl.cdiv(CP, BLOCK_N), P, BLOCK_M, INDEX)
    if in_range:
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX)  # [BM] pixels
        mask_m = offs_m < P
        n_idx, oh, ow = pixel_coords(offs_m, H, W)
        if pid_n < NB_MAIN:
            offs_j = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX)  # [BN] columns of [W0 | W1 | W2 | W3]
            in0, j0 = _segment_cols(offs_j, 0, C0)
            in1, j1 = _segment_cols(offs_j, C0, C1)
            in2, j2 = _segment_cols(offs_j, C0 + C1, C2)
            in3, j3 = _segment_cols(offs_j, C0 + C1 + C2, C3)
            offs_k = tl.arange(0, BLOCK_K).to(INDEX)  # [BK]
            a_ptrs = (x_ptr + (n_idx * stride_x_n + oh * stride_x_h + ow * stride_x_w)[:, None]
                      + offs_k[None, :] * stride_x_c)  # [BM, BK]
            w_cols = tl.where(in0, w0_ptr + j0 * stride_w0_o,
                              tl.where(in1, w1_ptr + j1 * stride_w1_o,
                                       tl.where(in2, w2_ptr + j2 * stride_w2_o, w3_ptr + j3 * stride_w3_o)))  # [BN]
            w_ptrs = w_cols[None, :] + offs_k[:, None] * stride_w_i  # [BK, BN]
            in_main = offs_j < C_MAIN
            a_step = tl.full((), BLOCK_K, INDEX) * stride_x_c
            w_step = tl.full((), BLOCK_K, INDEX) * stride_w_i

            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
            for c0 in range(0, C_IN, BLOCK_K):
                mask_k = (c0 + offs_k) < C_IN
                a = tl.load(a_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
                b = tl.load(w_ptrs, mask=mask_k[:, None] & in_main[None, :], other=0.0)
                acc = mma(acc, a, b, USE_DOT, PRECISION)
                a_ptrs += a_step
                w_ptrs += w_step

            bias = tl.zeros((BLOCK_N,), dtype=ACC_DTYPE)
            bias = _segment_bias(bias, b0_ptr, stride_b0, in0, j0, ACC_DTYPE)
            bias = _segment_bias(bias, b1_ptr, stride_b1, in1, j1, ACC_DTYPE)
            bias = _segment_bias(bias, b2_ptr, stride_b2, in2, j2, ACC_DTYPE)
            bias = _segment_bias(bias, b3_ptr, stride_b3, in3, j3, ACC_DTYPE)
            acc += bias[None, :]
            relu = (in0 & RELU0) | (in1 & RELU1) | (in2 & RELU2) | (in3 & RELU3)  # [BN]
            acc = tl.where(relu[None, :] & (acc < 0), 0.0, acc)  # keeps NaN, as torch.relu does
            y = acc.to(d0_ptr.dtype.element_ty)

            # every column goes to its segment's destination: one tile of pointers, one store
            row0 = n_idx * stride_d0_n + oh * stride_d0_h + ow * stride_d0_w  # [BM]
            row1 = n_idx * stride_d1_n + oh * stride_d1_h + ow * stride_d1_w
            row2 = n_idx * stride_d2_n + oh * stride_d2_h + ow * stride_d2_w
            row3 = n_idx * stride_d3_n + oh * stride_d3_h + ow * stride_d3_w
            cols = tl.where(in0, d0_ptr + j0 * stride_d0_c,
                            tl.where(in1, d1_ptr + j1 * stride_d1_c,
                                     tl.where(in2, d2_ptr + j2 * stride_d2_c, d3_ptr + j3 * stride_d3_c)))
            rows = tl.where(in0[None, :], row0[:, None],
                            tl.where(in1[None, :], row1[:, None],
                                     tl.where(in2[None, :], row2[:, None], row3[:, None])))
            tl.store(cols[None, :] + rows, y, mask=mask_m[:, None] & in_main[None, :])
        else:
            _stem_pool_tile(
                x_ptr, wp_ptr, bp_ptr, dp_ptr, None,
                pid_n - NB_MAIN, mask_m, n_idx, oh, ow,
                H, W, C_IN, CP,
                stride_x_n, stride_x_c, stride_x_h, stride_x_w,
                stride_wp_o, stride_wp_i,
                stride_bp,
                stride_dp_n, stride_dp_c, stride_dp_h, stride_dp_w,
                0, 0, 0, 0,
                USE_DOT, PRECISION, ACC_DTYPE, BLOCK_M, BLOCK_N, BLOCK_K,
            )


def launch_pointwise_stem(x, segments, pool=None, *, allow_tf32=False, config=None) -> None:
    """One launch: for each of up to four ``segments`` ``(weight, bias, dest, relu)``, dest <- act(conv1x1(x, weight)
    + bias) (``bias`` None: none; ``relu`` a bool); and with ``pool = (weight, bias, dest)``, dest <-
    relu(conv1x1(maxpool3x3(x), weight) + bias). Weights (c, C_IN, 1, 1); destinations (N, c, H, W) with any strides,
    all of x's dtype. Unchecked."""
    if len(segments) > SEGMENTS or not segments and pool is None:
        raise ValueError(f"one stem launch runs up to {SEGMENTS} segments, got {len(segments)}")
    N, C_IN, H, W = x.shape
    P = N * H * W
    weights = [s[0] for s in segments]
    if len({w.stride(1) for w in weights}) > 1:  # the kernel reads them with one K stride
        weights = [w.contiguous() for w in weights]
    # absent segments repeat a present tensor with no channels
    filler = segments[0] if segments else (pool[0], None, pool[2], False)
    padded = [(w, b, d, relu) for w, (_, b, d, relu) in zip(weights, segments)]
    padded += [(filler[0], None, filler[2], False)] * (SEGMENTS - len(padded))
    counts = [w.shape[0] for w, *_ in segments] + [0] * (SEGMENTS - len(segments))
    # without a pool segment its column range is empty, but the compiled kernel still has its code: any tensor
    # stands in for its pointers
    wp, bp, dp = pool if pool is not None else (padded[0][0], padded[0][0], padded[0][2])
    cp = pool[0].shape[0] if pool is not None else 0
    if P == 0 or sum(counts) + cp == 0:
        return
    kwargs = dict(x_ptr=x, wp_ptr=wp, bp_ptr=bp, dp_ptr=dp, P=P, H=H, W=W, C_IN=C_IN, CP=cp,
                  **strides("x", x), stride_w_i=padded[0][0].stride(1),
                  stride_wp_o=wp.stride(0), stride_wp_i=wp.stride(1), stride_bp=0 if bp is None else bp.stride(0),
                  **strides("dp", dp),
                  INDEX=index_dtype(x, dp, *(d for _, _, d, _ in padded)), **mma_meta(x.dtype, allow_tf32))
    for k, ((w, b, d, relu), c) in enumerate(zip(padded, counts)):
        kwargs.update({f"w{k}_ptr": w, f"b{k}_ptr": b, f"d{k}_ptr": d, f"C{k}": c, f"RELU{k}": relu,
                       f"stride_w{k}_o": w.stride(0), f"stride_b{k}": 0 if b is None else b.stride(0),
                       **strides(f"d{k}", d)})
    main = sum(counts)

    def grid(META):
        bn = META["BLOCK_N"]
        return tile_grid(P, (triton.cdiv(main, bn) + triton.cdiv(cp, bn)) * bn, META["BLOCK_M"], bn)

    launch(_pointwise_stem_kernel, grid, kwargs, config, INTERPRET_CONFIG)
