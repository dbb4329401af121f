"""A block program: what any Inception block computes, as an immutable, hashable description.

A block is its branches in concat order. Each branch is a chain of ops (convs and pools) applied to the block's
input, optionally ending in a split: parallel convs on the chain's output, written to adjacent channel slices (v3's
E block). An Inception-ResNet block adds a residual: a 1x1 projection of the concatenation, scaled and added to the
input. Weights are kept beside the program, never in it: one (weight, bias) pair per conv, in ``conv_slots()``
order (each branch's chain, then its split, branch after branch, then the residual projection), which is also the
order in which torchvision and pytorch-fid define their blocks' convs.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import numbers
from collections.abc import Iterator


def _pair(name: str, value, minimum: int) -> tuple[int, int]:
    """``value`` as an (h, w) pair of ints >= ``minimum``; an int stands for both."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, tuple) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum for v in value)):
        raise ValueError(f"{name} must be an int or an (h, w) pair of ints >= {minimum}, got {value!r}")
    return int(value[0]), int(value[1])


def _out_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool = False) -> int:
    """PyTorch's output length of a conv or pool along one dimension (ceil_mode as ``nn.MaxPool2d`` has it)."""
    span = size + 2 * padding - kernel
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    # PyTorch drops a last window that would start in the right padding
    return out - 1 if (out - 1) * stride >= size + padding else out


@dataclasses.dataclass(frozen=True)
class Conv:
    """A convolution with bias, then ReLU unless ``relu`` is False (BatchNorm folded into weight and bias)."""

    out_channels: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    relu: bool = True

    def __post_init__(self):
        if (isinstance(self.out_channels, bool) or not isinstance(self.out_channels, numbers.Integral)
                or self.out_channels <= 0):
            raise ValueError(f"Conv out_channels must be a positive integer, got {self.out_channels!r}")
        object.__setattr__(self, "out_channels", int(self.out_channels))
        object.__setattr__(self, "kernel", _pair("Conv kernel", self.kernel, 1))
        object.__setattr__(self, "stride", _pair("Conv stride", self.stride, 1))
        object.__setattr__(self, "padding", _pair("Conv padding", self.padding, 0))
        if not isinstance(self.relu, bool):
            raise ValueError(f"Conv relu must be a bool, got {self.relu!r}")

    @property
    def pointwise(self) -> bool:
        """A 1x1 conv with stride 1 and no padding: a plain GEMM over pixels, which a fused plan can merge."""
        return self.kernel == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0)

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        return (_out_size(h, self.kernel[0], self.stride[0], self.padding[0]),
                _out_size(w, self.kernel[1], self.stride[1], self.padding[1]))


