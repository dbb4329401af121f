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
