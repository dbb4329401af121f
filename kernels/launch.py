"""Launch helpers shared by the kernel modules: tile configs and their pruning, autotune keys, keyword arguments,
grids and the launch itself.

Nothing here validates arguments: the checked entry points (``checked.py``) do that once, and the unchecked
launchers the ops call run only this, on the hot path.
"""
import functools

import torch
import triton
import triton.language as tl

from .common import dot_precision, interpreting

# Grid axis 0 holds up to 2**31-1 programs; anything beyond spills onto axis 1.
MAX_GRID0 = 2**31 - 1

# ---------------------------------------------------------------------------------------------
# fixed configs and precision

# Under the interpreter every program runs in Python: small fixed tiles keep tests fast.
INTERPRET_CONFIG = {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 16}
# weight gradients reduce over pixels along BLOCK_K
INTERPRET_WGRAD_CONFIG = {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32}
# what a forced backward config leaves out
BACKWARD_CONFIG_DEFAULTS = {"num_warps": 4, "num_stages": 2}
# fp64 without tl.dot multiplies a [BM, BK, BN] broadcast in registers: keep that product small. The forward
# kernels tune over their tl.dot configs plus these; FitPrune keeps one set or the other by USE_DOT.
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


# ---------------------------------------------------------------------------------------------
# keyword arguments

def strides(name, t, dims="nchw"):
    """``{"stride_<name>_<dim>": stride}`` of ``t``, its dimensions named by ``dims`` ("nchw" for activations,
    "oihw" for weights, "oi" for the first two of a 1x1 weight); a 1-D tensor (a bias) gives ``{"stride_<name>":
    stride}``. ``t`` None (an absent optional tensor) gives zeros."""
    if t is not None and t.dim() == 1:
        return {f"stride_{name}": t.stride(0)}
    values = t.stride() if t is not None else (0,) * len(dims)
    return {f"stride_{name}_{d}": s for d, s in zip(dims, values)}


# ---------------------------------------------------------------------------------------------
# autotune keys and config pruning

def pixel_bucket(P):
    """The pixel count P rounded up to a power of two: the autotune key (kernel argument ``P_BUCKET``, used only as
    a key), so a new batch size within a bucket reuses the config tuned for it instead of tuning again."""
    return 1 << max(P - 1, 0).bit_length()


# The opt-in shared memory per block of an sm_90 GPU (H100/H200): the limit assumed when no device can be asked.
SM90_SHARED_MEMORY = 227 * 1024


@functools.cache
def device_shared_memory(index: int) -> int:
    """Shared memory a block may use on CUDA device ``index``, as Triton's driver reports it."""
    try:
        return int(triton.runtime.driver.active.utils.get_device_properties(index)["max_shared_mem"])
    except Exception:  # no driver, or a Triton that names it differently: assume sm_90
        return SM90_SHARED_MEMORY


def _shared_memory_limit(args):
    for v in args.values():
        if isinstance(v, torch.Tensor) and v.is_cuda:
            return device_shared_memory(v.device.index if v.device.index is not None else torch.cuda.current_device())
    return SM90_SHARED_MEMORY


def is_fp64_config(config):
    return any(config is c for c in FP64_CONFIGS)


class FitPrune:
    """``early_config_prune`` of a kernel's autotuner (``prune_configs_by={"early_config_prune": FitPrune(...)}``).

    1. Forward kernels (which take USE_DOT): the tl.dot configs, or FP64_CONFIGS for fp64.
    2. Configs whose shared memory cannot fit the device are dropped. Estimate: num_stages - 1 buffers (at least
       one) of one pipeline stage's loaded tiles, ``stage_elems(BLOCK_M, BLOCK_N, BLOCK_K)`` elements of
       ``dtype_arg``'s element size. That is what Triton's pipeliner allocates (wgmma takes one buffer more, and
       layout conversions take scratch): a lower bound (at or below what Triton 3.9 allocated in each of 44 offline
       sm_90 compiles of these kernels' configs, fp16 to fp64), so only configs that cannot fit are dropped; one
       that still runs out fails to compile, and the autotuner skips it. When none fits, the config with the
       smallest estimate is kept.
    3. ``extents(args)`` maps BLOCK_M/N/K to the problem's extent along them: a config whose tile is larger than
       that extent rounded up to a power of two (and than the smallest candidate tile) is mostly padding and is
       dropped, unless nothing would be left.

    Every argument read here is in the kernel's autotune key (bucketed pixel count, channels, dtypes), so the
    result is the same for every call that shares a key (on one kind of device: the limit is not in the key).
    """

    def __init__(self, stage_elems, dtype_arg, extents=None):
        self.stage_elems = stage_elems
        self.dtype_arg = dtype_arg
        self.extents = extents

    def shared_memory(self, config, args):
        """Estimated shared-memory bytes of ``config`` for a launch with arguments ``args``."""
        m, n, k = (config.kwargs[b] for b in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
        buffers = max(config.num_stages - 1, 1)
        return buffers * self.stage_elems(m, n, k) * args[self.dtype_arg].element_size()

    def __call__(self, configs, named_args, **kwargs):
        args = {**named_args, **kwargs}  # keyword launches come as kwargs
        if "USE_DOT" in args:
            configs = [c for c in configs if is_fp64_config(c) != bool(args["USE_DOT"])]
        limit = _shared_memory_limit(args)
        fitting = [c for c in configs if self.shared_memory(c, args) <= limit]
        if not fitting:
            fitting = [min(configs, key=lambda c: self.shared_memory(c, args))]
        if self.extents is None:
            return fitting
        smallest = {b: min(c.kwargs[b] for c in fitting) for b in self.extents(args)}
        needed = {b: max(triton.next_power_of_2(max(int(e), 1)), smallest[b]) for b, e in self.extents(args).items()}
        snug = [c for c in fitting if all(c.kwargs[b] <= need for b, need in needed.items())]
        return snug or fitting


def zero_if_atomic(nargs):
    """Config pre_hook of the weight-gradient kernels: with ATOMIC every run accumulates into one row, so every run,
    benchmark and final alike, starts from zeros; the deterministic variant writes its own chunk rows."""
    if nargs["ATOMIC"]:
        nargs["part_ptr"].zero_()


# ---------------------------------------------------------------------------------------------
# grids and the launch

def tile_grid(P, num_cols, block_m, block_n):
    """1-D tile count of a P x num_cols problem, spread over grid axes 0 and 1."""
    total = triton.cdiv(P, block_m) * triton.cdiv(num_cols, block_n)
    g0 = min(total, MAX_GRID0)
    return (g0, triton.cdiv(total, g0))


def pixel_channel_grid(P, channels):
    """Grid function of a (pixel blocks, channel blocks) launch."""
    def grid(meta):
        return (triton.cdiv(P, meta["BLOCK_M"]), triton.cdiv(channels, meta["BLOCK_N"]))
    return grid


def launch(tuned, grid, kwargs, config, interp_config, config_defaults=None):
    """Launch the autotuned kernel ``tuned`` with keyword arguments ``kwargs``: autotuned on GPU, or its
    @triton.jit function (``tuned.fn``) with ``config`` (a dict, checked by the caller) or, under the interpreter,
    the fixed ``interp_config``.

    ``grid`` maps the meta-parameters (BLOCK_M, BLOCK_N, ...) to the launch grid; ``config_defaults`` fills
    num_warps / num_stages a forced config leaves out."""
    if config is None and interpreting():
        config = interp_config
    if config is None:
        tuned[grid](**kwargs)
    else:
        tuned.fn[grid](**kwargs, **{**(config_defaults or {}), **config})
