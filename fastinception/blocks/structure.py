"""Recognising Inception blocks by structure: checks that return what they found or say why they refuse.

Used by ``FastInception.from_module`` (the reference's d2l shape) and by ``convert`` (every shape it knows).
"""
from __future__ import annotations

import re

from torch import nn
from torch.nn.utils import parametrize

from .spec import InceptionSpec


class NotConvertible(Exception):
    """A module looks like an Inception block but cannot be replaced exactly; the message says why."""


def pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def child(module: nn.Module, name: str, where: str) -> nn.Module:
    """The submodule ``name`` of ``module``; refuses when it is missing or not a module."""
    sub = getattr(module, name, None)
    if not isinstance(sub, nn.Module):
        raise NotConvertible(f"{where}: no submodule {name!r}")
    return sub


def only_children(module: nn.Module, allowed: set, where: str) -> None:
    """Refuse submodules the recogniser does not know, and parameters or buffers of the module's own: the forward
    could use them in ways structure cannot show.

    ``nn.ReLU`` modules are accepted under any name: ReLU is the block's own activation.
    """
    own = [f"{kind} {name}" for kind, members in (("parameter", module._parameters), ("buffer", module._buffers))
           for name, t in members.items() if t is not None]
    if own:
        raise NotConvertible(f"{where}: {', '.join(own)} of its own")
    extra = [name for name, m in module.named_children() if name not in allowed and type(m) is not nn.ReLU]
    if extra:
        found = ", ".join(f"{n} ({type(getattr(module, n)).__name__})" for n in extra)
        raise NotConvertible(f"{where}: unexpected submodule(s) {found}")


# Where a module keeps each kind of hook, and the name a refusal gives it.
HOOKS = (
    ("_forward_pre_hooks", "forward pre-hook"),
    ("_forward_hooks", "forward hook"),
    ("_backward_pre_hooks", "backward pre-hook"),
    ("_backward_hooks", "backward hook"),
)


def _qualified(where: str, name: str) -> str:
    """``branch2.1.conv`` as ``branch2[1].conv``, the way the other refusals name units; ``where`` for the root."""
    return re.sub(r"\.(\d+)", r"[\1]", name) if name else where


def no_hooks(module: nn.Module, where: str) -> None:
    """Refuse a block in which any module has a hook or a parametrization.

    The fused block makes no call to the block's submodules, so their hooks would stop running (a hook receives
    the module it hooks, which no longer runs); pruning and hook-based weight norm recompute ``weight`` from other
    tensors in a forward pre-hook, and a parametrization on every access.
    """
    for name, m in module.named_modules():
        here = _qualified(where, name)
        if parametrize.is_parametrized(m):
            raise NotConvertible(f"{here}: parametrized ({', '.join(m.parametrizations)})")
        for attr, kind in HOOKS:
            for hook in (getattr(m, attr, None) or {}).values():
                if kind == "backward hook" and getattr(m, "_is_full_backward_hook", False):
                    kind = "full backward hook"
                raise NotConvertible(f"{here}: {kind} ({getattr(hook, '__name__', None) or type(hook).__name__})")


def only_tensors(module: nn.Module, names: tuple, where: str) -> None:
    """Refuse parameters or buffers besides ``names`` (which must be tensors the module registered): the
    recogniser copies those alone, and the module's state_dict would not fit the fused block's."""
    extra = [f"{kind} {name}" for kind, members in (("parameter", module._parameters), ("buffer", module._buffers))
             for name, t in members.items() if name not in names and t is not None]
    if extra:
        raise NotConvertible(f"{where}: {', '.join(extra)} besides {', '.join(names[:-1])} and {names[-1]}")
    missing = [name for name in names if name not in module._parameters and name not in module._buffers]
    if missing:
        raise NotConvertible(f"{where}: {', '.join(missing)} not registered as a parameter or buffer")


