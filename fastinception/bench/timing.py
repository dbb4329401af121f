"""Timing a callable: CUDA events on GPU, perf_counter on CPU; median of many runs after warm-up.

Inputs rotate through a ring (``ring[i % len(ring)]``) so that, on GPU, an input is not still sitting in
the L2 cache from the previous run: ``ring_length`` sizes the ring to more than twice the L2 cache.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence

import torch

# Used when the device does not report its L2 size (H100/H200 have 50 MiB).
_DEFAULT_L2_BYTES = 64 << 20
# Untimed calls before the timed ones on CPU (check counts them in its progress under the Triton interpreter).
CPU_WARMUP_CALLS = 2


@dataclasses.dataclass(frozen=True)
class Timing:
    """Milliseconds per call over ``reps`` timed calls: median, fastest, and the 20th / 80th percentiles."""

    median_ms: float
    min_ms: float
    p20_ms: float
    p80_ms: float
    reps: int


def l2_bytes(device: torch.device) -> int:
    if device.type != "cuda":
        return 0
    return int(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or _DEFAULT_L2_BYTES)


def ring_length(bytes_per_item: int, device: torch.device, cap: int = 512) -> int:
    """How many distinct inputs to rotate through: their total exceeds 2x L2 (at least 1, at most ``cap``)."""
    if device.type != "cuda" or bytes_per_item <= 0:
        return 1
    return max(1, min(cap, math.ceil(2 * l2_bytes(device) / bytes_per_item) + 1))


def measure(
    fn: Callable,
    ring: Sequence,
    device: torch.device,
    *,
    target_ms: float = 250.0,
    min_reps: int = 10,
    max_reps: int = 1000,
    warmup_ms: float = 25.0,
) -> Timing:
    """Time ``fn(ring[i % len(ring)])``: warm-up, then about ``target_ms`` of timed calls (within the rep bounds)."""
    if device.type == "cuda":
        return _measure_cuda(fn, ring, device, target_ms, min_reps, max_reps, warmup_ms)
    return _measure_cpu(fn, ring, target_ms, min_reps, max_reps)


def _percentiles(times_ms: list[float]) -> Timing:
    times = sorted(times_ms)

    def at(q: float) -> float:
        return times[min(len(times) - 1, int(q * len(times)))]

    return Timing(statistics.median(times), times[0], at(0.2), at(0.8), len(times))


def _reps_for(estimate_ms: float, target_ms: float, min_reps: int, max_reps: int) -> int:
    # Bounded before int(): a huge target over a tiny estimate overflows to inf, which int() refuses.
    return max(min_reps, int(min(max_reps, target_ms / max(estimate_ms, 1e-6))))


def _measure_cuda(fn, ring, device, target_ms, min_reps, max_reps, warmup_ms) -> Timing:
    with torch.cuda.device(device):
        # Estimate one call from a short burst, then warm up for about warmup_ms.
        fn(ring[0])
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for i in range(5):
            fn(ring[i % len(ring)])
        end.record()
        torch.cuda.synchronize()
        estimate = start.elapsed_time(end) / 5
        for i in range(int(warmup_ms / max(estimate, 1e-3))):
            fn(ring[i % len(ring)])
        reps = _reps_for(estimate, target_ms, min_reps, max_reps)
        # One event pair per call: the gap a slow host leaves between launches counts, as it would in use.
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        torch.cuda.synchronize()
        for i in range(reps):
            starts[i].record()
            fn(ring[i % len(ring)])
            ends[i].record()
        torch.cuda.synchronize()
        return _percentiles([s.elapsed_time(e) for s, e in zip(starts, ends)])


def _measure_cpu(fn, ring, target_ms, min_reps, max_reps) -> Timing:
    # Two warm-up calls; the faster is the estimate (a busy machine can stall any single call).
    warm = []
    for i in range(CPU_WARMUP_CALLS):
        t0 = time.perf_counter()
        fn(ring[i % len(ring)])
        warm.append((time.perf_counter() - t0) * 1e3)
    estimate = min(warm)
    times = []
    for i in range(_reps_for(estimate, target_ms, min_reps, max_reps)):
        t0 = time.perf_counter()
        fn(ring[i % len(ring)])
        times.append((time.perf_counter() - t0) * 1e3)
    return _percentiles(times)


def peak_memory_mib(fn: Callable, item, device: torch.device) -> float | None:
    """Peak memory one call allocates beyond what was allocated before it (MiB); None off CUDA."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn(item)
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20
