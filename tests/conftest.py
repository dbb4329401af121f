import os

from fastinception.kernels.common import use_interpreter_without_cuda

# Before anything imports triton: importing fastinception does not.
use_interpreter_without_cuda()


def pytest_runtest_logreport(report):
    """With FASTINCEPTION_FAILURE_LOG set, each failure's traceback is appended to that file as soon as it happens, so
    a run stopped by a time limit (benchmarks/gpu_check.sh) still says why its failures failed."""
    path = os.environ.get("FASTINCEPTION_FAILURE_LOG")
    if path and report.failed and "PYTEST_XDIST_WORKER" not in os.environ:  # xdist: the controller writes it once
        with open(path, "a") as log:
            log.write(f"== {report.nodeid} ({report.when})\n{report.longreprtext}\n\n")
