"""convert() on the real torchvision Inception-v3 and the real pytorch-fid feature extractor (random weights: nothing
can be downloaded in the tests). They need torchvision and pytorch-fid, which the default test environment does
not install (its torch is the CPU build they do not import beside); CI runs this file in a second environment."""
import pytest
import torch

torchvision = pytest.importorskip("torchvision", reason="needs torchvision (CI's second test environment)")
fid_inception = pytest.importorskip("pytorch_fid.inception", reason="needs pytorch-fid (CI's second test environment)")

from fastinception import ProgramBlock, convert  # noqa: E402

from helpers import assert_close, make_input, randomise_batchnorms  # noqa: E402

MIXED = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a",
         "Mixed_7b", "Mixed_7c"]


def _float64_output(model, x):
    import copy
    with torch.no_grad():
        return copy.deepcopy(model).double()(x.double())


def test_torchvision_inception_v3_converts_every_mixed_block_and_keeps_its_logits():
    torch.manual_seed(0)
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True).eval()
    randomise_batchnorms(model, seed=1)
    x = make_input((2, 3, 96, 96), seed=2)
    want = _float64_output(model, x)
    model, report = convert(model, report=True)
    assert [b.name for b in report.converted] == MIXED, str(report)
    assert [b.spec.name for b in report.converted] == ["InceptionA"] * 3 + ["InceptionB"] + ["InceptionC"] * 4 + [
        "InceptionD", "InceptionE", "InceptionE"]
    assert all(isinstance(getattr(model, name), ProgramBlock) for name in MIXED)
    with torch.no_grad():
        assert_close(model(x), want, torch.float32, "logits")


def _fid_network_with_random_weights():
    # pytorch-fid's fid_inception_v3() without the download of its weights file
    net = fid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = fid_inception.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fid_inception.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fid_inception.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fid_inception.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fid_inception.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fid_inception.FIDInceptionE_1(1280)
    net.Mixed_7c = fid_inception.FIDInceptionE_2(2048)
    randomise_batchnorms(net, seed=3)
    return net


def test_pytorch_fid_features_are_unchanged_and_its_blocks_recognised(monkeypatch):
    torch.manual_seed(4)
    monkeypatch.setattr(fid_inception, "fid_inception_v3", _fid_network_with_random_weights)
    model = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    x = torch.rand(2, 3, 80, 80, generator=torch.Generator().manual_seed(5))  # images in [0, 1], resized to 299
    with torch.no_grad():
        want = model(x)[0]
    model, report = convert(model, report=True)
    assert [b.spec.name for b in report.converted] == [
        "FIDInceptionA", "FIDInceptionA", "FIDInceptionA", "InceptionB", "FIDInceptionC", "FIDInceptionC",
        "FIDInceptionC", "FIDInceptionC", "InceptionD", "FIDInceptionE_1", "FIDInceptionE_2"], str(report)
    with torch.no_grad():
        got = model(x)[0]
    assert got.shape == (2, 2048, 1, 1)
    assert_close(got, want, torch.float32, "2048-d features")


def _same_model(reference, ours, mode: str, side: int, seed: int) -> None:
    """``ours`` loads ``reference``'s state_dict under the same names and gives its logits and, pooled, its
    gradients. Training mode runs in float64: with random weights and batch statistics of two images the references'
    own fp32 gradients move by about 1% when the input moves by 1e-7, so fp32 rounding alone would show there. (Pooled,
    since a conv bias before BatchNorm in training mode has a zero gradient up to rounding.)"""
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict())
    dtype, tol = (torch.float32, 1e-5) if mode == "eval" else (torch.float64, 1e-9)
    reference, ours = getattr(reference.to(dtype), mode)(), getattr(ours.to(dtype), mode)()
    x = make_input((2, 3, side, side), dtype=dtype, seed=seed)
    torch.manual_seed(seed)  # the same dropout mask in training mode
    want = reference(x)
    torch.manual_seed(seed)
    got = ours(x)
    assert_close(got, want, dtype, f"logits ({mode})", tol)
    want.square().sum().backward()
    got.square().sum().backward()
    assert_close(torch.cat([p.grad.flatten() for p in ours.parameters()]),
                 torch.cat([p.grad.flatten() for p in reference.parameters()]), dtype, "gradients", tol)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_fastinception_inception_v3_loads_torchvisions_weights_and_computes_as_it_does(mode):
    from fastinception import inception_v3

    torch.manual_seed(5)
    tv = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    randomise_batchnorms(tv, seed=6)
    _same_model(tv, inception_v3(), mode, side=96, seed=7)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_fastinception_bn_inception_loads_pretrainedmodels_weights_and_computes_as_it_does(mode):
    pretrainedmodels = pytest.importorskip("pretrainedmodels", reason="needs pretrainedmodels (CI's second "
                                           "test environment)")
    from fastinception import bn_inception

    torch.manual_seed(9)
    port = pretrainedmodels.bninception(num_classes=1000, pretrained=None)
    randomise_batchnorms(port, seed=10)
    _same_model(port, bn_inception(), mode, side=224, seed=11)  # the released port pools a fixed 7x7 feature map
