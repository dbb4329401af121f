"""Images per second of FID feature extraction: pytorch-fid's ``InceptionV3`` against fastinception's
``FIDInceptionV3``, with the same random weights (nothing is downloaded), both checked against each other first.

Needs pytorch-fid (and the torchvision it imports) beside fastinception. Prints one line per input layout and the
versions; times the best of ``--reps`` passes over one batch.

Usage: python benchmarks/fid_speed.py [--batch 50] [--size 64] [--threads 2] [--device cpu] [--reps 3]
"""
from __future__ import annotations

import argparse
import pathlib
import platform
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import pytorch_fid.inception as pytorch_fid  # noqa: E402

from fastinception.fid import FIDInceptionV3  # noqa: E402
from fastinception.testing import rel_error  # noqa: E402

from helpers import fid_state_dict  # noqa: E402

FID_BLOCKS = (
    ("Mixed_5b", "FIDInceptionA", (192, 32)), ("Mixed_5c", "FIDInceptionA", (256, 64)),
    ("Mixed_5d", "FIDInceptionA", (288, 64)), ("Mixed_6b", "FIDInceptionC", (768, 128)),
    ("Mixed_6c", "FIDInceptionC", (768, 160)), ("Mixed_6d", "FIDInceptionC", (768, 160)),
    ("Mixed_6e", "FIDInceptionC", (768, 192)), ("Mixed_7b", "FIDInceptionE_1", (1280,)),
    ("Mixed_7c", "FIDInceptionE_2", (2048,)),
)


def pytorch_fid_network(state: dict) -> torch.nn.Module:
    """pytorch-fid's InceptionV3 (2048 features) with ``state`` as its weights file."""
    def fid_inception_v3():
        net = pytorch_fid._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        for name, cls, args in FID_BLOCKS:
            setattr(net, name, getattr(pytorch_fid, cls)(*args))
        net.load_state_dict(state)
        return net

    pytorch_fid.fid_inception_v3 = fid_inception_v3
    return pytorch_fid.InceptionV3([3]).eval()


def images_per_second(fn, batch: int, reps: int, device: torch.device) -> float:
    def timed():
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    fn()  # warm-up
    return batch / min(timed() for _ in range(reps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--size", type=int, default=64, help="input side before the resize to 299 (default 64)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    state = fid_state_dict(seed=0)
    theirs, ours = pytorch_fid_network(state).to(device), FIDInceptionV3.from_state_dict(state).to(device)
    images = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.inference_mode():
        err = rel_error(ours.features(images), theirs(images)[0].flatten(1))
        if err > 1e-5:
            raise SystemExit(f"features differ from pytorch-fid's by {err:.2e}: not timed")
        print(f"batch {args.batch}, {args.size}x{args.size} images resized to 299, fp32, {device}, "
              f"{torch.get_num_threads()} thread(s); features within {err:.1e} of pytorch-fid's")
        for layout, fmt in (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)):
            x = images.contiguous(memory_format=fmt)
            rates = [images_per_second(lambda fn=fn, x=x: fn(x), args.batch, args.reps, device)
                     for fn in (theirs, ours.features)]
            print(f"{layout:14s} pytorch-fid {rates[0]:7.2f} images/s   fastinception {rates[1]:7.2f} images/s")
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}")


if __name__ == "__main__":
    main()
