"""MXFP4 -> bf16 in one Triton kernel: the CUDA fast path of ``fitcalc.edges.measure.packed._d_mxfp4``.
EDGE (torch, triton). Imported only on CUDA, and used only after ``packed._fused_matches_eager``
has found it bit-identical to the eager decode on this GPU.

Integer arithmetic only (no exp2, no float multiply), so no flush-to-zero or approximate
instruction can change a subnormal: E2M1 x 2^k is always a bf16 value (OCP MX v1.0 sec. 5.3.3
for E2M1, 5.4.1 for E8M0), written here bit by bit.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_BLOCK = 1024  # packed bytes per program


@triton.jit
def _e2m1_bf16_bits(c, s):
    """bf16 bits of E2M1 code ``c`` (S EE M) times 2^(s - 127). Magnitude 2^(e-1) x (1 + m/2)
    for e > 0, 0.5 (exponent -1, mantissa 1.0) for e = 0, m = 1; 0 for e = m = 0."""
    sgn = (c >> 3) & 1
    e = (c >> 1) & 3
    m = c & 1
    em1 = tl.where(e == 0, -1, e - 1)
    mb = tl.where(e == 0, 0, m)
    x = s + em1  # the bf16 biased exponent of the result
    normal = (x << 7) | (mb << 6)
    # x in {-1, 0}: a bf16 subnormal, mantissa field (1 + mb/2) x 2^(x + 6) = (2 + mb) << (x + 5)
    sub = (2 + mb) << tl.minimum(tl.maximum(x + 5, 0), 5)
    bits = tl.where(x >= 1, normal, sub)
    bits = tl.where(x >= 255, 0x7F80, bits)  # beyond bf16's range: infinity
    bits = tl.where((e == 0) & (m == 0), 0, bits)
    bits = tl.where(s == 255, 0x7FC0, bits)  # E8M0 0xFF is NaN
    return bits | (sgn << 15)


@triton.jit
def _decode(blocks_ptr, scales_ptr, out_ptr, n_bytes, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_bytes
    b = tl.load(blocks_ptr + offs, mask=mask, other=0).to(tl.int32)
    s = tl.load(scales_ptr + offs // 16, mask=mask, other=127).to(tl.int32)  # one scale per 16 bytes
    lo = _e2m1_bf16_bits(b & 15, s).to(tl.uint32)
    hi = _e2m1_bf16_bits(b >> 4, s).to(tl.uint32)
    word = lo | (hi << 16)  # low half (little-endian: first): the even element, the low nibble
    tl.store(out_ptr + offs, word.to(tl.int32, bitcast=True), mask=mask)


def decode_into(blocks, scales, out) -> None:
    """blocks uint8 [n, 16] and scales uint8 [n, 1] (contiguous) into ``out`` bf16 (contiguous,
    32 n elements)."""
    n = blocks.numel()
    _decode[(triton.cdiv(n, _BLOCK),)](blocks, scales, out.view(torch.int32).view(-1), n, BLOCK=_BLOCK)
