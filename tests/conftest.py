import os

import pytest

from fastinception.kernels.common import interpreting, use_interpreter_without_cuda

# Before anything imports triton: importing fastinception does not.
use_interpreter_without_cuda()

if "PYTEST_XDIST_WORKER" in os.environ:  # one worker a core (-n auto): more torch threads would only contend
    import torch

    torch.set_num_threads(1)

# The kernel tests, and tests marked fine_tiles, keep the interpreter's fine tiles, which put tile edges, channel blocks
# and K steps inside their small problems; the rest (plans, layers, models, commands) run coarse ones
# (helpers.coarse_interpreter_tiles).
FINE_TILES = ("kernels", "inspect")


@pytest.fixture(autouse=True)
def _interpreter_tiles(request):
    from helpers import coarse_interpreter_tiles

    fine = request.path.parent.name in FINE_TILES or request.node.get_closest_marker("fine_tiles")
    if not interpreting() or fine:
        yield
        return
    with coarse_interpreter_tiles():
        yield


def pytest_runtest_logreport(report):
    """With FASTINCEPTION_FAILURE_LOG set, each failure's traceback is appended to that file as soon as it happens, so
    a run stopped by a time limit (benchmarks/gpu_check.sh) still says why its failures failed."""
    path = os.environ.get("FASTINCEPTION_FAILURE_LOG")
    if path and report.failed and "PYTEST_XDIST_WORKER" not in os.environ:  # xdist: the controller writes it once
        with open(path, "a") as log:
            log.write(f"== {report.nodeid} ({report.when})\n{report.longreprtext}\n\n")
