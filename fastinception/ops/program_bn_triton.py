"""A block program whose every conv is followed by BatchNorm with batch statistics (training mode) and a ReLU, on the
Triton kernels: forward and backward, with no PyTorch compute op.

Forward, per conv (``BNConvStep``), three launches on its branch's stream:
1. ``conv2d_general`` writes the conv's output ``y`` (BatchNorm's input) into the workspace and, in its epilogue, each
   output channel's sum and centred sum of squares per group of 32 pixels (``stats=``);
2. ``batchnorm_forward.launch_bn_finalize`` combines the groups in a fixed order into the batch mean and rstd (kept
   for the backward) and updates the BatchNorm's running statistics in place;
3. ``batchnorm_forward.launch_bn_relu`` writes ``relu(gamma * xhat + beta)`` where the next op reads it: a branch
   buffer, or the block output's channel slice; and increments ``num_batches_tracked`` (after the finalize's
   programs have all read it).
A pool is one ``pool2d`` launch. There is no stem here: every conv needs its own statistics pass and light pass, so
each branch head's 1x1 runs on ``conv2d_general`` like any other conv (x is read once per head).

Backward, per conv, last step first on its branch's stream: BatchNorm+ReLU's backward (``batchnorm_backward``, three
launches: per-tile partial sums of g and g * xhat, their fixed-order combine into gamma's and beta's gradients, then
the conv output's gradient), then the conv's weight (and bias) gradient and its input gradient
(``conv2d_general_backward``, no ReLU: BatchNorm's backward applied it). x's gradient is added up on the caller's
stream in the program's order, as ``program_backward_triton`` does.

Not covered (``program_block.run_with_batchnorm`` runs them as before): residual programs, a conv without BatchNorm,
BatchNorms in eval mode beside ones in training mode.
"""
from __future__ import annotations

import dataclasses
import functools

import torch

from ..blocks.program import BlockProgram, Conv, Pool
from .layout import channels_last, empty_in_layout_of, in_dtype, memory_format_of
from .program_plan_triton import WORKSPACE_ALIGN, PoolStep, kernel_input
from .streams import on_device, run_branch_backward, side_streams


@dataclasses.dataclass(frozen=True)
class BNConvStep:
    """Conv ``slot`` on ``src`` (None: the block's input) into ``pre`` (BatchNorm's input, kept), then BatchNorm and
    ReLU into ``dest``, a slice of the block's output when ``out_slice`` is not None."""

    src: torch.Tensor | None
    conv: Conv
    slot: int
    pre: torch.Tensor
    dest: torch.Tensor
    out_slice: slice | None = None


def bn_lay_out(program: BlockProgram, x: torch.Tensor, out: torch.Tensor, buffer) -> tuple:
    """Every branch's steps (``BNConvStep`` and ``PoolStep``) of one forward on ``x`` into ``out``, each intermediate
    from ``buffer(shape)``."""
    n, slot, branches = x.shape[0], 0, []
    for branch, branch_slice in zip(program.branches, program.slices):
        steps, src, (h, w) = [], None, (x.shape[2], x.shape[3])
        for j, op in enumerate(branch.ops):
            h, w = op.out_size(h, w)
            channels = op.out_channels if isinstance(op, Conv) else (x if src is None else src).shape[1]
            last = j == len(branch.ops) - 1 and not branch.split
            dest, at = (out[:, branch_slice], branch_slice) if last else (buffer((n, channels, h, w)), None)
            if isinstance(op, Conv):
                steps.append(BNConvStep(src, op, slot, buffer((n, channels, h, w)), dest, at))
                slot += 1
            else:
                steps.append(PoolStep(op, src, dest, at))
            src = dest
        start = branch_slice.start
        for conv in branch.split:
            at = slice(start, start + conv.out_channels)
            oh, ow = conv.out_size(h, w)
            steps.append(BNConvStep(src, conv, slot, buffer((n, conv.out_channels, oh, ow)), out[:, at], at))
            slot, start = slot + 1, at.stop
        branches.append(tuple(steps))
    return tuple(branches)


def bn_launch_count(program: BlockProgram) -> int:
    """Kernel launches of one training-mode forward (channels-last input): three per conv, one per pool."""
    slots = len(program.conv_slots())
    pools = sum(isinstance(op, Pool) for b in program.branches for op in b.ops)
    return 3 * slots + pools


def bn_backward_launch_count(program: BlockProgram, x_shape, device) -> int:
    """Kernel launches of one training-mode backward with every gradient wanted (channels-last input): per conv three
    for BatchNorm+ReLU, its weight grad (one more when its pixel sum is split: ``weight_grad_splits``) and its input
    grad; per pool its input grad."""
    from ..kernels.conv2d_general_backward import weight_grad_splits

    x = torch.empty(x_shape, device="meta")
    out = torch.empty((x_shape[0], program.out_channels, *program.out_size(x_shape[2], x_shape[3])), device="meta")
    count = 0
    for steps in bn_lay_out(program, x, out, lambda shape: torch.empty(shape, device="meta")):
        for step in steps:
            if isinstance(step, PoolStep):
                count += 1
                continue
            n, c_out, oh, ow = step.pre.shape
            c_in = (x if step.src is None else step.src).shape[1]
            taps = step.conv.kernel[0] * step.conv.kernel[1]
            count += 5 + int(weight_grad_splits(n * oh * ow, c_out, c_in, taps, device)[0] > 1)
    return count


