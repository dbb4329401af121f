"""Any block program on the Triton kernels: the triton backend of the later block types.

The plan, per program (``triton_plan``):
1. one stem launch (``pointwise_stem``) for every branch head that reads x through a pointwise conv: a plain 1x1
   conv; a 3x3 stride-1 max-pool then a 1x1 conv (the pool computed in the A-tile prologue); an average pool then
   a 1x1 conv, commuted (the 1x1 without bias joins the GEMM, and the pool, bias and ReLU run afterwards on its few
   output channels: ``pool2d``). Five or more such convs take one launch per four;
2. each branch's remaining ops, one launch each (``conv2d_general`` for any kernel, stride and padding; ``pool2d``
   for any pool, a pass-through pool branch included), the last writing straight into the branch's channel slice
   of ``out``; a two-conv split is one launch writing its two adjacent slices. The branches run on side CUDA
   streams, forked after the stem and joined before returning.

Launch count of a program: ``launch_count(program)``. No PyTorch compute op runs in the forward (an NCHW ``x`` is
copied to channels-last once, as GoogLeNet's triton path does). Each branch's launches are ``ConvStep`` /
``PoolStep`` / ``PrologueStep`` records; the forward can hand them over as a ``Tape``, which the backward
(``program_backward_triton``) walks back.
"""
from __future__ import annotations

import dataclasses
import functools

import torch

from ..blocks.program import BlockProgram, Conv, Pool, Residual
from ..kernels.common import bf16_on_interpreter, require_launchable
from .layout import channels_adjacent, empty_in_layout_of
from .overlap import may_share_elements
from .streams import on_device, side_streams

STEM_SEGMENTS = 4
MAX_PROLOGUE_POOL = Pool("max", 3, 1, 1)


@dataclasses.dataclass(frozen=True)
class Head:
    """A branch's head in the stem: conv ``slot`` (index into the program's convs) reading x, after ``pool``
    (None; a max pool run as the A-tile prologue; or an average pool commuted past the conv)."""

    branch: int
    slot: int
    pool: Pool | None = None

    @property
    def commuted(self) -> bool:
        return self.pool is not None and self.pool.kind == "avg"


@dataclasses.dataclass(frozen=True)
class BranchPlan:
    """What a branch runs after the stem: ``ops`` (with the conv slot of each conv, else None) and its split."""

    head: Head | None
    ops: tuple[tuple[Conv | Pool, int | None], ...]
    split: tuple[tuple[Conv, int], ...]


@dataclasses.dataclass(frozen=True)
class TritonPlan:
    heads: tuple[Head, ...]  # plain and commuted heads, in launch order
    pool_heads: tuple[Head, ...]  # max-pool prologue heads (one per stem launch: see stem_launches)
    branches: tuple[BranchPlan, ...]

    def stem_launches(self) -> list[tuple[tuple[Head, ...], Head | None]]:
        """The stem launches: up to four heads each, a prologue head with the first ones."""
        groups = [self.heads[i:i + STEM_SEGMENTS] for i in range(0, len(self.heads), STEM_SEGMENTS)]
        groups += [()] * (len(self.pool_heads) - len(groups))
        return [(g, self.pool_heads[i] if i < len(self.pool_heads) else None) for i, g in enumerate(groups)]


def _head_of(branch, first_slot: int, index: int) -> Head | None:
    ops = branch.ops
    if ops and isinstance(ops[0], Conv) and ops[0].pointwise:
        return Head(index, first_slot)
    if len(ops) >= 2 and isinstance(ops[0], Pool) and isinstance(ops[1], Conv) and ops[1].pointwise:
        pool = ops[0]
        if pool.kind == "avg":
            return Head(index, first_slot, pool)
        # the prologue pool is GoogLeNet's: 3x3, stride 1, padding 1, then a conv with ReLU
        if dataclasses.replace(pool, ceil_mode=False) == MAX_PROLOGUE_POOL and ops[1].relu:
            return Head(index, first_slot, pool)
    return None


@functools.cache
def triton_plan(program: BlockProgram) -> TritonPlan:
    """The branches' plan (a residual program's projection runs after them: ``ResidualStep``)."""
    heads, pool_heads, branches, slot = [], [], [], 0
    for i, branch in enumerate(program.branches):
        head = _head_of(branch, slot, i)
        ops, skip = [], 0 if head is None else 1 if head.pool is None else 2  # the ops the stem runs
        for j, op in enumerate(branch.ops):
            if isinstance(op, Conv):
                if j >= skip:
                    ops.append((op, slot))
                slot += 1
            elif j >= skip:
                ops.append((op, None))
        split = []
        for conv in branch.split:
            split.append((conv, slot))
            slot += 1
        if head is not None:
            (pool_heads if head.pool is not None and not head.commuted else heads).append(head)
        branches.append(BranchPlan(head, tuple(ops), tuple(split)))
    return TritonPlan(tuple(heads), tuple(pool_heads), tuple(branches))


