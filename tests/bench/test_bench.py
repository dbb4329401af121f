"""The benchmark runner: FLOP and byte arithmetic, the CPU run end to end, WRONG results never timed."""
import argparse
import copy
import json
import re
import struct

import pytest
import torch
from torch import nn

from fastinception import GOOGLENET_BLOCKS, Inception, InceptionSpec, googlenet
from fastinception.__main__ import main
from fastinception.bench import command as bench
from fastinception.bench.case import Case, Rates, run_case
from fastinception.bench.contenders import CONTENDERS, BackendUnavailable, Contender
from fastinception.bench.interpreter_check import interpreter_check
from fastinception.bench.roofline import block_bytes, block_flops, floor_seconds, network_flops
from fastinception.bench.timing import measure, ring_length
from fastinception.cli import charts

from helpers import REL_TOL

# A tiny selection: the smallest GoogLeNet block (7x7), batch 1, fp32, two contenders.
TINY = ["--blocks", "5b", "--passes", "fwd,fwdbwd", "--dtypes", "fp32", "--batches", "1", "--target-ms", "5",
        "--no-interpreter-check"]


def test_block_flops_and_bytes_by_hand():
    spec = InceptionSpec.from_args(4, 2, (3, 5), (1, 2), 2)  # k2 = 3, k3 = 5
    # per pixel: 4*(2+3+1+2) + 3*5*9 + 1*2*25 = 32 + 135 + 50 = 217; forward = 2 * N*H*W * 217 with N*H*W = 4
    assert block_flops(spec, 1, 2, 2, "fwd") == 1736
    assert block_flops(spec, 1, 2, 2, "fwdbwd") == 3 * 1736
    # elements: x 16, out 11*4 = 44, weights 217 + biases 15 = 232
    assert block_bytes(spec, 1, 2, 2, 4, "fwd") == (16 + 44 + 232) * 4
    # backward: read x, out, grad_out; write grad_x; read weights, write their grads
    assert block_bytes(spec, 1, 2, 2, 4, "fwdbwd") == (16 + 44 + 232 + 16 + 44 + 44 + 16 + 2 * 232) * 4
    # t2, t3: (3 + 1) channels * 4 pixels, written and read back in the forward
    assert block_bytes(spec, 1, 2, 2, 4, "fwd", intermediates=True) == (16 + 44 + 232 + 2 * 16) * 4
    with pytest.raises(ValueError, match="pass must be one of"):
        block_flops(spec, 1, 2, 2, "bwd")


def test_block_3a_matches_the_design_estimate():
    # About 33 GFLOP and about 90 MB at the floor for block 3a at batch 128 in fp16.
    args, size = GOOGLENET_BLOCKS["3a"]
    spec = InceptionSpec.from_args(*args)
    assert 32.5e9 < block_flops(spec, 128, size, size) < 33.5e9
    assert 89e6 < block_bytes(spec, 128, size, size, 2) < 91e6


def test_floor_is_the_slower_of_compute_and_traffic():
    assert floor_seconds(1e12, 1e9, matrix_rate=1e14, copy_bandwidth=1e12) == pytest.approx(1e-2)
    assert floor_seconds(1e9, 1e12, matrix_rate=1e14, copy_bandwidth=1e12) == pytest.approx(1.0)


def test_network_flops_count_every_convolution_and_the_classifier():
    flops = network_flops(googlenet(1000, 3), (1, 3, 224, 224))
    blocks = sum(block_flops(InceptionSpec.from_args(*a), 1, s, s) for a, s in GOOGLENET_BLOCKS.values())
    stem = 2 * 112 * 112 * 3 * 64 * 49 + 2 * 56 * 56 * 64 * 64 + 2 * 56 * 56 * 64 * 192 * 9
    assert flops == blocks + stem + 2 * 1024 * 1000


def test_timing_returns_ordered_statistics_on_cpu():
    timing = measure(lambda x: x.sum(), [torch.ones(8)], torch.device("cpu"), target_ms=1.0, min_reps=3)
    assert timing.reps >= 3
    assert 0 < timing.min_ms <= timing.p20_ms <= timing.median_ms <= timing.p80_ms
    assert ring_length(10**6, torch.device("cpu")) == 1


