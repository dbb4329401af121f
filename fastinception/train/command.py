"""``python -m fastinception train``: train GoogLeNet the d2l way on real data, with the reference or fused blocks.

As d2l's ``train_ch6``: Xavier-uniform Conv2d/Linear weights, SGD, cross-entropy, images resized with
bilinear interpolation, train accuracy gathered during the epoch and test accuracy after it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..cli import charts
from ..cli.arguments import non_negative_int, positive_float32, positive_int, seed, thread_count
from ..cli.devices import parse_device
from ..cli.errors import UsageError, prepare_out, report, too_large
from ..cli.progress import progress_bar
from ..models import googlenet
from .data import DataError, ImageSet, load_digits, load_fashion_mnist

MODELS = {"fast": ("fast",), "reference": ("reference",), "both": ("reference", "fast")}


@dataclasses.dataclass
class EpochStats:
    epoch: int
    loss: float
    train_acc: float
    test_acc: float
    examples_per_s: float
    seconds: float


@dataclasses.dataclass
class TrainResult:
    model: str
    epochs: list = dataclasses.field(default_factory=list)
    step_losses: list = dataclasses.field(default_factory=list)


def xavier_init(module: nn.Module) -> None:
    """d2l's initialisation: Xavier-uniform weights for Conv2d and Linear, biases as PyTorch sets them."""
    if type(module) in (nn.Conv2d, nn.Linear):
        nn.init.xavier_uniform_(module.weight)


def build_googlenet(kind: str, num_classes: int, seed: int, device) -> nn.Module:
    """d2l's 1-channel GoogLeNet with reference (``"reference"``) or fused (``"fast"``) blocks.

    Both kinds create their parameters in the same order, so the same seed gives the same weights.
    """
    torch.manual_seed(seed)
    model = googlenet(num_classes=num_classes, in_channels=1, fast=kind == "fast")
    model.apply(xavier_init)
    return model.to(device)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize to ``size`` x ``size`` as d2l's Resize (antialiased when shrinking); 0 keeps the size."""
    if size == 0 or tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageSet, batch_size: int, size: int, device) -> float:
    """Accuracy of ``model`` (in eval mode) on ``data``."""
    model.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        x, y = data.batch(torch.arange(start, min(start + batch_size, len(data))), device)
        correct += (model(resize(x, size)).argmax(dim=1) == y).sum().item()
    return correct / max(len(data), 1)


def train_model(
    model: nn.Module,
    train_set: ImageSet,
    test_set: ImageSet,
    *,
    name: str,
    epochs: int,
    batch_size: int,
    lr: float,
    size: int,
    device,
    seed: int,
    max_steps: int | None = None,
    progress: bool = True,
    log=print,
) -> TrainResult:
    """Train with SGD on cross-entropy; the batch order depends on ``seed`` only, so runs can be compared.

    ``max_steps`` stops early (for tests); ``log`` receives one line per epoch.
    """
    if len(train_set) == 0:
        raise ValueError("the training set is empty")
    device = torch.device(device)
    order_rng = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    result = TrainResult(name)
    steps_per_epoch = -(-len(train_set) // batch_size)
    for epoch in range(1, epochs + 1):
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        _sync(device)
        start = time.perf_counter()
        order = torch.randperm(len(train_set), generator=order_rng)
        with progress_bar(len(train_set), f"{name} epoch {epoch}/{epochs}", enabled=progress) as bar:
            for step in range(steps_per_epoch):
                if max_steps is not None and len(result.step_losses) >= max_steps:
                    break
                x, y = train_set.batch(order[step * batch_size : (step + 1) * batch_size], device)
                optimizer.zero_grad(set_to_none=True)
                logits = model(resize(x, size))
                loss = loss_fn(logits, y)
                loss.backward()
                optimizer.step()
                loss_value = loss.item()
                result.step_losses.append(loss_value)
                loss_sum += loss_value * len(y)
                correct += (logits.argmax(dim=1) == y).sum().item()
                seen += len(y)
                bar.update(len(y))
                bar.set_postfix_str(f"loss {loss_sum / seen:.4f}")
        _sync(device)
        seconds = time.perf_counter() - start
        stats = EpochStats(
            epoch, loss_sum / max(seen, 1), correct / max(seen, 1),
            evaluate(model, test_set, batch_size, size, device), seen / seconds, seconds,
        )
        result.epochs.append(stats)
        log(
            f"{name:<9} epoch {epoch}/{epochs}: loss {stats.loss:.4f}, train acc {stats.train_acc:.3f}, "
            f"test acc {stats.test_acc:.3f}, {stats.examples_per_s:.1f} examples/s ({seconds:.1f} s)"
        )
        if max_steps is not None and len(result.step_losses) >= max_steps:
            break
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Train d2l's GoogLeNet (SGD, Xavier init, cross-entropy, bilinear resize) on scikit-learn's 8x8 digits "
        "(1437 train / 360 test images, no download), or on Fashion-MNIST with --data. The defaults (30 epochs, "
        "batch 16, lr 0.05, 32x32, fused blocks) take 2 to 3 minutes on a 2-core CPU. d2l's lr 0.1 is unstable "
        "on the digits at batch 32 (the test accuracy climbs, then falls back). d2l's Fashion-MNIST run: --data DIR "
        "--epochs 10 --batch-size 128 --lr 0.1 --resize 96 (a GPU is advisable)."
    )
    add = parser.add_argument
    add("--data", metavar="DIR",
        help="directory with the four Fashion-MNIST IDX files (optionally .gz); default: scikit-learn's digits")
    add("--epochs", type=positive_int, default=30, help="epochs (default 30; d2l: 10)")
    add("--batch-size", type=positive_int, default=16, help="batch size (default 16; d2l: 128)")
    add("--lr", type=positive_float32, default=0.05, help="SGD learning rate (default 0.05; d2l: 0.1)")
    add("--resize", type=non_negative_int, default=32,
        help="image side after bilinear resize (default 32; d2l: 96; 0 keeps the data's size)")
    add("--limit", type=positive_int, help="use at most this many training and test examples each (quick runs)")
    add("--model", choices=sorted(MODELS), default="fast",
        help="GoogLeNet with FastInception blocks, the reference blocks, or both from the same seed (default fast)")
    add("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    add("--out", metavar="DIR", default="train-output",
        help="directory for train.png and train.json (default train-output)")
    add("--seed", type=seed, default=0, help="seed of the initial weights and the batch order (default 0)")
    add("--threads", type=thread_count,
        help="CPU threads for PyTorch (default 1 on CPU, where two OpenMP threads stall each other on a busy "
        "machine; PyTorch's choice elsewhere)")


