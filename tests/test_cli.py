import re

from fastinception.__main__ import main


def test_check_prints_errors_and_times(capsys):
    assert main(["check", "--batch", "2", "--repeats", "2"]) == 0
    text = capsys.readouterr().out
    assert "block 3a: x (2, 192, 28, 28) float32" in text
    for name in ("reference", "FastInception"):
        row = re.search(rf"^{name}\s+(\S+)\s+(\S+)$", text, re.M)
        assert row, text
        error, ms = float(row.group(1)), float(row.group(2))
        assert error < 1e-4 and ms > 0


def test_bench_is_the_default_command(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["--blocks", "5b", "--passes", "fwd", "--dtypes", "fp32", "--batches", "1", "--contenders",
            "eager-nchw,fast-torch", "--target-ms", "5", "--no-interpreter-check", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert re.search(r"^5b\s+fp32\s+1\s+FastInception torch\s+\S+\s+\(ours\)", text, re.M), text
    assert (out / "results.json").is_file() and (out / "results.md").is_file()


def test_bench_help_names_its_options(capsys):
    try:
        main(["bench", "--help"])
    except SystemExit as e:
        assert e.code == 0
    text = capsys.readouterr().out
    assert "--blocks" in text and "--googlenet" in text and "--out" in text
