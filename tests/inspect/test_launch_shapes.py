"""Launch shapes (``python -m fastinception inspect --shapes``): grids read from the launchers, waves on sm_90's 132
SMs, the work of each launch, and the one-wave gate: at batch 128 every launch of more than 1 GFLOP fills at least
one wave with its best-filling candidate, or ``shapes.REASONS`` says why not.

The arithmetic runs here; what needs offline compiles runs in a subprocess (see test_inspect_command.py) on the
default compile cache (``~/.cache/fastinception/inspect``, or under ``XDG_CACHE_HOME``), which the report command
fills too: the first run compiles (about a minute on two cores for Inception-v3's gate), later runs read it back
in seconds. ``-m slow`` gates GoogLeNet's, Inception-v3's and the FID network's launches; the default run proves
that the gate fails for a launch forced short and checks a report's numbers.
"""
import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch
import triton

from fastinception.inspect import shapes
from fastinception.inspect.capture import Launch
from fastinception.inspect.occupancy import TARGETS
from fastinception.inspect.shapes import GATE_BATCH, GATE_FLOPS, Reason

from helpers import compile_facts_args, inspect_command

SM90 = TARGETS["sm_90"]
FIELDS = ("grid", "ctas_per_sm", "waves", "tail_fill", "k_iters")


@pytest.mark.parametrize("ctas, wave, waves, tail", [
    (264, 264, 1.0, 1.0),  # exactly one wave
    (528, 264, 2.0, 1.0),
    (300, 264, 300 / 264, 36 / 264),  # a second wave with 36 CTAs
    (100, 264, 100 / 264, 100 / 264),  # under one wave: the only wave is the last
])
def test_waves_and_tail(ctas, wave, waves, tail):
    assert shapes.waves(ctas, wave) == pytest.approx(waves)
    assert shapes.tail_fill(ctas, wave) == pytest.approx(tail)


def _candidate(config, grid, wave):
    return {"config": config, "grid": grid, "wave": wave}


def test_the_best_filling_candidate_has_the_most_ctas_in_flight_up_to_one_wave():
    short = _candidate("big", 100, 132)  # 0.76 of a wave
    shorter = _candidate("many small", 400, 1056)  # more CTAs, but 0.38 of its wave
    ragged = _candidate("ragged", 300, 264)  # 1.14 waves
    even = _candidate("even", 520, 264)  # 1.97 waves
    unfit = {"config": "unfit", "grid": 10_000, "wave": 0}  # fits no SM
    failed = {"config": "failed", "grid": 10_000, "wave": 0, "error": "x"}
    assert shapes.best([shorter, short, unfit, failed]) is short
    assert shapes.best([short, ragged, even]) is ragged  # both fill a wave: the autotuner's first
    assert shapes.best([unfit, failed]) is None
    assert not shapes.full(short) and shapes.full(ragged) and not shapes.full(None)


def test_the_grid_is_the_launchers_own_function_of_the_config():
    config = triton.Config({"BLOCK_M": 64, "BLOCK_N": 32}, num_warps=4)
    seen = {}

    def grid(meta):  # as Triton calls it: the launch's arguments and the config's meta-parameters
        seen.update(meta)
        return (triton.cdiv(meta["P"], meta["BLOCK_M"]), triton.cdiv(meta["C"], meta["BLOCK_N"]), 3)

    launch = Launch("k", "", None, {"P": 1000, "C": 100}, [config], "fp16", "channels_last", grid)
    assert launch.grid_of(config) == (16, 4, 3)
    assert seen["num_warps"] == 4
    assert Launch("k", "", None, {}, [config], "fp16", "channels_last", (7,)).grid_of(config) == (7,)


