"""inception_v4(), inception_resnet_v2() and convert() against the real timm 1.0.31 (random weights: nothing can be
downloaded in the tests). timm is not installed in the default test environment; CI runs this file in its second
environment."""
import copy

import pytest
import torch

timm = pytest.importorskip("timm", reason="needs timm (CI's second test environment)")

from fastinception import ProgramBlock, convert, inception_resnet_v2, inception_v4  # noqa: E402
from fastinception.blocks.programs import INCEPTION_RESNET_V2_BLOCKS, INCEPTION_V4_BLOCKS  # noqa: E402

from helpers import assert_close, make_input, randomise_batchnorms  # noqa: E402

SIDE = 75  # the smallest input side all three networks take
FUSED = {"inception_v4": inception_v4, "inception_resnet_v2": inception_resnet_v2}
V3_BLOCKS = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
             "Mixed_7a", "Mixed_7b", "Mixed_7c"]
BLOCKS = {"inception_v3": V3_BLOCKS, "inception_v4": list(INCEPTION_V4_BLOCKS),
          "inception_resnet_v2": list(INCEPTION_RESNET_V2_BLOCKS)}


def _timm_model(name, seed=0):
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, num_classes=10)
    randomise_batchnorms(model, seed=seed + 1)  # timm's BatchNormAct2d is a BatchNorm2d
    return model


# Input sides in training mode: at 75 Inception-v4 ends on 1x1 maps, where BatchNorm over two values makes timm's own
# logits move by 4e-9 when its input moves by 1e-15; at 107 (2x2 maps) by 1e-11. Inception-ResNet-v2 moves by 1e-12
# at 75.
TRAIN_SIDE = {"inception_v4": 107, "inception_resnet_v2": SIDE}


@pytest.mark.parametrize("name", list(FUSED))
def test_fused_network_loads_timms_state_dict_and_computes_and_trains_as_timms(name):
    # float64 in both modes: with batch statistics of two images, fp32 rounding alone would show (see
    # test_real_packages.py); the gradients pooled, since a conv bias before a BatchNorm in training mode has a zero
    # gradient up to rounding
    ref = _timm_model(name).double()
    fast = FUSED[name](num_classes=10).double()
    assert list(fast.state_dict()) == list(ref.state_dict())
    fast.load_state_dict(ref.state_dict(), strict=True)
    x = make_input((2, 3, SIDE, SIDE), dtype=torch.float64, seed=2)
    with torch.no_grad():
        assert_close(fast.eval()(x), ref.eval()(x), torch.float64, f"{name} eval logits")
    x = make_input((2, 3, TRAIN_SIDE[name], TRAIN_SIDE[name]), dtype=torch.float64, seed=3)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    want, got = ref.train()(xa), fast.train()(xb)
    assert_close(got, want, torch.float64, f"{name} training logits", tol=1e-9)
    g = torch.randn(want.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    want.backward(g)
    got.backward(g)
    assert_close(xb.grad, xa.grad, torch.float64, "grad x", tol=1e-9)
    assert_close(torch.cat([p.grad.flatten() for p in fast.parameters()]),
                 torch.cat([p.grad.flatten() for p in ref.parameters()]), torch.float64, "gradients", tol=1e-9)
    for (sname, a), b in zip(ref.state_dict().items(), fast.state_dict().values(), strict=True):
        if "num_batches" in sname:
            assert torch.equal(a, b), sname
        else:
            assert_close(b, a, torch.float64, sname, tol=1e-9)


@pytest.mark.parametrize("name", list(BLOCKS))
def test_convert_swaps_every_block_of_timms_network_and_keeps_its_logits(name):
    model = _timm_model(name).eval()
    x = make_input((2, 3, SIDE, SIDE), seed=4)
    with torch.no_grad():
        want = copy.deepcopy(model).double()(x.double())
    model, report = convert(model, report=True)
    assert report.converted_names == BLOCKS[name] and not report.skipped, str(report)
    assert all(isinstance(model.get_submodule(n), ProgramBlock) for n in BLOCKS[name])
    if name != "inception_v3":
        # the programs read from timm's blocks are the catalogue's (named by timm's class)
        table = INCEPTION_V4_BLOCKS if name == "inception_v4" else INCEPTION_RESNET_V2_BLOCKS
        for block in report.converted:
            program = table[block.name][0]
            assert block.spec.branches == program.branches and block.spec.residual == program.residual, block.name
    with torch.no_grad():
        assert_close(model(x), want, torch.float32, f"{name} logits")


def test_convert_refuses_timms_network_in_training_mode_and_changes_nothing():
    model = _timm_model("inception_resnet_v2").train()
    before = dict(model.named_modules())
    with pytest.raises(RuntimeError, match=r"BatchNorm in training mode in mixed_5b \(branch0, .*repeat\.0 .*"
                                           r"call model\.eval\(\) before convert"):
        convert(model)
    assert dict(model.named_modules()) == before
