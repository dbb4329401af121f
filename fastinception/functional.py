"""Functional form of the fused Inception block: ``inception(x, params, spec, backend=..., out=...)``."""
from __future__ import annotations

import torch

from .autocast import autocast_dtype, cast_for_autocast
from .blocks.params import BlockParams
from .blocks.spec import InceptionSpec
from .ops.layout import empty_in_layout_of
from .ops.streams import check_branch_mode
from .ops.torch_plan import inception_torch
from .ops.triton_function import inception_triton
from .validation import check_input, check_out, check_params, check_transforms

BACKENDS = ("auto", "torch", "triton")


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return name


def resolve_backend(name: str, x: torch.Tensor) -> str:
    """The backend that runs for ``x``: ``auto`` picks triton for CUDA tensors and torch elsewhere."""
    check_backend(name)
    if name == "auto":
        return "triton" if x.is_cuda else "torch"
    return name


def copies_into_out(out: torch.Tensor | None) -> bool:
    """Whether a block gives its result to ``out=`` by a copy instead of writing it in place: under torch.compile
    when autograd tracks ``out`` (a slice of a buffer in the graph). Compiled graphs lose the zero gradient that an
    in-place write gives the values it overwrites (an autograd Function marking a view dirty), which ``copy_``
    keeps; eager writes in place."""
    return out is not None and out.requires_grad and torch.is_grad_enabled() and torch.compiler.is_compiling()


def inception(
    x: torch.Tensor,
    params: BlockParams,
    spec: InceptionSpec,
    *,
    backend: str = "auto",
    out: torch.Tensor | None = None,
    deterministic: bool = True,
    branches: str = "streams",
) -> torch.Tensor:
    """Run one Inception block on ``x`` (N, Cin, H, W).

    The result has ``spec.out_channels`` channels in ``x``'s memory format, or is written into ``out`` (a
    tensor or a channel slice of a larger one, of the right shape, dtype and device) and ``out`` is returned.
    ``backend``: ``"auto"`` (triton on CUDA, torch elsewhere), ``"torch"`` or ``"triton"``. ``deterministic=False``
    lets the triton backward use float atomics in its weight-gradient reductions (faster, not bitwise repeatable);
    ``branches`` says how the triton backend launches the two spatial branches: ``"streams"`` (two side CUDA
    streams), ``"serial"`` (one after the other on the caller's stream) or ``"grouped"`` (one launch for both;
    forward only, the backward then runs serially).
    """
    check_params(params, spec)
    if isinstance(x, torch.Tensor) and (dtype := autocast_dtype(x)) is not None:
        x, params = cast_for_autocast(x, params, dtype)
        with torch.autocast(x.device.type, enabled=False):
            return inception(x, params, spec, backend=backend, out=out, deterministic=deterministic, branches=branches)
    check_input(x, spec, params)
    check_branch_mode(branches)
    plan = resolve_backend(backend, x)
    transformed = check_transforms(x, params, plan)
    if out is None:
        out = empty_in_layout_of(x, (x.shape[0], spec.out_channels, x.shape[2], x.shape[3]))
    else:
        check_out(out, x, spec)
        if copies_into_out(out):
            return out.copy_(inception(x, params, spec, backend=backend, deterministic=deterministic,
                                       branches=branches))
    # Nothing to launch for an empty batch; the PyTorch ops still give it an autograd graph.
    if x.shape[0] != 0 and plan == "triton":
        return inception_triton(x, params, out, deterministic=deterministic, branches=branches)
    return inception_torch(x, params, spec, out, transformed)
