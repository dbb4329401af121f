"""The training-mode block program on the Triton kernels (``program_bn_triton``) as one autograd Function over the
two custom ops of ``program_bn_ops``: differentiable in x, every conv's weight and bias and every BatchNorm's gamma
and beta; the running statistics are updated in place by the forward."""
from __future__ import annotations

import torch

from ..blocks.program import BlockProgram
from ..kernels.common import tf32_allowed
from . import program_bn_ops  # noqa: F401  (registers torch.ops.fastinception.program_bn_*)
from .program_bn_ops import PARAMS_PER_SLOT, RUNNING_PER_SLOT


class ProgramBNTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, out, x, text: str, eps: tuple, momentum: tuple, allow_tf32: bool, streams: bool,
                slots: int, *tensors):
        params, running = list(tensors[:slots * PARAMS_PER_SLOT]), list(tensors[slots * PARAMS_PER_SLOT:])
        x_read, workspace, stats = torch.ops.fastinception.program_bn_forward(
            x, out, params, running, list(eps), list(momentum), text, allow_tf32, streams)
        ctx.mark_dirty(out)
        ctx.save_for_backward(x_read if x_read.dim() == 4 else x, workspace, stats, *params)
        ctx.options = (text, allow_tf32, streams, x.dtype, slots)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if torch.is_grad_enabled():
            raise RuntimeError("the triton backend's BatchNorm training does not support double backward "
                               "(create_graph=True); use backend='torch' for higher-order gradients")
        text, allow_tf32, streams, x_dtype, slots = ctx.options
        x, workspace, stats, *params = ctx.saved_tensors
        n = slots * PARAMS_PER_SLOT
        needs = [ctx.needs_input_grad[1], *ctx.needs_input_grad[8:8 + n]]
        grads = torch.ops.fastinception.program_bn_backward(grad_out, x, workspace, stats, params, text, needs,
                                                            allow_tf32, streams, x_dtype)
        grads = [g if need else None for g, need in zip(grads, needs)]
        grad_old_out = torch.zeros_like(grad_out) if ctx.needs_input_grad[0] else None
        return (grad_old_out, grads[0], None, None, None, None, None, None, *grads[1:],
                *[None] * (slots * RUNNING_PER_SLOT))


def program_bn_triton(program: BlockProgram, convs, bns, x: torch.Tensor, out: torch.Tensor, *,
                      streams: bool = True) -> torch.Tensor:
    """``program`` on ``x`` into ``out`` with every conv (``convs``: (weight, bias or None)) followed by its
    BatchNorm (``bns``, each using batch statistics) and a ReLU, on the Triton kernels; the BatchNorms in training
    mode with running statistics update them (and ``num_batches_tracked``) as ``nn.BatchNorm2d`` does."""
    params, running, eps, momentum = [], [], [], []
    for (w, b), bn in zip(convs, bns):
        params += [w, b, bn.weight, bn.bias]
        updates = bn.training and bn.track_running_stats and bn.running_mean is not None
        for t in (bn.running_mean, bn.running_var, bn.num_batches_tracked):
            running.append(t if updates and t is not None else x.new_empty(0))
        eps.append(float(bn.eps))
        momentum.append(-1.0 if bn.momentum is None else float(bn.momentum))
    allow_tf32 = tf32_allowed(x)
    if not torch.is_grad_enabled() or not (x.requires_grad or any(t is not None and t.requires_grad
                                                                   for t in params)):
        torch.ops.fastinception.program_bn_forward(x, out, params, running, eps, momentum, program.text, allow_tf32,
                                                   streams)
        return out
    return ProgramBNTriton.apply(out, x, program.text, tuple(eps), tuple(momentum), allow_tf32, streams,
                                 len(convs), *params, *running)
