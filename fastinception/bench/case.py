"""One benchmark case: check every contender against float64, then time the ones that are right.

A case is a model (a GoogLeNet block at its ImageNet spatial size, an Inception-v3 block at its size in the 299x299
network, or a whole network: GoogLeNet on 224x224 images, Inception-v3 or the FID feature extractor on 299x299), a
pass (``fwd``: inference under no_grad; ``fwdbwd``: forward then the gradients of the input and every parameter for
a random output gradient; Inception-v3 blocks and the FID network ``fwd`` only, since converting them folds their
BatchNorm), a dtype and a batch size. A contender whose result is off by more than
the dtype's tolerance is WRONG and is not timed: a wrong result never counts as a win.

CHECK_METHOD (stored with the results) says what is compared.
"""
from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable

import torch
from torch import nn

from ..blocks.programs import INCEPTION_V3_BLOCKS
from ..blocks.spec import InceptionSpec
from ..models import GOOGLENET_BLOCKS, googlenet, inception_resnet_v2, inception_v4
from ..reference.d2l import Inception
from ..reference.inception_v3 import INCEPTION_V3_BLOCKS as V3_REFERENCES
from ..reference.inception_v3 import FIDFeatures, Inception3
from ..reference.timm import unfused
from ..testing import REL_TOL, TF32_REL_TOL, float64_reference, rel_error
from .contenders import CONTENDERS, LAYOUTS, UNAVAILABLE, Contender, parameters_by_reference_names
from .roofline import block_bytes, block_flops, convolutions_use_tf32, floor_seconds, network_flops, program_flops
from .timing import measure, peak_memory_mib, ring_length

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}

# Rounding errors grow with depth: GoogLeNet stacks 22 weight layers, so whole-network checks allow 10x.
NETWORK_TOL_FACTOR = 10.0

CHECK_METHOD = (
    "relative Frobenius error ||result - float64|| / ||float64|| of the same model (same weights, inputs rounded "
    "to the dtype) in float64. Blocks: the largest over the output, the input gradient and each parameter "
    "gradient. Networks: the output, and all gradients pooled into one vector, against 10x the block tolerance. "
    "Tolerances: fp32 1e-5 (1e-3 when convolutions use TF32), fp16 2e-3, bf16 1e-2."
)

NETWORK = "googlenet"
NETWORK_CLASSES = 1000
# whole networks: input side, and the reference model (torchvision's Inception-v3 and pytorch-fid's extractor as
# ``reference.inception_v3`` writes them)
NETWORKS = {
    NETWORK: (224, lambda: googlenet(NETWORK_CLASSES, 3)),
    "inception_v3": (299, lambda: Inception3(NETWORK_CLASSES)),
    "fid": (299, FIDFeatures),
    # timm's networks, every block run as timm's forward runs it (reference.timm)
    "inception_v4": (299, lambda: unfused(inception_v4(NETWORK_CLASSES))),
    "inception_resnet_v2": (299, lambda: unfused(inception_resnet_v2(NETWORK_CLASSES))),
}
# models whose converted contenders fold BatchNorm: inference only
INFERENCE_ONLY = ("fid",)


