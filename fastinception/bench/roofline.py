"""Work and traffic of an Inception block, and the roofline floor: the least time any kernel could take.

floor = max(FLOPs / matrix rate, bytes / copy bandwidth), both rates measured on this machine in the same run
(a large matmul in the dtype, a large device-to-device copy), so the fraction of the floor a contender
reaches (floor / its time) compares like with like. A rate is a ceiling, so it comes from the fastest of
its timed runs (on a busy machine the median understates what the hardware can do).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..blocks.program import BlockProgram, Conv
from ..blocks.spec import InceptionSpec
from .timing import measure

PASSES = ("fwd", "fwdbwd")

ROOFLINE_MODEL = {
    "flops_fwd": "2*N*H*W*(Cin*(c1+c2a+c3a+c4) + c2a*c2b*k2^2 + c3a*c3b*k3^2): the six convolutions; "
    "bias, ReLU and the 3x3 max-pool's compares (9 per input element, under 1% of the total) are not counted",
    "flops_fwdbwd": "3x forward: the backward computes an input gradient and a weight gradient per convolution, "
    "each as much work as the forward",
    "bytes_fwd": "floor: x read once, the output written once, weights and biases read once",
    "bytes_fwdbwd": "forward floor, plus the backward reading x, out and grad_out, writing grad_x, "
    "reading the weights and writing their gradients",
    "bytes_with_intermediates": "the floor plus the reduced intermediates t2 (c2a channels) and t3 (c3a channels) "
    "written once and read once in the forward, and read again in the backward",
    "floor_s": "max(flops / matrix_rate, bytes / copy_bandwidth)",
    "matrix_rate": "a square matmul in the benchmark dtype (fp32 with TF32 when convolutions use it), "
    "fastest of its timed runs; on CPU the faster of torch.matmul and the same GEMM as a 1x1 convolution",
    "copy_bandwidth": "a device-to-device tensor copy, bytes read plus bytes written, fastest of its timed runs",
    "networks": "whole-network cases report TFLOP/s (convolutions and the linear layer) but no floor",
    "inception_v3_blocks": "Inception-v3 blocks report TFLOP/s (every conv of the block's program) but no floor",
}


def block_flops(spec: InceptionSpec, n: int, h: int, w: int, pass_: str = "fwd") -> int:
    """Multiply-adds x2 of the six convolutions of one block on an (n, Cin, h, w) input."""
    return program_flops(spec.program, n, h, w, pass_)


def program_flops(program: BlockProgram, n: int, h: int, w: int, pass_: str = "fwd") -> int:
    """Multiply-adds x2 of every conv of a block program on an (n, Cin, h, w) input (pools not counted)."""
    total = 0
    for branch in program.branches:
        channels, size = program.in_channels, (h, w)
        for op in branch.ops:
            out = op.out_size(*size)
            if isinstance(op, Conv):
                total += 2 * n * out[0] * out[1] * op.out_channels * channels * op.kernel[0] * op.kernel[1]
                channels = op.out_channels
            size = out
        for conv in branch.split:
            out = conv.out_size(*size)
            total += 2 * n * out[0] * out[1] * conv.out_channels * channels * conv.kernel[0] * conv.kernel[1]
    return total * _pass_factor(pass_)


def _pass_factor(pass_: str) -> int:
    if pass_ not in PASSES:
        raise ValueError(f"pass must be one of {PASSES}, got {pass_!r}")
    return 1 if pass_ == "fwd" else 3


def weight_elements(spec: InceptionSpec) -> int:
    """Weights and biases of the six convolutions."""
    s = spec
    weights = (
        s.in_channels * (s.c1 + s.c2a + s.c3a + s.c4) + s.c2a * s.c2b * s.k2**2 + s.c3a * s.c3b * s.k3**2
    )
    return weights + s.c1 + s.c2a + s.c2b + s.c3a + s.c3b + s.c4


def block_bytes(spec: InceptionSpec, n: int, h: int, w: int, itemsize: int, pass_: str = "fwd",
                intermediates: bool = False) -> int:
    """Bytes moved at the floor (see ``ROOFLINE_MODEL``), optionally with the t2/t3 round trips."""
    _pass_factor(pass_)
    x = n * spec.in_channels * h * w
    out = n * spec.out_channels * h * w
    weights = weight_elements(spec)
    elements = x + out + weights
    if pass_ == "fwdbwd":
        # read x, out and grad_out; write grad_x; read weights, write weight grads
        elements += x + out + out + x + 2 * weights
    if intermediates:
        t = n * (spec.c2a + spec.c3a) * h * w
        elements += 2 * t if pass_ == "fwd" else 3 * t
    return elements * itemsize


def floor_seconds(flops: float, nbytes: float, matrix_rate: float, copy_bandwidth: float) -> float:
    """The roofline floor: max(flops / matrix_rate [FLOP/s], nbytes / copy_bandwidth [B/s])."""
    return max(flops / matrix_rate, nbytes / copy_bandwidth)


def network_flops(model: nn.Module, input_shape: tuple) -> int:
    """Forward FLOPs (2 x multiply-adds) of every Conv2d and Linear in ``model``, traced on the meta device."""
    meta = copy.deepcopy(model).to("meta")
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += 2 * output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            total += 2 * output.numel() * module.in_features

    handles = [m.register_forward_hook(count) for m in meta.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            meta(torch.empty(input_shape, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return total


def measure_matrix_rate(dtype: torch.dtype, device: torch.device, size: int | None = None) -> float:
    """FLOP/s of a square ``size`` matmul in ``dtype`` (fp32 follows the convolutions' TF32 switch).

    On CPU the same GEMM is also run as a 1x1 convolution (oneDNN) and the faster counts: MKL's matmul takes
    a slower code path on some CPUs than the convolutions the contenders use.
    """
    size = size or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    c = torch.empty(size, size, device=device, dtype=dtype)
    previous = torch.get_float32_matmul_precision()
    tf32 = device.type == "cuda" and dtype == torch.float32 and convolutions_use_tf32()
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    try:
        best_ms = measure(lambda _: torch.matmul(a, b, out=c), [None], device, target_ms=200.0, min_reps=3).min_ms
    finally:
        torch.set_float32_matmul_precision(previous)
    if device.type == "cpu":
        side = int(size**0.5)
        # channels_last (1, size, side, side)
        pixels = a[: side * side].reshape(1, side, side, size).permute(0, 3, 1, 2)
        weight = b.reshape(size, size, 1, 1)
        conv_ms = measure(lambda _: torch.nn.functional.conv2d(pixels, weight), [None], device, target_ms=200.0,
                          min_reps=3).min_ms
        best_ms = min(best_ms, conv_ms * size / (side * side))
    return 2 * size**3 / (best_ms * 1e-3)


def measure_copy_bandwidth(device: torch.device, nbytes: int | None = None) -> float:
    """Bytes/s of a device copy (bytes read + bytes written)."""
    nbytes = nbytes or ((1 << 30) if device.type == "cuda" else (64 << 20))
    src = torch.empty(nbytes // 4, device=device, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    timing = measure(lambda _: dst.copy_(src), [None], device, target_ms=200.0, min_reps=3)
    return 2 * src.numel() * 4 / (timing.min_ms * 1e-3)


def convolutions_use_tf32() -> bool:
    """Whether cuDNN convolutions run fp32 inputs in TF32 (PyTorch's switch, true by default)."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    precision = getattr(conv, "fp32_precision", None) if conv is not None else None
    if precision in ("tf32", "ieee"):
        return precision == "tf32"
    return bool(torch.backends.cudnn.allow_tf32)
