"""Resident warps per SM from a kernel's registers, shared memory and warps: the static bound on occupancy.

The same arithmetic as CUDA's occupancy calculator (``cuda_occupancy.h``: ``cudaOccMaxBlocksPerSMRegsLimit``,
``cudaOccMaxBlocksPerSMSmemLimit``), for the targets in ``TARGETS``. It is an upper bound: it knows nothing of
the grid size, of the shared-memory carveout the driver picks, or of latency.
"""
from __future__ import annotations

from dataclasses import dataclass

KIB = 1024


@dataclass(frozen=True)
class Target:
    """One compile target and the per-SM limits of the GPUs it stands for."""

    name: str  # as --target takes it
    capability: int  # Triton's GPUTarget arch
    gpus: str  # the GPUs these numbers describe
    sm_count: int  # SMs of the GPU the capture assumes (the weight gradients split pixels by it)
    regs_per_sm: int  # 32-bit registers per SM
    regs_per_block: int  # at most this many per block
    max_regs_per_thread: int
    reg_alloc_unit: int  # registers are allocated per warp in units of this many
    sub_partitions: int  # the register file is split among this many warp schedulers
    smem_per_sm: int  # bytes of shared memory per SM at the largest carveout
    smem_per_block: int  # the most a block may ask for (opt-in)
    smem_reserved_per_block: int  # what the system takes from each resident block
    smem_alloc_unit: int  # shared memory is allocated per block in units of this many bytes
    max_warps_per_sm: int
    max_blocks_per_sm: int


# Sources: CUDA C++ Programming Guide, "Compute Capabilities", table "Technical Specifications per Compute
# Capability" (registers, warps, blocks, shared memory per SM and per block, 1 KB reserved per block from 8.0 on);
# cuda_occupancy.h (allocation units: 256 registers per warp over 4 sub-partitions, 128 bytes of shared memory).
# SM counts: H100 SXM / H200 132, A100 108.
TARGETS = {
    "sm_90": Target("sm_90", 90, "H100/H200", 132, 65536, 65536, 255, 256, 4, 228 * KIB, 227 * KIB, 1 * KIB, 128,
                    64, 32),
    "sm_80": Target("sm_80", 80, "A100", 108, 65536, 65536, 255, 256, 4, 164 * KIB, 163 * KIB, 1 * KIB, 128, 64, 32),
}

# The resources in the order limited_by names them when several give the same bound.
RESOURCES = ("registers", "shared memory", "warps", "blocks")


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


@dataclass(frozen=True)
class Occupancy:
    warps_per_sm: int
    limited_by: str  # the resource(s) that give the bound, "+"-joined when several tie
    blocks_per_sm: int  # resident blocks (CTAs) per SM


def occupancy(target: Target, registers: int, smem_bytes: int, num_warps: int) -> Occupancy:
    """Resident warps and blocks per SM for blocks of ``num_warps`` warps using ``registers`` per thread and
    ``smem_bytes`` of shared memory (static and dynamic). A block that cannot fit at all gives 0, limited by what
    it exceeds."""
    if num_warps < 1 or registers < 0 or smem_bytes < 0:
        raise ValueError(f"expected num_warps >= 1 and registers, smem_bytes >= 0, got num_warps={num_warps}, "
                         f"registers={registers}, smem_bytes={smem_bytes}")
    blocks = {}
    # registers: whole warps' worth, rounded to the allocation unit, in each sub-partition
    regs_per_warp = _round_up(registers * 32, target.reg_alloc_unit)
    assumed_per_block = regs_per_warp * _round_up(num_warps, target.sub_partitions)  # the hardware's launch check
    if registers > target.max_regs_per_thread or assumed_per_block > target.regs_per_block:
        blocks["registers"] = 0
    elif regs_per_warp == 0:
        blocks["registers"] = target.max_blocks_per_sm
    else:
        warps_per_sub = (target.regs_per_sm // target.sub_partitions) // regs_per_warp
        blocks["registers"] = warps_per_sub * target.sub_partitions // num_warps
    # shared memory: the block's own plus the reserved kilobyte, in allocation units
    if smem_bytes > target.smem_per_block:
        blocks["shared memory"] = 0
    else:
        per_block = _round_up(smem_bytes + target.smem_reserved_per_block, target.smem_alloc_unit)
        blocks["shared memory"] = target.smem_per_sm // per_block
    blocks["warps"] = target.max_warps_per_sm // num_warps
    blocks["blocks"] = target.max_blocks_per_sm
    fewest = min(blocks.values())
    return Occupancy(fewest * num_warps, "+".join(r for r in RESOURCES if blocks[r] == fewest), fewest)
