"""What the tests share: devices and skips, seeded inputs and NaN-poisoned outputs, float64 references of the
kernels, the block cases and the float64 check of a whole block, reference-shaped blocks (d2l and a torchvision
replica), a recorder of kernel launches and aten ops, and IDX data files for the train command.

Tolerances and the float64 oracle are the package's own (``fastinception.testing``), as the benchmarks use them.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import gzip
import os
import pathlib
import random
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from fastinception import GOOGLENET_BLOCKS, FastInception, Inception
from fastinception.blocks import programs as P
from fastinception.blocks.program import Branch, Conv
from fastinception.blocks.programs import FID_INCEPTION_BLOCKS, V3_BLOCK_KINDS, V3_STEM, V3_UNIT_NAMES
from fastinception.kernels.common import interpreting
from fastinception.reference.inception_v3 import BasicConv2d
from fastinception.reference.inception_v3 import InceptionA as TVInceptionA
from fastinception.reference.inception_v3 import InceptionB as TVInceptionB
from fastinception.reference.inception_v3 import InceptionC as TVInceptionC
from fastinception.reference.inception_v3 import InceptionD as TVInceptionD
from fastinception.reference.inception_v3 import InceptionE as TVInceptionE
from fastinception.testing import REL_TOL, TF32_REL_TOL, assert_close, float64_reference, rel_error

__all__ = [
    "ALLOCATION_AND_VIEW_OPS", "BACKWARD_BUFFER_OPS", "BF16_SKIP", "D2LInception", "CL", "CUDA", "DEVICE", "FORMATS",
    "GPU_ONLY", "GPU_TILE_CONFIGS", "NCHW", "REL_TOL", "TF32_REL_TOL", "assert_close", "assert_untouched",
    "check_against_float64", "conv_ref", "googlenet_cases", "layout_id", "make_input", "make_weight", "poisoned",
    "random_cases", "randn", "record_launches", "rel_error", "seeded_cases", "seeded_pair", "stem_ref", "idx_bytes",
    "write", "write_fashion_mnist", "shuffled_programs", "tf32_tol", "BasicConv2d", "TVInception", "TVGoogLeNet",
    "randomise_batchnorms", "small_block", "HAND_WRITTEN", "hand_written_weights",
    "TVInceptionA", "TVInceptionB", "TVInceptionC", "TVInceptionD", "TVInceptionE", "tv_inception_v3_blocks",
    "fid_state_dict", "write_image_folder", "PROGRAM_CASES", "shrunk", "without_tf32", "coarse_interpreter_tiles",
    "TIMM_SCALES", "TimmShaped", "timm_forward",
]

# ----------------------------------------------------------------------------------------------------------------------
# devices, layouts, skips

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
CL = torch.channels_last
NCHW = torch.contiguous_format
FORMATS = {"nchw": NCHW, "nhwc": CL}
BF16_SKIP = pytest.mark.skipif(not CUDA, reason="bf16 gives wrong results under the Triton interpreter; tested on GPU")
GPU_ONLY = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (compiled kernels, tf32 and num_warps=8)")
# num_warps=8 tiles that fit sm_90 shared memory for the forward kernels in fp16/bf16/fp32 (the stem's pool branch
# multi-buffers nine A loads, so 128x128x32 gets two stages)
GPU_TILE_CONFIGS = [
    {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "num_warps": 8, "num_stages": 3},
    {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32, "num_warps": 8, "num_stages": 2},
    {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 16, "num_warps": 8, "num_stages": 2},
]


@contextlib.contextmanager
def without_tf32():
    """PyTorch's convolutions and the kernels in full fp32 (tf32 off, cuDNN left on), so fp32 results compare at
    fp32's tolerance on a GPU too."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def tf32_tol() -> float:
    """The tolerance of an fp32 kernel asked for tf32: tf32's on a GPU; fp32's under the interpreter, which computes
    ``tl.dot`` in full fp32 whatever the precision asked for (a looser bound there would hide real errors)."""
    return TF32_REL_TOL if CUDA else REL_TOL[torch.float32]


def _format(fmt) -> torch.memory_format:
    return FORMATS[fmt] if isinstance(fmt, str) else fmt


# ----------------------------------------------------------------------------------------------------------------------
# inputs and poisoned outputs

def randn(gen, shape, dtype, memory_format=NCHW, device=DEVICE) -> torch.Tensor:
    """Standard normal values drawn in float64 on the CPU, then rounded to ``dtype`` on ``device``."""
    t = torch.randn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    return t.contiguous(memory_format=_format(memory_format)) if t.dim() == 4 else t


def make_input(shape, fmt="nchw", dtype=torch.float32, device="cpu", seed=0, *, gen=None, channel_slice=False):
    """A random activation in memory format ``fmt``; with ``channel_slice``, a channel view of a wider tensor (so its
    strides are not those of a dense tensor). ``gen`` draws from a caller's generator instead of ``seed``."""
    gen = gen if gen is not None else torch.Generator().manual_seed(seed)
    if not channel_slice:
        return randn(gen, shape, dtype, fmt, device)
    n, c, h, w = shape
    return randn(gen, (n, c + 5, h, w), dtype, fmt, device)[:, 2 : 2 + c]


def make_weight(gen, shape, dtype, channels_last=False, device=DEVICE) -> torch.Tensor:
    # nn.Conv2d-like scale keeps activations O(1) so relative errors are meaningful
    fan_in = shape[1] * shape[2] * shape[3]
    w = randn(gen, shape, dtype, device=device) * (1.0 / max(fan_in, 1) ** 0.5)
    return w.contiguous(memory_format=CL) if channels_last else w


