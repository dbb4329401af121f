"""What the benchmarks compare: ways to run a reference-shaped model (one Inception block, or a whole network).

Each contender builds, from the reference model (already in the benchmark's dtype and device), the module it
times, and names the memory format its input arrives in. FastInception contenders convert a copy of the
reference (blocks, GoogLeNet), or load its weights into fastinception's own model (Inception-v3, the FID
extractor, Inception-v4, Inception-ResNet-v2), so every contender computes with the same weights.
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from ..convert import convert
from ..fid.network import FIDInceptionV3
from ..kernels.common import require_launchable
from ..models import InceptionResnetV2, InceptionV4, inception_v3
from ..reference.inception_v3 import FIDFeatures, Inception3

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str
    label: str
    # (reference model, layout) -> the module to call; its parameters carry the reference's names.
    build: Callable[[nn.Module, str], nn.Module]
    # A fixed input layout, or None for the run's layout (--layout).
    layout: str | None = None
    compiled: bool = False
    # One of FastInception's own backends: the first that passes its check is the one speed-ups refer to.
    fastinception: bool = False

    def layout_for(self, run_layout: str) -> str:
        return self.layout or run_layout


def _in_layout(model: nn.Module, layout: str) -> nn.Module:
    return copy.deepcopy(model).to(memory_format=LAYOUTS[layout])


def _compiled(mode: str | None):
    def build(model: nn.Module, layout: str) -> nn.Module:
        # Static shapes: each batch size gets kernels specialised for it, as a deployed model would.
        return torch.compile(_in_layout(model, layout), mode=mode, dynamic=False)

    return build


class BackendUnavailable(RuntimeError):
    """A contender's backend cannot run on this machine."""


# Only these, raised by ``Contender.build``, mean "not on this machine"; anything else is a bug.
UNAVAILABLE = (ImportError, BackendUnavailable)


def _require_triton(model: nn.Module) -> None:
    """Raise one of UNAVAILABLE when the Triton kernels cannot run on ``model``'s device."""
    # Imported here, when a triton contender is built: importing triton fixes its interpreter mode for the process.
    import triton  # noqa: F401  (ImportError: not installed)

    try:
        require_launchable(next(model.parameters()))
    except RuntimeError as e:  # a CPU tensor without the interpreter, or another device
        raise BackendUnavailable(str(e)) from e


def _fast(backend: str):
    def build(model: nn.Module, layout: str) -> nn.Module:
        if backend == "triton":
            _require_triton(model)
        if isinstance(model, (Inception3, FIDFeatures, InceptionV4, InceptionResnetV2)):
            return _fast_network(model, backend).to(memory_format=LAYOUTS[layout])
        return convert(_in_layout(model, layout), backend=backend)

    return build


def _fast_network(model: nn.Module, backend: str) -> nn.Module:
    """fastinception's own model with the weights of a reference Inception-v3 or FID extractor: ``inception_v3()``
    (the same parameter names, so gradients compare by name) or ``FIDInceptionV3`` (BatchNorm folded); of timm's
    networks with unfused blocks (``reference.timm``), the fused network of the same type."""
    weight = next(model.parameters())
    if isinstance(model, FIDFeatures):
        fast = FIDInceptionV3.from_state_dict(model.net.state_dict(), backend=backend)
    elif isinstance(model, (InceptionV4, InceptionResnetV2)):
        fast = type(model)(model.num_classes, backend=backend)
        fast.load_state_dict(model.state_dict())
    else:
        fast = inception_v3(model.fc.out_features, fid=model.fid, backend=backend)
        fast.load_state_dict(model.state_dict())
    return fast.to(device=weight.device, dtype=weight.dtype).train(model.training)


CONTENDERS = {
    c.name: c
    for c in (
        Contender("eager-nchw", "eager NCHW", lambda m, layout: m, layout="nchw"),
        Contender("eager-cl", "eager channels_last", _in_layout, layout="channels_last"),
        Contender("compile", "torch.compile", _compiled(None), compiled=True),
        Contender("compile-max", "torch.compile max-autotune", _compiled("max-autotune"), compiled=True),
        Contender("fast-triton", "FastInception triton", _fast("triton"), fastinception=True),
        Contender("fast-torch", "FastInception torch", _fast("torch"), fastinception=True),
    )
}

# The contenders of a run, per device kind (``bench`` and the pytest benchmarks); compile-max is opt-in.
# On CPU the Triton kernels only run under the interpreter, which says nothing about speed.
GPU_CONTENDERS = ("eager-nchw", "eager-cl", "compile", "fast-triton", "fast-torch")
CPU_CONTENDERS = ("eager-nchw", "eager-cl", "fast-torch")


def parameters_by_reference_names(module: nn.Module, reference: nn.Module) -> list[torch.Tensor]:
    """``module``'s parameters in the order of ``reference.named_parameters()`` (compiled wrappers unwrapped)."""
    inner = getattr(module, "_orig_mod", module)
    own = dict(inner.named_parameters())
    return [own[name] for name, _ in reference.named_parameters()]
