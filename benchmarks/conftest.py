"""pytest-benchmark suite of fastinception: ``python -m pytest benchmarks`` (``--benchmark-disable``: one
checked run of every case, as a quick smoke test).

On GPU the matrix is the nine GoogLeNet blocks at their ImageNet sizes x fwd/fwdbwd x fp16/bf16/fp32 x
batches 1/32/128, plus whole GoogLeNet; on CPU it shrinks to a few small fp32 cases.
"""
import pytest
import torch

from fastinception.kernels.common import use_interpreter_without_cuda

# Before anything imports triton: importing fastinception does not.
use_interpreter_without_cuda()
if not torch.cuda.is_available():
    # One thread: on a shared machine a multi-thread team stalls whenever another process holds a core.
    torch.set_num_threads(1)

from contender_bench import DEVICE  # noqa: E402

from fastinception.bench.case import DTYPES, Rates  # noqa: E402
from fastinception.bench.machine import machine_info as fastinception_machine_info  # noqa: E402
from fastinception.bench.roofline import measure_copy_bandwidth, measure_matrix_rate  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--max-autotune", action="store_true", default=False,
                     help="also benchmark torch.compile(mode='max-autotune') (slow to compile)")


def pytest_benchmark_update_machine_info(config, machine_info):
    info = fastinception_machine_info(DEVICE)
    machine_info["fastinception"] = {k: v for k, v in info.items() if k != "date"}


@pytest.fixture(scope="session")
def device():
    return DEVICE


@pytest.fixture(scope="session")
def rates(device):
    """Matmul rate per dtype and copy bandwidth for the roofline floor, each measured on first use."""
    measured = Rates({}, 0.0)

    def for_dtype(name: str) -> Rates:
        if not measured.copy:
            measured.copy = measure_copy_bandwidth(device)
        if name not in measured.matrix:
            measured.matrix[name] = measure_matrix_rate(DTYPES[name], device)
        return measured

    return for_dtype
