"""The FID feature extractor (pytorch-fid's ``InceptionV3`` graph) on fused blocks.

torchvision's Inception-v3 stem, the FID network's eleven Inception blocks as ``ProgramBlock`` (their pools as
pytorch-fid patches them: averages without the padding in A, C and the first E, a max in the last E), BatchNorm
folded into every conv. Preprocessing as pytorch-fid's: float images in [0, 1], bilinear resize to 299x299
(align_corners=False), then 2x - 1. Feature taps as pytorch-fid defines them: 64 (after the first max-pool), 192
(after the second), 768 (after Mixed_6e) and 2048 (after the global average pool), each averaged over its pixels.

``backend``: ``"auto"`` (the Triton kernels for CUDA images, the fused PyTorch plan elsewhere), ``"torch"`` or
``"triton"``. On the triton backend every conv and pool after the resize runs on the kernels, whose tiling does not
depend on the batch, so within one process an image's features are bitwise the same in any batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.program import BlockProgram, Branch, Conv, Pool
from ..blocks.programs import FID_INCEPTION_BLOCKS, V3_BLOCK_KINDS, V3_STEM, V3_UNIT_NAMES
from ..functional import check_backend, resolve_backend
from ..ops.program_plan import program_output
from ..ops.program_triton_function import program_triton
from ..program_block import ProgramBlock, run_checked
from .weights import folded_units, read_state_dict

DIMS = (64, 192, 768, 2048)
INPUT_SIZE = 299
STEM_POOL = Pool("max", 3, 2, 0)


def _one_op(op: Conv | Pool, in_channels: int) -> BlockProgram:
    return BlockProgram(in_channels, (Branch((op,)),))


# the stem's convs and pools and the pixel averages at each tap as one-op programs, for the triton backend: built
# here, not per call, so torch.compile reads each as a constant (a program is validated and encoded when built)
STEM_PROGRAMS = {name: _one_op(Conv(out, k, stride, padding), cin)
                 for name, (out, cin, k, stride, padding) in V3_STEM.items()}
STEM_POOLS = {channels: _one_op(STEM_POOL, channels) for channels in (64, 192)}
TAP_SIZES = {64: 73, 192: 35, 768: 17, 2048: 8}  # every image is resized to 299x299 first
PIXEL_AVERAGES = {dims: _one_op(Pool("avg", TAP_SIZES[dims]), dims) for dims in DIMS}


class FIDInceptionV3(nn.Module):
    """pytorch-fid's feature network with BatchNorm folded; ``features(images, dims)`` -> (N, dims) float32."""

    def __init__(self, units: dict, backend: str = "auto"):
        super().__init__()
        self._backend = check_backend(backend)
        for name, (out, cin, k, stride, padding) in V3_STEM.items():
            conv = nn.Conv2d(cin, out, k, stride, padding)
            with torch.no_grad():
                conv.weight.copy_(units[name][0])
                conv.bias.copy_(units[name][1])
            self.add_module(name, conv)
        for block, kind in V3_BLOCK_KINDS.items():
            program = FID_INCEPTION_BLOCKS[block][0]
            pairs = [units[f"{block}.{unit}"] for unit in V3_UNIT_NAMES[kind]]
            self.add_module(block, ProgramBlock.from_weights(program, pairs, backend=backend))
        self.eval()

    @classmethod
    def from_file(cls, path, backend: str = "auto") -> FIDInceptionV3:
        """From pytorch-fid's weights file (``weights.FILE_NAME``) at ``path``."""
        return cls(folded_units(read_state_dict(path), str(path)), backend)

    @classmethod
    def from_state_dict(cls, state: dict, backend: str = "auto") -> FIDInceptionV3:
        return cls(folded_units(state), backend)

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        """The backend of the whole network, blocks included."""
        self._backend = check_backend(name)
        for block in V3_BLOCK_KINDS:
            getattr(self, block).backend = name

    def _triton(self, x: torch.Tensor) -> bool:
        return resolve_backend(self.backend, x) == "triton"

    def _stem_conv(self, name: str, x: torch.Tensor) -> torch.Tensor:
        conv = getattr(self, name)
        if self._triton(x):
            return run_checked(STEM_PROGRAMS[name], [(conv.weight, conv.bias)], x, backend="triton")
        return F.relu(conv(x))

    def _pool(self, x: torch.Tensor, program: BlockProgram) -> torch.Tensor:
        if self._triton(x):
            return program_triton(program, (), x, program_output(program, x, None))
        pool = program.branches[0].ops[0]
        if pool.kind == "max":
            return F.max_pool2d(x, pool.kernel, pool.stride, pool.padding)
        # the one average here is over all pixels, which pytorch-fid computes this way
        return F.adaptive_avg_pool2d(x, output_size=(1, 1))

    def taps(self, images: torch.Tensor, dims: int = 2048) -> torch.Tensor:
        """The network's output at the tap of ``dims`` features, before pixel averaging: (N, dims, h, w)."""
        if dims not in DIMS:
            raise ValueError(f"dims must be one of {DIMS}, got {dims!r}")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) images, got {tuple(images.shape)}")
        x = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
            x = self._stem_conv(name, x)
        x = self._pool(x, STEM_POOLS[64])
        if dims == 64:
            return x
        x = self._pool(self._stem_conv("Conv2d_4a_3x3", self._stem_conv("Conv2d_3b_1x1", x)), STEM_POOLS[192])
        if dims == 192:
            return x
        for block in list(V3_BLOCK_KINDS)[:8]:
            x = getattr(self, block)(x)
        if dims == 768:
            return x
        for block in list(V3_BLOCK_KINDS)[8:]:
            x = getattr(self, block)(x)
        return x

    def features(self, images: torch.Tensor, dims: int = 2048) -> torch.Tensor:
        """(N, dims) features of images in [0, 1], averaged over pixels as pytorch-fid averages them (on the triton
        backend by the pool kernel, which sums each image's pixels in one fixed order whatever the batch)."""
        x = self.taps(images, dims)
        return self._pool(x, PIXEL_AVERAGES[dims]).flatten(1)

    def forward(self, images: torch.Tensor, dims: int = 2048) -> torch.Tensor:
        return self.features(images, dims)

