"""Feature statistics of an image folder: images streamed through the network, mean and covariance accumulated in
float64 as the batches come (no feature array is kept)."""
from __future__ import annotations

import time

import numpy as np
import torch

from .images import ImageFolder
from .network import FIDInceptionV3
from .stats import RunningStats


def folder_statistics(files, model: FIDInceptionV3, *, dims: int = 2048, batch_size: int = 50, device="cpu",
                      num_workers: int = 0, progress=None) -> tuple[np.ndarray, np.ndarray, float]:
    """(mu, sigma, images per second) of ``files`` (pytorch-fid's order), read in batches of ``batch_size`` as
    pytorch-fid reads them; ``progress``: an object with ``update(n)`` called after each batch."""
    files = list(files)
    loader = torch.utils.data.DataLoader(ImageFolder(files), batch_size=min(batch_size, len(files)), shuffle=False,
                                         drop_last=False, num_workers=num_workers)
    stats = RunningStats(dims)
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            stats.add(model.features(batch.to(device), dims))
            if progress is not None:
                progress.update(batch.shape[0])
    seconds = time.perf_counter() - start
    mu, sigma = stats.mean_and_covariance()
    return mu, sigma, len(files) / seconds if seconds > 0 else float("inf")
