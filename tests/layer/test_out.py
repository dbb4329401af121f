"""``out=``: a caller's tensor or channel slice receives the block's result, on both backends, with gradients that
reach everything they should (also through the rest of a shared buffer), whatever memory it shares with the input.
"""
import copy

import pytest
import torch

from fastinception import FastInception, Inception

from helpers import DEVICE, FORMATS, assert_close, make_input

ARGS = (6, 3, (4, 5), (2, 3), 2)
BACKENDS = ["torch", "triton"]


def _pair(backend, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    ref = Inception(*ARGS, dtype=dtype, device=DEVICE)
    return FastInception.from_module(ref, backend=backend), ref


@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_shared_buffer_keeps_the_gradient_of_its_other_channels(backend, fmt):
    # DenseNet-style: the block's input also fills the first channels of the buffer the block writes into
    fast, ref = _pair(backend)
    k, c = 6, fast.spec.out_channels

    def run(block_into):
        a0 = make_input((2, 6, 5, 4), fmt, torch.float64, DEVICE, seed=1).requires_grad_(True)
        a = a0 * 2.0
        buf = torch.empty(2, k + c, 5, 4, dtype=torch.float64, device=DEVICE).contiguous(memory_format=FORMATS[fmt])
        buf[:, :k] = a
        block_into(a, buf[:, k:])
        (buf * torch.linspace(-1, 1, buf.numel(), dtype=torch.float64, device=DEVICE).view_as(buf)).sum().backward()
        return a0.grad

    def reference(a, view):
        view.copy_(ref(a))

    want = run(reference)
    got = run(lambda a, view: fast(a, out=view))
    assert got is not None, "the gradient through the buffer's other channels was dropped"
    assert_close(got, want, torch.float64, f"{backend} grad of the input through a shared buffer")


@pytest.mark.parametrize("backend", BACKENDS)
def test_disjoint_slices_of_one_buffer_are_accepted(backend):
    # x and out interleave in memory (N >= 2) but share no element
    fast, ref = _pair(backend, torch.float32)
    c = fast.spec.out_channels
    for fmt in (torch.contiguous_format, torch.channels_last):
        buf = torch.randn(3, 6 + c, 5, 4, device=DEVICE).contiguous(memory_format=fmt)
        x = buf[:, :6]
        want = ref(x.clone())
        with torch.no_grad():
            assert fast(x, out=buf[:, 6:]) is not None
        assert_close(buf[:, 6:], want, torch.float32, f"{backend} into the rest of the input's buffer")


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_out_overlapping_the_input_receives_the_block_of_the_old_input(backend):
    fast, ref = _pair(backend, torch.float32)
    c = fast.spec.out_channels
    buf = torch.randn(2, 6 + c, 5, 5, device=DEVICE)
    x = buf[:, :6]
    want = ref(x.clone())
    with torch.no_grad():
        fast(x, out=buf[:, 2 : 2 + c])  # channels 2..5 are both input and output
    assert_close(buf[:, 2 : 2 + c], want, torch.float32, f"{backend} into a slice overlapping its input")


def test_an_out_whose_elements_share_memory_is_refused():
    fast, _ = _pair("torch", torch.float32)
    c = fast.spec.out_channels
    out = torch.empty(2, c, 5, 1).expand(2, c, 5, 5)
    with pytest.raises(ValueError, match="out must not have elements that share memory"):
        fast(torch.randn(2, 6, 5, 5), out=out)


@pytest.mark.parametrize("compiler", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_compile_fullgraph_with_out(backend, compiler):
    if backend == "triton" and compiler == "inductor":
        pytest.skip("the triton backend's case compiles Dynamo's graph alone: the aot_eager case is this test")
    fast, ref = _pair(backend, torch.float32)
    c = fast.spec.out_channels

    def into_buffer(block, x):
        buf = torch.zeros(x.shape[0], c + 3, *x.shape[2:], device=x.device)
        block(x, out=buf[:, 3:])
        return buf

    # the triton backend's kernels are opaque to the compiler: Dynamo's graph alone ("eager") where they run
    compiled = torch.compile(into_buffer, fullgraph=True, backend="eager" if backend == "triton" else compiler)
    x = make_input((2, 6, 5, 4), "nhwc", torch.float32, DEVICE, seed=2)
    with torch.no_grad():
        got = compiled(fast, x)
    assert torch.equal(got[:, :3], torch.zeros_like(got[:, :3]))
    assert_close(got[:, 3:], ref(x), torch.float32, f"compiled {backend} with out=")
    torch._dynamo.reset()


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_out_slice_of_a_tracked_buffer_keeps_every_gradient(backend):
    # the overwritten values of the buffer get a zero gradient, its other channels theirs: compiled as in eager
    # (compiled graphs lose that zero under an in-place write, so a tracked out= gets the result by copy_ there)
    fast, _ = _pair(backend, torch.float32)
    c = fast.spec.out_channels

    def run(fn):
        x = make_input((2, 6, 5, 4), "nhwc", torch.float32, DEVICE, seed=2).requires_grad_()
        buf = torch.zeros(2, c + 3, 5, 4, device=DEVICE, requires_grad=True)
        big = buf * 1.0
        y = fn(x, big[:, 3:])
        (y.square().sum() + 2 * big[:, :3].sum()).backward()
        grads = [big.detach(), x.grad, buf.grad, *(p.grad.clone() for p in fast.parameters())]
        fast.zero_grad()
        return grads

    want = run(lambda x, out: fast(x, out=out))
    got = run(torch.compile(lambda x, out: fast(x, out=out), fullgraph=True, backend="aot_eager"))
    assert torch.equal(want[2][:, :3], torch.full_like(want[2][:, :3], 2.0)) and not want[2][:, 3:].any()
    for k, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, torch.float32, f"compiled {backend} with a tracked out=, result {k}")
    torch._dynamo.reset()


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_place_ops_on_the_output_keep_backward_working(backend):
    # the reference accepts these after the block; so must a drop-in layer (the triton backward saves a compact
    # ReLU mask, not the output)
    fast, ref = _pair(backend)
    ops = {
        "add_": lambda y: y.add_(0.5),
        "relu_": lambda y: y.sub_(0.3).relu_(),
        "dropout(inplace=True)": lambda y: torch.nn.functional.dropout(y, 0.5, training=True, inplace=True),
    }
    for name, op in ops.items():
        grads = []
        for block in (ref, fast):
            x = make_input((2, 6, 5, 4), "nchw", torch.float64, DEVICE, seed=3).requires_grad_(True)
            torch.manual_seed(4)  # the same dropout mask for both
            y = op(block(x))
            (y * torch.arange(y.numel(), dtype=y.dtype, device=DEVICE).view_as(y)).sum().backward()
            grads.append(x.grad)
        assert_close(grads[1], grads[0], torch.float64, f"{backend} grad x after {name} on the output")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_refused_call_leaves_out_untouched(backend):
    # mixed parameter dtypes are caught before any work: the caller's out keeps what it held
    fast, _ = _pair(backend, torch.float32)
    fast.p3_2.double()
    out = torch.full((2, fast.spec.out_channels, 5, 5), 7.0, device=DEVICE)
    with pytest.raises(TypeError, match=r"differs from the dtype torch.float64 of parameter w3b \(p3_2.weight\)"):
        fast(torch.randn(2, 6, 5, 5, device=DEVICE), out=out)
    assert (out == 7.0).all()


def test_params_that_disagree_with_the_spec_are_refused():
    fast, _ = _pair("torch", torch.float32)
    x = torch.randn(2, 6, 5, 5)
    broken = copy.deepcopy(fast)
    broken.p4_2 = torch.nn.Conv2d(6, 1, kernel_size=1)  # the spec says c4 = 2
    for backend in BACKENDS:
        broken.backend = backend
        with pytest.raises(ValueError, match=r"parameter w4 \(p4_2.weight\) must have shape \(2, 6, 1, 1\)"):
            broken(x)
    from fastinception import BlockParams, inception

    params = fast.params()._replace(b2b=torch.zeros(4))
    with pytest.raises(ValueError, match=r"parameter b2b \(p2_2.bias\) must have shape \(5,\)"):
        inception(x, params, fast.spec)
    with pytest.raises(TypeError, match="params must be a fastinception.BlockParams"):
        inception(x, list(fast.params()), fast.spec)
    with pytest.raises(TypeError, match=r"parameter w1 \(p1_1.weight\) must be a torch.Tensor, got str"):
        inception(x, BlockParams("w", *fast.params()[1:]), fast.spec)
