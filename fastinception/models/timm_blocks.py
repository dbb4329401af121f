"""The blocks of timm's Inception-v4 and Inception-ResNet-v2 as fused modules: timm's submodule names and state_dict,
computed by their block program.

timm builds each block from ``ConvNormAct`` units (conv without bias, BatchNorm eps 1e-3, ReLU), which ``ConvBN``
stands for with the same state_dict names (``conv.weight``, ``bn.weight``, ``bn.running_mean``, ...). A branch is one
submodule (a unit, a pool, or an ``nn.Sequential`` of them) or, in ``InceptionC``, several units under flat names;
an Inception-ResNet block adds the projection ``conv2d`` (a 1x1 conv with bias, no BatchNorm) and its activation
module. The pools are kept as timm's modules for their names only: the program computes the block
(``program_block.run_with_batchnorm``: BatchNorm folded on every call on the triton backend in eval mode, each
unit's BatchNorm and ReLU as its conv's epilogue in training mode, the projection without either).
"""
from __future__ import annotations

import torch
from torch import nn

from ..blocks.program import BlockProgram, Conv, Pool
from ..functional import check_backend
from ..program_block import run_with_batchnorm
from ..v3_blocks import ConvBN

_BRANCHES_2 = ("branch0", "branch1")
_BRANCHES_3 = ("branch0", "branch1", "branch2")
_BRANCHES_4 = ("branch0", "branch1", "branch2", "branch3")

# block type (its program's name) -> (where each branch lives, the name of the residual's activation module). A
# name holds the whole branch; a tuple names one unit per conv of the branch (timm's InceptionC).
TIMM_LAYOUTS = {
    "Mixed3a": (("maxpool", "conv"), None),
    "Mixed4a": (_BRANCHES_2, None),
    "Mixed5a": (("conv", "maxpool"), None),
    "InceptionA": (_BRANCHES_4, None),
    "ReductionA": (_BRANCHES_3, None),
    "InceptionB": (_BRANCHES_4, None),
    "ReductionB": (_BRANCHES_3, None),
    "InceptionC": (("branch0", ("branch1_0", "branch1_1a", "branch1_1b"),
                    ("branch2_0", "branch2_1", "branch2_2", "branch2_3a", "branch2_3b"), "branch3"), None),
    "Mixed_5b": (_BRANCHES_4, None),
    "Block35": (_BRANCHES_3, "act"),
    "Mixed_6a": (_BRANCHES_3, None),
    "Block17": (_BRANCHES_2, "act"),
    "Mixed_7a": (_BRANCHES_4, None),
    "Block8": (_BRANCHES_2, "relu"),
    "Block8/last": (_BRANCHES_2, None),
}


def pool_module(pool: Pool) -> nn.Module:
    if pool.kind == "max":
        return nn.MaxPool2d(pool.kernel, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)
    return nn.AvgPool2d(pool.kernel, pool.stride, pool.padding, ceil_mode=pool.ceil_mode,
                        count_include_pad=pool.count_include_pad)


class TimmBlock(nn.Module):
    """A block of timm's networks: ``program`` (named by its timm block type, see ``TIMM_LAYOUTS``) with a ``ConvBN``
    per conv where timm's block has its ``ConvNormAct``, and for Inception-ResNet the projection ``conv2d``."""

    def __init__(self, program: BlockProgram, *, backend: str = "auto", device=None, dtype=None):
        super().__init__()
        if program.name not in TIMM_LAYOUTS:
            raise ValueError(f"no timm layout for a program named {program.name!r}; expected one of "
                             f"{sorted(TIMM_LAYOUTS)}")
        self.backend = check_backend(backend)
        self.program = program
        layout, act = TIMM_LAYOUTS[program.name]
        factory = {"device": device, "dtype": dtype}
        slots = iter(program.conv_slots())
        self._unit_paths = []  # dotted path of each conv slot's unit, in slot order

        def unit(path):
            slot = next(slots)
            self._unit_paths.append(path)
            c = slot.conv
            return ConvBN(slot.in_channels, c.out_channels, c.kernel, c.stride, c.padding, **factory)

        for branch, where in zip(program.branches, layout, strict=True):
            ops = (*branch.ops, *branch.split)
            if isinstance(where, tuple):  # one unit per conv, flat
                for name in where:
                    self.add_module(name, unit(name))
            elif len(ops) == 1:
                self.add_module(where, unit(where) if isinstance(ops[0], Conv) else pool_module(ops[0]))
            else:
                self.add_module(where, nn.Sequential(*(unit(f"{where}.{i}") if isinstance(op, Conv) else
                                                       pool_module(op) for i, op in enumerate(ops))))
        if program.residual is not None:
            slot = next(slots)
            self.conv2d = nn.Conv2d(slot.in_channels, slot.conv.out_channels, 1, **factory)
            if act is not None:
                self.add_module(act, nn.ReLU())
        if next(slots, None) is not None:
            raise ValueError(f"{program.name}: its layout leaves convs without a unit")

    @property
    def scale(self) -> float | None:
        """The residual's scale (timm's ``scale`` attribute), None for a block without a residual."""
        return None if self.program.residual is None else self.program.residual.scale

    def units(self) -> list[ConvBN]:
        return [self.get_submodule(path) for path in self._unit_paths]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        units = self.units()
        convs = [(u.conv.weight, None) for u in units]
        bns = [u.bn for u in units]
        if self.program.residual is not None:  # the projection: bias, no BatchNorm
            convs.append((self.conv2d.weight, self.conv2d.bias))
            bns.append(None)
        return run_with_batchnorm(self.program, convs, bns, x, self.backend, self.program.name)

    def extra_repr(self) -> str:
        p = self.program
        return f"{p.name}: {p.in_channels} -> {p.out_channels} channels, backend={self.backend!r}"
