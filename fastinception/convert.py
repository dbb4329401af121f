"""Swap reference-shaped Inception blocks inside any model for ``FastInception``, recognised by structure."""
from __future__ import annotations

from torch import nn

from .spec import InceptionSpec


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _same_conv(conv, in_channels: int) -> int | None:
    """Kernel size of a stride-1 'same' conv with bias reading ``in_channels``; None if it is anything else."""
    if type(conv) is not nn.Conv2d or conv.bias is None or conv.in_channels != in_channels:
        return None
    k, kw = _pair(conv.kernel_size)
    if k != kw or k % 2 == 0:
        return None
    padding = (k // 2, k // 2) if conv.padding == "same" else _pair(conv.padding)
    if (
        _pair(conv.stride) != (1, 1)
        or _pair(conv.dilation) != (1, 1)
        or conv.groups != 1
        or conv.padding_mode != "zeros"
        or padding != (k // 2, k // 2)
    ):
        return None
    return k


def _is_pool3x3(pool) -> bool:
    # With stride 1 and padding 1, ceil_mode cannot change the output size, so both settings are accepted.
    return (
        type(pool) is nn.MaxPool2d
        and _pair(pool.kernel_size) == (3, 3)
        and _pair(pool.stride) == (1, 1)
        and _pair(pool.padding) == (1, 1)
        and _pair(pool.dilation) == (1, 1)
        and not pool.return_indices
    )


def inception_spec_of(module: nn.Module) -> InceptionSpec | None:
    """The spec of a module shaped like d2l's Inception block (submodules ``p1_1 .. p4_2``), else None."""
    names = ("p1_1", "p2_1", "p2_2", "p3_1", "p3_2", "p4_1", "p4_2")
    if not all(isinstance(getattr(module, n, None), nn.Module) for n in names):
        return None
    p1_1, p2_1, p2_2, p3_1, p3_2, p4_1, p4_2 = (getattr(module, n) for n in names)
    if type(p1_1) is not nn.Conv2d:
        return None
    cin = p1_1.in_channels
    ks = [_same_conv(p1_1, cin), _same_conv(p2_1, cin), _same_conv(p3_1, cin), _same_conv(p4_2, cin)]
    if ks != [1, 1, 1, 1] or not _is_pool3x3(p4_1):
        return None
    k2 = _same_conv(p2_2, p2_1.out_channels)
    k3 = _same_conv(p3_2, p3_1.out_channels)
    if k2 is None or k3 is None:
        return None
    tensors = [t for m in (p1_1, p2_1, p2_2, p3_1, p3_2, p4_2) for t in (m.weight, m.bias)]
    if len({(t.dtype, t.device) for t in tensors}) != 1:
        return None
    return InceptionSpec(
        cin, p1_1.out_channels, p2_1.out_channels, p2_2.out_channels, p3_1.out_channels, p3_2.out_channels,
        p4_2.out_channels, k2, k3,
    )


def convert(model: nn.Module, *, backend: str = "auto") -> nn.Module:
    """Replace every reference-shaped Inception block in ``model`` by a ``FastInception``, in place.

    Weights, device, dtype and train/eval mode are kept. Returns ``model`` (or the new block when ``model``
    itself is a block, which cannot be replaced in place).
    """
    from .module import FastInception

    if isinstance(model, FastInception):
        return model
    if inception_spec_of(model) is not None:
        return FastInception.from_module(model, backend=backend)
    for name, child in model.named_children():
        new = convert(child, backend=backend)
        if new is not child:
            setattr(model, name, new)
    return model
