"""timm's Inception-v4 and Inception-ResNet-v2 blocks, recognised by structure and converted to ``ProgramBlock`` with
BatchNorm folded.

timm keeps a block's pools as modules and names its branches in concat order: ``branch0``, ``branch1``, ... (each a
``ConvNormAct`` unit: ``conv``, then ``bn``, a BatchNorm carrying the ReLU; a pool; or an ``nn.Sequential`` of
them), with flat units in ``InceptionC`` (``branch1_0``, then the split ``branch1_1a``, ``branch1_1b``), and
``maxpool`` / ``conv`` in the v4 stem's ``Mixed3a`` and ``Mixed5a``. An Inception-ResNet block adds ``conv2d`` (a
1x1 conv with bias and no BatchNorm), its ``scale`` attribute and a ReLU module unless it has none (the last
``Block8``). The program is read from that structure, branches in registration order (timm's concat order); the
probe then proves it, so a forward that concatenates, pools or scales otherwise is left alone with the reason.
Nothing is imported from timm.
"""
from __future__ import annotations

import dataclasses
import numbers
import re

import torch
from torch import nn

from ..blocks.program import BlockProgram, Branch, Pool, Residual
from ..blocks.structure import NotConvertible, no_hooks, one_place, only_tensors, pair
from ..program_block import ProgramBlock
from .bn_fold import fold_batchnorm
from .inception_v3 import unit_conv

STEM_NAMES = {"maxpool", "conv"}           # Mixed3a, Mixed5a
RESIDUAL_NAMES = ("conv2d", "act", "relu")  # the projection and its ReLU (``act`` in Block35/17, ``relu`` in Block8)
_BRANCH = re.compile(r"branch(\d+)(?:_(\d+)([ab]?))?$")


@dataclasses.dataclass(frozen=True)
class TimmFound:
    """A recognised block: its units in weight order (with their names), the projection, and its program."""

    units: tuple
    unit_names: tuple
    projection: nn.Module | None
    candidates: tuple  # one BlockProgram: structure shows timm's pools and order, the probe proves them


def looks_like_timm_block(module: nn.Module) -> bool:
    """A candidate (reported when it fails): submodules ``branch0`` .., or exactly ``maxpool`` and ``conv``."""
    names = {n for n, m in module._modules.items() if m is not None}
    return "branch0" in names or names == STEM_NAMES


def _pool(module: nn.Module, where: str) -> Pool:
    kind = {nn.MaxPool2d: "max", nn.AvgPool2d: "avg"}.get(type(module))
    if kind is None:
        raise NotConvertible(f"{where}: {type(module).__name__}, expected a conv+BatchNorm unit or a pool")
    if kind == "max" and (pair(module.dilation) != (1, 1) or module.return_indices):
        raise NotConvertible(f"{where}: a dilated max-pool or one returning indices")
    if kind == "avg" and module.divisor_override is not None:
        raise NotConvertible(f"{where}: divisor_override {module.divisor_override}")
    stride = module.stride if module.stride is not None else module.kernel_size
    extra = {"count_include_pad": module.count_include_pad} if kind == "avg" else {}
    return Pool(kind, pair(module.kernel_size), pair(stride), pair(module.padding), ceil_mode=module.ceil_mode,
                **extra)


def _branches(module: nn.Module) -> list:
    """The branches in registration order: (name, [element modules in chain order], [split unit names])."""
    branches, flat = [], {}
    for name, sub in module._modules.items():
        if sub is None or name in RESIDUAL_NAMES:
            continue
        if name in STEM_NAMES:
            branches.append((name, [(name, sub)], []))
            continue
        match = _BRANCH.match(name)
        if match is None:
            raise NotConvertible(f"block: unexpected submodule {name} ({type(sub).__name__})")
        if match.group(2) is None:
            elements = list(sub.named_children()) if type(sub) is nn.Sequential else [("", sub)]
            branches.append((name, [(f"{name}[{i}]" if i else name, m) for i, m in elements], []))
            continue
        if match.group(1) not in flat:  # InceptionC's flat units: the chain, then the lettered split
            flat[match.group(1)] = (name.rpartition("_")[0], [], [])
            branches.append(flat[match.group(1)])
        _, chain, split = flat[match.group(1)]
        if match.group(3):
            split.append((name, sub))
        elif split:
            raise NotConvertible(f"block: {name} follows a split unit")
        else:
            chain.append((name, sub))
    return branches


