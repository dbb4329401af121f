"""Helpers shared by the kernel launchers: where kernels can run, and dot precision."""
import os

import torch

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def use_interpreter_without_cuda() -> None:
    """Without CUDA, choose Triton's CPU interpreter; this takes effect only before triton is first imported."""
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


def require_launchable(*tensors: torch.Tensor) -> None:
    """Raise a clear error when the kernels cannot run on these tensors' device."""
    for t in tensors:
        if t is None:
            continue
        if t.device.type == "cuda":
            continue
        if t.device.type == "cpu" and interpreting():
            continue
        if t.device.type == "cpu":
            raise RuntimeError(
                "the Triton kernels need CUDA tensors; on CPU tensors they run only under the Triton "
                "interpreter: set TRITON_INTERPRET=1 before triton is imported, or use backend='torch'"
            )
        raise RuntimeError(f"the Triton kernels need CUDA tensors, got a tensor on {t.device}")


def tf32_allowed(x: torch.Tensor) -> bool:
    """Whether the kernels may use tf32 on ``x``: CUDA fp32 under PyTorch's switch for convolutions
    (``torch.backends.cudnn.allow_tf32``), as ``nn.Conv2d`` does."""
    return x.is_cuda and x.dtype == torch.float32 and torch.backends.cudnn.allow_tf32


def bf16_on_interpreter(dtype: torch.dtype, device: torch.device) -> bool:
    """bf16 on Triton's CPU interpreter, which computes it wrongly: the callers run fp32 there and round."""
    return dtype == torch.bfloat16 and device.type == "cpu" and interpreting()


def dot_precision(dtype: torch.dtype, allow_tf32: bool) -> str:
    """``tl.dot`` input precision: tf32 for fp32 only when allowed, as PyTorch convolutions do."""
    if dtype == torch.float32 and allow_tf32:
        return "tf32"
    return "ieee"
