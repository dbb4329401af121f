"""``ProgramBlock``: any block program with its weights, as an ``nn.Module`` on either backend.

What ``convert()`` puts in place of an Inception-v3, FID or BN-Inception block (BatchNorm folded into the convs).
``backend``: ``"auto"`` (triton on CUDA, torch elsewhere), ``"torch"`` (the fused PyTorch plan) or ``"triton"``
(``ops/program_plan_triton.py``).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .autocast import LOWERABLE, autocast_dtype, lowered
from .blocks.program import BlockProgram
from .functional import check_backend, copies_into_out, resolve_backend
from .ops.overlap import may_share_elements
from .ops.program_bn_function import program_bn_triton
from .ops.program_plan import program_output, run_program_torch
from .ops.program_triton_function import program_triton
from .ops.triton_conv import triton_conv2d
from .validation import check_transforms


class ProgramBlock(nn.Module):
    """``program`` with one ``nn.Conv2d`` (with bias) per conv slot in ``convs``, in ``conv_slots()`` order.

    ``forward(x, out=None)``: ``x`` (N, in_channels, H, W) in the parameters' dtype and device; the result (or
    ``out``, which receives it) in ``x``'s memory format. Under ``torch.autocast`` it computes in the autocast
    dtype, as ``nn.Conv2d`` does.
    """

    def __init__(self, program: BlockProgram, *, backend: str = "auto", device=None, dtype=None):
        super().__init__()
        if not isinstance(program, BlockProgram):
            raise TypeError(f"program must be a BlockProgram, got {type(program).__name__}")
        self.program = program
        self.convs = nn.ModuleList(
            nn.Conv2d(s.in_channels, s.conv.out_channels, s.conv.kernel, s.conv.stride, s.conv.padding,
                      device=device, dtype=dtype)
            for s in program.conv_slots()
        )
        self.backend = backend

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        check_backend(name)
        self._backend = name

    @classmethod
    def from_weights(cls, program: BlockProgram, weights, *, backend: str = "auto") -> ProgramBlock:
        """A block holding copies of ``weights`` (one (weight, bias) per conv slot), in their dtype, device and memory
        format (a channels_last model converts to channels_last blocks)."""
        program.check_weights(weights)
        weights = tuple(weights)
        block = cls(program, backend=backend, device="meta", dtype=weights[0][0].dtype)
        for conv, (w, b) in zip(block.convs, weights):
            conv.weight = nn.Parameter(w.detach().clone(memory_format=torch.preserve_format))
            conv.bias = nn.Parameter(b.detach().clone())
        return block

    def weights(self) -> tuple:
        return tuple((c.weight, c.bias) for c in self.convs)

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return run_checked(self.program, self.weights(), x, out, backend=self.backend)

    def extra_repr(self) -> str:
        p = self.program
        return f"{p.name or 'program'}: {p.in_channels} -> {p.out_channels} channels, backend={self.backend!r}"


def run_checked(program: BlockProgram, weights, x: torch.Tensor, out: torch.Tensor | None = None,
                epilogue=None, backend: str = "torch") -> torch.Tensor:
    """A program module's forward: ``x`` checked against the program and the weights (shape, device, dtype), the
    torch.func transforms refused or noted, the autocast rule applied (``x`` and the weights in the autocast
    dtype, as ``nn.Conv2d`` computes), then the fused plan of ``backend`` (``"auto"``: triton for CUDA tensors).
    With an ``epilogue`` (BatchNorm with batch statistics) the PyTorch plan runs, its convs on the Triton kernel
    when the backend is triton (``ops/triton_conv.py``)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != program.in_channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected an (N, {program.in_channels}, H, W) tensor, got {shape}")
    w0 = weights[0][0]
    if x.device != w0.device:
        raise ValueError(f"x is on {x.device}, the block's parameters on {w0.device}")
    plan = resolve_backend(backend, x)
    transformed = check_transforms(x, [t for pair in weights for t in pair if t is not None], plan,
                                   f"{program.name} (a block program)" if program.name else "a block program")
    dtype = autocast_dtype(x)
    if dtype is not None and x.dtype in LOWERABLE:
        weights = [tuple(lowered(t, dtype) for t in pair) for pair in weights]
        x = lowered(x, dtype)
    elif x.dtype != w0.dtype:
        raise TypeError(f"x is {x.dtype}, the block's parameters {w0.dtype}")
    if out is not None and torch.is_grad_enabled() and not torch.compiler.is_compiling() and may_share_elements(x, out):
        x = x.clone()  # out overwrites x, whose values the backward reads (compiled graphs: see program_triton_ops)
    if copies_into_out(out):
        return program_output(program, x, out).copy_(run_checked(program, weights, x, None, epilogue, backend))
    with torch.autocast(x.device.type, enabled=False) if dtype is not None else contextlib.nullcontext():
        if plan == "triton" and epilogue is None:
            program.check_weights(weights)
            return program_triton(program, weights, x, program_output(program, x, out))
        # an epilogue (BatchNorm with batch statistics) between the convs: on triton, each conv on the kernel
        return run_program_torch(program, weights, x, out=out, transformed=transformed, epilogue=epilogue,
                                 conv2d=triton_conv2d if plan == "triton" else F.conv2d)


