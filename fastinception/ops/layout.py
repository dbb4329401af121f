"""The output layout rule: the block's result follows its input's memory format, as ``nn.Conv2d`` does."""
from __future__ import annotations

import torch


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is laid out channels-last: what the output should follow, as ``nn.Conv2d`` does.

    With one pixel both layouts are the same, so contiguous is chosen. Otherwise the channel stride is compared
    with the stride of the innermost spatial dimension of size > 1 (this also settles C == 1 tensors, which are
    contiguous in both senses).
    """
    n, c, h, w = x.shape
    if h * w == 1:
        return False
    spatial_stride = x.stride(3) if w > 1 else x.stride(2)
    return x.stride(1) <= spatial_stride


def channels_adjacent(x: torch.Tensor) -> bool:
    """Whether ``x``'s channels are next to each other in memory (channels-last, or a channel slice of it): how the
    kernels want their activations, since channels are their GEMMs' reduction dimension."""
    return x.shape[1] <= 1 or x.stride(1) == 1


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if is_channels_last(x) else torch.contiguous_format


def empty_in_layout_of(x: torch.Tensor, shape, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An uninitialised (N, C, H, W) tensor of ``shape`` on ``x``'s device, in ``x``'s memory format and dtype (or
    ``dtype``): the output and every intermediate follow the input's layout."""
    return torch.empty(shape, dtype=dtype or x.dtype, device=x.device, memory_format=memory_format_of(x))


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself when its channels are adjacent in memory, else a channels-last copy: what the kernels read."""
    return x if channels_adjacent(x) else x.contiguous(memory_format=torch.channels_last)


def in_dtype(x: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``x`` itself when it is None or already ``dtype``, else a converted copy: the kernels' operands, with no op
    run for nothing inside a custom op."""
    return x if x is None or x.dtype == dtype else x.to(dtype)
