"""GGUF files: metadata and the tensor table from the header, never the tensor data. EDGE.

Layout (ggml docs/gguf.md; gguf-py ``gguf_reader.py``): ``GGUF`` magic, u32 version (2 or 3),
u64 tensor count, u64 key-value count, the key-values (string key, u32 type, value), the tensor
infos (name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset), padding to
``general.alignment`` (32 by default), then the data.

We parse the header ourselves, with the ``gguf`` package's type tables: gguf-py's ``GGUFReader``
maps the whole file and needs the tensor data present (it failed on a header-only file), and it
builds a numpy array per vocabulary entry (7 s for a 150,000-token vocabulary here). This reader
reads sequentially, skips large arrays without building them, refuses a header past
``MAX_HEADER_BYTES`` or past the end of the file, and checks every count against the bytes left.

Bytes per tensor come from ``fitcalc.core.formats.GGUF_BY_TYPE`` (block records derived from
ggml-common.h), falling back to gguf-py's ``GGML_QUANT_SIZES`` for types fitcalc does not list.
The architecture comes from the ``{arch}.*`` keys, with booleans (biases, sinks, q/k norms,
tied output) read from which tensors exist.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fitcalc.core.checkpoint import CheckpointTable, FileRecord, TensorRecord, classify_gguf, summarize
from fitcalc.core.errors import ModelSourceError
from fitcalc.core.formats import GGUF_BY_TYPE
from fitcalc.core.spec import MAX_LAYERS, MLA, MTP, Architecture, LinearAttention, ModelSpec, MoE, RecipeSpec, RopeScaling, Source

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
# A header with a 256k-token vocabulary and its merges is ~20 MB; 256 MiB is far past any real one.
MAX_HEADER_BYTES = 256 * 1024 * 1024
MAX_DIMS = 4  # GGML_MAX_DIMS
KEEP_ARRAY = 4096  # arrays up to this many numbers are kept (per-layer values); longer ones are skipped
KEEP_STRING = 64 * 1024

# GGUF value types (gguf.constants.GGUFValueType): id -> (struct code, size); 8 string, 9 array.
_SCALARS = {0: ("B", 1), 1: ("b", 1), 2: ("H", 2), 3: ("h", 2), 4: ("I", 4), 5: ("i", 4), 6: ("f", 4), 7: ("?", 1),
            10: ("Q", 8), 11: ("q", 8), 12: ("d", 8)}
_STRING, _ARRAY = 8, 9


class GGUFError(ModelSourceError):
    """A GGUF file that is malformed or not GGUF; the message names the file."""


@dataclass(frozen=True)
class SkippedArray:
    """A long array left unread (vocabulary, merges): its element type and length."""

    item_type: int
    count: int


class _Cursor:
    def __init__(self, f: BinaryIO, where: str, file_size: int):
        self.f, self.where, self.size = f, where, file_size
        self.pos = 0
        self.limit = min(file_size, MAX_HEADER_BYTES)
        self.endian = "<"

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.limit:
            if self.pos + n > self.size:
                raise GGUFError(f"{self.where}: truncated: {what} runs past the end of the file "
                                f"({self.size:,} bytes)", hint="the file is incomplete; download it again")
            raise GGUFError(f"{self.where}: header is over the {MAX_HEADER_BYTES:,}-byte cap at {what}",
                            hint="the file is damaged or not a GGUF file")

    def read(self, n: int, what: str) -> bytes:
        self.need(n, what)
        b = self.f.read(n)
        if len(b) != n:
            raise GGUFError(f"{self.where}: truncated while reading {what}", hint="download the file again")
        self.pos += n
        return b

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.f.seek(n, 1)
        self.pos += n

    def unpack(self, code: str, size: int, what: str) -> Any:
        return struct.unpack(self.endian + code, self.read(size, what))[0]

    def u32(self, what: str) -> int:
        return self.unpack("I", 4, what)

    def u64(self, what: str) -> int:
        return self.unpack("Q", 8, what)

    def string(self, what: str, keep: bool = True) -> str | None:
        n = self.u64(what)
        if not keep or n > KEEP_STRING:
            self.skip(n, what)
            return None
        try:
            return self.read(n, what).decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError(f"{self.where}: {what} is not UTF-8") from None


def _value(c: _Cursor, vtype: int, key: str) -> Any:
    if vtype in _SCALARS:
        code, size = _SCALARS[vtype]
        return c.unpack(code, size, key)
    if vtype == _STRING:
        return c.string(key)
    if vtype == _ARRAY:
        itype = c.u32(key)
        count = c.u64(key)
        if itype in _SCALARS:
            code, size = _SCALARS[itype]
            c.need(count * size, f"{key} ({count:,} items)")
            if count <= KEEP_ARRAY:
                return list(struct.unpack(f"{c.endian}{count}{code}", c.read(count * size, key)))
            c.skip(count * size, key)
            return SkippedArray(itype, count)
        if itype == _STRING:
            c.need(count * 8, f"{key} ({count:,} strings)")  # each string has at least its length
            keep = count <= 64
            out = []
            for _ in range(count):
                s = c.string(key, keep=keep)
                if keep:
                    out.append(s)
            return out if keep else SkippedArray(itype, count)
        raise GGUFError(f"{c.where}: key {key!r} holds an array of unsupported type {itype}")
    raise GGUFError(f"{c.where}: key {key!r} has unknown value type {vtype}",
                    hint="the file is damaged or from a newer GGUF version")


def _type_bytes(type_id: int) -> tuple[int, int, str, str]:
    """(block elements, block bytes, format id, type name) of a ggml type."""
    fmt = GGUF_BY_TYPE.get(type_id)
    if fmt is not None:
        block = fmt.block_elements
        nbytes = fmt.block_bytes if fmt.block_bytes is not None else fmt.element_bits // 8
        return block, nbytes, fmt.id, _type_name(type_id)
    try:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        t = GGMLQuantizationType(type_id)
        block, nbytes = GGML_QUANT_SIZES[t]
        return block, nbytes, t.name.lower(), t.name
    except (ImportError, ValueError, KeyError):
        raise GGUFError(f"unknown ggml type {type_id}",
                        hint="the file uses a tensor type newer than this fitcalc and gguf package") from None


def _type_name(type_id: int) -> str:
    try:
        from gguf.constants import GGMLQuantizationType

        return GGMLQuantizationType(type_id).name
    except (ImportError, ValueError):
        return str(GGUF_BY_TYPE[type_id].id).upper()


@dataclass
class GGUFHeader:
    version: int
    kv: dict[str, Any]
    table: CheckpointTable
    format_of: dict[str, str]  # type name -> fitcalc format id
    data_start: int


def read_gguf_header(path: Path) -> GGUFHeader:
    """Metadata and tensor table of a GGUF file, reading the header only."""
    where = str(path)
    try:
        size = path.stat().st_size
        f = path.open("rb")
    except OSError as e:
        raise GGUFError(f"{where}: cannot read ({e.strerror or e})", hint="check the path") from None
    with f:
        return read_gguf_stream(f, where, size, path.name)


def read_gguf_stream(f: BinaryIO, where: str, size: int, filename: str) -> GGUFHeader:
    """The same from any object with ``read(n)`` and ``seek(n, 1)`` (a local file, or a Hub file
    read by HTTP range requests: fitcalc.edges.ingest.hub): the header only, never the data."""
    c = _Cursor(f, where, size)
    if size < 4 or c.read(4, "the magic") != GGUF_MAGIC:
        raise GGUFError(f"{where}: not a GGUF file (bad magic)", hint="GGUF files start with the bytes 'GGUF'")
    raw_version = c.read(4, "the version")
    version = struct.unpack("<I", raw_version)[0]
    if version & 0xFFFF == 0 and version != 0:  # written big-endian (gguf-py does the same test)
        c.endian = ">"
        version = struct.unpack(">I", raw_version)[0]
    if version not in SUPPORTED_VERSIONS:
        raise GGUFError(f"{where}: GGUF version {version} is not supported (2 and 3 are)",
                        hint="convert the model with a current llama.cpp")
    n_tensors = c.u64("the tensor count")
    n_kv = c.u64("the key-value count")
    # Each key-value takes at least 12 bytes and each tensor info at least 24: counts that
    # cannot fit in the file are refused before any loop runs.
    c.need(n_kv * 12 + n_tensors * 24, f"{n_kv:,} key-values and {n_tensors:,} tensor infos")
    kv: dict[str, Any] = {}
    for _ in range(n_kv):
        key = c.string("a key") or ""
        vtype = c.u32(key)
        kv[key] = _value(c, vtype, key)
    infos = []
    for _ in range(n_tensors):
        name = c.string("a tensor name") or ""
        n_dims = c.u32(name)
        if not 1 <= n_dims <= MAX_DIMS:
            raise GGUFError(f"{where}: tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
        ne = [c.u64(name) for _ in range(n_dims)]
        ttype = c.u32(name)
        offset = c.u64(name)
        infos.append((name, ne, ttype, offset))
    align = kv.get("general.alignment", 32)
    if not isinstance(align, int) or align <= 0 or align & (align - 1):
        raise GGUFError(f"{where}: general.alignment {align!r} is not a power of two")
    data_start = c.pos + (-c.pos % align)
    tensors, format_of = _tensor_records(infos, where, filename, align, data_start, size)
    table = CheckpointTable(kind="gguf", source=where, tensors=tensors,
                            files=[FileRecord(name=filename, header_bytes=data_start, file_bytes=size,
                                              data_bytes=sum(t.nbytes for t in tensors))],
                            metadata={k: v for k, v in kv.items() if not isinstance(v, SkippedArray)})
    return GGUFHeader(version=version, kv=kv, table=table, format_of=format_of, data_start=data_start)


def _tensor_records(infos: list[tuple], where: str, filename: str, align: int, data_start: int,
                    size: int) -> tuple[list[TensorRecord], dict[str, str]]:
    """The tensor infos as records with exact bytes, checked: unique names, whole blocks, aligned
    offsets inside the file, no overlaps. Also the fitcalc format id of each GGUF type seen."""
    tensors: list[TensorRecord] = []
    format_of: dict[str, str] = {}
    seen: set[str] = set()
    for name, ne, ttype, offset in infos:
        if name in seen:
            raise GGUFError(f"{where}: tensor {name!r} appears twice")
        seen.add(name)
        try:
            block, block_bytes, fid, tname = _type_bytes(ttype)
        except GGUFError as e:
            raise GGUFError(f"{where}: tensor {name!r}: {e.message}", hint=e.hint) from None
        numel = 1
        for d in ne:
            numel *= d
        if ne[0] % block:
            raise GGUFError(f"{where}: tensor {name!r}: row of {ne[0]} is not a whole number of "
                            f"{tname} blocks ({block})")
        nbytes = numel // block * block_bytes
        if offset % align:
            raise GGUFError(f"{where}: tensor {name!r}: offset {offset:,} is not aligned to {align}")
        if data_start + offset + nbytes > size:
            raise GGUFError(f"{where}: tensor {name!r} ends at byte {data_start + offset + nbytes:,}, past the "
                            f"end of the file ({size:,}): truncated or out-of-range offset",
                            hint="the file is incomplete; download it again")
        format_of[tname] = fid
        tensors.append(TensorRecord(name=name, dtype=tname, shape=tuple(reversed(ne)), nbytes=nbytes,
                                    file=filename, begin=offset))
    end = 0
    prev = None
    for t in sorted(tensors, key=lambda t: t.begin):
        if t.begin < end:
            raise GGUFError(f"{where}: tensors {prev!r} and {t.name!r} overlap")
        end, prev = t.begin + t.nbytes, t.name
    return tensors, format_of


# ---------------------------------------------------------------------------------------------
# GGUF keys -> Architecture
# ---------------------------------------------------------------------------------------------

# llama.cpp architecture names -> Hugging Face model_type (the family names fitcalc uses).
_FAMILY = {"gpt-oss": "gpt_oss", "qwen3moe": "qwen3_moe", "qwen3next": "qwen3_next", "qwen2moe": "qwen2_moe",
           "deepseek2": "deepseek_v3", "glm4moe": "glm4_moe"}
# Sliding-window layouts llama.cpp sets in code rather than in keys (src/llama-model.cpp,
# hparams.set_swa_pattern): n means every n-th layer is full attention, the others sliding.
_SWA_PATTERN = {"gpt-oss": 2, "gemma2": 2, "gemma3": 6, "cohere2": 4}


class _Keys:
    def __init__(self, kv: dict[str, Any], arch: str, where: str):
        self.kv, self.arch, self.where = kv, arch, where

    def get(self, suffix: str) -> Any:
        return self.kv.get(f"{self.arch}.{suffix}")

    def scalar(self, suffix: str, n_layers: int | None = None) -> int | None:
        """An integer key; per-layer arrays are reduced to their largest value (and noted)."""
        v = self.get(suffix)
        if isinstance(v, list) and v and all(isinstance(x, int) for x in v):
            return max(v)
        if isinstance(v, bool) or not isinstance(v, int):
            return None
        return v

    def req(self, suffix: str) -> int:
        v = self.scalar(suffix)
        if v is None or v <= 0:
            raise GGUFError(f"{self.where}: GGUF key {self.arch}.{suffix} is missing",
                            hint="the file lacks a key the KV cache needs; re-convert it with a current llama.cpp")
        return v


def _has(names: set[str], pattern: str, layer: int | None = None) -> bool:
    if layer is None:
        return pattern in names
    return f"blk.{layer}.{pattern}" in names


def architecture_from_gguf(kv: dict[str, Any], table: CheckpointTable, where: str) -> tuple[Architecture, list[str]]:
    """The Architecture a GGUF's metadata and tensor table describe, with warnings about what it guessed."""
    arch = kv.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise GGUFError(f"{where}: general.architecture is missing", hint="the file is not a model GGUF")
    k = _Keys(kv, arch, where)
    names = {t.name for t in table.tensors}
    warnings: list[str] = []
    a, n_layers = _gguf_sizes(k, kv, table, names, warnings)
    # Which optional tensors exist, looked up in the first block that has attention.
    attn_layer = next((i for i in range(n_layers) if _has(names, "attn_q.weight", i)
                       or _has(names, "attn_q_a.weight", i) or _has(names, "attn_qkv.weight", i)
                       and not _has(names, "ssm_conv1d.weight", i)), 0)
    _gguf_attention(a, k, names, attn_layer, n_layers, warnings)
    linear = _gguf_linear_attention(a, k, names, n_layers)
    ffn = k.scalar("feed_forward_length")
    if k.scalar("expert_count"):
        _gguf_moe(a, k, names, n_layers, ffn)
    else:
        if not ffn:
            raise GGUFError(f"{where}: {arch}.feed_forward_length is missing")
        a["intermediate_size"] = ffn
        # Phi-3 stores gate and up fused in ffn_up [2 x ffn]: still a gated MLP.
        a["mlp_gated"] = _has(names, "ffn_gate.weight", attn_layer) or arch == "phi3"
    a["mlp_bias"] = _has(names, "ffn_up.bias", attn_layer) or _has(names, "ffn_down.bias", attn_layer)
    if "fused_qkv" in Architecture.model_fields and _has(names, "attn_qkv.weight", attn_layer) and not linear:
        a["fused_qkv"] = True  # phi3 and others store q, k, v as one attn_qkv
        a["fused_gate_up"] = arch == "phi3"
    nextn = k.scalar("nextn_predict_layers") or 0
    if nextn:
        own_embed = any(t.name.endswith("nextn.embed_tokens.weight") for t in table.tensors)
        own_head = any(t.name.endswith("nextn.shared_head_head.weight") for t in table.tensors)
        a["mtp"] = MTP(num_layers=nextn, own_embedding=own_embed, own_head=own_head)
    try:
        return Architecture(**a), warnings
    except Exception as e:  # pydantic ValidationError: the keys contradict each other
        msg = str(e).splitlines()
        raise GGUFError(f"{where}: the GGUF keys do not describe a consistent model ({msg[-1].strip()[:120]})",
                        hint="re-convert the model with a current llama.cpp") from None


