"""Facts read from a compiled kernel: registers and spills from ptxas's ``-v`` report, and from the SASS which
tensor-core and global-load instructions it uses.

Static facts only: a kernel that spills or uses ``mma.sync`` on sm_90 may still be fast, and one that does not
may be slow; only a timing says.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

# Tensor-core instructions, strongest first: sm_90's warpgroup MMA, the warp-level MMA of sm_80 and later.
MMA_OPCODES = (("HGMMA", "wgmma"), ("HMMA", "mma.sync"))
NO_MMA = "fma"
# Global-to-shared loads, strongest first: the tensor memory accelerator, the asynchronous copy (16 bytes a thread,
# else narrower: a tile that is not a run of 16-byte vectors, e.g. a gather or one-byte data).
LOAD_OPCODES = (("UTMALDG", "tma"), ("LDGSTS", "cp.async"))
NARROW_ASYNC = "cp.async<16B"
PLAIN_LOADS = "ldg"
MMA_KINDS = tuple(name for _, name in MMA_OPCODES) + (NO_MMA,)
LOAD_KINDS = ("tma", "cp.async", NARROW_ASYNC, PLAIN_LOADS)

_REGISTERS = re.compile(r"Used (\d+) registers")
_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_STATIC_SMEM = re.compile(r"(\d+) bytes smem")
# One SASS instruction: /*0a30*/  @!P0 HGMMA.64x128x16.F32 ... ;
_INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)")
# An asynchronous copy's width: LDGSTS.E.BYPASS.128 copies 128 bits; without a width suffix, 32.
_ASYNC_COPY = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?LDGSTS((?:\.[A-Z0-9_]+)*)")


@dataclass(frozen=True)
class PtxasReport:
    registers: int
    spill_bytes: int  # spill stores + spill loads, bytes per thread
    static_smem: int  # shared memory ptxas allocates itself (Triton's own is dynamic, in its metadata)


def parse_ptxas_log(text: str) -> PtxasReport:
    """The ``ptxas -v`` report of a one-kernel module."""
    registers = _REGISTERS.search(text)
    spills = _SPILLS.search(text)
    if registers is None or spills is None:
        raise ValueError(f"expected a ptxas -v report with 'Used N registers' and spill counts, got: {text[-500:]!r}")
    smem = _STATIC_SMEM.search(text)
    return PtxasReport(int(registers.group(1)), int(spills.group(2)) + int(spills.group(3)),
                       int(smem.group(1)) if smem else 0)


def opcodes(sass: str) -> set[str]:
    """The opcodes (without modifiers: ``HGMMA`` for ``HGMMA.64x128x16.F32``) of a SASS listing."""
    return set(_INSTRUCTION.findall(sass))


def async_copy_bits(sass: str) -> list[int]:
    """The width in bits of each asynchronous copy (LDGSTS) of a SASS listing."""
    widths = []
    for suffixes in _ASYNC_COPY.findall(sass):
        sizes = [int(s) for s in suffixes.split(".") if s in ("8", "16", "32", "64", "128")]
        widths.append(sizes[-1] if sizes else 32)
    return widths


def classify(sass: str) -> tuple[str, str]:
    """(mma, loads) of a SASS listing: the strongest tensor-core instruction present (``wgmma``, ``mma.sync``,
    else ``fma``) and the strongest global-to-shared load (``tma``; ``cp.async`` when every asynchronous copy moves
    16 bytes, ``cp.async<16B`` when some move less; else ``ldg``)."""
    ops = opcodes(sass)
    mma = next((name for op, name in MMA_OPCODES if op in ops), NO_MMA)
    loads = next((name for op, name in LOAD_OPCODES if op in ops), PLAIN_LOADS)
    if loads == "cp.async" and any(bits < 128 for bits in async_copy_bits(sass)):
        loads = NARROW_ASYNC
    return mma, loads


def tool(name: str) -> str:
    """Path of a CUDA binary tool Triton ships (ptxas, cuobjdump), as Triton itself finds it."""
    from triton import knobs

    found = {"ptxas": knobs.nvidia.ptxas, "ptxas-blackwell": knobs.nvidia.ptxas_blackwell,
             "cuobjdump": knobs.nvidia.cuobjdump}[name].path
    if not found:
        raise FileNotFoundError(f"{name}: Triton found no such tool (set TRITON_{name.upper().replace('-', '_')}_PATH)")
    return found


def sass_of(cubin: bytes) -> str:
    """The SASS listing of a cubin (``cuobjdump --dump-sass``)."""
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    try:
        return subprocess.run([tool("cuobjdump"), "--dump-sass", f.name], check=True, capture_output=True,
                              text=True).stdout
    finally:
        os.unlink(f.name)


def run_ptxas(ptx: str, ptxas: str, arch: str, fp_fusion: bool) -> str:
    """``ptxas -v`` on ``ptx`` with the flags Triton compiles with; its report (stderr)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        cmd = [ptxas, "-lineinfo", *([] if fp_fusion else ["--fmad=false"]), "-v", "--regAllocOptLevel=2",
               f"--gpu-name={arch}", src, "-o", os.path.join(tmp, "kernel.cubin")]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