@functools.cache
def bn_workspace_shapes(program: BlockProgram, x_shape: tuple, channels_last: bool) -> tuple:
    """((shape, offset), ...) of the intermediates of one forward (branch buffers and every conv's output), the
    workspace's size, and each conv slot's offset in the statistics buffer (2 values a channel) and its size."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.empty(x_shape, device="meta", memory_format=memory_format)
    h, w = program.out_size(x_shape[2], x_shape[3])
    out = torch.empty((x_shape[0], program.out_channels, h, w), device="meta", memory_format=memory_format)
    placed, size = [], 0

    def buffer(shape):
        nonlocal size
        placed.append((tuple(shape), size))
        size += -(-shape[0] * shape[1] * shape[2] * shape[3] // WORKSPACE_ALIGN) * WORKSPACE_ALIGN
        return torch.empty(shape, device="meta", memory_format=memory_format)

    bn_lay_out(program, x, out, buffer)
    offsets, total = [], 0
    for s in program.conv_slots():
        offsets.append(total)
        total += 2 * s.conv.out_channels
    return tuple(placed), size, tuple(offsets), total


def _shapes(program: BlockProgram, x: torch.Tensor) -> tuple:
    # a symbolic batch under torch.compile's dynamic shapes is not hashable: not cached then
    shape = (x.shape[0], *(int(d) for d in x.shape[1:]))
    fmt = memory_format_of(x) == torch.channels_last
    if type(shape[0]) is int:
        return bn_workspace_shapes(program, shape, fmt)
    return bn_workspace_shapes.__wrapped__(program, shape, fmt)


def new_bn_buffers(program: BlockProgram, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The workspace (every intermediate, in x's dtype) and the statistics buffer (each conv's batch mean and rstd,
    fp32; fp64 for fp64) of one forward on ``x`` (as the kernels read it)."""
    from ..kernels.launch import partial_dtype

    _, size, _, total = _shapes(program, x)
    return (torch.empty(size, dtype=x.dtype, device=x.device),
            torch.empty(total, dtype=partial_dtype(x.dtype), device=x.device))


def _views(program: BlockProgram, x: torch.Tensor, workspace: torch.Tensor, stats: torch.Tensor):
    """(buffer, stats_of): the carver of ``workspace`` for ``bn_lay_out`` and slot k's [2, C] statistics view."""
    placed, _, offsets, _ = _shapes(program, x)
    placed = iter(placed)
    cl = memory_format_of(x) == torch.channels_last
    slots = program.conv_slots()

    def buffer(shape):
        (n, c, h, w), offset = next(placed)
        flat = workspace[offset:offset + n * c * h * w]
        return flat.view(n, h, w, c).permute(0, 3, 1, 2) if cl else flat.view(n, c, h, w)

    def stats_of(k):
        c = slots[k].conv.out_channels
        return stats[offsets[k]:offsets[k] + 2 * c].view(2, c)

    return buffer, stats_of


def run_program_bn_triton(program: BlockProgram, params, running, eps, momentum, x: torch.Tensor,
                          out: torch.Tensor, *, allow_tf32: bool, streams: bool = True) -> tuple:
    """The training-mode forward into ``out``. ``params``: per conv slot (weight, bias, gamma, beta), any but the
    weight None; ``running``: per slot (running_mean, running_var, num_batches_tracked), all None for a BatchNorm
    that updates nothing; ``eps`` / ``momentum`` per slot (momentum None: the cumulative average). Returns
    ``(x as the kernels read it, workspace, statistics)`` for the backward."""
    from ..kernels.batchnorm_forward import launch_bn_finalize, launch_bn_relu
    from ..kernels.conv2d_general import launch_conv2d_general, stats_groups
    from ..kernels.launch import partial_dtype
    from ..kernels.pool2d import launch_pool2d

    x_read = kernel_input(x)
    workspace, stats = new_bn_buffers(program, x_read)
    buffer, stats_of = _views(program, x_read, workspace, stats)
    branches = bn_lay_out(program, x_read, out, buffer)
    for steps in branches:
        for step in steps:
            if isinstance(step, BNConvStep) and step.pre.shape[0] * step.pre.shape[2] * step.pre.shape[3] <= 1:
                raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                                 f"{list(step.pre.shape)}")

    def step_launch(step):
        src = x_read if step.src is None else step.src
        if isinstance(step, PoolStep):
            pool = step.pool
            return [functools.partial(launch_pool2d, src, step.dest, kind=pool.kind, kernel=pool.kernel,
                                      stride=pool.stride, padding=pool.padding,
                                      count_include_pad=pool.count_include_pad)]
        k, conv, pre = step.slot, step.conv, step.pre
        w, b, gamma, beta = params[k]
        rm, rv, nbt = running[k]
        pixels = pre.shape[0] * pre.shape[2] * pre.shape[3]

        def conv_with_stats():
            # the partials are this branch's own scratch, stream-ordered on its stream
            part = torch.empty((2, stats_groups(pixels), pre.shape[1]), dtype=partial_dtype(pre.dtype),
                               device=pre.device)
            launch_conv2d_general(src, [(w, b, pre, conv.kernel, conv.stride, conv.padding, False)], stats=part,
                                  allow_tf32=allow_tf32)
            launch_bn_finalize(part, pixels, stats_of(k), eps=eps[k], running_mean=rm, running_var=rv,
                               num_batches_tracked=nbt, momentum=momentum[k])

        return [conv_with_stats, functools.partial(launch_bn_relu, pre, stats_of(k), gamma, beta, step.dest, nbt)]

    if x_read.shape[0]:
        work = [[launch for step in steps for launch in step_launch(step)] for steps in branches]
        with on_device(x_read), side_streams(x_read.device, len(work), streams) as contexts:
            for launches, context in zip(work, contexts):
                with context:
                    for start_launch in launches:
                        start_launch()
    return x_read, workspace, stats


