"""Image folders as pytorch-fid reads them: the same extensions, the same order, RGB in [0, 1]."""
from __future__ import annotations

import pathlib

import numpy as np
import torch

# pytorch-fid's IMAGE_EXTENSIONS, globbed one extension after another (lower case, as it does) and sorted
EXTENSIONS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")


def image_files(folder) -> list[pathlib.Path]:
    folder = pathlib.Path(folder)
    return sorted(f for ext in EXTENSIONS for f in folder.glob(f"*.{ext}"))


class ImageFolder(torch.utils.data.Dataset):
    """Each file as a (3, H, W) float32 tensor in [0, 1], as torchvision's ``ToTensor`` makes it."""

    def __init__(self, files):
        self.files = list(files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        try:
            from PIL import Image  # noqa: PLC0415  (optional: the [fid] extra)
        except ImportError:
            raise ImportError("reading images needs Pillow: pip install 'fastinception[fid]'") from None
        with Image.open(self.files[i]) as img:
            rgb = np.array(img.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(rgb).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
