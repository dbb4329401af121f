"""Training mode (BatchNorm with batch statistics) on the triton backend with BatchNorm fused into the kernels
(``ops/program_bn_triton.py``): Inception-v3's blocks against torchvision-shaped copies and a BN-Inception block
against the PyTorch plan, in float64 to rounding and float32 within 1e-5; running statistics, momentum None,
bitwise repeatability, launch counts and no PyTorch compute op, torch.compile, and the cases left to the general
path."""
import copy

import pytest
import torch

from fastinception import inception_v3
from fastinception.blocks.programs import MAX_3X3, bn_inception_block, inception_resnet_block35
from fastinception.ops.program_bn_triton import bn_backward_launch_count, bn_launch_count
from fastinception.program_block import fused_training_applies, run_with_batchnorm
from fastinception.testing import rel_error
from fastinception.v3_blocks import FastInceptionA, FastInceptionB, FastInceptionC, FastInceptionD, FastInceptionE

from helpers import (
    ALLOCATION_AND_VIEW_OPS,
    BACKWARD_BUFFER_OPS,
    DEVICE,
    TVInceptionA,
    TVInceptionB,
    TVInceptionC,
    TVInceptionD,
    TVInceptionE,
    make_input,
    randomise_batchnorms,
    record_launches,
    without_tf32,
)

# (torchvision-shaped copy, fused block, input channels, side): small widths and sides
PAIRS = {
    "A": (lambda: TVInceptionA(6, 4), lambda: FastInceptionA(6, 4), 6, 5),
    "B": (lambda: TVInceptionB(6), lambda: FastInceptionB(6), 6, 7),
    "C": (lambda: TVInceptionC(6, 4), lambda: FastInceptionC(6, 4), 6, 4),
    "D": (lambda: TVInceptionD(6), lambda: FastInceptionD(6), 6, 7),
    "E": (lambda: TVInceptionE(6), lambda: FastInceptionE(6), 6, 3),
    "E_fid_2": (lambda: TVInceptionE(6, "max"), lambda: FastInceptionE(6, MAX_3X3), 6, 3),
}
# launches of one forward / one backward (every gradient wanted, no split weight-grad sum) per block type:
# 3 per conv (conv with statistics, finalize, BatchNorm+ReLU), 1 per pool; backward 5 per conv (3 BatchNorm, weight
# grad, input grad), 1 per pool (docs/architecture.md)
LAUNCHES = {"A": (22, 36), "B": (13, 21), "C": (31, 51), "D": (19, 31), "E": (28, 46), "E_fid_2": (28, 46)}
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _pair(name, dtype, momentum=0.1):
    make_tv, make_fast, cin, side = PAIRS[name]
    torch.manual_seed(0)
    tv, fast = make_tv(), make_fast()
    fast.backend = "triton"
    randomise_batchnorms(tv, seed=1)
    for m in tv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = momentum
            m.num_batches_tracked.fill_(3)
    fast.load_state_dict(tv.state_dict())
    for m in fast.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = momentum
    # channels-last weights: the backward reads them so, with no copy to count
    tv = tv.to(DEVICE, dtype).train()
    fast = fast.to(DEVICE, dtype).to(memory_format=torch.channels_last).train()
    return tv, fast, make_input((2, cin, side, side), "nhwc", dtype, seed=2, device=DEVICE)


def _step(block, x, grad_seed=3, record=False):
    """One training step: (output, [grad of x and of every parameter], state_dict copy, launch logs)."""
    x = x.clone().requires_grad_()
    logs = []
    with record_launches() if record else _null() as log:
        y = block(x)
    logs.append(log)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=torch.float64)
    g = g.to(y).contiguous(memory_format=torch.channels_last)
    params = list(block.parameters())
    with record_launches() if record else _null() as log:
        grads = torch.autograd.grad(y, [x, *params], g)
    logs.append(log)
    return y.detach(), list(grads), {k: v.clone() for k, v in block.state_dict().items()}, logs


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _assert_matches(tv, fast, x, dtype):
    want_y, want_g, want_state, _ = _step(tv, x)
    got_y, got_g, got_state, logs = _step(fast, x, record=True)
    tol = TOL[dtype]
    assert rel_error(got_y, want_y) <= tol, "forward"
    names = ["x"] + [n for n, _ in tv.named_parameters()]
    for name, g, w in zip(names, got_g, want_g):
        assert rel_error(g, w) <= tol, name
    for (name, a), b in zip(want_state.items(), got_state.values()):
        assert (torch.equal(a, b) if "num_batches" in name else rel_error(b, a) <= tol), name
    return logs


