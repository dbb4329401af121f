"""Every Triton launch the triton backend makes for one problem, captured without a GPU.

A ``FastInception`` block on the triton backend runs as a user runs it (the layer, the functional API, the
autograd Function, the custom ops ``torch.ops.fastinception.triton_forward`` / ``triton_backward``, the
launchers) on CPU tensors of the real shapes: inference and training forwards with the branches serial and
grouped, and the backward of every gradient, deterministic and with atomics (or the layer's defaults only). At the
bottom, the kernels' one launch point, ``launch.launch``, is replaced in each kernel module that imported it by a
recorder, and every bare ``@triton.jit`` kernel a kernel module holds, launched directly as ``kernel[grid](...)``
(``conv2d_backward._reduce_partials_kernel``), is wrapped likewise. Nothing is computed:
the tensors are only allocated. So the signatures, strides (including any re-layout of the weights above the
ops), None pointers and constexprs are exactly what a GPU run passes, with no hand-written copy to drift from the
code. Two things a CPU tensor would change are set back to a GPU's: the "CUDA tensors only" check is skipped,
and every ``allow_tf32`` argument of the custom ops is set to the run's choice (on a GPU it follows
``torch.backends.cudnn.allow_tf32``). Each recorded autotuned launch then gets the configs its autotuner would
try: its ``prune_configs_by`` applied to the launch's arguments, with the target's SM count and shared-memory
limit. The grid each launch passes (the launcher's own grid function, or a direct launch's tuple) is kept, so its
size under any config is what the launcher computes (``Launch.grid_of``).

Must run with Triton compiling (``TRITON_INTERPRET`` unset): under the interpreter the launchers pick other
paths (fixed tiles, fp32 for bf16).
"""
from __future__ import annotations

import contextlib
import importlib
import pkgutil
import sys
from dataclasses import dataclass

import torch
import triton
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from triton.runtime.jit import JITFunction

from .. import kernels
from ..blocks.program import BlockProgram
from ..kernels import common, conv2d_backward
from ..kernels import launch as launch_module
from ..layer import FastInception
from ..ops import program_bn_function, program_triton_function
from ..program_block import ProgramBlock, run_with_batchnorm
from .compile import jit_function
from .occupancy import Target

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
TF32_LABEL = "fp32+tf32"  # the dtype column of fp32 runs with tf32 allowed (PyTorch's default for convolutions)


@dataclass
class Launch:
    """One kernel launch as the ops make it, with the configs the autotuner would try."""

    kernel: str  # the kernel's short name: conv2d_bias_relu for _conv2d_bias_relu_kernel
    variant: str  # what tells this launch from the kernel's others: "k3 96->128 +mask"
    fn: JITFunction
    kwargs: dict  # the kernel arguments, without the config's
    configs: list  # triton.Config, in the autotuner's order
    dtype: str  # the dtype column: fp16, bf16, fp32 or fp32+tf32
    layout: str
    grid: object = None  # the launcher's grid: a function of the arguments and meta-parameters, or a tuple
    passes: tuple = ()  # the passes of the captured run that make it, from PASSES
    count: int = 1  # how many times the captured run makes it

    @property
    def label(self) -> str:
        return f"{self.kernel} {self.variant}".strip()

    def grid_of(self, config) -> tuple[int, ...]:
        """The grid this launch runs with ``config``: its grid function called as Triton calls it, on the launch's
        arguments and the config's meta-parameters."""
        grid = self.grid({**self.kwargs, **config.all_kwargs()}) if callable(self.grid) else self.grid
        return tuple(int(g) for g in grid)


# The passes of a captured run, in order: an inference forward, a training forward, its backward; a block program's
# run adds a training forward with BatchNorm's batch statistics on the kernels (v3's blocks in training mode) and its
# backward.
PASSES = ("inference", "training", "backward", "bn-training", "bn-backward")


def short_name(fn: JITFunction) -> str:
    name = fn.fn.__name__.strip("_")
    return name[: -len("_kernel")] if name.endswith("_kernel") else name


