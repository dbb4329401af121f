"""``python -m fastinception inspect`` end to end: real offline compiles for sm_90, in a subprocess.

The test session runs Triton's interpreter (``tests/conftest.py``), and Triton reads ``TRITON_INTERPRET`` once,
when first imported: offline compiles need a process that imported it without.
"""
import json
import subprocess
import sys

import pytest

from fastinception.__main__ import main
from fastinception.inspect.binary import LOAD_KINDS, MMA_KINDS
from fastinception.inspect.report import ROW_FIELDS

from helpers import inspect_command

KERNEL_ARGS = ["--kernels", "conv2d_bias_relu_pair", "--dtypes", "fp16", "--layouts", "channels_last", "--configs", "1",
               "--jobs", "2"]


def test_one_kernel_compiles_for_sm90_and_the_rerun_reads_the_cache(tmp_path):
    cache = tmp_path / "cache"
    args = [*KERNEL_ARGS, "--cache", str(cache), "--json", "report.json", "--markdown", "report.md"]
    first = inspect_command(*args, cwd=tmp_path, facts=False)  # this test is about the cache: no facts file
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    header, rows = report["header"], report["rows"]
    for key in ("target", "triton", "torch", "date", "problem", "note", "command"):
        assert header[key], key
    assert header["target"].startswith("sm_90") and "not timings" in header["note"]
    assert "128x192x28x28" in header["problem"] and header["failed"] == []
    # the pair kernel launches twice per dtype and layout: inference, and training (which writes the ReLU mask)
    assert [r["kernel"] for r in rows] == ["conv2d_bias_relu_pair k3 96->128 + k5 16->32",
                                           "conv2d_bias_relu_pair k3 96->128 + k5 16->32 +mask"], rows
    for row in rows:
        assert tuple(row) == ROW_FIELDS
        assert (row["dtype"], row["layout"]) == ("fp16", "channels_last")
        assert 1 <= row["registers"] <= 255 and row["spill_bytes"] >= 0 and row["smem_bytes"] >= 0
        assert 0 < row["warps_per_sm"] <= 64 and row["limited_by"]
        assert row["mma"] in MMA_KINDS and row["mma"] != "fma"  # an fp16 tl.dot uses tensor cores
        assert row["loads"] in LOAD_KINDS
    markdown = (tmp_path / "report.md").read_text()
    assert "| " + " | ".join(ROW_FIELDS) + " |" in markdown and "not timings" in markdown
    assert header["compiles"]["unique"] == 2 and header["compiles"]["cached"] == 0

    again = inspect_command(*[*args[:-4], "--json", "again.json"], cwd=tmp_path, facts=False)
    assert again.returncode == 0, again.stdout + again.stderr
    cached = json.loads((tmp_path / "again.json").read_text())
    assert cached["header"]["compiles"]["cached"] == 2
    assert cached["rows"] == rows


def test_an_unknown_kernel_is_named(tmp_path):
    result = inspect_command("--kernels", "stem_forward,nosuch", "--dtypes", "fp16", "--layouts", "channels_last",
                             "--cache", str(tmp_path / "cache"), cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown nosuch" in result.stderr and "stem_forward" in result.stderr


@pytest.mark.parametrize("value", ["1", "true"])
def test_refused_under_the_interpreter(monkeypatch, capsys, value):
    monkeypatch.setenv("TRITON_INTERPRET", value)
    assert main(["inspect", "--kernels", "stem_forward"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "unset TRITON_INTERPRET" in err and len(err.splitlines()) == 1


def test_a_report_path_that_is_a_directory_is_refused(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("TRITON_INTERPRET")  # the check on paths comes before any import of the kernels
    assert main(["inspect", "--json", str(tmp_path)]) == 2
    assert "expected a file, got a directory" in capsys.readouterr().err


def test_importing_the_commands_leaves_triton_unimported():
    code = "import sys, fastinception.__main__; sys.exit('triton' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_a_facts_file_gives_the_facts_of_the_compiles_it_holds(tmp_path):
    from fastinception.inspect.compile import Cache, Job, compile_all, load_facts, save_facts

    path = tmp_path / "facts.json"
    assert load_facts(path) == {}
    save_facts(path, {"k1": {"registers": 40, "cached": False}, "failed": {"error": "ptxas died"}})
    save_facts(path, {"k2": {"registers": 64, "cached": True}})  # merged, not replaced
    assert load_facts(path) == {"k1": {"registers": 40}, "k2": {"registers": 64}}
    # no cache folder, one worker: a job whose key the file holds is read, none is compiled (this one could not be)
    job = Job("k1", "no.such.module", "kernel", {}, {}, {}, {}, 90)
    assert compile_all([job], 1, Cache(None, load_facts(path))) == {"k1": {"registers": 40, "cached": True}}
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object of compile key -> facts"):
        load_facts(path)


def test_a_missing_or_broken_facts_file_is_refused(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("TRITON_INTERPRET")  # the options are checked before any import of the kernels
    assert main(["inspect", "--facts", str(tmp_path / "none.json")]) == 2
    assert "--facts: expected a facts file, found none at" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{")
    assert main(["inspect", "--facts", str(tmp_path / "broken.json")]) == 2
    assert "is not JSON" in capsys.readouterr().err
