import re

import pytest
import torch

from fastinception.__main__ import main
from fastinception.bench import check


def test_check_prints_errors_and_times(capsys):
    assert main(["check", "--batch", "2", "--repeats", "2"]) == 0
    text = capsys.readouterr().out
    assert "block 3a: x (2, 192, 28, 28) float32" in text
    # fp32's 1e-5 on a CPU; on a GPU tf32's 1e-3 while PyTorch's convolutions use tf32, as they do by default
    tolerance = float(re.search(r"\(tolerance (\S+)\)", text).group(1))
    assert tolerance == 1e-5 or torch.cuda.is_available()
    for name in ("reference", "FastInception"):
        row = re.search(rf"^{name}\s+(\S+)\s+(\S+)\s+ok$", text, re.M)
        assert row, text
        error, ms = float(row.group(1)), float(row.group(2))
        assert error <= tolerance and ms > 0


def test_check_fails_on_a_wrong_result(capsys, monkeypatch):
    # a FastInception off by 1% is reported WRONG and the command exits 1
    from fastinception.layer import FastInception

    real = FastInception.forward
    monkeypatch.setattr(FastInception, "forward", lambda self, x, out=None: real(self, x, out) * 1.01)
    assert main(["check", "--batch", "1", "--repeats", "1", "--backend", "torch"]) == 1
    assert re.search(r"^FastInception\s+\S+\s+\S+\s+WRONG$", capsys.readouterr().out, re.M)


def test_bench_is_the_default_command(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["--blocks", "5b", "--passes", "fwd", "--dtypes", "fp32", "--batches", "1", "--contenders",
            "eager-nchw,fast-torch", "--target-ms", "5", "--no-interpreter-check", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert re.search(r"^5b\s+fp32\s+1\s+FastInception torch\s+\S+\s+\(ours\)", text, re.M), text
    assert (out / "results.json").is_file() and (out / "results.md").is_file()


@pytest.mark.parametrize("args, message", [
    (["--backend", "foo"], "invalid choice: 'foo'"),
    (["--repeats", "0"], "must be a positive integer"),
    (["--batch", "-1"], "must be a positive integer"),
])
def test_check_refuses_bad_options(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["check", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_check_times_with_the_shared_timer(capsys, monkeypatch):
    calls = []
    real = check.measure

    def spy(fn, ring, device, **kwargs):
        calls.append((len(ring), kwargs["min_reps"], kwargs["max_reps"]))
        return real(fn, ring, device, **kwargs)

    monkeypatch.setattr(check, "measure", spy)
    assert main(["check", "--batch", "1", "--repeats", "1", "--backend", "torch"]) == 0
    assert calls == [(1, 1, 1), (1, 1, 1)]  # reference and FastInception, one input, exactly --repeats calls
