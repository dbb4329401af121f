"""The block programs' column of the README's support table (``ProgramBlock``, the v3 blocks, ``inception_v3()``,
``bn_inception()``, ``inception_v4()``, ``inception_resnet_v2()``, the FID network, converted models): in-place ops on
the output, ``torch.compile(fullgraph=True)`` with no graph break, also with ``out=``, ``torch.export`` and CUDA
graphs, on both backends where the table says so.

Whole networks are traced on the meta device, where the custom ops run their fake implementations: Dynamo's and
export's tracing is what these tests check, at no cost in kernel time; the numbers of a compiled and of an exported
program are checked on blocks the Triton interpreter runs in seconds.
"""
import copy
from collections import Counter

import pytest
import torch

import fastinception
from fastinception import ProgramBlock
from fastinception.blocks import programs as P
from fastinception.fid.network import FIDInceptionV3
from fastinception.reference.inception_v3 import FIDFeatures, Inception3
from fastinception.reference.program import run_reference

from helpers import CUDA, DEVICE, assert_close, hand_written_weights, make_input, shrunk, tv_inception_v3_blocks

BACKENDS = ["torch", "triton"]
# a split, a commuted average pool and ReLU'd slices; a residual end (the output is x + the projection, then ReLU)
PROGRAMS = {"v3_E": (shrunk(P.inception_v3_e(16), 16), 4), "resnet_block35": (P.inception_resnet_block35(24), 4)}
needs_cuda = pytest.mark.skipif(not CUDA, reason="CUDA graphs need a CUDA device (benchmarks/gpu_check.sh runs this)")


def _block(name, backend, dtype=torch.float64):
    program, side = PROGRAMS[name]
    weights = hand_written_weights([s.weight_shape for s in program.conv_slots()], dtype, seed=side)
    block = ProgramBlock.from_weights(program, [(w.to(DEVICE), b.to(DEVICE)) for w, b in weights], backend=backend)
    return block, make_input((2, program.in_channels, side, side), "nhwc", dtype, DEVICE, seed=3)


IN_PLACE = {
    "add_": lambda y: y.add_(0.5),
    "relu_": lambda y: y.sub_(0.3).relu_(),
    "dropout(inplace=True)": lambda y: torch.nn.functional.dropout(y, 0.5, training=True, inplace=True),
}


@pytest.mark.parametrize("name", PROGRAMS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_in_place_ops_on_the_output_keep_backward_working(backend, name):
    # as after any PyTorch op whose backward does not read its output: the triton backward keeps a ReLU mask
    block, x = _block(name, backend)
    weights = [(w.detach().requires_grad_(), b.detach().requires_grad_()) for w, b in block.weights()]
    for op_name, op in IN_PLACE.items():
        got_x = x.clone().requires_grad_()
        torch.manual_seed(4)  # the same dropout mask for both
        y = op(block(got_x))
        weight = torch.arange(y.numel(), dtype=y.dtype, device=DEVICE).view_as(y) / y.numel()
        (y * weight).sum().backward()
        want_x = x.clone().requires_grad_()
        torch.manual_seed(4)
        want = op(run_reference(block.program, weights, want_x).clone())  # clone: relu's backward reads its output
        (want * weight).sum().backward()
        assert_close(y.detach(), want.detach(), torch.float64, f"{backend} output after {op_name}")
        assert_close(got_x.grad, want_x.grad, torch.float64, f"{backend} grad x after {op_name}")
        for (w, b), (rw, rb) in zip(block.weights(), weights):
            assert_close(w.grad, rw.grad, torch.float64, f"{backend} weight grad after {op_name}")
            assert_close(b.grad, rb.grad, torch.float64, f"{backend} bias grad after {op_name}")
        block.zero_grad()
        for pair in weights:
            for t in pair:
                t.grad = None


def _call_counts(graphs) -> Counter:
    # an op called through its packet (torch.ops.ns.op) or as its overload (ns.op.default): one name
    return Counter(str(n.target).removesuffix(".default") for g in graphs for n in g.graph.nodes
                   if n.op == "call_function")


def _converted_torchvision():
    model, report = fastinception.convert(Inception3().eval(), report=True)
    assert len(report.converted) == 11, str(report)
    for m in model.modules():
        if isinstance(m, ProgramBlock):
            m.backend = "triton"
    return model


NETWORKS = {  # each with the smallest input it takes and its programs: blocks (and the FID network's stem and pools)
    "inception_v3()": (lambda: fastinception.inception_v3(backend="triton").eval(), 75, 11),
    "inception_v3(fid=True)": (lambda: fastinception.inception_v3(fid=True, backend="triton").eval(), 75, 11),
    "bn_inception()": (lambda: fastinception.bn_inception(backend="triton").eval(), 64, 10),
    "FID network": (lambda: FIDInceptionV3.from_state_dict(FIDFeatures().net.state_dict(), backend="triton"), 32,
                    11 + 5 + 2 + 1),
    "converted torchvision Inception-v3": (_converted_torchvision, 75, 11),
    "inception_v4()": (lambda: fastinception.inception_v4(backend="triton").eval(), 75, 19),
    "inception_resnet_v2()": (lambda: fastinception.inception_resnet_v2(backend="triton").eval(), 75, 43),
}


# the FID variant, BN-Inception and Inception-v4 trace the same custom op paths as the others: under -m slow
SLOW_NETWORKS = ("inception_v3(fid=True)", "bn_inception()", "inception_v4()")


@pytest.mark.parametrize("network", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_NETWORKS else n
                                     for n in NETWORKS])
