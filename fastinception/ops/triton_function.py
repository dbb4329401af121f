"""The triton backend as one autograd Function over the two custom ops of ``triton_ops``.

Forward writes straight into ``out`` (a fresh tensor, or a caller's tensor or channel slice) and saves ``x``, the
reduced activations ``t2``, ``t3`` and the output's ReLU mask (one byte per output element, written by the
kernels' epilogues): not the output itself, which the caller may modify in place (``y += r``, in-place dropout).
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
        t2, t3, mask = torch.ops.fastinception.triton_forward(x, out, list(params), allow_tf32, branches, True)
        ctx.mark_dirty(out)
        ctx.save_for_backward(x, mask, t2, t3, *params)
        ctx.options = (allow_tf32, deterministic, branches)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if torch.is_grad_enabled():  # create_graph=True: the gradient itself would need a backward
            raise RuntimeError(
                "the triton backend of FastInception does not support double backward (create_graph=True); "
                "use backend='torch' for higher-order gradients"
            )
        x, mask, t2, t3, *params = ctx.saved_tensors
        allow_tf32, deterministic, branches = ctx.options
        # As PyTorch's own ops do: under torch.use_deterministic_algorithms(True), no float atomics.
        deterministic = deterministic or torch.are_deterministic_algorithms_enabled()
        needs = [ctx.needs_input_grad[1], *ctx.needs_input_grad[5:]]
        grads = torch.ops.fastinception.triton_backward(
            grad_out, x, mask, t2, t3, params, needs, allow_tf32, deterministic, branches
        )
        grads = [g if need else None for g, need in zip(grads, needs)]
        # out's old values are overwritten: their gradient is zero. It must be a tensor, not None, when out is a
        # view of a buffer in the graph: CopySlices drops the gradient of the whole buffer on None.
        grad_old_out = torch.zeros_like(grad_out) if ctx.needs_input_grad[0] else None
        return (grad_old_out, grads[0], None, None, None, *grads[1:])


def inception_triton(
    x: torch.Tensor, params: BlockParams, out: torch.Tensor, *, deterministic: bool = True, branches: str = "streams"
) -> torch.Tensor:
    """Run the block with the Triton kernels, writing into ``out``; differentiable in ``x``, every parameter and
    (when ``out`` is a view of a buffer in the graph) the rest of that buffer."""
    require_launchable(x)
    # Follow PyTorch's switch for convolutions (tf32 applies to CUDA fp32 only).
    allow_tf32 = x.is_cuda and x.dtype == torch.float32 and torch.backends.cudnn.allow_tf32
    tracked = x.requires_grad or out.requires_grad or any(p.requires_grad for p in params)
    if not (torch.is_grad_enabled() and tracked):
        # Inference: nothing to save, no autograd node.
        torch.ops.fastinception.triton_forward(x, out, list(params), allow_tf32, branches, False)
        return out
    return InceptionTriton.apply(out, x, allow_tf32, deterministic, branches, *params)
