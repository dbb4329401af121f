"""The triton backend of a block program as an autograd Function: the kernels forward (``program_plan_triton``), and a
backward that recomputes the block through the fused PyTorch plan and differentiates it.

The backward kernels cover GoogLeNet's block only; for the other programs the recomputation is the documented
fallback: its gradients are the exact gradients of the block, computed by PyTorch's convolution and pooling
backward. It costs one more forward in PyTorch ops and saves nothing but ``x`` and the weights.
"""
from __future__ import annotations

import torch

from ..kernels.common import tf32_allowed
from ..program import BlockProgram
from .program_plan import run_program_torch
from .program_plan_triton import run_program_triton


class ProgramTriton(torch.autograd.Function):
    # ``out`` first, as in triton_function: when it is a view, autograd wraps this Function in CopySlices.
    @staticmethod
    def forward(ctx, out, x, program: BlockProgram, allow_tf32: bool, streams: bool, *flat):
        pairs = list(zip(flat[0::2], flat[1::2]))
        run_program_triton(program, pairs, x, out, allow_tf32=allow_tf32, streams=streams)
        ctx.mark_dirty(out)
        ctx.save_for_backward(x, *flat)
        ctx.program = program
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if torch.is_grad_enabled():
            raise RuntimeError("the triton backend of a block program does not support double backward "
                               "(create_graph=True); use backend='torch' for higher-order gradients")
        x, *flat = ctx.saved_tensors
        needs = ctx.needs_input_grad
        # PyTorch's CPU convolutions accumulate fp16 / bf16 gradients in their own precision (3% off float64 on a v3 E
        # block's input gradient): on a CPU (the interpreter) the recomputation runs in fp32 and rounds, as the
        # forward does for bf16; on a GPU cuDNN accumulates in fp32 already
        work = torch.float32 if x.device.type == "cpu" and x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        with torch.enable_grad():
            leaves = [None if t is None else t.detach().to(work).requires_grad_(need)
                      for t, need in zip([x, *flat], [needs[1], *needs[5:]])]
            y = run_program_torch(ctx.program, list(zip(leaves[1::2], leaves[2::2])), leaves[0])
            wanted = [t for t in leaves if t is not None and t.requires_grad]
            grads = iter(torch.autograd.grad(y, wanted, grad_out.to(work)) if wanted else ())
        grads = [next(grads).to(saved.dtype) if leaf is not None and leaf.requires_grad else None
                 for leaf, saved in zip(leaves, [x, *flat])]
        # out's old values are overwritten: a zero gradient, not None (CopySlices drops the buffer's gradient on None)
        grad_old_out = torch.zeros_like(grad_out) if needs[0] else None
        return (grad_old_out, grads[0], None, None, None, *grads[1:])


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