def poisoned(shape, dtype, memory_format=NCHW, device=DEVICE) -> torch.Tensor:
    """A NaN-filled tensor: any element a kernel should write and does not stays NaN and fails the check."""
    fmt = _format(memory_format) if len(shape) == 4 else torch.contiguous_format
    return torch.full(shape, float("nan"), dtype=dtype, device=device).contiguous(memory_format=fmt)


def assert_untouched(big, keep):
    """Channels of ``big`` outside the written slices (``keep[c]`` False) must still be NaN."""
    outside = big[:, ~keep.to(big.device)]
    assert torch.isnan(outside).all(), "kernel wrote outside its output slice"


# ----------------------------------------------------------------------------------------------------------------------
# float64 references of the kernels

def conv_ref(x, w, b):
    """relu(conv2d(x, w, b, padding k // 2)) in float64."""
    k = w.shape[-1]
    return F.relu(F.conv2d(x.double(), w.double(), b.double(), padding=k // 2))


def _conv1x1_ref(x, w, b):
    if w.shape[0] == 0:  # F.conv2d rejects zero output channels
        return x.new_empty(x.shape[0], 0, *x.shape[2:])
    return F.relu(F.conv2d(x, w.double(), b.double()))


def stem_ref(x, w1, b1, w2a, b2a, w3a, b3a, w4, b4):
    """The stem's four outputs in float64: three 1x1 convs of x and one of its 3x3 max-pool, each with ReLU."""
    x = x.double()
    pooled = F.max_pool2d(x, 3, stride=1, padding=1)
    return (_conv1x1_ref(x, w1, b1), _conv1x1_ref(x, w2a, b2a), _conv1x1_ref(x, w3a, b3a),
            _conv1x1_ref(pooled, w4, b4))


def seeded_cases(count, dtypes, seed, draw):
    """``count`` kernel cases from ``draw(rng, i)`` (shape and slicing) plus the dtype and layouts, cycled so every
    combination family appears, and a seed of their own."""
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        case = draw(rng, i)
        case.update(dtype=dtypes[i % len(dtypes)], x_format=(NCHW, CL)[i % 2], out_format=(NCHW, CL)[(i // 2) % 2],
                    seed=seed * 100 + i)
        cases.append(case)
    return cases


def layout_id(c):
    fmt = lambda f: "cl" if f is CL else "nchw"  # noqa: E731
    return f"-x{fmt(c['x_format'])}{'slice' if c['x_slice'] else ''}-o{fmt(c['out_format'])}"


# ----------------------------------------------------------------------------------------------------------------------
# whole blocks

def _case(args, k2, k3, shape, fmt, ident, slow=False):
    return pytest.param(args, k2, k3, shape, fmt, marks=[pytest.mark.slow] if slow else [],
                        id=f"{ident}-{args}-k2={k2}-k3={k3}-{'x'.join(map(str, shape))}-{fmt}")


def random_cases(count: int, seed: int, max_channels: int = 48, max_side: int = 12, max_batch: int = 4,
                 fast: int | None = None):
    """``count`` random (block args, k2, k3, input shape, memory format) cases; kernel sizes and the format vary.
    With ``fast``, the cases after the first ``fast`` are marked slow (run by ``-m slow``, as CI does)."""
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        ch = [rng.randint(1, max_channels) for _ in range(7)]
        args = (ch[0], ch[1], (ch[2], ch[3]), (ch[4], ch[5]), ch[6])
        shape = (rng.randint(1, max_batch), args[0], rng.randint(1, max_side), rng.randint(1, max_side))
        k3 = 5 if (i // 2) % 2 == 0 else 3
        k2 = (3, 1, 5)[(i // 4) % 3]
        slow = fast is not None and i >= fast
        cases.append(_case(args, k2, k3, shape, "nhwc" if i % 2 else "nchw", i, slow))
    return cases


def googlenet_cases(side: int = 4, batch: int = 2, fast: tuple = tuple(GOOGLENET_BLOCKS)):
    """The nine GoogLeNet block configurations at a small spatial size; those not named in ``fast`` are slow."""
    return [
        _case(args, 3, 5, (batch, args[0], side, side), "nhwc" if i % 2 else "nchw", name, name not in fast)
        for i, (name, (args, _)) in enumerate(GOOGLENET_BLOCKS.items())
    ]


def seeded_pair(args, k2, k3, dtype, seed, backend, device="cpu"):
    """(FastInception on ``backend``, reference Inception) with the same seeded weights."""
    torch.manual_seed(seed)
    ref = Inception(*args, k2=k2, k3=k3, device=device, dtype=dtype)
    return FastInception.from_module(ref, backend=backend), ref


def check_against_float64(fast, ref: Inception, x: torch.Tensor, fmt: str, *, tol=None, grads=True) -> None:
    """Forward, input grad and every parameter grad of ``fast`` (in ``x.dtype``) against ``ref`` in float64.

    ``fast`` and ``ref`` hold the same weights. The output gradient is random, rounded to ``x.dtype`` (so the
    reference sees the values the block sees), and in the other memory format than the output (so a kernel that
    reads it with the output's strides fails).
    """
    dtype = x.dtype
    ref = copy.deepcopy(ref).to(device=x.device)
    xin = x.detach().clone(memory_format=FORMATS[fmt]).requires_grad_(grads)
    got = fast(xin)
    assert got.dtype == dtype
    assert got.is_contiguous(memory_format=FORMATS[fmt]), f"output is not in the input's memory format ({fmt})"
    if not grads:
        (want,) = float64_reference(ref, x)
        assert_close(got, want, dtype, "forward", tol)
        return
    g = torch.randn(got.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(x.numel()))
    g = g.to(dtype).double().to(x.device).contiguous(memory_format=FORMATS["nchw" if fmt == "nhwc" else "nhwc"])
    want, want_x, *want_params = float64_reference(ref, x, g)
    assert_close(got, want, dtype, "forward", tol)
    got.backward(g.to(dtype))
    assert_close(xin.grad, want_x, dtype, "grad x", tol)
    for (name, p), w in zip(fast.named_parameters(), want_params):
        assert p.grad is not None, f"no gradient for {name}"
        assert_close(p.grad, w, dtype, f"grad {name}", tol)


class D2LInception(nn.Module):
    """The block as written in the d2l book, with no tie to this package."""

    def __init__(self, in_channels, c1, c2, c3, c4):
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x):
        relu = torch.relu
        p1 = relu(self.p1_1(x))
        p2 = relu(self.p2_2(relu(self.p2_1(x))))
        p3 = relu(self.p3_2(relu(self.p3_1(x))))
        p4 = relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


# ----------------------------------------------------------------------------------------------------------------------
# a structural replica of torchvision's GoogLeNet (same module names, shapes and forward) with no torchvision import,
# and BatchNorm statistics far from the defaults

# convert must recognise these by structure alone.
class TVInception(nn.Module):
    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1), BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1)
        )
        # torchvision's "5x5" branch uses a 3x3 kernel.
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1), BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(F.dropout(F.relu(self.fc1(x)), 0.7, training=self.training))


class TVGoogLeNet(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = TVInception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = TVInception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = TVInception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = TVInception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = TVInception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = TVInception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = TVInception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = TVInception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = TVInception(832, 384, 192, 384, 48, 128, 128)
        self.aux1 = InceptionAux(512, num_classes)
        self.aux2 = InceptionAux(528, num_classes)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.2)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        return (x, aux2, aux1) if self.training else x


def tv_inception_v3_blocks(fid: bool = False, in_channels: int = 16) -> nn.Sequential:
    """One block of each type, chained at small sizes (a 9x9 input ends at 1x1), torchvision's or the FID network's
    pools, random weights and BatchNorm statistics far from the defaults, in eval mode."""
    torch.manual_seed(5)
    avg = "avg_exclude_pad" if fid else "avg"
    model = nn.Sequential(
        TVInceptionA(in_channels, 8, avg),
        TVInceptionB(232),
        TVInceptionC(712, 8, avg),
        TVInceptionD(768),
        TVInceptionE(1280, avg),
        TVInceptionE(2048, "max" if fid else "avg"),
    )
    randomise_batchnorms(model, seed=6)
    return model.eval()


def fid_state_dict(seed: int = 0) -> dict:
    """A state_dict in the layout of pytorch-fid's weights file (torchvision's Inception3, 1008 classes) with random
    weights and BatchNorm statistics far from the defaults."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {name: (out, cin, k, k) for name, (out, cin, k, _, _) in V3_STEM.items()}
    for block, kind in V3_BLOCK_KINDS.items():
        slots = FID_INCEPTION_BLOCKS[block][0].conv_slots()
        shapes.update({f"{block}.{unit}": s.weight_shape for unit, s in zip(V3_UNIT_NAMES[kind], slots)})
    state = {}
    for name, shape in shapes.items():
        fan_in = shape[1] * shape[2] * shape[3]
        c = shape[0]
        state[f"{name}.conv.weight"] = torch.randn(shape, generator=gen) * (2 / fan_in) ** 0.5
        state[f"{name}.bn.weight"] = torch.rand(c, generator=gen) + 0.5
        state[f"{name}.bn.bias"] = torch.randn(c, generator=gen) * 0.2
        state[f"{name}.bn.running_mean"] = torch.randn(c, generator=gen) * 0.2
        state[f"{name}.bn.running_var"] = torch.rand(c, generator=gen) + 0.5
        state[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
    state["fc.weight"] = torch.randn(1008, 2048, generator=gen) * 0.02
    state["fc.bias"] = torch.zeros(1008)
    return state


def write_image_folder(folder, count: int, seed: int, size=(32, 40), shift: float = 0.0) -> list:
    """``count`` random RGB PNG images (noise plus ``shift`` of brightness) in ``folder``; returns their paths."""
    from PIL import Image  # the [fid] extra's: only the fid tests write images

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        pixels = np.clip(rng.normal(127 + shift, 60, size=(*size, 3)), 0, 255).astype(np.uint8)
        paths.append(folder / f"{i:04d}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def randomise_batchnorms(model: nn.Module, seed: int) -> None:
    """Statistics and affine parameters far from the defaults, so a wrong fold shows in the output."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.25)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)


def small_block() -> TVInception:
    torch.manual_seed(0)
    block = TVInception(6, 3, 4, 5, 2, 3, 2)
    randomise_batchnorms(block, seed=1)
    return block.eval()


# ----------------------------------------------------------------------------------------------------------------------
# kernel launches and the aten ops between them

@contextlib.contextmanager
def coarse_interpreter_tiles(size: int = 64):
    """Under the interpreter, every kernel's fixed tile (BLOCK_M, BLOCK_N, BLOCK_K) at ``size`` instead of 32 / 16.

    The interpreter's cost is per program and per loop step, whatever a tile holds, so 64-wide tiles run a block's
    launches several times faster. Block-level tests, which prove the plans and the autograd plumbing, run so; the
    kernel tests (tests/kernels) keep the fine tiles, which put their tile edges, channel blocks and K steps inside
    small problems. No effect on a GPU, where the autotuner picks the tiles."""
    from fastinception.kernels import conv2d_forward, launch, pool2d

    tables = [launch.INTERPRET_CONFIG, launch.INTERPRET_WGRAD_CONFIG, conv2d_forward.INTERPRET_NESTED,
              pool2d.INTERPRET_POOL_CONFIG]
    saved = [dict(t) for t in tables]
    for t in tables:  # in place: the kernel modules hold these dicts themselves
        t.update({k: size for k in t if k.startswith("BLOCK_")})
    try:
        yield
    finally:
        for t, s in zip(tables, saved):
            t.clear()
            t.update(s)


@contextlib.contextmanager
def shuffled_programs(seed: int):
    """Under the interpreter, run each launch's programs in a random order instead of one after the other.

    The interpreter runs a grid's programs in order, so float atomics add up the same way every run and a test of
    bitwise determinism could not fail on the CPU. Remapping every program index through a random permutation of
    the grid (each program still runs exactly once) makes atomics order-dependent, as on a GPU."""
    if not interpreting():
        yield
        return
    from triton.runtime import interpreter

    builder = interpreter.interpreter_builder
    rng = random.Random(seed)
    original_dim, original_idx = builder.set_grid_dim, builder.set_grid_idx
    order = {}

    def set_grid_dim(nx, ny, nz):
        programs = [(x, y, z) for x in range(nx) for y in range(ny) for z in range(nz)]
        order.clear()
        order.update(zip(programs, rng.sample(programs, len(programs))))
        original_dim(nx, ny, nz)

    def set_grid_idx(x, y, z):
        original_idx(*order[(x, y, z)])

    builder.set_grid_dim, builder.set_grid_idx = set_grid_dim, set_grid_idx
    try:
        yield
    finally:
        builder.set_grid_dim, builder.set_grid_idx = original_dim, original_idx


# Ops that only allocate or view memory: anything else recorded in a triton pass is PyTorch compute.
ALLOCATION_AND_VIEW_OPS = {"empty", "empty_strided", "slice", "select", "as_strided", "alias", "detach", "view", "t",
                          "permute"}
# The backward also allocates its gradient buffers like existing tensors.
BACKWARD_BUFFER_OPS = ALLOCATION_AND_VIEW_OPS | {"empty_like", "new_empty"}


class _OpRecorder(TorchDispatchMode):
    """Records aten ops, except while a kernel is being launched (the interpreter moves data with aten ops)."""

    def __init__(self):
        super().__init__()
        self.ops = []
        self.paused = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "fastinception":
            # The mode is off inside this call: run the op's CPU/CUDA kernel directly with the mode back on, to
            # see what the package's own ops run inside.
            with self:
                return func._op_dk(torch._C.DispatchKey.CompositeExplicitAutograd, *args, **(kwargs or {}))
        if not self.paused:
            self.ops.append(str(func.overloadpacket.__name__))
        return func(*args, **(kwargs or {}))


class LaunchLog:
    def __init__(self):
        self.launches = 0
        self.ops = []


@contextlib.contextmanager
def record_launches():
    """Yield a LaunchLog counting kernel launches (interpreter or CUDA) and the aten ops run outside them."""
    log = LaunchLog()
    recorder = _OpRecorder()
    if interpreting():
        from triton.runtime import interpreter

        original = interpreter.GridExecutor.__call__

        def counted(self, *args, **kwargs):
            log.launches += 1
            recorder.paused += 1
            try:
                return original(self, *args, **kwargs)
            finally:
                recorder.paused -= 1

        interpreter.GridExecutor.__call__ = counted
        try:
            with recorder:
                yield log
        finally:
            interpreter.GridExecutor.__call__ = original
    else:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            with recorder:
                yield log
            torch.cuda.synchronize()
        log.launches = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    log.ops = recorder.ops


# ----------------------------------------------------------------------------------------------------------------------
# hand-written copies of the later block types: each one's conv shapes as its source's __init__ states them, and its
# forward as its source writes it, on (weight, bias) pairs with BatchNorm folded. Written from the sources, not from
# fastinception.blocks.programs, so that a wrong program fails against them.

def _c(x, p, stride=1, padding=0):
    return F.relu(F.conv2d(x, p[0], p[1], stride=stride, padding=padding))


class HandWritten:
    """``shapes(cin, *args)``: the (out, in, kh, kw) of every conv in definition order; ``forward(x, ps)``."""

    def __init__(self, shapes, forward):
        self.shapes, self.forward = shapes, forward


def _tv_a_shapes(cin, pool_features):
    return [(64, cin, 1, 1), (48, cin, 1, 1), (64, 48, 5, 5), (64, cin, 1, 1), (96, 64, 3, 3), (96, 96, 3, 3),
            (pool_features, cin, 1, 1)]


def _tv_a_forward(count_include_pad):
    def forward(x, p):
        b1 = _c(x, p[0])
        b5 = _c(_c(x, p[1]), p[2], padding=2)
        b3 = _c(_c(_c(x, p[3]), p[4], padding=1), p[5], padding=1)
        bp = _c(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=count_include_pad), p[6])
        return torch.cat([b1, b5, b3, bp], 1)
    return forward


def _tv_b_forward(x, p):
    b3 = _c(x, p[0], stride=2)
    bd = _c(_c(_c(x, p[1]), p[2], padding=1), p[3], stride=2)
    return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2)], 1)