@pytest.mark.parametrize("name", [n if n == "A" else pytest.param(n, marks=pytest.mark.slow) for n in PAIRS])
def test_v3_block_trains_as_torchvisions_in_float64_with_its_launch_count_and_no_pytorch_compute(name):
    tv, fast, x = _pair(name, torch.float64)
    assert fused_training_applies(fast.program, [(u.conv.weight, None) for u in fast.units()],
                                  [u.bn for u in fast.units()], x, "triton")
    forward, backward = _assert_matches(tv, fast, x, torch.float64)
    assert forward.launches == bn_launch_count(fast.program) == LAUNCHES[name][0]
    assert backward.launches == bn_backward_launch_count(fast.program, x.shape, x.device) == LAUNCHES[name][1]
    assert [op for op in forward.ops if op not in ALLOCATION_AND_VIEW_OPS] == []
    assert [op for op in backward.ops if op not in BACKWARD_BUFFER_OPS] == []


@pytest.mark.parametrize("name", ["A", pytest.param("C", marks=pytest.mark.slow)])
def test_v3_block_trains_as_torchvisions_in_float32(name):
    tv, fast, x = _pair(name, torch.float32)
    with without_tf32():
        _assert_matches(tv, fast, x, torch.float32)


@pytest.mark.slow  # the kernels' own test covers momentum None by default (tests/kernels/test_batchnorm.py)
def test_momentum_none_keeps_the_cumulative_average_over_two_steps():
    tv, fast, x = _pair("A", torch.float64, momentum=None)
    for seed in (2, 5):
        x = make_input(x.shape, "nhwc", torch.float64, seed=seed, device=DEVICE)
        _assert_matches(tv, fast, x, torch.float64)
    assert all(m.num_batches_tracked.item() == 5 for m in fast.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.slow  # the kernels' own tests rerun for the same bits by default (tests/kernels/test_batchnorm.py)
def test_two_runs_give_the_same_bits():
    _, fast, x = _pair("A", torch.float32)
    again = copy.deepcopy(fast)
    first, second = _step(fast, x), _step(again, x)
    assert torch.equal(first[0], second[0])
    assert all(torch.equal(a, b) for a, b in zip(first[1], second[1]))
    assert all(torch.equal(a, b) for a, b in zip(first[2].values(), second[2].values()))


def _bn_inception_modules(dtype):
    program = bn_inception_block(6, 3, (4, 5), (3, 4), 2)
    torch.manual_seed(0)
    convs = [torch.nn.Conv2d(s.in_channels, s.conv.out_channels, s.conv.kernel, padding=s.conv.padding)
             for s in program.conv_slots()]
    bns = torch.nn.ModuleList(torch.nn.BatchNorm2d(s.conv.out_channels) for s in program.conv_slots())
    randomise_batchnorms(bns, seed=3)
    return program, torch.nn.ModuleList([*convs, *bns]).to(DEVICE, dtype).train()


def test_bn_inception_block_with_conv_biases_trains_as_the_pytorch_plan_in_float64():
    # BN-Inception's convs have a bias before their BatchNorm (its gradient is zero up to rounding: pooled)
    program, modules = _bn_inception_modules(torch.float64)
    x = make_input((2, 6, 5, 5), "nhwc", torch.float64, seed=4, device=DEVICE)
    results = []
    for backend in ("torch", "triton"):
        mods = copy.deepcopy(modules)
        n = len(mods) // 2
        xg = x.clone().requires_grad_()
        y = run_with_batchnorm(program, [(c.weight, c.bias) for c in mods[:n]], list(mods[n:]), xg, backend, "t")
        grads = torch.autograd.grad(y.square().sum(), [xg, *mods.parameters()])
        results.append((y, grads, mods.state_dict()))
    (want_y, want_g, want_s), (got_y, got_g, got_s) = results
    assert rel_error(got_y, want_y) <= 1e-10
    assert rel_error(torch.cat([g.flatten() for g in got_g]), torch.cat([g.flatten() for g in want_g])) <= 1e-10
    for (name, a), b in zip(want_s.items(), got_s.values()):
        assert (torch.equal(a, b) if "num_batches" in name else rel_error(b, a) <= 1e-10), name


def test_mixed_train_and_eval_batchnorms_and_residual_programs_take_the_general_path():
    tv, fast, x = _pair("A", torch.float64)
    fast.branch_pool.bn.eval()
    tv.branch_pool.bn.eval()
    units = fast.units()
    assert not fused_training_applies(fast.program, [(u.conv.weight, None) for u in units], [u.bn for u in units],
                                      x, "triton")
    _assert_matches(tv, fast, x, torch.float64)
    # the BatchNorms without running statistics normalise with the batch's in eval mode too: fused
    for u in units:
        u.bn.track_running_stats, u.bn.running_mean, u.bn.running_var = False, None, None
    fast.eval()
    assert fused_training_applies(fast.program, [(u.conv.weight, None) for u in units], [u.bn for u in units], x,
                                  "triton")
    # a residual program (Inception-ResNet's), even with a BatchNorm in training mode after every conv
    program = inception_resnet_block35(in_channels=6)
    slots = program.conv_slots()
    convs = [(torch.randn(s.weight_shape, dtype=torch.float64, device=DEVICE), None) for s in slots]
    bns = [torch.nn.BatchNorm2d(s.conv.out_channels).to(DEVICE, torch.float64).train() for s in slots]
    x = make_input((2, 6, 5, 5), "nhwc", torch.float64, seed=2, device=DEVICE)
    assert not fused_training_applies(program, convs, bns, x, "triton")


def test_auto_keeps_pytorchs_convolutions_in_training():
    # the fused path runs only when the triton backend is named
    _, fast, x = _pair("A", torch.float64)
    units = fast.units()
    convs, bns = [(u.conv.weight, None) for u in units], [u.bn for u in units]
    assert fused_training_applies(fast.program, convs, bns, x, "triton")
    assert not fused_training_applies(fast.program, convs, bns, x, "auto")


def test_without_running_statistics_the_block_normalises_with_the_batchs_and_updates_nothing():
    tv, fast, x = _pair("A", torch.float64)
    for block in (tv, fast):
        for m in block.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.track_running_stats, m.running_mean, m.running_var, m.num_batches_tracked = False, None, None, None
        block.eval()
    _assert_matches(tv, fast, x, torch.float64)


def test_a_training_inception_v3_compiles_as_one_graph():
    model = inception_v3(backend="triton").to("meta").train()
    x = torch.empty(2, 3, 75, 75, device="meta")
    explanation = torch._dynamo.explain(model)(x)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons
    torch._dynamo.reset()


def test_a_compiled_training_step_matches_eager():
    # aot_eager: Dynamo's graph, functionalization of the running statistics' update, AOTAutograd's backward
    _, fast, x = _pair("A", torch.float64)
    compiled_block = copy.deepcopy(fast)
    compiled = torch.compile(compiled_block, fullgraph=True, backend="aot_eager")
    want = _step(fast, x)
    got = _step(compiled, x)
    assert rel_error(got[0], want[0]) <= 1e-12
    assert all(rel_error(a, b) <= 1e-12 for a, b in zip(got[1], want[1]))
    for (name, a), b in zip(want[2].items(), got[2].values()):
        assert (torch.equal(a, b) if "num_batches" in name else rel_error(b, a) <= 1e-12), name
    torch._dynamo.reset()


def test_v3_block_trains_as_torchvisions_in_float16():
    # fp16 (fp32 accumulators and statistics) against torchvision's block in float64 on the same fp16-rounded input
    # and weights, with torchvision's own block in fp16 as the yardstick: batch statistics of 50 pixels make fp16
    # gradients about 2% off in both (measured: x 0.0224 either way, parameters 0.028); each error within 1.25x
    # PyTorch's fp16 error, and the forward and running statistics within 1e-3
    tv, fast, x = _pair("A", torch.float64)
    fast = fast.half()
    tv.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in fast.state_dict().items()})
    tv_half = copy.deepcopy(tv).half()
    x = x.half()
    want_y, want_g, want_state, _ = _step(tv, x.double())
    got_y, got_g, got_state, _ = _step(fast, x)
    half_y, half_g, _, _ = _step(tv_half, x)
    assert got_y.dtype == torch.float16
    assert rel_error(got_y, want_y) <= max(1.25 * rel_error(half_y, want_y), 1e-3), "forward"
    names = ["x"] + [n for n, _ in tv.named_parameters()]
    for name, g, h, w in zip(names, got_g, half_g, want_g):
        assert rel_error(g, w) <= max(1.25 * rel_error(h, w), 1e-3), name
    for (name, a), b in zip(want_state.items(), got_state.values()):
        assert (torch.equal(a, b) if "num_batches" in name else rel_error(b, a) <= 1e-3), name


