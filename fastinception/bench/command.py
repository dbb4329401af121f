"""``python -m fastinception bench``: FastInception against eager PyTorch and torch.compile on this machine.

For each case (GoogLeNet block at its ImageNet spatial size, pass, dtype, batch) every contender is first
checked against a float64 reference on the same weights (a wrong result is reported WRONG and not timed),
then timed: CUDA events on GPU, median of many runs after warm-up, inputs rotated through a ring larger than
twice the L2 cache. The matmul rate and copy bandwidth of the machine are measured in the same run for the
roofline floor. Results go to DIR/results.json, DIR/results.md and DIR/speedup-*.png.

With no CUDA device the runner says so and runs a small CPU matrix (fp32, batch 1, no Triton timing), plus
the Triton kernels' correctness under the interpreter on a tiny block.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import torch

from ..cli import charts
from ..cli.arguments import positive_float, positive_int, seed, thread_count
from ..cli.errors import UsageError, prepare_out, report, too_large
from ..models import GOOGLENET_BLOCKS
from ..reference.inception_v3 import INCEPTION_V3_BLOCKS as V3_REFERENCES
from .case import CHECK_METHOD, DTYPES, INFERENCE_ONLY, NETWORK, NETWORKS, Case, Rates, run_case
from .contenders import CONTENDERS, CPU_CONTENDERS, GPU_CONTENDERS, LAYOUTS
from .interpreter_check import interpreter_check
from .machine import machine_info
from .report import format_markdown, format_text, header_line, interpreter_line
from .roofline import PASSES, ROOFLINE_MODEL, convolutions_use_tf32, measure_copy_bandwidth, measure_matrix_rate

# Defaults: (short run, --full run), per device kind.
# The default run stays short: torch.compile of each case costs tens of seconds on first use.
V3_BLOCKS = list(V3_REFERENCES)
# pytorch-fid's default batch is 50; 200 fills a large GPU better
FID_BATCHES = [50, 200]
FID_CPU_BATCHES = [2]
GPU_DEFAULTS = {
    "blocks": (["3a", "4e", "5b"], list(GOOGLENET_BLOCKS)),
    "v3_blocks": (["Mixed_5b", "Mixed_6b", "Mixed_7b"], V3_BLOCKS),
    "passes": (list(PASSES), list(PASSES)),
    "dtypes": (["fp16"], ["fp16", "bf16", "fp32"]),
    "batches": ([128], [1, 32, 128]),
    "contenders": (list(GPU_CONTENDERS),) * 2,
}
CPU_DEFAULTS = {
    "blocks": (["3a", "4e", "5b"], list(GOOGLENET_BLOCKS)),
    "v3_blocks": ([], ["Mixed_5b", "Mixed_6b", "Mixed_7b"]),
    "passes": (list(PASSES), list(PASSES)),
    "dtypes": (["fp32"], ["fp32"]),
    "batches": ([1], [1, 8]),
    "contenders": (list(CPU_CONTENDERS),) * 2,
}
TIMING_METHOD = (
    "GPU: one CUDA event pair around each call, after a warm-up of about 25 ms; median (and 20th/80th "
    "percentiles) of about target_ms of calls (at least 10); inputs rotated through a ring of distinct tensors "
    "whose total size exceeds twice the L2 cache. CPU: time.perf_counter around each call, median. The first "
    "call of every contender (compilation, autotuning) is the correctness check and is never timed. "
    "fwd runs under torch.no_grad(); fwdbwd runs the forward and torch.autograd.grad of the input and every "
    "parameter for a random output gradient. Peak memory: torch.cuda.max_memory_allocated during one call "
    "minus the memory allocated before it."
)


def _list(kind, choices=None, what: str | None = None):
    """A comma-separated list; ``what`` names the items when an empty list (``none``) is refused."""

    def parse(text: str) -> list:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if items == ["all"] and choices is not None:
            return list(choices)
        if items == ["none"]:
            items = []
        if not items and what is not None:
            raise argparse.ArgumentTypeError(f"at least one {what} is needed, got {text!r}")
        values = [kind(t) for t in items]
        if choices is not None:
            bad = [v for v in values if v not in choices]
            if bad:
                raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(map(str, choices))}")
        return values

    return parse


def _describe(defaults: dict, level: int) -> str:
    """A default selection in words, e.g. "blocks 3a,4e,5b, fwd and fwdbwd, fp16, batch 128"."""
    blocks, v3, passes, dtypes, batches = (defaults[k][level]
                                           for k in ("blocks", "v3_blocks", "passes", "dtypes", "batches"))
    blocks = "the nine GoogLeNet blocks" if blocks == list(GOOGLENET_BLOCKS) else "blocks " + ",".join(blocks)
    v3 = "" if not v3 else " (and every Inception-v3 block" if v3 == V3_BLOCKS else f" (and {','.join(v3)}"
    v3 += ", fwd)" if v3 else ""
    return (f"{blocks}{v3}, {' and '.join(passes)}, {'/'.join(dtypes)}, batch{'es' if len(batches) > 1 else ''} "
            f"{','.join(map(str, batches))}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Built from the defaults themselves, so the help cannot drift from what runs.
    parser.description = (parser.description or "") + (
        f". Without options: on GPU {_describe(GPU_DEFAULTS, 0)}; on CPU {_describe(CPU_DEFAULTS, 0)}, and the "
        "Triton kernels under the interpreter. Speed-ups are against the first FastInception contender listed "
        "that passes its check. Exit status 1 when a FastInception contender or the interpreter check is WRONG "
        "or FAILED."
    )
    blocks = ", ".join(GOOGLENET_BLOCKS)
    parser.add_argument("--blocks", type=_list(str, list(GOOGLENET_BLOCKS)),
                        help=f"comma-separated GoogLeNet blocks ({blocks}), 'all' or 'none'")
    parser.add_argument("--v3-blocks", type=_list(str, V3_BLOCKS),
                        help="comma-separated Inception-v3 blocks at their sizes in the 299x299 network "
                        f"({', '.join(V3_BLOCKS)}), 'all' or 'none'; inference (fwd) only: the converted blocks "
                        "fold BatchNorm")
    parser.add_argument("--passes", type=_list(str, PASSES),
                        help="comma-separated passes: fwd (inference), fwdbwd (forward + backward)")
    parser.add_argument("--dtypes", type=_list(str, list(DTYPES)), help="comma-separated dtypes: " + ", ".join(DTYPES))
    parser.add_argument("--batches", type=_list(positive_int), help="comma-separated batch sizes, e.g. 1,32,128")
    parser.add_argument("--contenders", type=_list(str, list(CONTENDERS), what="contender"),
                        help="comma-separated contenders: "
                        + ", ".join(f"{c.name} ({c.label})" for c in CONTENDERS.values()))
    parser.add_argument("--max-autotune", action="store_true",
                        help="also time torch.compile(mode='max-autotune') (slow to compile)")
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument("--layout", choices=list(LAYOUTS), default="channels_last",
                        help="input layout of torch.compile and FastInception (default channels_last; "
                        "eager runs in both layouts as two contenders)")
    layout.add_argument("--channels-last", dest="layout", action="store_const", const="channels_last",
                        help="same as --layout channels_last")
    layout.add_argument("--nchw", dest="layout", action="store_const", const="nchw", help="same as --layout nchw")
    parser.add_argument("--googlenet", action="store_true",
                        help="also time whole GoogLeNet (224x224, 1000 classes): inference (fwd) images/s and "
                        "training step (fwdbwd); the same as --model googlenet")
    parser.add_argument("--model", type=_list(str, list(NETWORKS)), default=[],
                        help="comma-separated whole networks to time as well: googlenet, inception_v3 (torchvision's, "
                        "299x299: inference and training step), fid (pytorch-fid's 2048-feature extractor: "
                        "feature extraction only), inception_v4 and inception_resnet_v2 (timm's, 299x299: inference "
                        "and training step)")
    parser.add_argument("--googlenet-passes", type=_list(str, PASSES),
                        help="passes of the whole networks (default: --passes)")
    parser.add_argument("--googlenet-batches", type=_list(positive_int),
                        help="batches of the whole networks but fid (default: --batches)")
    parser.add_argument("--fid-batches", type=_list(positive_int),
                        help="batches of fid (default 50,200; 2 on a CPU)")
    parser.add_argument("--full", action="store_true",
                        help=f"the full matrix where an option is not given (GPU: {_describe(GPU_DEFAULTS, 1)}; "
                        f"CPU: {_describe(CPU_DEFAULTS, 1)})")
    parser.add_argument("--target-ms", type=positive_float, default=None,
                        help="time spent timing each contender per case (default 250 on GPU, 200 on CPU)")
    parser.add_argument("--threads", type=thread_count, default=1,
                        help="CPU only: torch threads while timing (default 1: on a shared machine a multi-thread "
                        "team stalls whenever another process holds one of its cores)")
    parser.add_argument("--no-interpreter-check", dest="interpreter_check", action="store_false",
                        help="on CPU, skip running the Triton kernels under the interpreter")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="folder for results.json, results.md and the charts (default bench-results/<timestamp>)")
    parser.add_argument("--seed", type=seed, default=0, help="seed of weights and inputs (default 0)")


def _resolve(args: argparse.Namespace, device: torch.device) -> dict:
    defaults = GPU_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    level = 1 if args.full else 0
    chosen = {k: getattr(args, k) if getattr(args, k) is not None else list(v[level]) for k, v in defaults.items()}
    if args.max_autotune and "compile-max" not in chosen["contenders"]:
        chosen["contenders"].append("compile-max")
    chosen["models"] = [m for m in NETWORKS if m in args.model or (m == NETWORK and args.googlenet)]
    chosen["googlenet_passes"] = args.googlenet_passes or chosen["passes"]
    chosen["googlenet_batches"] = args.googlenet_batches or chosen["batches"]
    chosen["fid_batches"] = args.fid_batches or (FID_BATCHES if device.type == "cuda" else FID_CPU_BATCHES)
    chosen["layout"] = args.layout
    chosen["target_ms"] = args.target_ms or (250.0 if device.type == "cuda" else 200.0)
    chosen["seed"] = args.seed
    chosen["threads"] = args.threads  # CPU only
    chosen["interpreter_check"] = args.interpreter_check  # CPU only
    return chosen


def command_line(options: dict) -> str:
    """The command that repeats this run: every option that changes what is run or measured (not --out)."""

    def joined(values: list) -> str:
        return ",".join(map(str, values)) or "none"

    words = ["python -m fastinception bench"]
    for key in ("blocks", "v3_blocks", "passes", "dtypes", "batches", "contenders"):
        words.append(f"--{key.replace('_', '-')} {joined(options[key])}")
    words.append(f"--layout {options['layout']}")
    if options["models"]:
        words.append(f"--model {joined(options['models'])} --googlenet-passes {joined(options['googlenet_passes'])} "
                     f"--googlenet-batches {joined(options['googlenet_batches'])} "
                     f"--fid-batches {joined(options['fid_batches'])}")
    words.append(f"--target-ms {options['target_ms']:g} --seed {options['seed']} --threads {options['threads']}")
    if not options["interpreter_check"]:
        words.append("--no-interpreter-check")
    return " ".join(words)


def _cases(options: dict) -> list[Case]:
    cases = [
        Case(block, pass_, dtype, batch)
        for pass_ in options["passes"]
        for dtype in options["dtypes"]
        for batch in options["batches"]
        for block in options["blocks"]
    ]
    if "fwd" in options["passes"]:
        cases += [Case(block, "fwd", dtype, batch)
                  for dtype in options["dtypes"] for batch in options["batches"] for block in options["v3_blocks"]]
    for model in options["models"]:
        inference = model in INFERENCE_ONLY
        cases += [
            Case(model, pass_, dtype, batch)
            for pass_ in (["fwd"] if inference else options["googlenet_passes"])
            for dtype in options["dtypes"]
            for batch in (options["fid_batches"] if model == "fid" else options["googlenet_batches"])
            if pass_ == "fwd" or not inference
        ]
    return cases


def _say(text: str) -> None:
    print(text, flush=True)


def _measure_rates(dtypes: list[str], device: torch.device) -> Rates:
    _say("measuring the machine: matmul rate per dtype and copy bandwidth ...")
    rates = Rates({d: measure_matrix_rate(DTYPES[d], device) for d in dtypes}, measure_copy_bandwidth(device))
    return rates


def write_charts(results: dict, out: Path) -> list[str]:
    """One bar chart of FastInception's speed-up per block for each (pass, dtype, batch); one per network pass."""
    where = results["machine"].get("gpu") or "CPU"
    written = []
    groups: dict[tuple, list[dict]] = {}
    for case in results["cases"]:
        network = case["model"] in NETWORKS
        key = ("network", case["model"], case["pass"]) if network else (case["pass"], case["dtype"], case["batch"])
        groups.setdefault(key, []).append(case)
    for key, cases in groups.items():
        ours = {c["ours"] for c in cases} - {None}
        if not ours:  # no FastInception contender passed its check: no speed-ups to draw
            continue
        names = [r["name"] for r in cases[0]["contenders"] if r["name"] not in ours]
        if not names:
            continue
        ours_label = "/".join(dict.fromkeys(r["label"] for c in cases for r in c["contenders"]
                                            if r["name"] == c["ours"]))
        labels = [c["model"] if key[0] != "network" else f"{c['dtype']} b{c['batch']}" for c in cases]
        series = {}
        for name in names:
            label = CONTENDERS[name].label if name in CONTENDERS else name
            speedups = [next((r["speedup"] for r in c["contenders"] if r["name"] == name), None) for c in cases]
            series[f"vs {label}"] = [math.nan if v is None else v for v in speedups]  # not timed: no bar
        if key[0] == "network":
            title = f"{ours_label} speed-up, {key[1]} {key[2]} ({where})"
            filename = f"speedup-{key[1]}-{key[2]}.png"
        else:
            title = f"{ours_label} speed-up, {key[0]} {key[1]} batch {key[2]} ({where})"
            filename = f"speedup-{key[0]}-{key[1]}-b{key[2]}.png"
        charts.bar_chart(out / filename, title, labels, series, "speed-up (x)", hline=1.0)
        written.append(filename)
    return written