_BLOCK_NAME = re.compile(r"^blk\.(\d+)\.")


def _checked_block_count(blocks: int, names: set[str], k: _Keys) -> int:
    """``block_count`` if it is within ``MAX_LAYERS`` and agrees with the tensor table (blocks
    ``blk.0`` to ``blk.N-1``). Checked before any per-layer loop: a 200-byte file claiming 2^32-1
    blocks would otherwise keep the CPU busy for hours, and one claiming 1,000,000 blocks for a
    2-block table would price a KV cache for layers that do not exist (issue #17)."""
    key = f"{k.arch}.block_count"
    if blocks > MAX_LAYERS:
        raise GGUFError(f"{k.where}: {key} is {blocks:,}, over the limit of {MAX_LAYERS:,} layers",
                        hint="the file's metadata is corrupt or hostile; re-convert the model with llama.cpp")
    in_table = {int(m.group(1)) for m in map(_BLOCK_NAME.match, names) if m}
    if in_table and (max(in_table) + 1 != blocks or len(in_table) != blocks):
        raise GGUFError(f"{k.where}: {key} says {blocks:,} blocks but the tensor table holds {len(in_table):,} "
                        f"(blk.{min(in_table)} to blk.{max(in_table)})",
                        hint="the metadata contradicts the tensors; re-convert the model with llama.cpp")
    return blocks


