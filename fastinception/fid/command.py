"""``python -m fastinception fid PATH1 PATH2 --weights FILE``: the FID of two image folders (or .npz statistics) as
pytorch-fid computes it, on the fused feature network."""
from __future__ import annotations

import argparse
import os
import pathlib

import torch

from ..cli.arguments import non_negative_int, positive_int
from ..cli.devices import parse_device
from ..cli.errors import UsageError, report, too_large
from ..cli.progress import progress_bar
from .extract import folder_statistics, process_group
from .images import EXTENSIONS, image_files
from .network import DIMS, FIDInceptionV3
from .stats import frechet_distance, load_stats, save_stats
from .weights import FILE_NAME, URL, WeightsError, cached_weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("path", nargs=2, help="two image folders or .npz statistics files (with --save-stats: a folder and the .npz "
        "to write)")
    add("--weights", metavar="FILE", help=f"pytorch-fid's weights file {FILE_NAME} (default: the copy pytorch-fid's "
        "own download left in torch hub's checkpoints folder; nothing is downloaded)")
    add("--dims", type=int, choices=DIMS, default=2048, help="feature taps of pytorch-fid (default 2048)")
    add("--batch-size", type=positive_int, default=50, help="images per batch (default 50)")
    add("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    add("--num-workers", type=non_negative_int, default=None,
        help="processes reading images (default: min(8, CPUs), as pytorch-fid)")
    add("--save-stats", action="store_true", help="write the statistics of the first path to the second (.npz) "
        "instead of computing an FID")


def _weights_path(given) -> pathlib.Path:
    if given is not None:
        return pathlib.Path(given)
    cached = cached_weights()
    if cached is None:
        raise UsageError(f"no weights: pass --weights FILE, pytorch-fid's {FILE_NAME} (published at {URL}); "
                         "nothing is downloaded")
    return cached


def _check_path(text: str) -> pathlib.Path:
    path = pathlib.Path(text)
    if path.suffix == ".npz" and path.is_file():
        return path
    if not path.is_dir():
        raise UsageError(f"{text}: neither an image folder nor an .npz file")
    if not image_files(path):
        raise UsageError(f"{text}: no images ({', '.join(EXTENSIONS)}) in this folder")
    return path


def _statistics(path: pathlib.Path, model, args, device, lead: bool):
    if path.suffix == ".npz" and path.is_file():
        return load_stats(path)
    files = image_files(path)
    with progress_bar(len(files), str(path), enabled=lead) as bar:
        mu, sigma, rate = folder_statistics(files, model, dims=args.dims, batch_size=args.batch_size, device=device,
                                            num_workers=args.num_workers, progress=bar)
    if lead:
        print(f"{path}: {len(files)} images, {rate:.1f} images/s")
    return mu, sigma


def _join_processes(device: torch.device) -> tuple[torch.device, bool]:
    """Under torchrun (WORLD_SIZE > 1), join the default process group (NCCL on CUDA, gloo on the CPU) and take
    this process's GPU; returns the device and whether this process joined (and must leave)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return device, False
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, True


def run(args: argparse.Namespace) -> int:
    joined = False
    try:
        device, joined = _join_processes(parse_device(args.device, "fid"))
        return _run(args, device)
    except (UsageError, WeightsError, ImportError, ValueError, OSError) as e:
        return report(e)
    finally:
        if joined:
            torch.distributed.destroy_process_group()


def _run(args: argparse.Namespace, device: torch.device) -> int:
    lead = process_group()[0] == 0  # the process that prints and writes
    try:
        if args.num_workers is None:
            args.num_workers = min(8, os.cpu_count() or 1)
        if args.save_stats:
            source, target = _check_path(args.path[0]), pathlib.Path(args.path[1])
            if target.is_dir():
                raise UsageError(f"{target}: a directory; --save-stats writes an .npz file there")
            paths = [source]
        else:
            paths = [_check_path(p) for p in args.path]
        model = None
        if any(not (p.suffix == ".npz" and p.is_file()) for p in paths):
            model = FIDInceptionV3.from_file(_weights_path(args.weights)).to(device)
        stats = [_statistics(p, model, args, device, lead) for p in paths]
        if not lead:
            return 0
        if args.save_stats:
            save_stats(target, *stats[0])
            print(f"saved the statistics of {paths[0]} to {target}")
            return 0
        print("FID: ", frechet_distance(*stats[0], *stats[1]))
    except (RuntimeError, MemoryError) as e:
        if "stack expects each tensor to be equal size" in str(e):
            # images are batched as they are, as pytorch-fid batches them: one size per batch
            return report(f"images of different sizes in one batch ({str(e).splitlines()[0]}); resize them to one "
                          "size, or use --batch-size 1")
        if (reason := too_large(e, device)) is None:
            raise
        return report(f"batch size {args.batch_size}: {reason}; lower --batch-size")
    return 0