@dataclasses.dataclass(frozen=True)
class Pool:
    """A max or average pool, with PyTorch's ``count_include_pad`` (average only) and ``ceil_mode``."""

    kind: str
    kernel: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    count_include_pad: bool = True
    ceil_mode: bool = False

    def __post_init__(self):
        if self.kind not in ("max", "avg"):
            raise ValueError(f"Pool kind must be 'max' or 'avg', got {self.kind!r}")
        object.__setattr__(self, "kernel", _pair("Pool kernel", self.kernel, 1))
        object.__setattr__(self, "stride", _pair("Pool stride", self.stride, 1))
        object.__setattr__(self, "padding", _pair("Pool padding", self.padding, 0))
        for name in ("count_include_pad", "ceil_mode"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Pool {name} must be a bool, got {getattr(self, name)!r}")
        if self.kind == "max" and not self.count_include_pad:
            raise ValueError("count_include_pad applies to average pools only")
        if any(2 * p > k for p, k in zip(self.padding, self.kernel)):
            raise ValueError(f"Pool padding must be at most half the kernel (as PyTorch requires), got "
                             f"padding {self.padding} for kernel {self.kernel}")

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        return (_out_size(h, self.kernel[0], self.stride[0], self.padding[0], self.ceil_mode),
                _out_size(w, self.kernel[1], self.stride[1], self.padding[1], self.ceil_mode))


@dataclasses.dataclass(frozen=True)
class Branch:
    """A chain of ops on the block's input, then optionally a split: parallel convs on the chain's output whose
    results go to adjacent channel slices, in order. A branch with no ops at all would copy the input, which no
    Inception block does, so a branch has at least one op or split conv."""

    ops: tuple[Conv | Pool, ...] = ()
    split: tuple[Conv, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "split", tuple(self.split))
        for op in self.ops:
            if not isinstance(op, (Conv, Pool)):
                raise ValueError(f"a branch's ops are Conv or Pool, got {op!r}")
        for conv in self.split:
            if not isinstance(conv, Conv):
                raise ValueError(f"a split holds Conv ops only, got {conv!r}")
        if not self.ops and not self.split:
            raise ValueError("a branch needs at least one op")
        if len(self.split) == 1:
            raise ValueError("a split needs two or more convs (one conv belongs in the chain)")

    def out_channels(self, in_channels: int) -> int:
        channels = in_channels
        for op in self.ops:
            if isinstance(op, Conv):
                channels = op.out_channels
        return sum(c.out_channels for c in self.split) if self.split else channels

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        for op in self.ops:
            h, w = op.out_size(h, w)
        if self.split:
            sizes = {conv.out_size(h, w) for conv in self.split}
            if len(sizes) != 1:
                raise ValueError(f"the convs of a split give different sizes {sorted(sizes)} on {h}x{w}")
            (h, w), = sizes
        return h, w


@dataclasses.dataclass(frozen=True)
class Residual:
    """Inception-ResNet's end: ``relu?(x + scale * conv1x1(concat) )``, the 1x1 conv with bias mapping the
    concatenation back to the input's channels."""

    scale: float
    relu: bool = True

    def __post_init__(self):
        if isinstance(self.scale, bool) or not isinstance(self.scale, numbers.Real):
            raise ValueError(f"Residual scale must be a number, got {self.scale!r}")
        object.__setattr__(self, "scale", float(self.scale))
        if not isinstance(self.relu, bool):
            raise ValueError(f"Residual relu must be a bool, got {self.relu!r}")


@dataclasses.dataclass(frozen=True)
class ConvSlot:
    """One conv of a program with what its weights need: (out_channels, in_channels, kh, kw) and (out_channels,)."""

    branch: int  # index of the branch; len(branches) for the residual projection
    in_channels: int
    conv: Conv

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.conv.out_channels, self.in_channels, *self.conv.kernel)


