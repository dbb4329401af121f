"""The triton backend's forward and backward as ``torch.library`` custom ops.

Being custom ops makes them opaque to ``torch.compile`` (it does not trace into the launchers, the
autotuner or the stream fork/join) and lets CUDA graphs capture them like any other op. The block's
channel configuration is read off the weight shapes.

Three things the kernels cannot do themselves are settled here, at run time, where the real tensors are:
- activations whose channels are not adjacent in memory (NCHW) are copied to channels-last once, forward (x) and
  backward (the output gradient): channels are the GEMMs' reduction dimension, and NCHW would make every A tile a
  strided gather that spills registers (offline sm_90 compiles); the output keeps the caller's layout;
- an ``out`` that shares elements with ``x`` (the stem reads x while other programs write out) is computed into a
  fresh buffer and then copied, so the result is what ``out.copy_(block(x))`` gives;
- bf16 on Triton's CPU interpreter, which computes bf16 wrongly, runs in fp32 and rounds the results to bf16
  (on a GPU bf16 runs as bf16).
"""
from __future__ import annotations

import functools
from typing import List, Tuple

import torch
from torch import Tensor

from ..blocks.params import BlockParams
from ..blocks.spec import InceptionSpec
from ..kernels.common import bf16_on_interpreter
from .layout import channels_adjacent, empty_in_layout_of, memory_format_of
from .overlap import may_share_elements
from .streams import on_device, side_streams


def _empty_like_layout(x: Tensor, channels: int) -> Tensor:
    n, _, h, w = x.shape
    return empty_in_layout_of(x, (n, channels, h, w))


def _branch_slices(p: BlockParams) -> tuple:
    """Channel slices of p1..p4 in the block output, read off the weight shapes."""
    return _slices_of(
        p.w1.shape[1], p.w1.shape[0], p.w2a.shape[0], p.w2b.shape[0], p.w3a.shape[0], p.w3b.shape[0], p.w4.shape[0],
        p.w2b.shape[-1], p.w3b.shape[-1],
    )


@functools.cache
def _slices_of(*channels_and_kernels: int) -> tuple:
    # Cached: this runs on every call, and a spec validates all its fields when built.
    spec = InceptionSpec(*channels_and_kernels)
    return spec.p1, spec.p2, spec.p3, spec.p4


def _fp32(tensors):
    return [t.float() for t in tensors]


@torch.library.custom_op("fastinception::triton_forward", mutates_args=("out",))
def triton_forward(
    x: Tensor, out: Tensor, params: List[Tensor], allow_tf32: bool, branches: str, save_mask: bool
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The stem launch (p1, both reductions, pool branch), then the two spatial convs: two launches on side streams
    (``branches="streams"``) or on the caller's stream (``"serial"``), or one grouped launch (``"grouped"``).
    Returns t2, t3, the output's ReLU mask (with ``save_mask``: uint8, 1 where a gradient passes), which the
    backward reads instead of the output, and x's channels-last copy when x was not channels-last (the backward
    reads that one); empty tensors stand for what was not made."""
    if not channels_adjacent(x):
        x_cl = x.contiguous(memory_format=torch.channels_last)
        t2, t3, mask, _ = triton_forward(x_cl, out, params, allow_tf32, branches, save_mask)
        return t2, t3, mask, x_cl
    if bf16_on_interpreter(x.dtype, x.device):
        out32 = empty_in_layout_of(out, out.shape, torch.float32)
        t2, t3, mask, _ = triton_forward(x.float(), out32, _fp32(params), allow_tf32, branches, save_mask)
        out.copy_(out32)
        return t2.to(x.dtype), t3.to(x.dtype), mask, _nothing(x)
    if may_share_elements(x, out):
        fresh = empty_in_layout_of(out, out.shape)
        t2, t3, mask, _ = triton_forward(x, fresh, params, allow_tf32, branches, save_mask)
        out.copy_(fresh)
        return t2, t3, mask, _nothing(x)
    # Imported here, not at the top: the kernel modules import triton, which reads TRITON_INTERPRET once, and
    # importing fastinception must leave that choice open.
    from ..kernels.conv2d_forward import launch_conv2d_bias_relu, launch_conv2d_bias_relu_pair
    from ..kernels.stem_forward import launch_stem_forward

    p = BlockParams(*params)
    s1, s2, s3, s4 = _branch_slices(p)
    t2 = _empty_like_layout(x, p.w2a.shape[0])
    t3 = _empty_like_layout(x, p.w3a.shape[0])
    mask = _mask_buffer(x, out.shape[1], save_mask)
    m1, m2, m3, m4 = (mask[:, s] if save_mask else None for s in (s1, s2, s3, s4))
    with on_device(x):
        launch_stem_forward(x, p.w1, p.b1, p.w2a, p.b2a, p.w3a, p.b3a, p.w4, p.b4, out[:, s1], t2, t3, out[:, s4],
                            mask1=m1, mask4=m4, allow_tf32=allow_tf32)
        if branches == "grouped":
            launch_conv2d_bias_relu_pair(t2, p.w2b, p.b2b, out[:, s2], t3, p.w3b, p.b3b, out[:, s3], mask_a=m2,
                                         mask_b=m3, allow_tf32=allow_tf32)
        else:
            with side_streams(x.device, 2, branches == "streams") as (branch2, branch3):
                with branch2:
                    launch_conv2d_bias_relu(t2, p.w2b, p.b2b, out[:, s2], mask=m2, allow_tf32=allow_tf32)
                with branch3:
                    launch_conv2d_bias_relu(t3, p.w3b, p.b3b, out[:, s3], mask=m3, allow_tf32=allow_tf32)
    return t2, t3, mask, _nothing(x)


def _nothing(x: Tensor) -> Tensor:
    return torch.empty(0, dtype=x.dtype, device=x.device)


def _mask_buffer(x: Tensor, channels: int, save_mask: bool) -> Tensor:
    """The ReLU mask of the block output: one byte per output element, in x's layout; empty when not saved."""
    if not save_mask:
        return torch.empty(0, dtype=torch.uint8, device=x.device)
    n, _, h, w = x.shape
    return empty_in_layout_of(x, (n, channels, h, w), torch.uint8)


