"""Gradients of the triton backend: gradcheck, against float64, ties, determinism, and a short training run."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastinception import BlockParams, FastInception, Inception, googlenet, inception

from helpers import (
    BACKWARD_BUFFER_OPS,
    DEVICE,
    assert_close,
    check_against_float64,
    make_input,
    random_cases,
    record_launches,
    seeded_pair,
    shuffled_programs,
)


def _pair(args, k3, dtype, seed, k2=3):
    return seeded_pair(args, k2, k3, dtype, seed, "triton", DEVICE)


@pytest.mark.parametrize("k3", [3, pytest.param(5, marks=pytest.mark.slow)])
@pytest.mark.parametrize("args, shape", [((3, 2, (2, 3), (2, 2), 2), (2, 3, 4, 3)),
                                         pytest.param((4, 3, (1, 2), (3, 1), 1), (1, 4, 3, 5), marks=pytest.mark.slow)])
def test_gradcheck_float64(args, shape, k3):
    fast, _ = _pair(args, k3, torch.float64, seed=k3)
    x = make_input(shape, "nchw", torch.float64, DEVICE, seed=shape[-1]).requires_grad_()
    params = [p.detach().clone().requires_grad_() for p in fast.params()]

    def block(x, *params):
        return inception(x, BlockParams(*params), fast.spec, backend="triton")

    # fast_mode checks random projections of the Jacobian: the full one would take minutes under the interpreter.
    assert torch.autograd.gradcheck(block, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize("dtype", [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float16, id="fp16")])
@pytest.mark.parametrize("args, k2, k3, shape, fmt",
                         random_cases(10, seed=77, max_channels=36, max_side=9, max_batch=3, fast=4))
def test_gradients_random_configs(args, k2, k3, shape, fmt, dtype):
    fast, ref = _pair(args, k3, dtype, seed=shape[2], k2=k2)
    check_against_float64(fast, ref, make_input(shape, fmt, dtype, DEVICE, seed=shape[3]), fmt)


@pytest.mark.parametrize("shape", [(1, 7, 1, 1), (1, 7, 1, 6), (2, 7, 5, 1)])
@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_gradients_edge_shapes(shape, fmt):
    fast, ref = _pair((7, 3, (4, 5), (2, 3), 3), 5, torch.float32, seed=4)
    check_against_float64(fast, ref, make_input(shape, fmt, device=DEVICE, seed=1), fmt)


def test_ties_in_the_max_pool_give_pytorchs_input_gradient():
    fast, ref = _pair((5, 2, (3, 4), (2, 3), 4), 5, torch.float64, seed=8)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (2, 5, 6, 7), generator=g).to(DEVICE, torch.float64)  # many repeated values
    grad = torch.randn(2, fast.spec.out_channels, 6, 7, generator=g, dtype=torch.float64).to(DEVICE)
    xs = [x.clone().requires_grad_() for _ in range(2)]
    ref(xs[0]).backward(grad)
    fast(xs[1]).backward(grad)
    assert_close(xs[1].grad, xs[0].grad, torch.float64, "grad x with ties")


@pytest.mark.fine_tiles  # many programs to reorder
def test_backward_is_deterministic():
    fast, _ = _pair((20, 9, (12, 17), (5, 7), 6), 5, torch.float32, seed=9)
    x = make_input((2, 20, 8, 7), "nhwc", device=DEVICE, seed=2).requires_grad_()
    grad = torch.randn(2, fast.spec.out_channels, 8, 7, device=DEVICE)
    runs = []
    for seed in range(2):  # every launch's programs in two different orders
        x.grad = None
        fast.zero_grad(set_to_none=True)
        with shuffled_programs(seed):
            fast(x).backward(grad)
        runs.append([x.grad.clone()] + [p.grad.clone() for p in fast.parameters()])
    for a, b in zip(*runs):
        assert torch.equal(a, b)


@pytest.mark.fine_tiles  # two channel blocks
@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_atomic_backward_matches_float64(fmt):
    # deterministic_backward = False: weight gradients accumulated with float atomics, programs in random order;
    # 40 input channels span two channel blocks, so the bias must still be added once per pixel chunk
    fast, ref = _pair((40, 9, (12, 17), (5, 7), 6), 5, torch.float32, seed=10, k2=3)
    fast.deterministic_backward = False
    with shuffled_programs(11):
        check_against_float64(fast, ref, make_input((2, 40, 6, 5), fmt, torch.float32, DEVICE, seed=3), fmt)


def test_deterministic_algorithms_mode_takes_the_deterministic_path(monkeypatch):
    # as PyTorch's own ops: torch.use_deterministic_algorithms(True) wins over deterministic_backward = False
    from fastinception.kernels import conv2d_backward, stem_backward

    seen = []
    for module, name in ((conv2d_backward, "launch_conv2d_relu_weight_grad"),
                         (stem_backward, "launch_stem_weight_grad")):
        original = getattr(module, name)

        def spy(*args, _original=original, **kwargs):
            seen.append(kwargs["deterministic"])
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    fast, _ = _pair((6, 3, (4, 5), (2, 3), 2), 5, torch.float32, seed=12)
    fast.deterministic_backward = False
    x = make_input((2, 6, 4, 4), "nchw", device=DEVICE, seed=4).requires_grad_()
    fast(x).sum().backward()
    assert seen and not any(seen), "deterministic_backward = False should use atomics"
    seen.clear()
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        fast(x).sum().backward()
    finally:
        torch.use_deterministic_algorithms(was)
    assert seen and all(seen), "under torch.use_deterministic_algorithms(True) no atomics"


@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_bf16_gradients_match_float64(fmt):
    # on a GPU the kernels run in bf16; under the interpreter (which computes bf16 wrongly) the ops run fp32 and
    # round to bf16: right either way, within bf16's tolerance
    fast, ref = _pair((9, 4, (5, 6), (3, 4), 3), 5, torch.bfloat16, seed=13, k2=3)
    check_against_float64(fast, ref, make_input((2, 9, 5, 6), fmt, torch.bfloat16, DEVICE, seed=5), fmt)


def test_autocast_bf16_on_the_triton_backend_matches_float64():
    fast, ref = _pair((9, 4, (5, 6), (3, 4), 3), 5, torch.float32, seed=14)
    x = make_input((2, 9, 5, 6), "nhwc", torch.float32, DEVICE, seed=6)
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        got = fast(x)
    assert got.dtype == torch.bfloat16
    exact = copy.deepcopy(ref).to(torch.bfloat16).double()  # autocast computes with bf16-rounded weights
    assert_close(got, exact(x.to(torch.bfloat16).double()), torch.bfloat16, "autocast bf16 forward")


def test_only_needed_gradients_are_computed():
    fast, ref = _pair((6, 3, (4, 5), (2, 3), 2), 5, torch.float32, seed=5)
    for name, p in fast.named_parameters():
        p.requires_grad_(name.startswith("p4_2"))
    x = make_input((2, 6, 5, 5), "nchw", device=DEVICE)
    fast(x).sum().backward()
    ref(x).sum().backward()
    for name, p in fast.named_parameters():
        if name.startswith("p4_2"):
            assert_close(p.grad, dict(ref.named_parameters())[name].grad, torch.float32, name)
        else:
            assert p.grad is None, name


def test_double_backward_is_refused():
    fast, _ = _pair((4, 2, (2, 3), (2, 2), 2), 3, torch.float64, seed=1)
    x = make_input((1, 4, 3, 3), "nchw", torch.float64, DEVICE).requires_grad_()
    with pytest.raises(RuntimeError, match="does not support double backward"):
        torch.autograd.grad(fast(x).sum(), x, create_graph=True)


def _small_net(fast: bool, seed: int):
    torch.manual_seed(seed)
    kw = {"backend": "triton"} if fast else {}
    block = FastInception if fast else Inception
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        block(8, 4, (4, 6), (2, 3), 3, **kw),
        nn.MaxPool2d(2),
        block(16, 6, (5, 8), (2, 4), 4, k3=3, **kw),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(22, 10),
    ).to(DEVICE)


def _losses(model, steps, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for i in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x[i % 4 :: 4]), y[i % 4 :: 4])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.slow
def test_twenty_sgd_steps_follow_the_reference():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 1, 4, 4, generator=g).to(DEVICE)  # tiny: every launch is interpreted on CPU
    y = torch.randint(0, 10, (8,), generator=g).to(DEVICE)
    want = _losses(_small_net(False, 0), 20, x, y)
    got = _losses(_small_net(True, 0), 20, x, y)
    assert want[-1] < want[0]
    # fp32 rounding differences grow over the steps; 1e-4 relative still tells two different trajectories apart.
    for i, (a, b) in enumerate(zip(got, want)):
        assert abs(a - b) <= 1e-4 * abs(b), f"step {i}: {a} vs {b}"


@pytest.mark.skipif(DEVICE == "cpu", reason="a whole GoogLeNet takes many minutes under the Triton interpreter; "
                    "the small net above stands in")
def test_googlenet_twenty_sgd_steps_follow_the_reference():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(32, 1, 64, 64, generator=g).to(DEVICE)
    y = torch.randint(0, 10, (32,), generator=g).to(DEVICE)
    torch.manual_seed(0)
    ref = googlenet().to(DEVICE)
    torch.manual_seed(0)
    fast = googlenet(fast=True, backend="triton").to(DEVICE)
    want, got = _losses(ref, 20, x, y), _losses(fast, 20, x, y)
    # tf32 convolutions on both sides (PyTorch's default for cuDNN): rounding differs, trajectories stay close.
    for i, (a, b) in enumerate(zip(got, want)):
        assert abs(a - b) <= 2e-2 * abs(b), f"step {i}: {a} vs {b}"


def test_backward_runs_triton_kernels_only():
    fast, _ = _pair((10, 4, (5, 6), (3, 4), 3), 5, torch.float32, seed=6)
    x = make_input((2, 10, 5, 4), "nhwc", device=DEVICE, seed=4).requires_grad_()
    grad = torch.randn(2, fast.spec.out_channels, 5, 4, device=DEVICE).contiguous(memory_format=torch.channels_last)
    fast(x).backward(grad)  # compile / tune first
    for grad_layout, allowed in ((torch.channels_last, []), (torch.contiguous_format, ["clone", "contiguous"])):
        # an NCHW output gradient is copied to channels-last once (channels are the kernels' K); nothing else
        x.grad = None
        fast.zero_grad(set_to_none=True)  # so the engine assigns .grad instead of adding into it
        y = fast(x)
        with record_launches() as log:
            y.backward(grad.contiguous(memory_format=grad_layout))
        assert log.launches > 0
        compute = [op for op in log.ops if op not in BACKWARD_BUFFER_OPS]
        assert compute == allowed, f"PyTorch ops in the triton backward: {compute}"
