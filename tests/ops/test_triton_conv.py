"""The single conv of the triton backend's training mode (``ops/triton_conv.py``), forward and every gradient on the
kernels, against float64 ``F.conv2d``: rectangular and strided kernels, with and without bias, both layouts."""
import pytest
import torch
import torch.nn.functional as F

from fastinception.ops.triton_conv import triton_conv2d

from helpers import DEVICE, assert_close, make_input, make_weight, without_tf32

CASES = [((1, 7), (1, 1), (0, 3), True), ((3, 3), (2, 2), (0, 0), False), ((3, 1), (1, 1), (1, 0), True)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("fmt", ["nhwc", "nchw"])
@pytest.mark.parametrize("kernel, stride, padding, bias", CASES, ids=str)
def test_forward_and_gradients_match_float64(kernel, stride, padding, bias, fmt, dtype):
    gen = torch.Generator().manual_seed(kernel[0] + 3 * kernel[1])
    x = make_input((2, 6, 9, 7), fmt, dtype, DEVICE, gen=gen).requires_grad_()
    w = make_weight(gen, (5, 6, *kernel), dtype).requires_grad_()
    b = torch.randn(5, generator=gen, dtype=torch.float64).to(DEVICE, dtype).requires_grad_() if bias else None
    leaves = [x, w] + ([b] if bias else [])
    leaves64 = [t.detach().double().requires_grad_() for t in leaves]
    want = F.conv2d(leaves64[0], leaves64[1], leaves64[2] if bias else None, stride, padding)
    with without_tf32():
        got = triton_conv2d(x, w, b, stride, padding)
        grad = torch.randn(want.shape, generator=gen, dtype=torch.float64)
        got_grads = torch.autograd.grad(got, leaves, grad.to(DEVICE, dtype))
    assert_close(got, want, dtype, "forward")
    for name, g, w64 in zip(["x", "weight", "bias"], got_grads, torch.autograd.grad(want, leaves64, grad)):
        assert_close(g, w64, dtype, f"{name} grad")
