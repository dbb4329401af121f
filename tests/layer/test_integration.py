"""FastInception where PyTorch users put a layer: torch.compile, autocast, CUDA graphs, side streams, devices."""
import copy

import pytest
import torch
from torch import nn

from fastinception import FastInception, Inception

from helpers import REL_TOL, assert_close, make_input

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
ARGS = (6, 3, (4, 5), (2, 3), 2)


def _two_blocks(backend, device="cpu", seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        FastInception(*ARGS, backend=backend, device=device),
        FastInception(13, 3, (4, 5), (2, 3), 2, k3=3, backend=backend, device=device),
    )


def _outputs_and_grads(model, x):
    x = x.detach().requires_grad_()
    y = model(x)
    y.square().sum().backward()
    grads = [x.grad] + [p.grad for p in model.parameters()]
    return y.detach(), grads


def _assert_same_run(model, compiled, x, dtype, what):
    want, want_grads = _outputs_and_grads(model, x)
    model.zero_grad()
    got, got_grads = _outputs_and_grads(compiled, x)
    assert_close(got, want, dtype, f"{what} output")
    for i, (g, w) in enumerate(zip(got_grads, want_grads)):
        assert_close(g, w, dtype, f"{what} grad {i}")


@pytest.mark.parametrize(
    "backend",
    ["torch", pytest.param("triton", marks=pytest.mark.skipif(
        not CUDA, reason="the triton backend compiles on CUDA; the CPU case is covered by "
        "test_compile_triton_backend_under_interpreter"))],
)
@pytest.mark.parametrize("compiler", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compile_fullgraph_same_outputs_and_grads(backend, compiler):
    # aot_eager: Dynamo's whole graph and AOTAutograd's backward, no code generation; inductor generates code too
    # (C++ on a CPU: half a minute of compiling, so under -m slow there)
    device = "cuda" if backend == "triton" else "cpu"
    model = _two_blocks(backend, device)
    compiled = torch.compile(copy.deepcopy(model), fullgraph=True, backend=compiler)
    x = make_input((2, 6, 5, 7), "nhwc", device=device)
    _assert_same_run(model, compiled, x, torch.float32, f"compile {backend}")


@pytest.mark.skipif(CUDA, reason="the interpreter case stands in for the GPU case where there is no CUDA device")
@pytest.mark.parametrize("compiler", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compile_triton_backend_under_interpreter(compiler):
    model = _two_blocks("triton")
    compiled = torch.compile(copy.deepcopy(model), fullgraph=True, backend=compiler)
    _assert_same_run(model, compiled, make_input((1, 6, 4, 5), "nchw"), torch.float32, "compile triton")
    with torch.no_grad():
        x = make_input((1, 6, 4, 5), "nhwc", seed=1)
        assert_close(compiled(x), model(x), torch.float32, "compiled inference")


@pytest.mark.parametrize(
    "device, dtype",
    [
        ("cpu", torch.bfloat16),
        pytest.param("cuda", torch.float16, marks=needs_cuda),
        pytest.param("cuda", torch.bfloat16, marks=needs_cuda),
    ],
)
def test_autocast_computes_in_the_autocast_dtype(device, dtype):
    torch.manual_seed(3)
    ref = Inception(*ARGS, device=device)
    fast = FastInception.from_module(ref)
    x = make_input((2, 6, 5, 5), "nchw", device=device)
    with torch.autocast(device, dtype=dtype):
        want = ref(x)
        got = fast(x)
    assert want.dtype == got.dtype == dtype
    assert_close(got, want, dtype, "autocast forward", tol=2 * REL_TOL[dtype])
    got.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in fast.parameters())


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("streams", marks=pytest.mark.skipif(not CUDA, reason="without CUDA there are no side streams")),
        "serial",
        "grouped",
    ],
)
def test_branch_modes_match_float64(mode):
    device = "cuda" if CUDA else "cpu"
    model = _two_blocks("triton", device)
    x = make_input((2, 6, 7, 7), "nhwc", device=device)  # 98 pixels: three full 32-pixel tiles and a ragged one
    exact = copy.deepcopy(model).double()
    for block in exact:
        block.backend = "torch"
    want, want_grads = _outputs_and_grads(exact, x.double())
    for block in model:
        block.branch_mode = mode
    got, got_grads = _outputs_and_grads(model, x)
    assert_close(got, want, torch.float32, f"{mode} forward")
    for g, w in zip(got_grads, want_grads):
        assert_close(g, w, torch.float32, f"{mode} gradients")
    if mode == "streams":  # side streams only reorder launches: the bits are the serial ones
        for block in model:
            block.branch_mode = "serial"
        model.zero_grad()
        serial, serial_grads = _outputs_and_grads(model, x)
        assert torch.equal(got, serial)
        assert all(torch.equal(g, s) for g, s in zip(got_grads, serial_grads))


def test_bad_branch_mode_is_refused():
    block = FastInception(*ARGS)
    block.branch_mode = "parallel"
    with pytest.raises(ValueError, match=r"branch mode must be one of .*got 'parallel'"):
        block(torch.randn(1, 6, 3, 3))


@needs_cuda
def test_cuda_graph_forward_and_training_step_replay():
    model = _two_blocks("triton", "cuda")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    static_x = make_input((2, 6, 7, 7), "nhwc", device="cuda")

    def step():
        opt.zero_grad(set_to_none=False)
        loss = model(static_x).square().mean()
        loss.backward()
        opt.step()
        return loss

    # Warm up on a side stream first: autotuning and compilation must be finished before capture.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)

    eager = copy.deepcopy(model)
    eager_opt = torch.optim.SGD(eager.parameters(), lr=0.01)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = step()
    # Capture does not run the step: replay twice and compare with two eager steps from the same state.
    for i in range(2):
        new_x = make_input((2, 6, 7, 7), "nhwc", device="cuda", seed=10 + i)
        static_x.copy_(new_x)
        graph.replay()
        eager_opt.zero_grad()
        eager_loss = eager(new_x).square().mean()
        eager_loss.backward()
        eager_opt.step()
        assert_close(static_loss, eager_loss, torch.float32, f"loss {i}", tol=1e-3)
    for p, q in zip(model.parameters(), eager.parameters()):
        assert_close(p, q, torch.float32, "parameters after replay", tol=1e-3)

    with torch.no_grad():
        fwd_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(fwd_graph):
            static_y = model(static_x)
        static_x.copy_(make_input((2, 6, 7, 7), "nhwc", device="cuda", seed=99))
        fwd_graph.replay()
        assert_close(static_y, model(static_x), torch.float32, "graph forward")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_kernels_launch_on_the_input_device():
    model = _two_blocks("triton", "cuda:1")
    x = make_input((2, 6, 5, 5), "nhwc", device="cuda:1")
    with torch.cuda.device(0):
        got = model(x)
    ref = _two_blocks("torch", "cuda:1")
    ref.load_state_dict(model.state_dict())
    assert got.device == torch.device("cuda:1")
    assert_close(got, ref(x), torch.float32, "cuda:1", tol=1e-3)