def variant(kwargs: dict) -> str:
    """The arguments that tell apart launches of one kernel in a block: each conv's kernel size and channels
    (``C_IN``/``C_OUT``, or ``_A``/``_B`` for a pair; a reduction's ``C_TOT``), ``+mask`` when a ReLU mask is
    written (training), ``atomic`` for the float-atomic weight-gradient path and the one-row reduction after it."""
    parts = []
    for suffix in ("_A", "_B"):  # a general conv (one, or a split's two): kernel, stride, channels
        if kwargs.get(f"KH{suffix}") is not None and kwargs.get(f"C_OUT{suffix}"):
            parts.append(f"{kwargs[f'KH{suffix}']}x{kwargs[f'KW{suffix}']}/s{kwargs[f'SH{suffix}']} "
                         f"{kwargs['C_IN']}->{kwargs[f'C_OUT{suffix}']}")
    if "C0" in kwargs:  # the pointwise stem: its segments, and a max-pool prologue's channels
        heads = "+".join(str(kwargs[f"C{k}"]) for k in range(4) if kwargs[f"C{k}"])
        parts.append(f"1x1 {kwargs['C_IN']}->{heads}" + (f" pool->{kwargs['CP']}" if kwargs["CP"] else ""))
    if "IS_MAX" in kwargs:
        parts.append(f"{'max' if kwargs['IS_MAX'] else 'avg'} {kwargs['KH']}x{kwargs['KW']}/s{kwargs['SH']} "
                     f"{kwargs['C']}" + (" +bias" if kwargs.get("b_ptr") is not None else ""))
    general_wgrad = "HAS_W" in kwargs and "KH" in kwargs
    if general_wgrad:  # the general conv's weight gradient, or a bias gradient alone
        parts.append(f"{kwargs['KH']}x{kwargs['KW']}/s{kwargs['SH']} {kwargs['C_IN']}->{kwargs['C_OUT']}"
                     if kwargs["HAS_W"] else f"bias {kwargs['C_OUT']}")
    for suffix in ("", "_A", "_B") if not general_wgrad else ():
        c_in, c_out = kwargs.get(f"C_IN{suffix}"), kwargs.get(f"C_OUT{suffix}", kwargs.get(f"C_TOT{suffix}"))
        if c_in is not None and c_out is not None:
            parts.append(f"k{kwargs.get(f'KSIZE{suffix}', 1)} {c_in}->{c_out}")
    words = [" + ".join(parts)] if parts else []
    if any(k.startswith("mask") and k.endswith("_ptr") and v is not None for k, v in kwargs.items()):
        words.append("+mask")
    if kwargs.get("sa_ptr") is not None:
        words.append("+stats")  # a conv that also writes BatchNorm's batch-statistics partials
    part = kwargs.get("part_ptr")
    if kwargs.get("ATOMIC") or ("S" in kwargs and isinstance(part, torch.Tensor) and part.dim() == 1):
        words.append("atomic")  # the atomic path's one accumulator row, not S chunk rows (S may be 1 either way)
    return " ".join(words)


def _fixed_config(fn: JITFunction, values: dict, defaults: dict | None = None) -> triton.Config:
    """A forced or direct launch's meta-arguments as a Config: BLOCK* constexprs as its kwargs, the rest options."""
    values = {**(defaults or {}), **values}
    options = {k: v for k, v in values.items() if k not in fn.arg_names}
    blocks = {k: v for k, v in values.items() if k in fn.arg_names}
    return triton.Config(blocks, **options)


class _Recorder:
    """Stands in for ``launch.launch`` and the direct launches, collecting (fn, kwargs, configs, grid, pass)."""

    def __init__(self):
        self.records = []
        self.current = PASSES[0]  # set by run_block's ``mark`` as it moves on

    def launch(self, tuned, grid, kwargs, config, interp_config, config_defaults=None):
        fn = jit_function(tuned)
        if config is not None:  # a forced config: what runs is that one
            configs = [_fixed_config(fn, config, config_defaults)]
        else:
            tuned.nargs = {}  # prune_configs reads positional arguments from here; the launchers pass keywords
            try:
                configs = list(tuned.prune_configs(kwargs))
            finally:
                tuned.nargs = None
        self.records.append((fn, dict(kwargs), configs, grid, self.current))

    def direct(self, fn: JITFunction):
        recorder = self

        class Indexed:
            def __getitem__(self, grid):
                def run(*positional, **kwargs):
                    kwargs = {**dict(zip(fn.arg_names, positional)), **kwargs}
                    blocks = {k: v for k, v in kwargs.items() if k.startswith("BLOCK") or k not in fn.arg_names}
                    args = {k: v for k, v in kwargs.items() if k not in blocks}
                    recorder.records.append((fn, args, [_fixed_config(fn, blocks)], grid, recorder.current))
                return run

        return Indexed()


