"""timm's Inception-v4 and Inception-ResNet-v2 on fused blocks (no timm here: the names, shapes and forwards are
written from timm 1.0.31's source; tests/convert/test_timm.py compares with the real timm). Each block type against
its own submodules run unfused as timm's forward runs them, in eval mode and in training mode (output, every
gradient, running statistics), on the torch backend and on the Triton kernels."""
import copy

import pytest
import torch
import torch.nn.functional as F

from fastinception import inception_resnet_v2, inception_v4
from fastinception.blocks import programs as P
from fastinception.models import TimmBlock

from helpers import DEVICE, assert_close, make_input, randomise_batchnorms, shrunk, timm_forward, without_tf32

# block type -> (program at a small input width, input side)
BLOCKS = {
    "Mixed3a": (P.inception_v4_mixed_3a(8, name="Mixed3a"), 7),
    "Mixed4a": (P.inception_v4_mixed_4a(12, name="Mixed4a"), 6),
    "Mixed5a": (P.inception_v4_mixed_5a(8, name="Mixed5a"), 7),
    "InceptionA": (P.inception_v4_a(12, name="InceptionA"), 5),
    "ReductionA": (P.inception_v4_reduction_a(12, name="ReductionA"), 7),
    "InceptionB": (P.inception_v4_b(12, name="InceptionB"), 5),
    "ReductionB": (P.inception_v4_reduction_b(12, name="ReductionB"), 7),
    "InceptionC": (P.inception_v4_c(12, name="InceptionC"), 4),
    "Mixed_5b": (P.inception_resnet_mixed_5b(12, name="Mixed_5b"), 5),
    "Block35": (P.inception_resnet_block35(12, name="Block35"), 5),
    "Mixed_6a": (P.inception_resnet_mixed_6a(12, name="Mixed_6a"), 7),
    "Block17": (P.inception_resnet_block17(12, name="Block17"), 5),
    "Mixed_7a": (P.inception_resnet_mixed_7a(12, name="Mixed_7a"), 7),
    "Block8": (P.inception_resnet_block8(12, name="Block8"), 4),
    "Block8/last": (P.inception_resnet_block8(12, scale=1.0, relu=False, name="Block8/last"), 4),
}

def _pair(name, dtype, device="cpu"):
    """(fused block, an unfused copy), BatchNorms far from their defaults, in ``dtype``."""
    program, _ = BLOCKS[name]
    torch.manual_seed(len(name))
    block = TimmBlock(program, backend="torch")
    randomise_batchnorms(block, seed=1)
    block = block.to(device=device, dtype=dtype)
    return block, copy.deepcopy(block)


