"""Count Triton kernel launches and record the PyTorch ops that run between them."""
from __future__ import annotations

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fastinception.kernels.common import interpreting


# Ops that only allocate or view memory: anything else recorded in a triton pass is PyTorch compute.
ALLOCATION_AND_VIEW_OPS = {"empty", "empty_strided", "slice", "select", "as_strided", "alias", "detach", "view", "t"}
# The backward also allocates its gradient buffers like existing tensors and views a scratch buffer permuted.
BACKWARD_BUFFER_OPS = ALLOCATION_AND_VIEW_OPS | {"empty_like", "new_empty", "permute"}


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
