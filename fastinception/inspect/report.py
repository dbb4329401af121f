"""The compile report: one row per (kernel launch, config, dtype, layout), as JSON and as a markdown table, and a
per-kernel summary for the terminal."""
from __future__ import annotations

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
        f"target: {header['target']}; triton {header['triton']}, torch {header['torch']}; {header['date']}",
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
