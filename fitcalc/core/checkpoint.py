"""A checkpoint's tensor table as its headers state it, and what each tensor is. CORE.

The readers in ``fitcalc.edges.ingest`` (safetensors headers, GGUF tensor tables) turn files into
:class:`CheckpointTable`; everything here is arithmetic and naming on that table:

* **bytes** are the header's own (``data_offsets`` span, or GGUF block arithmetic), never guessed;
* **groups**: each tensor is put in one of the groups ``fitcalc.core.estimate.weights`` derives
  (embedding, attention, linear_attention, mlp, router, experts, shared_experts, norms, lm_head,
  mtp), plus ``vision`` for towers and projectors of multimodal checkpoints and ``other`` for
  anything unrecognised, so the two paths can be compared group by group;
* **parameters** are logical weights, counted honestly for packed storage: a uint8 ``*_blocks``
  tensor holds two FP4 weights per byte, a GPTQ/AWQ int32 ``qweight`` holds 32/bits weights per
  element, bitsandbytes 4-bit and NVFP4 uint8 weights hold two per byte; scales, zero points,
  group indices and quantization state are bytes and never parameters;
* **formats**: a quantized weight and its scale tensors are priced under one fitcalc format id
  (``mxfp4``, ``fp8-block128``, ``int4-gptq-g128``...), so the header's formats line up with the
  recipe the architecture path uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from fitcalc.core.spec import Checkpoint, CheckpointGroup

# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

# safetensors dtypes and their bits per element (safetensors/src/tensor.rs, Dtype::bitsize).
SAFETENSORS_DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

# Plain (unquantized) storage of a dtype, as a fitcalc format id where one exists.
_DTYPE_FORMAT = {"BF16": "bf16", "F16": "fp16", "F32": "fp32", "F8_E4M3": "fp8-e4m3", "F8_E5M2": "fp8-e5m2",
                 "I32": "int32", "U8": "uint8"}


@dataclass(frozen=True, slots=True)
class TensorRecord:
    """One tensor as a header states it. ``shape`` is row-major with the input dimension last
    (GGUF's ``ne`` order is reversed to match); ``nbytes`` is exact."""

    name: str
    dtype: str  # safetensors dtype (BF16, U8, ...) or GGML type name (Q4_K, F32, ...)
    shape: tuple[int, ...]
    nbytes: int
    file: str
    begin: int = 0  # offset of the data within the file's data section

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True, slots=True)
class FileRecord:
    name: str
    header_bytes: int  # bytes read from this file (length prefix + header)
    file_bytes: int | None  # the file's size, when known
    data_bytes: int  # sum of its tensors


@dataclass
class CheckpointTable:
    kind: Literal["safetensors", "gguf"]
    source: str
    tensors: list[TensorRecord]
    files: list[FileRecord]
    metadata: dict[str, object] = field(default_factory=dict)  # safetensors __metadata__ / GGUF key-values
    index_total_size: int | None = None

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def header_bytes_read(self) -> int:
        return sum(f.header_bytes for f in self.files)


@dataclass(frozen=True, slots=True)
class TensorRole:
    """What one tensor is: its group, the format its bytes count under, its logical parameters."""

    group: str
    format: str
    params: int


# ---------------------------------------------------------------------------------------------
# Hugging Face (safetensors) names
# ---------------------------------------------------------------------------------------------

# Towers and projectors of multimodal checkpoints: weights, but not of the text decoder.
_VISION_PREFIXES = (
    "vision_tower.", "model.vision_tower.", "multi_modal_projector.", "model.multi_modal_projector.",
    "visual.", "model.visual.", "vision_model.", "model.vision_model.", "audio_tower.", "model.audio_tower.",
    "embed_vision.", "model.embed_vision.", "embed_audio.", "model.embed_audio.", "mm_projector.",
)
# Wrappers around the text decoder of multimodal checkpoints (old and new transformers layouts).
_TEXT_PREFIXES = (
    ("model.language_model.", "model."),
    ("language_model.model.", "model."),
    ("language_model.lm_head.", "lm_head."),
    ("model.text_model.", "model."),
)
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)$")


def _normalize_hf(name: str) -> str:
    if name.startswith("model.layers."):
        return name
    for old, new in _TEXT_PREFIXES:
        if name.startswith(old):
            return new + name[len(old):]
    return name


