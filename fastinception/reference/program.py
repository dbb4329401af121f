"""The plain PyTorch interpreter of a block program: each op in the order the program states it, branches
concatenated with ``torch.cat``. The oracle of the tests (run in float64), not a fast path."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from ..blocks.program import BlockProgram, Conv, Pool


def apply_conv(x: torch.Tensor, conv: Conv, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    y = F.conv2d(x, weight, bias, stride=conv.stride, padding=conv.padding)
    return F.relu(y) if conv.relu else y


def apply_pool(x: torch.Tensor, pool: Pool) -> torch.Tensor:
    if pool.kind == "max":
        return F.max_pool2d(x, pool.kernel, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)
    return F.avg_pool2d(x, pool.kernel, pool.stride, pool.padding, ceil_mode=pool.ceil_mode,
                        count_include_pad=pool.count_include_pad)


def run_reference(program: BlockProgram, weights, x: torch.Tensor, relu=None) -> torch.Tensor:
    """``program`` on ``x`` (N, C, H, W) with ``weights``: one (weight, bias) per conv in ``conv_slots()`` order.
    ``relu(k, z)``, when given, replaces the ReLU of conv k (residual projection included) on its output z."""
    program.check_weights(weights)
    if x.dim() != 4 or x.shape[1] != program.in_channels:
        raise ValueError(f"expected an (N, {program.in_channels}, H, W) input, got {tuple(x.shape)}")
    program.out_size(x.shape[2], x.shape[3])
    pairs = iter(enumerate(weights))

    def conv_of(y, conv):
        k, (w, b) = next(pairs)
        if relu is None or not conv.relu:
            return apply_conv(y, conv, w, b)
        return relu(k, apply_conv(y, dataclasses.replace(conv, relu=False), w, b))

    outputs = []
    for branch in program.branches:
        y = x
        for op in branch.ops:
            y = conv_of(y, op) if isinstance(op, Conv) else apply_pool(y, op)
        if branch.split:
            y = torch.cat([conv_of(y, conv) for conv in branch.split], dim=1)
        outputs.append(y)
    out = torch.cat(outputs, dim=1)
    if program.residual is None:
        return out
    k, (w, b) = next(pairs)
    out = x + program.residual.scale * F.conv2d(out, w, b)
    if not program.residual.relu:
        return out
    return F.relu(out) if relu is None else relu(k, out)
