"""Whether two strided tensors share an element, decided on elements, not on the byte spans they cover.

Two channel slices of one buffer (``buf[:, :4]`` and ``buf[:, 4:]``) cover interleaved byte spans in every layout
once N > 1, yet share no element. An element of ``a`` is at ``offset_a + sum(i_k * stride_k)`` and one of ``b`` at
``offset_b + sum(j_k * stride_k)``; with equal strides they coincide iff ``sum(d_k * stride_k) = offset_b -
offset_a`` for some index differences ``d_k`` in ``(-size_b_k, size_a_k)``. A depth-first search over the dimensions,
largest stride first, bounds each ``d_k`` by what the remaining dimensions can still add: a handful of nodes for
real layouts. Tensors with different strides or element sizes, and searches that grow past a limit, are reported
as possibly sharing: callers then take their safe path.

Pure Python on sizes, strides and offsets, except for the storage comparison, which callers outside a traced graph
do (``same_storage``).
"""
from __future__ import annotations

import torch

SEARCH_LIMIT = 10_000


def same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _solvable(target: int, dims: list, limit: list) -> bool:
    """Is ``target == sum(d * stride)`` for some ``d`` in ``[lo, hi]`` per (stride, lo, hi) in ``dims``?"""
    if not dims:
        return target == 0
    limit[0] -= 1
    if limit[0] < 0:
        return True  # undecided: say "maybe"
    (stride, lo, hi), rest = dims[0], dims[1:]
    rest_lo = sum(s * (low if s > 0 else high) for s, low, high in rest)
    rest_hi = sum(s * (high if s > 0 else low) for s, low, high in rest)
    # target - d * stride must lie in [rest_lo, rest_hi]
    first = max(lo, -((rest_hi - target) // stride))  # ceil((target - rest_hi) / stride)
    last = min(hi, (target - rest_lo) // stride)
    return any(_solvable(target - d * stride, rest, limit) for d in range(first, last + 1))


def _dims(a_sizes, b_sizes, strides, exclude_zero=False):
    dims = []
    for sa, sb, st in zip(a_sizes, b_sizes, strides):
        if st == 0 or (sa == 1 and sb == 1):
            continue  # adds nothing to an address
        dims.append((abs(st), -(sb - 1), sa - 1))
    return sorted(dims, reverse=True)


def may_share_elements(a: torch.Tensor, b: torch.Tensor) -> bool:
    """False only when ``a`` and ``b`` provably have no element in common (their storages compared first)."""
    if a.numel() == 0 or b.numel() == 0 or not same_storage(a, b):
        return False
    if a.element_size() != b.element_size() or a.dim() != b.dim() or a.stride() != b.stride():
        return True
    target = b.storage_offset() - a.storage_offset()
    return _solvable(target, _dims(a.shape, b.shape, a.stride()), [SEARCH_LIMIT])


def has_internal_overlap(t: torch.Tensor) -> bool:
    """Whether two different indices of ``t`` reach one element (True also when that cannot be ruled out).

    Sizes and strides only, so it also runs inside a traced graph."""
    if t.numel() <= 1:
        return False
    if any(st == 0 and sz > 1 for sz, st in zip(t.shape, t.stride())):
        return True
    dims = sorted(((abs(st), sz) for sz, st in zip(t.shape, t.stride()) if sz > 1), reverse=True)
    # Non-overlapping when each stride exceeds the span of all smaller ones, taken smallest first.
    span = 0
    for stride, size in reversed(dims):
        if stride <= span:
            return True
        span += stride * (size - 1)
    return False