def _tv_c_shapes(cin, c7):
    return [(192, cin, 1, 1), (c7, cin, 1, 1), (c7, c7, 1, 7), (192, c7, 7, 1), (c7, cin, 1, 1), (c7, c7, 7, 1),
            (c7, c7, 1, 7), (c7, c7, 7, 1), (192, c7, 1, 7), (192, cin, 1, 1)]


def _tv_c_forward(count_include_pad):
    def forward(x, p):
        b1 = _c(x, p[0])
        b7 = _c(_c(_c(x, p[1]), p[2], padding=(0, 3)), p[3], padding=(3, 0))
        bd = _c(x, p[4])
        for q, pad in zip(p[5:9], ((3, 0), (0, 3), (3, 0), (0, 3))):
            bd = _c(bd, q, padding=pad)
        bp = _c(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=count_include_pad), p[9])
        return torch.cat([b1, b7, bd, bp], 1)
    return forward


def _tv_d_forward(x, p):
    b3 = _c(_c(x, p[0]), p[1], stride=2)
    b7 = _c(_c(_c(_c(x, p[2]), p[3], padding=(0, 3)), p[4], padding=(3, 0)), p[5], stride=2)
    return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


def _tv_e_shapes(cin):
    return [(320, cin, 1, 1), (384, cin, 1, 1), (384, 384, 1, 3), (384, 384, 3, 1), (448, cin, 1, 1),
            (384, 448, 3, 3), (384, 384, 1, 3), (384, 384, 3, 1), (192, cin, 1, 1)]