def _hf_layer_group(rest: str) -> str:
    """Group of a tensor inside a decoder layer (``rest`` follows ``model.layers.{i}.``).

    Per-head q/k norms count as norms and MLA's q_a/kv_a norms as attention, as
    ``fitcalc.core.estimate.weights`` derives them.
    """
    if rest.startswith(("self_attn.q_norm.", "self_attn.k_norm.")):
        return "norms"
    if rest.startswith(("self_attn.", "attn.", "attention.")):
        return "attention"
    if rest.startswith("linear_attn."):
        return "linear_attention"
    if rest.startswith(("mlp.experts.", "block_sparse_moe.experts.")):
        return "experts"
    if rest.startswith(("mlp.shared_expert.", "mlp.shared_experts.", "mlp.shared_expert_gate.")):
        return "shared_experts"
    # "mlp.gate." (with the dot) is the router; "mlp.gate_proj." is a dense MLP.
    if rest.startswith(("mlp.gate.", "mlp.router.", "block_sparse_moe.gate.")):
        return "router"
    if rest.startswith(("mlp.", "feed_forward.")):
        return "mlp"
    if "norm" in rest.split(".", 1)[0]:
        return "norms"
    return "other"


def hf_group(name: str, num_hidden_layers: int | None) -> str:
    """Group of a tensor of a Hugging Face checkpoint, by name.

    Layers at or past ``num_hidden_layers`` are MTP layers (DeepSeek-V3 layer 61, GLM-4.5
    layer 92), as are Qwen3-Next's ``mtp.*`` tensors; all their tensors go to ``mtp``.
    """
    if name.startswith(_VISION_PREFIXES):
        return "vision"
    n = _normalize_hf(name)
    if n.startswith("mtp."):
        return "mtp"
    m = _LAYER_RE.match(n)
    if m is not None:
        if num_hidden_layers is not None and int(m.group(1)) >= num_hidden_layers:
            return "mtp"
        return _hf_layer_group(m.group(2))
    if n.startswith("model.embed_tokens."):
        return "embedding"
    if n.startswith("model.norm."):
        return "norms"
    if n.startswith("lm_head."):
        return "lm_head"
    return "other"


# Tensors that hold quantization metadata of a weight: (suffix, suffix of the weight they serve).
# Matched against the end of the name; the first match wins.
_AUX_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".weight_scale_inv", ".weight"),  # fine-grained FP8 (DeepSeek-V3, Qwen3-FP8)
    (".weight_scale_2", ".weight"),  # NVFP4 (TensorRT Model Optimizer)
    (".weight_global_scale", ".weight_packed"),  # compressed-tensors NVFP4
    (".input_global_scale", ".weight_packed"),
    (".weight_zero_point", ".weight_packed"),  # compressed-tensors pack-quantized
    (".weight_g_idx", ".weight_packed"),
    (".weight_shape", ".weight_packed"),
    (".weight_scale", ".weight"),  # FP8 per-tensor/channel, NVFP4, compressed-tensors (see below)
    (".input_scale", ".weight"),
    (".qzeros", ".qweight"),  # GPTQ / AWQ
    (".scales", ".qweight"),
    (".g_idx", ".qweight"),
    (".SCB", ".weight"),  # bitsandbytes LLM.int8
    (".weight_format", ".weight"),
    (".k_scale", ""), (".v_scale", ""), (".q_scale", ""),  # KV-cache scales: bytes of the attention block
)
# bitsandbytes 4-bit keeps its state under the weight's own name: weight.absmax, weight.quant_map,
# weight.nested_absmax, weight.nested_quant_map, weight.quant_state.bitsandbytes__nf4.
_BNB4_AUX = re.compile(r"\.weight\.(absmax|quant_map|nested_absmax|nested_quant_map|quant_state\..+)$")


def _aux_base(name: str, names: set[str]) -> str | None:
    """The weight a metadata tensor serves, or None if ``name`` is itself a weight."""
    if name.endswith((".weight", ".bias")):
        return None  # the common case, and never metadata
    m = _BNB4_AUX.search(name)
    if m is not None:
        return name[: m.start()] + ".weight"
    if name.endswith("_scales") and name[: -len("_scales")] + "_blocks" in names:
        return name[: -len("_scales")] + "_blocks"  # MXFP4 (gpt-oss)
    for suffix, base_suffix in _AUX_SUFFIXES:
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            if not base_suffix:
                return stem
            for cand in (stem + base_suffix, stem + ".weight", stem + ".weight_packed", stem + ".qweight"):
                if cand in names:
                    return cand
            return stem + base_suffix
    return None


@dataclass(frozen=True)
class QuantHints:
    """What config.json's quantization_config says, where the header alone cannot (bits of a
    packed int32, GPTQ vs AWQ group size)."""

    bits: int = 4
    group_size: int | None = None
    method: str | None = None  # gptq, awq, compressed-tensors, fp8, mxfp4, bitsandbytes, modelopt ...


