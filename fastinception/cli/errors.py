"""Errors the commands report as one line on stderr with exit status 2, as argparse does, instead of a traceback:
an output directory that cannot be written, tensors too large for the machine."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import torch

USAGE_ERROR = 2  # argparse's exit status for a bad option


class UsageError(Exception):
    """A bad option value found after parsing: an impossible path, an unusable device."""


def report(message) -> int:
    """Print ``error: message`` on stderr; returns the exit status."""
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR


def prepare_out(out, files: tuple[str, ...] = ()) -> Path:
    """Create the ``--out`` directory before the work, so a bad one fails in seconds, not after the run.

    ``files``: names the command will write there; one that is a directory (or not writable) is refused too.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path}: exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {path}: cannot create the directory ({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path}: the directory is not writable")
    for name in files:
        target = path / name
        if target.is_dir():
            raise UsageError(f"--out {path}: {name} there is a directory, not a file")
        if target.exists() and not os.access(target, os.W_OK):
            raise UsageError(f"--out {path}: {name} there is not writable")
    return path


def too_large(error: BaseException, device) -> str | None:
    """Why ``error`` means the tensors asked for are too large for ``device`` (``"out of memory on cpu (tried to
    allocate N bytes)"``, or sizes past 64 bits); None for any other error, which is a bug to show in full.

    The CPU allocator and the size checks raise plain RuntimeError or TypeError, so they are told apart by message.
    """
    text = str(error)
    if "Storage size calculation overflowed" in text or "Overflow when unpacking long" in text:
        return "the sizes overflow 64 bits"
    if not (isinstance(error, (MemoryError, torch.OutOfMemoryError))
            or isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)):
        return None
    found = re.search(r"tried to allocate (\S+ \w+)", text, re.I)
    return f"out of memory on {device}" + (f" (tried to allocate {found.group(1)})" if found else "")