def _modules(package: str):
    """The imported modules of ``package`` (the kernel modules import each other: import them all first)."""
    if package == kernels.__name__:
        for info in pkgutil.iter_modules(kernels.__path__):
            importlib.import_module(f"{kernels.__name__}.{info.name}")
    return [m for name, m in list(sys.modules.items()) if name.startswith(package + ".") and m is not None]


def _no_check(*tensors) -> None:
    """Stands in for ``common.require_launchable``: the captured launches never run."""


class _Tf32(TorchDispatchMode):
    """Sets the ``allow_tf32`` argument of every fastinception custom op to one value, as a GPU run with
    ``torch.backends.cudnn.allow_tf32`` set so would pass it (on CPU tensors the layer passes False)."""

    def __init__(self, allow_tf32: bool):
        super().__init__()
        self.allow_tf32 = allow_tf32

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func.namespace == "fastinception":
            names = [a.name for a in func._schema.arguments]
            if "allow_tf32" in names:
                i = names.index("allow_tf32")
                if i < len(args):
                    args = (*args[:i], self.allow_tf32, *args[i + 1:])
                else:
                    kwargs["allow_tf32"] = self.allow_tf32
        return func(*args, **kwargs)


@contextlib.contextmanager
def recording(target: Target):
    """Within: the kernel modules record launches instead of making them and see ``target``'s SM count and
    shared-memory limit (the CPU tensors' device has neither), and the library does not refuse CPU tensors.
    Yields the recorder: its ``records``, and ``current``, the pass the records are tagged with."""
    recorder = _Recorder()
    modules = _modules(kernels.__name__)
    patches = [(m, "launch", recorder.launch) for m in modules if getattr(m, "launch", None) is launch_module.launch]
    if not patches:
        raise RuntimeError("expected kernel modules that import launch.launch; found none to record")
    patches += [(m, "require_launchable", _no_check) for m in _modules("fastinception")
                if getattr(m, "require_launchable", None) is common.require_launchable]
    # a bare @triton.jit kernel is launched directly (kernel[grid](...)), wherever a module imported it
    patches += [(m, name, recorder.direct(value)) for m in modules for name, value in list(vars(m).items())
                if isinstance(value, JITFunction) and name.endswith("_kernel")]
    patches += [(m, "_sm_count", lambda device: target.sm_count) for m in modules
                if getattr(m, "_sm_count", None) is conv2d_backward._sm_count]
    patches += [(launch_module, "_shared_memory_limit", lambda args: target.smem_per_block)]
    saved = [(m, name, getattr(m, name)) for m, name, _ in patches]
    try:
        for m, name, value in patches:
            setattr(m, name, value)
        yield recorder
    finally:
        for m, name, value in saved:
            setattr(m, name, value)


def _ignore(name: str) -> None:
    """``run_block``'s default ``mark``."""


