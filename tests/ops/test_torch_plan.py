"""FastInception on the fused PyTorch path against the reference block in float64."""
import pytest
import torch

from fastinception import FastInception, Inception
from fastinception.ops.torch_plan import fuse_stem

from helpers import check_against_float64, googlenet_cases, make_input, random_cases, seeded_pair


def _pair(args, k2, k3, dtype, seed):
    return seeded_pair(args, k2, k3, dtype, seed, "torch")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("args, k2, k3, shape, fmt", random_cases(24, seed=2024))
def test_random_configs_match_reference(args, k2, k3, shape, fmt, dtype):
    fast, ref = _pair(args, k2, k3, dtype, seed=sum(shape))
    check_against_float64(fast, ref, make_input(shape, fmt, dtype, seed=len(args)), fmt)


@pytest.mark.parametrize("args, k2, k3, shape, fmt", googlenet_cases())
def test_googlenet_configs_match_reference(args, k2, k3, shape, fmt):
    fast, ref = _pair(args, k2, k3, torch.float32, seed=args[0])
    check_against_float64(fast, ref, make_input(shape, fmt, seed=args[1]), fmt)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_other_odd_kernel_sizes(k):
    args = (5, 3, (4, 6), (2, 5), 3)
    torch.manual_seed(k)
    ref = Inception(*args, k2=k, k3=k)
    fast = FastInception.from_module(ref, backend="torch")
    check_against_float64(fast, ref, make_input((2, 5, 9, 8), "nchw", seed=k), "nchw")


@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
@pytest.mark.parametrize("shape, fused", [((3, 16, 5, 4), True), ((1, 16, 3, 2), False)], ids=["fused", "separate"])
def test_both_stem_plans_match_reference(shape, fused, fmt):
    # 4 + 8 + 2 = 14 stem channels: one convolution for 60 pixels, three for 6 (on a CPU, ``fuse_stem``)
    fast, ref = _pair((16, 4, (8, 12), (2, 6), 5), 3, 5, torch.float32, seed=shape[0])
    x = make_input(shape, fmt, seed=shape[2])
    assert fuse_stem(x, fast.spec) == fused
    check_against_float64(fast, ref, x, fmt)


def test_same_seed_gives_same_initialisation():
    torch.manual_seed(7)
    ref = Inception(16, 4, (8, 12), (2, 6), 5)
    torch.manual_seed(7)
    fast = FastInception(16, 4, (8, 12), (2, 6), 5)
    ref_state, fast_state = ref.state_dict(), fast.state_dict()
    assert list(ref_state) == list(fast_state)
    for name in ref_state:
        assert torch.equal(ref_state[name], fast_state[name]), name