def run_program_bn_backward(program: BlockProgram, x: torch.Tensor, workspace: torch.Tensor, stats: torch.Tensor,
                            params, grad_out: torch.Tensor, *, need_x: bool, needs, allow_tf32: bool,
                            streams: bool = True):
    """The gradients of the training-mode forward that read ``x`` and saved ``workspace`` and ``stats``:
    ``(grad_x, [(grad_weight, grad_bias, grad_gamma, grad_beta), ...])``, each None unless asked for (``need_x``,
    ``needs[k]`` four flags a slot); ``grad_x`` in fp32 for fp16 / bf16."""
    from ..kernels.batchnorm_backward import launch_bn_relu_backward
    from ..kernels.conv2d_general_backward import launch_conv2d_input_grad, launch_conv2d_weight_grad
    from ..kernels.launch import partial_dtype
    from ..kernels.pool2d_backward import launch_pool2d_input_grad

    grad_out = channels_last(in_dtype(grad_out, x.dtype))
    buffer, stats_of = _views(program, x, workspace, stats)
    branches = bn_lay_out(program, x, grad_out, buffer)  # the output's slices name grad_out's
    grads = [tuple(torch.empty_like(t) if t is not None and need else None for t, need in zip(p, flags))
             for p, flags in zip(params, needs)]
    weights = [channels_last(in_dtype(p[0], x.dtype)) for p in params]
    grad_x = empty_in_layout_of(x, x.shape, partial_dtype(x.dtype)) if need_x else None
    grad_of, written = {}, set()

    def grad_buffer(src):
        # an intermediate's gradient: its first reader (last step first) stores, a later one (a split's) adds
        if id(src) not in grad_of:
            grad_of[id(src)] = empty_in_layout_of(src, src.shape)
        accumulate = id(src) in written
        written.add(id(src))
        return grad_of[id(src)], accumulate

    def grad_of_dest(step):
        return step.dest if step.out_slice is not None else grad_of[id(step.dest)]

    # every buffer is allocated here, before the fork (streams.side_streams); the launches run in order per branch
    x_terms, work = [], []
    for steps in branches:
        launches = []
        for step in reversed(steps):
            src = x if step.src is None else step.src
            grad_dest = grad_of_dest(step)
            if isinstance(step, PoolStep):
                backward = functools.partial(launch_pool2d_input_grad, grad_dest, kind=step.pool.kind,
                                             kernel=step.pool.kernel, stride=step.pool.stride,
                                             padding=step.pool.padding,
                                             count_include_pad=step.pool.count_include_pad, x=src)
            else:
                k, conv = step.slot, step.conv
                w, b, gamma, beta = params[k]
                grad_w, grad_b, grad_gamma, grad_beta = grads[k]
                grad_pre = empty_in_layout_of(step.pre, step.pre.shape)
                launches.append(functools.partial(launch_bn_relu_backward, grad_dest, step.pre, stats_of(k), gamma,
                                                  beta, grad_pre, grad_gamma, grad_beta))
                geometry = dict(kernel=conv.kernel, stride=conv.stride, padding=conv.padding)
                if grad_w is not None or grad_b is not None:
                    launches.append(functools.partial(launch_conv2d_weight_grad, grad_pre, None, src, grad_w, grad_b,
                                                      relu=False, allow_tf32=allow_tf32, **geometry))
                term = [(grad_pre, None, weights[k], conv.kernel, conv.stride, conv.padding, False)]
                backward = functools.partial(launch_conv2d_input_grad, convs=term, allow_tf32=allow_tf32)
            if step.src is None:
                if need_x:
                    x_terms.append(backward)
            else:
                grad_src, acc = grad_buffer(src)
                launches.append(functools.partial(backward, grad_src, accumulate=acc))
        work.append(launches)

    run_branch_backward(x, work, x_terms, grad_x, streams)
    return grad_x, grads
