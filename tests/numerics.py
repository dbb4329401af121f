"""Error checks for the correctness tests; the tolerances live in ``fastinception.tolerances``."""
import torch

from fastinception.tolerances import REL_TOL, TF32_REL_TOL, rel_error  # noqa: F401  (re-exported for the tests)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str = "", tol=None) -> None:
    """Relative error of ``actual`` against ``expected`` within the dtype's tolerance (or ``tol``)."""
    tol = REL_TOL[dtype] if tol is None else tol
    assert tuple(actual.shape) == tuple(expected.shape), f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    bad = ~torch.isfinite(actual.detach())
    assert not bad.any(), f"{what}: non-finite values at {torch.nonzero(bad)[:5].tolist()}"
    err = rel_error(actual, expected)
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.1e} ({dtype})"