@pytest.mark.slow  # a whole network under the interpreter
def test_a_whole_inception_v3_trains_as_torchvisions_in_float64():
    # inception_v3() (no dropout) against the torchvision-shaped reference: logits, every gradient, running
    # statistics; the stem's units run in PyTorch, the eleven blocks on the fused training path
    from fastinception.reference.inception_v3 import Inception3

    torch.manual_seed(0)
    ref = Inception3(num_classes=10)
    randomise_batchnorms(ref, seed=1)
    fast = inception_v3(num_classes=10, dropout=0.0, backend="triton")
    fast.load_state_dict(ref.state_dict())
    ref, fast = ref.to(DEVICE, torch.float64).train(), fast.to(DEVICE, torch.float64).train()
    x = make_input((2, 3, 75, 75), dtype=torch.float64, seed=2, device=DEVICE)
    results = []
    for model in (ref, fast):
        y = model(x)
        grads = torch.autograd.grad(y.square().sum(), list(model.parameters()))
        results.append((y, grads, model.state_dict()))
    (want_y, want_g, want_s), (got_y, got_g, got_s) = results
    assert rel_error(got_y, want_y) <= 1e-9
    for (name, _), g, w in zip(ref.named_parameters(), got_g, want_g):
        assert rel_error(g, w) <= 1e-9, name
    for (name, a), b in zip(want_s.items(), got_s.values()):
        assert (torch.equal(a, b) if "num_batches" in name else rel_error(b, a) <= 1e-9), name
