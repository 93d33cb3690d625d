"""Storage formats described by their block layout; bits per weight are derived, never typed in.

CORE: standard library and pydantic only.

A format stores a matrix of ``rows x cols`` weights (rows = output features, cols = input
features; quantization blocks run along the input dimension, as in every format here). Its
bytes are the element payload plus the fields that carry scales, zero points and the like:

    bytes = ceil(rows * cols * element_bits / 8) + sum over fields of ceil(count(field) * bits / 8)

where ``count`` depends on what one field value covers: a block of ``elements`` along a row,
a ``tile`` of rows x cols, a whole ``tensor``, one output ``row`` or one input ``col``. Each
field is rounded to whole bytes separately because checkpoints store each as its own tensor
(``*_blocks`` and ``*_scales``); GGUF formats pack the same fields into one block record, and
the total is the same because every GGUF block is a whole number of bytes.

Sources for each layout are on the format; ``tests/test_formats.py`` checks the GGUF block
sizes against the ``gguf`` package's own table and MXFP4/NVFP4/NF4 against the published bits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property, lru_cache
from typing import Literal

from fitcalc.core.errors import UnknownIdError
from fitcalc.core.units import ceil_div

FieldPer = Literal["block", "flat", "tile", "tensor", "row", "col"]


# Formats are constants of this module, not user input, so they are plain frozen dataclasses:
# building ~45 of them must not cost a pydantic schema at import (fast start).
@dataclass(frozen=True)
class LayoutField:
    """One kind of metadata stored beside the element payload (a scale, a zero point, an index)."""

    name: str
    bits: int
    per: FieldPer
    # per="block": how many consecutive weights along a row share one value; per="flat": the same
    # over the flattened tensor, blocks running across row ends (bitsandbytes quantizes the
    # flattened weight: its absmax has ceil(rows x cols / 64) entries, not rows x ceil(cols / 64))
    elements: int = 0
    tile: tuple[int, int] | None = None  # per="tile": rows x cols covered by one value

    def count(self, rows: int, cols: int) -> int:
        if self.per == "block":
            return rows * ceil_div(cols, self.elements)
        if self.per == "flat":
            return ceil_div(rows * cols, self.elements)
        if self.per == "tile":
            tr, tc = self.tile  # type: ignore[misc]
            return ceil_div(rows, tr) * ceil_div(cols, tc)
        if self.per == "tensor":
            return 1
        if self.per == "row":
            return rows
        return cols  # per == "col"


@dataclass(frozen=True, eq=False)
class StorageFormat:
    """A storage format: element payload plus layout fields, with where the layout comes from."""

    id: str
    display_name: str
    element_bits: int
    source: str
    fields: tuple[LayoutField, ...] = ()
    # GGUF records: weights per block record. A row's length must be a multiple of it.
    block_elements: int = 1
    gguf_type: int | None = None
    # Native hardware compute needed to run it without dequantizing/repacking (None: universal).
    native_compute: Literal["fp8", "mxfp4", "nvfp4"] | None = None
    # llama.cpp quantizes a tensor whose row length is not a multiple of block_elements with
    # this format instead (src/llama-quant.cpp, "fallback" in llama_tensor_get_type).
    fallback: str | None = None
    is_float: bool = False

    def __hash__(self) -> int:
        return hash(self.id)

    @cached_property
    def bits_per_weight(self) -> Fraction:
        """Asymptotic bits per weight: payload plus every per-block and per-tile field.

        Per-tensor, per-row and per-column fields vanish for a large matrix and are left out
        here (they are counted exactly by :meth:`matrix_bytes`).
        """
        bits = Fraction(self.element_bits)
        for f in self.fields:
            if f.per in ("block", "flat"):
                bits += Fraction(f.bits, f.elements)
            elif f.per == "tile":
                bits += Fraction(f.bits, f.tile[0] * f.tile[1])  # type: ignore[index]
        return bits

    @cached_property
    def block_bytes(self) -> int | None:
        """Bytes of one GGUF block record, derived from the layout (None for non-block formats)."""
        if self.block_elements == 1:
            return None
        bits = self.element_bits * self.block_elements
        for f in self.fields:
            if f.per != "block":
                return None
            bits += f.bits * (self.block_elements // f.elements)
        assert bits % 8 == 0, f"{self.id}: a block of {bits} bits is not whole bytes"
        return bits // 8

    def matrix_bytes(self, rows: int, cols: int) -> int:
        """Bytes of one ``rows x cols`` matrix in this format (see the module docstring)."""
        total = ceil_div(rows * cols * self.element_bits, 8)
        for f in self.fields:
            total += ceil_div(f.count(rows, cols) * f.bits, 8)
        return total

    def vector_bytes(self, numel: int) -> int:
        """Bytes of a 1-D tensor (bias, norm, sink). Block formats treat it as one row."""
        return self.matrix_bytes(1, numel)

    def fits_row(self, cols: int) -> bool:
        return cols % self.block_elements == 0


def _float(fid: str, name: str, bits: int, source: str, native: str | None = None) -> StorageFormat:
    return StorageFormat(id=fid, display_name=name, element_bits=bits, is_float=True, source=source,
                         native_compute=native)  # type: ignore[arg-type]


def _gguf(fid: str, name: str, type_id: int, elements: int, element_bits: int,
          fields: list[tuple[str, int]], source: str, fallback: str | None = None) -> StorageFormat:
    """A GGUF block type: ``fields`` are (name, bits per block) besides the element payload."""
    return StorageFormat(
        id=fid, display_name=name, element_bits=element_bits, block_elements=elements, gguf_type=type_id,
        fields=tuple(LayoutField(name=n, bits=b, per="block", elements=elements) for n, b in fields),
        fallback=fallback, source=source,
    )


_GGML_COMMON = "ggml/src/ggml-common.h (block_* structs), ggml-org/llama.cpp"
_QK_K = 256  # super-block size of the k-quants and i-quants (ggml-common.h: #define QK_K 256)

_FORMATS: list[StorageFormat] = [
    _float("fp32", "FP32", 32, "IEEE 754 binary32"),
    _float("fp16", "FP16", 16, "IEEE 754 binary16"),
    _float("bf16", "BF16", 16, "bfloat16: 1 sign, 8 exponent, 7 mantissa bits"),
    _float("fp8-e4m3", "FP8 E4M3 (no scales)", 8, "OCP 8-bit Floating Point Specification (OFP8) v1.0", "fp8"),
    _float("fp8-e5m2", "FP8 E5M2 (no scales)", 8, "OCP 8-bit Floating Point Specification (OFP8) v1.0", "fp8"),
    _float("int32", "INT32", 32, "two's complement"),
    _float("uint8", "UINT8", 8, "unsigned byte"),
    StorageFormat(
        id="fp8", display_name="FP8 E4M3, per-tensor scale", element_bits=8, native_compute="fp8",
        fields=(LayoutField(name="weight_scale_fp32", bits=32, per="tensor"),
                LayoutField(name="input_scale_fp32", bits=32, per="tensor")),
        source="vLLM/compressed-tensors FP8 static: weight + weight_scale + input_scale, fp32 scalars",
    ),
    StorageFormat(
        id="fp8-channel", display_name="FP8 E4M3, per-channel scale", element_bits=8, native_compute="fp8",
        fields=(LayoutField(name="weight_scale_fp32", bits=32, per="row"),),
        source="compressed-tensors FP8_DYNAMIC scheme: weight_scale [out, 1], dynamic per-token activations",
    ),
    StorageFormat(
        id="fp8-block128", display_name="FP8 E4M3, 128x128 block scales (DeepSeek)", element_bits=8,
        native_compute="fp8",
        fields=(LayoutField(name="weight_scale_inv_fp32", bits=32, per="tile", tile=(128, 128)),),
        source="DeepSeek-V3 config.json quantization_config weight_block_size [128, 128]; "
               "weight_scale_inv fp32 [ceil(out/128), ceil(in/128)] (DeepSeek-V3 inference/fp8_cast_bf16.py)",
    ),
    StorageFormat(
        id="mxfp4", display_name="MXFP4 (32 x E2M1 + E8M0 scale)", element_bits=4, native_compute="mxfp4",
        fields=(LayoutField(name="scale_e8m0", bits=8, per="block", elements=32),),
        source="OCP Microscaling Formats (MX) v1.0, sec. 5: block of 32 FP4 E2M1 elements with one E8M0 scale; "
               "gpt-oss stores *_blocks uint8 [.., cols/32, 16] + *_scales uint8 [.., cols/32]",
    ),
    StorageFormat(
        id="nvfp4", display_name="NVFP4 (16 x E2M1 + FP8 E4M3 scale + FP32 tensor scale)", element_bits=4,
        native_compute="nvfp4",
        fields=(LayoutField(name="weight_scale_e4m3", bits=8, per="block", elements=16),
                LayoutField(name="weight_scale_2_fp32", bits=32, per="tensor"),
                LayoutField(name="input_scale_fp32", bits=32, per="tensor")),
        source="NVIDIA TensorRT Model Optimizer NVFP4 checkpoints: weight uint8 [out, in/2], weight_scale fp8 "
               "[out, in/16], weight_scale_2 and input_scale fp32 scalars",
    ),
    StorageFormat(
        id="int8", display_name="INT8, per-channel scale (W8A16)", element_bits=8,
        fields=(LayoutField(name="weight_scale_fp32", bits=32, per="row"),),
        source="compressed-tensors W8A16 / bitsandbytes LLM.int8 (SCB fp32 per output row)",
    ),
    StorageFormat(
        id="int4-gptq", display_name="INT4 GPTQ, group 128 (act-order g_idx)", element_bits=4,
        fields=(LayoutField(name="scales_fp16", bits=16, per="block", elements=128),
                LayoutField(name="qzeros_int4", bits=4, per="block", elements=128),
                LayoutField(name="g_idx_int32", bits=32, per="col")),
        source="AutoGPTQ/GPTQModel packing: qweight int32 [in/8, out], qzeros int32 [in/128, out/8], "
               "scales fp16 [in/128, out], g_idx int32 [in]",
    ),
    StorageFormat(
        id="int4-awq", display_name="INT4 AWQ, group 128", element_bits=4,
        fields=(LayoutField(name="scales_fp16", bits=16, per="block", elements=128),
                LayoutField(name="qzeros_int4", bits=4, per="block", elements=128)),
        source="AutoAWQ GEMM packing: qweight int32 [in, out/8], qzeros int32 [in/128, out/8], scales fp16 [in/128, out]",
    ),
    StorageFormat(
        id="nf4", display_name="bitsandbytes NF4, block 64", element_bits=4,
        fields=(LayoutField(name="absmax_fp32", bits=32, per="flat", elements=64),
                LayoutField(name="quant_map_fp32", bits=16 * 32, per="tensor")),
        source="QLoRA (Dettmers et al., arXiv 2305.14314) sec. 3: blocksize 64, fp32 absmax = 0.5 bit/param; "
               "bitsandbytes stores quant_map fp32[16] per tensor",
    ),
    StorageFormat(
        id="nf4-dq", display_name="bitsandbytes NF4, block 64, double quantization", element_bits=4,
        fields=(LayoutField(name="absmax_int8", bits=8, per="flat", elements=64),
                LayoutField(name="nested_absmax_fp32", bits=32, per="flat", elements=64 * 256),
                LayoutField(name="quant_map_fp32", bits=16 * 32, per="tensor"),
                LayoutField(name="nested_quant_map_fp32", bits=256 * 32, per="tensor"),
                LayoutField(name="offset_fp32", bits=32, per="tensor")),
        source="QLoRA sec. 3 double quantization: 8/64 + 32/(64*256) = 0.127 bit/param of constants",
    ),
    # GGUF types: element payload + per-block fields, from the block_* structs of ggml-common.h.
    _gguf("f32", "GGUF F32", 0, 1, 32, [], "ggml type 0"),
    _gguf("f16", "GGUF F16", 1, 1, 16, [], "ggml type 1"),
    _gguf("q4_0", "Q4_0", 2, 32, 4, [("d_fp16", 16)], _GGML_COMMON + ": block_q4_0 {half d; uint8 qs[16]}"),
    _gguf("q4_1", "Q4_1", 3, 32, 4, [("d_fp16", 16), ("m_fp16", 16)], _GGML_COMMON + ": block_q4_1"),
    _gguf("q5_0", "Q5_0", 6, 32, 5, [("d_fp16", 16)], _GGML_COMMON + ": block_q5_0 {half d; uint8 qh[4]; qs[16]}"),
    _gguf("q5_1", "Q5_1", 7, 32, 5, [("d_fp16", 16), ("m_fp16", 16)], _GGML_COMMON + ": block_q5_1"),
    _gguf("q8_0", "Q8_0", 8, 32, 8, [("d_fp16", 16)], _GGML_COMMON + ": block_q8_0 {half d; int8 qs[32]}"),
    _gguf("q2_k", "Q2_K", 10, _QK_K, 2, [("scales", 16 * 8), ("d_fp16", 16), ("dmin_fp16", 16)],
          _GGML_COMMON + ": block_q2_K", fallback="iq4_nl"),
    _gguf("q3_k", "Q3_K", 11, _QK_K, 3, [("scales", 12 * 8), ("d_fp16", 16)],
          _GGML_COMMON + ": block_q3_K {hmask[32]; qs[64]; scales[12]; half d}", fallback="iq4_nl"),
    _gguf("q4_k", "Q4_K", 12, _QK_K, 4, [("d_fp16", 16), ("dmin_fp16", 16), ("scales", 12 * 8)],
          _GGML_COMMON + ": block_q4_K", fallback="q5_0"),
    _gguf("q5_k", "Q5_K", 13, _QK_K, 5, [("d_fp16", 16), ("dmin_fp16", 16), ("scales", 12 * 8)],
          _GGML_COMMON + ": block_q5_K {d; dmin; scales[12]; qh[32]; qs[128]}", fallback="q5_1"),
    _gguf("q6_k", "Q6_K", 14, _QK_K, 6, [("scales_int8", 16 * 8), ("d_fp16", 16)],
          _GGML_COMMON + ": block_q6_K {ql[128]; qh[64]; scales[16]; half d}", fallback="q8_0"),
    _gguf("q8_k", "Q8_K", 15, _QK_K, 8, [("d_fp32", 32), ("bsums_int16", 16 * 16)], _GGML_COMMON + ": block_q8_K"),
    _gguf("iq2_xxs", "IQ2_XXS", 16, _QK_K, 2, [("d_fp16", 16)],
          _GGML_COMMON + ": block_iq2_xxs {half d; uint16 qs[QK_K/8]}", fallback="q4_0"),
    _gguf("iq2_xs", "IQ2_XS", 17, _QK_K, 2, [("d_fp16", 16), ("scales", _QK_K // 32 * 8)],
          _GGML_COMMON + ": block_iq2_xs {half d; uint16 qs[QK_K/8]; uint8 scales[QK_K/32]}", fallback="q4_0"),
    _gguf("iq3_xxs", "IQ3_XXS", 18, _QK_K, 3, [("d_fp16", 16)],
          _GGML_COMMON + ": block_iq3_xxs {half d; uint8 qs[3*QK_K/8]}", fallback="iq4_nl"),
    _gguf("iq1_s", "IQ1_S", 19, _QK_K, 1, [("d_fp16", 16), ("qh", _QK_K // 32 * 16)],
          _GGML_COMMON + ": block_iq1_s {half d; uint8 qs[QK_K/8]; uint16 qh[QK_K/32]}", fallback="q4_0"),
    _gguf("iq4_nl", "IQ4_NL", 20, 32, 4, [("d_fp16", 16)], _GGML_COMMON + ": block_iq4_nl {half d; uint8 qs[16]}"),
    _gguf("iq3_s", "IQ3_S", 21, _QK_K, 2, [("d_fp16", 16), ("qh", _QK_K // 32 * 8), ("signs", _QK_K // 8 * 8),
                                         ("scales", _QK_K // 64 * 8)],
          _GGML_COMMON + ": block_iq3_s {half d; qs[QK_K/4]; qh[QK_K/32]; signs[QK_K/8]; scales[QK_K/64]}",
          fallback="iq4_nl"),
    _gguf("iq2_s", "IQ2_S", 22, _QK_K, 2, [("d_fp16", 16), ("qh", _QK_K // 32 * 8), ("scales", _QK_K // 32 * 8)],
          _GGML_COMMON + ": block_iq2_s {half d; qs[QK_K/4]; qh[QK_K/32]; scales[QK_K/32]}", fallback="q4_0"),
    _gguf("iq4_xs", "IQ4_XS", 23, _QK_K, 4, [("d_fp16", 16), ("scales_h", 16), ("scales_l", _QK_K // 64 * 8)],
          _GGML_COMMON + ": block_iq4_xs {half d; uint16 scales_h; scales_l[QK_K/64]; qs[QK_K/2]}",
          fallback="iq4_nl"),
    _gguf("bf16-gguf", "GGUF BF16", 30, 1, 16, [], "ggml type 30"),
    _gguf("iq1_m", "IQ1_M", 29, _QK_K, 1, [("qh", _QK_K // 16 * 8), ("scales", _QK_K // 32 * 8)],
          _GGML_COMMON + ": block_iq1_m {qs[QK_K/8]; qh[QK_K/16]; scales[QK_K/32]}", fallback="q4_0"),
    # Ternary: five trits per byte in qs, the rest in qh; no plain per-element payload.
    _gguf("tq1_0", "TQ1_0", 34, _QK_K, 0, [("qs", (_QK_K - 4 * _QK_K // 64) // 5 * 8), ("qh", _QK_K // 64 * 8),
                                         ("d_fp16", 16)],
          _GGML_COMMON + ": block_tq1_0 {qs[(QK_K - 4*QK_K/64)/5]; qh[QK_K/64]; half d}"),
    _gguf("tq2_0", "TQ2_0", 35, _QK_K, 2, [("d_fp16", 16)], _GGML_COMMON + ": block_tq2_0 {qs[QK_K/4]; half d}"),
    _gguf("mxfp4-gguf", "GGUF MXFP4", 39, 32, 4, [("e_e8m0", 8)],
          _GGML_COMMON + ": block_mxfp4 {uint8 e; uint8 qs[16]} (OCP MX v1.0)"),
]

FORMATS: dict[str, StorageFormat] = {f.id: f for f in _FORMATS}

# Names people type for the same thing.
_ALIASES = {
    "float32": "fp32", "f32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16",
    "fp8_e4m3": "fp8-e4m3", "e4m3": "fp8-e4m3", "fp8_e5m2": "fp8-e5m2", "e5m2": "fp8-e5m2",
    "gptq": "int4-gptq", "awq": "int4-awq", "mxfp4_gguf": "mxfp4-gguf",
}

GGUF_BY_TYPE: dict[int, StorageFormat] = {f.gguf_type: f for f in _FORMATS if f.gguf_type is not None}


# Checkpoints name their bit width and group size in quantization_config, and any of them can
# occur (GPTQ 3/4/8 bits, groups of 32/64/128, FP8 tiles of 64 or 128), so these families take
# their parameters from the id: int4-gptq-g64, int8-awq-g128, fp8-block64, int4-ct-g32.
_PARAMETRIC = re.compile(r"^(?:int(?P<bits>[2-8])-(?P<kind>gptq|awq|ct)-g(?P<group>\d+)|fp8-block(?P<tile>\d+))$")


@lru_cache(maxsize=64)
def _parametric(fid: str) -> StorageFormat | None:
    m = _PARAMETRIC.match(fid)
    if m is None:
        return None
    if m["tile"]:
        t = int(m["tile"])
        if t <= 0:
            return None
        return StorageFormat(
            id=fid, display_name=f"FP8 E4M3, {t}x{t} block scales", element_bits=8, native_compute="fp8",
            fields=(LayoutField(name="weight_scale_inv_fp32", bits=32, per="tile", tile=(t, t)),),
            source=f"fine-grained FP8: quantization_config weight_block_size [{t}, {t}]; "
                   "weight_scale_inv fp32 [ceil(out/t), ceil(in/t)]",
        )
    bits, group, kind = int(m["bits"]), int(m["group"]), m["kind"]
    if group <= 0:
        return None
    scale = LayoutField(name="scales_fp16", bits=16, per="block", elements=group)
    if kind == "ct":
        # compressed-tensors pack-quantized, symmetric: weight_packed int32, weight_scale per group,
        # weight_shape int64[2] per tensor (no zero point).
        return StorageFormat(
            id=fid, display_name=f"INT{bits} compressed-tensors, group {group}", element_bits=bits,
            fields=(scale, LayoutField(name="weight_shape_int64", bits=128, per="tensor")),
            source="compressed-tensors pack-quantized: weight_packed int32 [out, in*bits/32], "
                   "weight_scale [out, in/group], weight_shape int64 [2]",
        )
    fields = [scale, LayoutField(name=f"qzeros_int{bits}", bits=bits, per="block", elements=group)]
    if kind == "gptq":
        fields.append(LayoutField(name="g_idx_int32", bits=32, per="col"))
    return StorageFormat(
        id=fid, display_name=f"INT{bits} {kind.upper()}, group {group}", element_bits=bits, fields=tuple(fields),
        source=("AutoGPTQ/GPTQModel packing: qweight int32, qzeros int32, scales fp16, g_idx int32 [in]"
                if kind == "gptq" else "AutoAWQ GEMM packing: qweight int32, qzeros int32, scales fp16"),
    )


def get_format(fid: str) -> StorageFormat:
    """A format by id (exact first), then by alias, then with '_' read as '-', then a parametric id."""
    key = fid.strip().lower()
    for cand in (key, _ALIASES.get(key), key.replace("_", "-")):
        if cand is not None and cand in FORMATS:
            return FORMATS[cand]
    fmt = _parametric(key.replace("_", "-"))
    if fmt is not None:
        return fmt
    raise UnknownIdError("storage format", fid, FORMATS)


def is_format(fid: str) -> bool:
    try:
        get_format(fid)
    except UnknownIdError:
        return False
    return True


def tensor_bytes(fmt: StorageFormat, shape: tuple[int, ...], copies: int = 1) -> int:
    """Bytes of ``copies`` tensors of ``shape``: the last axis is the input dimension."""
    if len(shape) == 1:
        return copies * fmt.vector_bytes(shape[0])
    rows = 1
    for d in shape[:-1]:
        rows *= d
    return copies * fmt.matrix_bytes(rows, shape[-1])
