"""Launcher helpers shared by the kernel modules: argument checks, tile configs, grids and the launch itself."""
import torch
import triton
import triton.language as tl

from .common import SUPPORTED_DTYPES, dot_precision, interpreting, require_launchable

# Grid axis 0 holds up to 2**31-1 programs; anything beyond spills onto axis 1.
MAX_GRID0 = 2**31 - 1
_BLOCK_KEYS = {"BLOCK_M", "BLOCK_N", "BLOCK_K"}
_CONFIG_KEYS = _BLOCK_KEYS | {"num_warps", "num_stages"}


# ---------------------------------------------------------------------------------------------
# argument checks

def check_shape(name, t, expected):
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(t.shape)}")


def check_same_dtype_and_device(tensors: dict):
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


def check_tensor(name, t, shape, dtype=None, device=None, dtypes=SUPPORTED_DTYPES):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name}: expected a dtype in {[str(d) for d in dtypes]}, got {t.dtype}")
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {t.dtype}")
    if device is not None and t.device != device:
        raise ValueError(f"{name}: expected device {device}, got {t.device}")


def check_4d(name, t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 4:
        raise ValueError(f"{name}: expected a 4-d (N, C, H, W) tensor, got shape {tuple(t.shape)}")
    if t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name}: expected a dtype in {[str(d) for d in SUPPORTED_DTYPES]}, got {t.dtype}")


def check_config(config):
    missing = _BLOCK_KEYS - set(config)
    if missing:
        raise ValueError(f"config must give BLOCK_M, BLOCK_N and BLOCK_K, missing {sorted(missing)}")
    unknown = set(config) - _CONFIG_KEYS
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}")


# ---------------------------------------------------------------------------------------------
# precision, configs, grids, launch

# Under the interpreter every program runs in Python: small fixed tiles keep tests fast.
INTERPRET_CONFIG = {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 16}
# weight gradients reduce over pixels along BLOCK_K
INTERPRET_WGRAD_CONFIG = {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32}
# what a forced backward config leaves out
BACKWARD_CONFIG_DEFAULTS = {"num_warps": 4, "num_stages": 2}
# fp64 without tl.dot multiplies a [BM, BK, BN] broadcast in registers: keep that product small.
FP64_CONFIGS = [
    triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 8}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 4}, num_warps=4, num_stages=2),
]


def acc_dtype(dtype):
    """Accumulator dtype: fp64 for fp64 inputs, else fp32."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def partial_dtype(dtype):
    """torch dtype of partial-sum buffers: as ``acc_dtype``."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def mma_meta(dtype, allow_tf32):
    """Meta-parameters of ``tiles.mma``: tl.dot for fp16/bf16/fp32, a broadcast sum for fp64."""
    return dict(USE_DOT=dtype != torch.float64, PRECISION=dot_precision(dtype, allow_tf32), ACC_DTYPE=acc_dtype(dtype))


def autotuned_by_mma(kernel, dot_configs, key):
    """``use_dot -> kernel`` autotuned over ``dot_configs`` (tl.dot) or FP64_CONFIGS, each built on first use
    from the one @triton.jit function; dtypes join the key automatically."""
    built = {}

    def get(use_dot):
        if use_dot not in built:
            built[use_dot] = triton.autotune(configs=dot_configs if use_dot else FP64_CONFIGS, key=key)(kernel)
        return built[use_dot]
    return get


def gemm_configs(shapes, pre_hook=None):
    """triton.Configs from (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) tuples."""
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s, pre_hook=pre_hook)
            for (m, n, k, w, s) in shapes]


def zero_partials(nargs):
    nargs["part_ptr"].zero_()


def autotuned_partials(kernel, shapes, key):
    """(deterministic, atomic) autotuned variants of a weight-gradient kernel. In the atomic one every config
    zeroes the accumulator before every run, benchmark runs and the final run alike."""
    return (triton.autotune(configs=gemm_configs(shapes), key=key)(kernel),
            triton.autotune(configs=gemm_configs(shapes, pre_hook=zero_partials), key=key)(kernel))


def tile_grid(M, num_cols, block_m, block_n):
    """1-D tile count of an M x num_cols problem, spread over grid axes 0 and 1."""
    total = triton.cdiv(M, block_m) * triton.cdiv(num_cols, block_n)
    g0 = min(total, MAX_GRID0)
    return (g0, triton.cdiv(total, g0))


def pixel_channel_grid(P, channels):
    """Grid function of a (pixel blocks, channel blocks) launch."""
    def grid(meta):
        return (triton.cdiv(P, meta["BLOCK_M"]), triton.cdiv(channels, meta["BLOCK_N"]))
    return grid


def launch(kernel, tuned, grid, args, consts, config, interp_config, config_defaults=None):
    """Launch ``kernel`` with ``config`` (a dict), the interpreter's fixed tile, or ``tuned`` (autotuned) on GPU.

    ``grid`` maps the meta-parameters (BLOCK_M, BLOCK_N, ...) to the launch grid; ``config_defaults`` fills
    num_warps / num_stages a forced config leaves out."""
    if config is None and interpreting():
        config = interp_config
    if config is None:
        tuned[grid](*args, **consts)
        return
    check_config(config)
    kernel[grid](*args, **consts, **{**(config_defaults or {}), **config})
