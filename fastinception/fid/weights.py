"""pytorch-fid's weights file (``pt_inception-2015-12-05-6726825d.pth``): read, checked, BatchNorm folded.

The file is the state_dict of torchvision's ``Inception3`` with 1008 classes, no auxiliary head: conv+BatchNorm
units named ``Conv2d_1a_3x3.conv.weight``, ``Conv2d_1a_3x3.bn.running_mean`` ..., ``Mixed_5b.branch1x1.conv.weight``
..., and ``fc.weight`` / ``fc.bias`` (not needed for features). Nothing is downloaded: the user gives the path, or
the file is found where pytorch-fid's own download keeps it (torch hub's checkpoint folder).
"""
from __future__ import annotations

import os
import pathlib

import torch

from ..blocks.programs import V3_BLOCK_KINDS, V3_STEM, V3_UNIT_NAMES
from ..convert.bn_fold import fold
from ..v3_blocks import BN_EPS

FILE_NAME = "pt_inception-2015-12-05-6726825d.pth"
URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FILE_NAME


class WeightsError(ValueError):
    """A weights file that is missing, unreadable, or not pytorch-fid's network."""


def cached_weights() -> pathlib.Path | None:
    """pytorch-fid's file where its own download left it (torch hub's checkpoints folder), else None."""
    path = pathlib.Path(torch.hub.get_dir()) / "checkpoints" / FILE_NAME
    return path if path.is_file() else None


def unit_names() -> list[str]:
    """Every conv+BatchNorm unit of the feature network, stem first, blocks in order, each block's units in the
    order of its program's conv slots."""
    return [*V3_STEM, *(f"{block}.{unit}" for block, kind in V3_BLOCK_KINDS.items() for unit in V3_UNIT_NAMES[kind])]


def read_state_dict(path) -> dict:
    path = pathlib.Path(os.fspath(path))
    if not path.is_file():
        raise WeightsError(f"no weights file at {path} (pytorch-fid publishes {FILE_NAME} at {URL})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        said = str(error).splitlines()[0][:120] if str(error) else ""
        raise WeightsError(f"{path}: cannot be read as a PyTorch weights file, truncated or of another kind "
                           f"({type(error).__name__}: {said})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: holds {type(state).__name__}, expected a state_dict of tensors")
    return state


def folded_units(state: dict, where: str = "weights") -> dict:
    """unit name -> (weight, bias) with each unit's BatchNorm folded, from a pytorch-fid state_dict; refuses a
    state_dict of another network, naming what is missing or of the wrong shape."""
    names = unit_names()
    missing = [f"{n}.{part}" for n in names for part in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                                         "bn.running_var") if f"{n}.{part}" not in state]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise WeightsError(f"{where}: not pytorch-fid's Inception network: {', '.join(missing[:3])}{more} missing")
    units = {}
    for n in names:
        w = state[f"{n}.conv.weight"]
        c = w.shape[0]
        for part in ("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
            if tuple(state[f"{n}.{part}"].shape) != (c,):
                raise WeightsError(f"{where}: {n}.{part} has shape {tuple(state[f'{n}.{part}'].shape)}, its conv "
                                   f"has {c} output channels")
        units[n] = fold(w.float(), None, state[f"{n}.bn.weight"].float(), state[f"{n}.bn.bias"].float(),
                        state[f"{n}.bn.running_mean"].float(), state[f"{n}.bn.running_var"].float(), BN_EPS)
    for n, (out, cin, k, _, _) in V3_STEM.items():
        if tuple(units[n][0].shape) != (out, cin, k, k):
            raise WeightsError(f"{where}: {n}.conv.weight has shape {tuple(units[n][0].shape)}, expected "
                               f"{(out, cin, k, k)}")
    return units
