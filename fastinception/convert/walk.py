"""Swap Inception blocks inside any model for fused blocks, recognised by structure and proven by a probe.

Three shapes are recognised: d2l's block (submodules ``p1_1 .. p4_2``, weights copied as they are),
torchvision's GoogLeNet block (``branch1 .. branch4`` of conv+BatchNorm+ReLU units, BatchNorm folded into the
convolutions; see ``convert.torchvision``), both made ``FastInception``, Inception-v3's blocks A-E,
torchvision's, pytorch-fid's and timm's (``convert.inception_v3``: BatchNorm folded, the pool chosen by the probe),
and timm's Inception-v4 and Inception-ResNet-v2 blocks (``convert.timm``: BatchNorm folded, the residual projection
kept), made ``ProgramBlock``. A module with one of those sets of submodule names is left alone and reported with
the reason when it differs in anything the fused block cannot reproduce exactly: its structure (stride, padding, extra
submodules, hooks, parametrizations, ...), weights it shares with the rest of the model (``convert.ties``), or
what its forward computes on a small input (``convert.probe``).
"""
from __future__ import annotations

from torch import nn

from ..blocks.structure import NotConvertible, d2l_spec_of, looks_like_d2l_inception
from ..functional import check_backend
from ..layer import FastInception
from ..models.timm_blocks import TimmBlock
from ..program_block import ProgramBlock
from ..v3_blocks import FastV3Block
from .inception_v3 import batchnorms_in_training as v3_batchnorms_in_training
from .inception_v3 import fold_v3_block, v3_block_of, v3_kind
from .probe import choose_program, probe
from .report import ConversionReport, ConvertedBlock, SkippedBlock
from .ties import tied_blocks
from .timm import batchnorms_in_training as timm_batchnorms_in_training
from .timm import fold_timm_block, looks_like_timm_block, timm_block_of
from .torchvision import (
    batchnorms_in_training,
    fold_torchvision_block,
    looks_like_torchvision_inception,
    torchvision_block_of,
)


def survey(model: nn.Module) -> list:
    """Every Inception-like module in ``model``: (qualified name, module, style, what was recognised or
    NotConvertible): an ``InceptionSpec`` for the d2l and torchvision styles, an ``inception_v3.V3Block`` for
    ``inception_v3``, a ``timm.TimmFound`` for ``timm``.

    Recognised modules and fused blocks (``FastInception``, ``ProgramBlock``, ``FastV3Block``, ``TimmBlock``) are not
    searched further.
    """
    found = []

    def visit(name: str, module: nn.Module) -> None:
        if isinstance(module, (FastInception, ProgramBlock, FastV3Block, TimmBlock)):
            return
        for style, looks_like, recognise in (
            ("d2l", looks_like_d2l_inception, d2l_spec_of),
            ("torchvision", looks_like_torchvision_inception, lambda m: torchvision_block_of(m).spec),
            ("inception_v3", lambda m: v3_kind(m) is not None, v3_block_of),
            ("timm", looks_like_timm_block, timm_block_of),
        ):
            if looks_like(module):
                try:
                    found.append((name, module, style, recognise(module)))
                except NotConvertible as reason:
                    found.append((name, module, style, reason))
                return
        # _modules rather than named_children(), which skips a module met twice: each name must be replaced.
        for child_name, sub in module._modules.items():
            if sub is None:
                continue
            visit(f"{name}.{child_name}" if name else child_name, sub)

    visit("", model)
    return found


def _refuse_training_batchnorm(found: list) -> None:
    """Refuse, before changing anything, to fold BatchNorms that normalise with batch statistics."""
    training = []
    for name, module, style, outcome in found:
        if isinstance(outcome, NotConvertible) or style == "d2l":
            continue
        if style == "torchvision":
            units = batchnorms_in_training(torchvision_block_of(module))
        elif style == "timm":
            units = timm_batchnorms_in_training(outcome)
        else:
            units = v3_batchnorms_in_training(outcome)
        if units:
            training.append(f"{name or '<model>'} ({', '.join(units)})")
    if training:
        raise RuntimeError(
            "convert: BatchNorm in training mode in " + "; ".join(training) + ". Folding BatchNorm into the "
            "convolutions is exact only in eval mode (in training mode it normalises with batch statistics); "
            "call model.eval() before convert."
        )


def _build(module: nn.Module, style: str) -> FastInception:
    """The fused block of a recognised block, on the ``torch`` backend (the probe's)."""
    if style == "d2l":
        return FastInception.from_module(module, backend="torch")
    return fold_torchvision_block(module, backend="torch")


def _candidate(module: nn.Module, style: str, outcome, backend: str):
    """The fused block for a recognised block, proven by the probe; else the reason it is left alone."""
    if style in ("inception_v3", "timm"):
        weight = outcome.units[0].conv.weight
        fold = fold_v3_block if style == "inception_v3" else fold_timm_block
        return choose_program(module, outcome.candidates, fold, weight.dtype, weight.device)
    try:
        fast = _build(module, style)
    except Exception as error:  # a refused block never makes the whole convert raise
        return f"cannot build the fused block ({type(error).__name__}: {str(error).strip()[:200]})"
    return probe(module, fast, lambda m: _build(m, style)) or fast


def convert(model: nn.Module, *, backend: str = "auto", report: bool = False):
    """Replace every recognised Inception block in ``model`` by a fused block, in place.

    d2l-shaped blocks keep their weights, device, dtype and train/eval mode. torchvision-shaped GoogLeNet blocks and
    Inception-v3 blocks must be in eval mode (their BatchNorm is folded into the convolutions; in training mode this
    raises ``RuntimeError`` before anything is changed) and become FastInception blocks (GoogLeNet) or ProgramBlock
    blocks (Inception-v3, the FID network's, timm's v4 and Inception-ResNet-v2) in eval mode, on ``backend``. Each
    swap is proven first: a float64 copy of the block and the fused block run once on a small seeded input and must
    agree within the dtype's tolerance (for Inception-v3 blocks, the candidate program that agrees is the one
    chosen). Blocks with hooks, with weights shared with the rest of the model, or whose probe fails are left alone.

    Returns ``model`` (or the new block when ``model`` itself is a block, which cannot be replaced in place); with
    ``report=True`` returns ``(model, ConversionReport)``, which lists the swapped blocks by qualified name and the
    look-alikes left alone with the reason.
    """
    check_backend(backend)
    found = survey(model)
    _refuse_training_batchnorm(found)
    tied = tied_blocks(model, [module for _, module, _, outcome in found if not isinstance(outcome, NotConvertible)])
    converted, skipped, outcomes, swaps = [], [], {}, []
    # Build and prove every replacement before swapping any, so a failure leaves the model as it was.
    for name, module, style, outcome in found:
        if isinstance(outcome, NotConvertible):
            skipped.append(SkippedBlock(name, style, str(outcome)))
            continue
        # A block reachable under two names becomes one FastInception, so weights stay shared.
        if id(module) not in outcomes:
            outcomes[id(module)] = tied.get(id(module)) or _candidate(module, style, outcome, backend)
        fast = outcomes[id(module)]
        if isinstance(fast, str):
            skipped.append(SkippedBlock(name, style, fast))
            continue
        fast.backend = backend
        swaps.append((name, fast))
        converted.append(ConvertedBlock(name, style, fast.program if isinstance(fast, ProgramBlock) else outcome))
    for name, block in swaps:
        if name:
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name), attr, block)
        else:
            model = block
    if report:
        return model, ConversionReport(tuple(converted), tuple(skipped))
    return model