@triton_forward.register_fake
def _(x, out, params, allow_tf32, branches, save_mask):
    p = BlockParams(*params)
    adjacent = channels_adjacent(x)
    x_cl = x if adjacent else x.contiguous(memory_format=torch.channels_last)
    return (_empty_like_layout(x_cl, p.w2a.shape[0]), _empty_like_layout(x_cl, p.w3a.shape[0]),
            _mask_buffer(x_cl, out.shape[1], save_mask), _nothing(x) if adjacent else x_cl)


def _backward_outputs(layouts: List[Tensor], needs: List[bool]) -> List[Tensor]:
    """Fresh gradient buffers for what is needed; an empty tensor stands for a gradient not asked for. The
    gradients take the layout of ``layouts`` (the input and the parameters as the caller holds them), as autograd's
    layout contract asks: otherwise it copies each gradient into that layout."""
    x, params = layouts[0], layouts[1:]
    wanted = [(x, memory_format_of(x))] + [(p, torch.preserve_format) for p in params]
    return [
        torch.empty_like(t, memory_format=fmt) if need else t.new_empty(0) for (t, fmt), need in zip(wanted, needs)
    ]


@torch.library.custom_op("fastinception::triton_backward", mutates_args=())
def triton_backward(
    grad_out: Tensor, x: Tensor, mask: Tensor, t2: Tensor, t3: Tensor, params: List[Tensor], layouts: List[Tensor],
    needs: List[bool], allow_tf32: bool, deterministic: bool, branches: str,
) -> List[Tensor]:
    """Gradients of x and the twelve parameters (``needs`` says which; the others come back empty), from the saved
    input (channels-last), the output's ReLU mask and the reduced activations t2, t3. ``params`` are the weights in
    the kernels' layout (``triton_function.kernel_layout``), ``layouts`` the input and the parameters as the caller
    holds them, whose layout the gradients take.

    The two spatial branches' gradients run on side streams when ``branches="streams"``, else on the caller's.
    """
    if not channels_adjacent(grad_out):
        grad_out = grad_out.contiguous(memory_format=torch.channels_last)
    if bf16_on_interpreter(x.dtype, x.device):
        grads = triton_backward(grad_out.float(), x.float(), mask, t2.float(), t3.float(), _fp32(params), layouts,
                                needs, allow_tf32, deterministic, branches)
        return [g.to(t.dtype) for g, t in zip(grads, layouts)]
    # Imported here for the reason given in triton_forward.
    from ..kernels.conv2d_backward import launch_conv2d_relu_input_grad, launch_conv2d_relu_weight_grad
    from ..kernels.stem_backward import launch_stem_input_grad, launch_stem_weight_grad

    p = BlockParams(*params)
    grads = _backward_outputs(layouts, needs)
    grad_x, param_grads = grads[0], BlockParams(*grads[1:])
    need = BlockParams(*needs[1:])

    def wanted(name):  # the buffer for a parameter's gradient, or None when it is not asked for
        return getattr(param_grads, name) if getattr(need, name) else None

    branch_slices = _branch_slices(p)
    g1, g2, g3, g4 = (grad_out[:, s] for s in branch_slices)
    m1, m2, m3, m4 = (mask[:, s] for s in branch_slices)
    stem_names = ("w1", "b1", "w2a", "b2a", "w3a", "b3a", "w4", "b4")
    # The stem's gradient kernels read the reductions' gradients as part of their GEMM operand.
    need_reduced_grads = needs[0] or any(getattr(need, n) for n in stem_names)
    # Allocated on the caller's stream before the fork (see streams.side_streams).
    dt2, dt3 = (torch.empty_like(t2), torch.empty_like(t3)) if need_reduced_grads else (None, None)
    with on_device(x), side_streams(x.device, 2, branches == "streams") as (branch2, branch3):
        with branch2:
            if need_reduced_grads:
                launch_conv2d_relu_input_grad(g2, m2, p.w2b, t2, dt2, allow_tf32=allow_tf32)
            if need.w2b or need.b2b:
                launch_conv2d_relu_weight_grad(g2, m2, t2, wanted("w2b"), wanted("b2b"), deterministic=deterministic,
                                               allow_tf32=allow_tf32)
        with branch3:
            if need_reduced_grads:
                launch_conv2d_relu_input_grad(g3, m3, p.w3b, t3, dt3, allow_tf32=allow_tf32)
            if need.w3b or need.b3b:
                launch_conv2d_relu_weight_grad(g3, m3, t3, wanted("w3b"), wanted("b3b"), deterministic=deterministic,
                                               allow_tf32=allow_tf32)
    with on_device(x):
        if needs[0]:
            launch_stem_input_grad(x, g1, m1, dt2, dt3, g4, m4, p.w1, p.w2a, p.w3a, p.w4, grad_x, allow_tf32=allow_tf32)
        if any(getattr(need, n) for n in stem_names):
            launch_stem_weight_grad(
                x, g1, m1, dt2, dt3, g4, m4, *(wanted(n) for n in stem_names), deterministic=deterministic,
                allow_tf32=allow_tf32,
            )
    return grads


@triton_backward.register_fake
def _(grad_out, x, mask, t2, t3, params, layouts, needs, allow_tf32, deterministic, branches):
    return _backward_outputs(layouts, needs)