def _write(results: dict, out: Path, with_charts: bool) -> None:
    if with_charts and charts.available():
        results["charts"] = write_charts(results, out)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text(format_markdown(results))


def run(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    options = _resolve(args, device)
    try:
        out = prepare_out(args.out or Path("bench-results") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S"),
                          ("results.json", "results.md"))
    except UsageError as e:
        return report(e)
    threads = torch.get_num_threads()
    if device.type != "cuda":
        _say("no CUDA device: running the CPU matrix; no GPU numbers")
        torch.set_num_threads(args.threads)
    results = {
        "schema": 1,
        "command": command_line(options),
        "machine": machine_info(device),
        "options": options,
        "timing_method": TIMING_METHOD,
        "check_method": CHECK_METHOD,
        "roofline_model": ROOFLINE_MODEL,
        "interpreter_check": None,
        "cases": [],
        "complete": False,
    }
    _say(header_line(results))
    _say(f"writing to {out}/")
    if not charts.available():
        _say(f"matplotlib is not installed: writing JSON and markdown only, no charts ({charts.INSTALL_HINT})")

    # A timeout's SIGTERM still leaves the results gathered so far, with their tables and charts.
    main_thread = threading.current_thread() is threading.main_thread()  # only it may set signal handlers
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143)) if main_thread else None
    oversized = None  # a case whose inputs do not fit in memory: the run stops there, as for a bad option
    try:
        if device.type != "cuda" and args.interpreter_check:
            _say("Triton kernels under the interpreter (CPU, correctness only) ...")
            results["interpreter_check"] = interpreter_check(options["layout"])
            _say(interpreter_line(results["interpreter_check"]))
        rates = _measure_rates(options["dtypes"], device)
        results["rates"] = {
            "matrix_flops": rates.matrix,
            "copy_bytes_per_s": rates.copy,
            "fp32_tf32": device.type == "cuda" and convolutions_use_tf32(),
        }
        cases = _cases(options)
        started = time.perf_counter()
        for i, case in enumerate(cases, 1):
            _say(f"[{i}/{len(cases)}] {case.model} {case.pass_} {case.dtype} batch {case.batch} "
                 f"({time.perf_counter() - started:.0f} s)")
            try:
                record = run_case(case, options["contenders"], device, options["layout"], rates,
                                  options["target_ms"], _say, seed=args.seed)
            except (RuntimeError, TypeError, MemoryError) as e:  # the inputs and float64 reference, not contenders
                if (reason := too_large(e, device)) is None:
                    raise
                batches = ("--fid-batches" if case.model == "fid" else "--googlenet-batches" if case.is_network
                           else "--batches")
                oversized = f"{case.model} {case.pass_} {case.dtype} batch {case.batch}: {reason}; lower {batches}"
                break
            results["cases"].append(record)
            _write(results, out, with_charts=False)
        results["complete"] = oversized is None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous_handler)
        torch.set_num_threads(threads)
        if "rates" in results:
            _write(results, out, with_charts=True)
            _say("")
            _say(format_text(results))
            drawn = ", ".join(results.get("charts", [])) or "none"
            _say(f"\nresults: {out}/results.json, {out}/results.md, charts: {drawn}")
    if oversized is not None:
        return report(oversized)
    problems = failures(results)
    for problem in problems:
        _say(f"FAILED: {problem}")
    # A wrong or broken FastInception result must not look like a successful run.
    return 1 if problems else 0


def failures(results: dict) -> list[str]:
    """FastInception contenders, and the interpreter check, that were WRONG or FAILED."""
    bad = ("WRONG", "FAILED")
    found = [
        f"{case['model']} {case['pass']} {case['dtype']} batch {case['batch']} {r['label']}: "
        f"{r['status']}: {r['reason']}"
        for case in results["cases"]
        for r in case["contenders"]
        if r["fastinception"] and r["status"] in bad
    ]
    check = results["interpreter_check"]
    if check is not None and check["status"] in bad:
        found.append(f"Triton kernels under the interpreter: {check['status']}: {check['reason']}")
    return found
