"""Launch shapes: how many CTAs a launch runs, how many waves of the target's SMs that makes, and the work it does.

Per captured launch and autotune candidate:

- ``grid``: the CTAs the launch runs, from the launcher's own grid function on the launch's arguments and the
  config (``capture.Launch.grid_of``), so a grid with another axis (a split reduction) needs nothing here;
- ``ctas_per_sm``: resident CTAs per SM from the compiled registers and shared memory (``occupancy``);
- ``waves``: grid / (SMs x ctas_per_sm); ``tail_fill``: the busy fraction of the last wave;
- ``k_iters``: the K-loop trip count of one CTA (steps of BLOCK_K, times the taps a CTA loops over);
- ``flops``: 2 per multiply-add of the launch's GEMM, plus one per element a reduction or pool adds or compares;
- ``min_bytes``: each tensor argument read once and each written once (distinct tensors by address, shape and
  strides: the launchers pass a present tensor again for an absent one; a gradient a launch accumulates into
  counts twice).

``flops`` and ``k_iters`` need each kernel's loop structure: ``WORK`` holds it, one entry per kernel; a kernel
without an entry gets neither (``missing_work`` names it). The autotuner picks at run time among the candidates;
a launch's fill is its best-filling candidate's (``best``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .occupancy import Target, occupancy


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


# ---------------------------------------------------------------------------------------------------------------
# waves

def waves(ctas: int, wave: int) -> float:
    """Waves of ``wave`` CTAs (SMs x CTAs per SM) that ``ctas`` CTAs make."""
    return ctas / wave


def tail_fill(ctas: int, wave: int) -> float:
    """The busy fraction of the last wave: 1 when the CTAs fill whole waves."""
    rest = ctas % wave
    return 1.0 if ctas and not rest else rest / wave


def fill(ctas: int, wave: int) -> float:
    """CTAs in flight in the first wave, as a fraction of a wave (1: at least one full wave)."""
    return min(ctas, wave) / wave


def best(candidates: list[dict]) -> dict | None:
    """The best-filling candidate: the most CTAs in flight up to one wave, the autotuner's first among equals.
    Candidates that did not compile or cannot fit an SM (``wave`` 0) are out."""
    running = [c for c in candidates if c.get("wave")]
    if not running:
        return None
    return max(running, key=lambda c: fill(c["grid"], c["wave"]))  # max keeps the first of equals


# ---------------------------------------------------------------------------------------------------------------
# work per kernel

@dataclass(frozen=True)
class Work:
    """A kernel's work: ``flops(a)`` from the launch's arguments ``a``; ``k_iters(a, meta, ctas)`` the trip count
    of one CTA's K loop under the config's meta-parameters; ``accumulates``: the argument a launch with
    ACCUMULATE reads as well as writes."""

    flops: Callable[[dict], int]
    k_iters: Callable[[dict, dict, int], int]
    accumulates: str | None = None


def _conv_pair(a):
    """(taps, channels in, channels out) of conv a and b of a launch that runs one or two (b absent: no channels)."""
    return [(a[f"KH_{s}"] * a[f"KW_{s}"], a["C_IN"], a[f"C_OUT_{s}"]) for s in ("A", "B") if a[f"C_OUT_{s}"]]


def _general_flops(a):
    return sum(2 * a["P"] * taps * c_in * c_out for taps, c_in, c_out in _conv_pair(a))


def _general_k(a, meta, ctas):
    # a CTA runs a tile of one of the two convs: the longer loop is the one that sets the launch's length
    return max(taps * cdiv(c_in, meta["BLOCK_K"]) for taps, c_in, _ in _conv_pair(a))


def _input_grad_flops(a):
    out_pixels = a["P"] // (a["H"] * a["W"]) * a["OH"] * a["OW"]
    return sum(2 * out_pixels * taps * c_in * c_out for taps, c_in, c_out in _conv_pair(a))


def _input_grad_k(a, meta, ctas):
    # one CTA sums both convs' taps, each over blocks of that conv's output channels
    return sum(taps * cdiv(c_out, meta["BLOCK_K"]) for taps, _, c_out in _conv_pair(a))


def _pixel_k(a, meta, ctas, tiles):
    """Steps of BLOCK_K pixels of one CTA of a weight gradient: its chunk of the P pixels (PIX_PER_SPLIT when the
    launch passes one; else the P pixels shared among the CTAs the grid has beyond its ``tiles`` output tiles)."""
    pixels = a.get("PIX_PER_SPLIT") or cdiv(a["P"], max(ctas // tiles, 1))
    return cdiv(min(pixels, a["P"]), meta["BLOCK_K"])


def _weight_grad_taps(a):
    return a["KH"] * a["KW"] if a["HAS_W"] else 1


def _wgrad_flops(a, taps):
    """A weight gradient's multiply-adds over ``taps`` kernel taps, and its bias gradient's additions."""
    return ((2 * a["P"] * a["C_OUT"] * a["C_IN"] * taps if a["HAS_W"] else 0)
            + (a["P"] * a["C_OUT"] if a["HAS_B"] else 0))


def _weight_grad_flops(a):
    return _wgrad_flops(a, _weight_grad_taps(a))


def _weight_grad_k(a, meta, ctas):
    tiles = cdiv(a["C_OUT"], meta["BLOCK_M"]) * cdiv(a["C_IN"], meta["BLOCK_N"]) * _weight_grad_taps(a)
    return _pixel_k(a, meta, ctas, tiles)


def _stem_columns(a):
    return a["C0"] + a["C1"] + a["C2"] + a["C3"] + a["CP"]


def _pool_flops(a):
    return a["P"] * a["C"] * a["KH"] * a["KW"]


def _pool_grad_flops(a):
    return a["P"] // (a["H"] * a["W"]) * a["OH"] * a["OW"] * a["C"] * a["KH"] * a["KW"]


def _pool_grad_k(a, meta, ctas):
    # the windows holding a pixel; a max recomputes each window's winner
    windows = cdiv(a["KH"], a["SH"]) * cdiv(a["KW"], a["SW"])
    return windows * (a["KH"] * a["KW"] if a["IS_MAX"] else 1)


def _maxpool3x3(a, present):
    return 9 * a["P"] * a["C_IN"] if present else 0


def _stem_wgrad_flops(a):
    c123, c4 = a["C1"] + a["C2"] + a["C3"], a["C4"]
    return (2 * a["P"] * a["C_IN"] * (c123 * a["HAS_W123"] + c4 * a["HAS_W4"]) + _maxpool3x3(a, a["HAS_W4"])
            + a["P"] * (c123 * a["HAS_B123"] + c4 * a["HAS_B4"]))


WORK = {
    # block programs (Inception-v3, the FID network, any program)
    "pointwise_stem": Work(
        lambda a: 2 * a["P"] * a["C_IN"] * _stem_columns(a) + _maxpool3x3(a, a["CP"]),
        lambda a, meta, ctas: cdiv(a["C_IN"], meta["BLOCK_K"])),
    "conv2d_general": Work(_general_flops, _general_k),
    "pool2d": Work(_pool_flops, lambda a, meta, ctas: a["KH"] * a["KW"]),
    "conv2d_input_grad": Work(_input_grad_flops, _input_grad_k, accumulates="gx_ptr"),
    "conv2d_weight_grad": Work(_weight_grad_flops, _weight_grad_k),
    "pool2d_input_grad": Work(_pool_grad_flops, _pool_grad_k, accumulates="gx_ptr"),
    # GoogLeNet's block (FastInception)
    "stem_forward": Work(
        lambda a: 2 * a["P"] * a["C_IN"] * (a["C1"] + a["C2"] + a["C3"] + a["C4"]) + _maxpool3x3(a, a["C4"]),
        lambda a, meta, ctas: cdiv(a["C_IN"], meta["BLOCK_K"])),
    "conv2d_bias_relu": Work(
        lambda a: 2 * a["P"] * a["C_IN"] * a["C_OUT"] * a["KSIZE"] ** 2,
        lambda a, meta, ctas: a["KSIZE"] ** 2 * cdiv(a["C_IN"], meta["BLOCK_K"])),
    "conv2d_bias_relu_pair": Work(
        lambda a: sum(2 * a["P"] * a[f"C_IN_{s}"] * a[f"C_OUT_{s}"] * a[f"KSIZE_{s}"] ** 2 for s in "AB"),
        lambda a, meta, ctas: max(a[f"KSIZE_{s}"] ** 2 * cdiv(a[f"C_IN_{s}"], meta["BLOCK_K"]) for s in "AB")),
    "conv_relu_dgrad": Work(
        lambda a: 2 * a["P"] * a["C_IN"] * a["C_OUT"] * a["KSIZE"] ** 2,
        lambda a, meta, ctas: a["KSIZE"] ** 2 * cdiv(a["C_OUT"], meta["BLOCK_K"])),
    "conv_relu_wgrad": Work(
        lambda a: _wgrad_flops(a, a["TAPS"]),
        lambda a, meta, ctas: _pixel_k(a, meta, ctas, 1)),
    "stem_dgrad": Work(
        lambda a: 2 * a["P"] * a["C_IN"] * (a["C1"] + a["C2"] + a["C3"]) + _maxpool3x3(a, a["dpool_ptr"] is not None),
        lambda a, meta, ctas: sum(cdiv(a[c], meta["BLOCK_K"]) for c in ("C1", "C2", "C3"))),
    "stem_wgrad": Work(_stem_wgrad_flops, lambda a, meta, ctas: _pixel_k(a, meta, ctas, 1)),
    # the fixed-order sum of S partial rows of R values
    "reduce_partials": Work(lambda a: a["S"] * a["R"], lambda a, meta, ctas: a["S"]),
    # a block program's ReLU mask: one compare per output element, no K loop
    "relu_mask": Work(lambda a: a["P"] * a["C"], lambda a, meta, ctas: 1),
    # BatchNorm with batch statistics (kernels/batchnorm_*.py): the combines loop over the T partial rows; the
    # element passes have no loop
    "bn_finalize": Work(lambda a: 2 * a["T"] * a["C"], lambda a, meta, ctas: cdiv(a["T"], meta["BLOCK_T"])),
    "bn_relu": Work(lambda a: 4 * a["P"] * a["C"], lambda a, meta, ctas: 1),
    "bn_grad_partials": Work(lambda a: 6 * a["P"] * a["C"], lambda a, meta, ctas: 1),
    "bn_grad_combine": Work(lambda a: 2 * a["T"] * a["C"], lambda a, meta, ctas: cdiv(a["T"], meta["BLOCK_T"])),
    "bn_input_grad": Work(lambda a: 8 * a["P"] * a["C"], lambda a, meta, ctas: 1),
}


def missing_work(kernels) -> list[str]:
    """The kernels of ``kernels`` (short names) that ``WORK`` does not describe."""
    return sorted({k for k in kernels if k not in WORK})


def min_bytes(kernel: str, kwargs: dict) -> int:
    """Bytes the launch must move at least: every distinct tensor argument once; an accumulated one twice."""
    tensors = {}
    for value in kwargs.values():
        if isinstance(value, torch.Tensor):
            tensors[(value.data_ptr(), tuple(value.shape), value.stride(), value.dtype)] = (
                value.numel() * value.element_size())
    total = sum(tensors.values())
    work = WORK.get(kernel)
    if work is not None and work.accumulates and kwargs.get("ACCUMULATE"):
        gx = kwargs[work.accumulates]
        total += gx.numel() * gx.element_size()
    return total


# ---------------------------------------------------------------------------------------------------------------
# rows

def launch_work(launch) -> dict:
    """``flops`` (None without a ``WORK`` entry) and ``min_bytes`` of a captured launch."""
    work = WORK.get(launch.kernel)
    return {"flops": None if work is None else int(work.flops(launch.kwargs)),
            "min_bytes": min_bytes(launch.kernel, launch.kwargs)}


def _grid(launch, config, label: str) -> dict:
    dims = launch.grid_of(config)
    ctas = math.prod(dims)
    work = WORK.get(launch.kernel)
    return {"config": label, "grid": ctas, "grid_dims": list(dims),
            "k_iters": None if work is None else int(work.k_iters(launch.kwargs, config.all_kwargs(), ctas))}


def _waves(row: dict, ctas_per_sm: int, sm_count: int) -> dict:
    wave = sm_count * ctas_per_sm
    return {**row, "ctas_per_sm": ctas_per_sm, "wave": wave,
            "waves": round(waves(row["grid"], wave), 4) if wave else None,
            "tail_fill": round(tail_fill(row["grid"], wave), 4) if wave else None}


def candidate(target: Target, launch, config, label: str, facts: dict) -> dict:
    """One autotune candidate (``config``, named ``label``) of a launch: its grid, K-loop length, and its residency
    and waves on ``target`` from the compile's ``facts`` (registers, smem_bytes, num_warps; or ``error``)."""
    row = _grid(launch, config, label)
    if "error" in facts:
        return {**row, "error": facts["error"], "wave": 0}
    occ = occupancy(target, facts["registers"], facts["smem_bytes"], facts["num_warps"])
    row = {**row, "registers": facts["registers"], "smem_bytes": facts["smem_bytes"], "limited_by": occ.limited_by}
    return _waves(row, occ.blocks_per_sm, target.sm_count)


