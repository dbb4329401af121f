"""Reading a compiled kernel: ptxas's -v report and the SASS classification, on synthetic text."""
import pytest

from fastinception.inspect.binary import LOAD_KINDS, MMA_KINDS, async_copy_bits, classify, opcodes, parse_ptxas_log

HEADER = """
	code for sm_90a
		Function : _kernel
	.headerflags	@"EF_CUDA_ACCELERATORS EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   LDC R1, c[0x0][0x28] ;                  /* 0x00000a00ff017b82 */
                                                                           /* 0x000fe20000000800 */
        /*0010*/                   S2R R12, SR_TID.X ;                     /* 0x00000000000c7919 */
"""

LINES = {
    "HGMMA": "        /*0a30*/                   HGMMA.64x128x16.F32 R24, gdesc[UR8], R24, gsb0 ;",
    "HMMA": "        /*0a40*/              @!P0 HMMA.16816.F32 R4, R8, R12, R4 ;",
    "FFMA": "        /*0a50*/                   FFMA R1, R2, R3, R4 ;",
    "UTMALDG": "        /*0a60*/              @UP0 UTMALDG.2D [UR8], [UR4] ;",
    "LDGSTS": "        /*0a70*/              @!PT LDGSTS.E.BYPASS.128 [R5+0x800], desc[UR6][R2.64] ;",
    "LDG": "        /*0a80*/                   LDG.E.128 R8, desc[UR4][R2.64] ;",
}


def sass(*names):
    return HEADER + "\n".join(LINES[n] for n in names) + "\n"


def test_opcodes_drop_modifiers_predicates_and_encodings():
    assert opcodes(sass("HGMMA", "LDGSTS")) == {"LDC", "S2R", "HGMMA", "LDGSTS"}


@pytest.mark.parametrize("names, mma, loads", [
    (("HGMMA", "HMMA", "UTMALDG", "LDGSTS", "LDG"), "wgmma", "tma"),  # the strongest present is named
    (("HGMMA", "LDGSTS", "LDG"), "wgmma", "cp.async"),
    (("HMMA", "LDGSTS"), "mma.sync", "cp.async"),
    (("HMMA", "LDG"), "mma.sync", "ldg"),
    (("FFMA", "LDG"), "fma", "ldg"),
    ((), "fma", "ldg"),
])
def test_classify(names, mma, loads):
    assert classify(sass(*names)) == (mma, loads)
    assert mma in MMA_KINDS and loads in LOAD_KINDS


def test_async_copies_narrower_than_16_bytes_are_told_apart():
    narrow = "        /*0a90*/              @!PT LDGSTS.E.64 [R7+0x400], desc[UR6][R2.64] ;"
    plain = "        /*0aa0*/                   LDGSTS.E [R7+0x500], desc[UR6][R2.64] ;"
    assert async_copy_bits(sass("LDGSTS")) == [128]
    assert classify(sass("HGMMA", "LDGSTS")) == ("wgmma", "cp.async")
    assert async_copy_bits(sass("LDGSTS") + narrow + "\n" + plain) == [128, 64, 32]
    assert classify(sass("HGMMA", "LDGSTS") + narrow + "\n") == ("wgmma", "cp.async<16B")


def test_a_name_inside_another_word_does_not_count():
    # HMMA must not be read out of HGMMA, nor LDG out of LDGSTS: opcodes are whole tokens
    assert classify(sass("HGMMA")) == ("wgmma", "ldg")
    assert "LDG" not in opcodes(sass("LDGSTS"))


def test_ptxas_report():
    log = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_stem_forward_kernel' for 'sm_90a'
ptxas info    : Function properties for _stem_forward_kernel
    3072 bytes stack frame, 1800 bytes spill stores, 1668 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 2048 bytes smem
"""
    report = parse_ptxas_log(log)
    assert (report.registers, report.spill_bytes, report.static_smem) == (255, 3468, 2048)


def test_ptxas_report_without_static_shared_memory():
    log = ("    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
           "ptxas info    : Used 132 registers, used 1 barriers\n")
    assert parse_ptxas_log(log).static_smem == 0


def test_a_log_without_a_report_is_refused():
    with pytest.raises(ValueError, match="Used N registers"):
        parse_ptxas_log("ptxas fatal   : Unresolved extern function 'foo'")
