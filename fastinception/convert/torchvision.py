"""torchvision-style GoogLeNet Inception blocks, recognised by structure and converted with BatchNorm folded.

torchvision's block has four branches of ``BasicConv2d`` units (a bias-free ``conv``, a ``bn`` BatchNorm2d,
then ReLU in its forward): ``branch1`` a 1x1 unit; ``branch2`` and ``branch3`` a 1x1 unit then a 3x3 one
(torchvision's "5x5" branch is 3x3, so k3 = 3); ``branch4`` a 3x3 stride-1 max-pool then a 1x1 unit. Nothing
is imported from torchvision: any module of that shape is recognised. In eval mode each BatchNorm is a fixed
affine map and folds into its convolution, which makes the block exactly a FastInception.

The ReLU lives in the unit's forward, where structure cannot see it; a unit may also hold it as an
``nn.ReLU`` submodule (as torchvision's quantizable variant does). Any other submodule, such as a different
activation, makes the unit unrecognised.
"""
from __future__ import annotations

import dataclasses

from torch import nn

from ..blocks.spec import InceptionSpec
from ..blocks.structure import NotConvertible, child, no_hooks, one_place, only_children, pool3x3, same_conv
from ..layer import FastInception
from .bn_fold import check_foldable, fold_batchnorm

BRANCHES = ("branch1", "branch2", "branch3", "branch4")
# FastInception's conv submodules, in the order of TorchvisionBlock.units.
FAST_CONVS = ("p1_1", "p2_1", "p2_2", "p3_1", "p3_2", "p4_2")


@dataclasses.dataclass(frozen=True)
class TorchvisionBlock:
    """A recognised block: its spec and its six conv+BatchNorm units in FastInception's order (FAST_CONVS)."""

    spec: InceptionSpec
    units: tuple
    unit_names: tuple


def looks_like_torchvision_inception(module: nn.Module) -> bool:
    """True for any module with submodules ``branch1 .. branch4``: a candidate, reported when it fails."""
    return all(isinstance(getattr(module, name, None), nn.Module) for name in BRANCHES)


def _unit(unit: nn.Module, in_channels: int, where: str) -> int:
    """Kernel size of a conv+BatchNorm+ReLU unit (``BasicConv2d``) reading ``in_channels``; refuses others."""
    only_children(unit, {"conv", "bn"}, where)
    conv = child(unit, "conv", where)
    # A conv bias folds as exactly as the rest, so both forms are accepted.
    k = same_conv(conv, in_channels, f"{where}.conv", bias=None)
    check_foldable(child(unit, "bn", where), conv.out_channels, f"{where}.bn")
    return k


def _sequence(branch: nn.Module, length: int, where: str) -> list:
    if type(branch) is not nn.Sequential or len(branch) != length:
        size = f" of {len(branch)}" if isinstance(branch, nn.Sequential) else ""
        raise NotConvertible(f"{where}: {type(branch).__name__}{size}, expected nn.Sequential of {length} modules")
    return list(branch)


def torchvision_block_of(module: nn.Module) -> TorchvisionBlock:
    """Recognise a torchvision-style Inception block; raises ``NotConvertible`` saying why it is not one."""
    only_children(module, set(BRANCHES), "block")
    no_hooks(module, "block")
    b1 = child(module, "branch1", "block")
    b2 = _sequence(child(module, "branch2", "block"), 2, "branch2")
    b3 = _sequence(child(module, "branch3", "block"), 2, "branch3")
    pool, b4 = _sequence(child(module, "branch4", "block"), 2, "branch4")
    conv1 = child(b1, "conv", "branch1")
    if type(conv1) is not nn.Conv2d:
        raise NotConvertible(f"branch1.conv: {type(conv1).__name__}, expected nn.Conv2d")
    cin = conv1.in_channels
    for unit, where in ((b1, "branch1"), (b2[0], "branch2[0]"), (b3[0], "branch3[0]"), (b4, "branch4[1]")):
        k = _unit(unit, cin, where)
        if k != 1:
            raise NotConvertible(f"{where}.conv: kernel {k}x{k}, expected 1x1")
    pool3x3(pool, "branch4[0]")
    k2 = _unit(b2[1], b2[0].conv.out_channels, "branch2[1]")
    k3 = _unit(b3[1], b3[0].conv.out_channels, "branch3[1]")
    units = (b1, b2[0], b2[1], b3[0], b3[1], b4)
    names = ("branch1", "branch2[0]", "branch2[1]", "branch3[0]", "branch3[1]", "branch4[1]")
    # num_batches_tracked is an integer counter, not part of the arithmetic.
    tensors = [t for u in units for t in (*u.conv.parameters(), *u.bn.parameters(), *u.bn.buffers())]
    one_place([t for t in tensors if t.is_floating_point()], "block")
    spec = InceptionSpec(
        cin, conv1.out_channels, b2[0].conv.out_channels, b2[1].conv.out_channels, b3[0].conv.out_channels,
        b3[1].conv.out_channels, b4.conv.out_channels, k2, k3,
    )
    return TorchvisionBlock(spec, units, names)


def torchvision_spec_of(module: nn.Module) -> InceptionSpec | None:
    """The spec of a torchvision-style Inception block (BatchNorm folded away), else None."""
    try:
        return torchvision_block_of(module).spec
    except NotConvertible:
        return None


def batchnorms_in_training(block: TorchvisionBlock) -> list:
    """Units whose BatchNorm is in training mode, where it normalises with batch statistics and cannot fold."""
    return [name for unit, name in zip(block.units, block.unit_names) if unit.bn.training]


def fold_torchvision_block(module: nn.Module, *, backend: str = "auto"):
    """A ``FastInception`` in eval mode computing ``module`` (a torchvision-style block, in eval mode) exactly.

    Raises ``NotConvertible`` for a block of another shape and ``RuntimeError`` for one in training mode.
    """
    block = torchvision_block_of(module)
    training = batchnorms_in_training(block)
    if training:
        raise RuntimeError(
            f"BatchNorm in training mode ({', '.join(training)}): folding it is exact only in eval mode; "
            "call .eval() before converting"
        )
    state = {}
    for name, unit in zip(FAST_CONVS, block.units):
        state[f"{name}.weight"], state[f"{name}.bias"] = fold_batchnorm(unit.conv, unit.bn)
    return FastInception.from_state_dict(block.spec, state, backend=backend).eval()
