"""Storage formats as real torch tensors, and their dequantize-on-the-fly kernels. EDGE (torch).

Every format is built with the tensors a checkpoint of that format stores, in their dtypes and
shapes, so the bytes the stack holds are the bytes a real load holds:

  mxfp4         blocks uint8 [r, c/32, 16] + scales uint8 (E8M0) [r, c/32]    (gpt-oss *_blocks, *_scales)
  nvfp4         weight uint8 [r, c/2] + weight_scale fp8 E4M3 [r, c/16] + weight_scale_2 fp32 + input_scale fp32
  fp8           weight fp8 E4M3 [r, c] + weight_scale fp32 + input_scale fp32 (per tensor)
  fp8-channel   weight fp8 E4M3 [r, c] + weight_scale fp32 [r, 1]
  fp8-block128  weight fp8 E4M3 [r, c] + weight_scale_inv fp32 [ceil(r/128), ceil(c/128)]
  int8          weight int8 [r, c] + weight_scale fp32 [r, 1]
  int4-gptq     qweight int32 [c/8, r] + qzeros int32 [c/128, r/8] + scales fp16 [c/128, r] + g_idx int32 [c]
  int4-awq      qweight int32 [c, r/8] + qzeros int32 [c/128, r/8] + scales fp16 [c/128, r]
  nf4           weight uint8 [r*c/2, 1] + absmax fp32 [r*c/64] + quant_map fp32 [16]
  nf4-dq        ... absmax uint8 + nested_absmax fp32 [/256] + nested_quant_map fp32 [256] + offset fp32
  bf16/fp16/fp32/fp8-e4m3/fp8-e5m2: one tensor of that dtype

(r = output features, c = input features.) ``copies`` stacks experts on a leading axis, as
gpt-oss stores them. Dequantization writes one matrix into a compute-dtype buffer in row
chunks, so the only large scratch is that one buffer (the ``act.dequant_scratch`` term); the
chunk temporaries stay under ~2 MiB whatever the matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fitcalc.core.errors import InputError
from fitcalc.core.formats import get_format
from fitcalc.edges.measure import require_torch

torch = require_torch()

COMPUTE = torch.bfloat16  # the torch profile's activation dtype (activation_bytes: 2)

# OCP Microscaling Formats (MX) v1.0, sec. 5.3.3, FP4 E2M1: codes 0b0000..0b1111 (sign is the
# top bit; exponent bias 1; code 0b0001 is the subnormal 0.5). NVFP4 uses the same element type.
E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
E8M0_BIAS = 127  # OCP MX v1.0 sec. 5.4.1: E8M0 scale = 2^(code - 127); code 0xFF is NaN
E8M0_NAN = 0xFF

# NF4 code values: QLoRA (Dettmers et al., arXiv 2305.14314) Appendix E, as bitsandbytes ships
# them (csrc/kernels.cu nf4_data); the first element of a pair sits in the high nibble.
NF4_VALUES = (-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
              -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
              0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
              0.7229568362236023, 1.0)

# AutoAWQ GEMM packing puts column order[i] of each group of 8 in nibble i (awq/utils/packing);
# unpacking reads nibble REVERSE[j] for column j.
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
AWQ_REVERSE = (0, 4, 1, 5, 2, 6, 3, 7)

_CHUNK_ELEMENTS = 1 << 18  # dequantization temporaries per step (fp32: 1 MiB)
_E2M1_CHUNK = 1 << 19  # MXFP4 expansion: its only temporary is an int32 index per byte (1 MiB)
# On a GPU every step is a few kernel launches and ~30 us of Python, so steps are 4x larger
# there (temporaries of 4 MiB beside a scratch buffer of tens of MiB).
_GPU_FACTOR = 4


def _steps(device, elements: int) -> int:
    return elements if torch.device(device).type == "cpu" else elements * _GPU_FACTOR
_GROUP = 128  # GPTQ/AWQ group size (formats.py: int4-gptq, int4-awq)
_NF4_BLOCK = 64

_FLOAT_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32,
                 "fp8-e4m3": torch.float8_e4m3fn, "fp8-e5m2": torch.float8_e5m2}


def float_dtype(fid: str):
    """The torch dtype of a plain float format, or None."""
    return _FLOAT_DTYPES.get(get_format(fid).id)


# ---------------------------------------------------------------------------------------------
# random fill (values are random; dtypes and shapes are the format's)
# ---------------------------------------------------------------------------------------------


_SMALL = 1 << 16  # below this many elements, fill with the ordinary (slower, nicer) generators
_FILL_CHUNK = 1 << 20  # int64 words per step of the fast fills (8 MiB): few parallel regions
_INT64_SIGN = -(1 << 63)

# (lane bits, exponent shift, exponent bias, largest finite exponent field) per float dtype
_FLOAT_BITS = {torch.bfloat16: (16, 7, 127, 254), torch.float16: (16, 10, 15, 30), torch.float32: (32, 23, 127, 254),
               torch.float8_e4m3fn: (8, 3, 7, 14), torch.float8_e5m2: (8, 2, 15, 30)}


def _words(t):
    """A flat int64 view of a contiguous tensor whose bytes divide into words, else None."""
    nbytes = t.numel() * t.element_size()
    if not t.is_contiguous() or nbytes % 8 or t.numel() < _SMALL:
        return None
    return t.view(-1).view(torch.uint8).view(torch.int64)


def _random_words(w, mask: int | None = None, add: int = 0) -> None:
    """Uniform random bits into an int64 tensor, chunk by chunk (each chunk stays in cache),
    optionally masked and offset. random_() draws [0, 2^63), so the sign bit is filled from the
    next bit down."""
    for s in range(0, w.numel(), _FILL_CHUNK):
        c = w[s:s + _FILL_CHUNK]
        c.random_()
        c.bitwise_xor_((c << 1).bitwise_and_(_INT64_SIGN))
        if mask is not None:
            c.bitwise_and_(mask).add_(add)


def fill_normal(t, std: float, mean: float = 0.0):
    """Random values of about ``std`` around ``mean``, in place.

    Small tensors get normal values. Large float tensors (embeddings, expert stacks) get random
    bit patterns confined to finite values of magnitude ~[std/6, 3 std) with random signs, written
    as whole int64 words: a normal_ pass over gpt-oss's two 1.16 GB vocabulary matrices alone
    takes ~10 s on two cores, the bit fill under 1 s. Memory is what is measured; the values only
    need to be finite and of a sensible size (the numerical checks use small tensors)."""
    words = _words(t) if mean == 0.0 else None
    if words is None or t.dtype not in _FLOAT_BITS:
        if t.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):  # no normal kernel for fp8
            flat = t.view(-1)
            for s in range(0, flat.numel(), _CHUNK_ELEMENTS):
                n = min(_CHUNK_ELEMENTS, flat.numel() - s)
                flat[s:s + n].copy_(torch.empty(n, dtype=torch.bfloat16, device=t.device).normal_(mean, std))
            return t
        return t.normal_(mean, std)
    lane, shift, bias, top = _FLOAT_BITS[t.dtype]
    base = max(1, min(top - 3, bias + round(math.log2(std / 1.5) - 1.5)))
    mask_lane = (1 << (lane - 1)) | (3 << shift) | ((1 << shift) - 1)  # sign, 2 low exponent bits, mantissa
    mask = add = 0
    for k in range(64 // lane):
        mask |= mask_lane << (k * lane)
        add |= (base << shift) << (k * lane)
    _random_words(words, _signed64(mask), _signed64(add))
    return t


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def fill_bits(t, low: int | None = None, high: int | None = None):
    """Uniformly random integers (packed nibbles, codes) in place; a range only for small tensors."""
    if low is None:
        words = _words(t)
        if words is not None:
            _random_words(words)
            return t
        info = torch.iinfo(t.dtype)
        low, high = info.min, info.max + 1
    return t.random_(low, high)


def _empty(shape, dtype, device):
    return torch.empty(shape, dtype=dtype, device=device)


def _scalar(lead, value: float, device):
    return torch.full(lead, value, dtype=torch.float32, device=device)


# ---------------------------------------------------------------------------------------------
# one matrix (or a stack of expert matrices) in its storage format
# ---------------------------------------------------------------------------------------------


@dataclass
class Packed:
    """``copies`` matrices of ``rows x cols`` (copies=0: a single matrix) in format ``fmt``."""

    fmt: str
    rows: int
    cols: int
    copies: int
    parts: dict  # name -> tensor, as the checkpoint stores them

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.parts.values())

    @property
    def is_plain(self) -> bool:
        """Stored in the compute dtype already: used in place, no dequantization."""
        return self.fmt == "bf16" and COMPUTE == torch.bfloat16

    def part(self, name: str, index: int | None):
        t = self.parts[name]
        return t[index] if self.copies else t

    def matrix(self, index: int | None = None, out=None):
        """The matrix in the compute dtype: a view when plain, else dequantized into ``out`` (or a new buffer)."""
        if self.is_plain:
            return self.part("weight", index)
        if out is None:
            out = torch.empty(self.rows, self.cols, dtype=COMPUTE, device=self.parts[next(iter(self.parts))].device)
        _DEQUANT[self.fmt](self, index, out)
        return out


def build_packed(fid: str, rows: int, cols: int, copies: int, device, std: float = 0.02) -> Packed:
    """A randomly filled matrix (or ``copies`` of them) in format ``fid``, with the real storage layout."""
    fmt = get_format(fid)
    if fmt.id not in BUILDERS:
        raise InputError(f"verify cannot build the storage format {fmt.id!r} ({fmt.display_name})",
                         hint="verify builds safetensors-style formats (bf16, fp8*, mxfp4, nvfp4, int8, int4-gptq, "
                              "int4-awq, nf4); GGUF types run in llama.cpp, not in a PyTorch stack")
    lead = (copies,) if copies else ()
    parts = BUILDERS[fmt.id](rows, cols, lead, device, std)
    return Packed(fmt=fmt.id, rows=rows, cols=cols, copies=copies, parts=parts)


def can_build(fid: str) -> bool:
    return get_format(fid).id in BUILDERS


def _need(cond: bool, fid: str, what: str) -> None:
    if not cond:
        raise InputError(f"format {fid}: {what}", hint="the checkpoint layout of this format needs it")


# ---- builders ------------------------------------------------------------------------------


def _b_float(fid):
    def build(r, c, lead, dev, std):
        return {"weight": fill_normal(_empty((*lead, r, c), _FLOAT_DTYPES[fid], dev), std)}
    return build


def _b_mxfp4(r, c, lead, dev, std):
    _need(c % 32 == 0, "mxfp4", f"input dimension {c} is not a multiple of 32")
    # scales 2^-9..2^-6 with E2M1 codes up to 6 keep weights near N(0, 0.02)'s range
    return {"blocks": fill_bits(_empty((*lead, r, c // 32, 16), torch.uint8, dev)),
            "scales": fill_bits(_empty((*lead, r, c // 32), torch.uint8, dev), E8M0_BIAS - 9, E8M0_BIAS - 5)}


def _b_nvfp4(r, c, lead, dev, std):
    _need(c % 16 == 0, "nvfp4", f"input dimension {c} is not a multiple of 16")
    ws = fill_normal(_empty((*lead, r, c // 16), torch.float8_e4m3fn, dev), 0.25, 1.0)
    return {"weight": fill_bits(_empty((*lead, r, c // 2), torch.uint8, dev)), "weight_scale": ws,
            "weight_scale_2": _scalar(lead, std / 6, dev), "input_scale": _scalar(lead, 1.0, dev)}


def _b_fp8(r, c, lead, dev, std):
    return {"weight": fill_normal(_empty((*lead, r, c), torch.float8_e4m3fn, dev), 1.0),
            "weight_scale": _scalar(lead, std, dev), "input_scale": _scalar(lead, 1.0, dev)}


def _b_fp8_channel(r, c, lead, dev, std):
    return {"weight": fill_normal(_empty((*lead, r, c), torch.float8_e4m3fn, dev), 1.0),
            "weight_scale": _scalar((*lead, r, 1), std, dev)}


def _b_fp8_block(r, c, lead, dev, std):
    return {"weight": fill_normal(_empty((*lead, r, c), torch.float8_e4m3fn, dev), 1.0),
            "weight_scale_inv": _scalar((*lead, -(-r // 128), -(-c // 128)), std, dev)}


def _b_int8(r, c, lead, dev, std):
    return {"weight": fill_bits(_empty((*lead, r, c), torch.int8, dev)),
            "weight_scale": _scalar((*lead, r, 1), std / 64, dev)}


def _b_int4_common(r, c, std, lead, dev):
    _need(c % _GROUP == 0, "int4", f"input dimension {c} is not a multiple of {_GROUP}")
    _need(r % 8 == 0, "int4", f"output dimension {r} is not a multiple of 8")
    g = c // _GROUP
    return {"qzeros": fill_bits(_empty((*lead, g, r // 8), torch.int32, dev)),
            "scales": fill_normal(_empty((*lead, g, r), torch.float16, dev), std / 40, std / 8)}


def _b_gptq(r, c, lead, dev, std):
    common = _b_int4_common(r, c, std, lead, dev)
    g_idx = (torch.arange(c, device=dev, dtype=torch.int32) // _GROUP).expand(*lead, c).contiguous()
    return {"qweight": fill_bits(_empty((*lead, c // 8, r), torch.int32, dev)), **common, "g_idx": g_idx}


def _b_awq(r, c, lead, dev, std):
    common = _b_int4_common(r, c, std, lead, dev)
    return {"qweight": fill_bits(_empty((*lead, c, r // 8), torch.int32, dev)), **common}


def _nf4_map(lead, dev):
    return torch.tensor(NF4_VALUES, dtype=torch.float32, device=dev).expand(*lead, 16).contiguous()


def _b_nf4(r, c, lead, dev, std):
    n = r * c
    _need(n % 2 == 0, "nf4", "an odd number of weights cannot be packed two per byte")
    return {"weight": fill_bits(_empty((*lead, n // 2, 1), torch.uint8, dev)),
            "absmax": fill_normal(_empty((*lead, -(-n // _NF4_BLOCK)), torch.float32, dev), std / 4, 2 * std),
            "quant_map": _nf4_map(lead, dev)}


def _b_nf4_dq(r, c, lead, dev, std):
    n = r * c
    _need(n % 2 == 0, "nf4-dq", "an odd number of weights cannot be packed two per byte")
    nblk = -(-n // _NF4_BLOCK)
    nested_map = torch.linspace(0.0, 1.0, 256, device=dev).expand(*lead, 256).contiguous()
    return {"weight": fill_bits(_empty((*lead, n // 2, 1), torch.uint8, dev)),
            "absmax": fill_bits(_empty((*lead, nblk), torch.uint8, dev)),
            "nested_absmax": _scalar((*lead, -(-nblk // 256)), 2 * std, dev),
            "quant_map": _nf4_map(lead, dev), "nested_quant_map": nested_map,
            "offset": _scalar(lead, 0.0, dev)}


# ---- dequantizers (write into out [rows, cols] COMPUTE, in row chunks) ----------------------


def _row_chunks(rows: int, cols: int, align: int = 1, elements: int = _CHUNK_ELEMENTS, device="cpu"):
    step = max(align, (_steps(device, elements) // max(cols, 1)) // align * align)
    for s in range(0, rows, step):
        yield s, min(rows, s + step)


def _d_float(p: Packed, i, out):
    w = p.part("weight", i)
    for a, b in _row_chunks(p.rows, p.cols, device=out.device):
        out[a:b].copy_(w[a:b])


_PAIR_LUT: dict = {}


def _e2m1_pairs(device):
    """int32 table: byte -> (E2M1 low nibble, E2M1 high nibble) as two bf16 halves, so one
    gather expands a packed byte into two compute-dtype values (low nibble = even element)."""
    key = str(device)
    if key not in _PAIR_LUT:
        lut = torch.tensor(E2M1_VALUES, dtype=torch.bfloat16)
        codes = torch.arange(256)
        pairs = torch.stack([lut[codes & 15], lut[codes >> 4]], dim=-1).contiguous()
        _PAIR_LUT[key] = pairs.view(torch.int32).reshape(256).to(device)
    return _PAIR_LUT[key]


def _e2m1_into(packed_rows, out_rows):
    """Expand uint8 [n, c/2] of E2M1 pairs into bf16 out_rows [n, c]."""
    lut = _e2m1_pairs(packed_rows.device)
    dst = out_rows.view(torch.int32).reshape(-1) if COMPUTE == torch.bfloat16 else None
    idx = packed_rows.reshape(-1).to(torch.int32)
    if dst is not None:
        torch.index_select(lut, 0, idx, out=dst)
    else:  # pragma: no cover - compute dtype is bf16
        out_rows.copy_(lut[idx.long()].view(torch.bfloat16).view(out_rows.shape))


def e8m0_to_float(codes):
    """E8M0 codes -> fp32 2^(code - 127), NaN for 0xFF (OCP MX v1.0 sec. 5.4.1)."""
    v = torch.exp2(codes.to(torch.float32) - E8M0_BIAS)
    return torch.where(codes == E8M0_NAN, torch.full_like(v, float("nan")), v)


_MX_LUT: dict = {}


def _mxfp4_lut(device):
    """int32 [65,536]: (E8M0 scale code << 8 | packed byte) -> the byte's two E2M1 values times
    2^(code - 127) as two bf16 halves (low nibble = even element; code 0xFF: NaN). E2M1 x 2^k
    is exact in bf16 (fp32's exponent range, subnormals down to 2^-133), so one gather per byte
    does what a decode and a multiply did. A 256 KiB cache of the measuring machinery (an
    engine's kernel keeps its table in registers), built outside the storage tracker."""
    key = str(device)
    if key not in _MX_LUT:
        from torch.utils._python_dispatch import _disable_current_modes

        with _disable_current_modes():
            e2m1 = torch.tensor(E2M1_VALUES, dtype=torch.float64)
            codes = torch.arange(256)
            pair = torch.stack([e2m1[codes & 15], e2m1[codes >> 4]], dim=-1)  # [byte, 2]
            scale = torch.exp2(torch.arange(256, dtype=torch.float64) - E8M0_BIAS)
            scale[E8M0_NAN] = float("nan")
            vals = (scale.view(256, 1, 1) * pair.view(1, 256, 2)).to(torch.bfloat16).contiguous()
            _MX_LUT[key] = vals.view(torch.int32).reshape(256 * 256).to(device)
    return _MX_LUT[key]


def _mx_gather(blocks, scales, lut, idx, dst) -> None:
    """blocks uint8 [n, 16], scales uint8 [n, 1] -> dst int32 [n, 16] (two bf16 per word), using
    idx int32 [n, 16] (not overlapping dst) for the table index: three kernels per piece."""
    idx.copy_(blocks)
    idx.add_(scales, alpha=256)
    torch.index_select(lut, 0, idx.view(-1), out=dst.view(-1))


def _d_mxfp4(p: Packed, i, out):
    """One gather per packed byte from the (scale, byte) table. The table index (int32, 4 bytes
    per packed byte) is as large as the output it produces, so it is written into the part of
    ``out`` not filled yet: the second half of the blocks is decoded with its index held in the
    first half, then the second quarter with its index in the first quarter, and so on down to
    one small piece with a temporary of its own (<= 1 MiB on a CPU, 4 MiB on a GPU). The scratch
    stays one matrix plus that temporary, in about a dozen kernels per matrix rather than one
    decode and one multiply per 2 MiB step."""
    assert COMPUTE == torch.bfloat16 and out.is_contiguous()
    blocks = p.part("blocks", i).reshape(-1, 16)  # [r * c/32, 16], one row per block of 32 weights
    scales = p.part("scales", i).reshape(-1, 1)
    if out.device.type == "cuda" and _mxfp4_fused() is not None:
        _mxfp4_fused()(blocks, scales, out)
        return
    lut = _mxfp4_lut(out.device)
    words = out.view(torch.int32).view(-1, 16)  # 16 words = 32 bf16 per block
    end = blocks.shape[0]
    small = max(1, _steps(out.device, _E2M1_CHUNK) // 32)
    while end > small:
        mid = (end + 1) // 2  # [mid, end) is no larger than [0, mid), where its index goes
        n = end - mid
        _mx_gather(blocks[mid:end], scales[mid:end], lut, words[:n], words[mid:end])
        end = mid
    if end:
        idx = torch.empty(end, 16, dtype=torch.int32, device=out.device)
        _mx_gather(blocks[:end], scales[:end], lut, idx, words[:end])
        del idx


# ---- MXFP4 in one fused kernel on CUDA (Triton, when it works here) --------------------------
#
# Each launch of a PyTorch kernel costs a few microseconds of Python and dispatch; gpt-oss-120b
# decodes 2 x 128 expert matrices per layer per 512-token chunk, so on a GPU the eager decode
# above is bound by those launches, not by the GPU. One Triton kernel writes the bf16 pairs
# straight from the packed bytes and scales: one launch per matrix and no scratch beyond the
# matrix. It is used only after it has reproduced the eager decode bit for bit on every
# (scale code, byte) pair on this GPU; otherwise (no Triton, no compiler, a mismatch) the eager
# decode runs and ``MXFP4_KERNEL`` says why.

MXFP4_KERNEL = {"path": "eager", "why": "not tried (not on CUDA)"}
_FUSED: dict = {}


def _mxfp4_fused():
    """The checked fused decoder ``f(blocks [n, 16] u8, scales [n, 1] u8, out bf16)``, or None."""
    if "fn" not in _FUSED:
        from torch.utils._python_dispatch import _disable_current_modes

        _FUSED["fn"] = None
        try:
            with _disable_current_modes():
                fn = _build_triton_mxfp4()  # imports triton
                ok = _fused_matches_eager(fn, "cuda")
            if ok:
                _FUSED["fn"] = fn
                MXFP4_KERNEL.update(path="triton", why="matches the eager decode on all 65,536 (scale, byte) pairs")
            else:
                MXFP4_KERNEL.update(path="eager", why="the Triton kernel differed from the eager decode")
        except Exception as e:  # noqa: BLE001 - no Triton, no C compiler, an unsupported GPU
            MXFP4_KERNEL.update(path="eager", why=f"Triton unavailable: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}")
    return _FUSED["fn"]


def _fused_matches_eager(fn, device) -> bool:
    """Row r: scale code r for its 16 blocks, whose 256 bytes are 0..255: every pair once."""
    blocks = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(1, 16, 16).expand(256, 16, 16)
    blocks = blocks.contiguous().to(device)
    scales = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(256, 1).expand(256, 16).contiguous().to(device)
    p = Packed(fmt="mxfp4", rows=256, cols=512, copies=0, parts={"blocks": blocks, "scales": scales})
    want = torch.empty(256, 512, dtype=COMPUTE, device=device)
    _FUSED["fn"] = None  # the eager path for the reference
    _d_mxfp4(p, None, want)
    got = torch.empty_like(want)
    fn(blocks.view(-1, 16), scales.view(-1, 1), got)
    wf, gf = want.float(), got.float()
    nan_ok = torch.equal(wf.isnan(), gf.isnan())
    fin = ~wf.isnan()
    return bool(nan_ok and torch.equal(want.view(torch.int16)[fin], got.view(torch.int16)[fin]))


def _build_triton_mxfp4():
    from fitcalc.edges.measure.mxfp4_triton import decode_into

    return decode_into


def _d_nvfp4(p: Packed, i, out):
    w, ws, ws2 = p.part("weight", i), p.part("weight_scale", i), p.part("weight_scale_2", i)
    nb = p.cols // 16
    for a, b in _row_chunks(p.rows, p.cols, device=out.device):
        _e2m1_into(w[a:b], out[a:b])
        scale = ws[a:b].to(torch.float32) * ws2
        vals = out[a:b].view(b - a, nb, 16).to(torch.float32) * scale.unsqueeze(-1)
        out[a:b].copy_(vals.view(b - a, p.cols))


def _d_fp8(p: Packed, i, out):
    """fp8 per tensor: the exact copy, then the multiply by the [1, 1]-shaped scale (a 0-dim one
    would not take part in type promotion and the product would be rounded to bf16 first)."""
    w, s = p.part("weight", i), p.part("weight_scale", i)
    out.copy_(w)
    out.mul_(s.reshape(1, 1))


def _d_row_scaled(p: Packed, i, out):
    """int8 / fp8 per output channel. Every int8 and E4M3 value is a bf16 value, so the copy is
    exact; the in-place multiply by the fp32 scales computes in fp32 (type promotion) and rounds
    once into bf16, as ``(w.float() * s).to(bf16)`` does: two kernels, no temporaries."""
    w, s = p.part("weight", i), p.part("weight_scale", i)
    out.copy_(w)
    out.mul_(s)


def _d_fp8_block(p: Packed, i, out):
    """One fp32 scale per 128 x 128 tile: the exact copy, then one multiply over the tiles viewed
    as [rows/128, 128, cols/128, 128] against the scales broadcast over them (fp32 arithmetic,
    one rounding, as above), and the ragged edge (a dimension not a multiple of 128) per tile."""
    w, s = p.part("weight", i), p.part("weight_scale_inv", i)
    out.copy_(w)
    r0, c0 = p.rows // 128 * 128, p.cols // 128 * 128
    nr, nc = r0 // 128, c0 // 128
    if nr and nc:
        out[:r0, :c0].view(nr, 128, nc, 128).mul_(s[:nr, :nc].reshape(nr, 1, nc, 1))
    if r0 < p.rows and nc:  # the last, partial block of rows
        out[r0:, :c0].view(p.rows - r0, nc, 128).mul_(s[nr, :nc].reshape(1, nc, 1))
    if c0 < p.cols:  # the last, partial block of columns, per block of rows (a [1, 1] scale, not a
        for a in range(0, p.rows, 128):  # 0-dim one, so that the product is computed in fp32)
            out[a:a + 128, c0:].mul_(s[a // 128, nc:nc + 1].reshape(1, 1))


_SHIFTS: dict = {}


def _nibble_shifts(device):
    key = str(device)
    if key not in _SHIFTS:
        _SHIFTS[key] = torch.arange(0, 32, 4, dtype=torch.int32, device=device)
    return _SHIFTS[key]


def unpack_int4_last(q, reverse: tuple[int, ...] | None = None):
    """int32 [..., n] -> int32 [..., 8n]: nibble k of each word (bits 4k..4k+3), optionally reordered."""
    nib = (q.unsqueeze(-1) >> _nibble_shifts(q.device)).bitwise_and_(15)
    if reverse is not None:
        nib = nib[..., list(reverse)]
    return nib.reshape(*q.shape[:-1], q.shape[-1] * 8)


def _tiles(cols: int, rows: int, device):
    """(input range, output range) tiles: whole 128-input groups x a multiple of 8 outputs, within
    the step budget (a group of 128 inputs across 14336 outputs alone would be 1.8 M elements)."""
    budget = _steps(device, _CHUNK_ELEMENTS)
    in_step = max(_GROUP, budget // max(rows, 1) // _GROUP * _GROUP)
    out_step = rows if in_step * rows <= budget else max(8, budget // in_step // 8 * 8)
    for a in range(0, cols, in_step):
        for o0 in range(0, rows, out_step):
            yield a, min(cols, a + in_step), o0, min(rows, o0 + out_step)


def _d_gptq(p: Packed, i, out):
    """GPTQ (AutoGPTQ checkpoint format v1): w[o, k] = scales[g, o] * (q[k, o] - (zeros[g, o] + 1)),
    g = g_idx[k]; q packed 8 per int32 along the input dimension (qweight [in/8, out])."""
    qw, qz, sc, gi = p.part("qweight", i), p.part("qzeros", i), p.part("scales", i), p.part("g_idx", i)
    shifts = _nibble_shifts(qw.device).view(1, 8, 1)
    for a, b, o0, o1 in _tiles(p.cols, p.rows, out.device):
        q = (qw[a // 8: b // 8, o0:o1].unsqueeze(1) >> shifts).bitwise_and_(15).reshape(b - a, o1 - o0)
        g = gi[a:b].long()
        z = unpack_int4_last(qz[:, o0 // 8: -(-o1 // 8)])[g]  # [b - a, outputs of the tile]
        q.sub_(z.add_(1))
        w = q.to(torch.float32).mul_(sc[g, o0:o1].to(torch.float32))
        out[o0:o1, a:b].copy_(w.t())


def _d_awq(p: Packed, i, out):
    """AWQ GEMM: w[o, k] = scales[g, o] * (q[k, o] - zeros[g, o]), g = k // 128; q and zeros packed
    8 per int32 along the output dimension in AWQ's interleaved nibble order."""
    qw, qz, sc = p.part("qweight", i), p.part("qzeros", i), p.part("scales", i)
    for a, b, o0, o1 in _tiles(p.cols, p.rows, out.device):
        q = unpack_int4_last(qw[a:b, o0 // 8: -(-o1 // 8)], AWQ_REVERSE)  # [b - a, outputs of the tile]
        g = torch.arange(a, b, device=qw.device) // _GROUP
        q.sub_(unpack_int4_last(qz[:, o0 // 8: -(-o1 // 8)], AWQ_REVERSE)[g])
        w = q.to(torch.float32).mul_(sc[g, o0:o1].to(torch.float32))
        out[o0:o1, a:b].copy_(w.t())


def _nf4_chunks(p: Packed, i, out, absmax_of):
    w, qmap = p.part("weight", i).view(-1), p.part("quant_map", i)
    flat = out.view(-1)
    n = p.rows * p.cols
    step = _steps(out.device, _CHUNK_ELEMENTS) // _NF4_BLOCK * _NF4_BLOCK
    for a in range(0, n, step):
        b = min(n, a + step)
        byte = w[a // 2: b // 2].to(torch.int64)
        codes = torch.stack([byte >> 4, byte & 15], dim=-1).reshape(-1)  # high nibble first (bitsandbytes)
        am = absmax_of(a // _NF4_BLOCK, -(-b // _NF4_BLOCK)).repeat_interleave(_NF4_BLOCK)[: b - a]
        flat[a:b].copy_(qmap[codes] * am)


def _d_nf4(p: Packed, i, out):
    am = p.part("absmax", i)
    _nf4_chunks(p, i, out, lambda s, e: am[s:e])


def _d_nf4_dq(p: Packed, i, out):
    """Double quantization: absmax = nested_quant_map[absmax_u8] * nested_absmax[block // 256] + offset."""
    am, nam, nmap, off = (p.part("absmax", i), p.part("nested_absmax", i), p.part("nested_quant_map", i),
                          p.part("offset", i))

    def absmax(s, e):
        blocks = torch.arange(s, e, device=am.device)
        return nmap[am[s:e].long()] * nam[blocks // 256] + off

    _nf4_chunks(p, i, out, absmax)


BUILDERS = {
    **{fid: _b_float(fid) for fid in _FLOAT_DTYPES},
    "mxfp4": _b_mxfp4, "nvfp4": _b_nvfp4, "fp8": _b_fp8, "fp8-channel": _b_fp8_channel,
    "fp8-block128": _b_fp8_block, "int8": _b_int8, "int4-gptq": _b_gptq, "int4-awq": _b_awq,
    "nf4": _b_nf4, "nf4-dq": _b_nf4_dq,
}
_DEQUANT = {
    **{fid: _d_float for fid in _FLOAT_DTYPES},
    "mxfp4": _d_mxfp4, "nvfp4": _d_nvfp4, "fp8": _d_fp8, "fp8-channel": _d_row_scaled,
    "fp8-block128": _d_fp8_block, "int8": _d_row_scaled, "int4-gptq": _d_gptq, "int4-awq": _d_awq,
    "nf4": _d_nf4, "nf4-dq": _d_nf4_dq,
}
