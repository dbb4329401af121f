"""The triton backend of a block program as an autograd Function: the kernels forward (``program_plan_triton``), which
records its steps, and the kernels backward (``program_backward_triton``), which walks them back.

Saved for the backward: x as the kernels read it, the block's output (its ReLU masks), the weights, and the
intermediate activations of the branches. An in-place change to the output before the backward is refused by
autograd's version check, as for PyTorch's own ops that save their output.
"""
from __future__ import annotations

import dataclasses

import torch

from ..blocks.program import BlockProgram
from ..kernels.common import tf32_allowed
from .overlap import may_share_elements
from .program_backward_triton import run_program_backward_triton
from .program_plan_triton import run_program_triton


class ProgramTriton(torch.autograd.Function):
    # ``out`` first, as in triton_function: when it is a view, autograd wraps this Function in CopySlices.
    @staticmethod
    def forward(ctx, out, x, program: BlockProgram, allow_tf32: bool, streams: bool, *flat):
        pairs = list(zip(flat[0::2], flat[1::2]))
        if may_share_elements(x, out):  # out overwrites x, which the backward reads
            x = x.clone()
        record = []
        run_program_triton(program, pairs, x, out, allow_tf32=allow_tf32, streams=streams, record=record)
        tape, = record
        ctx.mark_dirty(out)
        ctx.save_for_backward(tape.x, out, *flat)
        ctx.tape = dataclasses.replace(tape, x=None)  # x goes through save_for_backward (version checks)
        ctx.allow_tf32, ctx.streams, ctx.x_dtype = allow_tf32, streams, x.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if torch.is_grad_enabled():
            raise RuntimeError("the triton backend of a block program does not support double backward "
                               "(create_graph=True); use backend='torch' for higher-order gradients")
        x, out, *flat = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x, grads = run_program_backward_triton(
            dataclasses.replace(ctx.tape, x=x), out, list(zip(flat[0::2], flat[1::2])), grad_out,
            need_x=needs[1], need_weights=list(zip(needs[5::2], needs[6::2])), allow_tf32=ctx.allow_tf32,
            streams=ctx.streams)
        flat_grads = [None if g is None else g.to(saved.dtype)
                      for g, saved in zip([g for pair in grads for g in pair], flat)]
        # out's old values are overwritten: a zero gradient, not None (CopySlices drops the buffer's gradient on None)
        grad_old_out = torch.zeros_like(grad_out) if needs[0] else None
        return (grad_old_out, None if grad_x is None else grad_x.to(ctx.x_dtype), None, None, None, *flat_grads)


def program_triton(program: BlockProgram, weights, x: torch.Tensor, out: torch.Tensor, *,
                   streams: bool = True) -> torch.Tensor:
    """``program`` on the Triton kernels into ``out``; differentiable in ``x``, the weights and (when ``out`` is a
    view of a buffer in the graph) the rest of that buffer."""
    allow_tf32 = tf32_allowed(x)
    flat = [t for pair in weights for t in pair]
    tracked = x.requires_grad or out.requires_grad or any(t is not None and t.requires_grad for t in flat)
    if not (torch.is_grad_enabled() and tracked):
        return run_program_triton(program, weights, x, out, allow_tf32=allow_tf32, streams=streams)
    return ProgramTriton.apply(out, x, program, allow_tf32, streams, *flat)