def same_conv(conv: nn.Module, in_channels: int, where: str, *, bias: bool | None = True) -> int:
    """Kernel size of a stride-1 'same' ``nn.Conv2d`` reading ``in_channels``; refuses anything else.

    ``bias``: True requires a bias, False forbids one, None accepts either.
    """
    if type(conv) is not nn.Conv2d:
        raise NotConvertible(f"{where}: {type(conv).__name__}, expected nn.Conv2d")
    only_tensors(conv, ("weight", "bias"), where)
    if conv.in_channels != in_channels:
        raise NotConvertible(f"{where}: reads {conv.in_channels} channels, the block gives it {in_channels}")
    if bias is True and conv.bias is None:
        raise NotConvertible(f"{where}: no bias")
    if bias is False and conv.bias is not None:
        raise NotConvertible(f"{where}: has a bias")
    k, kw = pair(conv.kernel_size)
    if k != kw or k % 2 == 0:
        raise NotConvertible(f"{where}: kernel {k}x{kw}, expected an odd square kernel")
    padding = (k // 2, k // 2) if conv.padding == "same" else pair(conv.padding)
    for what, got, want in (
        ("stride", pair(conv.stride), (1, 1)),
        ("dilation", pair(conv.dilation), (1, 1)),
        ("groups", conv.groups, 1),
        ("padding_mode", conv.padding_mode, "zeros"),
        ("padding", padding, (k // 2, k // 2)),
    ):
        if got != want:
            raise NotConvertible(f"{where}: {what} {got}, expected {want}")
    return k


def pool3x3(pool: nn.Module, where: str) -> None:
    """Refuse anything but a 3x3 stride-1 padding-1 max-pool.

    With stride 1 and padding 1, ceil_mode cannot change the output size, so both settings are accepted.
    """
    if type(pool) is not nn.MaxPool2d:
        raise NotConvertible(f"{where}: {type(pool).__name__}, expected nn.MaxPool2d")
    for what, got, want in (
        ("kernel_size", pair(pool.kernel_size), (3, 3)),
        ("stride", pair(pool.stride), (1, 1)),
        ("padding", pair(pool.padding), (1, 1)),
        ("dilation", pair(pool.dilation), (1, 1)),
        ("return_indices", pool.return_indices, False),
    ):
        if got != want:
            raise NotConvertible(f"{where}: max-pool {what} {got}, expected {want}")


def one_place(tensors, where: str) -> None:
    """Refuse a block whose tensors do not share one dtype and device: the fused block holds them together."""
    places = {(t.dtype, t.device) for t in tensors}
    if len(places) != 1:
        found = ", ".join(sorted(f"{d} on {dev}" for d, dev in places))
        raise NotConvertible(f"{where}: parameters in more than one dtype/device ({found})")


D2L_NAMES = ("p1_1", "p2_1", "p2_2", "p3_1", "p3_2", "p4_1", "p4_2")


def looks_like_d2l_inception(module: nn.Module) -> bool:
    """True for any module with submodules ``p1_1 .. p4_2``: a candidate, reported when it fails."""
    return all(isinstance(getattr(module, name, None), nn.Module) for name in D2L_NAMES)


def d2l_spec_of(module: nn.Module) -> InceptionSpec:
    """The spec of a d2l-shaped Inception block; raises ``NotConvertible`` saying why it is not one."""
    only_children(module, set(D2L_NAMES), "block")
    no_hooks(module, "block")
    p1_1, p2_1, p2_2, p3_1, p3_2, p4_1, p4_2 = (child(module, n, "block") for n in D2L_NAMES)
    if type(p1_1) is not nn.Conv2d:
        raise NotConvertible(f"p1_1: {type(p1_1).__name__}, expected nn.Conv2d")
    cin = p1_1.in_channels
    for conv, name in ((p1_1, "p1_1"), (p2_1, "p2_1"), (p3_1, "p3_1"), (p4_2, "p4_2")):
        k = same_conv(conv, cin, name)
        if k != 1:
            raise NotConvertible(f"{name}: kernel {k}x{k}, expected 1x1")
    pool3x3(p4_1, "p4_1")
    k2 = same_conv(p2_2, p2_1.out_channels, "p2_2")
    k3 = same_conv(p3_2, p3_1.out_channels, "p3_2")
    one_place([t for m in (p1_1, p2_1, p2_2, p3_1, p3_2, p4_2) for t in (m.weight, m.bias)], "block")
    return InceptionSpec(
        cin, p1_1.out_channels, p2_1.out_channels, p2_2.out_channels, p3_1.out_channels, p3_2.out_channels,
        p4_2.out_channels, k2, k3,
    )