def launch_count(program: BlockProgram) -> int:
    """Kernel launches of one forward of ``program`` on the triton backend (channels-last input)."""
    plan = triton_plan(program)
    count = len(plan.stem_launches()) + int(program.residual is not None)
    for b in plan.branches:
        count += int(b.head is not None and b.head.commuted) + len(b.ops) + (len(b.split) + 1) // 2
    return count


@dataclasses.dataclass(frozen=True)
class ConvStep:
    """One launch of a branch: ``convs`` (one, or two of a split) on ``src`` (None: the block's input), each
    ``(conv, slot, dest, out_slice)``; a dest that is a channel slice of the block's output has its ``out_slice``.
    ``bias`` False: a commuted head's 1x1, whose bias the pool after it adds."""

    src: torch.Tensor | None
    convs: tuple[tuple[Conv, int, torch.Tensor | None, slice | None], ...]
    bias: bool = True


@dataclasses.dataclass(frozen=True)
class PoolStep:
    """``dest <- relu?(pool(src) + bias of conv bias_slot)``, ``src`` None for the block's input."""

    pool: Pool
    src: torch.Tensor | None
    dest: torch.Tensor | None
    out_slice: slice | None = None
    bias_slot: int | None = None
    relu: bool = False


@dataclasses.dataclass(frozen=True)
class PrologueStep:
    """A max-pool head: the stem's A-tile prologue pools x, then conv ``slot`` writes ``dest``."""

    pool: Pool
    conv: Conv
    slot: int
    dest: torch.Tensor | None
    out_slice: slice | None = None


@dataclasses.dataclass(frozen=True)
class ResidualStep:
    """Inception-ResNet's end: ``out <- relu?(x + scale * conv slot (a 1x1) of cat)``, ``cat`` holding the branches'
    concatenation."""

    residual: Residual
    slot: int
    cat: torch.Tensor


@dataclasses.dataclass(frozen=True)
class Tape:
    """What the backward needs of one forward: the input the kernels read (channels-last, in the dtype they computed
    in) and every branch's steps in order, with the block output's slices left out (``without_outputs``); for a
    residual program the branches' slices are the concatenation's, and ``residual`` its end."""

    x: torch.Tensor | None
    branches: tuple[tuple[ConvStep | PoolStep | PrologueStep, ...], ...]
    residual: ResidualStep | None = None


def without_outputs(step):
    """``step`` with its dests that are slices of the block's output dropped (named by their ``out_slice``), so a
    tape holds no view of a tensor autograd returns."""
    if isinstance(step, ConvStep):
        return dataclasses.replace(step, convs=tuple((c, k, None if s is not None else d, s)
                                                     for c, k, d, s in step.convs))
    return step if step.out_slice is None else dataclasses.replace(step, dest=None)


def run_program_triton(program: BlockProgram, weights, x: torch.Tensor, out: torch.Tensor, *, allow_tf32: bool,
                       streams: bool = True, record: list | None = None) -> torch.Tensor:
    """``program`` on ``x`` with ``weights`` into ``out`` (shapes checked by the caller), with the Triton kernels.
    Not differentiable: ``ProgramTriton`` is, and passes ``record`` (a list) to receive the forward's ``Tape``.
    Under torch.compile it runs as it is (a graph break) instead of being traced through the launchers, the
    autotuner and the streams."""
    return _not_traced()(program, weights, x, out, allow_tf32=allow_tf32, streams=streams, record=record)


@functools.cache
def _not_traced():
    # wrapped on first use, not at import: torch.compiler.disable imports torch._dynamo, which imports triton, and
    # importing fastinception must leave TRITON_INTERPRET's choice open
    return torch.compiler.disable(_run_program_triton)