def _run(tmp_path, *extra, code=0):
    out = tmp_path / "out"
    assert main(["bench", *TINY, *extra, "--out", str(out)]) == code
    return out, json.loads((out / "results.json").read_text())


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_cpu_run_writes_json_markdown_and_charts(tmp_path, capsys):
    out, results = _run(tmp_path, "--contenders", "eager-nchw,eager-cl,fast-torch")
    text = capsys.readouterr().out
    on_gpu = torch.cuda.is_available()
    if not on_gpu:
        assert "no CUDA device: running the CPU matrix; no GPU numbers" in text
    assert "== Inception blocks, forward (inference) ==" in text
    assert "== Inception blocks, forward + backward ==" in text

    assert results["complete"] is True
    machine = results["machine"]
    for key in ("date", "device", "torch", "triton", "python", "cpu", "cpu_count"):
        assert machine[key], key
    assert set(results["rates"]["matrix_flops"]) == {"fp32"} and results["rates"]["copy_bytes_per_s"] > 0
    assert "flops_fwd" in results["roofline_model"] and "CUDA event" in results["timing_method"]
    assert [(c["model"], c["pass"], c["dtype"], c["batch"]) for c in results["cases"]] == [
        ("5b", "fwd", "fp32", 1), ("5b", "fwdbwd", "fp32", 1)]
    for case in results["cases"]:
        assert case["ours"] == "fast-torch" and case["flops"] > 0 and case["floor_ms"] > 0
        assert [c["name"] for c in case["contenders"]] == ["eager-nchw", "eager-cl", "fast-torch"]
        for c in case["contenders"]:
            assert c["status"] == "ok", c
            assert c["rel_error"] <= REL_TOL[torch.float32] or on_gpu
            assert c["median_ms"] > 0 and c["tflops"] > 0 and c["floor_fraction"] > 0 and c["speedup"] > 0
            assert (c["peak_mem_mib"] is None) == (not on_gpu)

    markdown = (out / "results.md").read_text()
    assert machine["date"] in markdown and machine["torch"] in markdown
    assert "| 5b | fp32 | 1 | FastInception torch |" in markdown
    assert results["charts"] == ["speedup-fwd-fp32-b1.png", "speedup-fwdbwd-fp32-b1.png"]
    for name in results["charts"]:
        width, height = _png_size(out / name)
        assert width > 400 and height > 200


def test_without_matplotlib_the_run_says_so_and_writes_tables_only(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(charts, "available", lambda: False)
    out, results = _run(tmp_path, "--contenders", "fast-torch")
    text = capsys.readouterr().out
    assert "matplotlib is not installed: writing JSON and markdown only, no charts" in text
    assert "charts: none" in text
    assert "charts" not in results and not list(out.glob("*.png"))
    assert (out / "results.md").exists()


def _off_by_one_percent(model: nn.Module, layout: str) -> nn.Module:
    wrong = copy.deepcopy(model)  # same parameter names, so the backward pass is checked too
    wrong.register_forward_hook(lambda module, inputs, output: output * 1.01)
    return wrong


def test_a_wrong_contender_is_reported_wrong_and_not_timed(tmp_path, capsys, monkeypatch):
    # A FastInception contender: its wrong result must fail the run, and speed-ups go to the next one that is right.
    wrong = Contender("wrong", "deliberately wrong", _off_by_one_percent, fastinception=True)
    monkeypatch.setitem(CONTENDERS, "wrong", wrong)
    out, results = _run(tmp_path, "--contenders", "eager-nchw,wrong,fast-torch", code=1)
    for case in results["cases"]:
        record = next(c for c in case["contenders"] if c["name"] == "wrong")
        assert record["status"] == "WRONG" and "relative error" in record["reason"]
        assert record["rel_error"] > 1e-3
        assert record["median_ms"] is None and record["speedup"] is None and record["tflops"] is None
        assert case["ours"] == "fast-torch"
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if "deliberately wrong" in line and line.startswith("5b")]
    assert len(rows) == 2 and all(row.rstrip().endswith("WRONG") for row in rows)
    assert "FAILED: 5b fwd fp32 batch 1 deliberately wrong: WRONG: relative error" in text
    assert "speed-up: the contender's time / FastInception torch's time" in (out / "results.md").read_text()