def _gguf_sizes(k: _Keys, kv: dict[str, Any], table: CheckpointTable, names: set[str],
                warnings: list[str]) -> tuple[dict[str, Any], int]:
    """The architecture's sizes (layers, widths, heads, vocabulary, context) and its layer count."""
    arch, where = k.arch, k.where
    nextn = k.scalar("nextn_predict_layers") or 0
    blocks = _checked_block_count(k.req("block_count"), names, k)
    n_layers = blocks - nextn if 0 < nextn < blocks else blocks
    hidden = k.req("embedding_length")
    heads = k.req("attention.head_count")
    kv_heads = k.scalar("attention.head_count_kv") or heads
    for key in ("attention.head_count", "attention.head_count_kv", "feed_forward_length"):
        v = k.get(key)
        if isinstance(v, list) and len(set(v)) > 1:
            warnings.append(f"{arch}.{key} varies per layer ({min(v)}..{max(v)}); the largest is used")
    embd = next((t for t in table.tensors if t.name == "token_embd.weight"), None)
    vocab = k.scalar("vocab_size")
    if vocab is None:
        toks = kv.get("tokenizer.ggml.tokens")
        vocab = toks.count if isinstance(toks, SkippedArray) else (len(toks) if isinstance(toks, list) else None)
    if vocab is None and embd is not None:
        vocab = embd.shape[0]
    if not vocab:
        raise GGUFError(f"{where}: the vocabulary size is not in the file", hint="re-convert with a current llama.cpp")
    ctx = k.req("context_length")
    a: dict[str, Any] = {
        "family": _FAMILY.get(arch, arch), "num_hidden_layers": n_layers, "hidden_size": hidden, "vocab_size": vocab,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "max_position_embeddings": ctx,
        "tie_word_embeddings": "output.weight" not in names, "torch_dtype": "bfloat16",
    }
    return a, n_layers


