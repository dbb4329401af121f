"""On a machine without CUDA: run the Triton kernels under Triton's interpreter on a tiny block and report
their error against float64. The interpreter shows the kernels compute the right thing; it says nothing
about speed.
"""
from __future__ import annotations

import os
import sys
import time

import torch

from ..layer import FastInception
from ..reference.d2l import Inception
from ..testing import REL_TOL, rel_error
from .contenders import LAYOUTS

# Small enough to interpret in seconds, with every branch and both kernel sizes present.
CASE_ARGS = (16, 8, (8, 12), (4, 8), 8)
CASE_SHAPE = (2, 16, 6, 6)


def interpreter_available() -> str | None:
    """None when the interpreter can be used in this process, else why not."""
    if os.environ.get("TRITON_INTERPRET", "1") != "1":
        return f"TRITON_INTERPRET={os.environ['TRITON_INTERPRET']!r} in the environment"
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        return "triton was imported before TRITON_INTERPRET=1 was set (set it before the first import)"
    # Triton reads the variable when it is imported; nothing has imported it yet, so this still takes effect.
    os.environ.setdefault("TRITON_INTERPRET", "1")
    return None


def interpreter_check(layout: str = "channels_last") -> dict:
    case = f"block {CASE_ARGS}, input {'x'.join(map(str, CASE_SHAPE))} fp32 {layout}"
    record = {"case": case, "status": "ok", "reason": None, "rel_error": {}, "seconds": None}
    reason = interpreter_available()
    if reason is not None:
        record.update(status="unavailable", reason=reason)
        return record
    torch.manual_seed(0)
    ref = Inception(*CASE_ARGS)
    try:
        fast = FastInception.from_module(ref, backend="triton")
    except Exception as e:
        record.update(status="unavailable", reason=f"{type(e).__name__}: {e}")
        return record
    exact = Inception(*CASE_ARGS).double()
    exact.load_state_dict(ref.state_dict())
    x = torch.randn(CASE_SHAPE, dtype=torch.float64)
    x64 = x.clone().requires_grad_(True)
    want = exact(x64)
    grad_out = torch.randn_like(want)
    want_grads = torch.autograd.grad(want, (x64, *exact.parameters()), grad_out)
    start = time.perf_counter()
    try:
        xin = x.float().contiguous(memory_format=LAYOUTS[layout]).requires_grad_(True)
        got = fast(xin)
        got_grads = torch.autograd.grad(got, (xin, *fast.parameters()), grad_out.float())
    except Exception as e:
        record.update(status="FAILED", reason=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return record
    record["seconds"] = time.perf_counter() - start
    record["rel_error"] = {
        "forward": rel_error(got, want),
        "grad_x": rel_error(got_grads[0], want_grads[0]),
        "grad_params": max(rel_error(g, w) for g, w in zip(got_grads[1:], want_grads[1:])),
    }
    tol = REL_TOL[torch.float32]
    worst = max(record["rel_error"].values())
    if not worst <= tol:
        record.update(status="WRONG", reason=f"relative error {worst:.3e} > tolerance {tol:.0e}")
    return record
