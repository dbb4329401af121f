"""Tolerances and error measures shared by the correctness tests.

Errors are relative Frobenius norms against a float64 reference: ||out - ref|| / ||ref||.
fp32 (ieee) keeps about 7 digits, so 1e-5 leaves room for accumulation order; tf32 keeps a 10-bit
mantissa (1e-3); fp16 rounds inputs and outputs to 11 bits (2e-3); bf16 to 8 bits (1e-2).
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
    """||actual - expected|| / ||expected|| in float64 (0 for two empty or two all-zero tensors)."""
    a = actual.detach().to(torch.float64).cpu()
    e = expected.detach().to(torch.float64).cpu()
    assert a.shape == e.shape, f"shape {tuple(a.shape)} != {tuple(e.shape)}"
    assert torch.isfinite(a).all(), f"non-finite values at {torch.nonzero(~torch.isfinite(a))[:5].tolist()}"
    denom = e.norm().item()
    diff = (a - e).norm().item()
    if denom == 0.0:
        return diff
    return diff / denom


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str = "", tol=None) -> None:
    tol = REL_TOL[dtype] if tol is None else tol
    err = rel_error(actual, expected)
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.1e} ({dtype})"
