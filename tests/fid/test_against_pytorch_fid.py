"""The fid command and the feature network against the real pytorch-fid, with the same random weights file and
generated image folders. Needs pytorch-fid (and the torchvision it imports), which the default test environment
does not install; CI runs this file in a second environment."""
import numpy as np
import pytest
import torch

fid_inception = pytest.importorskip("pytorch_fid.inception", reason="needs pytorch-fid (CI's second test environment)")
fid_score = pytest.importorskip("pytorch_fid.fid_score", reason="needs pytorch-fid (CI's second test environment)")

from fastinception.__main__ import main  # noqa: E402
from fastinception.fid import FILE_NAME, FIDInceptionV3, load_stats  # noqa: E402
from fastinception.testing import rel_error  # noqa: E402

from helpers import fid_state_dict, write_image_folder  # noqa: E402


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """A random weights file in pytorch-fid's layout, which pytorch-fid loads instead of downloading its own."""
    state = fid_state_dict(seed=1)
    path = tmp_path / FILE_NAME
    torch.save(state, path)

    def random_fid_inception_v3():
        net = fid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        for name, cls, args in (
            ("Mixed_5b", fid_inception.FIDInceptionA, (192, 32)),
            ("Mixed_5c", fid_inception.FIDInceptionA, (256, 64)),
            ("Mixed_5d", fid_inception.FIDInceptionA, (288, 64)),
            ("Mixed_6b", fid_inception.FIDInceptionC, (768, 128)),
            ("Mixed_6c", fid_inception.FIDInceptionC, (768, 160)),
            ("Mixed_6d", fid_inception.FIDInceptionC, (768, 160)),
            ("Mixed_6e", fid_inception.FIDInceptionC, (768, 192)),
            ("Mixed_7b", fid_inception.FIDInceptionE_1, (1280,)),
            ("Mixed_7c", fid_inception.FIDInceptionE_2, (2048,)),
        ):
            setattr(net, name, cls(*args))
        net.load_state_dict(torch.load(path, weights_only=True))
        return net

    monkeypatch.setattr(fid_inception, "fid_inception_v3", random_fid_inception_v3)
    return path


@pytest.mark.parametrize("dims", [64, 192, 768, 2048])
def test_features_equal_pytorch_fids(weights, dims):
    theirs = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).eval()
    ours = FIDInceptionV3.from_file(weights)
    images = torch.rand(3, 3, 45, 37, generator=torch.Generator().manual_seed(dims))
    with torch.no_grad():
        want = torch.nn.functional.adaptive_avg_pool2d(theirs(images)[0], (1, 1)).flatten(1)
        got = ours.features(images, dims)
    assert got.shape == want.shape == (3, dims)
    assert rel_error(got, want) <= 1e-5


def test_the_benchmarks_eager_fid_extractor_is_pytorch_fids(weights):
    # reference.inception_v3.FIDFeatures, the eager baseline of `bench --model fid`, written from pytorch-fid's source
    from fastinception.reference.inception_v3 import FIDFeatures

    theirs = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    ours = FIDFeatures().eval()
    ours.net.load_state_dict(torch.load(weights, weights_only=True))
    images = torch.rand(2, 3, 40, 52, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = theirs(images)[0].flatten(1)
        got = ours(images)
    assert rel_error(got, want) <= 1e-6


def _fid_printed(capsys) -> float:
    out = capsys.readouterr().out
    line = [line for line in out.splitlines() if line.startswith("FID:  ")]
    assert line, out
    return float(line[0].split()[1])


def test_fid_of_two_folders_equals_pytorch_fids(weights, tmp_path, capsys):
    # 80 images for 64 features: full-rank covariances, so the square root is well conditioned on both sides
    a, b = tmp_path / "a", tmp_path / "b"
    write_image_folder(a, 80, seed=1)
    write_image_folder(b, 80, seed=2, shift=25.0)
    assert main(["fid", str(a), str(b), "--weights", str(weights), "--dims", "64", "--batch-size", "16",
                 "--num-workers", "0"]) == 0
    ours = _fid_printed(capsys)
    theirs = fid_score.calculate_fid_given_paths([str(a), str(b)], batch_size=16, device="cpu", dims=64,
                                                 num_workers=0)
    assert ours > 0 and abs(ours - theirs) <= 1e-4 * abs(theirs), (ours, theirs)


def test_saved_statistics_equal_pytorch_fids(weights, tmp_path):
    images, ours_npz, theirs_npz = tmp_path / "images", tmp_path / "ours.npz", tmp_path / "theirs.npz"
    write_image_folder(images, 12, seed=3)
    assert main(["fid", str(images), str(ours_npz), "--save-stats", "--weights", str(weights), "--batch-size", "5",
                 "--num-workers", "0"]) == 0
    fid_score.save_fid_stats([str(images), str(theirs_npz)], batch_size=5, device="cpu", dims=2048, num_workers=0)
    (mu, sigma), (their_mu, their_sigma) = load_stats(ours_npz), load_stats(theirs_npz)
    assert rel_error(torch.from_numpy(mu), torch.from_numpy(their_mu)) <= 1e-5
    assert rel_error(torch.from_numpy(sigma), torch.from_numpy(their_sigma)) <= 1e-5
    # and pytorch-fid reads ours: the FID of a set against itself is 0 up to the square root's rounding
    assert abs(fid_score.calculate_frechet_distance(mu, sigma, their_mu, their_sigma)) < 1e-2
    assert np.allclose(mu, their_mu, rtol=1e-4, atol=1e-6)