def _tv_e_forward(pool):
    def forward(x, p):
        b1 = _c(x, p[0])
        b3 = _c(x, p[1])
        b3 = torch.cat([_c(b3, p[2], padding=(0, 1)), _c(b3, p[3], padding=(1, 0))], 1)
        bd = _c(_c(x, p[4]), p[5], padding=1)
        bd = torch.cat([_c(bd, p[6], padding=(0, 1)), _c(bd, p[7], padding=(1, 0))], 1)
        return torch.cat([b1, b3, bd, _c(pool(x), p[8])], 1)
    return forward


def _bn_block_shapes(cin, c1, c3, d3, pool_proj):
    return [(c1, cin, 1, 1), (c3[0], cin, 1, 1), (c3[1], c3[0], 3, 3), (d3[0], cin, 1, 1), (d3[1], d3[0], 3, 3),
            (d3[1], d3[1], 3, 3), (pool_proj, cin, 1, 1)]


def _bn_block_forward(pool):
    def forward(x, p):
        b3 = _c(_c(x, p[1]), p[2], padding=1)
        bd = _c(_c(_c(x, p[3]), p[4], padding=1), p[5], padding=1)
        return torch.cat([_c(x, p[0]), b3, bd, _c(pool(x), p[6])], 1)
    return forward


