"""Offline compiles: a captured launch and one config -> Triton's own specialization -> cubin -> facts, cached.

Binding follows ``JITFunction.run`` (triton/runtime/jit.py): the binder Triton builds from the kernel's signature
(``create_function_from_signature``) specializes the launch's arguments (integer 1, divisibility by 16, pointer
alignment, None and constexprs) exactly as a launch on the GPU would, ``_pack_args`` turns that into the
signature, constexprs and attributes of an ``ASTSource``, and ``triton.compile`` compiles it for the target
instead of the current device. Binding runs here (cheap); compiles run in worker processes (``spawn``: a fresh
interpreter that imports the kernel modules itself).

Registers and spills come from ptxas's ``-v`` report of Triton's own ptxas run (``TRITON_DUMP_PTXAS_LOG``), or of
a second ptxas run on the PTX, with Triton's flags, when Triton's cache already held the kernel; mma and loads
from the cubin's SASS (``binary.classify``); shared memory is Triton's (dynamic, ``metadata.shared``) plus any
ptxas allocates statically.

The facts are cached on disk under Triton's own cache key (``triton.runtime.cache.get_cache_key``: the kernel's
source and the Triton functions it calls, the specialization and constexprs, the options, the target and ptxas
version, Triton's version and sources, the environment variables that change a compile), so a rerun reads them
back without compiling.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import importlib
import io
import json
import multiprocessing
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

# Bumped whenever the facts read from a binary change meaning, so older cache entries are not reused.
FACTS_VERSION = 2  # bumped when what a compile reports changes (2: narrow async copies told apart)
WARP_SIZE = 32  # every NVIDIA target


@dataclass(frozen=True)
class Job:
    """One compile: a kernel function (by module and name, so a worker can import it) and its specialization."""

    key: str
    module: str
    qualname: str
    signature: dict
    constexprs: dict
    attrs: dict
    options: dict
    capability: int


class InterpretedKernels(RuntimeError):
    """The kernel modules were imported while Triton's interpreter was on: there is nothing to compile."""


def jit_function(kernel):
    """The ``@triton.jit`` function under an autotuner or heuristics wrapper."""
    from triton.runtime.jit import JITFunction

    found = kernel
    while not isinstance(found, JITFunction):
        if not hasattr(found, "fn") or type(found).__name__ == "InterpretedFunction":
            raise InterpretedKernels(f"expected a @triton.jit kernel, got {type(found).__name__}: the kernel modules "
                                     "were imported under Triton's interpreter; run inspect in a fresh process "
                                     "without TRITON_INTERPRET")
        found = found.fn
    return found


class Binder:
    """Turns (JITFunction, launch kwargs, Config) into a Job for one target, as ``JITFunction.run`` would."""

    def __init__(self, capability: int):
        from triton import knobs
        from triton.backends.compiler import GPUTarget
        from triton.compiler import make_backend

        self.capability = capability
        self.backend = make_backend(GPUTarget("cuda", capability, WARP_SIZE))
        self._binders = {}
        self._run_options = dict(instrumentation_mode=knobs.compilation.instrumentation_mode,
                                 fpsan_homomorphic_casts=knobs.compilation.fpsan_homomorphic_casts)
        self._debug = knobs.runtime.debug

    def job(self, fn, kwargs: dict, config) -> Job:
        from triton._C.libtriton import get_cache_invalidating_env_vars
        from triton.compiler import ASTSource
        from triton.runtime.cache import get_cache_key
        from triton.runtime.jit import create_function_from_signature

        if fn not in self._binders:
            self._binders[fn] = create_function_from_signature(fn.signature, fn.params, self.backend)
        given = {**kwargs, **config.all_kwargs(), **self._run_options}
        given["debug"] = given.get("debug", fn.debug) or self._debug
        bound, specialization, options = self._binders[fn](**given)
        options, signature, constexprs, attrs = fn._pack_args(self.backend, given, bound, specialization, options)
        src = ASTSource(fn, signature, constexprs, attrs)
        triton_key = get_cache_key(src, self.backend, options, get_cache_invalidating_env_vars())
        key = hashlib.sha256(f"facts-v{FACTS_VERSION}-{triton_key}".encode()).hexdigest()
        return Job(key, fn.fn.__module__, fn.fn.__qualname__, signature, constexprs, attrs, dict(options.__dict__),
                   self.capability)


# ---------------------------------------------------------------------------------------------------------------
# the worker side

def _init_worker() -> None:
    from triton import knobs

    knobs.nvidia.dump_ptxas_log = True  # Triton prints its ptxas -v report to stdout, read back below
    # A real launch compiles with the same default; the warning is about Triton 3.10, not this report.
    warnings.filterwarnings("ignore", message="TRITON_DEFAULT_FP_FUSION")