def run_block(block_args, size: int, batch: int, dtype: torch.dtype, layout, allow_tf32: bool,
              every_path: bool = True, mark=_ignore) -> None:
    """An inference forward, a training forward and the backward of the input and every parameter (``mark`` is
    called with each name of ``PASSES`` before that pass). The block and the input are in ``layout``, as
    ``model.to(memory_format=...)`` and the benchmarks put them. A ``FastInception`` block (``block_args`` its
    arguments) runs with the layer's defaults, or with ``every_path`` every launch path: the branches serial and
    grouped, the backward deterministic and with atomics. A block program (``block_args`` a ``BlockProgram``) has
    one path, and without a residual end also runs as a training-mode block of v3 (every conv followed by a
    BatchNorm using batch statistics, ``program_block.run_with_batchnorm``) forward and backward."""
    if isinstance(block_args, BlockProgram):
        program = ProgramBlock(block_args, backend="triton", device="meta", dtype=dtype).to_empty(device="cpu")
        program = program.to(memory_format=layout)
        x = torch.empty((batch, block_args.in_channels, size, size), dtype=dtype).contiguous(memory_format=layout)
        # on a GPU the choice follows torch.backends.cudnn.allow_tf32; on these CPU tensors it would be False
        saved, saved_bn = program_triton_function.tf32_allowed, program_bn_function.tf32_allowed
        program_triton_function.tf32_allowed = lambda t: allow_tf32 and t.dtype == torch.float32
        program_bn_function.tf32_allowed = program_triton_function.tf32_allowed
        try:
            mark("inference")
            with torch.no_grad():
                program(x)
            xg = x.detach().requires_grad_()
            mark("training")
            y = program(xg)
            mark("backward")
            torch.autograd.grad(y, [xg, *program.parameters()], torch.empty_like(y))
            if block_args.residual is None:  # every conv with its BatchNorm, as v3's blocks train (no conv bias)
                bns = [nn.BatchNorm2d(s.conv.out_channels, dtype=dtype) for s in block_args.conv_slots()]
                convs = [(w, None) for w, _ in program.weights()]
                xg = x.detach().requires_grad_()
                mark("bn-training")
                y = run_with_batchnorm(block_args, convs, bns, xg, "triton", block_args.name)
                mark("bn-backward")
                torch.autograd.grad(y, [xg, *(w for w, _ in convs), *(p for bn in bns for p in bn.parameters())],
                                    torch.empty_like(y))
        finally:
            program_triton_function.tf32_allowed = saved
            program_bn_function.tf32_allowed = saved_bn
        return
    block = FastInception(*block_args, backend="triton", device="meta", dtype=dtype).to_empty(device="cpu")
    block = block.to(memory_format=layout)
    x = torch.empty((batch, block_args[0], size, size), dtype=dtype).contiguous(memory_format=layout)
    # inference first: the report lists kernels in first-launch order
    branch_modes = ("serial", "grouped") if every_path else (block.branch_mode,)
    deterministic = (True, False) if every_path else (block.deterministic_backward,)
    with _Tf32(allow_tf32):
        mark("inference")
        for branches in branch_modes:
            block.branch_mode = branches
            with torch.no_grad():
                block(x)
        for branches in branch_modes:
            block.branch_mode = branches
            for each in deterministic:
                block.deterministic_backward = each
                xg = x.detach().requires_grad_()
                mark("training")
                y = block(xg)
                mark("backward")
                torch.autograd.grad(y, [xg, *block.parameters()], torch.empty_like(y))


def capture(target: Target, block_args: tuple, size: int, batch: int, dtype: str, layout: str,
            allow_tf32: bool, every_path: bool = True) -> list[Launch]:
    """The launches of one (dtype, tf32, layout) run of the block, each distinct launch once, with the passes that
    make it and how many times the run makes it."""
    label = TF32_LABEL if dtype == "fp32" and allow_tf32 else dtype
    with recording(target) as recorder:
        def mark(name):
            recorder.current = name

        run_block(block_args, size, batch, DTYPES[dtype], LAYOUTS[layout], allow_tf32, every_path, mark)
    launches = {}
    for fn, kwargs, configs, grid, current in recorder.records:
        launch = Launch(short_name(fn), variant(kwargs), fn, kwargs, configs, label, layout, grid, (current,))
        key = (launch.label, _signature(kwargs))
        if key not in launches:  # the stem forward runs once per branch mode, the dgrads in both backwards
            launches[key] = launch
        else:
            seen = launches[key]
            seen.count += 1
            if current not in seen.passes:
                seen.passes += (current,)
    return list(launches.values())


def _signature(kwargs: dict) -> tuple:
    """What of a launch's arguments can change its compile: tensors by dtype and stride, the rest by value."""
    def one(v):
        if isinstance(v, torch.Tensor):
            return ("tensor", v.dtype, v.stride(), v.data_ptr() % 16)
        return v
    return tuple(sorted((k, repr(one(v))) for k, v in kwargs.items()))
