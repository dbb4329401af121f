"""Inception-v3's blocks as modules (torchvision's constructors, names and state_dict) against hand-written copies of
torchvision's blocks, in eval and in training mode (BatchNorm with batch statistics), and the InceptionV3 model."""
import copy

import pytest
import torch

from fastinception import InceptionV3, convert, inception_v3
from fastinception.blocks.programs import AVG_3X3, AVG_3X3_EXCLUDE_PAD, MAX_3X3
from fastinception.ops import program_plan
from fastinception.testing import rel_error
from fastinception.v3_blocks import FastInceptionA, FastInceptionB, FastInceptionC, FastInceptionD, FastInceptionE

from helpers import (
    DEVICE,
    TVInceptionA,
    TVInceptionB,
    TVInceptionC,
    TVInceptionD,
    TVInceptionE,
    make_input,
    randomise_batchnorms,
    without_tf32,
)

# (torchvision-shaped copy, fused block, input channels, side)
PAIRS = {
    "A": (lambda: TVInceptionA(16, 8), lambda: FastInceptionA(16, 8), 16, 7),
    "A_fid": (lambda: TVInceptionA(16, 8, "avg_exclude_pad"), lambda: FastInceptionA(16, 8, AVG_3X3_EXCLUDE_PAD), 16,
              7),
    "B": (lambda: TVInceptionB(24), lambda: FastInceptionB(24), 24, 9),
    "C": (lambda: TVInceptionC(24, 6), lambda: FastInceptionC(24, 6), 24, 6),
    "D": (lambda: TVInceptionD(24), lambda: FastInceptionD(24), 24, 9),
    "E": (lambda: TVInceptionE(24), lambda: FastInceptionE(24, AVG_3X3), 24, 4),
    "E_fid_2": (lambda: TVInceptionE(24, "max"), lambda: FastInceptionE(24, MAX_3X3), 24, 4),
}


def _assert_same_forward_and_gradients(tv, fast, x):
    """fast(x) and tv(x), and the gradients of x and of every parameter (by position), within 1e-5 relative."""
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    want, got = tv(xa), fast(xb)
    g = torch.randn(want.shape, generator=torch.Generator().manual_seed(3)).to(x.device)
    want.backward(g)
    got.backward(g)
    assert rel_error(got, want) <= 1e-5, "forward"
    assert rel_error(xb.grad, xa.grad) <= 1e-5, "grad x"
    for (pname, a), b in zip(tv.named_parameters(), fast.parameters()):
        assert rel_error(b.grad, a.grad) <= 1e-5, pname


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "separate"])
@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("fmt", [pytest.param("nchw", marks=pytest.mark.slow), "nhwc"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_block_computes_trains_and_keeps_statistics_as_torchvisions(name, fmt, mode, fused, monkeypatch):
    # the pointwise convs that read x as one convolution or as three, whatever the size (ops/program_plan)
    monkeypatch.setattr(program_plan, "fuse_pointwise", lambda x, channels: fused)
    make_tv, make_fast, cin, side = PAIRS[name]
    torch.manual_seed(0)
    tv, fast = make_tv(), make_fast()
    randomise_batchnorms(tv, seed=1)
    assert list(fast.state_dict()) == list(tv.state_dict())
    fast.load_state_dict(tv.state_dict())
    getattr(tv, mode)()
    getattr(fast, mode)()
    _assert_same_forward_and_gradients(tv, fast, make_input((3, cin, side, side), fmt, seed=2))
    for (sname, a), b in zip(tv.state_dict().items(), fast.state_dict().values()):
        assert (torch.equal(a, b) if "num_batches" in sname else rel_error(b, a) <= 1e-5), sname


# B (stride-2 convs, a pass-through pool) under -m slow: its kernels run in tests/ops/test_program_triton.py's v3_B
@pytest.mark.parametrize("name", ["A", pytest.param("B", marks=pytest.mark.slow)])
def test_in_eval_mode_the_triton_backend_folds_batchnorm_and_matches_torchvisions(name):
    # forward and the gradients of x, every conv and every BatchNorm affine parameter
    make_tv, make_fast, cin, side = PAIRS[name]
    torch.manual_seed(0)
    tv, fast = make_tv().eval(), make_fast().eval()
    randomise_batchnorms(tv, seed=1)
    fast.load_state_dict(tv.state_dict())
    tv, fast = tv.to(DEVICE), fast.to(DEVICE)
    fast.backend = "triton"
    with without_tf32():
        _assert_same_forward_and_gradients(tv, fast, make_input((2, cin, side, side), "nhwc", seed=2, device=DEVICE))


@pytest.mark.parametrize("backend", ["triton", "auto"])
def test_in_training_mode_it_trains_as_torchvisions_on_either_backend(backend):
    # batch statistics: "triton" runs each conv on the general conv kernel with BatchNorm between them, "auto" on a
    # CPU the PyTorch plan; output, gradients and running statistics as torchvision's block
    make_tv, make_fast, cin, side = PAIRS["B"]
    torch.manual_seed(0)
    tv, fast = make_tv(), make_fast()
    randomise_batchnorms(tv, seed=1)
    fast.load_state_dict(tv.state_dict())
    tv, fast = tv.to(DEVICE).train(), fast.to(DEVICE).train()
    fast.backend = backend
    with without_tf32():
        _assert_same_forward_and_gradients(tv, fast, make_input((2, cin, side, side), "nhwc", seed=2, device=DEVICE))
    for (sname, a), b in zip(tv.state_dict().items(), fast.state_dict().values()):
        assert (torch.equal(a, b) if "num_batches" in sname else rel_error(b, a) <= 1e-5), sname


def test_under_autocast_it_returns_the_autocast_dtype_as_torchvisions_block_does():
    torch.manual_seed(0)
    tv, fast = TVInceptionA(16, 8).eval(), FastInceptionA(16, 8).eval()
    randomise_batchnorms(tv, seed=1)
    fast.load_state_dict(tv.state_dict())
    x = make_input((2, 16, 5, 5), seed=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want, got = tv(x), fast(x)
    assert got.dtype == want.dtype == torch.bfloat16
    assert rel_error(got, want) <= 2e-2


def test_inception_v3_trains_and_convert_leaves_its_blocks_alone():
    torch.manual_seed(0)
    model = inception_v3(num_classes=10)
    x = torch.rand(2, 3, 80, 80, generator=torch.Generator().manual_seed(1))
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([1, 7]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    _, report = convert(copy.deepcopy(model).eval(), report=True)
    assert not report.converted and not report.skipped
    fid = InceptionV3(fid=True, init_weights=False)
    assert fid.Mixed_7c.program.branches[-1].ops[0] == MAX_3X3
    assert fid.Mixed_5b.program.branches[-1].ops[0] == AVG_3X3_EXCLUDE_PAD


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"expected an \(N, 16, H, W\) tensor"):
        FastInceptionA(16, 8)(torch.rand(1, 15, 5, 5))
