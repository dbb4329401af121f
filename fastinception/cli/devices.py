"""The ``--device`` option of the commands: a device this machine has and can compute on, or a one-line error."""
from __future__ import annotations

import warnings

import torch

from .errors import UsageError


def _first_sentence(error: BaseException) -> str:
    # PyTorch appends pages of backend lists and hints after the first sentence.
    return str(error).strip().split(". ")[0].splitlines()[0] if str(error).strip() else type(error).__name__


def parse_device(text: str | None, command: str) -> torch.device:
    """``--device`` as a torch device this machine can use (default: cuda if available, else cpu); ``UsageError``
    or ``ValueError`` with one line saying why not."""
    if text is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        with warnings.catch_warnings():  # 'mkldnn' and the like parse with a deprecation warning, then fail below
            warnings.simplefilter("ignore")
            device = torch.device(text)
    except RuntimeError as e:
        raise UsageError(f"--device {text!r}: not a torch device ({_first_sentence(e)})") from None
    if device.type == "meta":
        raise UsageError(f"device {text!r} asked for, but meta tensors hold no data (shapes only); {command} on "
                         "cpu or cuda")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this PyTorch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise ValueError(f"device {text!r} asked for, but {why}; the only device here is cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            present = ", ".join(f"cuda:{i}" for i in range(count))
            raise ValueError(f"device {text!r} asked for, but this machine has {count} CUDA device(s): {present}")
    elif device.type != "cpu":
        # Other backends (mps, xpu, ...) have no common availability check: compute something and read it back.
        try:
            usable = torch.ones(1, device=device).add(1).cpu().item() == 2
        except Exception as e:  # RuntimeError, AssertionError, ImportError (torch.hpu, ...), whatever the backend
            raise UsageError(f"device {text!r} asked for, but it cannot be used here ({_first_sentence(e)})") from None
        if not usable:
            raise UsageError(f"device {text!r} asked for, but 1 + 1 came back wrong from it")
    return device
