"""What ``convert`` did: the blocks it swapped, and the look-alikes it left alone with the reason."""
from __future__ import annotations

import dataclasses

from ..blocks.program import BlockProgram
from ..blocks.spec import InceptionSpec


@dataclasses.dataclass(frozen=True)
class ConvertedBlock:
    """A block replaced by a fused block.

    ``name`` is its qualified name in the model ("" for the model itself); ``style`` is ``"d2l"`` (submodules
    ``p1_1 .. p4_2``, weights copied) or ``"torchvision"`` (``branch1 .. branch4``, BatchNorm folded), both made
    ``FastInception`` with ``spec``, or ``"inception_v3"`` (torchvision's or pytorch-fid's A-E blocks, BatchNorm
    folded) or ``"timm"`` (timm's Inception-v4 and Inception-ResNet-v2 blocks, BatchNorm folded), made a
    ``ProgramBlock`` running ``spec``, the ``BlockProgram`` the probe found it computes.
    """

    name: str
    style: str
    spec: InceptionSpec | BlockProgram


@dataclasses.dataclass(frozen=True)
class SkippedBlock:
    """A module shaped almost like an Inception block that could not be replaced exactly; left as it was."""

    name: str
    style: str
    reason: str


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    converted: tuple = ()
    skipped: tuple = ()

    @property
    def converted_names(self) -> list:
        return [b.name for b in self.converted]

    @property
    def skipped_names(self) -> list:
        return [b.name for b in self.skipped]

    def __str__(self) -> str:
        lines = [f"converted {len(self.converted)} block(s), left {len(self.skipped)} look-alike(s) alone"]
        for b in self.converted:
            s = b.spec
            what = f"k2={s.k2}, k3={s.k3}" if isinstance(s, InceptionSpec) else s.name
            lines.append(
                f"  converted {b.name or '<model>'} ({b.style}): {s.in_channels} -> {s.out_channels} channels, {what}"
            )
        for b in self.skipped:
            lines.append(f"  skipped   {b.name or '<model>'} ({b.style}): {b.reason}")
        return "\n".join(lines)
