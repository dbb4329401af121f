"""Bad option values and impossible paths end the train command with one line on stderr and exit status 2, before
training where they can be seen before it."""
import json
import re

import pytest
import torch

from fastinception.__main__ import main

SEED_MAX = 2**64 - 1  # the largest seed torch.manual_seed accepts

QUICK = ["--limit", "8", "--epochs", "1", "--batch-size", "8", "--resize", "16"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _refused(args, capsys) -> str:
    """The train command must exit with status 2 before training; returns its one error line."""
    assert main(["train", "--epochs", "1", *args]) == 2
    captured = capsys.readouterr()
    assert "epoch 1/1" not in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_meta_device_is_refused(tmp_path, capsys):
    line = _refused(["--device", "meta", "--out", str(tmp_path / "out")], capsys)
    assert line == "error: device 'meta' asked for, but meta tensors hold no data (shapes only); train on cpu or cuda"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, message", [
    ("", "error: --device '': not a torch device (Device string must not be empty)"),
    ("cuda:-1", "error: --device 'cuda:-1': not a torch device (Invalid device string: 'cuda:-1')"),
    ("lazy", "error: device 'lazy' asked for, but it cannot be used here ("),
    ("mkldnn", "error: device 'mkldnn' asked for, but it cannot be used here ("),
])
def test_unusable_devices_are_named_in_one_line(text, message, tmp_path, capsys):
    assert _refused(["--device", text, "--out", str(tmp_path / "out")], capsys).startswith(message)


def test_out_whose_result_file_is_a_directory_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "train.json").mkdir()
    line = _refused(["--out", str(tmp_path)], capsys)
    assert line == f"error: --out {tmp_path}: train.json there is a directory, not a file"


def test_out_that_is_a_file_names_the_path(tmp_path, capsys):
    path = tmp_path / "results"
    path.write_text("a file")
    assert _refused(["--out", str(path)], capsys) == f"error: --out {path}: exists and is not a directory"


@pytest.mark.parametrize("seed", [str(SEED_MAX), "-1"])
def test_seeds_at_the_ends_of_torchs_range_train(seed, tmp_path, capsys):
    assert main(["train", *QUICK, "--seed", seed, "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "train.json").read_text())["settings"]["seed"] == int(seed)


def test_images_too_large_to_allocate_are_one_line(tmp_path, capsys):
    args = ["train", "--limit", "8", "--epochs", "1", "--batch-size", "8", "--resize", str(10**7),
            "--out", str(tmp_path)]
    assert main(args) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(r"error: fast at batch size 8, 10000000x10000000 images: out of memory on \S+ "
                        r"\(tried to allocate .+\); lower --batch-size or --resize", line), line


def test_images_past_64_bit_sizes_are_one_line(tmp_path, capsys):
    args = ["train", "--limit", "8", "--epochs", "1", "--batch-size", "8", "--resize", str(10**20),
            "--out", str(tmp_path)]
    assert main(args) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (f"error: fast at batch size 8, {10**20}x{10**20} images: the sizes overflow 64 bits; "
                    "lower --batch-size or --resize")


@pytest.mark.parametrize("value", ["1e39", "1e308", "0", "-0.1", "nan"])
def test_learning_rate_past_float32_is_refused(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--lr", value])
    assert exit_info.value.code == 2
    assert f"argument --lr: must be a positive number up to 3.402823e+38 (float32), got {value!r}" in \
        capsys.readouterr().err
