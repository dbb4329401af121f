"""The backward of any block program on the Triton kernels: the forward's steps (``program_plan_triton.Tape``) walked
back from each branch's slice of the output gradient to the block's input.

Per branch, on its side stream, last step first:
- a conv step: each conv's weight and bias grads (``conv2d_general_backward``, one launch per conv, two when its
  pixel sum is split) and, when its input is not x, its input grad (one launch, a split's two convs summed in it);
- a pool step: its input grad (``pool2d_backward``: PyTorch's tie rule for max, the forward's divisor for average);
  a commuted average-pool head's pool step also gives that head's bias grad (a bias-only launch of the weight-grad
  kernel: the bias is added after the pool);
- a max-pool prologue head: the pool recomputed (``pool2d``; the forward kept it in registers) for the conv's
  weight grad, and the conv's input grad into an fp32 buffer that the pool's backward carries to x.
Then, on the caller's stream once the branches have joined, x's gradient: every step that reads x adds its input
grad into one buffer, in the program's order (fp32 for fp16 / bf16 inputs, rounded once at the end), so the result
does not depend on the streams. Every gradient buffer is allocated before the fork (``streams.side_streams``).
An Inception-ResNet program starts from its end (``_residual_backward``): the projection's gradients, then the
branches' backward from the concatenation's gradient, then x's identity term.
"""
from __future__ import annotations

import dataclasses
import functools

import torch

from ..blocks.program import Conv, Pool
from .layout import channels_last, empty_in_layout_of, in_dtype
from .program_plan_triton import ConvStep, PoolStep, PrologueStep, Tape
from .streams import on_device, run_branch_backward

POINTWISE = dict(kernel=(1, 1), stride=(1, 1), padding=(0, 0))


def backward_launch_count(program, x_shape, device) -> int:
    """Kernel launches of one backward of ``program`` on an input of ``x_shape`` on ``device`` with the triton
    backend when x and every weight and bias need their gradients (channels-last input): per conv a weight-grad
    launch (bias included), per step an input-grad launch (a split's pair shares one), a commuted head's bias one
    more, a max-pool head its pool recomputed, a residual program three more; and one more per weight or bias grad
    whose pixel sum is split (``conv2d_general_backward.weight_grad_splits``: S > 1 adds its reduction)."""
    from ..kernels.conv2d_general_backward import weight_grad_splits
    from .program_plan_triton import triton_plan

    plan = triton_plan(program)
    count = 3 if program.residual is not None else 0  # the projection's weight and input grads, x's identity term
    for b in plan.branches:
        convs = len(b.ops) + len(b.split) - sum(isinstance(op, Pool) for op, _ in b.ops)
        steps = len(b.ops) + (len(b.split) + 1) // 2
        if b.head is not None:
            convs += 1
            steps += 1 if b.head.pool is None else 2
            count += 1 if b.head.pool is not None else 0  # the commuted bias, or the prologue pool recomputed
        count += convs + steps
    return count + sum(weight_grad_splits(*sums, device)[0] > 1 for sums in _weight_grad_sums(program, *x_shape))


def _weight_grad_sums(program, n, c, h, w):
    """(pixels, output channels, input channels, taps) of each weight-grad launch of one backward on an (n, c, h, w)
    input: as ``weight_grad_splits`` takes them (a bias grad alone: one input channel, one tap)."""
    from .program_plan_triton import triton_plan

    plan, slots = triton_plan(program), program.conv_slots()
    sums = [(n * h * w, c, program.concat_channels, 1)] if program.residual is not None else []
    for b in plan.branches:
        size, channels = (h, w), c
        if b.head is not None:
            conv = slots[b.head.slot].conv
            sums.append((n * h * w, conv.out_channels, c, 1))  # a head's 1x1 runs at x's size
            if b.head.pool is not None:
                size = b.head.pool.out_size(h, w)
            if b.head.commuted:  # its bias is added after the pool
                sums.append((n * size[0] * size[1], conv.out_channels, 1, 1))
            channels = conv.out_channels
        for op, _ in b.ops:
            size = op.out_size(*size)
            if isinstance(op, Conv):
                sums.append((n * size[0] * size[1], op.out_channels, channels, op.kernel[0] * op.kernel[1]))
                channels = op.out_channels
        for conv, _ in b.split:
            oh, ow = conv.out_size(*size)
            sums.append((n * oh * ow, conv.out_channels, channels, conv.kernel[0] * conv.kernel[1]))
    return sums


