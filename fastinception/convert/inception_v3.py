"""Inception-v3 blocks (torchvision's ``InceptionA`` .. ``InceptionE``, pytorch-fid's ``FIDInception*``),
recognised by structure and converted to ``ProgramBlock`` with BatchNorm folded.

Each block type is known by the names of its conv+BatchNorm units (``BasicConv2d``: ``conv`` without bias, ``bn``,
ReLU in its forward). The units give every conv's channels, kernel, stride and padding; the pools live in the
block's forward, where structure cannot see them: pytorch-fid's blocks have torchvision's submodules and average
without the padding, or max-pool in the last E block. So a block of type A, C or E has three candidate programs
(its pool an average with or without the padding, or a max), and the probe (``convert.probe``) runs the block
and keeps the candidate that computes what it does; B and D (a stride-2 max-pool passed through) have one.
Nothing is imported from torchvision or pytorch-fid.
"""
from __future__ import annotations

import dataclasses

from torch import nn

from ..blocks.program import BlockProgram, Branch, Conv
from ..blocks.programs import AVG_3X3, AVG_3X3_EXCLUDE_PAD, MAX_3X3, MAX_3X3_S2, V3_UNIT_NAMES
from ..blocks.structure import NotConvertible, child, no_hooks, one_place, only_children, only_tensors, pair
from ..program_block import ProgramBlock
from .bn_fold import check_foldable, fold_batchnorm

POOL = "pool"  # the pool branch's pool: one candidate per entry of POOL_CANDIDATES

# kind -> (unit names in definition order, branches: each a chain of unit indices and POOL / pools, then an
# optional split of unit indices)
LAYOUTS = {
    "InceptionA": (V3_UNIT_NAMES["InceptionA"], (((0,), ()), ((1, 2), ()), ((3, 4, 5), ()), ((POOL, 6), ()))),
    "InceptionB": (V3_UNIT_NAMES["InceptionB"], (((0,), ()), ((1, 2, 3), ()), ((MAX_3X3_S2,), ()))),
    "InceptionC": (V3_UNIT_NAMES["InceptionC"],
                   (((0,), ()), ((1, 2, 3), ()), ((4, 5, 6, 7, 8), ()), ((POOL, 9), ()))),
    "InceptionD": (V3_UNIT_NAMES["InceptionD"], (((0, 1), ()), ((2, 3, 4, 5), ()), ((MAX_3X3_S2,), ()))),
    "InceptionE": (V3_UNIT_NAMES["InceptionE"], (((0,), ()), ((1,), (2, 3)), ((4, 5), (6, 7)), ((POOL, 8), ()))),
}

# The pool branch's candidates, with the name of the block each one makes (torchvision's, pytorch-fid's).
POOL_CANDIDATES = {
    "InceptionA": ((AVG_3X3, "InceptionA"), (AVG_3X3_EXCLUDE_PAD, "FIDInceptionA"), (MAX_3X3, "InceptionA/max")),
    "InceptionC": ((AVG_3X3, "InceptionC"), (AVG_3X3_EXCLUDE_PAD, "FIDInceptionC"), (MAX_3X3, "InceptionC/max")),
    "InceptionE": ((AVG_3X3, "InceptionE"), (AVG_3X3_EXCLUDE_PAD, "FIDInceptionE_1"), (MAX_3X3, "FIDInceptionE_2")),
}


@dataclasses.dataclass(frozen=True)
class V3Block:
    """A recognised block: its kind, its units in weight order, and the programs it may compute."""

    kind: str
    units: tuple
    unit_names: tuple
    candidates: tuple  # BlockProgram, ...


def v3_kind(module: nn.Module) -> str | None:
    """The block type whose unit names ``module`` has as submodules (a candidate, reported when it fails); a module
    with the names of two types, which no torchvision block has, is taken as the type with more of them."""
    present = [kind for kind, (names, _) in LAYOUTS.items()
               if all(isinstance(getattr(module, n, None), nn.Module) for n in names)]
    return max(present, key=lambda kind: len(LAYOUTS[kind][0]), default=None)


