"""Any block program on the Triton kernels (the interpreter on a CPU) against the reference interpreter in float64:
forward into NaN-poisoned outputs, gradients of the input and of every weight, both layouts, fp32 / fp16 / fp64,
``out=`` slices, launch counts, no PyTorch compute in the forward, and batch invariance.

The programs are the catalogue's block types with their channels divided (``shrunk``): the same branches, kernels,
strides, pools and splits at a size the interpreter runs in seconds.
"""
import dataclasses

import pytest
import torch

from fastinception import ProgramBlock
from fastinception.blocks import programs as P
from fastinception.blocks.program import BlockProgram, Branch, Conv, Pool
from fastinception.ops.program_backward_triton import backward_launch_count
from fastinception.ops.program_plan_triton import (
    ConvStep,
    PoolStep,
    PrologueStep,
    launch_count,
    run_program_triton,
    tape_of,
    triton_plan,
)
from fastinception.ops.program_triton_function import program_triton
from fastinception.reference.program import run_reference

from helpers import (
    ALLOCATION_AND_VIEW_OPS,
    BACKWARD_BUFFER_OPS,
    DEVICE,
    FORMATS,
    GPU_ONLY,
    PROGRAM_CASES,
    assert_close,
    hand_written_weights,
    make_input,
    poisoned,
    record_launches,
    shrunk,
)

# every block type, with wide convs narrowed
CASES = {name: (shrunk(program, 8) if max(program.branch_channels) > 96 else program, side)
         for name, (program, side) in PROGRAM_CASES.items()}
CASES["resnet_block35"] = (P.inception_resnet_block35(24), 5)
CASES["bn_block_max"] = (P.bn_inception_block(12, 4, (5, 6), (3, 7), 2, pool=P.BN_MAX_3X3), 6)
CASES["v3_A_tv"] = (shrunk(P.inception_v3_a(24, 8), 8), 5)
CASES["fid_E_1"] = (shrunk(P.inception_v3_e(16, P.AVG_3X3_EXCLUDE_PAD), 8), 4)
CASES["v4_reduction_A"] = (shrunk(P.inception_v4_reduction_a(12), 8), 7)
# more pointwise heads than one stem launch takes (four), and a max-pool prologue: two stem launches
CASES["six_heads"] = (BlockProgram(10, tuple(Branch((Conv(c),)) for c in (3, 4, 5, 6, 7))
                                     + (Branch((P.MAX_3X3, Conv(2))),)), 5)

# weightless, as the FID network's pools on the triton backend: a stride-2 ceil_mode max, an average without padding
CASES["pools_only"] = (BlockProgram(6, (Branch((Pool("max", 3, 2, ceil_mode=True),)),
                                        Branch((Pool("avg", 3, 2, 1, count_include_pad=False),)))), 8)

# launches of one forward, by block type: the stem, then one per remaining op (a two-conv split is one)
LAUNCHES = {"v1": 3, "v3_A": 5, "fid_A": 5, "v3_A_tv": 5, "v3_B": 5, "v3_C": 8, "v3_D": 6, "v3_E": 5, "fid_E_1": 5,
            "fid_E_2": 4, "bn_block": 5, "bn_block_max": 4, "bn_reduction": 5, "v4_C": 6, "v4_reduction_A": 5,
            "six_heads": 2, "pools_only": 2, "resnet_block8": 4, "resnet_block35": 5, "v4_mixed_3a": 2,
            "v4_mixed_4a": 5, "v4_B": 8, "v4_reduction_B": 6, "resnet_block17": 4, "resnet_mixed_7a": 6}


@pytest.fixture(autouse=True)
def _fp32_without_tf32(monkeypatch):
    # fp32 is checked at fp32's tolerance: tf32, PyTorch's default for convolutions on a GPU, which the kernels
    # follow, is off here
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


def _weights(program, dtype, seed, grad=False, fmt="nchw"):
    # fmt "nhwc": channels-last weights, as model.to(memory_format=torch.channels_last) leaves them
    pairs = hand_written_weights([s.weight_shape for s in program.conv_slots()], dtype, seed)
    return [(w.to(DEVICE).contiguous(memory_format=FORMATS[fmt]).requires_grad_(grad),
             b.to(DEVICE).requires_grad_(grad)) for w, b in pairs]


