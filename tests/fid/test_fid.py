"""The FID pieces on their own: streaming statistics, the Frechet distance, .npz files, the weights loader, the
feature network's taps and batch invariance, and the fid command's errors. (Equality with pytorch-fid itself:
test_against_pytorch_fid.py.)"""
import numpy as np
import pytest
import torch

from fastinception.__main__ import main
from fastinception.fid import (
    FILE_NAME,
    URL,
    FIDInceptionV3,
    RunningStats,
    WeightsError,
    folder_statistics,
    frechet_distance,
    image_files,
    load_stats,
    save_stats,
)
from fastinception.testing import rel_error

from helpers import GPU_ONLY, fid_state_dict, write_image_folder


@pytest.fixture(scope="module")
def state():
    return fid_state_dict(seed=0)


@pytest.fixture(scope="module")
def network(state):
    return FIDInceptionV3.from_state_dict(state)


@pytest.fixture
def weights_file(tmp_path, state):
    path = tmp_path / FILE_NAME
    torch.save(state, path)
    return path


def test_running_statistics_are_numpys_mean_and_covariance_whatever_the_batches():
    rows = np.random.default_rng(0).normal(size=(37, 6)) * [1, 2, 3, 4, 5, 6] + 10
    stats = RunningStats(6)
    for part in np.split(rows, [1, 8, 30]):
        stats.add(torch.from_numpy(part).float())
    mu, sigma = stats.mean_and_covariance()
    as_float32 = rows.astype(np.float32).astype(np.float64)
    assert np.allclose(mu, as_float32.mean(0), rtol=1e-12, atol=0)
    assert np.allclose(sigma, np.cov(as_float32, rowvar=False), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="two images or more"):
        RunningStats(3).mean_and_covariance()
    with pytest.raises(ValueError, match=r"expected \(N, 6\)"):
        stats.add(torch.zeros(2, 5))