def unit_conv(unit: nn.Module, in_channels: int, where: str) -> Conv:
    """The program conv of a conv+BatchNorm+ReLU unit (torchvision's BasicConv2d, timm's ConvNormAct) reading
    ``in_channels``; refuses anything else."""
    only_children(unit, {"conv", "bn"}, where)
    conv = child(unit, "conv", where)
    if type(conv) is not nn.Conv2d:
        raise NotConvertible(f"{where}.conv: {type(conv).__name__}, expected nn.Conv2d")
    only_tensors(conv, ("weight", "bias") if conv.bias is not None else ("weight",), f"{where}.conv")
    if conv.in_channels != in_channels:
        raise NotConvertible(f"{where}.conv: reads {conv.in_channels} channels, the block gives it {in_channels}")
    if isinstance(conv.padding, str):
        raise NotConvertible(f"{where}.conv: padding {conv.padding!r}, expected explicit padding")
    for what, got, want in (("dilation", pair(conv.dilation), (1, 1)), ("groups", conv.groups, 1),
                            ("padding_mode", conv.padding_mode, "zeros")):
        if got != want:
            raise NotConvertible(f"{where}.conv: {what} {got}, expected {want}")
    check_foldable(child(unit, "bn", where), conv.out_channels, f"{where}.bn")
    return Conv(conv.out_channels, pair(conv.kernel_size), pair(conv.stride), pair(conv.padding))


def v3_block_of(module: nn.Module) -> V3Block:
    """Recognise an Inception-v3 block; raises ``NotConvertible`` saying why it is not one."""
    kind = v3_kind(module)
    if kind is None:
        raise NotConvertible("block: not an Inception-v3 block")
    names, layout = LAYOUTS[kind]
    only_children(module, set(names), "block")
    no_hooks(module, "block")
    units = tuple(child(module, n, "block") for n in names)
    first = child(units[0], "conv", names[0])
    if type(first) is not nn.Conv2d:
        raise NotConvertible(f"{names[0]}.conv: {type(first).__name__}, expected nn.Conv2d")
    cin = first.in_channels
    branches = []
    for chain, split in layout:
        ops, channels = [], cin
        for item in chain:
            if isinstance(item, int):
                ops.append(unit_conv(units[item], channels, names[item]))
                channels = ops[-1].out_channels
            else:
                ops.append(item)
        split_convs = tuple(unit_conv(units[i], channels, names[i]) for i in split)
        branches.append((tuple(ops), split_convs))
    # num_batches_tracked is an integer counter, not part of the arithmetic
    tensors = [t for u in units for t in (*u.conv.parameters(), *u.bn.parameters(), *u.bn.buffers())]
    one_place([t for t in tensors if t.is_floating_point()], "block")
    pools = POOL_CANDIDATES.get(kind, ((None, kind),))
    candidates = []
    for pool, name in pools:
        program = BlockProgram(cin, tuple(Branch(tuple(pool if isinstance(op, str) else op for op in ops), split)
                                          for ops, split in branches), name=name)
        try:
            program.out_size(6, 6)
        except ValueError as error:
            raise NotConvertible(f"block: {error}") from None
        candidates.append(program)
    return V3Block(kind, units, names, tuple(candidates))


def batchnorms_in_training(block: V3Block) -> list:
    return [name for unit, name in zip(block.units, block.unit_names) if unit.bn.training]


def fold_v3_block(module: nn.Module, program: BlockProgram, *, backend: str = "auto") -> ProgramBlock:
    """A ``ProgramBlock`` in eval mode computing ``program`` with ``module``'s convs and BatchNorms folded."""
    block = v3_block_of(module)
    if program not in block.candidates:
        raise ValueError(f"{program.name} is not a candidate of this {block.kind} block")
    training = batchnorms_in_training(block)
    if training:
        raise RuntimeError(f"BatchNorm in training mode ({', '.join(training)}): folding it is exact only in eval "
                           "mode; call .eval() before converting")
    weights = [fold_batchnorm(unit.conv, unit.bn) for unit in block.units]
    return ProgramBlock.from_weights(program, weights, backend=backend).eval()