def _run_program_triton(program: BlockProgram, weights, x: torch.Tensor, out: torch.Tensor, *, allow_tf32: bool,
                        streams: bool = True, record: list | None = None) -> torch.Tensor:
    require_launchable(x)
    again = functools.partial(run_program_triton, program, allow_tf32=allow_tf32, streams=streams, record=record)
    if not channels_adjacent(x):
        return again(weights, x.contiguous(memory_format=torch.channels_last), out)
    if bf16_on_interpreter(x.dtype, x.device):
        # Triton's CPU interpreter computes bf16 wrongly: fp32, then rounded (on a GPU bf16 runs as bf16)
        out32 = empty_in_layout_of(out, out.shape, torch.float32)
        again([tuple(None if t is None else t.float() for t in p) for p in weights], x.float(), out32)
        return out.copy_(out32)
    if may_share_elements(x, out):  # the stem reads x while later launches write out
        fresh = empty_in_layout_of(out, out.shape)
        again(weights, x, fresh)
        return out.copy_(fresh)
    from ..kernels.conv2d_general import launch_conv2d_general
    from ..kernels.pointwise_stem import launch_pointwise_stem
    from ..kernels.pool2d import launch_pool2d

    if program.residual is not None:
        # the branches into a concatenation buffer, then one launch: out <- relu?(x + scale * conv1x1(cat))
        branches = dataclasses.replace(program, residual=None)
        cat = empty_in_layout_of(x, (x.shape[0], branches.out_channels, x.shape[2], x.shape[3]))
        inner = None if record is None else []
        _run_program_triton(branches, tuple(weights)[:-1], x, cat, allow_tf32=allow_tf32, streams=streams,
                            record=inner)
        w, b = tuple(weights)[-1]
        with on_device(x):
            launch_conv2d_general(cat, [(w, b, out, (1, 1), (1, 1), (0, 0), program.residual.relu)],
                                  residual=(x, program.residual.scale), allow_tf32=allow_tf32)
        if record is not None:
            record.append(dataclasses.replace(inner[0], residual=ResidualStep(program.residual, len(weights) - 1,
                                                                              cat)))
        return out

    plan = triton_plan(program)
    slots = program.conv_slots()
    weights = tuple(weights)
    H, W = x.shape[2], x.shape[3]

    def buffer(channels, h, w):
        return empty_in_layout_of(x, (x.shape[0], channels, h, w))

    def dest_of(channels, h, w, into: slice | None):
        # a branch's last op writes its slice of out; the others a buffer of their own
        return (out[:, into], into) if into is not None else (buffer(channels, h, w), None)

    def step_launch(step):
        src = x if step.src is None else step.src
        if isinstance(step, PoolStep):
            return functools.partial(
                launch_pool2d, src, step.dest, kind=step.pool.kind, kernel=step.pool.kernel, stride=step.pool.stride,
                padding=step.pool.padding, count_include_pad=step.pool.count_include_pad,
                bias=None if step.bias_slot is None else weights[step.bias_slot][1], relu=step.relu)
        return functools.partial(launch_conv2d_general, src, [
            (*weights[slot], dest, conv.kernel, conv.stride, conv.padding, conv.relu)
            for conv, slot, dest, _ in step.convs
        ], allow_tf32=allow_tf32)

    # Every buffer is allocated here, on the caller's stream, before the branches fork (see streams.side_streams).
    stem_dest, work, tape = {}, [], []
    for i, (b, branch_slice) in enumerate(zip(plan.branches, program.slices)):
        steps, in_stem, (h, w) = [], 0, (H, W)
        done_in_head = branch_slice if not b.ops and not b.split else None
        src = None
        if b.head is not None:
            conv = slots[b.head.slot].conv
            if b.head.commuted:
                stem_dest[i] = buffer(conv.out_channels, H, W)  # the raw 1x1 output, pooled next
                h, w = b.head.pool.out_size(H, W)
                src, at = dest_of(conv.out_channels, h, w, done_in_head)
                steps += [ConvStep(None, ((dataclasses.replace(conv, relu=False), b.head.slot, stem_dest[i], None),),
                                   bias=False),
                          PoolStep(b.head.pool, stem_dest[i], src, at, b.head.slot, conv.relu)]
                in_stem = 1
            else:
                src, at = dest_of(conv.out_channels, H, W, done_in_head)
                stem_dest[i] = src
                steps.append(ConvStep(None, ((conv, b.head.slot, src, at),)) if b.head.pool is None
                             else PrologueStep(b.head.pool, conv, b.head.slot, src, at))
                in_stem = 1
        for j, (op, slot) in enumerate(b.ops):
            h, w = op.out_size(h, w)
            channels = op.out_channels if isinstance(op, Conv) else (x if src is None else src).shape[1]
            dest, at = dest_of(channels, h, w, branch_slice if j == len(b.ops) - 1 and not b.split else None)
            steps.append(ConvStep(src, ((op, slot, dest, at),)) if isinstance(op, Conv)
                         else PoolStep(op, src, dest, at))
            src = dest
        start, split = branch_slice.start, []
        for conv, slot in b.split:
            at = slice(start, start + conv.out_channels)
            split.append((conv, slot, out[:, at], at))
            start = at.stop
        steps += [ConvStep(src, tuple(split[k:k + 2])) for k in range(0, len(split), 2)]
        tape.append(tuple(steps))
        if len(steps) > in_stem:
            work.append([step_launch(step) for step in steps[in_stem:]])
    if record is not None:
        record.append(Tape(x, tuple(tuple(without_outputs(s) for s in steps) for steps in tape)))
    if x.shape[0] == 0:
        return out

    with on_device(x):
        for heads, pool_head in plan.stem_launches():
            segments = [(weights[h.slot][0], None, stem_dest[h.branch], False) if h.commuted
                        else (*weights[h.slot], stem_dest[h.branch], slots[h.slot].conv.relu) for h in heads]
            pool = None
            if pool_head is not None:
                w_, b_ = weights[pool_head.slot]
                pool = (w_, b_ if b_ is not None else w_.new_zeros(w_.shape[0]), stem_dest[pool_head.branch])
            launch_pointwise_stem(x, segments, pool, allow_tf32=allow_tf32)
        with side_streams(x.device, len(work), streams) as contexts:
            for launches, context in zip(work, contexts):
                with context:
                    for start_launch in launches:
                        start_launch()
    return out