def compile_job(job: Job) -> dict:
    """Compile ``job`` for its target and read its facts; ``{"error": ...}`` when it does not compile."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability
    from triton.compiler import ASTSource

    from .binary import classify, parse_ptxas_log, run_ptxas, sass_of

    start = time.perf_counter()
    try:
        fn = jit_function(getattr(importlib.import_module(job.module), job.qualname))
        src = ASTSource(fn, job.signature, job.constexprs, job.attrs)
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            kernel = triton.compile(src, target=GPUTarget("cuda", job.capability, WARP_SIZE), options=job.options)
        text = log.getvalue()
        if "Used " not in text:  # Triton's cache had it: no ptxas ran, so run one for the report
            text = run_ptxas(kernel.asm["ptx"], get_ptxas(job.capability).path,
                             sm_arch_from_capability(job.capability), kernel.metadata.enable_fp_fusion)
        ptxas = parse_ptxas_log(text)
        mma, loads = classify(sass_of(kernel.asm["cubin"]))
    except Exception as e:  # reported per row: one failing compile must not sink the report
        return {"error": _one_line(e), "seconds": round(time.perf_counter() - start, 2)}
    return {
        "registers": ptxas.registers,
        "spill_bytes": ptxas.spill_bytes,
        "smem_bytes": int(kernel.metadata.shared) + ptxas.static_smem,
        "num_warps": int(kernel.metadata.num_warps),
        "mma": mma,
        "loads": loads,
        "seconds": round(time.perf_counter() - start, 2),
    }


def _one_line(error: Exception) -> str:
    """A compile error in one line: Triton's CompilationError puts the position first and the reason last, with
    the source between."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = lines[0] if len(lines) < 2 else f"{lines[0]} {lines[-1]}"
    return f"{type(error).__name__}: {text}"[:300]


# ---------------------------------------------------------------------------------------------------------------
# the cache and the pool

def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastinception" / "inspect"


class Cache:
    """One JSON file of facts per compile key; failed compiles are not cached. ``known``: facts read from a facts
    file (``load_facts``), consulted where the folder has none."""

    def __init__(self, path: Path | None, known: dict | None = None):
        self.path = path
        self.known = known or {}

    def get(self, key: str) -> dict | None:
        if self.path is not None:
            try:
                return json.loads((self.path / f"{key}.json").read_text())
            except (OSError, ValueError):
                pass
        return self.known.get(key)

    def put(self, key: str, facts: dict) -> None:
        if self.path is None or "error" in facts:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(facts))
        os.replace(tmp, self.path / f"{key}.json")


# A facts file: the facts of many compiles in one JSON object, key -> facts. The key is Triton's cache key (the
# kernels' sources, the specialization, the options, the target, Triton's and ptxas's versions), so a file written
# by another checkout or machine gives only the facts of compiles that would be the same here.

def load_facts(path: Path) -> dict:
    """key -> facts of the facts file at ``path``; an absent file has none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        facts = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path} is not JSON ({e})") from e
    if not isinstance(facts, dict) or not all(isinstance(v, dict) for v in facts.values()):
        raise ValueError(f"{path}: expected a JSON object of compile key -> facts")
    return facts


def save_facts(path: Path, results: dict) -> None:
    """Merge ``results`` (``compile_all``'s key -> facts) into the facts file at ``path``, failed compiles left out."""
    facts = load_facts(path)
    facts.update({key: {k: v for k, v in r.items() if k != "cached"} for key, r in results.items() if "error" not in r})
    path.write_text(json.dumps(dict(sorted(facts.items())), indent=0, sort_keys=True) + "\n")


def compile_all(jobs: list[Job], workers: int, cache: Cache, done=None) -> dict:
    """key -> facts for every job (each key compiled once), from the cache or from ``workers`` processes.
    ``done(job, facts, cached)`` is called as each finishes. Facts from a compile carry ``"cached": False``."""
    results, todo = {}, {}
    for job in jobs:
        if job.key in results or job.key in todo:
            continue
        facts = cache.get(job.key)
        if facts is not None:
            results[job.key] = {**facts, "cached": True}
            if done:
                done(job, results[job.key], True)
        else:
            todo[job.key] = job
    if not todo:
        return results
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(min(workers, len(todo)), mp_context=context,
                                                initializer=_init_worker) as pool:
        futures = {pool.submit(compile_job, job): job for job in todo.values()}
        try:
            for future in concurrent.futures.as_completed(futures):
                job = futures[future]
                facts = future.result()
                cache.put(job.key, facts)
                results[job.key] = {**facts, "cached": False}
                if done:
                    done(job, results[job.key], False)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results
