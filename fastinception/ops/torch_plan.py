"""The fused plan in plain PyTorch ops: the CPU path and the fallback.

One convolution with the concatenated 1x1 weights computes p1 and both reductions (on a CPU, where there is no
launch to save, only when that is cheaper: see ``fuse_stem``); each branch result is written into its channel slice
of one preallocated output. Everything that reads ``x`` runs before the first write
into ``out``, so an ``out`` that shares memory with ``x`` still receives ``block(x)``.

Autograd: ``out[:, s] = branch`` four times would chain four CopySlices nodes, each of which copies the whole output
gradient in the backward. ``WriteBranches`` writes the four branches under one node whose backward hands each branch
a view of the output gradient instead (as ``torch.cat``'s backward does). torch.func transforms cannot run a custom
autograd Function without rules of their own, nor torch.jit.trace record one, so under them the slice assignments
are used.
"""
import torch
import torch.nn.functional as F

from ..blocks.params import BlockParams
from ..blocks.spec import InceptionSpec


class WriteBranches(torch.autograd.Function):
    # ``out`` first, as in ops/triton_function.py: when it is a view, autograd wraps this Function in CopySlices.
    @staticmethod
    def forward(ctx, out, slices, *branches):
        for s, branch in zip(slices, branches):
            out[:, s] = branch
        ctx.mark_dirty(out)
        ctx.slices = slices
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # The overwritten values of out get zeros, not None: CopySlices drops the whole buffer's gradient on None.
        grad_old_out = torch.zeros_like(grad_out) if ctx.needs_input_grad[0] else None
        return (grad_old_out, None, *(grad_out[:, s] for s in ctx.slices))


def fuse_pointwise(x: torch.Tensor, channels: int) -> bool:
    """Whether the pointwise convs that read ``x`` (``channels`` outputs in all) run as one convolution with
    concatenated weights.

    Always on a GPU, where it saves launches. On a CPU the concatenation copies the weights on every call (channels
    x Cin values) to save reading ``x`` again for each further conv (pixels x Cin): fused only when the weights are
    the smaller, as with large batches. At batch 1 GoogLeNet's blocks 4e and 5b (7x7 and 14x14 pixels, up to 832
    channels) measured 3-10% slower fused than the reference block in channels_last (docs/results).
    """
    if x.device.type != "cpu":
        return True
    return channels <= x.shape[0] * x.shape[2] * x.shape[3]


def fuse_stem(x: torch.Tensor, spec: InceptionSpec) -> bool:
    """``fuse_pointwise`` for the block's three 1x1 convs (p1 and both reductions)."""
    return fuse_pointwise(x, spec.c1 + spec.c2a + spec.c3a)


def inception_torch(x: torch.Tensor, p: BlockParams, spec: InceptionSpec, out: torch.Tensor,
                    transformed: bool = False) -> torch.Tensor:
    """``transformed``: running under a torch.func transform (grad, jvp), which needs plain PyTorch ops."""
    if fuse_stem(x, spec):
        w_stem = torch.cat((p.w1, p.w2a, p.w3a))
        b_stem = torch.cat((p.b1, p.b2a, p.b3a))
        stem = F.conv2d(x, w_stem, b_stem).relu_()
        # split, not three slices: its backward is one concatenation, three slices' would be three zero-filled copies
        p1, t2, t3 = stem.split((spec.c1, spec.c2a, spec.c3a), dim=1)
    else:
        p1, t2, t3 = (F.conv2d(x, w, b).relu_() for w, b in ((p.w1, p.b1), (p.w2a, p.b2a), (p.w3a, p.b3a)))
    pooled = F.conv2d(F.max_pool2d(x, 3, stride=1, padding=1), p.w4, p.b4).relu_()
    branches = (
        p1,
        F.conv2d(t2, p.w2b, p.b2b, padding=spec.k2 // 2).relu_(),
        F.conv2d(t3, p.w3b, p.b3b, padding=spec.k3 // 2).relu_(),
        pooled,
    )
    return write_branches(out, (spec.p1, spec.p2, spec.p3, spec.p4), branches, transformed)


def write_branches(out: torch.Tensor, slices, branches, transformed: bool) -> torch.Tensor:
    """Each of ``branches`` into its channel slice of ``out``: under one ``WriteBranches`` node when autograd
    records, as slice assignments when it does not or cannot (``transformed``: a torch.func transform)."""
    tracked = torch.is_grad_enabled() and (out.requires_grad or any(b.requires_grad for b in branches))
    if transformed or torch.jit.is_tracing() or not tracked:
        for s, branch in zip(slices, branches):
            out[:, s] = branch
        return out
    return WriteBranches.apply(out, tuple(slices), *branches)
