"""Bad option values and impossible paths end bench and check with one line on stderr and exit status 2, before
any work; check on Triton's CPU interpreter says so up front and shows its progress."""
import os
import re

import pytest
import torch

import fastinception.kernels.common as kernels_common
from fastinception.__main__ import main
from fastinception.bench import check
from fastinception.bench.case import Case, Rates, run_case
from fastinception.bench.timing import _reps_for
from fastinception.cli import progress

SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1  # what torch.manual_seed and torch.Generator.manual_seed accept
CPU_ONLY = pytest.mark.skipif(torch.cuda.is_available(), reason="the Triton interpreter runs where there is no CUDA")
TINY = ["--blocks", "5b", "--passes", "fwd", "--dtypes", "fp32", "--batches", "1", "--contenders", "fast-torch",
        "--target-ms", "5", "--no-interpreter-check"]


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _bench_refused(args, capsys) -> str:
    """bench must exit with status 2 before measuring anything; returns its one error line."""
    assert main(["bench", *TINY, *args]) == 2
    captured = capsys.readouterr()
    assert "measuring the machine" not in captured.out and "[1/" not in captured.out
    return _one_error_line(captured.err)


def _parse_refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------------
# bench --out


def test_bench_out_that_is_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "results"
    path.write_text("a file")
    assert _bench_refused(["--out", str(path)], capsys) == f"error: --out {path}: exists and is not a directory"
    line = _bench_refused(["--out", str(path / "sub")], capsys)
    assert line == f"error: --out {path / 'sub'}: cannot create the directory (Not a directory)"
    assert path.read_text() == "a file"


def test_bench_out_under_an_unwritable_directory_is_refused(tmp_path, capsys, monkeypatch):
    parent = tmp_path / "locked"
    parent.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the directory look as it does to everyone else
        real_makedirs = os.makedirs

        def refuse(path, *args, **kwargs):
            if not os.path.isdir(path):
                raise PermissionError(13, "Permission denied", str(path))
            return real_makedirs(path, *args, **kwargs)

        monkeypatch.setattr(os, "makedirs", refuse)
        monkeypatch.setattr(os, "access", lambda path, mode: False)
    else:
        parent.chmod(0o500)
    try:
        line = _bench_refused(["--out", str(parent / "sub")], capsys)
        assert line == f"error: --out {parent / 'sub'}: cannot create the directory (Permission denied)"
        assert _bench_refused(["--out", str(parent)], capsys) == f"error: --out {parent}: the directory is not writable"
    finally:
        parent.chmod(0o700)


def test_bench_out_whose_result_file_is_a_directory_is_refused(tmp_path, capsys):
    (tmp_path / "results.json").mkdir()
    line = _bench_refused(["--out", str(tmp_path)], capsys)
    assert line == f"error: --out {tmp_path}: results.json there is a directory, not a file"


def test_prepare_out_creates_the_directory_and_its_parents(tmp_path):
    from fastinception.cli import errors

    out = tmp_path / "a" / "b"
    assert errors.prepare_out(str(out), ("results.json",)) == out and out.is_dir()
    assert errors.prepare_out(out) == out  # an existing directory is fine


# ---------------------------------------------------------------------------------------------------------------------
# option values


@pytest.mark.parametrize("value", [str(SEED_MAX + 1), str(SEED_MIN - 1), "1.5", "seven", ""])
@pytest.mark.parametrize("command", ["bench", "train"])
def test_seed_out_of_torchs_range_is_refused(command, value, capsys):
    err = _parse_refused([command, "--seed", value], capsys)
    assert f"argument --seed: must be an integer from {SEED_MIN} to {SEED_MAX}" in err and f"got {value!r}" in err


def test_seed_range_is_what_torch_accepts():
    from fastinception.cli.arguments import SEED_MAX as parsed_max
    from fastinception.cli.arguments import SEED_MIN as parsed_min

    assert (parsed_min, parsed_max) == (SEED_MIN, SEED_MAX)
    for seed in (SEED_MIN, -1, 0, SEED_MAX):
        torch.Generator().manual_seed(seed)
    for seed in (SEED_MIN - 1, SEED_MAX + 1):
        with pytest.raises((RuntimeError, ValueError, OverflowError)):
            torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", [SEED_MAX, -1])
def test_bench_runs_a_case_at_the_ends_of_the_seed_range(seed):
    # The inputs' generator is seeded with seed + 1, which must wrap as torch wraps negative seeds.
    record = run_case(Case("5b", "fwd", "fp32", 1), ["fast-torch"], torch.device("cpu"), "channels_last",
                      Rates({"fp32": 1e9}, 1e9), 1.0, lambda text: None, seed=seed)
    assert record["contenders"][0]["status"] == "ok", record


@pytest.mark.parametrize("command", ["bench", "train"])
def test_threads_beyond_the_cpus_are_refused(command, capsys):
    cpus = os.cpu_count()
    err = _parse_refused([command, "--threads", str(cpus + 1)], capsys)
    assert f"argument --threads: must be a positive integer up to {cpus} (the CPUs here), got '{cpus + 1}'" in err
    assert "Overflow" not in _parse_refused([command, "--threads", "100000000000"], capsys)


