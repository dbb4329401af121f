"""Block programs: the description (validation, hashing, sizes) and the reference interpreter against hand-written
copies of each block type's source, in float64."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from fastinception import FastInception, Inception
from fastinception.blocks import programs as P
from fastinception.blocks.program import BlockProgram, Branch, Conv, Pool, Residual
from fastinception.ops.program_plan import run_program_torch
from fastinception.reference.program import run_reference

from helpers import HAND_WRITTEN, assert_close, hand_written_weights, make_input

# hand-written copy's name -> the program under test, from the same constructor arguments
PROGRAMS = {
    "tv_A": lambda cin, pf: P.inception_v3_a(cin, pf),
    "fid_A": lambda cin, pf: P.inception_v3_a(cin, pf, P.AVG_3X3_EXCLUDE_PAD),
    "tv_B": lambda cin: P.inception_v3_b(cin),
    "tv_C": lambda cin, c7: P.inception_v3_c(cin, c7),
    "fid_C": lambda cin, c7: P.inception_v3_c(cin, c7, P.AVG_3X3_EXCLUDE_PAD),
    "tv_D": lambda cin: P.inception_v3_d(cin),
    "tv_E": lambda cin: P.inception_v3_e(cin),
    "fid_E_1": lambda cin: P.inception_v3_e(cin, P.AVG_3X3_EXCLUDE_PAD),
    "fid_E_2": lambda cin: P.inception_v3_e(cin, P.MAX_3X3),
    "bn_block": lambda *a: P.bn_inception_block(*a),
    "bn_block_max": lambda *a: P.bn_inception_block(*a, pool=P.BN_MAX_3X3),
    "bn_reduction": lambda *a: P.bn_inception_reduction(*a),
    "resnet_block35": lambda cin: P.inception_resnet_block35(cin),
    "v4_mixed_3a": lambda cin: P.inception_v4_mixed_3a(cin),
    "v4_mixed_4a": lambda cin: P.inception_v4_mixed_4a(cin),
    "v4_mixed_5a": lambda cin: P.inception_v4_mixed_5a(cin),
    "v4_A": lambda cin: P.inception_v4_a(cin),
    "v4_reduction_A": lambda cin: P.inception_v4_reduction_a(cin),
    "v4_B": lambda cin: P.inception_v4_b(cin),
    "v4_reduction_B": lambda cin: P.inception_v4_reduction_b(cin),
    "v4_C": lambda cin: P.inception_v4_c(cin),
    "resnet_mixed_5b": lambda cin: P.inception_resnet_mixed_5b(cin),
    "resnet_mixed_6a": lambda cin: P.inception_resnet_mixed_6a(cin),
    "resnet_block17": lambda cin: P.inception_resnet_block17(cin),
    "resnet_mixed_7a": lambda cin: P.inception_resnet_mixed_7a(cin),
    "resnet_block8": lambda cin: P.inception_resnet_block8(cin),
    # the network's last Block8 as the catalogue has it (scale 1, no ReLU), at a small width
    "resnet_block8_last": lambda cin: dataclasses.replace(P.INCEPTION_RESNET_V2_BLOCKS["block8"][0], in_channels=cin),
}


@pytest.mark.parametrize("name", list(HAND_WRITTEN))
def test_program_computes_what_its_source_block_does(name):
    copy, args, side = HAND_WRITTEN[name]
    program = PROGRAMS[name](*args)
    weights = hand_written_weights(copy.shapes(*args), seed=len(name))
    program.check_weights(weights)  # the program's conv shapes are the source's
    x = make_input((2, args[0], side, side), dtype=torch.float64, seed=side)
    want = copy.forward(x, weights)
    got = run_reference(program, weights, x)
    assert tuple(got.shape) == (2, program.out_channels, *program.out_size(side, side))
    assert_close(got, want, torch.float64, name)


def test_every_hand_written_copy_has_a_program():
    assert set(PROGRAMS) == set(HAND_WRITTEN)


def test_googlenet_program_is_the_reference_block():
    torch.manual_seed(3)
    block = Inception(12, 4, (6, 8), (3, 5), 7)
    program = P.googlenet_block(12, 4, (6, 8), (3, 5), 7)
    convs = (block.p1_1, block.p2_1, block.p2_2, block.p3_1, block.p3_2, block.p4_2)
    weights = [(c.weight.double(), c.bias.double()) for c in convs]
    x = make_input((2, 12, 6, 5), dtype=torch.float64, seed=1)
    assert_close(run_reference(program, weights, x), block.double()(x), torch.float64, "googlenet")


@pytest.mark.parametrize("table, sides", [
    (P.INCEPTION_V3_BLOCKS, {35: 35, 17: 17, 8: 8}),
    (P.FID_INCEPTION_BLOCKS, {35: 35, 17: 17, 8: 8}),
    (P.BN_INCEPTION_BLOCKS, {28: 28, 14: 14, 7: 7}),
    (P.INCEPTION_V4_BLOCKS, {}),
    (P.INCEPTION_RESNET_V2_BLOCKS, {}),
], ids=["v3", "fid", "bn", "v4", "irv2"])
def test_catalogue_chains_channels_and_sizes_as_the_networks_do(table, sides):
    # each block's input is the previous block's output, in channels and in size
    blocks = list(table.values())
    for (before, side), (after, next_side) in zip(blocks, blocks[1:]):
        assert before.out_channels == after.in_channels, (before.name, after.name)
        assert before.out_size(side, side) == (next_side, next_side), (before.name, after.name)
    last, side = blocks[-1]
    assert last.out_size(side, side) == (side, side)


def test_catalogue_output_channels():
    v3 = {k: p.out_channels for k, (p, _) in P.INCEPTION_V3_BLOCKS.items()}
    assert v3 == {"Mixed_5b": 256, "Mixed_5c": 288, "Mixed_5d": 288, "Mixed_6a": 768, "Mixed_6b": 768,
                  "Mixed_6c": 768, "Mixed_6d": 768, "Mixed_6e": 768, "Mixed_7a": 1280, "Mixed_7b": 2048,
                  "Mixed_7c": 2048}
    v4 = {p.name: p.out_channels for p, _ in P.INCEPTION_V4_BLOCKS.values()}
    assert v4 == {"Mixed3a": 160, "Mixed4a": 192, "Mixed5a": 384, "InceptionA": 384, "ReductionA": 1024,
                  "InceptionB": 1024, "ReductionB": 1536, "InceptionC": 1536}
    irv2 = {p.name: (p.out_channels, p.residual) for p, _ in P.INCEPTION_RESNET_V2_BLOCKS.values()}
    assert irv2 == {"Mixed_5b": (320, None), "Block35": (320, Residual(0.17)), "Mixed_6a": (1088, None),
                    "Block17": (1088, Residual(0.10)), "Mixed_7a": (2080, None), "Block8": (2080, Residual(0.20)),
                    "Block8/last": (2080, Residual(1.0, relu=False))}
    # timm's block counts: 4 A, 7 B, 3 C; 10 Block35, 20 Block17, 9 Block8 and the last
    assert [p.name for p, _ in P.INCEPTION_V4_BLOCKS.values()].count("InceptionB") == 7
    assert len(P.INCEPTION_V4_BLOCKS) == 19 and len(P.INCEPTION_RESNET_V2_BLOCKS) == 43
    bn = {k: p.out_channels for k, (p, _) in P.BN_INCEPTION_BLOCKS.items()}
    assert bn == {"3a": 256, "3b": 320, "3c": 576, "4a": 576, "4b": 576, "4c": 608, "4d": 608, "4e": 1056,
                  "5a": 1024, "5b": 1024}


def test_fid_blocks_differ_from_torchvision_only_in_their_pools():
    differ = {k for k in P.INCEPTION_V3_BLOCKS if P.INCEPTION_V3_BLOCKS[k] != P.FID_INCEPTION_BLOCKS[k]}
    assert differ == {"Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                      "Mixed_7b", "Mixed_7c"}
    for k in differ:
        tv, fid = P.INCEPTION_V3_BLOCKS[k][0], P.FID_INCEPTION_BLOCKS[k][0]
        assert tv.branches[:-1] == fid.branches[:-1] and tv.branches[-1].ops[1:] == fid.branches[-1].ops[1:]
    assert P.FID_INCEPTION_BLOCKS["Mixed_7c"][0].branches[-1].ops[0] == P.MAX_3X3


def test_programs_are_immutable_and_hashable():
    a, b = P.inception_v3_e(64), P.inception_v3_e(64)
    assert a == b and hash(a) == hash(b) and len({a, b, P.inception_v3_e(64, P.MAX_3X3)}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.in_channels = 3
    assert Conv(8, 3) == Conv(8, (3, 3)) and Conv(8, 3).kernel == (3, 3)


@pytest.mark.parametrize("make, message", [
    (lambda: Conv(0), "positive integer"),
    (lambda: Conv(4, (3, 0)), "ints >= 1"),
    (lambda: Conv(4, 3, padding=-1), "ints >= 0"),
    (lambda: Conv(4, relu=1), "bool"),
    (lambda: Pool("sum"), "'max' or 'avg'"),
    (lambda: Pool("max", count_include_pad=False), "average pools only"),
    (lambda: Pool("avg", 3, 1, 2), "at most half the kernel"),
    (lambda: Branch(()), "at least one op"),
    (lambda: Branch((Conv(4),), split=(Conv(2, (1, 3), padding=(0, 1)),)), "two or more"),
    (lambda: Branch((F.relu,)), "Conv or Pool"),
    (lambda: BlockProgram(8, ()), "one or more Branch"),
    (lambda: BlockProgram(True, (Branch((Conv(4),)),)), "positive integer"),
    (lambda: Residual("0.1"), "number"),
])
def test_bad_descriptions_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_sizes_that_cannot_be_concatenated_are_refused():
    program = P.bn_inception_reduction(8, (4, 4), (4, 4))
    assert program.out_size(8, 8) == (4, 4)
    with pytest.raises(ValueError, match="different sizes"):
        program.out_size(7, 7)  # the stride-2 convs give 4, the ceil_mode pool 3
    with pytest.raises(ValueError, match="too small"):
        P.inception_v3_b(8).out_size(2, 2)
    split = Branch((Conv(4),), split=(Conv(2, (1, 3)), Conv(2, (3, 1), padding=(1, 0))))
    with pytest.raises(ValueError, match="split"):
        split.out_size(5, 5)


def test_wrong_weights_are_refused_with_the_conv_named():
    program = P.inception_v3_a(16, 8)
    weights = hand_written_weights([s.weight_shape for s in program.conv_slots()])
    with pytest.raises(ValueError, match="7 convs"):
        run_reference(program, weights[:-1], make_input((1, 16, 5, 5), dtype=torch.float64))
    weights[2] = (weights[2][0][:, :, :3, :3], weights[2][1])
    with pytest.raises(ValueError, match=r"conv 2 .*\(branch 1\).*\(64, 48, 5, 5\)"):
        run_reference(program, weights, make_input((1, 16, 5, 5), dtype=torch.float64))


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_sizes_are_pytorchs(kind, ceil_mode):
    pool_fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    for kernel, stride, padding in ((3, 1, 1), (3, 2, 0), (3, 2, 1), (2, 2, 0), (2, 2, 1), (3, 3, 1), (5, 3, 2)):
        pool = Pool(kind, kernel, stride, padding, ceil_mode=ceil_mode)
        for side in range(kernel, 20):
            got = pool.out_size(side, side + 1)
            want = pool_fn(torch.zeros(1, 1, side, side + 1), kernel, stride, padding, ceil_mode=ceil_mode).shape[2:]
            assert got == tuple(want), (kernel, stride, padding, side)


def test_conv_slots_follow_the_sources_definition_order():
    slots = P.inception_v3_e(64).conv_slots()
    assert [s.weight_shape for s in slots] == HAND_WRITTEN["tv_E"][0].shapes(64)
    assert [s.branch for s in slots] == [0, 1, 1, 1, 2, 2, 2, 2, 3]
    assert P.inception_v3_e(64).slices == (slice(0, 320), slice(320, 1088), slice(1088, 1856), slice(1856, 2048))


def test_a_fastinception_spec_is_its_program():
    # FastInception's own description and the program of the later block types say the same block
    torch.manual_seed(4)
    fast = FastInception(12, 4, (6, 8), (3, 5), 7, k2=5, k3=3, backend="torch")
    assert fast.spec.program == P.googlenet_block(12, 4, (6, 8), (3, 5), 7, k2=5, k3=3)
    convs = (fast.p1_1, fast.p2_1, fast.p2_2, fast.p3_1, fast.p3_2, fast.p4_2)
    x = make_input((2, 12, 5, 6), seed=5)
    with torch.no_grad():
        got = run_program_torch(fast.spec.program, [(c.weight, c.bias) for c in convs], x)
        assert_close(got, fast(x), torch.float32, "spec.program")