def test_a_whole_network_compiles_as_one_graph(network):
    build, side, programs = NETWORKS[network]
    model = build().to("meta")
    x = torch.empty(2, 3, side, side, device="meta")
    with torch.no_grad():  # inference: each block is one program_forward call
        explanation = torch._dynamo.explain(model)(x)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons
    assert _call_counts(explanation.graphs)["fastinception.program_forward"] == programs
    # with autograd recording (training a converted or built network): one graph still, one Function per block
    explanation = torch._dynamo.explain(model)(x)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons
    assert _call_counts(explanation.graphs)["autograd_function_apply"] == programs
    torch._dynamo.reset()


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_block_with_out_slice_gives_the_same_outputs_and_gradients(backend):
    # fullgraph: any graph break fails; aot_eager runs Dynamo's graph and AOTAutograd's backward, no code generation
    block, x = _block("v3_E", backend, torch.float32)
    c = block.program.out_channels

    def run(fn, x):
        x = x.clone().requires_grad_()
        buf = torch.zeros(2, c + 3, *block.program.out_size(4, 4), device=DEVICE, requires_grad=True)
        big = buf * 1.0
        y = fn(x, big[:, 3:])
        (y.square().sum() + big[:, :3].sum()).backward()
        return big.detach(), x.grad, buf.grad, [p.grad.clone() for p in block.parameters()]

    compiled = torch.compile(lambda x, out: block(x, out=out), fullgraph=True, backend="aot_eager")
    want = run(lambda x, out: block(x, out=out), x)
    block.zero_grad()
    got = run(compiled, x)
    for k, (g, w) in enumerate(zip(got[:3] + tuple(got[3]), want[:3] + tuple(want[3]))):
        assert_close(g, w, torch.float32, f"compiled {backend} block with out=, result {k}")
    torch._dynamo.reset()


def test_compiled_with_a_dynamic_batch_gives_the_same_outputs_and_gradients():
    # a batch size of its own per call, as the last batch of an FID run: one graph with a symbolic batch
    block, _ = _block("v3_E", "triton", torch.float32)
    compiled = torch.compile(block, dynamic=True, fullgraph=True, backend="aot_eager")
    for n in (2, 3):
        x = make_input((n, 16, 4, 4), "nhwc", torch.float32, DEVICE, seed=n)
        got_x, want_x = x.clone().requires_grad_(), x.clone().requires_grad_()
        got, want = compiled(got_x), block(want_x)
        assert_close(got, want, torch.float32, f"compiled with a dynamic batch, batch {n}")
        got.square().sum().backward()
        want.square().sum().backward()
        assert_close(got_x.grad, want_x.grad, torch.float32, f"its grad x, batch {n}")
    torch._dynamo.reset()


def test_export_of_a_converted_inception_v3_in_eval_mode():
    # the whole network exports (traced with fake tensors: no kernel runs); each block is one program_forward
    model = _converted_torchvision()
    exported = torch.export.export(model, (torch.randn(1, 3, 75, 75),))
    ops = _call_counts([exported])
    assert ops["fastinception.program_forward"] == 11
    assert ops["aten.conv2d"] == 5  # the stem's five convs, which convert() leaves alone


@pytest.mark.parametrize("backend", BACKENDS)
def test_exported_converted_blocks_compute_what_the_model_did(backend):
    model = tv_inception_v3_blocks()
    x = make_input((1, 16, 9, 9), seed=1)
    with torch.no_grad():
        want = copy.deepcopy(model).double()(x.double())
    fast = fastinception.convert(model)
    for m in fast.modules():
        if isinstance(m, ProgramBlock):
            m.backend = backend
    exported = torch.export.export(fast, (x,))
    assert_close(exported.module()(x), want, torch.float32, f"exported converted blocks, {backend}")


