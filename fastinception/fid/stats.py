"""Feature statistics as they stream in (float64 sums), pytorch-fid's ``.npz`` files, and the Frechet distance."""
from __future__ import annotations

import os
import pathlib
import warnings

import numpy as np
import torch


class RunningStats:
    """Mean and covariance of feature rows added batch by batch, accumulated in float64: the result does not depend
    on how the rows were batched beyond float64 rounding, and no feature is kept."""

    def __init__(self, dims: int):
        self.count = 0
        self.sum = torch.zeros(dims, dtype=torch.float64)
        self.outer = torch.zeros(dims, dims, dtype=torch.float64)

    def add(self, features: torch.Tensor) -> None:
        f = features.detach().to(device="cpu", dtype=torch.float64)
        if f.dim() != 2 or f.shape[1] != self.sum.shape[0]:
            raise ValueError(f"expected (N, {self.sum.shape[0]}) features, got {tuple(f.shape)}")
        self.count += f.shape[0]
        self.sum += f.sum(0)
        self.outer += f.T @ f

    def merge(self, other: RunningStats) -> None:
        self.count += other.count
        self.sum += other.sum
        self.outer += other.outer

    def all_reduce(self) -> None:
        """Sum the statistics of every process of the default process group into each (float64 all the way)."""
        dist = torch.distributed
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        count = torch.tensor([float(self.count)], dtype=torch.float64, device=device)
        total, outer = self.sum.to(device), self.outer.to(device)
        for t in (count, total, outer):
            dist.all_reduce(t)
        self.count, self.sum, self.outer = int(count.item()), total.cpu(), outer.cpu()

    def mean_and_covariance(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) as numpy float64, sigma with the N - 1 divisor (``np.cov``'s); needs two rows or more."""
        if self.count < 2:
            raise ValueError(f"a covariance needs two images or more, got {self.count}")
        mu = self.sum / self.count
        sigma = (self.outer - self.count * torch.outer(mu, mu)) / (self.count - 1)
        return mu.numpy(), sigma.numpy()


def save_stats(path, mu: np.ndarray, sigma: np.ndarray) -> None:
    """An ``.npz`` with ``mu`` and ``sigma``, as pytorch-fid writes and reads it."""
    np.savez_compressed(os.fspath(path), mu=mu, sigma=sigma)


def load_stats(path) -> tuple[np.ndarray, np.ndarray]:
    path = pathlib.Path(os.fspath(path))
    try:
        with np.load(path) as f:
            arrays = {name: f[name][:] for name in ("mu", "sigma") if name in f.files}
    except Exception as error:  # np.load raises ValueError, OSError, zipfile errors... for what is not an .npz
        raise ValueError(f"{path}: cannot be read as an .npz file ({type(error).__name__})") from None
    missing = [name for name in ("mu", "sigma") if name not in arrays]
    if missing:
        raise ValueError(f"{path}: no {' or '.join(map(repr, missing))} array (a statistics file holds mu and sigma)")
    mu, sigma = arrays["mu"], arrays["sigma"]
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{path}: mu {mu.shape} and sigma {sigma.shape} are not (D,) and (D, D)")
    return mu, sigma


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)), with ``scipy.linalg.sqrtm`` and pytorch-fid's
    handling of a singular product (``eps`` added to both diagonals) and of a complex root (its imaginary part
    must be negligible, then dropped)."""
    try:
        from scipy import linalg  # noqa: PLC0415  (optional: the [fid] extra)
    except ImportError:
        raise ImportError("the Frechet distance needs scipy: pip install 'fastinception[fid]'") from None
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different sizes: mu {mu1.shape} and {mu2.shape}, sigma {sigma1.shape} and "
                         f"{sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))  # pytorch-fid's disp=False gives the same matrix
    if not np.isfinite(covmean).all():
        warnings.warn(f"the product of the covariances is singular: adding {eps} to their diagonals", stacklevel=2)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"the square root of sigma1 sigma2 has an imaginary part of "
                             f"{np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))