def _check_forward_backward_and_statistics(fast, ref, x, dtype, what):
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    want, got = timm_forward(ref, xa), fast(xb)
    assert_close(got, want, dtype, f"{what} forward")
    g = torch.randn(want.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(x)
    want.backward(g)
    got.backward(g)
    assert_close(xb.grad, xa.grad, dtype, f"{what} grad x")
    for (pname, a), b in zip(ref.named_parameters(), fast.parameters(), strict=True):
        assert_close(b.grad, a.grad, dtype, f"{what} grad {pname}")
    for (sname, a), b in zip(ref.state_dict().items(), fast.state_dict().values(), strict=True):
        if "num_batches" in sname:
            assert torch.equal(a, b), sname
        else:
            assert_close(b, a, dtype, f"{what} {sname}")


# eval mode in fp32; training mode (batch statistics of two images) in float64, where it is well conditioned
@pytest.mark.parametrize("mode, dtype", [("eval", torch.float32), ("train", torch.float64)])
@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_computes_and_trains_as_timms_forward(name, mode, dtype):
    fast, ref = _pair(name, dtype)
    getattr(fast, mode)()
    getattr(ref, mode)()
    _, side = BLOCKS[name]
    x = make_input((2, fast.program.in_channels, side, side), "nhwc", dtype, seed=2)
    _check_forward_backward_and_statistics(fast, ref, x, dtype, f"{name} {mode}")


def test_residual_training_runs_the_projection_without_batchnorm_or_relu():
    # Block8/last: no ReLU after the sum, so a ReLU or a BatchNorm sneaked onto the projection would show
    fast, ref = _pair("Block8/last", torch.float64)
    fast.train()
    x = make_input((2, 12, 4, 4), dtype=torch.float64, seed=5)
    y = fast(x)
    assert (y < 0).any(), "the last Block8 has no ReLU"
    assert_close(y, timm_forward(ref.train(), x), torch.float64, "Block8/last")


# The kernels under the interpreter: the blocks narrowed, one residual block in each mode by default. In eval mode
# BatchNorm is folded into every conv but the projection; in training mode each conv runs on the general conv kernel.
@pytest.mark.parametrize("name, mode", [
    ("Block17", "eval"), ("Block8/last", "train"),
    pytest.param("InceptionC", "eval", marks=pytest.mark.slow),
    pytest.param("Mixed4a", "train", marks=pytest.mark.slow),
    pytest.param("Block35", "train", marks=pytest.mark.slow),
])
def test_triton_backend_computes_and_trains_as_timms_forward(name, mode):
    program, side = BLOCKS[name]
    program = shrunk(program, 8)
    torch.manual_seed(0)
    fast = TimmBlock(program, backend="triton")
    randomise_batchnorms(fast, seed=1)
    fast = getattr(fast.to(DEVICE), mode)()
    ref = copy.deepcopy(fast)
    x = make_input((2, program.in_channels, side, side), "nhwc", seed=2, device=DEVICE)
    with without_tf32():
        _check_forward_backward_and_statistics(fast, ref, x, torch.float32, f"{name} {mode} triton")


# a few of timm's state_dict names of each network (timm.create_model(...).state_dict()), and their counts
V4_NAMES = ["features.0.conv.weight", "features.2.bn.num_batches_tracked", "features.3.conv.conv.weight",
            "features.4.branch1.3.bn.running_var", "features.5.conv.bn.bias", "features.6.branch3.1.conv.weight",
            "features.10.branch1.2.conv.weight", "features.17.branch2.4.bn.weight",
            "features.18.branch1.3.conv.weight", "features.21.branch1_1b.conv.weight",
            "features.21.branch2_3a.bn.running_mean", "last_linear.weight", "last_linear.bias"]
IRV2_NAMES = ["conv2d_1a.conv.weight", "conv2d_4a.bn.running_mean", "mixed_5b.branch3.1.conv.weight",
              "repeat.0.branch2.2.bn.weight", "repeat.9.conv2d.bias", "mixed_6a.branch1.2.conv.weight",
              "repeat_1.19.branch1.2.conv.weight", "repeat_1.19.conv2d.weight", "mixed_7a.branch2.2.bn.running_var",
              "repeat_2.8.branch1.1.conv.weight", "block8.conv2d.weight", "block8.conv2d.bias",
              "conv2d_7b.conv.weight", "classif.weight", "classif.bias"]


@pytest.mark.parametrize("make, count, names, shapes", [
    (inception_v4, 896, V4_NAMES, {"features.21.branch2_1.conv.weight": (448, 384, 3, 1),
                                   "features.4.branch1.1.conv.weight": (64, 64, 1, 7),
                                   "last_linear.weight": (10, 1536)}),
    (inception_resnet_v2, 1306, IRV2_NAMES, {"repeat_1.0.conv2d.weight": (1088, 384, 1, 1),
                                             "block8.conv2d.weight": (2080, 448, 1, 1),
                                             "mixed_7a.branch1.1.conv.weight": (288, 256, 3, 3),
                                             "classif.weight": (10, 1536)}),
], ids=["inception_v4", "inception_resnet_v2"])
def test_state_dict_has_timms_names_and_the_network_trains(make, count, names, shapes):
    torch.manual_seed(0)
    model = make(num_classes=10)
    state = model.state_dict()
    assert len(state) == count and set(names) <= set(state)
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    x = make_input((2, 3, 75, 75), seed=1)  # 75x75: the smallest side both networks take
    loss = F.cross_entropy(model(x), torch.tensor([1, 7]))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with torch.no_grad():
        assert model.eval().forward_head(model.forward_features(x), pre_logits=True).shape == (2, 1536)


def test_a_state_dict_of_the_other_network_is_refused_with_the_keys_named():
    v4, irv2 = inception_v4(num_classes=10), inception_resnet_v2(num_classes=10)
    before = copy.deepcopy(v4.state_dict())
    with pytest.raises(RuntimeError, match=r"(?s)Missing key\(s\).*features\.0\.conv\.weight.*Unexpected key\(s\).*"
                                           r"conv2d_1a\.conv\.weight"):
        v4.load_state_dict(irv2.state_dict())
    assert all(torch.equal(before[k], v) for k, v in v4.state_dict().items())
    with pytest.raises(RuntimeError, match=r"size mismatch for last_linear\.weight.*\[1000, 1536\].*\[10, 1536\]"):
        v4.load_state_dict(inception_v4().state_dict())


def test_an_unknown_block_type_is_refused():
    with pytest.raises(ValueError, match="no timm layout for a program named 'Mixed_6b'"):
        TimmBlock(P.INCEPTION_V3_BLOCKS["Mixed_6b"][0])