def timm_block_of(module: nn.Module) -> TimmFound:
    """Recognise a timm Inception-v4 / Inception-ResNet-v2 block; raises ``NotConvertible`` saying why it is not
    one."""
    if not looks_like_timm_block(module):
        raise NotConvertible("block: not a timm Inception-v4 / Inception-ResNet-v2 block")
    no_hooks(module, "block")
    if module._parameters or module._buffers:
        raise NotConvertible("block: parameters or buffers of its own")
    found = _branches(module)
    first_conv = next((m.conv for _, elements, _ in found for name, m in elements[:1]
                       if isinstance(getattr(m, "conv", None), nn.Conv2d)), None)
    if first_conv is None:
        raise NotConvertible("block: no conv+BatchNorm unit reads the input")
    cin = first_conv.in_channels
    units, unit_names, branches = [], [], []
    for _, elements, split in found:
        ops, channels = [], cin
        for where, sub in elements:
            if not isinstance(getattr(sub, "conv", None), nn.Module):  # a pool, or refused as neither
                ops.append(_pool(sub, where))
                continue
            ops.append(unit_conv(sub, channels, where))
            channels = ops[-1].out_channels
            units.append(sub)
            unit_names.append(where)
        split_convs = []
        for where, sub in split:
            split_convs.append(unit_conv(sub, channels, where))
            units.append(sub)
            unit_names.append(where)
        branches.append(Branch(tuple(ops), tuple(split_convs)))
    projection, residual = _residual(module, cin)
    if projection is not None:
        branch_out = BlockProgram(cin, tuple(branches)).concat_channels
        if projection.in_channels != branch_out:
            raise NotConvertible(f"conv2d: reads {projection.in_channels} channels, the branches give {branch_out}")
    tensors = [t for u in units for t in (*u.conv.parameters(), *u.bn.parameters(), *u.bn.buffers())]
    if projection is not None:
        tensors += list(projection.parameters())
    one_place([t for t in tensors if t.is_floating_point()], "block")
    program = BlockProgram(cin, tuple(branches), residual=residual, name=type(module).__name__)
    try:
        program.out_size(6, 6)
    except ValueError as error:
        raise NotConvertible(f"block: {error}") from None
    return TimmFound(tuple(units), tuple(unit_names), projection, (program,))


def _residual(module: nn.Module, cin: int):
    """(the projection conv, the Residual) of an Inception-ResNet block, or (None, None)."""
    projection = module._modules.get("conv2d")
    if projection is None:
        if any(module._modules.get(n) is not None for n in RESIDUAL_NAMES):
            raise NotConvertible("block: an activation module without the projection conv2d")
        return None, None
    if type(projection) is not nn.Conv2d:
        raise NotConvertible(f"conv2d: {type(projection).__name__}, expected nn.Conv2d")
    only_tensors(projection, ("weight", "bias") if projection.bias is not None else ("weight",), "conv2d")
    shape = (pair(projection.kernel_size), pair(projection.stride), pair(projection.padding),
             pair(projection.dilation), projection.groups)
    if shape != ((1, 1), (1, 1), (0, 0), (1, 1), 1) or projection.out_channels != cin:
        raise NotConvertible(f"conv2d: expected a 1x1 conv back to the block's {cin} channels, got {projection}")
    scale = getattr(module, "scale", None)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise NotConvertible(f"block: its residual scale is {scale!r}, expected a number")
    acts = [module._modules.get(n) for n in RESIDUAL_NAMES[1:] if module._modules.get(n) is not None]
    if any(type(a) is not nn.ReLU for a in acts) or len(acts) > 1:
        raise NotConvertible(f"block: activation {', '.join(type(a).__name__ for a in acts)}, expected one nn.ReLU")
    return projection, Residual(float(scale), relu=bool(acts))


def batchnorms_in_training(block: TimmFound) -> list:
    return [name for unit, name in zip(block.units, block.unit_names) if unit.bn.training]


def fold_timm_block(module: nn.Module, program: BlockProgram, *, backend: str = "torch") -> ProgramBlock:
    """A ``ProgramBlock`` in eval mode computing ``program`` with ``module``'s units folded (the projection as it
    is, a missing bias as zeros)."""
    block = timm_block_of(module)
    if program not in block.candidates:
        raise ValueError(f"{program.name} is not what this block's structure says")
    training = batchnorms_in_training(block)
    if training:
        raise RuntimeError(f"BatchNorm in training mode ({', '.join(training)}): folding it is exact only in eval "
                           "mode; call .eval() before converting")
    weights = [fold_batchnorm(unit.conv, unit.bn) for unit in block.units]
    if block.projection is not None:
        w, b = block.projection.weight, block.projection.bias
        weights.append((w.detach(), b.detach() if b is not None else torch.zeros_like(w[:, 0, 0, 0])))
    return ProgramBlock.from_weights(program, weights, backend=backend).eval()