def bound_candidate(target: Target, launch, config, label: str) -> dict:
    """A candidate judged without compiling it: with as many CTAs per SM as warps and blocks allow, whatever the
    registers and shared memory. That is an upper bound, so a grid that fills this wave fills the real one."""
    most = occupancy(target, 0, 0, config.num_warps).blocks_per_sm
    return {**_waves(_grid(launch, config, label), most, target.sm_count), "bound": True}


def full(row: dict | None) -> bool:
    """At least one full wave."""
    return row is not None and bool(row["wave"]) and row["grid"] >= row["wave"]


def entries(captures) -> list[dict]:
    """One entry per launch of a block: ``captures`` is [(network, block, batch, launches)], and the k-th launch
    with a label at one batch is the k-th at another (a block makes the same launches at any batch, and only the
    pixel count changes). Each entry: network, block, label, kernel, dtype, layout, passes, count, and
    ``by_batch``: batch -> the captured launch."""
    found: dict[tuple, dict] = {}
    for network, block, batch, launches in captures:
        ordinal: dict[tuple, int] = {}
        for launch in launches:
            same = (launch.label, launch.dtype, launch.layout)
            ordinal[same] = ordinal.get(same, -1) + 1
            entry = found.setdefault((network, block, *same, ordinal[same]), {
                "network": network, "block": block, "launch": launch.label, "kernel": launch.kernel,
                "dtype": launch.dtype, "layout": launch.layout, "passes": list(launch.passes), "count": launch.count,
                "by_batch": {}})
            entry["by_batch"][batch] = launch
    return list(found.values())


