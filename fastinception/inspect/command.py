"""``python -m fastinception inspect``: what every Triton kernel of the triton backend compiles to for a GPU
target, on a machine without one: registers, spills, shared memory, occupancy bound, tensor-core and load
instructions, per kernel launch, autotune config, dtype and layout. With ``--shapes``: every launch's grid, waves
and work over whole networks and several batches, and the one-wave gate (``shapes``).

Static compile facts, not timings. Triton is imported in ``run``, not here: importing the command modules must
leave Triton's interpreter choice open for the other commands.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

from ..blocks.program import BlockProgram
from ..blocks.programs import FID_INCEPTION_BLOCKS, INCEPTION_V3_BLOCKS
from ..cli.arguments import positive_int
from ..cli.errors import UsageError, report
from ..cli.progress import available, progress_bar
from ..models import GOOGLENET_BLOCKS
from .occupancy import TARGETS, occupancy
from .report import (
    NOTE,
    SHAPES_NOTE,
    config_label,
    format_markdown,
    format_shapes_json,
    format_shapes_markdown,
    format_shapes_text,
    format_text,
)

DTYPES = ("fp16", "bf16", "fp32")
LAYOUTS = ("nchw", "channels_last")
TF32 = {"on": (True,), "off": (False,), "both": (False, True)}
DEFAULTS = {"target": "sm_90", "block": "3a", "batch": 128, "dtypes": list(DTYPES), "layouts": list(LAYOUTS),
            "tf32": "both"}
# --shapes: the production case (fp16 activations and weights, channels_last) at these batches
SHAPES_DEFAULTS = {"dtypes": ["fp16"], "layouts": ["channels_last"], "tf32": "off", "batches": [1, 32, 128, 256]}
# name -> (title, blocks: name -> (GoogLeNet block arguments or a block program, input side))
NETWORKS = {
    "googlenet": ("GoogLeNet", GOOGLENET_BLOCKS),
    "v3": ("Inception-v3", INCEPTION_V3_BLOCKS),
    "fid": ("the FID network", FID_INCEPTION_BLOCKS),
}
# Triton's reading of TRITON_INTERPRET (knobs.runtime.interpret): these values turn the interpreter on.
INTERPRETER_ON = {"1", "true", "on", "yes", "y"}


def _list(choices):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(choices)}, got {text!r}")
        bad = [t for t in items if t not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)}; choose from {', '.join(choices)}")
        return list(dict.fromkeys(items))
    return parse


def _batches(text: str) -> list[int]:
    try:
        items = [positive_int(t.strip()) for t in text.split(",") if t.strip()]
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of batch sizes: {e}") from None
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of batch sizes, got {text!r}")
    return sorted(set(items))


def _names(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of kernel names, got {text!r}")
    return items


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (parser.description or "") + (
        ". Captures every launch of the triton ops for one problem (CPU tensors, nothing computed), compiles each "
        "autotune config the autotuner would try, in parallel, for the target with Triton's own specialization, and "
        "reads ptxas's report and the SASS. Needs no GPU; refuses to run under TRITON_INTERPRET=1. Exit status 1 "
        "when a compile fails.")
    parser.add_argument("--target", choices=list(TARGETS), default=DEFAULTS["target"],
                        help=f"GPU target (default {DEFAULTS['target']}: "
                        + ", ".join(f"{t.name} {t.gpus}" for t in TARGETS.values()) + ")")
    parser.add_argument("--kernels", type=_names, default=None,
                        help="comma-separated kernels, by short name (e.g. stem_forward,conv2d_bias_relu; default all)")
    parser.add_argument("--dtypes", type=_list(DTYPES), default=None,
                        help="comma-separated dtypes (default fp16,bf16,fp32; with --shapes fp16)")
    parser.add_argument("--layouts", type=_list(LAYOUTS), default=None,
                        help="comma-separated input layouts (default nchw,channels_last; with --shapes channels_last)")
    parser.add_argument("--tf32", choices=list(TF32), default=None,
                        help="fp32 with tf32 allowed (on), not (off), or both as two dtypes (default both; with "
                        "--shapes off)")
    parser.add_argument("--block", choices=[*GOOGLENET_BLOCKS, *INCEPTION_V3_BLOCKS], default=None,
                        help=f"GoogLeNet or Inception-v3 block whose shapes are compiled, at its ImageNet size "
                        f"(default {DEFAULTS['block']}; with --shapes: only this block of each network)")
    parser.add_argument("--batch", type=positive_int, default=DEFAULTS["batch"],
                        help=f"batch size (default {DEFAULTS['batch']})")
    parser.add_argument("--shapes", type=_list(NETWORKS), default=None, metavar="NETWORKS",
                        help="instead of one block's compile facts: every launch's grid, CTAs per SM, waves, tail, "
                        "K-loop length, FLOPs and bytes for the blocks of these networks (comma-separated: "
                        f"{', '.join(NETWORKS)}), forward and backward, at --batches")
    parser.add_argument("--batches", type=_batches, default=None,
                        help="with --shapes: comma-separated batch sizes (default "
                        f"{','.join(map(str, SHAPES_DEFAULTS['batches']))})")
    parser.add_argument("--gate", action="store_true",
                        help="with --shapes: only the one-wave gate at batch 128, compiling only the launches it "
                        "cannot decide without; exit status 1 when it fails")
    parser.add_argument("--configs", type=positive_int, default=None, metavar="N",
                        help="at most N configs per launch, in the autotuner's order (default: all it would try)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write every row as JSON")
    parser.add_argument("--markdown", type=Path, default=None, metavar="FILE", help="write the report as markdown")
    parser.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1,
                        help="compiles run in parallel (default: the CPU count)")
    parser.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="folder of cached compile facts (default ~/.cache/fastinception/inspect)")
    parser.add_argument("--no-cache", action="store_true", help="compile everything, read and write no cache")
    parser.add_argument("--facts", type=Path, default=None, metavar="FILE",
                        help="a facts file (--save-facts) read besides the cache: a compile whose key is there, "
                        "the same kernel source, specialization, options, target and Triton, is not made again")
    parser.add_argument("--save-facts", type=Path, default=None, metavar="FILE",
                        help="merge the facts of this run's compiles into FILE (one JSON object, key -> facts)")


def _say(text: str) -> None:
    print(text, flush=True)


def _check_output(path: Path | None, option: str) -> None:
    """Fail before any compile when a report file cannot be written."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{option} {path}: expected a file, got a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path}: not writable")


