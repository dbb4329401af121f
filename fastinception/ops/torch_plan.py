"""The fused plan in plain PyTorch ops: the CPU path and the fallback.

One convolution with the concatenated 1x1 weights computes p1 and both reductions; each branch result is
written into its channel slice of one preallocated output. Everything that reads ``x`` runs before the first write
into ``out``, so an ``out`` that shares memory with ``x`` still receives ``block(x)``. Autograd comes from PyTorch.
"""
import torch
import torch.nn.functional as F

from ..params import BlockParams
from ..spec import InceptionSpec


def inception_torch(x: torch.Tensor, p: BlockParams, spec: InceptionSpec, out: torch.Tensor) -> torch.Tensor:
    w_stem = torch.cat((p.w1, p.w2a, p.w3a))
    b_stem = torch.cat((p.b1, p.b2a, p.b3a))
    stem = F.conv2d(x, w_stem, b_stem).relu_()
    pooled = F.conv2d(F.max_pool2d(x, 3, stride=1, padding=1), p.w4, p.b4).relu_()
    c1, c2a = spec.c1, spec.c2a
    t2 = stem[:, c1 : c1 + c2a]
    t3 = stem[:, c1 + c2a :]
    out[:, spec.p1] = stem[:, :c1]
    out[:, spec.p2] = F.conv2d(t2, p.w2b, p.b2b, padding=spec.k2 // 2).relu_()
    out[:, spec.p3] = F.conv2d(t3, p.w3b, p.b3b, padding=spec.k3 // 2).relu_()
    out[:, spec.p4] = pooled
    return out