# ---------------------------------------------------------------------------------------------------------------
# the gate: at GATE_BATCH, a launch of more than GATE_FLOPS must fill at least one wave, or have a reason here

GATE_BATCH = 128
GATE_FLOPS = 1e9


@dataclass(frozen=True)
class Reason:
    """Why launches may stay under one wave at GATE_BATCH: those of ``kernels`` in ``blocks`` (all blocks when
    empty) of ``networks`` (all when empty) whose label contains ``label``. ``open``: a shortfall to remove, not a
    property of the problem: the gate fails once no launch it covers is short any more, so that the entry goes."""

    kernels: tuple
    why: str
    open: bool = False
    blocks: tuple = ()
    networks: tuple = ()
    label: str = ""

    def covers(self, network: str, block: str, kernel: str, label: str) -> bool:
        return (kernel in self.kernels and (not self.blocks or block in self.blocks)
                and (not self.networks or network in self.networks) and self.label in label)


REASONS: tuple[Reason, ...] = (
    Reason(("conv2d_bias_relu", "conv_relu_dgrad"), networks=("googlenet",),
           blocks=("4b", "4c", "4d", "4e", "5a", "5b"), why=(
               "small by nature: the 3x3 and 5x5 branch convs of the 14x14 and 7x7 blocks and their input "
               "gradients write 25088 or 6272 pixels x 24 to 320 channels at batch 128, 49 to 784 tiles of the "
               "smallest tensor-core tiles, for 1.3 to 5.8 GFLOP; only splitting their K loop (taps x channels) "
               "over more CTAs, and a second pass over the partial sums, would fill a wave. Not split: the pass is "
               "one more launch, and on the first H200 run every block call was bound by its host time per launch "
               "(docs/results/gpu-h200-2026-12-04.md)")),
    Reason(("conv2d_general",), blocks=("Mixed_7b", "Mixed_7c"), label="+stats", open=True, why=(
        "training with batch statistics: each 1x1 head of the E blocks runs alone (the stem's fused 1x1 GEMM has no "
        "statistics epilogue), so the 192-channel head writes 8192 pixels x 192 channels at batch 128, 128 tiles "
        "at the smallest tensor-core tile, for 4.0 or 6.4 GFLOP; a stem launch writing every head's statistics "
        "would fill the wave")),
    Reason(("conv2d_general",), blocks=("Mixed_7a",), label="3x3/s2 192->192", why=(
        "small by nature: Inception-v3's stride-2 3x3 conv to 8x8 writes 8192 pixels x 192 channels at batch "
        "128, 768 tiles of 64 x 32 where a wave holds 1056, for 5.4 GFLOP; only splitting its K loop "
        "(3 x 3 x 192) would fill it, at the cost of one more launch (see the reason above)")),
)


