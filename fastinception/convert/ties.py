"""Tensors a candidate block shares with the rest of the model: swapping the block would untie them.

A FastInception holds its own copies of the weights, so a conv, parameter or buffer that a block shares with
another block, with a module outside it, or between two of its own submodules would become two tensors that
training updates apart. The same block object under two names is not a tie: it becomes one FastInception.
"""
from __future__ import annotations

import itertools
from collections import defaultdict

from torch import nn


def _tensors(module: nn.Module):
    """(qualified name, tensor) for every parameter and buffer, once per path it is reachable under."""
    return itertools.chain(
        module.named_parameters(remove_duplicate=False), module.named_buffers(remove_duplicate=False)
    )


def _joined(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def tied_blocks(model: nn.Module, blocks: list) -> dict:
    """``{id(block): reason}`` for each of ``blocks`` (modules in ``model``) sharing a tensor with anything else.

    The reason names the block's first shared tensor and where else it is used, e.g.
    ``p2_2.weight is also used as 1.p2_2.weight``.
    """
    wanted = {id(b) for b in blocks}
    places, names = defaultdict(list), defaultdict(list)
    for path, t in _tensors(model):
        places[id(t)].append(path)
    for path, m in model.named_modules(remove_duplicate=False):
        if id(m) in wanted:
            names[id(m)].append(path)
    tied = {}
    for block in blocks:
        if id(block) in tied:
            continue
        shared = []
        for local, t in _tensors(block):
            own = {_joined(prefix, local) for prefix in names[id(block)]}
            elsewhere = [p for p in places[id(t)] if p not in own]
            if elsewhere:
                shared.append((local, elsewhere))
        if shared:
            local, elsewhere = shared[0]
            more = f" (and {len(shared) - 1} more shared tensor(s))" if len(shared) > 1 else ""
            where = ", ".join(elsewhere[:3]) + (", ..." if len(elsewhere) > 3 else "")
            tied[id(block)] = f"{local} is also used as {where}{more}"
    return tied
