"""The training loop and the train command, on a tiny subset of the digits."""
import json

import pytest
import torch

from fastinception import FastInception
from fastinception.__main__ import main
from fastinception.cli import charts, progress
from fastinception.train.command import build_googlenet, train_model
from fastinception.train.data import load_digits

from helpers import write_fashion_mnist

SUBSET = 64


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a busy 2-core machine two OpenMP threads spin against other processes and a
    step takes seconds instead of a tenth of one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    train, test = load_digits()
    return train.head(SUBSET), test.head(SUBSET)


def _run(kind, train, test, steps, lr=0.1):
    model = build_googlenet(kind, 10, seed=0, device="cpu")
    result = train_model(
        model, train, test, name=kind, epochs=100, batch_size=16, lr=lr, size=32, device="cpu", seed=0,
        max_steps=steps, progress=False, log=lambda line: None,
    )
    return model, result


def test_reference_and_fast_start_equal_and_agree_step_by_step(digits):
    train, test = digits
    ref0 = build_googlenet("reference", 10, seed=0, device="cpu")
    fast0 = build_googlenet("fast", 10, seed=0, device="cpu")
    assert sum(isinstance(m, FastInception) for m in fast0.modules()) == 9
    for (name, a), b in zip(ref0.state_dict().items(), fast0.state_dict().values()):
        assert torch.equal(a, b), name
    _, ref = _run("reference", train, test, steps=6)
    _, fast = _run("fast", train, test, steps=6)
    assert len(ref.step_losses) == len(fast.step_losses) == 6
    # Both are fp32 PyTorch math on CPU. The fused path computes the three 1x1 convolutions as one, which may
    # change the summation order (fp32 rounding, ~1e-7 relative per step; with one oneDNN thread the losses
    # come out bitwise equal). 1e-4 relative leaves room for that to grow over six SGD steps at lr 0.1.
    for step, (a, b) in enumerate(zip(ref.step_losses, fast.step_losses)):
        assert abs(a - b) <= 1e-4 * abs(a), f"step {step}: reference loss {a}, fast loss {b}"


def test_loss_goes_down_on_a_repeated_batch(digits):
    train, test = digits
    # One batch seen again and again is plain gradient descent on a fixed loss: with a small enough step
    # every step must lower it. (GoogLeNet without BatchNorm leaves ln 10 = 2.303 slowly, hence the margin.)
    one_batch = train.head(16)
    _, result = _run("fast", one_batch, one_batch, steps=10, lr=0.05)
    losses = result.step_losses
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < losses[0] - 0.01, losses


def test_train_command_writes_plot_and_json(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["train", "--limit", "16", "--epochs", "1", "--batch-size", "8", "--resize", "16", "--model", "both",
            "--out", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "reference epoch 1/1: loss" in captured.out and "fast      epoch 1/1: loss" in captured.out
    assert "examples/s" in captured.out and "fast vs reference: final test acc" in captured.out
    assert "16/16" in captured.err and "loss" in captured.err  # tqdm's bar, on stderr
    assert (out / "train.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((out / "train.json").read_text())
    assert record["settings"]["train_examples"] == 16 and set(record["runs"]) == {"reference", "fast"}
    assert len(record["runs"]["fast"]["step_losses"]) == 2


def test_train_command_without_matplotlib_and_tqdm_writes_json_only(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(charts, "available", lambda: False)
    monkeypatch.setattr(progress, "available", lambda: False)
    out = tmp_path / "out"
    args = ["train", "--limit", "8", "--epochs", "1", "--batch-size", "8", "--resize", "16", "--out", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "matplotlib is not installed: no train.png" in captured.out and "fast      epoch 1/1: loss" in captured.out
    assert captured.err == ""  # no bar without tqdm
    assert sorted(p.name for p in out.iterdir()) == ["train.json"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/nonexistent/dir"], "error: data directory not found: /nonexistent/dir"),
        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "nonsense"], "error: "),
    ],
)
def test_train_command_reports_bad_paths_and_devices(args, message, capsys, tmp_path):
    assert main(["train", *args, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_train_command_reports_a_malformed_data_file(tmp_path, capsys):
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for name in names:
        (tmp_path / name).write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "train-images-idx3-ubyte: truncated" in capsys.readouterr().err


def _refused(args, capsys):
    """Runs the train command, which must exit with status 2 before training; returns its stderr."""
    assert main(["train", "--epochs", "1", *args]) == 2
    captured = capsys.readouterr()
    assert "epoch 1/1" not in captured.out
    return captured.err


def test_out_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "results"
    out.write_text("not a directory")
    assert "exists and is not a directory" in _refused(["--out", str(out)], capsys)
    assert "cannot create the directory" in _refused(["--out", str(out / "sub")], capsys)


def test_missing_cuda_device_is_named(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "out")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "device 'cuda' asked for, but" in _refused(["--device", "cuda", "--out", out], capsys)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    err = _refused(["--device", "cuda:7", "--out", out], capsys)
    assert "device 'cuda:7' asked for, but this machine has 2 CUDA device(s): cuda:0, cuda:1" in err
    assert not (tmp_path / "out").exists()


def test_empty_data_set_and_limit_0_are_refused(tmp_path, capsys, digits):
    with pytest.raises(SystemExit) as e:
        main(["train", "--limit", "0"])
    assert e.value.code == 2 and "--limit: must be a positive integer, got '0'" in capsys.readouterr().err
    write_fashion_mnist(tmp_path, n_train=0)
    err = _refused(["--data", str(tmp_path), "--model", "both", "--out", str(tmp_path / "out")], capsys)
    assert "the training set is empty" in err
    empty = digits[0].head(0)
    with pytest.raises(ValueError, match="the training set is empty"):
        _run("fast", empty, digits[1], steps=1)


def test_data_that_is_a_file_is_not_a_directory(tmp_path, capsys):
    path = tmp_path / "fashion.zip"
    path.write_bytes(b"PK")
    assert "data path is not a directory" in _refused(["--data", str(path), "--out", str(tmp_path / "out")], capsys)