def _bn_reduction_forward(x, p):
    b3 = _c(_c(x, p[0]), p[1], stride=2, padding=1)
    bd = _c(_c(_c(x, p[2]), p[3], padding=1), p[4], stride=2, padding=1)
    return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2, ceil_mode=True)], 1)


def _block35_forward(x, p):
    b0 = _c(x, p[0])
    b1 = _c(_c(x, p[1]), p[2], padding=1)
    b2 = _c(_c(_c(x, p[3]), p[4], padding=1), p[5], padding=1)
    out = F.conv2d(torch.cat([b0, b1, b2], 1), p[6][0], p[6][1])
    return F.relu(out * 0.17 + x)


_avg_exclude = functools.partial(F.avg_pool2d, kernel_size=3, stride=1, padding=1, count_include_pad=False)


# timm's residual scales: Block35(scale=0.17), Block17(scale=0.10), Block8(scale=0.20), the last Block8() at its
# default 1.0 and no_relu=True
TIMM_SCALES = {"Block35": 0.17, "Block17": 0.10, "Block8": 0.20, "Block8/last": 1.0}


def _timm_branch(module, x):
    """A branch as timm runs it, its pools written out: nn.AvgPool2d(3, 1, 1, count_include_pad=False) before a
    branch3's conv, nn.MaxPool2d(3, stride=2) as a whole branch."""
    if isinstance(module, torch.nn.MaxPool2d):
        return _max_s2(x)
    if isinstance(module, torch.nn.Sequential) and isinstance(module[0], torch.nn.AvgPool2d):
        return module[1](F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
    return module(x)


def timm_forward(block, x, name=None):
    """What timm's block of type ``name`` (``block.program.name`` when None) computes, with the block's units (conv,
    BatchNorm, ReLU) run one by one."""
    name = name or block.program.name
    if name == "Mixed3a":
        return torch.cat([_max_s2(x), block.conv(x)], 1)
    if name == "Mixed5a":
        return torch.cat([block.conv(x), _max_s2(x)], 1)
    if name == "InceptionC":
        x1 = block.branch1_0(x)
        x2 = block.branch2_2(block.branch2_1(block.branch2_0(x)))
        return torch.cat([block.branch0(x), block.branch1_1a(x1), block.branch1_1b(x1), block.branch2_3a(x2),
                          block.branch2_3b(x2), _timm_branch(block.branch3, x)], 1)
    out = torch.cat([_timm_branch(m, x) for n, m in block.named_children() if n.startswith("branch")], 1)
    if name not in TIMM_SCALES:
        return out
    out = block.conv2d(out) * TIMM_SCALES[name] + x
    return out if name == "Block8/last" else F.relu(out)



class TimmShaped(nn.Module):
    """A module shaped as timm's block of its type (the children of a fused ``TimmBlock``, copied, and timm's
    ``scale``) whose forward is timm's: what ``convert`` meets in a timm model, without timm."""

    kind = ""

    def __init__(self, block):
        super().__init__()
        for name, sub in block.named_children():
            self.add_module(name, copy.deepcopy(sub))
        if self.kind in TIMM_SCALES:
            self.scale = TIMM_SCALES[self.kind]

    @classmethod
    def of(cls, block):
        """An instance of a subclass named as timm's class (``Block8`` for both Block8 types)."""
        kind = block.program.name
        return type(kind.partition("/")[0], (cls,), {"kind": kind})(block)

    def forward(self, x):
        return timm_forward(self, x, self.kind)


# timm 1.0.31's inception_v4.py and inception_resnet_v2.py (convs unpadded unless stated, average pools excluding
# the padding)
def _max_s2(x):
    return F.max_pool2d(x, 3, stride=2)


def _mixed_3a_forward(x, p):
    return torch.cat([_max_s2(x), _c(x, p[0], stride=2)], 1)


def _mixed_4a_forward(x, p):
    b0 = _c(_c(x, p[0]), p[1])
    b1 = _c(_c(_c(_c(x, p[2]), p[3], padding=(0, 3)), p[4], padding=(3, 0)), p[5])
    return torch.cat([b0, b1], 1)


def _mixed_5a_forward(x, p):
    return torch.cat([_c(x, p[0], stride=2), _max_s2(x)], 1)


def _v4_a_shapes(cin):
    return [(96, cin, 1, 1), (64, cin, 1, 1), (96, 64, 3, 3), (64, cin, 1, 1), (96, 64, 3, 3), (96, 96, 3, 3),
            (96, cin, 1, 1)]


def _v4_a_forward(x, p):
    b1 = _c(_c(x, p[1]), p[2], padding=1)
    b2 = _c(_c(_c(x, p[3]), p[4], padding=1), p[5], padding=1)
    return torch.cat([_c(x, p[0]), b1, b2, _c(_avg_exclude(x), p[6])], 1)


def _v4_reduction_a_forward(x, p):
    b1 = _c(_c(_c(x, p[1]), p[2], padding=1), p[3], stride=2)
    return torch.cat([_c(x, p[0], stride=2), b1, _max_s2(x)], 1)


def _v4_b_shapes(cin):
    return [(384, cin, 1, 1), (192, cin, 1, 1), (224, 192, 1, 7), (256, 224, 7, 1), (192, cin, 1, 1),
            (192, 192, 7, 1), (224, 192, 1, 7), (224, 224, 7, 1), (256, 224, 1, 7), (128, cin, 1, 1)]


def _v4_b_forward(x, p):
    b1 = _c(_c(_c(x, p[1]), p[2], padding=(0, 3)), p[3], padding=(3, 0))
    b2 = _c(x, p[4])
    for q, pad in zip(p[5:9], ((3, 0), (0, 3), (3, 0), (0, 3))):
        b2 = _c(b2, q, padding=pad)
    return torch.cat([_c(x, p[0]), b1, b2, _c(_avg_exclude(x), p[9])], 1)


def _v4_reduction_b_forward(x, p):
    b0 = _c(_c(x, p[0]), p[1], stride=2)
    b1 = _c(_c(_c(_c(x, p[2]), p[3], padding=(0, 3)), p[4], padding=(3, 0)), p[5], stride=2)
    return torch.cat([b0, b1, _max_s2(x)], 1)


def _v4_c_shapes(cin):
    return [(256, cin, 1, 1), (384, cin, 1, 1), (256, 384, 1, 3), (256, 384, 3, 1), (384, cin, 1, 1),
            (448, 384, 3, 1), (512, 448, 1, 3), (256, 512, 1, 3), (256, 512, 3, 1), (256, cin, 1, 1)]


def _v4_c_forward(x, p):
    x1 = _c(x, p[1])
    x1 = torch.cat([_c(x1, p[2], padding=(0, 1)), _c(x1, p[3], padding=(1, 0))], 1)
    x2 = _c(_c(_c(x, p[4]), p[5], padding=(1, 0)), p[6], padding=(0, 1))
    x2 = torch.cat([_c(x2, p[7], padding=(0, 1)), _c(x2, p[8], padding=(1, 0))], 1)
    return torch.cat([_c(x, p[0]), x1, x2, _c(_avg_exclude(x), p[9])], 1)


def _irv2_mixed_5b_shapes(cin):
    return [(96, cin, 1, 1), (48, cin, 1, 1), (64, 48, 5, 5), (64, cin, 1, 1), (96, 64, 3, 3), (96, 96, 3, 3),
            (64, cin, 1, 1)]


def _irv2_mixed_5b_forward(x, p):
    b1 = _c(_c(x, p[1]), p[2], padding=2)
    b2 = _c(_c(_c(x, p[3]), p[4], padding=1), p[5], padding=1)
    return torch.cat([_c(x, p[0]), b1, b2, _c(_avg_exclude(x), p[6])], 1)


def _irv2_mixed_6a_forward(x, p):
    b1 = _c(_c(_c(x, p[1]), p[2], padding=1), p[3], stride=2)
    return torch.cat([_c(x, p[0], stride=2), b1, _max_s2(x)], 1)


def _irv2_mixed_7a_forward(x, p):
    b0 = _c(_c(x, p[0]), p[1], stride=2)
    b1 = _c(_c(x, p[2]), p[3], stride=2)
    b2 = _c(_c(_c(x, p[4]), p[5], padding=1), p[6], stride=2)
    return torch.cat([b0, b1, b2, _max_s2(x)], 1)


def _block17_forward(x, p):
    b1 = _c(_c(_c(x, p[1]), p[2], padding=(0, 3)), p[3], padding=(3, 0))
    out = F.conv2d(torch.cat([_c(x, p[0]), b1], 1), p[4][0], p[4][1])
    return F.relu(out * 0.10 + x)


def _block8_forward(scale, relu):
    def forward(x, p):
        b1 = _c(_c(_c(x, p[1]), p[2], padding=(0, 1)), p[3], padding=(1, 0))
        out = F.conv2d(torch.cat([_c(x, p[0]), b1], 1), p[4][0], p[4][1]) * scale + x
        return F.relu(out) if relu else out
    return forward


def _block8_shapes(cin):
    return [(192, cin, 1, 1), (192, cin, 1, 1), (224, 192, 1, 3), (256, 224, 3, 1), (cin, 448, 1, 1)]

# name -> (hand-written copy, constructor arguments, input side, the program's catalogue entry as (table, key) or a
# constructor call)
HAND_WRITTEN = {
    "tv_A": (HandWritten(_tv_a_shapes, _tv_a_forward(True)), (40, 12), 7),
    "fid_A": (HandWritten(_tv_a_shapes, _tv_a_forward(False)), (40, 12), 7),
    "tv_B": (HandWritten(lambda cin: [(384, cin, 3, 3), (64, cin, 1, 1), (96, 64, 3, 3), (96, 96, 3, 3)],
                         _tv_b_forward), (24,), 9),
    "tv_C": (HandWritten(_tv_c_shapes, _tv_c_forward(True)), (48, 10), 8),
    "fid_C": (HandWritten(_tv_c_shapes, _tv_c_forward(False)), (48, 10), 8),
    "tv_D": (HandWritten(lambda cin: [(192, cin, 1, 1), (320, 192, 3, 3), (192, cin, 1, 1), (192, 192, 1, 7),
                                      (192, 192, 7, 1), (192, 192, 3, 3)], _tv_d_forward), (32,), 9),
    "tv_E": (HandWritten(_tv_e_shapes, _tv_e_forward(
        functools.partial(F.avg_pool2d, kernel_size=3, stride=1, padding=1))), (64,), 5),
    "fid_E_1": (HandWritten(_tv_e_shapes, _tv_e_forward(_avg_exclude)), (64,), 5),
    "fid_E_2": (HandWritten(_tv_e_shapes, _tv_e_forward(
        functools.partial(F.max_pool2d, kernel_size=3, stride=1, padding=1))), (64,), 5),
    "bn_block": (HandWritten(_bn_block_shapes, _bn_block_forward(
        functools.partial(F.avg_pool2d, kernel_size=3, stride=1, padding=1, ceil_mode=True))),
        (24, 8, (6, 10), (5, 7), 4), 7),
    "bn_block_max": (HandWritten(_bn_block_shapes, _bn_block_forward(
        functools.partial(F.max_pool2d, kernel_size=3, stride=1, padding=1, ceil_mode=True))),
        (24, 8, (6, 10), (5, 7), 4), 7),
    "bn_reduction": (HandWritten(lambda cin, c3, d3: [(c3[0], cin, 1, 1), (c3[1], c3[0], 3, 3), (d3[0], cin, 1, 1),
                                                      (d3[1], d3[0], 3, 3), (d3[1], d3[1], 3, 3)],
                                 _bn_reduction_forward), (24, (8, 12), (6, 10)), 8),
    "resnet_block35": (HandWritten(lambda cin: [(32, cin, 1, 1), (32, cin, 1, 1), (32, 32, 3, 3), (32, cin, 1, 1),
                                                (48, 32, 3, 3), (64, 48, 3, 3), (cin, 128, 1, 1)],
                                   _block35_forward), (20,), 6),
    "v4_mixed_3a": (HandWritten(lambda cin: [(96, cin, 3, 3)], _mixed_3a_forward), (12,), 7),
    "v4_mixed_4a": (HandWritten(lambda cin: [(64, cin, 1, 1), (96, 64, 3, 3), (64, cin, 1, 1), (64, 64, 1, 7),
                                             (64, 64, 7, 1), (96, 64, 3, 3)], _mixed_4a_forward), (16,), 6),
    "v4_mixed_5a": (HandWritten(lambda cin: [(192, cin, 3, 3)], _mixed_5a_forward), (12,), 8),
    "v4_A": (HandWritten(_v4_a_shapes, _v4_a_forward), (20,), 5),
    "v4_reduction_A": (HandWritten(lambda cin: [(384, cin, 3, 3), (192, cin, 1, 1), (224, 192, 3, 3),
                                                (256, 224, 3, 3)], _v4_reduction_a_forward), (12,), 7),
    "v4_B": (HandWritten(_v4_b_shapes, _v4_b_forward), (20,), 8),
    "v4_reduction_B": (HandWritten(lambda cin: [(192, cin, 1, 1), (192, 192, 3, 3), (256, cin, 1, 1),
                                                (256, 256, 1, 7), (320, 256, 7, 1), (320, 320, 3, 3)],
                                   _v4_reduction_b_forward), (12,), 9),
    "v4_C": (HandWritten(_v4_c_shapes, _v4_c_forward), (16,), 4),
    "resnet_mixed_5b": (HandWritten(_irv2_mixed_5b_shapes, _irv2_mixed_5b_forward), (16,), 5),
    "resnet_mixed_6a": (HandWritten(lambda cin: [(384, cin, 3, 3), (256, cin, 1, 1), (256, 256, 3, 3),
                                                 (384, 256, 3, 3)], _irv2_mixed_6a_forward), (12,), 7),
    "resnet_block17": (HandWritten(lambda cin: [(192, cin, 1, 1), (128, cin, 1, 1), (160, 128, 1, 7),
                                                (192, 160, 7, 1), (cin, 384, 1, 1)], _block17_forward), (20,), 5),
    "resnet_mixed_7a": (HandWritten(lambda cin: [(256, cin, 1, 1), (384, 256, 3, 3), (256, cin, 1, 1),
                                                 (288, 256, 3, 3), (256, cin, 1, 1), (288, 256, 3, 3),
                                                 (320, 288, 3, 3)], _irv2_mixed_7a_forward), (16,), 9),
    "resnet_block8": (HandWritten(_block8_shapes, _block8_forward(0.2, True)), (24,), 4),
    "resnet_block8_last": (HandWritten(_block8_shapes, _block8_forward(1.0, False)), (24,), 4),
}


def hand_written_weights(shapes, dtype=torch.float64, seed=0):
    """Random (weight, bias) pairs of these shapes, scaled so activations stay of order one through the chains."""
    gen = torch.Generator().manual_seed(seed)
    pairs = []
    for out, cin, kh, kw in shapes:
        w = torch.randn((out, cin, kh, kw), generator=gen, dtype=torch.float64) / (cin * kh * kw) ** 0.5
        b = torch.randn((out,), generator=gen, dtype=torch.float64) * 0.5
        pairs.append((w.to(dtype), b.to(dtype)))
    return pairs


# ----------------------------------------------------------------------------------------------------------------------
# offline compiles

# The facts of the inspect tests' offline compiles (``inspect --save-facts``), keyed by Triton's cache key: a test
# reads the facts of a compile that would be the same here (the same kernel sources, specialization, options, target,
# Triton and ptxas) instead of making it again, and compiles whatever the file lacks. After changing a kernel, write
# it anew (one process: the tests merge into one file; removing it first drops the facts of kernels gone):
#     rm tests/inspect/compile-facts-sm90.json
#     FASTINCEPTION_SAVE_FACTS=1 python -m pytest -q -m "slow or not slow" tests/inspect
COMPILE_FACTS = pathlib.Path(__file__).parent / "inspect" / "compile-facts-sm90.json"


def compile_facts_args() -> list[str]:
    """The inspect options that read COMPILE_FACTS, and with FASTINCEPTION_SAVE_FACTS=1 merge into it."""
    args = ["--facts", str(COMPILE_FACTS)] if COMPILE_FACTS.exists() else []
    if os.environ.get("FASTINCEPTION_SAVE_FACTS") == "1":
        args += ["--save-facts", str(COMPILE_FACTS)]
    return args


def inspect_command(*args, cwd, facts=True) -> subprocess.CompletedProcess:
    """``python -m fastinception inspect ARGS`` in a subprocess without TRITON_INTERPRET: the test session runs
    Triton's interpreter, and Triton reads that variable once, when first imported. ``facts``: with
    COMPILE_FACTS (``compile_facts_args``)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    extra = compile_facts_args() if facts else []
    return subprocess.run([sys.executable, "-m", "fastinception", "inspect", *args, *extra], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=1800)


# ----------------------------------------------------------------------------------------------------------------------
# data files of the train command

def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An IDX file: 0x00 0x00, type code, number of dims, big-endian uint32 sizes, big-endian data."""
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + big_endian.tobytes()


def write(path, data: bytes, gz: bool = False):
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def write_fashion_mnist(directory, n_train=6, n_test=4, gz=False):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), 0x08),
        "train-labels-idx1-ubyte": (rng.integers(0, 10, n_train, dtype=np.uint8), 0x08),
        "t10k-images-idx3-ubyte": (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), 0x08),
        "t10k-labels-idx1-ubyte": (rng.integers(0, 10, n_test, dtype=np.uint8), 0x08),
    }
    for name, (array, code) in arrays.items():
        write(directory / name, idx_bytes(array, code), gz)
    return arrays


