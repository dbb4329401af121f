"""BatchNorm with batch statistics on the kernels: the general conv's statistics epilogue, the finalize (batch mean
and rstd, the running statistics' update), the BatchNorm+ReLU pass and its backward, against float64 PyTorch, every
output NaN-poisoned first."""
import pytest
import torch
import torch.nn.functional as F

from fastinception.kernels.batchnorm_backward import launch_bn_relu_backward
from fastinception.kernels.batchnorm_forward import launch_bn_finalize, launch_bn_relu
from fastinception.kernels.conv2d_general import launch_conv2d_general, stats_groups
from fastinception.testing import rel_error

from helpers import DEVICE

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _randn(shape, dtype, seed, channels_last=False):
    t = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(DEVICE, dtype)
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def _nan(shape, dtype, like=None):
    t = torch.full(shape, float("nan"), dtype=dtype, device=DEVICE)
    return t.contiguous(memory_format=torch.channels_last) if like is not None else t


def _forward(x, w, b, gamma, beta, kernel, padding, running, momentum, eps=1e-3):
    """The kernels' forward: (conv output, stats [2, C], activation)."""
    n, _, h, width = x.shape
    c = w.shape[0]
    oh, ow = h + 2 * padding - kernel + 1, width + 2 * padding - kernel + 1
    y = _nan((n, c, oh, ow), x.dtype, like=x)
    pixels = n * oh * ow
    part = _nan((2, stats_groups(pixels), c), x.dtype)
    launch_conv2d_general(x, [(w, b, y, (kernel, kernel), (1, 1), (padding, padding), False)], stats=part)
    stats = _nan((2, c), x.dtype)
    launch_bn_finalize(part, pixels, stats, eps=eps, momentum=momentum, **running)
    act = _nan(y.shape, x.dtype, like=x)
    launch_bn_relu(y, stats, gamma, beta, act, running["num_batches_tracked"])
    return y, stats, act


# (batch, input channels, side, output channels, kernel): 40 channels span three of the finalize's channel blocks
# (and two of the light pass's); 2x7x7 pixels are 98 (four 32-pixel groups, the last one short), 2x33x33 2178 (69
# groups: two steps of the finalize's combine)
CASES = {"3x3": (2, 5, 7, 40, 3), "1x1-many-groups": (2, 4, 33, 6, 1)}


@pytest.mark.parametrize("case, dtype, momentum", [
    pytest.param("3x3", torch.float64, 0.1, id="3x3-fp64-momentum"),
    pytest.param("3x3", torch.float32, None, id="3x3-fp32-cumulative"),
    pytest.param("1x1-many-groups", torch.float64, None, id="1x1-many-groups-fp64-cumulative"),
    pytest.param("3x3", torch.float32, 0.1, id="3x3-fp32-momentum", marks=pytest.mark.slow),
    pytest.param("3x3", torch.float64, None, id="3x3-fp64-cumulative", marks=pytest.mark.slow),
    pytest.param("1x1-many-groups", torch.float32, 0.1, id="1x1-many-groups-fp32-momentum", marks=pytest.mark.slow),
])
def test_statistics_running_update_and_activation_match_float64(case, dtype, momentum):
    n, cin, side, c, k = CASES[case]
    x = _randn((n, cin, side, side), dtype, 1, channels_last=True)
    w, b = _randn((c, cin, k, k), dtype, 2), _randn((c,), dtype, 3) + 2.0  # an offset: the centred sums matter
    gamma, beta = _randn((c,), dtype, 4), _randn((c,), dtype, 5)
    rm, rv = _randn((c,), dtype, 6), _randn((c,), dtype, 7).abs() + 0.5
    nbt = torch.tensor(4, device=DEVICE)
    bn = torch.nn.BatchNorm2d(c, eps=1e-3, momentum=momentum).to(DEVICE, torch.float64)
    with torch.no_grad():
        bn.running_mean.copy_(rm)
        bn.running_var.copy_(rv)
        bn.num_batches_tracked.fill_(4)
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
    running = dict(running_mean=rm.clone(), running_var=rv.clone(), num_batches_tracked=nbt)
    y, stats, act = _forward(x, w, b, gamma, beta, k, k // 2, running, momentum)
    want_y = F.conv2d(x.double(), w.double(), b.double(), padding=k // 2)
    want_act = F.relu(bn(want_y))
    tol = TOL[dtype]
    assert rel_error(y, want_y) <= tol
    assert rel_error(stats[0], want_y.mean((0, 2, 3))) <= tol
    assert rel_error(stats[1], 1 / torch.sqrt(want_y.var((0, 2, 3), unbiased=False) + 1e-3)) <= tol
    assert rel_error(act, want_act) <= tol
    assert rel_error(running["running_mean"], bn.running_mean) <= tol
    assert rel_error(running["running_var"], bn.running_var) <= tol  # the unbiased variance
    assert nbt.item() == bn.num_batches_tracked.item() == 5
    # bitwise the same on a second run; without running statistics nothing else is written
    again = _forward(x, w, b, gamma, beta, k, k // 2, dict(running_mean=None, running_var=None,
                                                           num_batches_tracked=None), momentum)
    assert all(torch.equal(a, b) for a, b in zip((y, stats, act), again))


@pytest.mark.parametrize("dtype, affine", [
    pytest.param(torch.float64, True, id="fp64"), pytest.param(torch.float32, True, id="fp32"),
    pytest.param(torch.float64, False, id="fp64-no-affine", marks=pytest.mark.slow),
])
def test_batchnorm_relu_backward_matches_float64(dtype, affine):
    # 2x9x9 pixels: three 64-pixel tiles of partials; 40 channels: two channel blocks
    n, c, side = 2, 40, 9
    y = _randn((n, c, side, side), dtype, 1, channels_last=True) * 3 + 1
    gamma = _randn((c,), dtype, 2) if affine else None
    beta = _randn((c,), dtype, 3) if affine else None
    mean, var = y.double().mean((0, 2, 3)), y.double().var((0, 2, 3), unbiased=False)
    stats = torch.stack([mean, 1 / torch.sqrt(var + 1e-5)]).to(dtype)
    da = _randn(y.shape, dtype, 4, channels_last=True)
    grad_y = _nan(y.shape, dtype, like=y)
    grad_gamma, grad_beta = (_nan((c,), dtype), _nan((c,), dtype)) if affine else (None, None)
    launch_bn_relu_backward(da, y, stats, gamma, beta, grad_y, grad_gamma, grad_beta)
    leaves = [y.double().requires_grad_()] + ([gamma.double().requires_grad_(), beta.double().requires_grad_()]
                                              if affine else [])
    a = F.relu(F.batch_norm(leaves[0], None, None, *(leaves[1:] if affine else (None, None)), True, 0.1, 1e-5))
    want = torch.autograd.grad(a, leaves, da.double())
    got = [grad_y, grad_gamma, grad_beta] if affine else [grad_y]
    for k, (g, w) in enumerate(zip(got, want)):
        assert rel_error(g, w) <= TOL[dtype], k
    again = _nan(y.shape, dtype, like=y)
    launch_bn_relu_backward(da, y, stats, gamma, beta, again)
    assert torch.equal(again, grad_y)
