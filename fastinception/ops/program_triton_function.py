"""The triton backend of a block program as one autograd Function over the two custom ops of ``program_triton_ops``.

Forward writes straight into ``out`` and saves the input as the kernels read it, the output's ReLU mask (not the
output: the caller may change it in place, ``y += r``, ``y.relu_()``), the workspace holding the branches'
intermediate activations, and the weights; the backward walks the forward's steps back (``program_backward_triton``).
"""
from __future__ import annotations

import torch

from ..blocks.program import BlockProgram
from ..kernels.common import tf32_allowed
from . import program_triton_ops  # noqa: F401  (registers torch.ops.fastinception.program_*)


class ProgramTriton(torch.autograd.Function):
    # ``out`` first, as in triton_function: when it is a view, autograd wraps this Function in CopySlices.
    @staticmethod
    def forward(ctx, out, x, text: str, allow_tf32: bool, streams: bool, *flat):
        x_read, mask, workspace = torch.ops.fastinception.program_forward(x, out, list(flat), text, allow_tf32,
                                                                          streams, True)
        ctx.mark_dirty(out)
        ctx.save_for_backward(x_read if x_read.dim() == 4 else x, mask, workspace, *flat)
        ctx.options = (text, allow_tf32, streams, x.dtype)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if torch.is_grad_enabled():
            raise RuntimeError("the triton backend of a block program does not support double backward "
                               "(create_graph=True); use backend='torch' for higher-order gradients")
        text, allow_tf32, streams, x_dtype = ctx.options
        x, mask, workspace, *flat = ctx.saved_tensors
        needs = [ctx.needs_input_grad[1], *ctx.needs_input_grad[5:]]
        grads = torch.ops.fastinception.program_backward(grad_out, x, mask, workspace, flat, text, needs, allow_tf32,
                                                         streams, x_dtype)
        grads = [g if need else None for g, need in zip(grads, needs)]
        # out's old values are overwritten: a zero gradient, not None (CopySlices drops the buffer's gradient on None)
        grad_old_out = torch.zeros_like(grad_out) if ctx.needs_input_grad[0] else None
        return (grad_old_out, grads[0], None, None, None, *grads[1:])


def program_triton(program: BlockProgram, weights, x: torch.Tensor, out: torch.Tensor, *,
                   streams: bool = True) -> torch.Tensor:
    """``program`` on the Triton kernels into ``out``; differentiable in ``x``, the weights and (when ``out`` is a
    view of a buffer in the graph) the rest of that buffer."""
    allow_tf32 = tf32_allowed(x)
    flat = [t for pair in weights for t in pair]
    tracked = x.requires_grad or out.requires_grad or any(t is not None and t.requires_grad for t in flat)
    if not (torch.is_grad_enabled() and tracked):
        torch.ops.fastinception.program_forward(x, out, flat, program.text, allow_tf32, streams, False)
        return out
    return ProgramTriton.apply(out, x, program.text, allow_tf32, streams, *flat)