def test_without_a_right_fastinception_contender_there_are_no_speedups(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(CONTENDERS, "wrong", Contender("wrong", "deliberately wrong", _off_by_one_percent,
                                                       fastinception=True))
    out, results = _run(tmp_path, "--contenders", "eager-nchw,wrong", "--passes", "fwd", code=1)
    (case,) = results["cases"]
    assert case["ours"] is None and all(c["speedup"] is None for c in case["contenders"])
    assert case["ours_missing"] == "no FastInception contender passed its check (deliberately wrong WRONG)"
    assert results["charts"] == []
    text = capsys.readouterr().out
    assert "5b fp32 batch 1: no speed-ups: no FastInception contender passed its check" in text
    assert "(ours)" not in text and "speed-up: none" in text
    assert "speed-up: none" in (out / "results.md").read_text()


def test_an_interpreter_check_that_fails_fails_the_run():
    results = {"cases": [], "interpreter_check": {"status": "WRONG", "reason": "relative error 1e-2 > tolerance"}}
    assert bench.failures(results) == ["Triton kernels under the interpreter: WRONG: relative error 1e-2 > tolerance"]
    results["interpreter_check"]["status"] = "unavailable"  # not on this machine: not a failure
    assert bench.failures(results) == []


def _raises(error):
    def build(model, layout):
        raise error

    return build


def test_only_a_missing_backend_is_unavailable(monkeypatch):
    for name, error in (("no-module", ModuleNotFoundError("No module named 'triton'")),
                        ("no-device", BackendUnavailable("the Triton kernels need CUDA tensors")),
                        ("buggy", ValueError("a bug in build"))):
        monkeypatch.setitem(CONTENDERS, name, Contender(name, name, _raises(error)))
    case = Case("5b", "fwd", "fp32", 1)
    record = run_case(case, ["no-module", "no-device", "buggy"], torch.device("cpu"), "channels_last",
                      Rates({"fp32": 1e9}, 1e9), 1.0, lambda text: None)
    status = {r["name"]: (r["status"], r["reason"]) for r in record["contenders"]}
    assert status["no-module"] == ("unavailable", "ModuleNotFoundError: No module named 'triton'")
    assert status["no-device"] == ("unavailable", "BackendUnavailable: the Triton kernels need CUDA tensors")
    assert status["buggy"] == ("FAILED", "ValueError: a bug in build")
    assert record["ours"] is None and record["ours_missing"] == "no FastInception contender was run"


def test_triton_on_a_cpu_without_the_interpreter_is_unavailable(monkeypatch):
    pytest.importorskip("triton")  # imported under the interpreter before the variable changes
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendUnavailable, match="need CUDA tensors"):
        CONTENDERS["fast-triton"].build(Inception(*GOOGLENET_BLOCKS["5b"][0]), "channels_last")


@pytest.mark.parametrize("option", ["--batches", "--googlenet-batches"])
@pytest.mark.parametrize("value", ["0", "-1", "1,0", "two", "1.5"])
def test_batches_must_be_positive_integers(option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", option, value])
    assert exit_info.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--threads", "0"], ["--target-ms", "0"], ["--target-ms", "-5"]])
def test_counts_and_durations_must_be_positive(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *args])
    assert exit_info.value.code == 2
    assert "must be a positive" in capsys.readouterr().err


def test_saved_command_repeats_the_run():
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--blocks", "3a,5b", "--batches", "2", "--googlenet", "--max-autotune", "--nchw",
                              "--target-ms", "7.5", "--seed", "3", "--threads", "1", "--no-interpreter-check",
                              "--model", "fid", "--v3-blocks", "Mixed_6a"])
    for device in (torch.device("cpu"), torch.device("cuda")):
        options = bench._resolve(args, device)
        command = bench.command_line(options)
        words = command.split()
        assert words[:4] == ["python", "-m", "fastinception", "bench"]
        for option in ("--target-ms 7.5", "--seed 3", "--threads 1", "--layout nchw", "--no-interpreter-check",
                       "--model googlenet,fid", "--v3-blocks Mixed_6a"):
            assert option in command, option
        assert bench._resolve(parser.parse_args(words[4:]), device) == options


def test_triton_is_not_timed_on_cpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CPU behaviour")
    _, results = _run(tmp_path, "--contenders", "fast-triton,fast-torch", "--passes", "fwd")
    (record,) = [c for c in results["cases"][0]["contenders"] if c["name"] == "fast-triton"]
    assert record["status"] == "skipped" and "interpreter" in record["reason"] and record["median_ms"] is None


def test_interpreter_check_reports_float64_errors():
    if torch.cuda.is_available():
        pytest.skip("the interpreter check runs on machines without CUDA")
    record = interpreter_check()
    assert record["status"] == "ok", record
    assert set(record["rel_error"]) == {"forward", "grad_x", "grad_params"}
    assert max(record["rel_error"].values()) <= REL_TOL[torch.float32]


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    text = re.sub(r"-\n\s*", "-", capsys.readouterr().out)  # undo line breaks after hyphens
    # The description states the default runs as they are defined.
    flat = " ".join(text.split())
    assert f"on GPU {bench._describe(bench.GPU_DEFAULTS, 0)};" in flat
    assert f"on CPU {bench._describe(bench.CPU_DEFAULTS, 0)}," in flat
    for option in ("--blocks", "--passes", "--dtypes", "--batches", "--contenders", "--max-autotune", "--layout",
                   "--channels-last", "--nchw", "--googlenet", "--googlenet-passes", "--googlenet-batches", "--full",
                   "--out", "--target-ms", "--threads", "--no-interpreter-check", "--seed"):
        assert option in text, option
    for name in CONTENDERS:
        assert name in text


