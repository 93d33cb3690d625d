"""Storage formats: bits per weight derived from layouts, checked against independent sources."""

from fractions import Fraction

import pytest

from fitcalc.core.formats import FORMATS, GGUF_BY_TYPE, get_format


def test_gguf_block_sizes_match_the_gguf_package():
    # Independent source: gguf-py's GGML_QUANT_SIZES (block size, type size in bytes), written by
    # the llama.cpp authors from the same C structs. Our sizes are derived from field layouts.
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    checked = 0
    for type_id, fmt in GGUF_BY_TYPE.items():
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(type_id)]
        assert fmt.block_elements == block, fmt.id
        ours = fmt.block_bytes if fmt.block_bytes is not None else fmt.element_bits // 8
        assert ours == type_size, fmt.id
        checked += 1
    assert checked >= 25


@pytest.mark.parametrize("fid,bits", [
    ("mxfp4", Fraction(17, 4)),  # (32 x 4 + 8) / 32 = 4.25: OCP MX v1.0; gpt-oss model card sec. 2.1
    ("nvfp4", Fraction(9, 2)),  # (16 x 4 + 8) / 16 = 4.5 (tensor scale vanishes asymptotically)
    ("nf4", Fraction(9, 2)),  # QLoRA: 4 + 32/64 = 4.5 bits
    ("nf4-dq", Fraction(4) + Fraction(8, 64) + Fraction(32, 64 * 256)),  # QLoRA: 0.127 bit/param of constants
    ("q8_0", Fraction(34 * 8, 32)),  # 8.5
    ("q4_k", Fraction(144 * 8, 256)),  # 4.5
    ("q6_k", Fraction(210 * 8, 256)),  # 6.5625
    ("int4-awq", Fraction(4) + Fraction(16 + 4, 128)),  # 4 + fp16 scale + 4-bit zero per 128
    ("fp8-block128", Fraction(8) + Fraction(32, 128 * 128)),
    ("bf16", Fraction(16)),
])
def test_bits_per_weight(fid, bits):
    assert get_format(fid).bits_per_weight == bits


def test_nf4_double_quant_saving_is_what_qlora_reports():
    # QLoRA sec. 3: double quantization cuts constants from 0.5 to 0.127 bits per parameter.
    saving = get_format("nf4").bits_per_weight - get_format("nf4-dq").bits_per_weight
    assert abs(float(saving) - (0.5 - 0.127)) < 0.001


@pytest.mark.parametrize("fid,rows,cols,expected", [
    # gpt-oss-20b gate_up_proj of one expert: blocks 5760 x 90 x 16 B + scales 5760 x 90 B
    ("mxfp4", 5760, 2880, 5760 * 90 * 16 + 5760 * 90),
    # DeepSeek-V3 q_b_proj [24576, 1536] FP8: 1 B per weight + fp32 scale per 128x128 tile (192 x 12 tiles)
    ("fp8-block128", 24576, 1536, 24576 * 1536 + 192 * 12 * 4),
    # a tile grid that does not divide: 7168 x 576 -> ceil(576/128)=5 tiles down, 56 across
    ("fp8-block128", 576, 7168, 576 * 7168 + 5 * 56 * 4),
    # NVFP4 4096 x 4096: payload 8 MiB, fp8 scale per 16, two fp32 scalars
    ("nvfp4", 4096, 4096, 4096 * 4096 // 2 + 4096 * 256 + 8),
    # AWQ 4096 x 4096: qweight 4096*4096/2, scales fp16 32 groups x 4096, qzeros 32 x 4096 x 4 bits
    ("int4-awq", 4096, 4096, 4096 * 4096 // 2 + 32 * 4096 * 2 + 32 * 4096 // 2),
    # GPTQ adds g_idx int32 per input channel
    ("int4-gptq", 4096, 4096, 4096 * 4096 // 2 + 32 * 4096 * 2 + 32 * 4096 // 2 + 4096 * 4),
    ("q4_k", 4096, 4096, 4096 * 16 * 144),
    ("bf16", 3, 5, 30),
])
def test_matrix_bytes(fid, rows, cols, expected):
    assert get_format(fid).matrix_bytes(rows, cols) == expected


def test_every_format_names_its_source():
    for f in FORMATS.values():
        assert f.source.strip(), f.id


def test_fallbacks_fit_rows_that_k_quants_cannot():
    # llama.cpp: a row of 2880 (gpt-oss) is not a multiple of 256, so Q4_K falls back to Q5_0 (block 32)
    q4k = get_format("q4_k")
    assert not q4k.fits_row(2880)
    assert get_format(q4k.fallback).fits_row(2880)


def test_unknown_format_suggests():
    from fitcalc.core.errors import UnknownIdError

    with pytest.raises(UnknownIdError) as e:
        get_format("mxfp5")
    assert "mxfp4" in str(e.value)