@dataclasses.dataclass(frozen=True)
class BlockProgram:
    """An Inception block: ``in_channels``, its branches in concat order, and an optional residual."""

    in_channels: int
    branches: tuple[Branch, ...]
    residual: Residual | None = None
    name: str = ""

    def __post_init__(self):
        if (isinstance(self.in_channels, bool) or not isinstance(self.in_channels, numbers.Integral)
                or self.in_channels <= 0):
            raise ValueError(f"in_channels must be a positive integer, got {self.in_channels!r}")
        object.__setattr__(self, "in_channels", int(self.in_channels))
        object.__setattr__(self, "branches", tuple(self.branches))
        if not self.branches or not all(isinstance(b, Branch) for b in self.branches):
            raise ValueError(f"a block program needs one or more Branch, got {self.branches!r}")
        if self.residual is not None and not isinstance(self.residual, Residual):
            raise ValueError(f"residual must be a Residual or None, got {self.residual!r}")
        # Not a field (equality and hashing ignore it): the program as the custom ops take it, kept here so that
        # torch.compile reads a constant instead of tracing the encoder.
        object.__setattr__(self, "text", _to_text(self))

    @staticmethod
    def from_text(text: str) -> BlockProgram:
        """The program whose ``text`` this is (cached: the custom ops decode it on every call)."""
        return _from_text(text)

    @property
    def branch_channels(self) -> tuple[int, ...]:
        return tuple(b.out_channels(self.in_channels) for b in self.branches)

    @property
    def concat_channels(self) -> int:
        return sum(self.branch_channels)

    @property
    def out_channels(self) -> int:
        return self.in_channels if self.residual is not None else self.concat_channels

    @property
    def slices(self) -> tuple[slice, ...]:
        """Each branch's channel slice of the concatenation."""
        out, start = [], 0
        for c in self.branch_channels:
            out.append(slice(start, start + c))
            start += c
        return tuple(out)

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        """The output's (H, W) for an (h, w) input; ValueError when the branches disagree or it is empty."""
        sizes = [b.out_size(h, w) for b in self.branches]
        if len(set(sizes)) != 1:
            raise ValueError(f"{self.name or 'block'}: its branches give different sizes {sizes} on a {h}x{w} "
                             f"input, so they cannot be concatenated")
        size = sizes[0]
        if min(size) <= 0:
            raise ValueError(f"{self.name or 'block'}: a {h}x{w} input is too small (output {size[0]}x{size[1]})")
        if self.residual is not None and size != (h, w):
            raise ValueError(f"{self.name or 'block'}: a residual block must keep the size, {h}x{w} -> {size}")
        return size

    def conv_slots(self) -> tuple[ConvSlot, ...]:
        """Every conv in weight order, with its input channels."""
        return tuple(self._slots())

    def _slots(self) -> Iterator[ConvSlot]:
        for i, branch in enumerate(self.branches):
            channels = self.in_channels
            for op in branch.ops:
                if isinstance(op, Conv):
                    yield ConvSlot(i, channels, op)
                    channels = op.out_channels
            for conv in branch.split:
                yield ConvSlot(i, channels, conv)
        if self.residual is not None:
            yield ConvSlot(len(self.branches), self.concat_channels, Conv(self.in_channels, relu=False))

    def check_weights(self, weights) -> None:
        """ValueError unless ``weights`` holds one (weight, bias) pair per conv slot, of the slot's shapes (a bias may
        be None: no bias)."""
        slots = self.conv_slots()
        weights = tuple(weights)
        if len(weights) != len(slots):
            raise ValueError(f"{self.name or 'block'} has {len(slots)} convs, got {len(weights)} (weight, bias) pairs")
        for k, (slot, pair) in enumerate(zip(slots, weights)):
            if len(pair) != 2:
                raise ValueError(f"conv {k}: expected a (weight, bias) pair, got {len(pair)} tensors")
            w, b = pair
            if tuple(w.shape) != slot.weight_shape or b is not None and tuple(b.shape) != (slot.conv.out_channels,):
                got = "None" if b is None else tuple(b.shape)
                raise ValueError(f"conv {k} of {self.name or 'block'} (branch {slot.branch}): expected weight "
                                 f"{slot.weight_shape} and bias ({slot.conv.out_channels},) or None, got "
                                 f"{tuple(w.shape)} and {got}")


def _op_fields(op: Conv | Pool) -> list:
    return [type(op).__name__, *(getattr(op, f.name) for f in dataclasses.fields(op))]


def _to_text(program: BlockProgram) -> str:
    """A compact JSON form of every field, ops tagged with their type."""
    branches = [[[_op_fields(op) for op in b.ops], [_op_fields(c) for c in b.split]] for b in program.branches]
    residual = None if program.residual is None else [program.residual.scale, program.residual.relu]
    return json.dumps([program.in_channels, branches, residual, program.name], separators=(",", ":"))


@functools.cache
def _from_text(text: str) -> BlockProgram:
    def op(fields):
        kind, *values = fields
        values = [tuple(v) if isinstance(v, list) else v for v in values]
        return {"Conv": Conv, "Pool": Pool}[kind](*values)

    in_channels, branches, residual, name = json.loads(text)
    return BlockProgram(in_channels, tuple(Branch(tuple(map(op, ops)), tuple(map(op, split)))
                                           for ops, split in branches),
                        None if residual is None else Residual(*residual), name)