def _gguf_attention(a: dict[str, Any], k: _Keys, names: set[str], attn_layer: int, n_layers: int,
                    warnings: list[str]) -> None:
    """Attention's optional tensors, RoPE, sliding windows and MLA (or the head size) into ``a``."""
    arch = k.arch
    a["attention_bias"] = _has(names, "attn_q.bias", attn_layer) or _has(names, "attn_qkv.bias", attn_layer)
    a["attention_out_bias"] = _has(names, "attn_output.bias", attn_layer)
    a["attention_sinks"] = _has(names, "attn_sinks.weight", attn_layer)
    a["qk_norm"] = _has(names, "attn_q_norm.weight", attn_layer)
    a["norms_per_layer"] = max(1, sum(_has(names, f"{n}.weight", attn_layer) for n in (
        "attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm")))
    if _has(names, "attn_norm.bias", attn_layer):
        a["norm_kind"] = "layernorm"
    rope = k.get("rope.freq_base")
    if isinstance(rope, (int, float)):
        a["rope_theta"] = float(rope)
    stype, sfac = k.get("rope.scaling.type"), k.get("rope.scaling.factor")
    if isinstance(stype, str) and stype not in ("none", "") and isinstance(sfac, (int, float)) and sfac > 0:
        orig = k.scalar("rope.scaling.original_context_length")
        a["rope_scaling"] = RopeScaling(rope_type=stype, factor=float(sfac), original_max_position_embeddings=orig)
    window = k.scalar("attention.sliding_window")
    pattern = k.get("attention.sliding_window_pattern")
    if window:
        if isinstance(pattern, list) and len(pattern) >= n_layers and all(isinstance(x, bool) for x in pattern):
            a["layer_types"] = ["sliding_attention" if pattern[i] else "full_attention" for i in range(n_layers)]
        elif isinstance(pattern, int) and pattern > 0:
            a["layer_types"] = ["sliding_attention" if (i + 1) % pattern else "full_attention"
                                for i in range(n_layers)]
        elif arch in _SWA_PATTERN:
            p = _SWA_PATTERN[arch]
            a["layer_types"] = ["sliding_attention" if (i + 1) % p else "full_attention" for i in range(n_layers)]
        else:
            warnings.append(f"{arch}.attention.sliding_window is set but not which layers slide; "
                            "all layers are treated as full attention")
        if "layer_types" in a and "sliding_attention" in a["layer_types"]:
            a["sliding_window"] = window
    # Multi-head latent attention (deepseek2): the latent ranks, and head sizes before absorption.
    key_len = k.scalar("attention.key_length")
    kv_lora = k.scalar("attention.kv_lora_rank")
    if kv_lora:
        rope_dim = k.req("rope.dimension_count")
        k_mla, v_mla = k.scalar("attention.key_length_mla"), k.scalar("attention.value_length_mla")
        qk_head = k_mla or key_len or 0
        v_head = v_mla or k.scalar("attention.value_length") or 0
        a["mla"] = MLA(q_lora_rank=k.scalar("attention.q_lora_rank") or None, kv_lora_rank=kv_lora,
                       qk_rope_head_dim=rope_dim, qk_nope_head_dim=qk_head - rope_dim, v_head_dim=v_head)
    elif key_len:
        a["head_dim"] = key_len


