"""Tables of benchmark results, as aligned text for the terminal and as markdown for ``results.md``.

One table per (model kind, pass): a row per contender of every case. "speed-up" is FastInception's: the
contender's time divided by that of the first FastInception contender that passed its check (the "(ours)"
row), so above 1 means FastInception is faster. "% floor" is the roofline floor divided by the contender's
time (100% would be a kernel at the machine's limits).
"""
from __future__ import annotations

from .case import NETWORKS
from .machine import describe

PASS_TITLES = {
    ("block", "fwd"): "Inception blocks, forward (inference)",
    ("block", "fwdbwd"): "Inception blocks, forward + backward",
    ("network", "fwd"): "Whole networks (GoogLeNet 224x224, Inception-v3 and FID features 299x299): inference",
    ("network", "fwdbwd"): "Whole networks: training step (forward + backward)",
}


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def tables(results: dict) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """(title, headers, rows, notes) per table; notes give the reason for every row that was not timed."""
    on_gpu = results["machine"]["device"] == "cuda"
    out = []
    for (kind, pass_), title in PASS_TITLES.items():
        cases = [c for c in results["cases"]
                 if c["pass"] == pass_ and (c["model"] in NETWORKS) == (kind == "network")]
        if not cases:
            continue
        network = kind == "network"
        headers = ["model", "dtype", "batch", "contender", "time ms"]
        headers += ["images/s"] if network else []
        headers += ["speed-up", "TFLOP/s"]
        headers += [] if network else ["% floor"]
        headers += ["peak MiB", "rel err", "status"]
        rows, notes = [], []
        for case in cases:
            if case["ours"] is None:
                notes.append(f"{case['model']} {case['dtype']} batch {case['batch']}: no speed-ups: "
                             f"{case.get('ours_missing') or 'no FastInception contender passed its check'}")
            for r in case["contenders"]:
                ours = r["name"] == case["ours"] and r["status"] == "ok"
                row = [case["model"], case["dtype"], str(case["batch"]), r["label"], _fmt(r["median_ms"], ".3f")]
                row += [_fmt(r["images_per_s"], ".0f")] if network else []
                row += ["(ours)" if ours else _fmt(r["speedup"], ".2f") + ("x" if r["speedup"] is not None else "")]
                row += [_fmt(r["tflops"], ".3g")]
                floor = r["floor_fraction"]
                row += [] if network else [_fmt(None if floor is None else 100 * floor, ".1f")]
                row += [_fmt(r["peak_mem_mib"], ".1f", "-" if on_gpu else "n/a"), _fmt(r["rel_error"], ".1e")]
                row += [r["status"]]
                rows.append(row)
                if r["status"] != "ok":
                    notes.append(f"{case['model']} {case['dtype']} batch {case['batch']} {r['label']}: "
                                 f"{r['status']}: {r['reason']}")
        out.append((title, headers, rows, notes))
    return out


def _numeric(header: str) -> bool:
    return header not in ("model", "dtype", "contender", "status")


def format_text(results: dict) -> str:
    lines = [header_line(results), rates_line(results)]
    for title, headers, rows, notes in tables(results):
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

        def line(cells, widths=widths, headers=headers):
            return "  ".join(c.rjust(w) if _numeric(h) else c.ljust(w) for c, w, h in zip(cells, widths, headers))

        lines += ["", f"== {title} ==", line(headers)]
        previous = None
        for row in rows:
            if previous is not None and row[:3] != previous:
                lines.append("")
            previous = row[:3]
            lines.append(line(row).rstrip())
        lines += [f"  note: {n}" for n in notes]
    lines += ["", *explanation(results)]
    return "\n".join(lines)


def format_markdown(results: dict) -> str:
    info = results["machine"]
    where = info.get("gpu") or f"CPU ({info['cpu']}, {info['cpu_count']} cores)"
    lines = [
        f"# fastinception benchmark: {where}",
        "",
        f"- machine: {describe(info)}",
        f"- command: `{results['command']}`",
        f"- {rates_line(results)}",
        f"- input layout of torch.compile and FastInception: {results['options']['layout']}",
    ]
    if results.get("interpreter_check"):
        lines.append(f"- {interpreter_line(results['interpreter_check'])}")
    for title, headers, rows, notes in tables(results):
        lines += ["", f"## {title}", "", "| " + " | ".join(headers) + " |",
                  "|" + "|".join("---:" if _numeric(h) else "---" for h in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        if notes:
            lines += [""] + [f"- {n}" for n in notes]
    lines += [""] + [f"- {line}" for line in explanation(results)]
    return "\n".join(lines) + "\n"


def header_line(results: dict) -> str:
    return f"fastinception bench on {describe(results['machine'])}"


def rates_line(results: dict) -> str:
    rates = results["rates"]
    matrix = ", ".join(f"{k} {v / 1e12:.3g} TFLOP/s" for k, v in rates["matrix_flops"].items())
    return f"measured rates: matmul {matrix}; copy {rates['copy_bytes_per_s'] / 1e9:.4g} GB/s"


def interpreter_line(check: dict) -> str:
    if check["status"] != "ok":
        return f"Triton kernels under the interpreter: {check['status']}: {check['reason']}"
    errors = ", ".join(f"{k} {v:.1e}" for k, v in check["rel_error"].items())
    return f"Triton kernels under the interpreter ({check['case']}): relative error vs float64: {errors}"


def ours_labels(results: dict) -> list[str]:
    """The labels of the contenders speed-ups refer to, in order of first use (one per case at most)."""
    labels = [r["label"] for c in results["cases"] for r in c["contenders"] if r["name"] == c["ours"]]
    return list(dict.fromkeys(labels))


def speedup_line(results: dict) -> str:
    labels = ours_labels(results)
    if not labels:
        return ("speed-up: none: no FastInception contender passed its check in any case, so nothing is compared "
                "(see the notes).")
    if len(labels) == 1:
        return f"speed-up: the contender's time / {labels[0]}'s time (above 1: FastInception is faster)."
    return (f"speed-up: the contender's time / the time of the case's (ours) row, the first FastInception contender "
            f"that passed its check ({' or '.join(labels)}); above 1: FastInception is faster.")


def explanation(results: dict) -> list[str]:
    lines = [
        speedup_line(results),
        "% floor: roofline floor / time, floor = max(FLOPs / matmul rate, bytes / copy bandwidth), "
        "bytes = x read once + output written once + weights (see results.json for the model).",
        "rel err: ||result - float64 reference|| / ||reference|| (max over output and gradients); "
        "WRONG rows exceeded the dtype's tolerance and were not timed.",
    ]
    fractions = [c["floor_fraction"] for case in results["cases"] for c in case["contenders"] if c["floor_fraction"]]
    if any(f > 1 for f in fractions):
        lines.append("% floor above 100: the contender beat the measured matmul rate (e.g. a Winograd convolution "
                     "does fewer multiplications than the direct count, or the machine was busier while the rate "
                     "was measured).")
    if results["machine"]["device"] != "cuda":
        lines.append("CPU only: no GPU numbers (peak memory is measured on CUDA only).")
    return lines
