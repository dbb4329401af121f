"""Feature statistics of an image folder: images streamed through the network, mean and covariance accumulated in
float64 as the batches come (no feature array is kept)."""
from __future__ import annotations

import time

import numpy as np
import torch

from .images import ImageFolder
from .network import FIDInceptionV3
from .stats import RunningStats


def process_group() -> tuple[int, int]:
    """(rank, world size) of the initialised default ``torch.distributed`` process group, else (0, 1)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def folder_statistics(files, model: FIDInceptionV3, *, dims: int = 2048, batch_size: int = 50, device="cpu",
                      num_workers: int = 0, progress=None) -> tuple[np.ndarray, np.ndarray, float]:
    """(mu, sigma, images per second) of ``files`` (pytorch-fid's order), read in batches of ``batch_size`` as
    pytorch-fid reads them; ``progress``: an object with ``update(n)`` called after each batch.

    Under an initialised ``torch.distributed`` process group each process reads every world-size-th file from its
    rank on, and the float64 sums are all-reduced, so every process returns the statistics of all the files (equal
    to one process's up to the order of the float64 additions); images per second count every process's images
    over the slowest one's time. Every process must call it with the same files."""
    files = list(files)
    rank, world = process_group()
    shard = files[rank::world]
    stats = RunningStats(dims)
    start = time.perf_counter()
    if shard:
        loader = torch.utils.data.DataLoader(ImageFolder(shard), batch_size=min(batch_size, len(shard)),
                                             shuffle=False, drop_last=False, num_workers=num_workers)
        with torch.inference_mode():
            for batch in loader:
                stats.add(model.features(batch.to(device), dims))
                if progress is not None:
                    progress.update(batch.shape[0] * world)
    seconds = time.perf_counter() - start
    if world > 1:
        stats.all_reduce()
        slowest = torch.tensor([seconds], dtype=torch.float64,
                               device="cuda" if torch.distributed.get_backend() == "nccl" else "cpu")
        torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
        seconds = slowest.item()
    mu, sigma = stats.mean_and_covariance()
    return mu, sigma, len(files) / seconds if seconds > 0 else float("inf")
