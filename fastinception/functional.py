"""Functional form of the fused Inception block: ``inception(x, params, spec, backend=..., out=...)``."""
from __future__ import annotations

import torch

from .params import BlockParams
from .spec import InceptionSpec
from .torch_backend import inception_torch
from .validation import check_input, check_out, memory_format_of

BACKENDS = ("auto", "torch")


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return name


def resolve_backend(name: str, x: torch.Tensor) -> str:
    """The backend that runs for ``x``: ``auto`` picks the fused PyTorch path."""
    check_backend(name)
    if name == "auto":
        return "torch"
    return name


def inception(
    x: torch.Tensor,
    params: BlockParams,
    spec: InceptionSpec,
    *,
    backend: str = "auto",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run one Inception block on ``x`` (N, Cin, H, W).

    The result has ``spec.out_channels`` channels in ``x``'s memory format, or is written into ``out`` (a
    tensor or a channel slice of a larger one, of the right shape, dtype and device) and ``out`` is returned.
    """
    check_input(x, spec, params.w1)
    if out is None:
        out = torch.empty(
            (x.shape[0], spec.out_channels, x.shape[2], x.shape[3]),
            dtype=x.dtype,
            device=x.device,
            memory_format=memory_format_of(x),
        )
    else:
        check_out(out, x, spec)
    if x.shape[0] == 0:
        return out
    return inception_torch(x, params, spec, out)