def _weight_role(t: TensorRecord, siblings: set[str], by_name: dict[str, TensorRecord],
                 hints: QuantHints) -> tuple[str, int]:
    """(format, params) of a weight tensor, reading the packing from its dtype and its siblings."""
    name, dt, numel = t.name, t.dtype, t.numel
    if name.endswith("_blocks") and dt == "U8" and name[: -len("_blocks")] + "_scales" in siblings:
        return "mxfp4", numel * 2  # two E2M1 values per byte
    if name.endswith(".qweight") and dt == "I32":
        per = 32 // hints.bits
        group = hints.group_size or 128
        stem = name[: -len(".qweight")]
        kind = "gptq" if stem + ".g_idx" in siblings else "awq"
        fid = f"int{hints.bits}-{kind}" if group == 128 and hints.bits == 4 else f"int{hints.bits}-{kind}-g{group}"
        return fid, numel * per
    if name.endswith(".weight_packed"):
        stem = name[: -len(".weight_packed")]
        if dt == "U8":  # compressed-tensors NVFP4: two E2M1 per byte
            return "nvfp4", numel * 2
        per = 32 // hints.bits if dt == "I32" else 1
        group = hints.group_size or 128
        scale = by_name.get(stem + ".weight_scale")
        if scale is not None and len(scale.shape) == 2 and scale.shape[-1] > 1 and t.shape:
            # weight_scale [out, in/group]: the group size is in the header
            cols = t.shape[-1] * per
            if cols % scale.shape[-1] == 0:
                group = cols // scale.shape[-1]
        return f"int{hints.bits}-ct-g{group}", numel * per
    if name.endswith(".weight"):
        stem = name[: -len(".weight")]
        if dt == "U8":
            if stem + ".weight.absmax" in siblings or any(s.startswith(stem + ".weight.quant_state.")
                                                          for s in siblings):
                return ("nf4-dq" if stem + ".weight.nested_absmax" in siblings else "nf4"), numel * 2
            if stem + ".weight_scale_2" in siblings or stem + ".weight_scale" in siblings:
                return "nvfp4", numel * 2
        if dt == "I8" and stem + ".SCB" in siblings:
            return "int8", numel
        if dt in ("F8_E4M3", "F8_E5M2"):
            inv = by_name.get(stem + ".weight_scale_inv")
            if inv is not None and len(inv.shape) == 2 and len(t.shape) == 2:
                tile = _tile_of(t.shape, inv.shape)
                return (f"fp8-block{tile}" if tile else "fp8-e4m3"), numel
            scale = by_name.get(stem + ".weight_scale")
            if scale is not None:
                if scale.numel == 1:
                    return "fp8", numel
                if t.shape and scale.numel == t.shape[0]:
                    return "fp8-channel", numel
    return _DTYPE_FORMAT.get(dt, dt.lower()), numel


