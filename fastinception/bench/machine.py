"""Where a measurement was taken: device, library versions and date, recorded with every result."""
from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform

import torch


def _version(package: str) -> str | None:
    # From the installed metadata, so that asking does not import triton (which would fix its interpreter mode).
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info(device: torch.device) -> dict:
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device.type,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "numpy": _version("numpy"),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=torch.cuda.get_device_name(device),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_sm_count=props.multi_processor_count,
            gpu_capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def describe(info: dict) -> str:
    """One line naming the machine: the GPU, or the CPU and its core count."""
    if info.get("gpu"):
        where = f"{info['gpu']} ({info['gpu_memory_gib']} GiB), CUDA {info['cuda']}, cuDNN {info['cudnn']}"
    else:
        where = f"CPU {info['cpu']}, {info['cpu_count']} cores (torch threads: {info['torch_threads']})"
    return (
        f"{where}; torch {info['torch']}, triton {info['triton']}, Python {info['python']}; {info['date']}"
    )
