"""What FastInception supports beyond a plain call (README, "What is supported"): each claim has its test here."""
import pytest
import torch

from fastinception import FastInception, Inception

from helpers import DEVICE, assert_close, make_input

ARGS = (6, 3, (4, 5), (2, 3), 2)


def _pair(backend):
    torch.manual_seed(0)
    ref = Inception(*ARGS, dtype=torch.float64, device=DEVICE)
    return FastInception.from_module(ref, backend=backend), ref


def _x(seed=0):
    return make_input((2, 6, 5, 4), "nchw", torch.float64, DEVICE, seed=seed)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_vmap_is_refused_clearly(backend):
    fast, _ = _pair(backend)
    with pytest.raises(RuntimeError, match="FastInception does not support torch.func.vmap"):
        torch.func.vmap(fast)(_x().unsqueeze(0))


def test_func_grad_and_jvp_work_on_the_torch_backend():
    fast, ref = _pair("torch")
    x, v = _x(1), _x(2)
    assert_close(torch.func.grad(lambda t: fast(t).square().sum())(x),
                 torch.func.grad(lambda t: ref(t).square().sum())(x), torch.float64, "func.grad")
    assert_close(torch.func.jvp(fast, (x,), (v,))[1], torch.func.jvp(ref, (x,), (v,))[1], torch.float64, "jvp")


def test_func_transforms_are_refused_clearly_on_the_triton_backend():
    fast, _ = _pair("triton")
    with pytest.raises(RuntimeError, match="triton backend of FastInception does not support torch.func"):
        torch.func.grad(lambda t: fast(t).sum())(_x())


def test_double_backward_works_on_the_torch_backend():
    fast, ref = _pair("torch")
    grads = []
    for block in (ref, fast):
        x = _x(3).requires_grad_(True)
        (g,) = torch.autograd.grad(block(x).square().sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.square().sum(), x)
        grads.append(gg)
    assert_close(grads[1], grads[0], torch.float64, "second derivative")


def test_jit_trace_works_on_the_torch_backend_and_script_does_not():
    fast, ref = _pair("torch")
    traced = torch.jit.trace(fast, _x(4))
    assert_close(traced(_x(5)), ref(_x(5)), torch.float64, "traced")
    # TorchScript cannot compile the layer's Python (keyword-only arguments, ...)
    with pytest.raises(torch.jit.frontend.NotSupportedError):
        torch.jit.script(fast)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_export(backend):
    fast, ref = _pair(backend)
    program = torch.export.export(fast, (_x(6),))
    assert_close(program.module()(_x(7)), ref(_x(7)), torch.float64, f"exported {backend}")
