"""Swap Inception blocks inside any model for ``FastInception``, recognised by structure.

Two shapes are recognised: d2l's block (submodules ``p1_1 .. p4_2``, weights copied as they are) and
torchvision's GoogLeNet block (``branch1 .. branch4`` of conv+BatchNorm+ReLU units, BatchNorm folded into the
convolutions; see ``convert.torchvision``). A module with one of those sets of submodule names that differs in
anything the fused block cannot reproduce exactly (stride, padding, extra submodules, ...) is left alone and
reported with the reason.
"""
from __future__ import annotations

from torch import nn

from ..functional import check_backend
from ..layer import FastInception
from ..spec import InceptionSpec
from ..structure import NotConvertible, d2l_spec_of, looks_like_d2l_inception
from .report import ConversionReport, ConvertedBlock, SkippedBlock
from .torchvision import (
    batchnorms_in_training,
    fold_torchvision_block,
    looks_like_torchvision_inception,
    torchvision_block_of,
)


def survey(model: nn.Module) -> list:
    """Every Inception-like module in ``model``: (qualified name, module, style, spec or NotConvertible).

    Recognised modules and ``FastInception`` blocks are not searched further.
    """
    found = []

    def visit(name: str, module: nn.Module) -> None:
        if isinstance(module, FastInception):
            return
        for style, looks_like, recognise in (
            ("d2l", looks_like_d2l_inception, d2l_spec_of),
            ("torchvision", looks_like_torchvision_inception, lambda m: torchvision_block_of(m).spec),
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
        if style == "torchvision" and isinstance(outcome, InceptionSpec):
            units = batchnorms_in_training(torchvision_block_of(module))
            if units:
                training.append(f"{name or '<model>'} ({', '.join(units)})")
    if training:
        raise RuntimeError(
            "convert: BatchNorm in training mode in " + "; ".join(training) + ". Folding BatchNorm into the "
            "convolutions is exact only in eval mode (in training mode it normalises with batch statistics); "
            "call model.eval() before convert."
        )


def convert(model: nn.Module, *, backend: str = "auto", report: bool = False):
    """Replace every recognised Inception block in ``model`` by a ``FastInception``, in place.

    d2l-shaped blocks keep their weights, device, dtype and train/eval mode. torchvision-shaped blocks must be
    in eval mode (their BatchNorm is folded into the convolutions; in training mode this raises
    ``RuntimeError`` before anything is changed) and become FastInception blocks in eval mode.

    Returns ``model`` (or the new block when ``model`` itself is a block, which cannot be replaced in place);
    with ``report=True`` returns ``(model, ConversionReport)``, which lists the swapped blocks by qualified
    name and the look-alikes left alone with the reason.
    """
    check_backend(backend)
    found = survey(model)
    _refuse_training_batchnorm(found)
    converted, skipped, replacements, swaps = [], [], {}, []
    # Build every replacement before swapping any, so a failure leaves the model as it was.
    for name, module, style, outcome in found:
        if isinstance(outcome, NotConvertible):
            skipped.append(SkippedBlock(name, style, str(outcome)))
            continue
        # A block reachable under two names becomes one FastInception, so weights stay shared.
        if id(module) not in replacements:
            if style == "d2l":
                replacements[id(module)] = FastInception.from_module(module, backend=backend)
            else:
                replacements[id(module)] = fold_torchvision_block(module, backend=backend)
        swaps.append((name, replacements[id(module)]))
        converted.append(ConvertedBlock(name, style, outcome))
    for name, block in swaps:
        if name:
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name), attr, block)
        else:
            model = block
    if report:
        return model, ConversionReport(tuple(converted), tuple(skipped))
    return model
