"""Check one contender on one case against float64, then time it with pytest-benchmark.

Shared by the block and network benchmarks. The benchmark's own rounds run ``fn`` on a ring of inputs and,
on GPU, synchronise after each call (so they include launch and sync overhead); the CUDA-event median of
``fastinception.bench.timing.measure`` (device time, rotated inputs) is stored in ``extra_info`` beside them.
"""
import pytest
import torch

from fastinception.bench.case import (
    DTYPES,
    Case,
    case_inputs,
    float64_result,
    forward_or_backward,
    input_ring,
    make_item,
    max_rel_error,
    tolerance,
)
from fastinception.bench.contenders import CONTENDERS, CPU_CONTENDERS, GPU_CONTENDERS, UNAVAILABLE
from fastinception.bench.roofline import floor_seconds
from fastinception.bench.timing import measure, peak_memory_mib

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# The layout of torch.compile and FastInception; eager runs in both layouts as two contenders.
LAYOUT = "channels_last"


def contender_names(config_max_autotune: bool, device: torch.device) -> list[str]:
    if device.type != "cuda":
        return list(CPU_CONTENDERS)
    return [*GPU_CONTENDERS, *(["compile-max"] if config_max_autotune else [])]


def parametrize_contenders(metafunc, cases) -> None:
    """pytest_generate_tests body of a benchmark module: every case with every contender on DEVICE."""
    if "contender" in metafunc.fixturenames:
        names = contender_names(metafunc.config.getoption("--max-autotune"), DEVICE)
        params = [(case, name) for case in cases for name in names]
        metafunc.parametrize(("case", "contender"), params, ids=[f"{c.name}-{n}" for c, n in params])


def check_and_time(benchmark, case: Case, name: str, device: torch.device, rates) -> None:
    contender = CONTENDERS[name]
    benchmark.group = case.name
    torch.manual_seed(0)
    reference = case.build_reference(device)
    generator = torch.Generator().manual_seed(1)
    x, grad_out = case_inputs(case, reference, device, generator)
    want = float64_result(reference, x, grad_out, case.pass_)
    layout = contender.layout_for(LAYOUT)
    try:
        module = contender.build(reference, layout)
    except UNAVAILABLE as e:  # any other exception is a bug and fails the test
        pytest.skip(f"{contender.label} unavailable: {type(e).__name__}: {e}")
    try:
        _check_and_time(benchmark, case, module, reference, x, grad_out, want, layout, contender, device, rates,
                        generator)
    finally:
        if contender.compiled:
            # Compiled code is cached per code object (Inception.forward) up to a recompile limit; past it
            # torch.compile silently runs eager. A reset per contender keeps every case compiled.
            torch._dynamo.reset()


def _check_and_time(benchmark, case, module, reference, x, grad_out, want, layout, contender, device, rates,
                    generator) -> None:
    run = forward_or_backward(module, reference, case.pass_)
    tol = tolerance(DTYPES[case.dtype], device, case.is_network)
    with torch.no_grad() if case.pass_ == "fwd" else torch.enable_grad():
        error = max_rel_error(run(make_item(x, grad_out, layout, case.pass_)), want, pooled_grads=case.is_network)
        assert error <= tol, f"{contender.label} is WRONG on {case.name}: relative error {error:.3e} > {tol:.1e}"
        ring = input_ring(case, x, grad_out, layout, device, generator)
        benchmark.extra_info.update(case=case.name, contender=contender.label, layout=layout, rel_error=error)
        if not benchmark.disabled:
            _record_device_time(benchmark, case, run, ring, device, rates, reference)
        state = {"i": 0}

        def step():
            run(ring[state["i"] % len(ring)])
            state["i"] += 1
            if device.type == "cuda":
                torch.cuda.synchronize()

        benchmark.pedantic(step, rounds=50 if device.type == "cuda" else 5, warmup_rounds=3, iterations=1)


def _record_device_time(benchmark, case, run, ring, device, rates, reference) -> None:
    timing = measure(run, ring, device, target_ms=200.0, min_reps=10 if device.type == "cuda" else 3)
    seconds = timing.median_ms * 1e-3
    flops = case.flops(reference)
    info = {"median_ms": timing.median_ms, "p20_ms": timing.p20_ms, "p80_ms": timing.p80_ms, "reps": timing.reps,
            "tflops": flops / seconds / 1e12, "images_per_s": case.batch / seconds,
            "peak_mem_mib": peak_memory_mib(run, ring[0], device)}
    nbytes = case.floor_bytes()
    if nbytes is not None:
        r = rates(case.dtype)
        info["floor_fraction"] = floor_seconds(flops, nbytes["floor"], r.matrix[case.dtype], r.copy) / seconds
    benchmark.extra_info.update(info)
