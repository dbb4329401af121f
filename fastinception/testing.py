"""The float64 oracle and the per-dtype tolerances against it, shared by the tests and the benchmark's checks.

The measure is the relative Frobenius error ||out - ref|| / ||ref||. fp32 (ieee) keeps about 7 digits, so
1e-5 leaves room for accumulation order; tf32 keeps a 10-bit mantissa (1e-3); fp16 rounds inputs and outputs
to 11 bits (2e-3); bf16 to 8 bits (1e-2).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

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


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str = "", tol=None) -> None:
    """Relative error of ``actual`` against ``expected`` within the dtype's tolerance (or ``tol``)."""
    tol = REL_TOL[dtype] if tol is None else tol
    shapes = tuple(actual.shape), tuple(expected.shape)
    assert shapes[0] == shapes[1], f"{what}: shape {shapes[0]} != {shapes[1]}"
    bad = ~torch.isfinite(actual.detach())
    assert not bad.any(), f"{what}: non-finite values at {torch.nonzero(bad)[:5].tolist()}"
    err = rel_error(actual, expected)
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.1e} ({dtype})"


def float64_reference(module: nn.Module, x: torch.Tensor, grad_out: torch.Tensor | None = None) -> list[torch.Tensor]:
    """What a float64 copy of ``module`` computes on ``x`` (rounded to its dtype, then widened): ``[output]``, and
    with ``grad_out`` also the gradients of ``x`` and of every parameter, in ``module.named_parameters()`` order."""
    exact = copy.deepcopy(module).to(dtype=torch.float64)
    x64 = x.detach().double()
    if grad_out is None:
        with torch.no_grad():
            return [exact(x64)]
    x64.requires_grad_(True)
    out = exact(x64)
    grads = torch.autograd.grad(out, (x64, *exact.parameters()), grad_out.double())
    return [out.detach(), *grads]
