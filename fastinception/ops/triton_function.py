"""The triton backend as one autograd Function over the two custom ops of ``triton_ops``.

Forward writes straight into ``out`` (a fresh tensor, or a caller's tensor or channel slice) and saves ``x``, the
reduced activations ``t2``, ``t3`` and the output's ReLU mask (one byte per output element, written by the
kernels' epilogues): not the output itself, which the caller may modify in place (``y += r``, in-place dropout).
"""
from __future__ import annotations

import torch

from ..blocks.params import BlockParams
from ..kernels.common import require_launchable, tf32_allowed
from . import triton_ops  # noqa: F401  (registers torch.ops.fastinception.*)


def kernel_layout(params) -> list:
    """The parameters as the kernels read them best: each k x k weight channels-last, (Cout, kh, kw, Cin) in memory,
    so that input channels, the GEMMs' K (forward) or N (input gradient), are contiguous and every weight tile is a
    run of 16-byte loads. A small copy per call (none for weights already in that layout, such as a model moved
    to channels_last); the backward reuses it. Made on every call rather than cached per weight version: writes
    through ``.data``, collectives and CUDA graph replays change a weight without its version counter, and a stale
    copy would be a wrong result without a sign. 1x1 weights are channels-last already."""
    return [p.contiguous(memory_format=torch.channels_last) if p.dim() == 4 and p.shape[-1] > 1 else p
            for p in params]


class InceptionTriton(torch.autograd.Function):
    # ``out`` comes first: when it is a view (a channel slice of a caller's buffer), autograd wraps this Function
    # in CopySlices, which takes the first input as the tensor written in place.
    @staticmethod
    def forward(ctx, out, x, allow_tf32: bool, deterministic: bool, branches: str, *params):
        laid_out = kernel_layout(params)
        t2, t3, mask, x_cl = torch.ops.fastinception.triton_forward(x, out, laid_out, allow_tf32, branches, True)
        ctx.mark_dirty(out)
        # the kernels' channels-last copy of x when there is one: the backward reads that; x's own layout, which its
        # gradient takes, is kept as shape and strides (saving x too would hold it in memory)
        ctx.save_for_backward(x_cl if x_cl.numel() else x, mask, t2, t3, *laid_out, *params)
        ctx.x_layout = None if not x_cl.numel() else (x.shape, x.stride())
        ctx.options = (allow_tf32, deterministic, branches)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if torch.is_grad_enabled():  # create_graph=True: the gradient itself would need a backward
            raise RuntimeError(
                "the triton backend of FastInception does not support double backward (create_graph=True); "
                "use backend='torch' for higher-order gradients"
            )
        x_read, mask, t2, t3, *saved = ctx.saved_tensors
        laid_out, params = saved[: len(saved) // 2], saved[len(saved) // 2 :]
        x_like = x_read if ctx.x_layout is None else x_read.new_empty_strided(*ctx.x_layout)
        allow_tf32, deterministic, branches = ctx.options
        # As PyTorch's own ops do: under torch.use_deterministic_algorithms(True), no float atomics.
        deterministic = deterministic or torch.are_deterministic_algorithms_enabled()
        needs = [ctx.needs_input_grad[1], *ctx.needs_input_grad[5:]]
        grads = torch.ops.fastinception.triton_backward(
            grad_out, x_read, mask, t2, t3, laid_out, [x_like, *params], needs, allow_tf32, deterministic, branches
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
    allow_tf32 = tf32_allowed(x)
    tracked = x.requires_grad or out.requires_grad or any(p.requires_grad for p in params)
    if not (torch.is_grad_enabled() and tracked):
        # Inference: nothing to save, no autograd node.
        torch.ops.fastinception.triton_forward(x, out, kernel_layout(params), allow_tf32, branches, False)
        return out
    return InceptionTriton.apply(out, x, allow_tf32, deterministic, branches, *params)