def test_unknown_block_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--blocks", "3a,9z"])
    assert "unknown ['9z']" in capsys.readouterr().err


def test_program_flops_by_hand_for_rectangular_strided_and_split_convs():
    from fastinception.bench.roofline import program_flops
    from fastinception.blocks.program import BlockProgram, Branch, Conv, Pool

    # 1x1 (4 -> 3) on 6x6, then a 3x3 stride 2 (3 -> 2) to 2x2 beside a max pool; then a split of 1x3 and 3x1
    program = BlockProgram(4, (Branch((Conv(3), Conv(2, 3, 2)), ()),
                               Branch((Pool("max", 3, 2),)),
                               Branch((Conv(2, 3, 2),), (Conv(1, (1, 3), padding=(0, 1)), Conv(1, (3, 1),
                                                                                               padding=(1, 0))))))
    # 2 x pixels x out x in x taps, per conv
    one_by_one = 2 * 36 * 3 * 4
    strided = 2 * 4 * 2 * 3 * 9  # 2x2 output pixels
    strided_from_x = 2 * 4 * 2 * 4 * 9
    split = 2 * (2 * 4 * 1 * 2 * 3)  # two convs, 2x2 pixels, 2 -> 1 channels, 3 taps
    assert program_flops(program, 1, 6, 6) == one_by_one + strided + strided_from_x + split == 1968


def test_inception_v3_blocks_run_inference_only(tmp_path, capsys):
    assert main(["bench", "--blocks", "none", "--v3-blocks", "Mixed_7a", "--passes", "fwd,fwdbwd", "--dtypes",
                 "fp32", "--batches", "1", "--target-ms", "5", "--no-interpreter-check", "--contenders",
                 "eager-nchw,fast-torch", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    (case,) = results["cases"]
    assert (case["model"], case["pass"], case["input_shape"]) == ("Mixed_7a", "fwd", [1, 768, 17, 17])
    assert [r["status"] for r in case["contenders"]] == ["ok", "ok"] and case["ours"] == "fast-torch"
    assert case["floor_ms"] is None and case["flops"] > 0
    assert "--v3-blocks Mixed_7a" in results["command"]


@pytest.mark.slow  # tens of seconds on two cores: copies of 43M and 55M parameters in fp32 and float64
@pytest.mark.parametrize("model", ["inception_v4", "inception_resnet_v2"])
def test_timms_networks_are_checked_against_float64_and_timed(model):
    # at 75x75, the smallest side they take: the eager reference (timm's forward) and ours, both checked first
    record = run_case(Case(model, "fwdbwd", "fp32", 1, size=75), ["eager-nchw", "fast-torch"], torch.device("cpu"),
                      "channels_last", Rates({"fp32": 1e9}, 1e9), 1.0, lambda text: None)
    assert [(r["name"], r["status"]) for r in record["contenders"]] == [("eager-nchw", "ok"), ("fast-torch", "ok")]
    assert record["ours"] == "fast-torch" and record["flops"] > 0


@pytest.mark.slow  # whole networks at 299x299: seconds each even on a CPU
@pytest.mark.parametrize("model, passes", [("fid", ["fwd"]), ("inception_v3", ["fwd", "fwdbwd"])])
def test_whole_inception_v3_and_the_fid_extractor(tmp_path, model, passes):
    # the fid extractor is timed for feature extraction only, whatever --passes says
    assert main(["bench", "--blocks", "none", "--model", model, "--passes", "fwd,fwdbwd", "--dtypes", "fp32",
                 "--googlenet-batches", "1", "--fid-batches", "1", "--target-ms", "5", "--no-interpreter-check",
                 "--contenders", "eager-nchw,fast-torch", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert [(c["model"], c["pass"], c["input_shape"]) for c in results["cases"]] == [
        (model, p, [1, 3, 299, 299]) for p in passes]
    for case in results["cases"]:
        assert [r["status"] for r in case["contenders"]] == ["ok", "ok"] and case["ours"] == "fast-torch"
    assert (tmp_path / "results.md").read_text().count(f"{model} ") >= 2 * len(passes)