def _gguf_linear_attention(a: dict[str, Any], k: _Keys, names: set[str], n_layers: int) -> list[int]:
    """Gated DeltaNet layers (qwen3next): blocks with ssm_* tensors, into ``a``; their indices."""
    linear = [i for i in range(n_layers) if _has(names, "ssm_conv1d.weight", i)]
    if linear:
        n_v = k.req("ssm.time_step_rank")
        a["linear_attention"] = LinearAttention(
            num_key_heads=k.req("ssm.group_count"), num_value_heads=n_v, key_head_dim=k.req("ssm.state_size"),
            value_head_dim=k.req("ssm.inner_size") // n_v, conv_kernel_size=k.req("ssm.conv_kernel"))
        a["layer_types"] = ["linear_attention" if i in linear else "full_attention" for i in range(n_layers)]
        a["attention_output_gate"] = True  # qwen3next full-attention q_proj carries the gate
        a.pop("sliding_window", None)
    return linear


def _gguf_moe(a: dict[str, Any], k: _Keys, names: set[str], n_layers: int, ffn: int | None) -> None:
    """Mixture of experts: experts, shared experts, dense layers and the router's extras, into ``a``."""
    arch = k.arch
    experts = k.scalar("expert_count")
    dense = [i for i in range(n_layers) if not _has(names, "ffn_gate_inp.weight", i)]
    width = k.scalar("expert_feed_forward_length") or ffn
    if not width:
        raise GGUFError(f"{k.where}: {arch}.expert_feed_forward_length is missing")
    shared_n = k.scalar("expert_shared_count") or 0
    shared_w = k.scalar("expert_shared_feed_forward_length")
    has_shexp = any(_has(names, "ffn_up_shexp.weight", i) for i in range(n_layers))
    moe_layer = next((i for i in range(n_layers) if i not in dense), 0)
    a["moe"] = MoE(
        num_experts=experts, experts_per_token=k.req("expert_used_count"), moe_intermediate_size=width,
        num_shared_experts=shared_n if has_shexp else 0,
        shared_expert_intermediate_size=(shared_w * max(1, shared_n) if shared_w and has_shexp and arch in
                                         ("qwen2moe", "qwen3next") else None),
        dense_layers=dense or None,
        router_bias=_has(names, "ffn_gate_inp.bias", moe_layer),
        expert_bias=_has(names, "ffn_up_exps.bias", moe_layer) or _has(names, "ffn_down_exps.bias", moe_layer),
        score_correction_bias=_has(names, "exp_probs_b.bias", moe_layer),
        shared_expert_gate=_has(names, "ffn_gate_inp_shexp.weight", moe_layer), stacked=True)
    if has_shexp and not shared_n and shared_w:
        a["moe"] = a["moe"].model_copy(update={"num_shared_experts": 1,
                                               "shared_expert_intermediate_size": shared_w})
    if dense:
        a["intermediate_size"] = ffn
    a["mlp_gated"] = any(_has(names, "ffn_gate_exps.weight", i) for i in range(n_layers)) or \
        any(_has(names, "ffn_gate_up_exps.weight", i) for i in range(n_layers))


def observed_recipe(table: CheckpointTable, roles, file_type: str | None) -> RecipeSpec:
    """The file's own recipe for the derived path: each group's most common matrix format.

    llama.cpp mixes types per tensor and per layer; this per-group summary is what the
    architecture path can express, so ``--check`` shows where the real mix departs from it.
    """
    by_group: dict[str, dict[str, int]] = {}
    total: dict[str, int] = {}
    for t, r in zip(table.tensors, roles):
        if len(t.shape) < 2:
            continue
        by_group.setdefault(r.group, {}).setdefault(r.format, 0)
        by_group[r.group][r.format] += t.nbytes
        total[r.format] = total.get(r.format, 0) + t.nbytes
    default = max(total, key=lambda f: total[f]) if total else "f32"
    rules = {"default": default}
    for g, fmts in by_group.items():
        if g in ("mtp", "other", "vision"):
            continue
        best = max(fmts, key=lambda f: fmts[f])
        if best != default:
            rules[g] = best
    from fitcalc.core.formats import is_format

    rules = {k: (v if is_format(v) else "f32") for k, v in rules.items()}
    name = file_type or default.upper()
    return RecipeSpec(id="native", display_name=f"GGUF {name}", rules=rules, vector_format="f32",
                      description=f"as stored in the GGUF file ({name}); per group, its most common type",
                      source="GGUF tensor table")


def _file_type_name(kv: dict[str, Any]) -> str | None:
    ft = kv.get("general.file_type")
    if not isinstance(ft, int):
        return None
    try:
        from gguf.constants import LlamaFileType

        return LlamaFileType(ft).name.removeprefix("MOSTLY_")
    except (ImportError, ValueError):
        return None


_SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.I)


