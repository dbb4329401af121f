"""The triton backend as one autograd Function over the two custom ops of ``triton_ops``.

Forward writes straight into ``out`` (a fresh tensor, or a caller's tensor or channel slice) and saves ``x``,
``out``, ``t2`` and ``t3``: the ReLU masks come from those saved outputs (relu(y) > 0 iff y > 0).
"""
from __future__ import annotations

import torch

from ..kernels.common import require_launchable
from ..params import BlockParams
from . import triton_ops  # noqa: F401  (registers torch.ops.fastinception.*)


class InceptionTriton(torch.autograd.Function):
    # ``out`` comes first: when it is a view (a channel slice of a caller's buffer), autograd wraps this Function
    # in CopySlices, which takes the first input as the tensor written in place.
    @staticmethod
    def forward(ctx, out, x, allow_tf32: bool, deterministic: bool, branches: str, *params):
        t2, t3 = torch.ops.fastinception.triton_forward(x, out, list(params), allow_tf32, branches)
        ctx.mark_dirty(out)
        ctx.save_for_backward(x, out, t2, t3, *params)
        ctx.options = (allow_tf32, deterministic, branches)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if torch.is_grad_enabled():  # create_graph=True: the gradient itself would need a backward
            raise RuntimeError(
                "the triton backend of FastInception does not support double backward (create_graph=True); "
                "use backend='torch' for higher-order gradients"
            )
        x, out, t2, t3, *params = ctx.saved_tensors
        allow_tf32, deterministic, branches = ctx.options
        needs = [ctx.needs_input_grad[1], *ctx.needs_input_grad[5:]]
        grads = torch.ops.fastinception.triton_backward(
            grad_out, x, out, t2, t3, params, needs, allow_tf32, deterministic, branches
        )
        grads = [g if need else None for g, need in zip(grads, needs)]
        # out's old values are overwritten: no gradient flows to them.
        return (None, grads[0], None, None, None, *grads[1:])


def inception_triton(
    x: torch.Tensor, params: BlockParams, out: torch.Tensor, *, deterministic: bool = True, branches: str = "streams"
) -> torch.Tensor:
    """Run the block with the Triton kernels, writing into ``out``; differentiable in ``x`` and every parameter."""
    require_launchable(x)
    # Follow PyTorch's switch for convolutions (tf32 applies to CUDA fp32 only).
    allow_tf32 = x.is_cuda and x.dtype == torch.float32 and torch.backends.cudnn.allow_tf32
    if not (torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params))):
        # Inference: nothing to save, no autograd node.
        torch.ops.fastinception.triton_forward(x, out, list(params), allow_tf32, branches)
        return out
    return InceptionTriton.apply(out, x, allow_tf32, deterministic, branches, *params)

