"""Whole GoogLeNet (224x224, 1000 classes): inference throughput (fwd) and training step (fwdbwd) time.

``extra_info['images_per_s']`` is the throughput from the device-time median.
"""
from contender_bench import DEVICE, check_and_time, parametrize_contenders

from fastinception.bench.case import NETWORK, Case

if DEVICE.type == "cuda":
    CASES = [Case(NETWORK, pass_, dtype, batch) for pass_ in ("fwd", "fwdbwd") for dtype in ("fp16", "bf16")
             for batch in (32, 128)]
else:
    # CPU: one image at 64x64 (every layer still runs; the spatial size ends at 2x2 before the pooling).
    CASES = [Case(NETWORK, "fwd", "fp32", 1, size=64)]


def pytest_generate_tests(metafunc):
    parametrize_contenders(metafunc, CASES)


def test_googlenet(benchmark, case, contender, device, rates):
    check_and_time(benchmark, case, contender, device, rates)