def _reference(program, weights, x):
    return run_reference(program, [(w.detach().double(), b.detach().double()) for w, b in weights],
                         x.detach().double())


def _poisoned_out(program, x, fmt):
    h, w = program.out_size(x.shape[2], x.shape[3])
    return poisoned((x.shape[0], program.out_channels, h, w), x.dtype, fmt, device=x.device)


# variants whose kernels and launch shapes other cases run: under -m slow only
SLOW_VARIANTS = ("fid_A", "v3_A_tv", "bn_block_max", "v4_reduction_A", "v4_mixed_3a", "v4_B", "v4_reduction_B",
                 "resnet_mixed_7a")


@pytest.mark.parametrize("dtype, fmt", [
    pytest.param(torch.float32, "nhwc", id="fp32-nhwc"),
    pytest.param(torch.float32, "nchw", id="fp32-nchw", marks=pytest.mark.slow),
    pytest.param(torch.float16, "nhwc", id="fp16-nhwc", marks=pytest.mark.slow),
    pytest.param(torch.float64, "nhwc", id="fp64-nhwc", marks=pytest.mark.slow),
])
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_VARIANTS else n for n in CASES])
def test_forward_launches_and_gradients_match_reference(name, dtype, fmt):
    # the forward into a NaN-poisoned out (channels-last: with its launch count and no PyTorch compute op; an NCHW
    # input is copied to channels-last first), then the gradients of x and of every weight against float64
    program, side = CASES[name]
    weights = _weights(program, dtype, seed=side, grad=True, fmt=fmt)
    x = make_input((2, program.in_channels, side, side), fmt, dtype, seed=3, device=DEVICE).requires_grad_()
    out = _poisoned_out(program, x, fmt)
    with record_launches() as log:
        y = program_triton(program, weights, x, out)
    if fmt == "nhwc":
        # autograd records this forward: one launch more, the output's ReLU mask that the backward reads
        assert log.launches == launch_count(program, recorded=True) == LAUNCHES[name] + 1
        assert [op for op in log.ops if op not in ALLOCATION_AND_VIEW_OPS] == []
    assert y.is_contiguous(memory_format=FORMATS[fmt])
    leaves64 = [t.detach().double().requires_grad_() for t in [x, *(t for pair in weights for t in pair)]]
    want = run_reference(program, list(zip(leaves64[1::2], leaves64[2::2])), leaves64[0])
    if dtype == torch.float16:
        want_forward, want = want, _reference_with_relu_masks(program, list(zip(leaves64[1::2], leaves64[2::2])),
                                                              leaves64[0], _relu_masks(program, weights, x))
        assert_close(want.detach(), want_forward.detach(), dtype, "the masked reference")
    assert_close(y, want, dtype, f"{name} forward")
    grad = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    want_grads = torch.autograd.grad(want, leaves64, grad)
    grad_y = grad.to(dtype).contiguous(memory_format=FORMATS[fmt])  # as the ops after the block give it
    with record_launches() as log:
        got_grads = torch.autograd.grad(y, [x, *(t for pair in weights for t in pair)], grad_y)
    if fmt == "nhwc":  # the backward is kernels too: every weight, bias and input gradient
        assert log.launches == backward_launch_count(program, x.shape, x.device)
        # fp16 adds x's gradient up in fp32 and rounds it once at the end
        rounding = {"_to_copy", "to"} if dtype == torch.float16 else set()
        assert [op for op in log.ops if op not in BACKWARD_BUFFER_OPS | rounding] == []
    for k, (g, w) in enumerate(zip(got_grads, want_grads)):
        assert_close(g, w, dtype, f"{name} grad {k}")


