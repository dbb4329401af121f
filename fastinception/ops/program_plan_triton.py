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
``PoolStep`` / ``PrologueStep`` records (``lay_out``); the forward can save its input and intermediate buffers, from
which ``tape_of`` rebuilds them as the ``Tape`` that the backward (``program_backward_triton``) walks back.
"""
from __future__ import annotations

import dataclasses
import functools

import torch

from ..blocks.program import BlockProgram, Conv, Pool, Residual
from ..kernels.common import bf16_on_interpreter, require_launchable
from .layout import channels_adjacent, empty_in_layout_of, memory_format_of
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


def launch_count(program: BlockProgram, recorded: bool = False) -> int:
    """Kernel launches of one forward of ``program`` on the triton backend (channels-last input); ``recorded``: when
    autograd records it, one more (the output's ReLU mask, ``kernels/relu_mask.py``)."""
    plan = triton_plan(program)
    count = len(plan.stem_launches()) + int(program.residual is not None) + int(recorded)
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


def kernel_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` as the kernels read it: channels-last (a copy of an NCHW ``x``), fp32 for bf16 on Triton's CPU
    interpreter, which computes bf16 wrongly (on a GPU bf16 runs as bf16). Decided by dtype, device and strides
    alone, so the custom op's fake implementation makes the same choice."""
    if not channels_adjacent(x):
        x = x.contiguous(memory_format=torch.channels_last)
    return x.float() if bf16_on_interpreter(x.dtype, x.device) else x


def run_program_triton(program: BlockProgram, weights, x: torch.Tensor, out: torch.Tensor, *, allow_tf32: bool,
                       streams: bool = True, saved: list | None = None) -> torch.Tensor:
    """``program`` on ``x`` with ``weights`` into ``out`` (shapes checked by the caller), with the Triton kernels; what
    the custom op ``program_triton_ops.program_forward`` runs. Every intermediate is a view of one workspace tensor
    (``workspace_shapes``). With ``saved`` (a list), it receives what the backward needs: ``kernel_input(x)`` and the
    workspace, which ``tape_of`` turns back into the forward's ``Tape``."""
    require_launchable(x)
    x_read = kernel_input(x)
    if x_read.dtype != out.dtype:  # bf16 on the interpreter: fp32 throughout, the output rounded once
        out32 = empty_in_layout_of(out, out.shape, torch.float32)
        weights = [tuple(None if t is None else t.float() for t in pair) for pair in weights]
        run_program_triton(program, weights, x_read, out32, allow_tf32=allow_tf32, streams=streams, saved=saved)
        return out.copy_(out32)
    if may_share_elements(x_read, out):  # the stem reads x while later launches write out
        if saved is not None:  # run_checked copies such an x before it gets here, outside compiled graphs
            raise RuntimeError("a block program's out= shares memory with its input x, whose values the backward "
                               "needs: pass an out= apart from x, or run without autograd")
        fresh = empty_in_layout_of(out, out.shape)
        run_program_triton(program, weights, x_read, fresh, allow_tf32=allow_tf32, streams=streams)
        return out.copy_(fresh)
    workspace = new_workspace(program, x_read)
    if saved is not None:
        saved += [x_read, workspace]
    tape = lay_out(program, x_read, out, _carver(program, x_read, workspace))
    if x_read.shape[0]:
        _launch(program, tuple(weights), tape, out, allow_tf32, streams)
    return out


# every intermediate starts at a multiple of this many elements (128 bytes or more): aligned as a fresh tensor is
WORKSPACE_ALIGN = 64


@functools.cache
def workspace_shapes(program: BlockProgram, x_shape: tuple, channels_last: bool) -> tuple:
    """The shapes of the intermediates of one forward on an input of ``x_shape``, in allocation order, with each one's
    offset in the workspace and the workspace's size: ``((shape, offset), ...), size``. Cached: the plan is the
    same on every call with that shape."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.empty(x_shape, device="meta", memory_format=memory_format)
    h, w = program.out_size(x_shape[2], x_shape[3])
    out = torch.empty((x_shape[0], program.out_channels, h, w), device="meta", memory_format=memory_format)
    shapes = []

    def buffer(shape):
        shapes.append(tuple(shape))
        return torch.empty(shape, device="meta", memory_format=memory_format)

    lay_out(program, x, out, buffer)
    placed, size = [], 0
    for shape in shapes:
        placed.append((shape, size))
        numel = shape[0] * shape[1] * shape[2] * shape[3]
        size += -(-numel // WORKSPACE_ALIGN) * WORKSPACE_ALIGN
    return tuple(placed), size


def _shapes_for(program: BlockProgram, x: torch.Tensor) -> tuple:
    # under torch.compile with dynamic shapes the sizes are symbolic: the batch stays so (not hashable: not cached),
    # the image size is specialised (a graph per image size, as the plan differs with it)
    shape = (x.shape[0], *(int(d) for d in x.shape[1:]))
    channels_last = memory_format_of(x) == torch.channels_last
    if type(shape[0]) is int:
        return workspace_shapes(program, shape, channels_last)
    return workspace_shapes.__wrapped__(program, shape, channels_last)


def new_workspace(program: BlockProgram, x: torch.Tensor) -> torch.Tensor:
    """One uninitialised tensor holding every intermediate of a forward on ``x`` (one allocation, made before the
    branches fork: see ``streams.side_streams``)."""
    return torch.empty(_shapes_for(program, x)[1], dtype=x.dtype, device=x.device)


def _carver(program: BlockProgram, x: torch.Tensor, workspace: torch.Tensor):
    """``buffer(shape)`` for ``lay_out``: the next intermediate, a view of ``workspace`` in ``x``'s memory format."""
    placed = iter(_shapes_for(program, x)[0])
    channels_last = memory_format_of(x) == torch.channels_last

    def buffer(shape):
        (n, c, h, w), offset = next(placed)
        assert (n, c, h, w) == tuple(shape), (shape, (n, c, h, w))
        flat = workspace[offset:offset + n * c * h * w]
        return flat.view(n, h, w, c).permute(0, 3, 1, 2) if channels_last else flat.view(n, c, h, w)

    return buffer


def tape_of(program: BlockProgram, x: torch.Tensor, workspace: torch.Tensor, out: torch.Tensor) -> Tape:
    """The ``Tape`` of the forward that read ``x`` and saved ``workspace``; ``out``: any tensor of the output's shape
    (the tape leaves the output's slices out)."""
    tape = lay_out(program, x, out, _carver(program, x, workspace))
    return dataclasses.replace(tape, branches=tuple(tuple(map(without_outputs, steps)) for steps in tape.branches))


def lay_out(program: BlockProgram, x: torch.Tensor, out: torch.Tensor, buffer) -> Tape:
    """Every step of one forward on ``x`` into ``out``, output slices included, each intermediate from
    ``buffer(shape)`` (all allocated before a launch: see ``streams.side_streams``)."""
    if program.residual is not None:
        # the branches into a concatenation buffer, then one launch: out <- relu?(x + scale * conv1x1(cat))
        branches = dataclasses.replace(program, residual=None)
        cat = buffer((x.shape[0], branches.out_channels, x.shape[2], x.shape[3]))
        inner = lay_out(branches, x, cat, buffer)
        return dataclasses.replace(inner, residual=ResidualStep(program.residual, len(program.conv_slots()) - 1,
                                                                cat))
    plan = triton_plan(program)
    slots = program.conv_slots()
    H, W = x.shape[2], x.shape[3]

    def dest_of(channels, h, w, into: slice | None):
        # a branch's last op writes its slice of out; the others a buffer of their own
        return (out[:, into], into) if into is not None else (buffer((x.shape[0], channels, h, w)), None)

    branches = []
    for b, branch_slice in zip(plan.branches, program.slices):
        steps, (h, w) = [], (H, W)
        done_in_head = branch_slice if not b.ops and not b.split else None
        src = None
        if b.head is not None:
            conv = slots[b.head.slot].conv
            if b.head.commuted:
                raw = buffer((x.shape[0], conv.out_channels, H, W))  # the raw 1x1 output, pooled next
                h, w = b.head.pool.out_size(H, W)
                src, at = dest_of(conv.out_channels, h, w, done_in_head)
                steps += [ConvStep(None, ((dataclasses.replace(conv, relu=False), b.head.slot, raw, None),),
                                   bias=False),
                          PoolStep(b.head.pool, raw, src, at, b.head.slot, conv.relu)]
            else:
                src, at = dest_of(conv.out_channels, H, W, done_in_head)
                steps.append(ConvStep(None, ((conv, b.head.slot, src, at),)) if b.head.pool is None
                             else PrologueStep(b.head.pool, conv, b.head.slot, src, at))
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
        branches.append(tuple(steps))
    return Tape(x, tuple(branches))


def _head_dest(step) -> torch.Tensor:
    """Where the stem writes a branch's head: its first step's destination."""
    return step.dest if isinstance(step, PrologueStep) else step.convs[0][2]


def _launch(program: BlockProgram, weights: tuple, tape: Tape, out: torch.Tensor, allow_tf32: bool,
            streams: bool) -> None:
    """The launches of ``tape`` (output slices included): the stem, then each branch's remaining steps on its own
    stream; a residual program's projection, into ``out``, last."""
    from ..kernels.conv2d_general import launch_conv2d_general
    from ..kernels.pointwise_stem import launch_pointwise_stem
    from ..kernels.pool2d import launch_pool2d

    x = tape.x
    if tape.residual is not None:
        branches = dataclasses.replace(program, residual=None)
        _launch(branches, weights[:-1], dataclasses.replace(tape, residual=None), tape.residual.cat, allow_tf32,
                streams)
        w, b = weights[-1]
        with on_device(x):
            launch_conv2d_general(tape.residual.cat, [(w, b, out, (1, 1), (1, 1), (0, 0), program.residual.relu)],
                                  residual=(x, program.residual.scale), allow_tf32=allow_tf32)
        return

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

    plan, slots = triton_plan(program), program.conv_slots()
    stem_dest = {i: _head_dest(steps[0]) for i, (b, steps) in enumerate(zip(plan.branches, tape.branches))
                 if b.head is not None}
    work = [[step_launch(step) for step in steps[b.head is not None:]]
            for b, steps in zip(plan.branches, tape.branches)]
    work = [launches for launches in work if launches]
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
