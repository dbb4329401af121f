"""One benchmark group per (block, pass, dtype, batch); one test per contender in each group."""
from contender_bench import DEVICE, check_and_time, parametrize_contenders

from fastinception.bench.case import Case
from fastinception.models import GOOGLENET_BLOCKS

if DEVICE.type == "cuda":
    CASES = [
        Case(block, pass_, dtype, batch)
        for pass_ in ("fwd", "fwdbwd")
        for dtype in ("fp16", "bf16", "fp32")
        for batch in (1, 32, 128)
        for block in GOOGLENET_BLOCKS
    ]
else:
    # CPU: two block configurations at a small spatial size, fp32 (the torch backend against the reference).
    CASES = [Case(block, pass_, "fp32", 2, size=7) for pass_ in ("fwd", "fwdbwd") for block in ("3a", "5b")]


def pytest_generate_tests(metafunc):
    parametrize_contenders(metafunc, CASES)


def test_block(benchmark, case, contender, device, rates):
    check_and_time(benchmark, case, contender, device, rates)