def test_a_split_weight_gradient_takes_its_pixel_chunk_from_the_grid():
    # 4 x 2 output tiles, 9 taps: 72 CTAs without a split, each over every pixel; a grid with a split axis of 8
    # gives each CTA an eighth of them
    a = {"P": 8192, "C_OUT": 256, "C_IN": 64, "KH": 3, "KW": 3, "HAS_W": True, "HAS_B": True}
    meta = {"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 64}
    k_iters = shapes.WORK["conv2d_weight_grad"].k_iters
    assert k_iters(a, meta, 4 * 2 * 9) == 8192 // 64
    assert k_iters(a, meta, 4 * 2 * 9 * 8) == 8192 // 64 // 8
    assert k_iters({**a, "PIX_PER_SPLIT": 1024}, meta, 4 * 2 * 9 * 8) == 1024 // 64
    assert shapes.WORK["conv2d_weight_grad"].flops(a) == 2 * 8192 * 256 * 64 * 9 + 8192 * 256


def test_min_bytes_counts_each_tensor_once_and_an_accumulated_one_twice():
    x = torch.empty(4, 8, dtype=torch.float16)
    gx = torch.empty(2, 8, dtype=torch.float32)
    args = {"gya_ptr": x, "gyb_ptr": x, "gx_ptr": gx, "ACCUMULATE": False}  # b repeats a: an absent second conv
    assert shapes.min_bytes("conv2d_input_grad", args) == 64 + 64
    assert shapes.min_bytes("conv2d_input_grad", {**args, "ACCUMULATE": True}) == 64 + 2 * 64
    assert shapes.min_bytes("conv2d_input_grad", {**args, "gyb_ptr": x[:2]}) == 64 + 32 + 64


def test_launches_are_matched_across_batches_by_label_and_order():
    def launch(label, P):
        return SimpleNamespace(label=label, kernel=label.split()[0], dtype="fp16", layout="channels_last",
                               passes=("backward",), count=1, P=P)

    found = shapes.entries([("v3", "B", 1, [launch("a x", 1), launch("a x", 2), launch("b", 3)]),
                            ("v3", "B", 128, [launch("a x", 10), launch("a x", 20), launch("b", 30)])])
    assert [(e["launch"], {b: one.P for b, one in e["by_batch"].items()}) for e in found] == [
        ("a x", {1: 1, 128: 10}), ("a x", {1: 2, 128: 20}), ("b", {1: 3, 128: 30})]


def _entry(kernel, block, flops, grid, wave, label=None):
    return {"network": "v3", "block": block, "launch": label or kernel, "kernel": kernel, "passes": ["backward"],
            "batches": [{"batch": GATE_BATCH, "flops": flops,
                         "candidates": [{"config": "c", "grid": grid, "wave": wave, "waves": grid / wave}]}]}


def test_the_gate_flags_short_launches_over_a_gflop_and_names_their_reason():
    open_reason = Reason(("wgrad",), "sums every pixel in one program", open=True)
    small = Reason(("conv",), "small by nature", blocks=("7a",))
    launches = [
        _entry("conv", "6b", 2 * GATE_FLOPS, 100, 132),  # short, no reason
        _entry("conv", "7a", 2 * GATE_FLOPS, 100, 132),  # short, by nature
        _entry("wgrad", "6b", 2 * GATE_FLOPS, 10, 132),  # short, open
        _entry("conv", "6c", GATE_FLOPS / 2, 10, 132),  # short but small: not checked
        _entry("conv", "6d", 2 * GATE_FLOPS, 264, 264),  # one full wave
        _entry("new", "6d", None, 10, 132),  # a kernel without a work model is checked whatever its size
    ]
    gate = shapes.gate(launches, (open_reason, small))
    assert gate["checked"] == 5
    assert [(f["block"], f["kernel"], f["reason"]) for f in gate["flagged"]] == [
        ("6b", "conv", None), ("7a", "conv", "small by nature"), ("6b", "wgrad", "sums every pixel in one program"),
        ("6d", "new", None)]
    assert [(f["block"], f["kernel"]) for f in gate["unexplained"]] == [("6b", "conv"), ("6d", "new")]
    assert not gate["passed"] and gate["stale"] == []
    assert shapes.gate(launches[1:3], (open_reason, small))["passed"]


def test_an_open_reason_goes_stale_once_its_launches_fill_a_wave():
    open_reason = Reason(("wgrad",), "sums every pixel in one program", open=True)
    fixed = [_entry("wgrad", "6b", 2 * GATE_FLOPS, 500, 264)]
    gate = shapes.gate(fixed, (open_reason,))
    assert gate["flagged"] == [] and gate["stale"] == [open_reason.why] and not gate["passed"]
    # a reason whose launches this run did not check is not stale
    assert shapes.gate([], (open_reason,))["passed"]
    # nor is one that is not open
    assert shapes.gate(fixed, (Reason(("wgrad",), "small", open=False),))["passed"]


def test_every_reason_covers_a_kernel_that_has_a_work_model():
    assert {k for r in shapes.REASONS for k in r.kernels} <= set(shapes.WORK)


# ---------------------------------------------------------------------------------------------------------------
# offline compiles, in a subprocess

def _shapes(directory, *args, name="shapes.json"):
    result = inspect_command("--shapes", *args, "--json", name, "--jobs", "2", cwd=directory)
    assert (directory / name).exists(), result.stdout + result.stderr
    return result, json.loads((directory / name).read_text())


def _gate(directory, networks):
    result, report = _shapes(directory, networks, "--gate")
    gate = report["gate"]
    assert report["header"]["failed"] == [] and report["header"]["work_missing"] == []
    assert result.returncode == (0 if gate["passed"] else 1), result.stdout + result.stderr
    return gate


def _flagged(gate):
    return "\n".join(f"{f['network']} {f['block']} {f['launch']}: grid {f['grid']}, wave {f['wave']}, "
                     f"{f['flops'] / 1e9:.1f} GFLOP" for f in gate["unexplained"])


# The gate over every network: about 200 compiles cold, so under -m slow; the default run proves that the gate can
# fail (the forced case below) and reads a report's numbers (the last test).
@pytest.mark.slow
def test_googlenet_v3_and_fid_launches_fill_a_wave_at_batch_128_or_say_why(tmp_path):
    gate = _gate(tmp_path, "googlenet,v3,fid")
    assert {f["network"] for f in gate["flagged"]} <= {"googlenet", "v3", "fid"}
    assert not gate["unexplained"], "under one wave at batch 128, without a reason:\n" + _flagged(gate)
    assert not gate["stale"], f"open reasons whose launches now fill a wave (remove them): {gate['stale']}"


FORCED_SHORT = """
import sys
import triton
from fastinception.__main__ import main
from fastinception.kernels import conv2d_general

# one tile of 256 x 128 outputs: an 8x8 block's 3x3 conv at batch 128 has 32 x 3 of them, under one wave
conv2d_general._conv2d_general_kernel.configs = [
    triton.Config({"BLOCK_M": 256, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=8, num_stages=3)]
sys.exit(main(["inspect", "--shapes", "v3", "--gate", "--block", "Mixed_7b", "--kernels", "conv2d_general",
               "--jobs", "2", "--json", "forced.json", *sys.argv[1:]]))
"""


def test_the_gate_fails_for_a_launch_forced_short(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(FORCED_SHORT), *compile_facts_args()],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 1, result.stdout + result.stderr
    gate = json.loads((tmp_path / "forced.json").read_text())["gate"]
    assert not gate["passed"]
    short = {f["launch"]: f for f in gate["unexplained"]}
    conv = short["conv2d_general 3x3/s1 448->384"]
    assert (conv["config"], conv["grid"]) == ("256x128x32 w8 s3", 32 * 3)
    assert "the gate FAILS" in result.stdout and "conv2d_general 3x3/s1 448->384" in result.stdout


def _block_k(candidate):
    return int(candidate["config"].split(" ")[0].split("x")[2])


def test_the_report_gives_every_candidates_grid_waves_and_work(tmp_path):
    # Mixed_7c's weight gradients (8x8 pixels, so batch 1 and 128 share their compiles with the gate's)
    # one candidate a launch (the autotuner's first): the arithmetic is the same for every one
    result, report = _shapes(tmp_path, "v3", "--block", "Mixed_7c", "--kernels", "conv2d_weight_grad",
                             "--batches", "1,128", "--configs", "1", "--markdown", "shapes.md")
    assert result.returncode == 0, result.stdout + result.stderr
    header, launches = report["header"], report["launches"]
    assert header["batches"] == [1, 128] and header["machine"] == "no GPU: offline compiles for sm_90"
    assert header["python"] and header["torch"] and header["triton"] and header["kernels"]["sha256"]
    assert launches and {e["kernel"] for e in launches} == {"conv2d_weight_grad"}
    for entry in launches:
        assert set(entry["passes"]) <= {"backward", "bn-backward"} and entry["count"] >= 1
        rows = {row["batch"]: row for row in entry["batches"]}
        assert set(rows) == {1, 128}
        assert rows[128]["flops"] == 128 * rows[1]["flops"] and rows[128]["min_bytes"] > rows[1]["min_bytes"]
        for row in rows.values():
            assert row["best"] in {c["config"] for c in row["candidates"]}
            for c in row["candidates"]:
                assert all(c[f] is not None for f in FIELDS), c
                wave = SM90.sm_count * c["ctas_per_sm"]
                assert c["waves"] == pytest.approx(c["grid"] / wave, abs=1e-4)
                assert c["tail_fill"] == pytest.approx(shapes.tail_fill(c["grid"], wave), abs=1e-4)
        # batch 1's 64 pixels are one chunk: one program per (output-channel block, input-channel block, tap) over
        # every pixel; batch 128 splits its 8192 pixels into S chunks of whole BLOCK_K steps, S programs a tile
        whole = {c["config"]: c for c in rows[1]["candidates"]}
        for c in rows[1]["candidates"]:
            assert c["k_iters"] == triton.cdiv(64, _block_k(c))
        for c in rows[128]["candidates"]:
            splits, rest = divmod(c["grid"], whole[c["config"]]["grid"])
            chunk = c["k_iters"] * _block_k(c)
            assert rest == 0 and splits > 1 and (splits - 1) * chunk < 8192 <= splits * chunk, c
    markdown = (tmp_path / "shapes.md").read_text()
    assert "## Inception-v3" in markdown and "| b=1 | b=128 |" in markdown
    assert "best-filling candidate" in markdown and "The one-wave gate at batch 128" in markdown
