"""The compile report: one row per (kernel launch, config, dtype, layout), as JSON and as a markdown table, and a
per-kernel summary for the terminal. The launch-shapes report (``--shapes``): one table per network, the gate's
findings, and the terminal's summary of them."""
from __future__ import annotations

import json

ROW_FIELDS = ("kernel", "config", "dtype", "layout", "registers", "spill_bytes", "smem_bytes", "warps_per_sm",
              "limited_by", "mma", "loads")
NOTE = ("These are static compile facts (what ptxas reports and the SASS contains for each kernel and config), "
        "not timings: they point at what to measure, they do not say how fast anything runs.")
LEGEND = [
    "kernel: the Triton kernel (its name without the leading `_` and the `_kernel` suffix), then what tells this "
    "launch from its others in the block: kernel size and channels of each convolution (`k3 96->128`; the "
    "gradient kernels name the forward convolution), `+mask` when the launch also writes the ReLU mask (training), "
    "`atomic` for the float-atomic weight-gradient path (`deterministic_backward = False`) and its one-row "
    "reduction.",
    "config: the autotune config, BLOCK_M x BLOCK_N x BLOCK_K, warps (w) and pipeline stages (s); every config the "
    "autotuner would try for this launch on the target, after its `prune_configs_by`.",
    "dtype: the tensors' dtype; `fp32+tf32` is fp32 with tf32 allowed (`torch.backends.cudnn.allow_tf32`, "
    "PyTorch's default), which the forward and input-gradient dots use and the weight gradients do not.",
    "registers: per thread; spill_bytes: spill stores + spill loads, bytes per thread (ptxas -v).",
    "smem_bytes: shared memory per block (Triton's dynamic allocation plus any static).",
    "warps_per_sm: resident warps per SM allowed by registers, shared memory (plus 1 KB reserved per block), "
    "warps and blocks per SM; limited_by: which of these gives the bound (`+` when several tie). 0: the block "
    "does not fit, and the autotuner skips the config at run time.",
    "mma: from the SASS: `wgmma` (HGMMA, sm_90 warpgroup MMA), `mma.sync` (HMMA), `fma` (no tensor-core "
    "instruction).",
    "loads: from the SASS, the strongest global load present: `tma` (UTMALDG), `cp.async` (LDGSTS, every one "
    "16 bytes), `cp.async<16B` (some narrower: a gather, or one-byte data), else `ldg`.",
]