# launches of one backward with every gradient wanted (docs/architecture.md), each program at its network's size:
# with no weight grad split (S == 1 everywhere), and at batch 128 on an H200 (132 SMs), where each weight grad whose
# pixel sum is split adds its reduction launch
BACKWARD_LAUNCHES = {
    "GoogLeNet 3a": ((P.googlenet_block(192, 64, (96, 128), (16, 32), 32), 28), 14, 20),
    "BN-Inception 3a": (P.BN_INCEPTION_BLOCKS["3a"], 16, 24),
    "BN-Inception 3c": (P.BN_INCEPTION_BLOCKS["3c"], 11, 16),
    "v3 Mixed_5b": (P.INCEPTION_V3_BLOCKS["Mixed_5b"], 16, 24),
    "v3 Mixed_6a": (P.INCEPTION_V3_BLOCKS["Mixed_6a"], 9, 13),
    "v3 Mixed_6b": (P.INCEPTION_V3_BLOCKS["Mixed_6b"], 22, 33),
    "v3 Mixed_7a": (P.INCEPTION_V3_BLOCKS["Mixed_7a"], 13, 19),
    "v3 Mixed_7b": (P.INCEPTION_V3_BLOCKS["Mixed_7b"], 18, 28),
    "v3 Mixed_7c": (P.INCEPTION_V3_BLOCKS["Mixed_7c"], 18, 28),
    "FID Mixed_7c": (P.FID_INCEPTION_BLOCKS["Mixed_7c"], 18, 27),
    "v4 A": ((P.inception_v4_a(), 35), 16, 24),
    "v4 Reduction-A": ((P.inception_v4_reduction_a(), 35), 9, 13),
    "v4 C": ((P.inception_v4_c(), 8), 20, 31),
    "Block35": ((P.inception_resnet_block35(), 35), 15, 22),
    "Block8": ((P.inception_resnet_block8(), 8), 11, 16),
}


@pytest.mark.parametrize("name", BACKWARD_LAUNCHES)
def test_backward_launch_counts_at_batch_128(monkeypatch, name):
    from fastinception.kernels import conv2d_backward

    (program, side), whole, on_h200 = BACKWARD_LAUNCHES[name]
    shape = (128, program.in_channels, side, side)
    monkeypatch.setattr(conv2d_backward, "interpreting", lambda: False)  # a GPU's chunks, not the interpreter's
    assert backward_launch_count(program, shape, "meta") == on_h200  # no device to ask: an H200's 132 SMs
    monkeypatch.setattr(conv2d_backward, "_sm_count", lambda device: 0)  # no SMs to fill: no weight grad split
    assert backward_launch_count(program, shape, "meta") == whole


def _relu_masks(program, weights, x):
    """conv slot -> where the kernels' forward passes its ReLU (activation > 0), read from the forward's tape (the
    block output's slices left out of it are read from ``out``)."""
    saved, out = [], _poisoned_out(program, x, "nhwc")
    run_program_triton(program, [tuple(t.detach() for t in pair) for pair in weights], x.detach(), out,
                       allow_tf32=False, saved=saved)
    masks, tape = {}, tape_of(program, *saved, out)
    if tape.residual is not None:  # the branches' slices are the concatenation's; the projection writes out
        masks[tape.residual.slot] = (out > 0).double()
        out = tape.residual.cat
    for steps in tape.branches:
        for step in steps:
            if isinstance(step, ConvStep):
                acts = [(conv.relu, slot, dest, at) for conv, slot, dest, at in step.convs]
            elif isinstance(step, PoolStep):  # a commuted head's pool: its conv's bias and ReLU
                acts = [(step.relu, step.bias_slot, step.dest, step.out_slice)] if step.bias_slot is not None else []
            else:
                assert isinstance(step, PrologueStep)
                acts = [(step.conv.relu, step.slot, step.dest, step.out_slice)]
            for relu, slot, dest, at in acts:
                if relu:
                    masks[slot] = ((out[:, at] if at is not None else dest) > 0).double()
    return masks


def _reference_with_relu_masks(program, weights, x, masks):
    # the float64 reference with each ReLU replaced by the kernels' decision: in fp16 an activation within rounding
    # of zero may land on either side, and with it a whole pixel's share of a weight gradient (4% of the split's 3x1
    # conv's on a 2x4x4 v3 E input); fp16 in PyTorch decides from its stored activations too
    def masked(k, z):
        if z.shape != masks[k].shape:
            raise AssertionError(f"conv {k}: mask {tuple(masks[k].shape)} for output {tuple(z.shape)}")
        return z * masks[k]

    return run_reference(program, weights, x, relu=masked)