def _tile_of(shape: tuple[int, ...], scale_shape: tuple[int, ...]) -> int | None:
    """The square tile t with scale_shape == (ceil(rows/t), ceil(cols/t)), trying common sizes."""
    rows, cols = shape
    for t in (128, 64, 256, 32):
        if scale_shape == (-(-rows // t), -(-cols // t)):
            return t
    return None


def classify_hf(table: CheckpointTable, num_hidden_layers: int | None,
                hints: QuantHints | None = None) -> list[TensorRole]:
    """Group, format and parameters of every tensor of a safetensors checkpoint (table order)."""
    hints = hints or QuantHints()
    names = {t.name for t in table.tensors}
    by_name = {t.name: t for t in table.tensors}
    roles: dict[str, TensorRole] = {}
    aux: list[tuple[TensorRecord, str]] = []
    for t in table.tensors:
        base = _aux_base(t.name, names)
        if base is not None and base != t.name:
            aux.append((t, base))
            continue
        fmt, params = _weight_role(t, names, by_name, hints)
        roles[t.name] = TensorRole(hf_group(t.name, num_hidden_layers), fmt, params)
    for t, base in aux:
        owner = roles.get(base)
        if owner is not None:
            roles[t.name] = TensorRole(owner.group, owner.format, 0)
        else:  # metadata whose weight is not here (KV-cache scales): bytes in its own group
            roles[t.name] = TensorRole(hf_group(t.name, num_hidden_layers), _DTYPE_FORMAT.get(t.dtype, t.dtype.lower()),
                                       0)
    return [roles[t.name] for t in table.tensors]


# ---------------------------------------------------------------------------------------------
# GGUF names (llama.cpp's tensor names: gguf-py constants.py TENSOR_NAMES)
# ---------------------------------------------------------------------------------------------

_BLK_RE = re.compile(r"^blk\.(\d+)\.([^.]+)(?:\.(.+))?$")
_GGUF_NORMS = {"attn_norm", "attn_norm_2", "ffn_norm", "post_attention_norm", "post_ffw_norm", "ffn_post_norm",
               "attn_post_norm", "layer_output_norm", "attn_q_norm", "attn_k_norm"}
_GGUF_ROUTER = {"ffn_gate_inp", "exp_probs_b"}
_GGUF_EXPERTS = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps", "ffn_gate_up_exps"}
_GGUF_SHARED = {"ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp", "ffn_gate_inp_shexp"}
_GGUF_MLP = {"ffn_gate", "ffn_up", "ffn_down"}


def gguf_group(name: str, num_layers: int | None, linear_layers: set[int] | frozenset[int] = frozenset()) -> str:
    """Group of a GGUF tensor. ``linear_layers``: blocks that hold ``ssm_*`` tensors (Gated
    DeltaNet), whose own attn_qkv/attn_gate projections belong to linear attention."""
    if name.startswith("token_embd."):
        return "embedding"
    if name.startswith("output_norm."):
        return "norms"
    if name.startswith("output."):
        return "lm_head"
    m = _BLK_RE.match(name)
    if m is None:
        return "other"  # rope_freqs, rope_factors_*: computed buffers stored in the file
    layer, base = int(m.group(1)), m.group(2)
    if base == "nextn" or (num_layers is not None and layer >= num_layers):
        return "mtp"
    if base in _GGUF_NORMS:
        return "norms"
    if base.startswith("ssm_"):
        return "linear_attention"
    if base.startswith("attn_"):
        return "linear_attention" if layer in linear_layers else "attention"
    if base in _GGUF_ROUTER:
        return "router"
    if base in _GGUF_EXPERTS:
        return "experts"
    if base in _GGUF_SHARED:
        return "shared_experts"
    if base in _GGUF_MLP:
        return "mlp"
    return "other"


def classify_gguf(table: CheckpointTable, num_layers: int | None,
                  format_of: dict[str, str] | None = None) -> list[TensorRole]:
    """Group, format and parameters of every GGUF tensor: GGUF shapes count logical weights."""
    linear = set()
    for t in table.tensors:
        m = _BLK_RE.match(t.name)
        if m is not None and m.group(2).startswith("ssm_"):
            linear.add(int(m.group(1)))
    fmt = format_of or {}
    return [TensorRole(gguf_group(t.name, num_layers, linear), fmt.get(t.dtype, t.dtype.lower()), t.numel)
            for t in table.tensors]


# ---------------------------------------------------------------------------------------------
# Summary, MTP detection
# ---------------------------------------------------------------------------------------------


def summarize(table: CheckpointTable, roles: list[TensorRole]) -> Checkpoint:
    """Per-group totals of a classified table, as the ``Checkpoint`` a ModelSpec carries."""
    acc: dict[str, dict] = {}
    for t, r in zip(table.tensors, roles):
        g = acc.setdefault(r.group, {"params": 0, "bytes": 0, "tensors": 0, "formats": {}})
        g["params"] += r.params
        g["bytes"] += t.nbytes
        g["tensors"] += 1
        g["formats"][r.format] = g["formats"].get(r.format, 0) + t.nbytes
    groups = [CheckpointGroup(name=k, params=v["params"], bytes=v["bytes"], tensors=v["tensors"],
                              formats=dict(sorted(v["formats"].items(), key=lambda kv: -kv[1])))
              for k, v in acc.items()]
    return Checkpoint(kind=table.kind, source=table.source, files=max(1, len(table.files)),
                      tensors=len(table.tensors), groups=groups, header_bytes_read=table.header_bytes_read,
                      index_total_size=table.index_total_size)


@dataclass(frozen=True)
class MtpLayout:
    num_layers: int
    own_embedding: bool
    own_head: bool
    looks_like_mtp: bool  # the extra layers hold MTP's own tensors (eh_proj, enorm, hnorm, mtp.*)


def hf_mtp_layout(table: CheckpointTable, num_hidden_layers: int) -> MtpLayout | None:
    """MTP layers the checkpoint actually stores (config.json may say one and a re-packed
    checkpoint may have dropped it; Qwen3-Next stores ``mtp.*`` without a config field)."""
    layers: set[int] = set()
    embed = head = mtp_own = False
    for t in table.tensors:
        n = _normalize_hf(t.name)
        m = _LAYER_RE.match(n)
        if m is not None and int(m.group(1)) >= num_hidden_layers:
            layers.add(int(m.group(1)))
            rest = m.group(2)
        elif n.startswith("mtp.layers."):
            layers.add(int(n.split(".")[2]) + num_hidden_layers if n.split(".")[2].isdigit() else num_hidden_layers)
            mtp_own = True
            continue
        elif n.startswith("mtp."):
            layers.add(num_hidden_layers)
            mtp_own = True
            continue
        else:
            continue
        embed = embed or rest.startswith("embed_tokens.")
        head = head or rest.startswith("shared_head.head.")
        mtp_own = mtp_own or rest.startswith(("eh_proj.", "enorm.", "hnorm.", "shared_head."))
    if not layers:
        return None
    return MtpLayout(num_layers=len(layers), own_embedding=embed, own_head=head, looks_like_mtp=mtp_own)
