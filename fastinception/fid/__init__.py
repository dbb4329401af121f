"""FID with the Inception-v3 feature network on fused blocks: pytorch-fid's graph, weights file and results."""
from .extract import folder_statistics
from .images import image_files
from .network import DIMS, FIDInceptionV3
from .stats import RunningStats, frechet_distance, load_stats, save_stats
from .weights import FILE_NAME, URL, WeightsError, cached_weights

__all__ = [
    "DIMS", "FILE_NAME", "FIDInceptionV3", "RunningStats", "URL", "WeightsError", "cached_weights",
    "folder_statistics", "frechet_distance", "image_files", "load_stats", "save_stats",
]
