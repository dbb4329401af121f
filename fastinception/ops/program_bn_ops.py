"""The training-mode block program (BatchNorm with batch statistics after every conv, ``program_bn_triton``) as two
``torch.library`` custom ops, as ``program_triton_ops`` does for the folded one: opaque to ``torch.compile``.

The forward mutates ``out`` and the BatchNorms' running statistics (``running``: running_mean, running_var,
num_batches_tracked per conv slot, an empty tensor where a BatchNorm updates nothing) and returns a fixed tuple (x as
the kernels read it, the workspace of intermediates, each conv's batch mean and rstd): torch.compile's
functionalization takes no list output from an op that mutates an argument. ``momentum`` per slot, negative for
None (the cumulative average).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..blocks.program import BlockProgram
from .layout import empty_in_layout_of, in_dtype
from .program_bn_triton import new_bn_buffers, run_program_bn_backward, run_program_bn_triton
from .program_plan_triton import kernel_input

PARAMS_PER_SLOT = 4  # weight, bias, gamma, beta
RUNNING_PER_SLOT = 3  # running_mean, running_var, num_batches_tracked


def _groups(flat, size):
    return [tuple(flat[i:i + size]) for i in range(0, len(flat), size)]


def _nothing(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    return torch.empty(0, dtype=dtype or x.dtype, device=x.device)


@torch.library.custom_op("fastinception::program_bn_forward", mutates_args=("out", "running"))
def program_bn_forward(x: Tensor, out: Tensor, params: List[Optional[Tensor]], running: List[Tensor],
                       eps: List[float], momentum: List[float], program: str, allow_tf32: bool,
                       streams: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """``program`` with BatchNorm (batch statistics) and ReLU after every conv, on ``x`` into ``out``."""
    running = [tuple(None if t.numel() == 0 else t for t in group) for group in _groups(running, RUNNING_PER_SLOT)]
    x_read, workspace, stats = run_program_bn_triton(
        BlockProgram.from_text(program), _groups(params, PARAMS_PER_SLOT), running, eps,
        [None if m < 0 else m for m in momentum], x, out, allow_tf32=allow_tf32, streams=streams)
    return _nothing(x) if x_read is x else x_read, workspace, stats


@program_bn_forward.register_fake
def _(x, out, params, running, eps, momentum, program, allow_tf32, streams):
    x_read = kernel_input(x)
    return (_nothing(x) if x_read is x else x_read, *new_bn_buffers(BlockProgram.from_text(program), x_read))


def _gradient_buffers(x: Tensor, params, needs, x_dtype) -> list:
    grads = [empty_in_layout_of(x, x.shape, x_dtype) if needs[0] else _nothing(x, x_dtype)]
    return grads + [torch.empty_like(p) if need and p is not None else _nothing(x)
                    for p, need in zip(params, needs[1:])]


@torch.library.custom_op("fastinception::program_bn_backward", mutates_args=())
def program_bn_backward(grad_out: Tensor, x: Tensor, workspace: Tensor, stats: Tensor,
                        params: List[Optional[Tensor]], program: str, needs: List[bool], allow_tf32: bool,
                        streams: bool, x_dtype: torch.dtype) -> List[Tensor]:
    """Gradients of x (in ``x_dtype``) and of every (weight, bias, gamma, beta) (``needs``: which; the others come
    back empty), from the forward's saved ``x``, ``workspace`` and ``stats``."""
    if x.shape[0] == 0:
        return [g.zero_() if g.numel() else g for g in _gradient_buffers(x, params, needs, x_dtype)]
    grad_x, grads = run_program_bn_backward(
        BlockProgram.from_text(program), x, workspace, stats, _groups(params, PARAMS_PER_SLOT), grad_out,
        need_x=needs[0], needs=_groups(needs[1:], PARAMS_PER_SLOT), allow_tf32=allow_tf32, streams=streams)
    flat = [g for group in grads for g in group]
    return [_nothing(x, x_dtype) if grad_x is None else in_dtype(grad_x, x_dtype),
            *(_nothing(x) if g is None else in_dtype(g, p.dtype) for g, p in zip(flat, params))]


@program_bn_backward.register_fake
def _(grad_out, x, workspace, stats, params, program, needs, allow_tf32, streams, x_dtype):
    return _gradient_buffers(x, params, needs, x_dtype)
