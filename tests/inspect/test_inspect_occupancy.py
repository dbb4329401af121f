"""Resident warps per SM from registers, shared memory, warps and blocks (CUDA's occupancy arithmetic)."""
import pytest

from fastinception.inspect.occupancy import KIB, TARGETS, occupancy

SM90, SM80 = TARGETS["sm_90"], TARGETS["sm_80"]


@pytest.mark.parametrize("registers, smem, warps, expected", [
    (255, 98304, 8, (8, "registers")),  # 255 -> 8192 per warp: 2 warps per sub-partition, one block of 8
    (127, 22528, 4, (16, "registers")),  # 4096 per warp: 4 per sub-partition
    (96, 0, 1, (20, "registers")),  # 3072 per warp: 5 per sub-partition (21 if the file were not split in four)
    (32, 0, 4, (64, "registers+warps")),  # both allow 16 blocks of 4 warps
    (16, 0, 1, (32, "blocks")),  # 32 blocks per SM at most
    (64, 100 * KIB, 4, (8, "shared memory")),  # (100 + 1 reserved) KB per block: 2 fit in 228 KB
    (99, 53504, 4, (16, "registers+shared memory")),
    (64, 0, 16, (32, "registers")),  # 2048 per warp: 32 warps, two blocks of 16
])
def test_sm90(registers, smem, warps, expected):
    got = occupancy(SM90, registers, smem, warps)
    assert (got.warps_per_sm, got.limited_by) == expected


def test_sm80_has_less_shared_memory():
    assert occupancy(SM80, 64, 100 * KIB, 4).warps_per_sm == 4  # one 101 KB block in 164 KB


@pytest.mark.parametrize("registers, smem, warps, resource", [
    (64, 227 * KIB + 1, 4, "shared memory"),  # over the per-block maximum
    (256, 0, 4, "registers"),  # over 255 per thread
    (255, 0, 16, "registers"),  # 16 warps x 8192 registers: over 65536 per block
])
def test_blocks_that_cannot_fit(registers, smem, warps, resource):
    got = occupancy(SM90, registers, smem, warps)
    assert (got.warps_per_sm, got.limited_by) == (0, resource)


def test_the_largest_block_that_fits():
    assert occupancy(SM90, 32, 227 * KIB, 4).warps_per_sm == 4  # 227 KB + 1 reserved = the SM's 228 KB


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="num_warps >= 1"):
        occupancy(SM90, 32, 0, 0)