def command_line(args: argparse.Namespace) -> str:
    if args.shapes:
        words = ["python -m fastinception inspect", f"--shapes {','.join(args.shapes)}", f"--target {args.target}"]
        words += ["--gate"] if args.gate else [f"--batches {','.join(map(str, args.batches))}"]
        if args.block:
            words.append(f"--block {args.block}")
    else:
        words = ["python -m fastinception inspect", f"--target {args.target}", f"--block {args.block}",
                 f"--batch {args.batch}"]
    words += [f"--dtypes {','.join(args.dtypes)}", f"--layouts {','.join(args.layouts)}"]
    if "fp32" in args.dtypes:
        words.append(f"--tf32 {args.tf32}")
    if args.kernels:
        words.append(f"--kernels {','.join(args.kernels)}")
    if args.configs:
        words.append(f"--configs {args.configs}")
    return " ".join(words)


def scope_note(args: argparse.Namespace) -> str:
    """What the run covers, and what it leaves out of the default matrix."""
    if args.shapes:
        return _shapes_scope(args)
    left_out = []
    if args.kernels:
        left_out.append(f"only kernels {', '.join(args.kernels)}")
    if args.dtypes != DEFAULTS["dtypes"]:
        left_out.append(f"only dtypes {', '.join(args.dtypes)}")
    if "fp32" in args.dtypes and args.tf32 != DEFAULTS["tf32"]:
        left_out.append(f"fp32 with tf32 {args.tf32} only")
    if args.layouts != DEFAULTS["layouts"]:
        left_out.append(f"only layouts {', '.join(args.layouts)}")
    if args.configs:
        left_out.append(f"at most {args.configs} config(s) per launch")
    return ("reduced from the default matrix: " + "; ".join(left_out)) if left_out else (
        "the full default matrix: every kernel, fp16, bf16 and fp32 (tf32 off and on), both layouts, every config "
        "the autotuner would try")


