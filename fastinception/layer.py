"""``FastInception``: the drop-in layer with the reference block's constructor and state_dict."""
from __future__ import annotations

import torch
from torch import nn

from .blocks.params import BlockParams
from .blocks.spec import InceptionSpec
from .blocks.structure import NotConvertible, d2l_spec_of
from .functional import check_backend, inception
from .reference.d2l import build_branches


class FastInception(nn.Module):
    """An Inception block computed by fused kernels; parameters and state_dict as the reference ``Inception``.

    ``backend``: ``"auto"`` (default: triton for CUDA inputs, torch elsewhere), ``"triton"`` for the Triton
    kernels (on CPU tensors only under ``TRITON_INTERPRET=1``), or ``"torch"`` for the fused PyTorch path.
    ``deterministic_backward`` (attribute, default True): set it to False to let the triton backward use float
    atomics in its weight-gradient reductions. ``branch_mode`` (attribute, default ``"streams"``): how the
    triton backend launches the two spatial branches, ``"streams"``, ``"serial"`` or ``"grouped"`` (see
    ``fastinception.inception``).
    """

    deterministic_backward = True
    branch_mode = "streams"

    def __init__(self, in_channels, c1, c2, c3, c4, *, k2=3, k3=5, backend="auto", device=None, dtype=None):
        super().__init__()
        self.spec = InceptionSpec.from_args(in_channels, c1, c2, c3, c4, k2=k2, k3=k3)
        self.backend = check_backend(backend)
        build_branches(self, self.spec, device, dtype)

    @classmethod
    def from_module(cls, block: nn.Module, *, backend: str = "auto") -> FastInception:
        """A FastInception with the weights, device, dtype and train/eval mode of a reference-shaped block."""
        try:
            spec = d2l_spec_of(block)
        except NotConvertible as reason:
            raise TypeError(f"{type(block).__name__} is not a d2l-shaped Inception block: {reason}") from None
        fast = cls.from_state_dict(spec, block.state_dict(), backend=backend)
        for name, p in block.named_parameters():  # frozen parameters stay frozen
            fast.get_parameter(name).requires_grad_(p.requires_grad)
        return fast.train(block.training)

    @classmethod
    def from_state_dict(cls, spec: InceptionSpec, state: dict, *, backend: str = "auto") -> FastInception:
        """A block of ``spec`` holding copies of ``state`` (the reference's parameter names), on the device, in the
        dtype and in the memory format of its tensors (a model moved to channels_last keeps channels-last weights,
        which the kernels and oneDNN read without a reorder). Built on the meta device and then filled, so no
        initial weights are drawn: making one leaves the random number generators where they were."""
        weight = state["p1_1.weight"]
        fast = cls(*spec.args(), k2=spec.k2, k3=spec.k3, backend=backend, device="meta", dtype=weight.dtype)
        fast = fast.to_empty(device=weight.device)
        fast.load_state_dict(state)  # checks names and shapes
        with torch.no_grad():
            for name, p in fast.named_parameters():
                p.data = state[name].detach().clone(memory_format=torch.preserve_format)
        return fast

    def params(self) -> BlockParams:
        return BlockParams.of(self)

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return inception(
            x, self.params(), self.spec, backend=self.backend, out=out,
            deterministic=self.deterministic_backward, branches=self.branch_mode,
        )

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"{s.in_channels}, {s.c1}, ({s.c2a}, {s.c2b}), ({s.c3a}, {s.c3b}), {s.c4}, "
            f"k2={s.k2}, k3={s.k3}, backend={self.backend!r}"
        )