# the other dtypes and NCHW run the same kernels (NCHW x is copied to channels-last once): three block types with
# every kind of launch between them in the default run, every type under -m slow
QUICK = ("v3_C", "fid_E_2", "bn_reduction", "six_heads")
DTYPE_LAYOUTS = [(torch.float32, "nchw"), (torch.float16, "nhwc"), (torch.bfloat16, "nhwc"), (torch.float64, "nhwc")]


@pytest.mark.parametrize("dtype, fmt", [
    pytest.param(dtype, fmt, id=f"{str(dtype)[6:]}-{fmt}", marks=[] if dtype == torch.float16 or fmt == "nchw"
                 else pytest.mark.slow) for dtype, fmt in DTYPE_LAYOUTS])
@pytest.mark.parametrize("name", [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in CASES])
def test_forward_matches_reference(name, dtype, fmt):
    program, side = CASES[name]
    weights = _weights(program, dtype, seed=side)
    x = make_input((2, program.in_channels, side, side), fmt, dtype, seed=len(name), device=DEVICE)
    out = _poisoned_out(program, x, fmt)
    assert run_program_triton(program, weights, x, out, allow_tf32=False) is out
    assert out.is_contiguous(memory_format=FORMATS[fmt])
    assert_close(out, _reference(program, weights, x), dtype, f"{name} forward")


@pytest.mark.parametrize("name", ["v3_C", "fid_E_2", "bn_reduction"])
def test_writes_only_its_slice_of_a_larger_buffer(name):
    program, side = CASES[name]
    weights = _weights(program, torch.float32, seed=1)
    x = make_input((2, program.in_channels, side, side), "nhwc", seed=2, device=DEVICE)
    h, w = program.out_size(side, side)
    buf = poisoned((2, program.out_channels + 7, h, w), torch.float32, "nhwc", device=DEVICE)
    out = buf[:, 3:3 + program.out_channels]
    run_program_triton(program, weights, x, out, allow_tf32=False)
    assert torch.isnan(buf[:, :3]).all() and torch.isnan(buf[:, 3 + program.out_channels:]).all()
    assert_close(out, _reference(program, weights, x), torch.float32, name)


def test_every_pointwise_conv_that_reads_x_is_in_the_stem():
    # v3 A: the 1x1 branch, both reductions and the average pool's 1x1 (commuted) in one launch
    plan = triton_plan(CASES["v3_A"][0])
    (heads, pool_head), = plan.stem_launches()
    assert [h.branch for h in heads] == [0, 1, 2, 3] and heads[3].commuted and pool_head is None
    # GoogLeNet: the max pool is the prologue of the fourth column range of the same launch
    (heads, pool_head), = triton_plan(CASES["v1"][0]).stem_launches()
    assert len(heads) == 3 and pool_head.branch == 3


@pytest.mark.parametrize("dtype, bound", [(torch.float32, 1e-6), (torch.float16, 1e-3)])
def test_commuted_average_pool_rounds_like_the_uncommuted_branch(dtype, bound):
    # avg_pool then 1x1 (PyTorch's order) and 1x1 then avg_pool (the kernels') differ by rounding only: both are
    # measured against float64 on the pool branch alone
    program = BlockProgram(32, (Branch((P.AVG_3X3_EXCLUDE_PAD, Conv(24)),),))
    weights = _weights(program, dtype, seed=5)
    x = make_input((2, 32, 9, 9), "nhwc", dtype, seed=6, device=DEVICE)
    want = _reference(program, weights, x)
    out = _poisoned_out(program, x, "nhwc")
    run_program_triton(program, weights, x, out, allow_tf32=False)
    pytorch_order = run_reference(program, weights, x)
    kernels_err = (out.double() - want).abs().max().item() / want.abs().max().item()
    pytorch_err = (pytorch_order.double() - want).abs().max().item() / want.abs().max().item()
    assert kernels_err < bound and pytorch_err < bound, (kernels_err, pytorch_err)