@dataclasses.dataclass(frozen=True)
class Case:
    model: str  # a GOOGLENET_BLOCKS name, an Inception-v3 block (Mixed_5b .. Mixed_7c), or one of NETWORKS
    pass_: str
    dtype: str
    batch: int
    size: int | None = None  # spatial size; None: the block's ImageNet size (224 for the network)

    @property
    def is_network(self) -> bool:
        return self.model in NETWORKS

    @property
    def is_v3_block(self) -> bool:
        return self.model in V3_REFERENCES

    @property
    def name(self) -> str:
        return f"{self.model}-{self.pass_}-{self.dtype}-b{self.batch}" + (f"-{self.size}px" if self.size else "")

    def input_shape(self) -> tuple:
        if self.is_network:
            side = self.size or NETWORKS[self.model][0]
            return (self.batch, 3, side, side)
        if self.is_v3_block:
            _, args, size = V3_REFERENCES[self.model]
            return (self.batch, args[0], self.size or size, self.size or size)
        args, size = GOOGLENET_BLOCKS[self.model]
        side = self.size or size
        return (self.batch, args[0], side, side)

    def build_reference(self, device: torch.device) -> nn.Module:
        if self.is_network:
            model = NETWORKS[self.model][1]()
        elif self.is_v3_block:
            kind, args, _ = V3_REFERENCES[self.model]
            model = kind(*args)
        else:
            model = Inception(*GOOGLENET_BLOCKS[self.model][0])
        return model.to(device=device, dtype=DTYPES[self.dtype]).eval()

    def flops(self, reference: nn.Module) -> int:
        n, _, h, w = self.input_shape()
        if self.is_network:
            return network_flops(reference, self.input_shape()) * (1 if self.pass_ == "fwd" else 3)
        if self.is_v3_block:
            return program_flops(INCEPTION_V3_BLOCKS[self.model][0], n, h, w, self.pass_)
        spec = InceptionSpec.from_args(*GOOGLENET_BLOCKS[self.model][0])
        return block_flops(spec, n, h, w, self.pass_)

    def floor_bytes(self) -> dict | None:
        if self.is_network or self.is_v3_block:
            return None
        n, _, h, w = self.input_shape()
        spec = InceptionSpec.from_args(*GOOGLENET_BLOCKS[self.model][0])
        size = torch.tensor([], dtype=DTYPES[self.dtype]).element_size()
        return {
            "floor": block_bytes(spec, n, h, w, size, self.pass_),
            "with_intermediates": block_bytes(spec, n, h, w, size, self.pass_, intermediates=True),
        }


def tolerance(dtype: torch.dtype, device: torch.device, network: bool) -> float:
    tol = REL_TOL[dtype]
    if dtype == torch.float32 and device.type == "cuda" and convolutions_use_tf32():
        tol = TF32_REL_TOL
    return tol * (NETWORK_TOL_FACTOR if network else 1.0)


@dataclasses.dataclass
class Rates:
    """Machine rates measured in this run: FLOP/s of a matmul per dtype, bytes/s of a copy."""

    matrix: dict  # dtype name -> FLOP/s
    copy: float


def forward_or_backward(module: nn.Module, reference: nn.Module, pass_: str) -> Callable:
    """The callable that is checked and timed: ``fwd`` maps an input to the output; ``fwdbwd`` maps
    (input, grad_out) to (output, grad of the input, grads of the parameters in the reference's order)."""
    if pass_ == "fwd":
        return lambda x: module(x)
    params = parameters_by_reference_names(module, reference)

    def forward_backward(item):
        x, grad_out = item
        out = module(x)
        return (out, *torch.autograd.grad(out, (x, *params), grad_out))

    return forward_backward


def make_item(x: torch.Tensor, grad_out: torch.Tensor | None, layout: str, pass_: str):
    """What ``forward_or_backward`` takes, in ``layout``: x, or (x requiring grad, grad_out)."""
    fmt = LAYOUTS[layout]
    x = x.detach().contiguous(memory_format=fmt)
    if pass_ == "fwd":
        return x
    if grad_out.dim() == 4:  # a block's output; a network's logits are (N, classes)
        grad_out = grad_out.contiguous(memory_format=fmt)
    return (x.requires_grad_(True), grad_out)


def float64_result(reference: nn.Module, x: torch.Tensor, grad_out, pass_: str) -> list[torch.Tensor]:
    """``forward_or_backward`` of a float64 copy of ``reference`` on float64 copies of the inputs."""
    return float64_reference(reference, x, None if pass_ == "fwd" else grad_out)