def _interpreter_error() -> str | None:
    value = os.environ.get("TRITON_INTERPRET")
    if value is not None and value.strip().lower() in INTERPRETER_ON:
        return (f"inspect compiles for a GPU target and cannot run under Triton's interpreter "
                f"(TRITON_INTERPRET={value!r}): unset TRITON_INTERPRET and run it again")
    return None


def _block(name: str) -> tuple:
    """(GoogLeNet block arguments, or an Inception-v3 block's program; its input side)."""
    return GOOGLENET_BLOCKS[name] if name in GOOGLENET_BLOCKS else INCEPTION_V3_BLOCKS[name]


def _resolve(args: argparse.Namespace) -> None:
    """Fill the options left unset with the defaults of the report asked for; refuse options of the other one."""
    defaults = SHAPES_DEFAULTS if args.shapes else DEFAULTS
    for name in ("dtypes", "layouts", "tf32"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    if args.shapes:
        args.batches = args.batches or SHAPES_DEFAULTS["batches"]
        if args.gate and args.batches != SHAPES_DEFAULTS["batches"]:
            raise UsageError("--gate runs at batch 128 only: leave --batches out")
        if args.block and not any(args.block in NETWORKS[n][1] for n in args.shapes):
            raise UsageError(f"--block {args.block}: not a block of {', '.join(args.shapes)}")
    else:
        if args.batches or args.gate:
            raise UsageError("--batches and --gate go with --shapes")
        args.block = args.block or DEFAULTS["block"]


def run(args: argparse.Namespace) -> int:
    reason = _interpreter_error()
    if reason is not None:
        return report(reason)
    try:
        _resolve(args)
        _check_output(args.json, "--json")
        _check_output(args.markdown, "--markdown")
        _check_output(args.save_facts, "--save-facts")
        if args.facts is not None:
            from .compile import load_facts

            if not args.facts.is_file():
                raise UsageError(f"--facts: expected a facts file, found none at {args.facts}")
            try:
                args.known_facts = load_facts(args.facts)
            except ValueError as e:
                raise UsageError(f"--facts: {e}") from e
    except UsageError as e:
        return report(e)
    if args.shapes:
        return _run_shapes(args)

    from .capture import capture
    from .compile import Binder, InterpretedKernels

    target = TARGETS[args.target]
    block_args, size = _block(args.block)
    started = time.perf_counter()
    _say(f"capturing the triton ops' launches: block {args.block}, batch {args.batch}, {size}x{size} ...")
    groups = [(dtype, tf32, layout) for dtype in args.dtypes for tf32 in (TF32[args.tf32] if dtype == "fp32"
              else (False,)) for layout in args.layouts]
    launches = []
    try:
        for dtype, tf32, layout in groups:
            launches += capture(target, block_args, size, args.batch, dtype, layout, tf32)
    except InterpretedKernels as e:  # this process imported the kernels under the interpreter before
        return report(e)
    known = list(dict.fromkeys(launch.kernel for launch in launches))
    if args.kernels:
        unknown = [k for k in args.kernels if k not in known]
        if unknown:
            return report(f"--kernels: unknown {', '.join(unknown)}; the triton ops launch {', '.join(known)}")
        launches = [launch for launch in launches if launch.kernel in args.kernels]

    with warnings.catch_warnings():  # Triton 3.9 warns that its fp-fusion default will change in 3.10
        warnings.filterwarnings("ignore", message="TRITON_DEFAULT_FP_FUSION")
        binder = Binder(target.capability)
        planned = [(launch, config, binder.job(launch.fn, launch.kwargs, config))
                   for launch in launches for config in launch.configs[: args.configs]]
    cache = _cache(args)
    jobs = [job for _, _, job in planned]
    distinct = len({job.key for job in jobs})
    _say(f"{len(planned)} rows, {distinct} distinct compiles for {target.name} "
         f"({time.perf_counter() - started:.1f} s); compiling with {args.jobs} job(s), cache {cache.path or 'off'} ...")
    results = _compile(jobs, args.jobs, cache, {job.key: (launch, config) for launch, config, job in planned})
    wall = time.perf_counter() - started
    _save_facts(args, results)

    result = _report(args, target, planned, results, wall)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown is not None:
        args.markdown.write_text(format_markdown(result))
    _say("")
    _say(format_text(result))
    written = [str(p) for p in (args.json, args.markdown) if p is not None]
    if written:
        _say(f"\nwritten: {', '.join(written)}")
    return 1 if result["header"]["failed"] else 0


def _cache(args):
    from .compile import Cache, default_cache_dir

    return Cache(None if args.no_cache else (args.cache or default_cache_dir()), getattr(args, "known_facts", None))


def _save_facts(args, results: dict) -> None:
    if args.save_facts is not None:
        from .compile import save_facts

        save_facts(args.save_facts, results)


def _compile(jobs, workers, cache, what) -> dict:
    """compile_all with a progress bar (tqdm, on a terminal) or, without one, a line at every tenth of the work."""
    from .compile import compile_all

    total = len({job.key for job in jobs})
    finished = [0]
    bar_shown = available() and sys.stderr.isatty()
    started = time.perf_counter()
    with progress_bar(total, "compiling", enabled=bar_shown, unit="kernel", mininterval=1.0) as bar:
        def done(job, facts, cached):
            finished[0] += 1
            launch, config = what[job.key]
            bar.update(1)
            bar.set_postfix_str(f"{launch.kernel} {config_label(config)}")
            tenth = finished[0] * 10 // total != (finished[0] - 1) * 10 // total
            if not bar_shown and not cached and total >= 20 and tenth:
                _say(f"  {finished[0]}/{total} done ({time.perf_counter() - started:.0f} s)")

        return compile_all(jobs, workers, cache, done)


def kernel_source() -> dict:
    """Which kernel sources were compiled: a hash of ``kernels/*.py`` and, in a git checkout, the commit and whether
    ``kernels/`` differs from it (read without taking git's locks)."""
    from .. import kernels

    folder = Path(kernels.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    source = {"sha256": digest.hexdigest()[:16], "git": None, "modified": None}
    try:
        git = ["git", "--no-optional-locks", "-C", str(folder)]
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30)
        status = subprocess.run([*git, "status", "--porcelain", "--", "."], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.SubprocessError):
        return source
    if commit.returncode == 0 and status.returncode == 0:
        source.update(git=commit.stdout.strip(), modified=bool(status.stdout.strip()))
    return source


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _header(args, target, problem: str, note: str, compiled, results, wall: float, failed: list) -> dict:
    """What every report says of its run: target, versions, date, problem, command, kernel sources, scope and the
    compiles (``compiled``: (kernel, job) pairs; ``results``: their facts) per kernel."""
    per_kernel: dict[str, dict] = {}
    seen = set()
    for kernel, job in compiled:
        if job.key in seen or "seconds" not in results[job.key]:
            continue
        seen.add(job.key)
        entry = per_kernel.setdefault(kernel, {"compiles": 0, "seconds": 0.0, "slowest": 0.0})
        seconds = results[job.key]["seconds"]
        entry["compiles"] += 1
        entry["seconds"] = round(entry["seconds"] + seconds, 2)
        entry["slowest"] = max(entry["slowest"], seconds)
    return {
        "target": f"{target.name} ({target.gpus})",
        "machine": f"no GPU: offline compiles for {target.name}",
        "triton": _version("triton"),
        "torch": _version("torch"),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "problem": problem,
        "note": note,
        "command": command_line(args),
        "kernels": kernel_source(),
        "scope_note": scope_note(args),
        "compiles": {"unique": len(seen),
                     "cached": sum(1 for k in {j.key for _, j in compiled} if results[k].get("cached")),
                     "jobs": args.jobs, "wall_seconds": round(wall, 1),
                     "compile_seconds": round(sum(v["seconds"] for v in per_kernel.values()), 1),
                     "seconds_per_kernel": per_kernel},
        "limits": {k: v for k, v in vars(target).items()},
        "failed": failed,
    }


def _report(args, target, planned, results, wall) -> dict:
    rows, failed, kernel_order, label_order = [], [], {}, {}
    for launch, _, _ in planned:  # each kernel's launches together, in the order the ops first make them
        kernel_order.setdefault(launch.kernel, len(kernel_order))
        label_order.setdefault(launch.label, len(label_order))
    dtype_order = {d: i for i, d in enumerate(["fp16", "bf16", "fp32", "fp32+tf32"])}
    keyed = []
    for index, (launch, config, job) in enumerate(planned):
        facts = results[job.key]
        where = {"kernel": launch.label, "config": config_label(config), "dtype": launch.dtype,
                 "layout": launch.layout}
        if "error" in facts:
            failed.append({**where, "error": facts["error"]})
            continue
        occ = occupancy(target, facts["registers"], facts["smem_bytes"], facts["num_warps"])
        row = {**where, "registers": facts["registers"], "spill_bytes": facts["spill_bytes"],
               "smem_bytes": facts["smem_bytes"], "warps_per_sm": occ.warps_per_sm, "limited_by": occ.limited_by,
               "mma": facts["mma"], "loads": facts["loads"]}
        sort_key = (kernel_order[launch.kernel], label_order[launch.label], dtype_order.get(launch.dtype, 9),
                    args.layouts.index(launch.layout), index)
        keyed.append((sort_key, row))
    rows = [row for _, row in sorted(keyed, key=lambda item: item[0])]

    block_args, size = _block(args.block)
    program = block_args if isinstance(block_args, BlockProgram) else None
    problem = (f"Inception-v3 block {args.block} (inference, training forward and backward, also with BatchNorm's "
               f"batch statistics), input "
               f"{args.batch}x{program.in_channels}x{size}x"
               if program is not None else
               f"GoogLeNet block {args.block}, Inception{block_args}, input {args.batch}x{block_args[0]}x{size}x"
               ) + f"{size} (N x C x H x W)"
    header = _header(args, target, problem, NOTE, [(launch.kernel, job) for launch, _, job in planned], results,
                     wall, failed)
    header["shape"] = {"block": args.block, "block_args": None if program is not None else block_args,
                       "batch": args.batch, "height": size, "width": size}
    return {"header": header, "rows": rows}



# ---------------------------------------------------------------------------------------------------------------
# --shapes: grids, waves and work over whole networks and batches

def _shapes_scope(args: argparse.Namespace) -> str:
    words = [f"the blocks of {', '.join(NETWORKS[n][0] for n in args.shapes)}"
             + (f" (only {args.block})" if args.block else "")
             + ", each layer's default path (GoogLeNet's block: branches on side streams, deterministic backward)"]
    if args.gate:
        words.append("the one-wave gate only: batch 128, launches over 1 GFLOP, compiling only those the grid "
                     "alone does not decide")
    else:
        words.append(f"batches {', '.join(map(str, args.batches))}")
    words.append(f"dtypes {', '.join(args.dtypes)}, layouts {', '.join(args.layouts)}"
                 + (f", fp32 with tf32 {args.tf32}" if "fp32" in args.dtypes else ""))
    if args.kernels:
        words.append(f"only kernels {', '.join(args.kernels)}")
    if args.configs:
        words.append(f"at most {args.configs} config(s) per launch")
    return "; ".join(words)


def _run_shapes(args: argparse.Namespace) -> int:
    from . import shapes
    from .capture import capture
    from .compile import Binder, InterpretedKernels

    target = TARGETS[args.target]
    batches = [shapes.GATE_BATCH] if args.gate else args.batches
    groups = [(dtype, tf32, layout) for dtype in args.dtypes for tf32 in (TF32[args.tf32] if dtype == "fp32"
              else (False,)) for layout in args.layouts]
    started = time.perf_counter()
    _say(f"capturing the triton ops' launches: {', '.join(args.shapes)}, batches {', '.join(map(str, batches))} ...")
    captures = []
    try:
        for network in args.shapes:
            for block, (block_args, size) in NETWORKS[network][1].items():
                if args.block and block != args.block:
                    continue
                for batch in batches:
                    made = [launch for dtype, tf32, layout in groups
                            for launch in capture(target, block_args, size, batch, dtype, layout, tf32,
                                                  every_path=False)]
                    captures.append((network, block, batch, made))
    except InterpretedKernels as e:
        return report(e)
    found = shapes.entries(captures)
    known = list(dict.fromkeys(entry["kernel"] for entry in found))
    if args.kernels:
        unknown = [k for k in args.kernels if k not in known]
        if unknown:
            return report(f"--kernels: unknown {', '.join(unknown)}; the triton ops launch {', '.join(known)}")
        found = [entry for entry in found if entry["kernel"] in args.kernels]

    # what to compile: every candidate, or for the gate those of the launches the grid alone does not decide
    with warnings.catch_warnings():  # Triton 3.9 warns that its fp-fusion default will change in 3.10
        warnings.filterwarnings("ignore", message="TRITON_DEFAULT_FP_FUSION")
        binder = Binder(target.capability)
        planned = {}  # (entry index, batch) -> [(config, job or None)]
        for index, entry in enumerate(found):
            for batch, launch in entry["by_batch"].items():
                configs = launch.configs[: args.configs]
                if args.gate:
                    work = shapes.launch_work(launch)
                    bounds = [shapes.bound_candidate(target, launch, c, config_label(c)) for c in configs]
                    if work["flops"] is not None and work["flops"] <= shapes.GATE_FLOPS or any(map(shapes.full,
                                                                                                   bounds)):
                        planned[index, batch] = [(c, None) for c in configs]
                        continue
                planned[index, batch] = [(c, binder.job(launch.fn, launch.kwargs, c)) for c in configs]
    cache = _cache(args)
    compiled = [(found[index]["kernel"], job) for (index, _), pairs in planned.items() for _, job in pairs
                if job is not None]
    distinct = len({job.key for _, job in compiled})
    _say(f"{len(found)} launches, {distinct} distinct compiles for {target.name} "
         f"({time.perf_counter() - started:.1f} s); compiling with {args.jobs} job(s), cache {cache.path or 'off'} ...")
    what = {job.key: (found[index]["by_batch"][batch], config) for (index, batch), pairs in planned.items()
            for config, job in pairs if job is not None}
    results = _compile([job for _, job in compiled], args.jobs, cache, what) if compiled else {}
    wall = time.perf_counter() - started
    _save_facts(args, results)

    launches, failed = [], []
    for index, entry in enumerate(found):
        rows = []
        for batch in sorted(entry["by_batch"]):
            launch = entry["by_batch"][batch]
            candidates = []
            for config, job in planned[index, batch]:
                label = config_label(config)
                if job is None:
                    candidates.append(shapes.bound_candidate(target, launch, config, label))
                    continue
                candidates.append(shapes.candidate(target, launch, config, label, results[job.key]))
                if "error" in results[job.key]:
                    failed.append({"kernel": entry["launch"], "config": label, "dtype": entry["dtype"],
                                   "layout": entry["layout"], "error": results[job.key]["error"]})
            chosen = shapes.best(candidates)
            rows.append({"batch": batch, **shapes.launch_work(launch),
                         "best": None if chosen is None else chosen["config"], "candidates": candidates})
        launches.append({k: v for k, v in entry.items() if k != "by_batch"} | {"batches": rows})
    problem = (f"every launch of the triton backend's inference forward, training forward and backward (block "
               f"programs: also with BatchNorm's batch statistics) for "
               f"{', '.join(f'{NETWORKS[n][0]} ({len(NETWORKS[n][1])} blocks)' for n in args.shapes)}, "
               f"at batch {', '.join(map(str, batches))}")
    header = _header(args, target, problem, SHAPES_NOTE, compiled, results, wall, failed)
    header["networks"] = {n: {"title": NETWORKS[n][0], "blocks": list(NETWORKS[n][1])} for n in args.shapes}
    header["batches"] = batches
    header["work_missing"] = shapes.missing_work(known)
    result = {"header": header, "gate": shapes.gate(launches), "launches": [] if args.gate else launches}
    if args.json is not None:
        args.json.write_text(format_shapes_json(result))
    if args.markdown is not None:
        args.markdown.write_text(format_shapes_markdown(result))
    _say("")
    _say(format_shapes_text(result))
    written = [str(p) for p in (args.json, args.markdown) if p is not None]
    if written:
        _say(f"\nwritten: {', '.join(written)}")
    return 1 if failed or (args.gate and not result["gate"]["passed"]) else 0
