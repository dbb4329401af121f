"""What the benchmarks compare: ways to run a reference-shaped model (one Inception block, or GoogLeNet).

Each contender builds, from the reference model (already in the benchmark's dtype and device), the module it
times, and names the memory format its input arrives in. FastInception contenders convert a copy of the
reference, so every contender computes with the same weights.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Callable

import torch
from torch import nn

from .convert import convert

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str
    label: str
    # (reference model, layout) -> the module to call; its parameters carry the reference's names.
    build: Callable[[nn.Module, str], nn.Module]
    # A fixed input layout, or None for the run's layout (--layout).
    layout: str | None = None
    compiled: bool = False

    def layout_for(self, run_layout: str) -> str:
        return self.layout or run_layout


def _in_layout(model: nn.Module, layout: str) -> nn.Module:
    return copy.deepcopy(model).to(memory_format=LAYOUTS[layout])


def _compiled(mode: str | None):
    def build(model: nn.Module, layout: str) -> nn.Module:
        # Static shapes: each batch size gets kernels specialised for it, as a deployed model would.
        return torch.compile(_in_layout(model, layout), mode=mode, dynamic=False)

    return build


def _fast(backend: str):
    def build(model: nn.Module, layout: str) -> nn.Module:
        return convert(_in_layout(model, layout), backend=backend)

    return build


CONTENDERS = {
    c.name: c
    for c in (
        Contender("eager-nchw", "eager NCHW", lambda m, layout: m, layout="nchw"),
        Contender("eager-cl", "eager channels_last", _in_layout, layout="channels_last"),
        Contender("compile", "torch.compile", _compiled(None), compiled=True),
        Contender("compile-max", "torch.compile max-autotune", _compiled("max-autotune"), compiled=True),
        Contender("fast-triton", "FastInception triton", _fast("triton")),
        Contender("fast-torch", "FastInception torch", _fast("torch")),
    )
}

# The contender whose speed-up over the others is reported: the first of these that runs.
OURS_ON_GPU = ("fast-triton", "fast-torch")
OURS_ON_CPU = ("fast-torch",)


def parameters_by_reference_names(module: nn.Module, reference: nn.Module) -> list[torch.Tensor]:
    """``module``'s parameters in the order of ``reference.named_parameters()`` (compiled wrappers unwrapped)."""
    inner = getattr(module, "_orig_mod", module)
    own = dict(inner.named_parameters())
    return [own[name] for name, _ in reference.named_parameters()]