def max_rel_error(got, want: list[torch.Tensor], pooled_grads: bool = False) -> float:
    """The largest relative error over the output and the gradients.

    ``pooled_grads``: all gradients as one vector (used for whole networks, where a layer's small gradient,
    e.g. the input's under 22 layers, is legitimately changed by a ReLU that flips in the last bit).
    """
    got = [got] if isinstance(got, torch.Tensor) else list(got)
    if len(got) != len(want):
        return float("inf")
    if pooled_grads and len(got) > 1:
        got = [got[0], torch.cat([g.detach().double().flatten() for g in got[1:]])]
        want = [want[0], torch.cat([w.detach().double().flatten() for w in want[1:]])]
    return max(rel_error(g, w) for g, w in zip(got, want))


def fresh_input(shape, dtype, device, generator) -> torch.Tensor:
    """Standard normal values drawn on the CPU (same numbers on every device), then moved and cast."""
    return torch.randn(shape, generator=generator, device="cpu", dtype=torch.float32).to(device=device, dtype=dtype)


def case_inputs(case: Case, reference: nn.Module, device: torch.device, generator: torch.Generator):
    """A fresh input for ``case`` and, for ``fwdbwd``, a fresh output gradient (else None)."""
    dtype = DTYPES[case.dtype]
    x = fresh_input(case.input_shape(), dtype, device, generator)
    if case.pass_ == "fwd":
        return x, None
    with torch.no_grad():
        out_shape = reference(x[:1]).shape[1:]
    return x, fresh_input((case.batch, *out_shape), dtype, device, generator)


def input_ring(case: Case, x: torch.Tensor, grad_out, layout: str, device: torch.device,
               generator: torch.Generator) -> list:
    """Distinct inputs to rotate through while timing, together larger than twice the L2 cache."""
    item_bytes = x.numel() * x.element_size() * (1 if grad_out is None else 2)
    return [
        make_item(fresh_input(x.shape, x.dtype, device, generator),
                  None if grad_out is None else fresh_input(grad_out.shape, x.dtype, device, generator),
                  layout, case.pass_)
        for _ in range(ring_length(item_bytes, device))
    ]


def run_case(
    case: Case,
    contenders: list[str],
    device: torch.device,
    run_layout: str,
    rates: Rates,
    target_ms: float,
    progress: Callable[[str], None],
    seed: int = 0,
) -> dict:
    """Check and time every contender on ``case``; returns the case's record (see ``bench`` for the fields).

    "ours" is the first FastInception contender (in ``contenders`` order) that passed its check: speed-ups are
    against it. When none did, no speed-ups, and "ours_missing" says why.
    """
    torch.manual_seed(seed)
    reference = case.build_reference(device)
    flops = case.flops(reference)
    nbytes = case.floor_bytes()
    floor_s = (
        floor_seconds(flops, nbytes["floor"], rates.matrix[case.dtype], rates.copy)
        if nbytes is not None and case.dtype in rates.matrix
        else None
    )
    tol = tolerance(DTYPES[case.dtype], device, case.is_network)
    generator = torch.Generator().manual_seed((seed + 1) % 2**64)  # torch's own wrap: the largest seed works too
    x, grad_out = case_inputs(case, reference, device, generator)
    want = float64_result(reference, x, grad_out, case.pass_)

    rings: dict[str, list] = {}

    def ring_for(layout: str) -> list:
        if layout not in rings:
            rings.clear()  # one layout's ring at a time keeps memory bounded
            rings[layout] = input_ring(case, x, grad_out, layout, device, generator)
        return rings[layout]

    records = []
    for name in contenders:
        contender = CONTENDERS[name]
        progress(f"  {contender.label} ...")
        record = _run_contender(contender, case, reference, x, grad_out, want, tol, device, run_layout, ring_for,
                                target_ms)
        if record["median_ms"] is not None:
            record["tflops"] = flops / (record["median_ms"] * 1e-3) / 1e12
            record["floor_fraction"] = floor_s / (record["median_ms"] * 1e-3) if floor_s is not None else None
            record["images_per_s"] = case.batch / (record["median_ms"] * 1e-3)
        progress(f"  {contender.label}: {_summary(record)}")
        records.append(record)

    our = next((r for r in records if r["fastinception"] and r["status"] == "ok"), None)
    our_ms = our["median_ms"] if our is not None else None
    for r in records:
        r["speedup"] = r["median_ms"] / our_ms if our_ms and r["median_ms"] else None
    missing = None if our is not None else ours_missing(records)
    if missing:
        progress(f"  no speed-ups: {missing}")
    rings.clear()
    _release(device)
    return {
        "model": case.model,
        "pass": case.pass_,
        "dtype": case.dtype,
        "batch": case.batch,
        "input_shape": list(case.input_shape()),
        "layout": run_layout,
        "flops": flops,
        "bytes": nbytes,
        "floor_ms": floor_s * 1e3 if floor_s is not None else None,
        "tolerance": tol,
        "ours": our["name"] if our is not None else None,
        "ours_missing": missing,
        "contenders": records,
    }


