"""Input, parameter and ``out=`` checks, run once at the public boundary before any work: a refused call changes
nothing, not even the caller's ``out``.

Everything here reads only types, shapes, strides, dtypes and devices, so it also runs inside a graph that
``torch.compile`` traces (``fullgraph=True``).
"""
from __future__ import annotations

import functools

import torch

from .blocks.params import BlockParams
from .blocks.spec import InceptionSpec
from .ops.overlap import has_internal_overlap

# Where each parameter lives in the reference block, for error messages.
PARAMETER_NAMES = {
    "w1": "p1_1.weight", "b1": "p1_1.bias", "w2a": "p2_1.weight", "b2a": "p2_1.bias",
    "w2b": "p2_2.weight", "b2b": "p2_2.bias", "w3a": "p3_1.weight", "b3a": "p3_1.bias",
    "w3b": "p3_2.weight", "b3b": "p3_2.bias", "w4": "p4_2.weight", "b4": "p4_2.bias",
}


def expected_shapes(spec: InceptionSpec) -> BlockParams:
    """The shape of each of the twelve parameters of a block of ``spec``: cached for eager calls; Dynamo traces
    the plain function (it would warn about, and step over, the cache)."""
    if torch.compiler.is_compiling():
        return _shapes_of(spec)
    return _cached_shapes_of(spec)


def _shapes_of(spec: InceptionSpec) -> BlockParams:
    s = spec
    return BlockParams(
        (s.c1, s.in_channels, 1, 1), (s.c1,),
        (s.c2a, s.in_channels, 1, 1), (s.c2a,), (s.c2b, s.c2a, s.k2, s.k2), (s.c2b,),
        (s.c3a, s.in_channels, 1, 1), (s.c3a,), (s.c3b, s.c3a, s.k3, s.k3), (s.c3b,),
        (s.c4, s.in_channels, 1, 1), (s.c4,),
    )


_cached_shapes_of = functools.cache(_shapes_of)


def check_params(params, spec: InceptionSpec) -> None:
    """Twelve tensors with the shapes ``spec`` gives them: a block whose parameters disagree with its spec would
    write some output channels twice and others never."""
    if not isinstance(params, BlockParams):
        raise TypeError(f"params must be a fastinception.BlockParams, got {type(params).__name__}")
    for name, p, shape in zip(BlockParams._fields, params, expected_shapes(spec)):
        where = f"{name} ({PARAMETER_NAMES[name]})"
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"parameter {where} must be a torch.Tensor, got {type(p).__name__}")
        if tuple(p.shape) != shape:
            raise ValueError(f"parameter {where} must have shape {shape} for {spec}, got {tuple(p.shape)}")


def check_input(x: torch.Tensor, spec: InceptionSpec, params: BlockParams) -> None:
    """Raise a clear error when ``x`` cannot go through a block of ``spec`` with these parameters."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"Inception expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"Inception expects a 4-D input (N, C, H, W), got {x.dim()}-D with shape {tuple(x.shape)}")
    if x.shape[1] != spec.in_channels:
        raise ValueError(
            f"Inception expects {spec.in_channels} input channels, got {x.shape[1]} (input shape {tuple(x.shape)})"
        )
    if not (x.dtype.is_floating_point):
        raise TypeError(f"Inception expects a floating-point input, got {x.dtype}")
    for name, p in zip(BlockParams._fields, params):
        where = f"{name} ({PARAMETER_NAMES[name]})"
        if p.dtype != x.dtype:
            raise TypeError(f"Inception input dtype {x.dtype} differs from the dtype {p.dtype} of parameter {where}")
        if p.device != x.device:
            raise RuntimeError(f"Inception input is on {x.device} but parameter {where} is on {p.device}")


def check_transforms(x: torch.Tensor, params: BlockParams, backend: str, block: str = "FastInception") -> bool:
    """Refuse, with a clear error, the torch.func transforms the block cannot run under: vmap (its output buffer
    cannot be batched), and every transform on the triton backend (its autograd Function has no functorch rules).
    torch.func.grad and jvp work on the torch backend: returns whether one is running. Not checked while
    torch.compile traces (the query is opaque to Dynamo, and a compiled graph sees plain tensors). ``block`` names
    the block in the errors."""
    if torch.compiler.is_compiling():
        return False
    functorch = torch._C._functorch
    tensors = (x, *params)
    if any(functorch.is_batchedtensor(t) for t in tensors):
        hint = ", or vmap the reference fastinception.Inception" if block == "FastInception" else ""
        raise RuntimeError(f"{block} does not support torch.func.vmap: call it on the whole batch{hint}")
    transformed = any(functorch.is_functorch_wrapped_tensor(t) for t in tensors)
    if backend == "triton" and transformed:
        raise RuntimeError(f"the triton backend of {block} does not support torch.func transforms (grad, jvp, vmap); "
                           "use backend='torch', or torch.autograd for gradients")
    return transformed


def check_out(out: torch.Tensor, x: torch.Tensor, spec: InceptionSpec) -> None:
    """Raise a clear error when ``out`` cannot receive the block's result for ``x``.

    ``out`` may share memory with ``x``: the plans read all of ``x`` before they write (the torch plan) or compute
    into a fresh buffer when the two share an element (the triton ops), so the result is ``block(x)`` either way.
    """
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor, got {type(out).__name__}")
    expected = (x.shape[0], spec.out_channels, x.shape[2], x.shape[3])
    if tuple(out.shape) != expected:
        raise ValueError(f"out must have shape {expected}, got {tuple(out.shape)}")
    if out.dtype != x.dtype:
        raise TypeError(f"out must have dtype {x.dtype} (the input's), got {out.dtype}")
    if out.device != x.device:
        raise RuntimeError(f"out must be on {x.device} (the input's device), got {out.device}")
    if out.requires_grad and out.is_leaf:
        raise RuntimeError("out must not be a leaf tensor that requires grad (it is written in place)")
    if has_internal_overlap(out):
        raise ValueError(f"out must not have elements that share memory (strides {out.stride()})")
