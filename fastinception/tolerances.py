"""Per-dtype tolerances against a float64 reference, shared by the tests and the benchmark's checks.

The measure is the relative Frobenius error ||out - ref|| / ||ref||. fp32 (ieee) keeps about 7 digits, so
1e-5 leaves room for accumulation order; tf32 keeps a 10-bit mantissa (1e-3); fp16 rounds inputs and outputs
to 11 bits (2e-3); bf16 to 8 bits (1e-2).
"""
import torch

REL_TOL = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    torch.float16: 2e-3,
    torch.bfloat16: 1e-2,
}
TF32_REL_TOL = 1e-3


def rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| in float64; inf for a shape mismatch or a non-finite value."""
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    if a.shape != e.shape or not torch.isfinite(a).all():
        return float("inf")
    denom = e.norm().item()
    diff = (a - e).norm().item()
    return diff / denom if denom else diff
