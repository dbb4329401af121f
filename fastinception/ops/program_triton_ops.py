"""The triton backend of a block program as ``torch.library`` custom ops, as GoogLeNet's block has its own
(``triton_ops``): opaque to ``torch.compile`` (no graph break, nothing traced into the launchers, the autotuner or
the streams), exportable, and captured by CUDA graphs like any other op.

The program travels as its text (``BlockProgram.text``), the weights as one flat list, (weight, bias) per conv slot,
a bias possibly None. The forward returns what the backward needs when asked to (``save``): the input as the kernels
read it, the output's ReLU mask (not the output, which the caller may change in place) and the workspace holding
every intermediate, from which the backward rebuilds the forward's steps (``program_plan_triton.tape_of``). Fixed
outputs, not a list: torch.compile's functionalization takes no list output from an op that mutates an input.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..blocks.program import BlockProgram
from .layout import empty_in_layout_of, in_dtype
from .program_backward_triton import run_program_backward_triton
from .program_plan_triton import kernel_input, new_workspace, run_program_triton, tape_of
from .streams import on_device


def _pairs(weights):
    return list(zip(weights[0::2], weights[1::2]))


def _nothing(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    return torch.empty(0, dtype=dtype or x.dtype, device=x.device)


@torch.library.custom_op("fastinception::program_forward", mutates_args=("out",))
def program_forward(x: Tensor, out: Tensor, weights: List[Optional[Tensor]], program: str, allow_tf32: bool,
                    streams: bool, save: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """``program`` on ``x`` into ``out``. With ``save``: the input as the kernels read it (empty when that is ``x``
    itself), the output's ReLU mask (uint8) and the workspace of every intermediate; else three empty tensors."""
    saved = [] if save else None
    run_program_triton(BlockProgram.from_text(program), _pairs(weights), x, out, allow_tf32=allow_tf32,
                       streams=streams, saved=saved)
    if not save:
        return _nothing(x), _nothing(x, torch.uint8), _nothing(x)
    from ..kernels.relu_mask import launch_relu_mask

    x_read, workspace = saved
    mask = empty_in_layout_of(x_read, out.shape, torch.uint8)
    with on_device(x):
        launch_relu_mask(out, mask)
    return _nothing(x) if x_read is x else x_read, mask, workspace


@program_forward.register_fake
def _(x, out, weights, program, allow_tf32, streams, save):
    if not save:
        return _nothing(x), _nothing(x, torch.uint8), _nothing(x)
    x_read = kernel_input(x)
    return (_nothing(x) if x_read is x else x_read, empty_in_layout_of(x_read, out.shape, torch.uint8),
            new_workspace(BlockProgram.from_text(program), x_read))


def _gradient_buffers(x: Tensor, weights, needs, x_dtype) -> list:
    """What the backward returns, as buffers (the fake's answer, the real one's zeros): x's gradient in x's layout and
    ``x_dtype``, each weight's in its own; an empty tensor for what ``needs`` does not ask for."""
    grads = [empty_in_layout_of(x, x.shape, x_dtype) if needs[0] else _nothing(x, x_dtype)]
    return grads + [torch.empty_like(w) if need else _nothing(x) for w, need in zip(weights, needs[1:])]


@torch.library.custom_op("fastinception::program_backward", mutates_args=())
def program_backward(grad_out: Tensor, x: Tensor, mask: Tensor, workspace: Tensor,
                     weights: List[Optional[Tensor]], program: str, needs: List[bool], allow_tf32: bool,
                     streams: bool, x_dtype: torch.dtype) -> List[Tensor]:
    """Gradients of the input (in ``x_dtype``) and of every weight and bias (``needs``: which; the others come back
    empty), from the forward's saved input ``x``, ``mask`` and ``workspace``."""
    if x.shape[0] == 0:  # no pixel: every gradient is zero
        return [g.zero_() if g.numel() else g for g in _gradient_buffers(x, weights, needs, x_dtype)]
    tape = tape_of(BlockProgram.from_text(program), x, workspace, mask)
    grad_x, grads = run_program_backward_triton(
        tape, mask, _pairs(weights), grad_out, need_x=needs[0], need_weights=_pairs(needs[1:]),
        allow_tf32=allow_tf32, streams=streams)
    flat = [g for pair in grads for g in pair]
    return [_nothing(x, x_dtype) if grad_x is None else in_dtype(grad_x, x_dtype),
            *(_nothing(x) if g is None else in_dtype(g, w.dtype) for g, w in zip(flat, weights))]


@program_backward.register_fake
def _(grad_out, x, mask, workspace, weights, program, needs, allow_tf32, streams, x_dtype):
    return _gradient_buffers(x, weights, needs, x_dtype)