def run_program_backward_triton(tape: Tape, out: torch.Tensor, weights, grad_out: torch.Tensor, *, need_x: bool,
                                need_weights, allow_tf32: bool, streams: bool = True):
    """The gradients of a block program from the ``tape`` of its forward: ``(grad_x, [(grad_weight, grad_bias), ...])``
    in the dtype the kernels computed in (``tape.x``'s), ``grad_x`` in fp32 for fp16 / bf16 and None when not
    ``need_x``; a weight or bias grad is None unless ``need_weights[k]`` asks for it. ``out``: the block's output,
    whose slices the tape names; ``weights``: the (weight, bias) pairs of the forward."""
    from ..kernels.conv2d_general_backward import launch_conv2d_input_grad, launch_conv2d_weight_grad
    from ..kernels.launch import partial_dtype
    from ..kernels.pool2d import launch_pool2d
    from ..kernels.pool2d_backward import launch_pool2d_input_grad

    if tape.residual is not None:
        return _residual_backward(tape, out, weights, grad_out, need_x=need_x, need_weights=need_weights,
                                  allow_tf32=allow_tf32, streams=streams)
    x = tape.x
    weights = [tuple(in_dtype(t, x.dtype) for t in pair) for pair in weights]
    grads = [(torch.empty_like(w) if need_w else None, torch.empty_like(b) if b is not None and need_b else None)
             for (w, b), (need_w, need_b) in zip(weights, need_weights)]
    # the kernels read activations and weights along channels, as the forward reads activations (NCHW activations or
    # OIHW weights spill registers on sm_90); the weight copies are small beside the activations
    grad_out, out = (channels_last(t) for t in (in_dtype(grad_out, x.dtype), out))
    weights = [(channels_last(w), b) for w, b in weights]
    grad_x = empty_in_layout_of(x, x.shape, partial_dtype(x.dtype)) if need_x else None
    conv_input_grad = functools.partial(launch_conv2d_input_grad, allow_tf32=allow_tf32)
    weight_grad = functools.partial(launch_conv2d_weight_grad, allow_tf32=allow_tf32)

    def pool_input_grad(pool, grad_y, **kwargs):
        return functools.partial(launch_pool2d_input_grad, grad_y, kind=pool.kind, kernel=pool.kernel,
                                 stride=pool.stride, padding=pool.padding,
                                 count_include_pad=pool.count_include_pad, **kwargs)

    grad_of, written = {}, set()  # the gradient buffer of each intermediate (by id), and those written

    def resolved(dest, at):
        # (output, its gradient) of a step: a slice of the block's, or an intermediate's
        return (out[:, at], grad_out[:, at]) if at is not None else (dest, grad_of[id(dest)])

    def grad_buffer(src):
        # the gradient of an intermediate: its first writer stores, a later one (a split's next launch) adds
        if id(src) not in grad_of:
            grad_of[id(src)] = empty_in_layout_of(src, src.shape)
        accumulate = id(src) in written
        written.add(id(src))
        return grad_of[id(src)], accumulate

    x_terms, work = [], []  # x_terms: launches taking (grad_x, accumulate)
    for steps in tape.branches:
        launches = []
        for step in reversed(steps):
            if isinstance(step, ConvStep):
                src = x if step.src is None else step.src
                terms = []
                for conv, slot, dest, at in step.convs:
                    y, grad_y = resolved(dest, at)
                    grad_w, grad_b = grads[slot]
                    grad_b = grad_b if step.bias else None
                    if grad_w is not None or grad_b is not None:
                        launches.append(functools.partial(weight_grad, grad_y, y, src, grad_w, grad_b,
                                                          kernel=conv.kernel, stride=conv.stride,
                                                          padding=conv.padding, relu=conv.relu))
                    terms.append((grad_y, y, weights[slot][0], conv.kernel, conv.stride, conv.padding, conv.relu))
                if step.src is None:
                    if need_x:
                        x_terms.append(lambda gx, accumulate, terms=terms:
                                       conv_input_grad(gx, terms, accumulate=accumulate))
                else:
                    grad_src, acc = grad_buffer(src)
                    launches.append(functools.partial(conv_input_grad, grad_src, terms, accumulate=acc))
            elif isinstance(step, PoolStep):
                src = x if step.src is None else step.src
                y, grad_y = resolved(step.dest, step.out_slice)
                if step.bias_slot is not None and grads[step.bias_slot][1] is not None:
                    launches.append(functools.partial(weight_grad, grad_y, y, None, None, grads[step.bias_slot][1],
                                                      relu=step.relu, **POINTWISE))
                backward = pool_input_grad(step.pool, grad_y, x=src, y=y, relu=step.relu)
                if step.src is None:
                    if need_x:
                        x_terms.append(lambda gx, accumulate, backward=backward: backward(gx, accumulate=accumulate))
                else:
                    grad_src, acc = grad_buffer(src)
                    launches.append(functools.partial(backward, grad_src, accumulate=acc))
            else:
                assert isinstance(step, PrologueStep)
                y, grad_y = resolved(step.dest, step.out_slice)
                grad_w, grad_b = grads[step.slot]
                if grad_w is not None:  # the pooled input is needed for the weight grad only
                    pooled = empty_in_layout_of(x, x.shape)
                    launches.append(functools.partial(
                        launch_pool2d, x, pooled, kind=step.pool.kind, kernel=step.pool.kernel,
                        stride=step.pool.stride, padding=step.pool.padding,
                        count_include_pad=step.pool.count_include_pad))
                if grad_w is not None or grad_b is not None:
                    launches.append(functools.partial(weight_grad, grad_y, y, pooled if grad_w is not None else None,
                                                      grad_w, grad_b, relu=step.conv.relu, **POINTWISE))
                if need_x:
                    grad_pooled = empty_in_layout_of(x, x.shape, partial_dtype(x.dtype))
                    launches.append(functools.partial(conv_input_grad, grad_pooled, [
                        (grad_y, y, weights[step.slot][0], (1, 1), (1, 1), (0, 0), step.conv.relu)]))
                    backward = pool_input_grad(step.pool, grad_pooled, x=x)
                    x_terms.append(lambda gx, accumulate, backward=backward: backward(gx, accumulate=accumulate))
        work.append(launches)

    run_branch_backward(x, work, x_terms, grad_x, streams)
    return grad_x, grads