def _load(args) -> tuple[str, ImageSet, ImageSet]:
    if args.data is None:
        train_set, test_set = load_digits()
        name = "digits"
    else:
        train_set, test_set = load_fashion_mnist(args.data)
        name = "fashion-mnist"
    train_set, test_set = train_set.head(args.limit), test_set.head(args.limit)
    for what, part in (("training", train_set), ("test", test_set)):
        if len(part) == 0:
            raise DataError(f"{args.data or name}: the {what} set is empty; nothing to train or test on")
    return name, train_set, test_set


def _save(args, data_name: str, train_set: ImageSet, test_set: ImageSet, device, results: list) -> list[str]:
    """Write train.json and, with matplotlib, train.png; returns the paths written."""
    os.makedirs(args.out, exist_ok=True)
    settings = {
        "data": data_name, "train_examples": len(train_set), "test_examples": len(test_set),
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "resize": args.resize, "seed": args.seed,
    }
    json_path = os.path.join(args.out, "train.json")
    with open(json_path, "w") as f:
        json.dump(
            {
                "settings": settings,
                "device": str(device),
                "torch": torch.__version__,
                "runs": {
                    r.model: {"epochs": [dataclasses.asdict(e) for e in r.epochs], "step_losses": r.step_losses}
                    for r in results
                },
            },
            f,
            indent=2,
        )
    if not charts.available():
        print(f"matplotlib is not installed: no train.png ({charts.INSTALL_HINT.replace('bench', 'train')})")
        return [json_path]
    series = {}
    for r in results:
        series[f"{r.model} train loss"] = [e.loss for e in r.epochs]
        series[f"{r.model} train acc"] = [e.train_acc for e in r.epochs]
        series[f"{r.model} test acc"] = [e.test_acc for e in r.epochs]
    png_path = os.path.join(args.out, "train.png")
    size = f"{args.resize}x{args.resize}" if args.resize else "native size"
    charts.line_chart(
        png_path, f"GoogLeNet on {data_name}: lr {args.lr}, batch {args.batch_size}, {size}",
        [float(e.epoch) for e in results[0].epochs], series, "epoch", "loss / accuracy",
    )
    return [png_path, json_path]


def run(args: argparse.Namespace) -> int:
    try:
        device = parse_device(args.device, "train")
        data_name, train_set, test_set = _load(args)
        prepare_out(args.out, ("train.json", "train.png"))
    except (UsageError, OSError, DataError, ImportError, ValueError, RuntimeError) as e:
        return report(e)
    if args.threads is not None or device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
    size = f"{args.resize}x{args.resize}" if args.resize else "native size"
    print(
        f"GoogLeNet on {data_name}: {len(train_set)} train / {len(test_set)} test images, resized to {size}, "
        f"{args.epochs} epoch(s), batch {args.batch_size}, lr {args.lr}, seed {args.seed}, on {device}"
    )
    results = []
    for kind in MODELS[args.model]:
        try:
            model = build_googlenet(kind, train_set.num_classes, args.seed, device)
            results.append(
                train_model(
                    model, train_set, test_set, name=kind, epochs=args.epochs, batch_size=args.batch_size,
                    lr=args.lr, size=args.resize, device=device, seed=args.seed,
                )
            )
        except (RuntimeError, TypeError, MemoryError) as e:  # --batch-size and --resize set what a step allocates
            if (reason := too_large(e, device)) is None:
                raise
            images = f"{args.resize}x{args.resize} images" if args.resize else "images at their own size"
            return report(f"{kind} at batch size {args.batch_size}, {images}: {reason}; lower --batch-size or "
                          "--resize")
    if len(results) == 2:
        ref, fast = results
        diff = max((abs(a - b) for a, b in zip(ref.step_losses, fast.step_losses)), default=0.0)
        print(
            f"fast vs reference: final test acc {fast.epochs[-1].test_acc:.3f} vs {ref.epochs[-1].test_acc:.3f}; "
            f"largest difference of a step's loss {diff:.2e} over {len(ref.step_losses)} steps"
        )
    written = _save(args, data_name, train_set, test_set, device, results)
    print(f"wrote {' and '.join(written)}")
    return 0