# Under the interpreter tl.dot is numpy's matmul, whose result for a row depends on the row's position in the tile
# (its BLAS blocks rows): there fp64, whose products are summed in one fixed order per element, shows the kernels'
# own invariance. On a GPU the tensor-core dot is checked in fp32.
@pytest.mark.parametrize("dtype", [torch.float64, pytest.param(torch.float32, marks=GPU_ONLY)], ids=["fp64", "fp32"])
def test_images_give_bitwise_the_same_result_in_any_batch(dtype):
    program, side = CASES["fid_E_1"]
    weights = _weights(program, dtype, seed=2)
    images = make_input((5, program.in_channels, side, side), "nhwc", dtype, seed=7, device=DEVICE)

    def run(x):
        out = _poisoned_out(program, x, "nhwc")
        return run_program_triton(program, weights, x, out, allow_tf32=False)

    alone = torch.cat([run(images[i:i + 1]) for i in range(5)])
    order = torch.randperm(5, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    shuffled = run(images[order].contiguous(memory_format=torch.channels_last))
    assert torch.equal(shuffled, alone[order])
    assert torch.equal(torch.cat([run(images[:3]), run(images[3:])]), alone)


def test_out_sharing_x_receives_the_block_of_x():
    program = BlockProgram(8, (Branch((Conv(4),)), Branch((P.MAX_3X3, Conv(4)))))
    weights = _weights(program, torch.float32, seed=1)
    buf = make_input((2, 8, 5, 5), "nhwc", seed=3, device=DEVICE)
    want = _reference(program, weights, buf)
    run_program_triton(program, weights, buf, buf, allow_tf32=False)
    assert_close(buf, want, torch.float32, "out is x")


def test_module_on_the_triton_backend_trains_into_an_out_slice():
    program, side = CASES["v3_B"]
    block = ProgramBlock(program, backend="triton", device=DEVICE)
    x = make_input((2, program.in_channels, side, side), "nhwc", seed=4, device=DEVICE).requires_grad_()
    h, w = program.out_size(side, side)
    buf = torch.zeros(2, program.out_channels + 2, h, w, device=DEVICE, requires_grad=True)
    big = buf * 1.0
    y = block(x, out=big[:, 2:])
    (y.square().sum() + big[:, :2].sum()).backward()
    ref = ProgramBlock(program, backend="torch", device=DEVICE)
    ref.load_state_dict(block.state_dict())
    xr = x.detach().clone().requires_grad_()
    ref(xr).square().sum().backward()
    assert_close(x.grad, xr.grad, torch.float32, "x grad")
    for (name, p), q in zip(block.named_parameters(), ref.parameters()):
        assert_close(p.grad, q.grad, torch.float32, name)
    assert torch.equal(buf.grad[:, :2], torch.ones_like(buf.grad[:, :2])) and not buf.grad[:, 2:].any()


def test_residual_projection_adds_x_in_the_conv_epilogue():
    # Inception-ResNet's end is one launch after the branches: x + scale * conv1x1(concatenation), then the ReLU
    program, _ = CASES["resnet_block35"]
    branches = triton_plan(dataclasses.replace(program, residual=None))
    assert launch_count(program) == len(branches.stem_launches()) + 3 + 1
    assert ProgramBlock(program, backend="triton").backend == "triton"


def test_googlenets_block_on_the_general_plan_equals_its_own_kernels():
    from fastinception import FastInception

    torch.manual_seed(0)
    block = FastInception(12, 8, (6, 8), (4, 6), 5, k2=3, k3=5, backend="triton").to(DEVICE)
    p = block.params()
    weights = [(p[i].detach(), p[i + 1].detach()) for i in range(0, 12, 2)]
    x = make_input((2, 12, 6, 6), "nhwc", seed=5, device=DEVICE)
    with torch.no_grad():
        own = block(x)
        general = run_program_triton(block.spec.program, weights, x, _poisoned_out(block.spec.program, x, "nhwc"),
                                     allow_tf32=False)
    assert_close(general, own, torch.float32, "GoogLeNet block, general plan against its own kernels")


@pytest.mark.slow  # 4 s of compiling; GoogLeNet's block has the default run's compile test
def test_torch_compile_runs_the_kernels_as_they_are():
    # the launches are a graph break, not traced: the same output and gradients as without compile
    program, side = CASES["bn_reduction"]
    torch.manual_seed(0)
    block = ProgramBlock(program, backend="triton", device=DEVICE)
    x = make_input((2, program.in_channels, side, side), "nhwc", seed=8, device=DEVICE)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    want = block(xa)
    got = torch.compile(block)(xb)
    assert torch.equal(got, want)
    want.square().sum().backward()
    got.square().sum().backward()
    assert torch.equal(xb.grad, xa.grad)