def reason_for(network: str, block: str, kernel: str, label: str, reasons=None) -> Reason | None:
    return next((r for r in (REASONS if reasons is None else reasons) if r.covers(network, block, kernel, label)),
                None)


def gate(launches: list[dict], reasons=None) -> dict:
    """The one-wave gate over report entries (``launches``, each with its ``batches`` rows): every launch of more
    than GATE_FLOPS at GATE_BATCH whose best-filling candidate does not fill one wave is flagged, with the reason
    that covers it if any. ``unexplained``: flagged without a reason; ``stale``: open reasons that cover checked
    launches none of which is flagged any more. The gate passes when both are empty."""
    reasons = REASONS if reasons is None else reasons
    checked, flagged = [], []
    for entry in launches:
        row = next((b for b in entry["batches"] if b["batch"] == GATE_BATCH), None)
        if row is None or row["flops"] is not None and row["flops"] <= GATE_FLOPS:
            continue  # a kernel without a WORK entry is checked whatever its size
        reason = reason_for(entry["network"], entry["block"], entry["kernel"], entry["launch"], reasons)
        checked.append(reason)
        chosen = best(row["candidates"])
        if full(chosen):
            continue
        flagged.append({
            "network": entry["network"], "block": entry["block"], "launch": entry["launch"],
            "kernel": entry["kernel"], "passes": entry["passes"], "flops": row["flops"],
            "config": None if chosen is None else chosen["config"],
            "grid": None if chosen is None else chosen["grid"], "wave": None if chosen is None else chosen["wave"],
            "waves": None if chosen is None else chosen["waves"],
            "reason": None if reason is None else reason.why, "open": None if reason is None else reason.open})
    flagged_reasons = {f["reason"] for f in flagged}
    stale = [r.why for r in reasons if r.open and r in checked and r.why not in flagged_reasons]
    unexplained = [f for f in flagged if f["reason"] is None]
    return {"batch": GATE_BATCH, "min_flops": GATE_FLOPS, "checked": len(checked), "flagged": flagged,
            "unexplained": unexplained, "stale": stale, "passed": not unexplained and not stale,
            "reasons": [{"kernels": list(r.kernels), "why": r.why, "open": r.open, "blocks": list(r.blocks),
                         "networks": list(r.networks), "label": r.label} for r in reasons]}