def _with_splits(path: Path, h: GGUFHeader) -> GGUFHeader:
    """A model split by llama.cpp's gguf-split (``name-00001-of-00003.gguf``, ``split.count`` key):
    the tensor tables of every part, the metadata of the first."""
    count = h.kv.get("split.count")
    if not isinstance(count, int) or count <= 1:
        return h
    m = _SPLIT_RE.match(path.name)
    if m is None or int(m["count"]) != count:
        raise GGUFError(f"{path}: split.count is {count} but the name does not read NAME-0000k-of-{count:05d}.gguf",
                        hint="keep the split files' names as gguf-split wrote them")
    if int(m["no"]) != 1:
        first = path.with_name(f"{m['stem']}-00001-of-{count:05d}.gguf")
        if not first.is_file():
            raise GGUFError(f"{path}: part 1 of the split ({first.name}) is not beside it",
                            hint="give the first part; all parts must be in one folder")
        return _with_splits(first, read_gguf_header(first))
    parts = []
    for k in range(2, count + 1):
        part = path.with_name(f"{m['stem']}-{k:05d}-of-{count:05d}.gguf")
        if not part.is_file():
            raise GGUFError(f"{path}: split part {part.name} is missing", hint="download every part of the split")
        parts.append((str(part), read_gguf_header(part)))
    return merge_split(h, str(path), parts)


