"""Any block program as a fused plan in plain PyTorch ops: the torch backend of the later block types.

Every branch whose chain starts with a pointwise conv (1x1, stride 1, no padding) reads ``x`` through one
convolution with the concatenated weights (on a CPU only when that is cheaper: ``torch_plan.fuse_pointwise``); the
rest of each chain runs op by op in the program's order, so each value is computed as the reference computes it;
every branch (each conv of a split) is written into its channel slice of one output, with one autograd node for all
of them (``WriteBranches``). Everything that reads ``x`` runs before the first write into ``out``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..blocks.program import BlockProgram, Conv
from ..reference.program import apply_conv, apply_pool
from .layout import empty_in_layout_of
from .torch_plan import fuse_pointwise, write_branches


def run_program_torch(program: BlockProgram, weights, x: torch.Tensor, out: torch.Tensor | None = None,
                      transformed: bool = False, epilogue=None, conv2d=F.conv2d) -> torch.Tensor:
    """``program`` on ``x`` with ``weights`` (one (weight, bias) per conv in ``conv_slots()`` order), into ``out``
    (allocated in ``x``'s memory format when None). ``transformed``: under a torch.func transform, which needs
    plain slice assignments instead of the autograd Function. ``epilogue(k, y)``, when given, replaces conv k's
    activation: it receives the conv's output (bias added, if any) and returns what the chain continues with, as
    BatchNorm then ReLU for a block whose BatchNorm cannot be folded (training mode). ``conv2d``: what computes each
    convolution (``F.conv2d``, or ``triton_conv.triton_conv2d`` for the triton backend of such a block)."""
    program.check_weights(weights)
    if program.residual is not None:
        if out is not None:
            program_output(program, x, out)
        return _run_residual(program, weights, x, out, transformed, epilogue, conv2d)
    out = program_output(program, x, out)
    pairs = list(weights)
    conv = _conv_with(epilogue, conv2d)
    heads = _pointwise_heads(program, pairs, x, epilogue, conv2d)
    pieces, slices = [], []
    k = 0  # index of the next (weight, bias) pair
    for i, (branch, branch_slice) in enumerate(zip(program.branches, program.slices)):
        ops = branch.ops
        if i in heads:
            y, ops = heads[i], ops[1:]
            k += 1
        else:
            y = x
        for op in ops:
            if isinstance(op, Conv):
                y = conv(k, y, op, pairs[k])
                k += 1
            else:
                y = apply_pool(y, op)
        if not branch.split:
            pieces.append(y)
            slices.append(branch_slice)
            continue
        start = branch_slice.start
        for split_conv in branch.split:
            pieces.append(conv(k, y, split_conv, pairs[k]))
            slices.append(slice(start, start + split_conv.out_channels))
            start += split_conv.out_channels
            k += 1
    return write_branches(out, tuple(slices), pieces, transformed)


def program_output(program: BlockProgram, x: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """``out`` checked against what ``program`` gives for ``x`` (ValueError otherwise), or a new output in ``x``'s
    memory format when None."""
    # int(): under torch.jit.trace sizes are tensors, and the trace holds for this input size only anyway
    h, w = program.out_size(int(x.shape[2]), int(x.shape[3]))
    shape = (x.shape[0], program.out_channels, h, w)
    if out is None:
        return empty_in_layout_of(x, shape)
    if tuple(out.shape) != shape or out.dtype != x.dtype or out.device != x.device:
        # a smaller batch would broadcast into it silently
        raise ValueError(f"out must be {shape} {x.dtype} on {x.device}, got {tuple(out.shape)} {out.dtype} on "
                         f"{out.device}")
    return out


def _conv_with(epilogue, conv2d=F.conv2d):
    """conv(k, y, op, (weight, bias)): conv k of the program on y, then its ReLU or ``epilogue(k, .)``."""
    if epilogue is None and conv2d is F.conv2d:
        return lambda k, y, op, pair: apply_conv(y, op, *pair)

    def conv(k, y, op, pair):
        y = conv2d(y, pair[0], pair[1], stride=op.stride, padding=op.padding)
        if epilogue is not None:
            return epilogue(k, y)
        return F.relu(y) if op.relu else y

    return conv


def _pointwise_heads(program: BlockProgram, pairs, x: torch.Tensor, epilogue, conv2d) -> dict[int, torch.Tensor]:
    """branch index -> the output of its first op, for the branches whose first op is a pointwise conv on x."""
    firsts, k = {}, 0
    for i, branch in enumerate(program.branches):
        if branch.ops and isinstance(branch.ops[0], Conv) and branch.ops[0].pointwise:
            firsts[i] = (k, branch.ops[0], pairs[k])
        k += sum(isinstance(op, Conv) for op in branch.ops) + len(branch.split)
    if not firsts:
        return {}
    if len(firsts) == 1 or not fuse_pointwise(x, sum(conv.out_channels for _, conv, _ in firsts.values())):
        conv = _conv_with(epilogue, conv2d)
        return {i: conv(k, x, op, pair) for i, (k, op, pair) in firsts.items()}
    weight = torch.cat([pair[0] for _, _, pair in firsts.values()])
    biases = [pair[1] for _, _, pair in firsts.values()]
    bias = None if all(b is None for b in biases) else torch.cat(
        [b if b is not None else weight.new_zeros(op.out_channels) for (_, op, _), b in zip(firsts.values(), biases)])
    y = conv2d(x, weight, bias)
    pieces = y.split([op.out_channels for _, op, _ in firsts.values()], dim=1)
    if epilogue is not None:
        return {i: epilogue(k, p) for (i, (k, _, _)), p in zip(firsts.items(), pieces)}
    return {i: F.relu(p) if op.relu else p for (i, (_, op, _)), p in zip(firsts.items(), pieces)}


def _run_residual(program, weights, x, out, transformed, epilogue, conv2d):
    # the concatenation feeds a conv, so it gets a buffer of its own; the residual sum then goes into out. The
    # branches' convs are the program's first slots, so an epilogue sees the same indices in both runs; the
    # projection (the last slot) gets its epilogue too, before the scale.
    weights = tuple(weights)
    cat = run_program_torch(BlockProgram(program.in_channels, program.branches), weights[:-1], x,
                            transformed=transformed, epilogue=epilogue, conv2d=conv2d)
    w, b = weights[-1]
    projection = conv2d(cat, w, b)
    if epilogue is not None:
        projection = epilogue(len(weights) - 1, projection)
    y = x + program.residual.scale * projection
    if program.residual.relu:
        # ReLU as PyTorch computes it and differentiates it (zero where y <= 0, a NaN passing), whose backward keeps
        # the condition instead of the output, which the caller may change in place
        y = torch.where(y <= 0, 0.0, y)
    if out is None:
        return y
    return write_branches(out, (slice(0, program.out_channels),), [y], transformed)