@needs_cuda
def test_cuda_graph_replays_a_network_forward_and_a_block_training_step():
    torch.manual_seed(0)
    model = fastinception.inception_v3(backend="triton").cuda().eval()
    static_x = torch.randn(2, 3, 75, 75, device="cuda")
    side = torch.cuda.Stream()  # warm-up first: autotuning and compiling must be done before capture
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(2):
            model(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_y = model(static_x)
    static_x.copy_(torch.randn(2, 3, 75, 75, device="cuda"))
    graph.replay()
    with torch.no_grad():
        assert_close(static_y, model(static_x), torch.float32, "graph forward of inception_v3()", tol=1e-3)

    block, x = _block("v3_E", "triton", torch.float32)
    opt = torch.optim.SGD(block.parameters(), lr=0.01)
    eager = copy.deepcopy(block)
    eager_opt = torch.optim.SGD(eager.parameters(), lr=0.01)
    static_x = x.clone()

    def step(module, optimizer, inp):
        optimizer.zero_grad(set_to_none=False)
        loss = module(inp).square().mean()
        loss.backward()
        optimizer.step()
        return loss

    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step(block, opt, static_x)
            step(eager, eager_opt, static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = step(block, opt, static_x)
    for i in range(2):  # capture does not run the step: two replays against two eager steps from the same state
        new_x = make_input(tuple(x.shape), "nhwc", device="cuda", seed=10 + i)
        static_x.copy_(new_x)
        graph.replay()
        assert_close(static_loss, step(eager, eager_opt, new_x), torch.float32, f"loss {i}", tol=1e-3)
    for p, q in zip(block.parameters(), eager.parameters()):
        assert_close(p, q, torch.float32, "parameters after replay", tol=1e-3)


# the rest of the column: torch.func, double backward, TorchScript, as FastInception's line of the table says

@pytest.mark.parametrize("backend", BACKENDS)
def test_vmap_is_refused_clearly(backend):
    block, x = _block("v3_E", backend)
    with pytest.raises(RuntimeError, match=r"a block program does not support torch.func.vmap"):
        torch.func.vmap(block)(x.unsqueeze(0))


def test_func_grad_and_jvp_work_on_the_torch_backend_and_are_refused_on_triton():
    block, x = _block("resnet_block35", "torch")
    weights = [tuple(t.detach() for t in pair) for pair in block.weights()]

    def ref(t):
        return run_reference(block.program, weights, t)

    v = make_input(tuple(x.shape), "nhwc", torch.float64, DEVICE, seed=9)
    assert_close(torch.func.grad(lambda t: block(t).square().sum())(x),
                 torch.func.grad(lambda t: ref(t).square().sum())(x), torch.float64, "func.grad")
    assert_close(torch.func.jvp(block, (x,), (v,))[1], torch.func.jvp(ref, (x,), (v,))[1], torch.float64, "jvp")
    block.backend = "triton"
    with pytest.raises(RuntimeError, match="triton backend of .* does not support torch.func transforms"):
        torch.func.grad(lambda t: block(t).sum())(x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_double_backward_works_on_the_torch_backend_and_is_refused_on_triton(backend):
    block, x = _block("v3_E", backend)
    weights = [tuple(t.detach() for t in pair) for pair in block.weights()]
    x = x.requires_grad_()
    if backend == "triton":  # its backward is not differentiable: refused when asked to build that graph
        with pytest.raises(RuntimeError, match="does not support double backward"):
            torch.autograd.grad(block(x).square().sum(), x, create_graph=True)
        return
    (g,) = torch.autograd.grad(block(x).square().sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), x)
    xr = x.detach().requires_grad_()
    (gr,) = torch.autograd.grad(run_reference(block.program, weights, xr).square().sum(), xr, create_graph=True)
    (ggr,) = torch.autograd.grad(gr.square().sum(), xr)
    assert_close(gg, ggr, torch.float64, "second derivative")


def test_jit_trace_works_on_the_torch_backend_and_script_does_not():
    block, x = _block("v3_E", "torch")
    weights = [tuple(t.detach() for t in pair) for pair in block.weights()]
    traced = torch.jit.trace(block, x)
    x2 = make_input(tuple(x.shape), "nhwc", torch.float64, DEVICE, seed=5)
    assert_close(traced(x2), run_reference(block.program, weights, x2), torch.float64, "traced")
    with pytest.raises(torch.jit.frontend.NotSupportedError):  # TorchScript cannot compile the module's Python
        torch.jit.script(block)


@pytest.mark.parametrize("backend", BACKENDS)
def test_under_autocast_it_computes_in_the_autocast_dtype(backend):
    # as nn.Conv2d: x and the weights in bf16, the result bf16 (on the interpreter the kernels compute bf16 in fp32)
    block, x = _block("v3_E", backend, torch.float32)
    weights = [(w.detach().double(), b.detach().double()) for w, b in block.weights()]
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        y = block(x)
    assert y.dtype == torch.bfloat16
    assert_close(y, run_reference(block.program, weights, x.double()), torch.bfloat16, f"autocast {backend}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_sharing_the_input_receives_the_block_of_the_old_input(backend):
    # an Inception-ResNet block keeps the input's shape: out=x overwrites the input with the block's result
    block, x = _block("resnet_block35", backend)
    weights = [tuple(t.detach() for t in pair) for pair in block.weights()]
    want = run_reference(block.program, weights, x)
    with torch.no_grad():
        h = x.clone()
        assert block(h, out=h) is h
    assert_close(h, want, torch.float64, f"{backend}: out is x")
    x0 = x.clone().requires_grad_()
    h = x0 * 1.0
    y = block(h, out=h)
    (y * want).sum().backward()
    x1 = x.clone().requires_grad_()
    (run_reference(block.program, weights, x1) * want).sum().backward()
    assert_close(y.detach(), want, torch.float64, f"{backend}: out is x, with autograd")
    assert_close(x0.grad, x1.grad, torch.float64, f"{backend}: grad x through out is x")
