"""The fid command over two processes (torchrun, gloo on the CPU) gives what one process gives: each reads half the
images and the float64 sums are all-reduced. Batches of one image, so that every image's features are computed
alike in both runs (batch composition moves them by up to 2e-7 on the torch backend) and only the order of the
float64 additions differs."""
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from fastinception.__main__ import main
from fastinception.fid import FILE_NAME, load_stats

from helpers import fid_state_dict, write_image_folder

pytestmark = [
    pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                       reason="needs torch.distributed with gloo"),
    pytest.mark.slow,  # two torchrun launches, about 10 s
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
         "--master-port", str(_free_port()), "-m", "fastinception", "fid", *args],
        capture_output=True, text=True, timeout=600,
    )


@pytest.fixture
def one_thread():
    # torchrun gives each process one OpenMP thread, and the thread count moves oneDNN's results by about 1e-7
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_two_processes_give_one_processs_fid_and_statistics(tmp_path, capsys, one_thread):
    weights = tmp_path / FILE_NAME
    torch.save(fid_state_dict(seed=2), weights)
    a, b = tmp_path / "a", tmp_path / "b"
    write_image_folder(a, 7, seed=1)  # odd: the processes read 4 and 3 images
    write_image_folder(b, 6, seed=2, shift=20.0)
    common = ["--weights", str(weights), "--dims", "64", "--batch-size", "1", "--num-workers", "0"]

    assert main(["fid", str(a), str(b), *common]) == 0
    one = float([line for line in capsys.readouterr().out.splitlines() if line.startswith("FID:  ")][0].split()[1])
    run = _torchrun(str(a), str(b), *common)
    assert run.returncode == 0, run.stderr[-2000:]
    printed = [line for line in run.stdout.splitlines() if line.startswith("FID:  ")]
    assert len(printed) == 1, run.stdout  # only the first process prints
    assert abs(float(printed[0].split()[1]) - one) <= 1e-8 * abs(one)

    assert main(["fid", str(a), str(tmp_path / "one.npz"), "--save-stats", *common]) == 0
    run = _torchrun(str(a), str(tmp_path / "two.npz"), "--save-stats", *common)
    assert run.returncode == 0, run.stderr[-2000:]
    (mu1, sigma1), (mu2, sigma2) = load_stats(tmp_path / "one.npz"), load_stats(tmp_path / "two.npz")
    assert np.allclose(mu1, mu2, rtol=1e-12, atol=1e-15) and np.allclose(sigma1, sigma2, rtol=1e-10, atol=1e-14)