def test_frechet_distance_of_one_dimensional_gaussians_is_closed_form():
    # (m1 - m2)^2 + (s1 - s2)^2 for N(m1, s1^2) and N(m2, s2^2)
    got = frechet_distance(np.array([1.5]), np.array([[4.0]]), np.array([-0.5]), np.array([[0.25]]))
    assert abs(got - (2.0**2 + (2.0 - 0.5) ** 2)) < 1e-12
    a = np.random.default_rng(1).normal(size=(20, 5))
    sigma = a.T @ a / 19
    assert abs(frechet_distance(a.mean(0), sigma, a.mean(0), sigma)) < 1e-9
    with pytest.raises(ValueError, match="different sizes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_statistics_files_round_trip_and_bad_ones_are_refused(tmp_path):
    mu, sigma = np.arange(3.0), np.eye(3) * 2
    save_stats(tmp_path / "s.npz", mu, sigma)
    got_mu, got_sigma = load_stats(tmp_path / "s.npz")
    assert np.array_equal(got_mu, mu) and np.array_equal(got_sigma, sigma)
    np.savez(tmp_path / "half.npz", mu=mu)
    with pytest.raises(ValueError, match="no 'sigma' array"):
        load_stats(tmp_path / "half.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="cannot be read as an .npz"):
        load_stats(tmp_path / "junk.npz")
    np.savez(tmp_path / "shapes.npz", mu=mu, sigma=np.eye(2))
    with pytest.raises(ValueError, match="not \\(D,\\) and \\(D, D\\)"):
        load_stats(tmp_path / "shapes.npz")


def test_weights_files_that_are_missing_truncated_or_of_another_network_are_refused(tmp_path, weights_file, state):
    with pytest.raises(WeightsError, match=f"no weights file at .*{FILE_NAME} at {URL}"):
        FIDInceptionV3.from_file(tmp_path / "missing.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(weights_file.read_bytes()[: weights_file.stat().st_size // 2])
    with pytest.raises(WeightsError, match="cannot be read as a PyTorch weights file, truncated"):
        FIDInceptionV3.from_file(truncated)
    other = tmp_path / "other.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("Mixed_7c")}, other)
    with pytest.raises(WeightsError, match="not pytorch-fid's Inception network: Mixed_7c.branch1x1.conv.weight"):
        FIDInceptionV3.from_file(other)
    wrong = dict(state, **{"Mixed_6a.branch3x3.bn.running_var": torch.ones(5)})
    with pytest.raises(WeightsError, match=r"Mixed_6a.branch3x3.bn.running_var has shape \(5,\)"):
        FIDInceptionV3.from_state_dict(wrong)
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="expected a state_dict"):
        FIDInceptionV3.from_file(tmp_path / "list.pth")


@pytest.mark.parametrize("dims", [64, 192, 768, 2048])
def test_each_tap_gives_its_features_as_float64_does(network, dims):
    # one image (the whole network at 299x299, in float64 too); batches: the batch-invariance test below
    images = torch.rand(1, 3, 30, 41, generator=torch.Generator().manual_seed(dims))
    with torch.no_grad():
        got = network.features(images, dims)
        want = FIDInceptionV3.from_state_dict(fid_state_dict(seed=0)).double().features(images.double(), dims)
    assert got.shape == (1, dims) and got.dtype == torch.float32
    assert rel_error(got, want) <= 1e-5


def test_bad_images_or_dims_are_refused(network):
    with pytest.raises(ValueError, match="dims must be one of"):
        network.features(torch.rand(1, 3, 8, 8), 100)
    with pytest.raises(ValueError, match=r"expected \(N, 3, H, W\) images"):
        network.features(torch.rand(1, 1, 8, 8))


# Measured on a 2-core x86_64 CPU (torch backend, fp32, oneDNN convolutions, 1 and 2 threads, three seeds): 50
# images one by one, in shuffled batches of 7 and in one batch of 50 give features within 1.9e-7 relative of each
# other (1.6e-7 to 1.8e-7; never bitwise equal). The bound leaves room for other CPUs.
BATCH_INVARIANCE_BOUND = 1e-6


def test_an_images_features_do_not_depend_on_its_batch(network):
    # each image runs the whole network at 299x299: five, alone, together and in shuffled batches of 3 and 2
    images = torch.rand(5, 3, 29, 29, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        whole = network.features(images)
        singles = torch.cat([network.features(images[i : i + 1]) for i in range(5)])
        order = torch.randperm(5, generator=torch.Generator().manual_seed(8))
        shuffled = torch.cat([network.features(images[order[i : i + 3]]) for i in (0, 3)])
    assert rel_error(singles, whole) <= BATCH_INVARIANCE_BOUND
    assert rel_error(shuffled, whole[order]) <= BATCH_INVARIANCE_BOUND


@GPU_ONLY
def test_on_the_triton_backend_features_are_bitwise_the_same_in_any_batch(state, monkeypatch):
    # 50 images one by one, in shuffled batches of 7 and in one batch of 50; and the torch backend's features
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    network = FIDInceptionV3.from_state_dict(state, backend="triton").cuda()
    images = torch.rand(50, 3, 29, 29, generator=torch.Generator().manual_seed(7)).cuda()
    order = torch.randperm(50, generator=torch.Generator().manual_seed(8)).cuda()
    with torch.no_grad():
        whole = network.features(images)
        singles = torch.cat([network.features(images[i : i + 1]) for i in range(50)])
        shuffled = torch.cat([network.features(images[order[i : i + 7]]) for i in range(0, 50, 7)])
        network.backend = "torch"
        eager = network.features(images)
    assert torch.equal(singles, whole) and torch.equal(shuffled, whole[order])
    assert rel_error(whole, eager) <= 1e-5


def test_fid_command_prints_the_fid_of_its_statistics(tmp_path, weights_file, network, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    write_image_folder(a, 6, seed=1)
    write_image_folder(b, 5, seed=2, shift=30.0)
    assert main(["fid", str(a), str(b), "--weights", str(weights_file), "--dims", "64", "--batch-size", "4",
                 "--num-workers", "0"]) == 0
    out = capsys.readouterr().out
    assert f"{a}: 6 images" in out and "images/s" in out
    printed = float([line for line in out.splitlines() if line.startswith("FID:  ")][0].split()[1])
    stats = [folder_statistics(image_files(p), network, dims=64, batch_size=3)[:2] for p in (a, b)]
    assert abs(printed - frechet_distance(*stats[0], *stats[1])) <= 1e-6 * abs(printed)
    # saved statistics give the same FID, and need no weights
    assert main(["fid", str(a), str(tmp_path / "a.npz"), "--save-stats", "--weights", str(weights_file),
                 "--dims", "64", "--num-workers", "0"]) == 0
    np.savez(tmp_path / "b.npz", mu=stats[1][0], sigma=stats[1][1])
    capsys.readouterr()
    assert main(["fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 0
    again = float(capsys.readouterr().out.split()[1])
    assert abs(again - printed) <= 1e-6 * abs(printed)


@pytest.mark.parametrize("args, message", [
    (["{a}", "{a}"], f"no weights: pass --weights FILE, pytorch-fid's {FILE_NAME} \\(published at {URL}\\)"),
    (["{a}", "{tmp}/nowhere"], "nowhere: neither an image folder nor an .npz file"),
    (["{a}", "{empty}", "--weights", "{w}"], "no images"),
    (["{a}", "{tmp}", "--save-stats", "--weights", "{w}"], "a directory; --save-stats writes an .npz"),
    (["{a}", "{a}", "--weights", "{tmp}/missing.pth"], "no weights file at"),
    (["{a}", "{a}", "--device", "meta", "--weights", "{w}"], "meta tensors hold no data"),
])
def test_fid_command_errors_are_one_line_with_exit_status_2(tmp_path, weights_file, monkeypatch, capsys, args,
                                                            message):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no cached weights file
    a, empty = tmp_path / "a", tmp_path / "empty"
    write_image_folder(a, 2, seed=1)
    empty.mkdir()
    fill = {"a": a, "tmp": tmp_path, "empty": empty, "w": weights_file}
    assert main(["fid", *(arg.format(**fill) for arg in args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert __import__("re").search(message, err), err


def test_images_of_different_sizes_in_one_batch_are_a_one_line_error(tmp_path, weights_file, capsys):
    folder = tmp_path / "mixed"
    write_image_folder(folder, 2, seed=1, size=(20, 20))
    write_image_folder(tmp_path / "other", 1, seed=2, size=(24, 20))
    (tmp_path / "other" / "0000.png").rename(folder / "0002.png")
    assert main(["fid", str(folder), str(folder), "--weights", str(weights_file), "--num-workers", "0"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar's line
    assert last.startswith("error: images of different sizes in one batch"), last