def merge_split(h: GGUFHeader, source: str, parts: list[tuple[str, GGUFHeader]]) -> GGUFHeader:
    """Part 1's metadata with the tensor tables of every part (``parts``: (where, header) of 2..n)."""
    tensors = list(h.table.tensors)
    files = list(h.table.files)
    format_of = dict(h.format_of)
    seen = {t.name for t in tensors}
    for where, ph in parts:
        for t in ph.table.tensors:
            if t.name in seen:
                raise GGUFError(f"{where}: tensor {t.name!r} is also in an earlier part")
            seen.add(t.name)
        tensors += ph.table.tensors
        files += ph.table.files
        format_of.update(ph.format_of)
    table = CheckpointTable(kind="gguf", source=source, tensors=tensors, files=files, metadata=h.table.metadata)
    return GGUFHeader(version=h.version, kv=h.kv, table=table, format_of=format_of, data_start=h.data_start)


def load_gguf_model(path: Path) -> ModelSpec:
    """A ModelSpec from a GGUF file: the architecture from its keys, exact bytes from its tensor table."""
    h = _with_splits(path, read_gguf_header(path))
    return spec_from_gguf(h, Path(h.table.source).name, str(Path(h.table.source)))


def spec_from_gguf(h: GGUFHeader, filename: str, where: str, hf_repo: str | None = None) -> ModelSpec:
    """The ModelSpec of a read GGUF header (a local file's, or a Hub file's read by ranges)."""
    from fitcalc.edges.ingest.hf_config import slug

    path = Path(filename)
    arch, warnings = architecture_from_gguf(h.kv, h.table, where)
    roles = classify_gguf(h.table, arch.num_hidden_layers, h.format_of)
    checkpoint = summarize(h.table, roles)
    recipe = observed_recipe(h.table, roles, _file_type_name(h.kv))
    name = h.kv.get("general.name") if isinstance(h.kv.get("general.name"), str) else path.stem
    from fitcalc.core.spec import ExtraGroup

    extra = [ExtraGroup(name=g.name, params=g.params, format="f32" if "f32" in g.formats else recipe.vector_format,
                        source=f"GGUF tensor table of {where}") for g in checkpoint.groups
             if g.name in ("other", "vision") and g.params > 0]
    return ModelSpec(
        id=slug(path.stem), display_name=f"{name} ({path.name})", architecture=arch, native_recipe=recipe,
        extra_groups=extra, checkpoint=checkpoint, warnings=warnings, hf_repo=hf_repo,
        sources=[Source(kind="gguf_header", citation=f"GGUF metadata and tensor table of {where}",
                        fields=["architecture", "checkpoint", "native_recipe"])])
