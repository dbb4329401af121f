"""The float64 oracle and the error measure every other test relies on (fastinception.testing)."""
import pytest
import torch
from torch import nn

from fastinception.testing import REL_TOL, assert_close, float64_reference, rel_error


def test_rel_error_is_the_relative_frobenius_norm():
    expected = torch.tensor([3.0, 4.0])  # norm 5
    assert rel_error(expected + torch.tensor([0.0, 0.5]), expected) == pytest.approx(0.1)
    assert rel_error(expected, expected) == 0.0
    # computed in float64 whatever the inputs' dtypes: a half-precision difference is not rounded away
    assert rel_error(torch.tensor([1.0 + 2**-10], dtype=torch.float16), torch.tensor([1.0])) == pytest.approx(2**-10)


def test_rel_error_of_a_zero_reference_is_the_absolute_error():
    assert rel_error(torch.tensor([0.0, 2.0]), torch.zeros(2)) == pytest.approx(2.0)
    assert rel_error(torch.zeros(3), torch.zeros(3)) == 0.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_result_is_infinitely_wrong(bad):
    assert rel_error(torch.tensor([1.0, bad]), torch.tensor([1.0, 1.0])) == float("inf")


def test_a_shape_mismatch_is_infinitely_wrong():
    assert rel_error(torch.ones(2, 3), torch.ones(3, 2)) == float("inf")
    assert rel_error(torch.ones(6), torch.ones(2, 3)) == float("inf")


def test_assert_close_fails_past_the_dtype_tolerance():
    want = torch.randn(100, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert_close(want * (1 + 0.5 * REL_TOL[torch.float32]), want, torch.float32)
    with pytest.raises(AssertionError, match="relative error"):
        assert_close(want * (1 + 2 * REL_TOL[torch.float32]), want, torch.float32)
    with pytest.raises(AssertionError, match="non-finite"):
        assert_close(torch.full_like(want, float("nan")), want, torch.float32)
    with pytest.raises(AssertionError, match="shape"):
        assert_close(want[:5], want, torch.float32)


def test_float64_reference_runs_a_float64_copy_and_returns_every_gradient():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3)
    x = torch.randn(1, 2, 5, 5)
    grad_out = torch.randn(1, 3, 3, 3)
    out, grad_x, grad_w, grad_b = float64_reference(conv, x, grad_out)
    assert conv.weight.dtype == torch.float32, "the module itself is left in its dtype"
    assert all(t.dtype == torch.float64 for t in (out, grad_x, grad_w, grad_b))
    exact = nn.Conv2d(2, 3, 3).double()
    exact.load_state_dict(conv.state_dict())
    x64 = x.double().requires_grad_(True)
    want = exact(x64)
    want.backward(grad_out.double())
    assert torch.equal(out, want.detach()) and torch.equal(grad_x, x64.grad)
    assert torch.equal(grad_w, exact.weight.grad) and torch.equal(grad_b, exact.bias.grad)
    (forward_only,) = float64_reference(conv, x)
    assert torch.equal(forward_only, want.detach())


def test_block_level_tests_run_coarse_interpreter_tiles_unless_marked():
    from fastinception.kernels import launch
    from fastinception.kernels.common import interpreting

    assert launch.INTERPRET_CONFIG["BLOCK_M"] == (64 if interpreting() else 32)


@pytest.mark.fine_tiles
def test_a_fine_tiles_test_keeps_the_kernels_fine_tiles():
    from fastinception.kernels import launch

    assert launch.INTERPRET_CONFIG == {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 16}