def uses_batch_statistics(bn: nn.BatchNorm2d) -> bool:
    """Whether ``bn`` normalises with the batch's statistics: in training mode, or without running statistics."""
    return bn.training or not bn.track_running_stats or bn.running_mean is None


def fold_into_conv(weight, bias, gamma, beta, mean, var, eps: float) -> tuple:
    """The (weight, bias) of one conv equal to a conv (``weight``, ``bias``) then a BatchNorm using its running
    statistics: w' = w * s and b' = beta + (b - mean) * s with s = gamma / sqrt(var + eps) (``bias``, ``gamma`` and
    ``beta`` may be None: 0, 1 and 0). In the tensors' own precision and differentiable, so the conv and the
    BatchNorm's affine parameters get gradients through it (``convert.bn_fold.fold`` runs it in float64)."""
    root = torch.sqrt(var + eps)
    scale = 1 / root if gamma is None else gamma / root
    shift = -mean if bias is None else bias - mean
    folded_bias = shift * scale if beta is None else beta + shift * scale
    return weight * scale.reshape(-1, 1, 1, 1), folded_bias


def run_with_batchnorm(program: BlockProgram, convs, bns, x: torch.Tensor, backend: str, name: str) -> torch.Tensor:
    """``program`` whose every conv (``convs``: (weight, bias or None) in slot order) is followed by its BatchNorm
    (``bns``) and a ReLU; ``bns[k]`` None for a conv without BatchNorm (Inception-ResNet's projection), which runs
    as the program states it (its own ReLU flag). On the triton backend, BatchNorms using running statistics are
    folded into the convs on every call and the block runs its fused plan on the kernels; BatchNorms using batch
    statistics (training mode) run on the kernels too when every BatchNorm does (``fused_training_applies``:
    ``ops/program_bn_triton.py``, statistics in the conv kernels' epilogues); otherwise as each conv's epilogue,
    updating their statistics as the modules would, between convs computed by the general conv kernel
    (``"triton"``) or by PyTorch (``"auto"`` and ``"torch"``)."""
    if not any(uses_batch_statistics(bn) for bn in bns if bn is not None):
        if resolve_backend(backend, x) == "triton":
            folded = [(w, b) if bn is None else
                      fold_into_conv(w, b, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)
                      for (w, b), bn in zip(convs, bns)]
            return run_checked(program, folded, x, backend="triton")
        backend = "torch"
    elif fused_training_applies(program, convs, bns, x, backend):
        return program_bn_triton(program, convs, bns, x, program_output(program, x, None))
    slots = program.conv_slots()

    def epilogue(k, y):
        if bns[k] is None:
            return F.relu(y) if slots[k].conv.relu else y
        return F.relu(bns[k](y))

    # batch statistics: "auto" keeps PyTorch's convolutions, "triton" runs each conv on the kernel
    return run_checked(program, list(convs), x, epilogue=epilogue, backend="triton" if backend == "triton" else "torch")


def fused_training_applies(program: BlockProgram, convs, bns, x: torch.Tensor, backend: str) -> bool:
    """Whether the training-mode block runs on the kernels with BatchNorm fused (``ops/program_bn_triton.py``): the
    triton backend named (``"auto"`` keeps PyTorch's convolutions in training), every conv followed by a BatchNorm
    using batch statistics, no residual end, and an input the kernels take as it is (the block's dtype, no
    autocast, no torch.func transform, not bf16 under the interpreter). The rest (and every malformed input, whose
    error the general path gives) runs the general path."""
    from .kernels.common import bf16_on_interpreter

    if program.residual is not None or any(bn is None or not uses_batch_statistics(bn) for bn in bns):
        return False
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != program.in_channels:
        return False
    tensors = [t for (w, b), bn in zip(convs, bns) for t in (w, b, bn.weight, bn.bias) if t is not None]
    if any(t.dtype != x.dtype or t.device != x.device for t in tensors) or autocast_dtype(x) is not None:
        return False
    if backend != "triton" or bf16_on_interpreter(x.dtype, x.device):  # "auto" trains on PyTorch's convs
        return False
    functorch = torch._C._functorch
    return torch.compiler.is_compiling() or not any(functorch.is_functorch_wrapped_tensor(t) for t in (x, *tensors))
