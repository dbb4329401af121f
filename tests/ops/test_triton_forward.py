"""The whole block on the triton backend against the reference in float64 (interpreter on CPU, compiled on GPU)."""
import pytest
import torch

from fastinception import FastInception, Inception

from helpers import (
    ALLOCATION_AND_VIEW_OPS,
    DEVICE,
    assert_close,
    check_against_float64,
    googlenet_cases,
    make_input,
    random_cases,
    record_launches,
    seeded_pair,
)

# bf16 runs on the interpreter too: the ops compute it in fp32 there (the interpreter has no bf16 arithmetic)
DTYPES = [
    pytest.param(torch.float32, id="fp32"),
    pytest.param(torch.float16, id="fp16"),
    pytest.param(torch.bfloat16, id="bf16"),
]


def _pair(args, k3, dtype, seed, k2=3):
    return seeded_pair(args, k2, k3, dtype, seed, "triton", DEVICE)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("args, k2, k3, shape, fmt", random_cases(20, seed=31, max_channels=40, fast=8))
def test_forward_random_configs(args, k2, k3, shape, fmt, dtype):
    fast, ref = _pair(args, k3, dtype, seed=sum(shape), k2=k2)
    check_against_float64(fast, ref, make_input(shape, fmt, dtype, DEVICE, seed=args[1]), fmt, grads=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("args, k2, k3, shape, fmt", googlenet_cases(side=3, batch=1, fast=("3a", "4e")))
def test_forward_googlenet_configs(args, k2, k3, shape, fmt, dtype):
    fast, ref = _pair(args, k3, dtype, seed=args[0], k2=k2)
    check_against_float64(fast, ref, make_input(shape, fmt, dtype, DEVICE, seed=args[2][0]), fmt, grads=False)


@pytest.mark.parametrize("mode, launches", [("streams", 3), ("serial", 3), ("grouped", 2)])
def test_forward_launches_and_no_torch_compute(mode, launches):
    fast, _ = _pair((12, 5, (6, 7), (3, 4), 4), 5, torch.float32, seed=0)
    fast.branch_mode = mode
    x = make_input((2, 12, 5, 6), "nhwc", device=DEVICE)
    fast(x)  # compile / tune first
    with torch.no_grad(), record_launches() as log:
        fast(x)
    assert log.launches == launches
    compute = [op for op in log.ops if op not in ALLOCATION_AND_VIEW_OPS]
    # at most the two k x k weights copied into the kernels' layout (ops.triton_function.kernel_layout)
    assert set(compute) <= {"clone"} and len(compute) <= 2, f"PyTorch ops in the triton forward: {compute}"


def test_out_slice_of_poisoned_buffer():
    fast, ref = _pair((9, 4, (5, 6), (2, 3), 3), 5, torch.float32, seed=1)
    x = make_input((2, 9, 6, 5), "nhwc", device=DEVICE, seed=3)
    c = fast.spec.out_channels
    big = torch.full((2, c + 7, 6, 5), float("nan"), device=DEVICE).contiguous(memory_format=torch.channels_last)
    view = big[:, 5 : 5 + c]
    with torch.no_grad():
        assert fast(x, out=view) is view
        assert_close(view, ref(x), torch.float32, "out slice")
    assert torch.isnan(big[:, :5]).all() and torch.isnan(big[:, 5 + c :]).all()


def test_empty_batch():
    fast, _ = _pair((4, 2, (3, 2), (1, 2), 2), 5, torch.float32, seed=2)
    assert fast(torch.randn(0, 4, 3, 3, device=DEVICE)).shape == (0, 8, 3, 3)


@pytest.mark.skipif(DEVICE == "cuda", reason="the CPU error applies where there is no CUDA device")
def test_cpu_without_interpreter_says_how(monkeypatch):
    fast, _ = _pair((4, 2, (3, 2), (1, 2), 2), 5, torch.float32, seed=2)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1.*backend='torch'"):
        fast(torch.randn(1, 4, 3, 3))


def test_auto_backend_picks_by_device():
    from fastinception.functional import resolve_backend

    assert resolve_backend("auto", torch.empty(1, device="meta")) == "torch"
    if DEVICE == "cuda":
        assert resolve_backend("auto", torch.empty(1, device="cuda")) == "triton"


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_gradients_flow_through_an_out_slice(backend):
    torch.manual_seed(5)
    ref = Inception(6, 3, (4, 5), (2, 3), 2, device=DEVICE)
    fast = FastInception.from_module(ref, backend=backend)
    c = fast.spec.out_channels
    x = make_input((2, 6, 5, 4), "nhwc", device=DEVICE, seed=2).requires_grad_()
    weight = torch.randn(1, c + 7, 1, 1, device=DEVICE)
    big = torch.zeros(2, c + 7, 5, 4, device=DEVICE)
    fast(x, out=big[:, 3 : 3 + c])
    (big * weight).sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    (ref(x_ref) * weight[:, 3 : 3 + c]).sum().backward()
    assert_close(x.grad, x_ref.grad, torch.float32, "grad x through the out slice")
    ref_params = dict(ref.named_parameters())
    for name, p in fast.named_parameters():
        assert_close(p.grad, ref_params[name].grad, torch.float32, f"grad {name} through the out slice")