def ours_missing(records: list[dict]) -> str:
    """Why no FastInception contender can be the one speed-ups refer to."""
    fast = [r for r in records if r["fastinception"]]
    if not fast:
        return "no FastInception contender was run"
    statuses = ", ".join(f"{r['label']} {r['status']}" for r in fast)
    return f"no FastInception contender passed its check ({statuses})"


def _run_contender(contender: Contender, case, reference, x, grad_out, want, tol, device, run_layout, ring_for,
                   target_ms) -> dict:
    layout = contender.layout_for(run_layout)
    record = {
        "name": contender.name, "label": contender.label, "fastinception": contender.fastinception,
        "layout": layout, "status": "ok", "reason": None,
        "rel_error": None, "median_ms": None, "p20_ms": None, "p80_ms": None, "reps": None, "tflops": None,
        "floor_fraction": None, "images_per_s": None, "peak_mem_mib": None,
    }
    if contender.name == "fast-triton" and device.type != "cuda":
        record.update(status="skipped", reason="the Triton kernels run on CPU only under the interpreter, "
                      "which checks correctness, not speed (see the interpreter check)")
        return record
    try:
        module = contender.build(reference, layout)
    except UNAVAILABLE as e:  # a backend missing here; any other exception is a bug, reported FAILED
        record.update(status="unavailable", reason=f"{type(e).__name__}: {e}")
        return record
    except Exception as e:
        record.update(status="FAILED", reason=_reason(e))
        return record
    grad_mode = torch.no_grad() if case.pass_ == "fwd" else torch.enable_grad()
    try:
        with grad_mode:
            run = forward_or_backward(module, reference, case.pass_)
            # The first call also compiles / autotunes; it is checked, never timed.
            got = run(make_item(x, grad_out, layout, case.pass_))
            record["rel_error"] = error = max_rel_error(got, want, pooled_grads=case.is_network)
            del got
            if not error <= tol:
                record.update(status="WRONG", reason=f"relative error {error:.3e} > tolerance {tol:.1e}")
                return record
            ring = ring_for(layout)
            timing = measure(run, ring, device, target_ms=target_ms, min_reps=10 if device.type == "cuda" else 3)
            record.update(median_ms=timing.median_ms, p20_ms=timing.p20_ms, p80_ms=timing.p80_ms, reps=timing.reps)
            record["peak_mem_mib"] = peak_memory_mib(run, ring[0], device)
    except Exception as e:
        record.update(status="FAILED", reason=_reason(e))
    finally:
        del module
        if contender.compiled:
            torch._dynamo.reset()
    return record


def _reason(e: Exception) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def _summary(record: dict) -> str:
    if record["status"] != "ok":
        return f"{record['status']} ({record['reason']})"
    return f"ok, rel err {record['rel_error']:.1e}, {record['median_ms']:.3f} ms"


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
