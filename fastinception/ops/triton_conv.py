"""One convolution on the general conv kernel (``kernels/conv2d_general.py``) as an autograd Function: what the
triton backend runs for the convs of a block whose BatchNorm needs the batch's statistics (training mode), where
each conv's output goes through BatchNorm before the next op, so the block cannot be one fused plan.

Forward on the kernel (bias optional, no activation); backward on the general conv's backward kernels
(``kernels/conv2d_general_backward.py``: input grad, weight and bias grads).
"""
from __future__ import annotations

import functools

import torch

from ..kernels.common import bf16_on_interpreter, require_launchable, tf32_allowed
from .layout import channels_last, empty_in_layout_of
from .streams import on_device


class TritonConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        out = _not_traced()(x, weight, bias, stride, padding)
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, bias is not None)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        (stride, padding, has_bias), needs = ctx.geometry, ctx.needs_input_grad
        grads = _backward(x, weight, grad_out, stride, padding, needs[0], needs[1], has_bias and needs[2])
        return (*grads, None, None)


def _forward(x, weight, bias, stride, padding):
    from ..kernels.conv2d_general import launch_conv2d_general

    require_launchable(x)
    (kh, kw), (sh, sw), (ph, pw) = weight.shape[2:], stride, padding
    shape = (x.shape[0], weight.shape[0], (x.shape[2] + 2 * ph - kh) // sh + 1, (x.shape[3] + 2 * pw - kw) // sw + 1)
    if bf16_on_interpreter(x.dtype, x.device):
        # Triton's CPU interpreter computes bf16 wrongly: fp32, then rounded (on a GPU bf16 runs as bf16)
        return _forward(x.float(), weight.float(), None if bias is None else bias.float(), stride, padding).to(x.dtype)
    out = empty_in_layout_of(x, shape)
    if out.numel():
        with on_device(x):
            launch_conv2d_general(x, [(weight, bias, out, (kh, kw), stride, padding, False)],
                                  allow_tf32=tf32_allowed(x))
    return out


def _backward(x, weight, grad_out, stride, padding, need_x, need_w, need_b):
    from ..kernels.conv2d_general_backward import launch_conv2d_input_grad, launch_conv2d_weight_grad

    if bf16_on_interpreter(x.dtype, x.device):
        grads = _backward(x.float(), weight.float(), grad_out.float(), stride, padding, need_x, need_w, need_b)
        return tuple(None if g is None else g.to(x.dtype) for g in grads)
    kernel, allow_tf32 = tuple(weight.shape[2:]), tf32_allowed(x)
    grad_w = torch.empty_like(weight) if need_w else None
    x, grad_out, weight = (channels_last(t) for t in (x, grad_out, weight))  # as the program backward reads them
    grad_x = empty_in_layout_of(x, x.shape) if need_x else None
    grad_b = weight.new_empty(weight.shape[0]) if need_b else None
    with on_device(x):
        if need_x:
            launch_conv2d_input_grad(grad_x, [(grad_out, None, weight, kernel, stride, padding, False)],
                                     allow_tf32=allow_tf32)
        launch_conv2d_weight_grad(grad_out, None, x, grad_w, grad_b, kernel=kernel, stride=stride, padding=padding,
                                  relu=False, allow_tf32=allow_tf32)
    return grad_x, grad_w, grad_b



@functools.cache
def _not_traced():
    # as in program_plan_triton: torch.compile runs the launch as it is; wrapped on first use, not at import
    return torch.compiler.disable(_forward)


def triton_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=(1, 1),
                  padding=(0, 0)) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)`` (no dilation, no groups; stride and padding (h, w) pairs) with
    the forward on the Triton kernel."""
    return TritonConv2d.apply(x, weight, bias, tuple(stride), tuple(padding))
