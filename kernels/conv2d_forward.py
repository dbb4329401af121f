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

from .common import SUPPORTED_DTYPES, dot_precision, interpreting, require_launchable

# Grid axis 0 holds up to 2**31-1 programs; anything beyond spills onto axis 1.
_MAX_GRID0 = 2**31 - 1


@triton.jit
def _mma(acc, a, b, USE_DOT: tl.constexpr, PRECISION: tl.constexpr):
    # acc[BM, BN] += a[BM, BK] @ b[BK, BN]
    if USE_DOT:
        acc = tl.dot(a, b, acc=acc, input_precision=PRECISION)
    else:
        acc += tl.sum(a[:, :, None] * b[None, :, :], axis=1)
    return acc


@triton.jit
def _program_tile(NUM_N, M, BLOCK_M: tl.constexpr):
    # Flattened program id with the column blocks fastest, so programs that share a pixel tile run
    # together and its input is read from DRAM once. Returns (pid_m, pid_n, in_range).
    pid = tl.program_id(1).to(tl.int64) * tl.num_programs(0) + tl.program_id(0)
    pid_m = pid // NUM_N
    pid_n = pid % NUM_N
    return pid_m, pid_n, pid_m * BLOCK_M < M


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
    pid_m, pid_n, in_range = _program_tile(NUM_N, M, BLOCK_M)
    if in_range:
        # pixel rows of this tile: m -> (n, oh, ow)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)  # [BM]
        mask_m = offs_m < M
        # no H*W product: it could overflow int32 for a huge single image
        row = offs_m // W
        ow = offs_m % W
        n_idx = row // H
        oh = row % H
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
                    acc = _mma(acc, a, b, USE_DOT, PRECISION)
                    a_ptrs += a_step
                    b_ptrs += b_step

        bias = tl.load(b_ptr + offs_n * sb, mask=mask_n, other=0.0).to(ACC_DTYPE)
        acc += bias[None, :]
        # relu that keeps NaN, as torch.relu does
        acc = tl.where(acc < 0, 0.0, acc)
        o_ptrs = out_ptr + (n_idx * son + oh * soh + ow * sow)[:, None] + (offs_n * soc)[None, :]
        tl.store(o_ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


# ---------------------------------------------------------------------------------------------
# launcher

# Under the interpreter every program runs in Python: small fixed tiles keep tests fast.
_INTERPRET_CONFIG = {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 16, "num_warps": 4, "num_stages": 1}
# fp64 multiplies a [BM, BK, BN] broadcast in registers: keep that product small.
_FP64_CONFIGS = [
    triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 8}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 4}, num_warps=4, num_stages=2),
]
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
_autotuned = {}


def _autotuned_kernel(use_dot: bool):
    # Built lazily from the same @triton.jit function; dtypes join the key automatically.
    if use_dot not in _autotuned:
        configs = _DOT_CONFIGS if use_dot else _FP64_CONFIGS
        _autotuned[use_dot] = triton.autotune(configs=configs, key=_AUTOTUNE_KEY)(_conv2d_bias_relu_kernel)
    return _autotuned[use_dot]


def _grid(M, num_cols, block_m, block_n):
    total = triton.cdiv(M, block_m) * triton.cdiv(num_cols, block_n)
    g0 = min(total, _MAX_GRID0)
    return (g0, triton.cdiv(total, g0))


def _check_config(config):
    missing = {"BLOCK_M", "BLOCK_N", "BLOCK_K"} - set(config)
    if missing:
        raise ValueError(f"config needs BLOCK_M, BLOCK_N and BLOCK_K; missing {sorted(missing)}")
    extra = set(config) - {"BLOCK_M", "BLOCK_N", "BLOCK_K", "num_warps", "num_stages"}
    if extra:
        raise ValueError(f"unknown config keys {sorted(extra)}")


def _check_common(tensors: dict):
    """Same dtype (a supported one) and same device for every tensor; launchable there."""
    dtypes = {name: t.dtype for name, t in tensors.items()}
    first = next(iter(dtypes.values()))
    if any(d != first for d in dtypes.values()):
        raise ValueError(f"all tensors must have the same dtype, got {dtypes}")
    if first not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype must be one of {SUPPORTED_DTYPES}, got {first}")
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) != 1:
        raise ValueError(f"all tensors must be on the same device, got {devices}")
    require_launchable(*tensors.values())


def _check_shape(name, t, expected):
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(t.shape)}")


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
    _check_shape("bias", bias, (Cout,))
    _check_shape("out", out, (N, Cout, H, W))
    _check_common({"x": x, "weight": weight, "bias": bias, "out": out})
    if config is not None:
        _check_config(config)

    M = N * H * W
    if out.numel() == 0:
        return out

    use_dot = x.dtype != torch.float64
    args = (
        x, weight, bias, out,
        M, H, W, Cin, Cout,
        *x.stride(), *weight.stride(), bias.stride(0), *out.stride(),
    )
    meta = dict(
        KS=kh,
        USE_DOT=use_dot,
        PRECISION=dot_precision(x.dtype, allow_tf32),
        ACC_DTYPE=tl.float32 if use_dot else tl.float64,
    )
    if config is None and interpreting():
        config = _INTERPRET_CONFIG
    if config is None:
        kernel = _autotuned_kernel(use_dot)
        kernel[lambda META: _grid(M, Cout, META["BLOCK_M"], META["BLOCK_N"])](*args, **meta)
    else:
        grid = _grid(M, Cout, config["BLOCK_M"], config["BLOCK_N"])
        _conv2d_bias_relu_kernel[grid](*args, **meta, **config)
    return out
