"""Launch helpers shared by the kernel modules: tile configs and their pruning, autotune keys, keyword arguments,
grids and the launch itself.

Nothing here validates arguments: the checked entry points (``checked.py``) do that once, and the unchecked
launchers the ops call run only this, on the hot path.
"""
import functools
import threading

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


# Offsets past this many elements need int64 arithmetic.
INT32_ELEMENTS = 2**31


def index_dtype(*tensors):
    """The kernels' INDEX meta-parameter: tl.int32 when every element of every tensor lies fewer than 2**31 elements
    from its data pointer, else tl.int64. int64 offset tiles double the registers addresses take (offline sm_90
    compiles of the stem went from spilling kilobytes to far less with int32), so the int64 variant is compiled only
    for tensors that need it."""
    for t in tensors:
        # the storage bounds the span, and one query is cheaper than the sum: this runs on every launch
        if t is None or t.untyped_storage().nbytes() < INT32_ELEMENTS * t.element_size():
            continue
        if t.numel() and sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride())) >= INT32_ELEMENTS - 1:
            return tl.int64
    return tl.int32


def mma_meta(dtype, allow_tf32):
    """Meta-parameters of ``tiles.mma``: tl.dot for fp16/bf16/fp32, a broadcast sum for fp64."""
    return dict(USE_DOT=dtype != torch.float64, PRECISION=dot_precision(dtype, allow_tf32), ACC_DTYPE=acc_dtype(dtype))


# ---------------------------------------------------------------------------------------------
# keyword arguments

@functools.cache
def _stride_names(name, dims):
    return tuple(f"stride_{name}_{d}" for d in dims)


def strides(name, t, dims="nchw"):
    """``{"stride_<name>_<dim>": stride}`` of ``t``, its dimensions named by ``dims`` ("nchw" for activations,
    "oihw" for weights, "oi" for the first two of a 1x1 weight); a 1-D tensor (a bias) gives ``{"stride_<name>":
    stride}``. ``t`` None (an absent optional tensor) gives zeros. (Names cached: this runs on every launch.)"""
    if t is None:
        return dict.fromkeys(_stride_names(name, dims), 0)
    if t.dim() == 1:
        return {f"stride_{name}": t.stride(0)}
    return dict(zip(_stride_names(name, dims), t.stride()))


# ---------------------------------------------------------------------------------------------
# autotune keys and config pruning

def pixel_bucket(P):
    """The pixel count P rounded up to a power of two: the autotune key (kernel argument ``P_BUCKET``, used only as
    a key), so a new batch size within a bucket reuses the config tuned for it instead of tuning again."""
    return 1 << max(P - 1, 0).bit_length()


# The opt-in shared memory per block of an sm_90 GPU (H100/H200): the limit assumed when no device can be asked.
SM90_SHARED_MEMORY = 227 * 1024
# The SMs of an H100 SXM / H200: the count the weight gradients' pixel splits assume when no device can be asked.
SM90_SM_COUNT = 132


@functools.cache
def device_shared_memory(index: int) -> int:
    """Shared memory a block may use on CUDA device ``index``, as Triton's driver reports it."""
    try:
        return int(triton.runtime.driver.active.utils.get_device_properties(index)["max_shared_mem"])
    except Exception:  # no driver, or a Triton that names it differently: assume sm_90
        return SM90_SHARED_MEMORY


def _cuda_index(args):
    for v in args.values():
        if isinstance(v, torch.Tensor) and v.is_cuda:
            return v.device.index if v.device.index is not None else torch.cuda.current_device()
    return None


def _shared_memory_limit(args):
    index = _cuda_index(args)
    return SM90_SHARED_MEMORY if index is None else device_shared_memory(index)


# Hopper's warpgroup MMA (wgmma) works on 64-row tiles: a tl.dot with BLOCK_M < 64 falls back to Ampere's mma.sync
# there, at a fraction of the rate. Assumed when no device can be asked, as the shared memory limit is.
WGMMA_MIN_BLOCK_M = 64


@functools.cache
def device_has_wgmma(index: int) -> bool:
    return torch.cuda.get_device_capability(index)[0] == 9


def _has_wgmma(args):
    index = _cuda_index(args)
    return True if index is None else device_has_wgmma(index)


