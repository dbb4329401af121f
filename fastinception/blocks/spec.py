"""The channel configuration of one Inception block, validated once and immutable."""
from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence

from .program import BlockProgram
from .programs import googlenet_block


@dataclasses.dataclass(frozen=True)
class InceptionSpec:
    """Channels and kernel sizes of an Inception block.

    Branch p1 is a 1x1 conv to ``c1``; p2 reduces to ``c2a`` then a ``k2 x k2`` conv to ``c2b``; p3 reduces to
    ``c3a`` then a ``k3 x k3`` conv to ``c3b``; p4 max-pools 3x3 then a 1x1 conv to ``c4``. The output
    concatenates p1..p4 along channels.
    """

    in_channels: int
    c1: int
    c2a: int
    c2b: int
    c3a: int
    c3b: int
    c4: int
    k2: int = 3
    k3: int = 5

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"Inception {field.name} must be a positive integer, got {value!r}")
            if value <= 0:
                raise ValueError(f"Inception {field.name} must be a positive integer, got {value!r}")
            object.__setattr__(self, field.name, int(value))
        for name in ("k2", "k3"):
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"Inception {name} must be an odd kernel size, got {getattr(self, name)}")

    @classmethod
    def from_args(cls, in_channels, c1, c2: Sequence[int], c3: Sequence[int], c4, *, k2=3, k3=5) -> InceptionSpec:
        """Build a spec from the d2l constructor arguments ``(in_channels, c1, (c2a, c2b), (c3a, c3b), c4)``."""
        c2a, c2b = _pair("c2", c2)
        c3a, c3b = _pair("c3", c3)
        return cls(in_channels, c1, c2a, c2b, c3a, c3b, c4, k2, k3)

    @property
    def out_channels(self) -> int:
        return self.c1 + self.c2b + self.c3b + self.c4

    @property
    def stem_channels(self) -> int:
        """Columns of the fused 1x1 GEMM that reads x: p1, then the p2 and p3 reductions."""
        return self.c1 + self.c2a + self.c3a

    @property
    def p1(self) -> slice:
        return slice(0, self.c1)

    @property
    def p2(self) -> slice:
        return slice(self.c1, self.c1 + self.c2b)

    @property
    def p3(self) -> slice:
        start = self.c1 + self.c2b
        return slice(start, start + self.c3b)

    @property
    def p4(self) -> slice:
        start = self.c1 + self.c2b + self.c3b
        return slice(start, start + self.c4)

    @property
    def program(self) -> BlockProgram:
        """The block as a block program (``programs.googlenet_block``): the description the later block types share;
        its conv slots are ``p1_1, p2_1, p2_2, p3_1, p3_2, p4_2`` in this order."""
        return googlenet_block(self.in_channels, self.c1, (self.c2a, self.c2b), (self.c3a, self.c3b), self.c4,
                               self.k2, self.k3)

    def args(self) -> tuple:
        """The d2l constructor arguments ``(in_channels, c1, (c2a, c2b), (c3a, c3b), c4)``."""
        return (self.in_channels, self.c1, (self.c2a, self.c2b), (self.c3a, self.c3b), self.c4)


def _pair(name: str, value) -> tuple:
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"Inception {name} must be a (reduce, out) pair of positive integers, got {value!r}") from None
    return a, b