@pytest.mark.parametrize("value", ["none", ","])
def test_bench_without_contenders_is_refused(value, capsys):
    err = _parse_refused(["bench", "--contenders", value], capsys)
    assert f"argument --contenders: at least one contender is needed, got {value!r}" in err


def test_bench_batch_too_large_to_allocate_is_one_line(tmp_path, capsys):
    args = [*TINY, "--batches", str(10**10), "--out", str(tmp_path)]
    assert main(["bench", *args]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert re.fullmatch(r"error: 5b fwd fp32 batch 10000000000: out of memory on \w+ \(tried to allocate .+\); "
                        r"lower --batches", line), line


def test_bench_batch_past_64_bit_sizes_is_one_line(tmp_path, capsys):
    assert main(["bench", *TINY, "--batches", str(10**20), "--out", str(tmp_path)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == f"error: 5b fwd fp32 batch {10**20}: the sizes overflow 64 bits; lower --batches"


def test_repetitions_of_a_huge_target_do_not_overflow():
    assert _reps_for(1e-9, 1e308, 3, 1000) == 1000


# ---------------------------------------------------------------------------------------------------------------------
# check


def test_check_batch_too_large_to_allocate_is_one_line(capsys):
    assert main(["check", "--backend", "torch", "--batch", str(10**10), "--repeats", "1"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert re.fullmatch(r"error: block 3a at batch 10000000000: out of memory on \w+ \(tried to allocate .+\); "
                        r"lower --batch", line), line


def test_check_batch_past_64_bit_sizes_is_one_line(capsys):
    assert main(["check", "--backend", "torch", "--batch", str(10**20), "--repeats", "1"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == f"error: block 3a at batch {10**20}: the sizes overflow 64 bits; lower --batch"


@CPU_ONLY
def test_check_triton_without_the_interpreter_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr(kernels_common, "interpreting", lambda: False)
    assert main(["check", "--backend", "triton", "--batch", "1", "--repeats", "1"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("error: --backend triton: the Triton kernels need CUDA tensors"), line


def _interpreted_check(monkeypatch, capsys, *args):
    """check with the torch backend (fast) standing in for the interpreter; returns (stdout, stderr, measure calls)."""
    monkeypatch.setattr(check, "_on_interpreter", lambda backend, device: True)
    calls = []
    real = check.measure

    def spy(fn, ring, device, **kwargs):
        calls.append((tuple(ring[0].shape), kwargs["max_reps"]))
        return real(fn, ring, device, **kwargs)

    monkeypatch.setattr(check, "measure", spy)
    assert main(["check", "--block", "5b", "--backend", "torch", *args]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err, calls


def test_check_on_the_interpreter_says_so_first_and_shows_progress(monkeypatch, capsys):
    out, err, calls = _interpreted_check(monkeypatch, capsys, "--repeats", "2")
    first = out.splitlines()[0]
    assert "Triton's CPU interpreter" in first and "slow" in first and "correctness, not speed" in first, out
    assert "5 FastInception calls" in first  # one to check, two warm-up, two timed
    assert "5/5" in err  # the bar, on stderr
    assert [repeats for _, repeats in calls] == [2, 2]


def test_check_on_the_interpreter_defaults_to_batch_1_and_one_timed_run(monkeypatch, capsys):
    out, _, calls = _interpreted_check(monkeypatch, capsys)
    assert calls == [((1, 832, 7, 7), 1)] * 2
    assert "4 FastInception calls (batch 1, 1 timed)" in out.splitlines()[0]


def test_check_on_the_interpreter_without_tqdm_still_says_so(monkeypatch, capsys):
    monkeypatch.setattr(progress, "available", lambda: False)
    out, err, _ = _interpreted_check(monkeypatch, capsys, "--batch", "1", "--repeats", "1")
    assert "Triton's CPU interpreter" in out.splitlines()[0]
    assert err == ""


def test_check_off_the_interpreter_keeps_its_defaults_and_says_nothing_of_it(monkeypatch, capsys):
    calls = []
    real = check.measure
    monkeypatch.setattr(check, "measure", lambda fn, ring, device, **kw: calls.append(
        (tuple(ring[0].shape), kw["max_reps"])) or real(fn, ring, device, **kw))
    assert main(["check", "--block", "5b", "--backend", "torch"]) == 0
    captured = capsys.readouterr()
    assert calls == [((8, 832, 7, 7), 10)] * 2
    assert "interpreter" not in captured.out and captured.err == ""


def test_check_help_states_the_interpreter_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "batch size (default 8; 1 when the Triton kernels run under Triton's CPU interpreter)" in text
    assert "(default 10; 1 when the Triton kernels run under Triton's CPU interpreter, which checks correctness, " \
           "not speed)" in text


@CPU_ONLY
@pytest.mark.slow
def test_check_triton_on_the_interpreter_end_to_end(capsys):
    pytest.importorskip("triton")
    assert main(["check", "--block", "5b", "--backend", "triton"]) == 0
    out = capsys.readouterr().out
    assert "Triton's CPU interpreter" in out.splitlines()[0]
    row = re.search(r"^FastInception\s+(\S+)\s+(\S+)\s+ok$", out, re.M)
    assert row and float(row.group(1)) < 1e-4, out
