"""BN-Inception on fused blocks against a plain forward written from pretrainedmodels' port (its module names,
pools and order), in eval and in training mode."""
import copy

import pytest
import torch
import torch.nn.functional as F

from fastinception import bn_inception
from fastinception.testing import rel_error

from helpers import randomise_batchnorms

BLOCKS = ("3a", "3b", "3c", "4a", "4b", "4c", "4d", "4e", "5a", "5b")


def _unit(model, name, x):
    return F.relu(getattr(model, f"{name}_bn")(getattr(model, name)(x)))


def port_forward(m, x):
    """pretrainedmodels' BNInception.forward, op by op, on the modules of ``m``."""
    x = F.max_pool2d(_unit(m, "conv1_7x7_s2", x), 3, stride=2, ceil_mode=True)
    x = F.max_pool2d(_unit(m, "conv2_3x3", _unit(m, "conv2_3x3_reduce", x)), 3, stride=2, ceil_mode=True)
    for b in BLOCKS:
        u = lambda name, y, b=b: _unit(m, f"inception_{b}_{name}", y)  # noqa: E731
        b3 = u("3x3", u("3x3_reduce", x))
        bd = u("double_3x3_2", u("double_3x3_1", u("double_3x3_reduce", x)))
        if b in ("3c", "4e"):
            x = torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2, ceil_mode=True)], 1)
            continue
        if b == "5b":
            pooled = F.max_pool2d(x, 3, stride=1, padding=1, ceil_mode=True)
        else:
            pooled = F.avg_pool2d(x, 3, stride=1, padding=1, ceil_mode=True, count_include_pad=True)
        x = torch.cat([u("1x1", x), b3, bd, u("pool_proj", pooled)], 1)
    x = F.avg_pool2d(x, kernel_size=x.shape[2])
    return m.last_linear(x.flatten(1))


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_bn_inception_computes_and_trains_as_the_port(mode):
    # Training mode in float64: batch statistics of two small images make the gradients ill-conditioned (moving the
    # input by 1e-7 moves them by about 1%), so fp32 rounding alone would show there.
    dtype, tol = (torch.float32, 1e-5) if mode == "eval" else (torch.float64, 1e-9)
    torch.manual_seed(0)
    model = bn_inception(num_classes=10)
    randomise_batchnorms(model, seed=1)
    model = getattr(model.to(dtype), mode)()
    port = copy.deepcopy(model)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2), dtype=dtype)
    got, want = model(x), port_forward(port, x)
    assert got.shape == (2, 10)
    assert rel_error(got, want) <= tol
    got.square().sum().backward()
    want.square().sum().backward()
    # pooled: in training mode a conv bias before BatchNorm gets a gradient of zero up to rounding, which compared
    # on its own would be noise against noise
    assert rel_error(torch.cat([p.grad.flatten() for p in model.parameters()]),
                     torch.cat([p.grad.flatten() for p in port.parameters()])) <= tol
    for (name, a), b in zip(port.state_dict().items(), model.state_dict().values()):
        assert (torch.equal(a, b) if "num_batches" in name else rel_error(b, a) <= tol), name


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_on_the_triton_backend_convs_with_bias_before_batchnorm(mode):
    # a BN-Inception block at small widths, each conv with a bias before its BatchNorm: in eval mode the fold moves it
    # through the BatchNorm, in training mode the general conv kernel adds it; forward and the gradients of x, the
    # convs and the BatchNorms' affine parameters against the torch backend
    from fastinception.blocks.programs import bn_inception_block
    from fastinception.program_block import run_with_batchnorm

    from helpers import DEVICE, make_input, without_tf32

    program = bn_inception_block(12, 4, (5, 6), (3, 7), 2)
    torch.manual_seed(0)
    convs = [torch.nn.Conv2d(s.in_channels, s.conv.out_channels, s.conv.kernel, padding=s.conv.padding)
             for s in program.conv_slots()]
    bns = torch.nn.ModuleList(torch.nn.BatchNorm2d(s.conv.out_channels) for s in program.conv_slots())
    randomise_batchnorms(bns, seed=3)
    modules = getattr(torch.nn.ModuleList([*convs, *bns]).to(DEVICE), mode)()
    x = make_input((2, 12, 6, 6), "nhwc", seed=4, device=DEVICE)
    results = []
    for backend in ("torch", "triton"):
        xg = x.clone().requires_grad_()
        with without_tf32():
            y = run_with_batchnorm(program, [(c.weight, c.bias) for c in modules[:len(convs)]],
                                   list(modules[len(convs):]), xg, backend, "test block")
            grads = torch.autograd.grad(y.square().sum(), [xg, *modules.parameters()])
        results.append([y, *grads])
    (want_y, want_x, *want_p), (got_y, got_x, *got_p) = results
    assert rel_error(got_y, want_y) <= 1e-5 and rel_error(got_x, want_x) <= 1e-5
    # pooled: in training mode a conv bias before BatchNorm gets a gradient of zero up to rounding
    assert rel_error(torch.cat([g.flatten() for g in got_p]), torch.cat([g.flatten() for g in want_p])) <= 1e-5


@pytest.mark.slow  # a whole network under the interpreter
def test_a_whole_bn_inception_trains_on_the_triton_backend_as_the_port_in_float64():
    # training mode on the triton backend: the stem's units run in PyTorch, the ten blocks on the fused BatchNorm
    # path (their convs have biases); logits, every gradient and the running statistics against the port's forward
    from helpers import DEVICE, make_input

    torch.manual_seed(0)
    model = bn_inception(num_classes=10, backend="triton")
    randomise_batchnorms(model, seed=1)
    model = model.to(DEVICE, torch.float64).train()
    port = copy.deepcopy(model)
    x = make_input((2, 3, 64, 64), dtype=torch.float64, seed=2, device=DEVICE)
    got, want = model(x), port_forward(port, x)
    assert rel_error(got, want) <= 1e-9
    got_g = torch.autograd.grad(got.square().sum(), list(model.parameters()))
    want_g = torch.autograd.grad(want.square().sum(), list(port.parameters()))
    # pooled, as above: the conv biases' gradients are zero up to rounding
    assert rel_error(torch.cat([g.flatten() for g in got_g]), torch.cat([g.flatten() for g in want_g])) <= 1e-9
    for (name, a), b in zip(port.state_dict().items(), model.state_dict().values()):
        assert (torch.equal(a, b) if "num_batches" in name else rel_error(b, a) <= 1e-9), name