def is_fp64_config(config):
    """One of FP64_CONFIGS' tile shapes (a kernel may add meta-parameters of its own to them)."""
    def shape(c):
        return (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"], c.num_warps, c.num_stages)

    return any(shape(config) == shape(c) for c in FP64_CONFIGS)


class FitPrune:
    """``early_config_prune`` of a kernel's autotuner (``prune_configs_by={"early_config_prune": FitPrune(...)}``).

    1. Forward kernels (which take USE_DOT): the tl.dot configs, or FP64_CONFIGS for fp64. ``precision_configs``
       maps fp32's PRECISION ("ieee": tl.dot on CUDA cores, operands and accumulator in registers; "tf32") to the
       configs of its own that a kernel tries then, chosen where the larger tiles spill; the other precisions get
       the configs in no such list. With ``stats_arg`` (a pointer, None or not), a launch where it is not None
       takes the list of "PRECISION+stats" when there is one (an epilogue that needs other tiles). An output with
       channels not adjacent in memory (``output_channel_strides`` not 1) keeps tiles of at most 32 accumulator
       values a thread.
    2. Configs whose shared memory cannot fit the device are dropped. Estimate: num_stages - 1 buffers (at least
       one) of one pipeline stage's loaded tiles, ``stage_elems(BLOCK_M, BLOCK_N, BLOCK_K)`` elements of
       ``dtype_arg``'s element size. That is what Triton's pipeliner allocates (wgmma takes one buffer more, and
       layout conversions take scratch): a lower bound (at or below what Triton 3.9 allocated in each of 44 offline
       sm_90 compiles of these kernels' configs, fp16 to fp64), so only configs that cannot fit are dropped; one
       that still runs out fails to compile, and the autotuner skips it. When none fits, the config with the
       smallest estimate is kept.
    3. On a GPU with wgmma (sm_90), tl.dot configs with BLOCK_M < 64 are dropped (they would run mma.sync), unless
       nothing would be left; fp64 keeps them (no fp64 wgmma).
    4. ``extents(args)`` maps BLOCK_M/N/K to the problem's extent along them: a config whose tile is larger than
       that extent rounded up to a power of two (and than the smallest candidate tile) is mostly padding and is
       dropped, unless nothing would be left.

    Every argument read here is in the kernel's autotune key (bucketed pixel count, channels, dtypes), so the
    result is the same for every call that shares a key (on one kind of device: the limit is not in the key).
    """

    def __init__(self, stage_elems, dtype_arg, extents=None, precision_configs=None, output_channel_strides=(),
                 stats_arg=None):
        self.stage_elems = stage_elems
        self.stats_arg = stats_arg
        self.dtype_arg = dtype_arg
        self.extents = extents
        self.precision_configs = precision_configs or {}
        self.output_channel_strides = output_channel_strides

    def _for_precision(self, configs, args):
        """The configs of the launch's fp32 precision class ("ieee" or "tf32") when the kernel has a list for it;
        otherwise every config that is in no such list."""
        if not self.precision_configs:
            return configs
        kind = args.get("PRECISION") if args[self.dtype_arg].dtype == torch.float32 else None
        with_stats = self.stats_arg is not None and args[self.stats_arg] is not None
        if with_stats and f"{kind}+stats" in self.precision_configs:
            kind = f"{kind}+stats"
        if kind in self.precision_configs:
            chosen = self.precision_configs[kind]
            return [c for c in configs if any(c is k for k in chosen)] or configs
        special = [k for ks in self.precision_configs.values() for k in ks]
        return [c for c in configs if not any(c is k for k in special)] or configs

    def shared_memory(self, config, args):
        """Estimated shared-memory bytes of ``config`` for a launch with arguments ``args``."""
        m, n, k = (config.kwargs[b] for b in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
        buffers = max(config.num_stages - 1, 1)
        return buffers * self.stage_elems(m, n, k) * args[self.dtype_arg].element_size()

    def __call__(self, configs, named_args, **kwargs):
        args = {**named_args, **kwargs}  # keyword launches come as kwargs
        if "USE_DOT" in args:
            configs = [c for c in configs if is_fp64_config(c) != bool(args["USE_DOT"])]
        configs = self._for_precision(configs, args)
        if any(args[s] != 1 for s in self.output_channel_strides):
            # An output whose channels are not adjacent (NCHW) is stored along pixels: the epilogue re-lays the
            # accumulator out first, and with more than 32 accumulator values a thread the tile spills (sm_90).
            configs = [c for c in configs
                       if c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] <= 32 * 32 * c.num_warps] or configs
        limit = _shared_memory_limit(args)
        fitting = [c for c in configs if self.shared_memory(c, args) <= limit]
        if not fitting:
            fitting = [min(configs, key=lambda c: self.shared_memory(c, args))]
        if args[self.dtype_arg].dtype != torch.float64 and _has_wgmma(args):
            fitting = [c for c in fitting if c.kwargs["BLOCK_M"] >= WGMMA_MIN_BLOCK_M] or fitting
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
        run_launch(lambda: tuned.fn[grid](**kwargs, **{**(config_defaults or {}), **config}))


def run_launch(start):
    """Call ``start()``, which launches one kernel; under the interpreter, on a fresh thread.

    CPython 3.11 keeps a thread's frames in 16 KiB chunks and unmaps a chunk as soon as the call that opened it
    returns. When the interpreter's many short per-operation calls sit on a chunk edge, each of them maps and unmaps
    memory, and a launch runs three to five times slower depending only on how deep the caller's stack is. A fresh
    thread runs every kernel at the same shallow depth, inside its first chunk."""
    if not interpreting():
        start()
        return
    failure = []

    def run():
        try:
            start()
        except BaseException as e:  # re-raised on the caller's thread
            failure.append(e)

    worker = threading.Thread(target=run, name="triton-interpreter-launch", daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