def _residual_backward(tape: Tape, out, weights, grad_out, *, need_x, need_weights, allow_tf32, streams):
    # out = relu?(x + scale * conv1x1(cat)): the projection's grads, then the branches' backward from cat's gradient,
    # then x's identity term (the gradient through the ReLU, added with a 1x1 average pool's backward)
    from ..kernels.conv2d_general_backward import launch_conv2d_input_grad, launch_conv2d_weight_grad
    from ..kernels.pool2d_backward import launch_pool2d_input_grad

    step, x = tape.residual, tape.x
    relu, scale = step.residual.relu, step.residual.scale
    w, b = (in_dtype(t, x.dtype) for t in weights[step.slot])
    need_w, need_b = need_weights[step.slot]
    grad_w = torch.empty_like(w) if need_w else None
    grad_b = torch.empty_like(b) if b is not None and need_b else None
    grad_out, out = (channels_last(t) for t in (in_dtype(grad_out, x.dtype), out))
    grad_cat = empty_in_layout_of(step.cat, step.cat.shape)
    with on_device(x):
        launch_conv2d_weight_grad(grad_out, out, step.cat, grad_w, grad_b, relu=relu, scale=scale,
                                  allow_tf32=allow_tf32, **POINTWISE)
        launch_conv2d_input_grad(grad_cat, [(grad_out, out, channels_last(w), (1, 1), (1, 1), (0, 0), relu)],
                                 scale=scale, allow_tf32=allow_tf32)
    grad_x, grads = run_program_backward_triton(
        dataclasses.replace(tape, residual=None), step.cat, weights[:step.slot], grad_cat, need_x=need_x,
        need_weights=need_weights[:step.slot], allow_tf32=allow_tf32, streams=streams)
    if need_x:
        with on_device(x):
            launch_pool2d_input_grad(grad_out, grad_x, kind="avg", kernel=(1, 1), stride=(1, 1), padding=(0, 0),
                                     y=out, relu=relu, accumulate=True)
    return grad_x, [*grads, (grad_w, grad_b)]