def config_label(config) -> str:
    """``128x128x32 w8 s3`` for a tile config, ``BLOCK 1024 w4 s3`` for another."""
    blocks = config.kwargs
    if all(k in blocks for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K")):
        tile = "x".join(str(blocks[k]) for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
    else:
        tile = " ".join(f"{k} {v}" for k, v in blocks.items())
    return f"{tile} w{config.num_warps} s{config.num_stages}".strip()


def _range(values) -> str:
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def summary(rows: list[dict]) -> list[list[str]]:
    """Per (kernel, dtype): configs, and the range or set of each fact over its variants, layouts and configs."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["kernel"].split(" ")[0], row["dtype"]), []).append(row)
    table = []
    for (kernel, dtype), members in groups.items():
        table.append([
            kernel, dtype, str(len(members)),
            _range([r["registers"] for r in members]),
            _range([r["spill_bytes"] for r in members]),
            _range([r["smem_bytes"] for r in members]),
            _range([r["warps_per_sm"] for r in members]),
            "/".join(sorted({r["mma"] for r in members})),
            "/".join(sorted({r["loads"] for r in members})),
        ])
    return table


SUMMARY_HEADERS = ["kernel", "dtype", "rows", "registers", "spill_bytes", "smem_bytes", "warps_per_sm", "mma",
                   "loads"]


def header_lines(header: dict) -> list[str]:
    lines = [
        f"target: {header['target']}; {header['machine']}; triton {header['triton']}, torch {header['torch']}, "
        f"python {header['python']}; {header['date']}",
        f"problem: {header['problem']}",
        f"command: `{header['command']}`",
        f"kernels: {_source(header['kernels'])}",
    ]
    if header.get("scope_note"):
        lines.append(f"scope: {header['scope_note']}")
    compiles = header["compiles"]
    lines.append(f"compiles: {compiles['unique']} distinct ({compiles['cached']} from the cache), this run "
                 f"{compiles['wall_seconds']:.0f} s wall with {compiles['jobs']} jobs; compiling them took "
                 f"{compiles['compile_seconds']:.0f} s summed over the workers (as first measured, cached ones too)")
    return lines


def _source(kernels: dict) -> str:
    where = f"sha256 {kernels['sha256']} of kernels/*.py"
    if kernels.get("git"):
        where += f", git {kernels['git']}" + (" with kernels/ modified" if kernels["modified"] else "")
    return where


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    numeric = {"rows", "registers", "spill_bytes", "smem_bytes", "warps_per_sm", "compiles", "seconds", "slowest"}
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if h in numeric else "---" for h in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def format_markdown(report: dict) -> str:
    header, rows = report["header"], report["rows"]
    lines = [f"# fastinception compile report: {header['target']}", ""]
    lines += [f"- {line}" for line in header_lines(header)]
    lines += ["", f"**{NOTE}**", "", "## Per kernel and dtype", "",
              "Ranges over each kernel's launches, layouts and configs.", ""]
    lines += _table(SUMMARY_HEADERS, summary(rows))
    lines += ["", "## Every launch and config", ""]
    lines += _table(list(ROW_FIELDS), [[str(r[f]) for f in ROW_FIELDS] for r in rows])
    if header["failed"]:
        lines += ["", "## Failed compiles", ""]
        lines += [f"- {f['kernel']} {f['config']} {f['dtype']} {f['layout']}: {f['error']}" for f in header["failed"]]
    lines += ["", "## Legend", ""] + [f"- {text}" for text in LEGEND]
    compile_seconds = header["compiles"].get("seconds_per_kernel")
    if compile_seconds:
        lines += ["", "## Compile time per kernel", "",
                  "Seconds each compile (Triton, ptxas, cuobjdump) took in its worker process, summed per kernel "
                  "and the slowest one, as measured when it was first compiled (the cache keeps that time).", ""]
        lines += _table(["kernel", "compiles", "seconds", "slowest"],
                        [[k, str(v["compiles"]), f"{v['seconds']:.0f}", f"{v['slowest']:.0f}"]
                         for k, v in compile_seconds.items()])
    return "\n".join(lines) + "\n"


def format_text(report: dict) -> str:
    """The terminal summary: header lines and the per-kernel table, aligned."""
    table = [SUMMARY_HEADERS] + summary(report["rows"])
    widths = [max(len(row[i]) for row in table) for i in range(len(SUMMARY_HEADERS))]
    lines = header_lines(report["header"]) + [NOTE, ""]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    for f in report["header"]["failed"]:
        lines.append(f"FAILED: {f['kernel']} {f['config']} {f['dtype']} {f['layout']}: {f['error']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# launch shapes

SHAPES_NOTE = ("Grids and occupancy bounds from offline compiles, not timings. Which candidate runs is the autotuner's "
               "choice at run time: a launch's fill is that of its best-filling candidate (the most CTAs in flight "
               "up to one wave, min(grid, wave) / wave with wave = SMs x ctas_per_sm; among equals, the first in "
               "the autotuner's order).")
SHAPES_LEGEND = [
    "launch: as in the compile report (kernel, then what tells it from the block's other launches); passes: "
    "`inf` the inference forward, `train` the training forward, `bwd` the backward, `bn-train` and `bn-bwd` the "
    "training forward with BatchNorm's batch statistics and its backward that make it; n: how many times they "
    "make it, together (one of each pass).",
    "GFLOP: 2 per multiply-add of the launch's GEMM plus one per element a pool or reduction adds or compares; "
    "MB: min_bytes, each tensor it reads once and each it writes once (10^6 bytes); both at the batch named.",
    "best: the best-filling candidate config at that batch, its ctas_per_sm (resident CTAs per SM from the "
    "compiled registers and shared memory) and k_iters (its K-loop trip count per CTA: steps of BLOCK_K, times the "
    "taps a CTA loops over).",
    "b=N: the best-filling candidate at batch N: grid (CTAs) / waves (grid / (SMs x ctas_per_sm)) / tail_fill "
    "(the busy fraction of the last wave). Every candidate's row is in the JSON.",
]
_PASS = {"inference": "inf", "training": "train", "backward": "bwd", "bn-training": "bn-train",
         "bn-backward": "bn-bwd"}


def _ref_batch(batches: list[int], gate_batch: int) -> int:
    return gate_batch if gate_batch in batches else max(batches)


def _shape_cell(row: dict | None) -> str:
    if row is None:
        return "-"
    best = next((c for c in row["candidates"] if c["config"] == row["best"]), None)
    if best is None:
        return "no candidate fits"
    return f"{best['grid']} / {best['waves']:.2f} / {best['tail_fill']:.2f}"


def _gflop(flops) -> str:
    return "-" if flops is None else f"{flops / 1e9:.2f}"


def gate_lines(gate: dict, sm_count: int) -> list[str]:
    """The gate's verdict in words."""
    lines = [f"{gate['checked']} launches of more than {gate['min_flops'] / 1e9:g} GFLOP at batch {gate['batch']}; "
             f"{len(gate['flagged'])} under one wave ({sm_count} SMs x ctas_per_sm) with their best-filling "
             f"candidate, {len(gate['unexplained'])} of them without a reason; "
             + ("the gate passes." if gate["passed"] else "the gate FAILS.")]
    lines += [f"stale reason (no launch it covers is short any more: remove it): {why}" for why in gate["stale"]]
    return lines


def _gate_rows(gate: dict) -> list[list[str]]:
    def one(value, fmt="{}"):
        return "-" if value is None else fmt.format(value)

    reasons = {r["why"]: i + 1 for i, r in enumerate(gate["reasons"])}
    return [[f["network"], f["block"], f["launch"], _gflop(f["flops"]), one(f["config"]), one(f["grid"]),
             one(f["wave"]), one(f["waves"], "{:.2f}"),
             "**none**" if f["reason"] is None else f"{reasons[f['reason']]}" + (" (open)" if f["open"] else "")]
            for f in gate["flagged"]]


GATE_HEADERS = ["network", "block", "launch", "GFLOP", "best config", "grid", "wave", "waves", "reason"]


def format_shapes_markdown(report: dict) -> str:
    header, gate = report["header"], report["gate"]
    sm_count = header["limits"]["sm_count"]
    lines = [f"# fastinception launch shapes: {header['target']}", ""]
    lines += [f"- {line}" for line in header_lines(header)]
    lines += ["", f"**{SHAPES_NOTE}**", "", f"## The one-wave gate at batch {gate['batch']}", "",
              f"Every launch of more than {gate['min_flops'] / 1e9:g} GFLOP must give its best-filling candidate "
              f"at least one full wave (grid >= {sm_count} x ctas_per_sm), or have a reason listed in "
              "`fastinception/inspect/shapes.py` (`REASONS`); an open reason is a shortfall to fix, not a property "
              "of the problem.", ""]
    lines += gate_lines(gate, sm_count)
    if gate["flagged"]:
        lines += [""] + _table(GATE_HEADERS, _gate_rows(gate))
    if gate["reasons"]:
        lines += ["", "Reasons:", ""]
        lines += [f"{i + 1}. {', '.join(r['kernels'])}" + (f" in {', '.join(r['blocks'])}" if r["blocks"] else "")
                  + (f" ({', '.join(r['networks'])})" if r["networks"] else "")
                  + (f", launches labelled `{r['label']}`" if r["label"] else "")
                  + (" (open)" if r["open"] else "") + f": {r['why']}" for i, r in enumerate(gate["reasons"])]
    if header.get("work_missing"):
        lines += ["", f"No work model (no GFLOP, no k_iters) for: {', '.join(header['work_missing'])}."]
    batches = header["batches"]
    ref = _ref_batch(batches, gate["batch"])
    for name, network in header["networks"].items():
        mine = [e for e in report["launches"] if e["network"] == name]
        if not mine:
            continue
        lines += ["", f"## {network['title']}", ""]
        headers = ["block", "launch", "passes", "n", f"GFLOP b={ref}", f"MB b={ref}", f"best b={ref}",
                   "ctas/SM", "k_iters"] + [f"b={b}" for b in batches]
        rows = []
        for entry in mine:
            by_batch = {row["batch"]: row for row in entry["batches"]}
            row = by_batch.get(ref)
            best = None if row is None else next((c for c in row["candidates"] if c["config"] == row["best"]), None)
            rows.append([entry["block"], entry["launch"] + ("" if entry["dtype"] == "fp16"
                                                             and entry["layout"] == "channels_last"
                                                             else f" ({entry['dtype']}, {entry['layout']})"),
                         "+".join(_PASS.get(p, p) for p in entry["passes"]), str(entry["count"]),
                         _gflop(None if row is None else row["flops"]),
                         "-" if row is None else f"{row['min_bytes'] / 1e6:.1f}",
                         "-" if best is None else best["config"],
                         "-" if best is None else str(best["ctas_per_sm"]),
                         "-" if best is None or best["k_iters"] is None else str(best["k_iters"])]
                        + [_shape_cell(by_batch.get(b)) for b in batches])
        lines += _table(headers, rows)
    if header["failed"]:
        lines += ["", "## Failed compiles", ""]
        lines += [f"- {f['kernel']} {f['config']} {f['dtype']} {f['layout']}: {f['error']}" for f in header["failed"]]
    lines += ["", "## Legend", ""] + [f"- {text}" for text in SHAPES_LEGEND]
    return "\n".join(lines) + "\n"


def format_shapes_json(report: dict) -> str:
    """The report as JSON, one line per launch (its candidates at every batch): a third of the indented size."""
    head = json.dumps({k: v for k, v in report.items() if k != "launches"}, indent=1)
    launches = ",\n".join("  " + json.dumps(entry, separators=(",", ":")) for entry in report["launches"])
    return head[: -len("\n}")] + ',\n "launches": [\n' + launches + "\n ]\n}\n"


def format_shapes_text(report: dict) -> str:
    """The terminal summary: header lines, the gate's verdict and its flagged launches, aligned."""
    header, gate = report["header"], report["gate"]
    lines = header_lines(header) + [SHAPES_NOTE, ""] + gate_lines(gate, header["limits"]["sm_count"])
    if gate["flagged"]:
        table = [GATE_HEADERS] + _gate_rows(gate)
        widths = [max(len(row[i]) for row in table) for i in range(len(GATE_HEADERS))]
        lines += [""] + ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
        lines += [f"reason {i + 1}: {r['why']}" for i, r in enumerate(gate["reasons"])]
    for f in header["failed"]:
        lines.append(f"FAILED: {f['kernel']} {f['config']} {f['dtype']} {f['layout']}: {f['error']}")
    return "\n".join(lines)