# ----------------------------------------------------------------------------------------------------------------------
# block programs

# the programs of every block type the catalogue has, at small sizes: (program, input side)
PROGRAM_CASES = {
    "v1": (P.googlenet_block(10, 4, (6, 8), (3, 5), 7), 6),
    "v3_A": (P.inception_v3_a(24, 8), 5),
    "fid_A": (P.inception_v3_a(24, 8, P.AVG_3X3_EXCLUDE_PAD), 5),
    "v3_B": (P.inception_v3_b(16), 9),
    "v3_C": (P.inception_v3_c(24, 6, P.AVG_3X3_EXCLUDE_PAD), 7),
    "v3_D": (P.inception_v3_d(16), 9),
    "v3_E": (P.inception_v3_e(16), 4),
    "fid_E_2": (P.inception_v3_e(16, P.MAX_3X3), 4),
    "bn_block": (P.bn_inception_block(12, 4, (5, 6), (3, 7), 2), 6),
    "bn_reduction": (P.bn_inception_reduction(12, (5, 6), (3, 7)), 8),
    "v4_C": (P.inception_v4_c(16), 4),
    "resnet_block8": (P.inception_resnet_block8(24, relu=False), 4),
    "v4_mixed_3a": (P.inception_v4_mixed_3a(8), 7),
    "v4_mixed_4a": (P.inception_v4_mixed_4a(12), 6),
    "v4_B": (P.inception_v4_b(16), 5),
    "v4_reduction_B": (P.inception_v4_reduction_b(12), 7),
    "resnet_block17": (P.inception_resnet_block17(16), 5),
    "resnet_mixed_7a": (P.inception_resnet_mixed_7a(12), 7),
}


def shrunk(program, divisor: int):
    """``program`` with every conv's output channels divided by ``divisor`` (at least 2): the same structure at a size
    the Triton interpreter runs quickly."""
    def conv(c):
        return dataclasses.replace(c, out_channels=max(2, c.out_channels // divisor))

    def op(o):
        return conv(o) if isinstance(o, Conv) else o

    branches = tuple(Branch(tuple(op(o) for o in b.ops), tuple(conv(c) for c in b.split)) for b in program.branches)
    return dataclasses.replace(program, branches=branches)
