"""Parameter counts per tensor group, and their bytes on disk, per recipe. CORE.

From an ``Architecture`` we derive every tensor the checkpoint stores, as the checkpoint stores
it (shapes, stacked or per-expert experts, biases, norms, sinks), then price each tensor in the
format the recipe gives its group. Matrices carry ``(out, in)`` shapes; quantization blocks run
along ``in``. Parameters are logical weights (a packed FP4 byte holds two); scales and zero
points are bytes, never parameters.

Counting conventions (docs/formulas.md, "Parameters"):
* ``params_total``: every weight of the text model, embedding and lm_head included (both when
  untied, once when tied), MTP layers included when the checkpoint stores them.
* ``params_active``: per token, as the gpt-oss model card counts it (Table 1): the embedding is
  not active (a row lookup), the unembedding is (so a tied embedding, being both, is active);
  routed experts count k/E of their weights;
  shared experts, attention, routers and norms count fully; MTP layers and extra groups
  (vision towers) are not active in text decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict

from fitcalc.core.errors import InputError
from fitcalc.core.estimate.terms import Term, make_term
from fitcalc.core.formats import get_format, tensor_bytes
from fitcalc.core.recipes import pick_format, use_more_bits
from fitcalc.core.spec import Architecture, ModelSpec, RecipeSpec
from fitcalc.core.units import format_bits, format_both, format_params

TensorKind = Literal["matrix", "embedding", "vector"]


@dataclass
class TensorEntry:
    """Tensors of one name pattern and shape, found in ``layers`` (empty: one global tensor)."""

    name: str
    group: str
    role: str
    kind: TensorKind
    shape: tuple[int, ...]
    copies: int = 1  # experts per layer for per-expert or stacked expert tensors
    layers: list[int] = field(default_factory=list)
    dtype: str | None = None  # a fixed format regardless of recipe (fp32 correction bias, ...)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def instances(self) -> int:
        return max(1, len(self.layers)) * self.copies

    @property
    def params(self) -> int:
        return self.numel * self.instances


class _Inventory:
    """Collects entries keyed by (name, shape), appending layer indices."""

    def __init__(self) -> None:
        self.entries: dict[tuple, TensorEntry] = {}

    def add(self, name: str, group: str, role: str, kind: TensorKind, shape: tuple[int, ...],
            layer: int | None = None, copies: int = 1, dtype: str | None = None) -> None:
        key = (name, shape, copies, group)
        e = self.entries.get(key)
        if e is None:
            e = TensorEntry(name=name, group=group, role=role, kind=kind, shape=shape, copies=copies, dtype=dtype)
            self.entries[key] = e
        if layer is not None:
            e.layers.append(layer)


def _norm(inv: _Inventory, name: str, width: int, arch: Architecture, layer: int | None, group: str = "norms") -> None:
    inv.add(f"{name}.weight", group, "norm", "vector", (width,), layer)
    if arch.norm_kind == "layernorm":
        inv.add(f"{name}.bias", group, "norm", "vector", (width,), layer)


def _linear(inv: _Inventory, name: str, group: str, role: str, out: int, inp: int, bias: bool,
            layer: int | None, copies: int = 1) -> None:
    inv.add(f"{name}.weight", group, role, "matrix", (out, inp), layer, copies)
    if bias:
        inv.add(f"{name}.bias", group, role + ".bias", "vector", (out,), layer, copies)


def _attention(inv: _Inventory, a: Architecture, p: str, i: int, group: str = "attention") -> None:
    h, nh, nkv = a.hidden_size, a.num_attention_heads, a.num_key_value_heads
    if a.mla is not None:
        m = a.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank is not None:
            _linear(inv, f"{p}.self_attn.q_a_proj", group, "q_a_proj", m.q_lora_rank, h, False, i)
            _norm(inv, f"{p}.self_attn.q_a_layernorm", m.q_lora_rank, a, i, group)
            _linear(inv, f"{p}.self_attn.q_b_proj", group, "q_b_proj", nh * qk, m.q_lora_rank, False, i)
        else:
            _linear(inv, f"{p}.self_attn.q_proj", group, "q_proj", nh * qk, h, False, i)
        _linear(inv, f"{p}.self_attn.kv_a_proj_with_mqa", group, "kv_a_proj", m.kv_lora_rank + m.qk_rope_head_dim,
                h, False, i)
        _norm(inv, f"{p}.self_attn.kv_a_layernorm", m.kv_lora_rank, a, i, group)
        _linear(inv, f"{p}.self_attn.kv_b_proj", group, "kv_b_proj", nh * (m.qk_nope_head_dim + m.v_head_dim),
                m.kv_lora_rank, False, i)
        _linear(inv, f"{p}.self_attn.o_proj", group, "o_proj", h, nh * m.v_head_dim, a.attention_out_bias, i)
        return
    d = a.head_dim_resolved
    q_out = nh * d * (2 if a.attention_output_gate else 1)
    if a.fused_qkv:
        _linear(inv, f"{p}.self_attn.qkv_proj", group, "qkv_proj", q_out + 2 * nkv * d, h, a.attention_bias, i)
    else:
        _linear(inv, f"{p}.self_attn.q_proj", group, "q_proj", q_out, h, a.attention_bias, i)
        _linear(inv, f"{p}.self_attn.k_proj", group, "k_proj", nkv * d, h, a.attention_bias, i)
        _linear(inv, f"{p}.self_attn.v_proj", group, "v_proj", nkv * d, h, a.attention_bias, i)
    _linear(inv, f"{p}.self_attn.o_proj", group, "o_proj", h, nh * d, a.attention_out_bias, i)
    if a.qk_norm:
        _norm(inv, f"{p}.self_attn.q_norm", d, a, i)
        _norm(inv, f"{p}.self_attn.k_norm", d, a, i)
    if a.attention_sinks:
        inv.add(f"{p}.self_attn.sinks", group, "sinks", "vector", (nh,), i)


def _linear_attention(inv: _Inventory, a: Architecture, p: str, i: int) -> None:
    """Gated DeltaNet (Qwen3-Next, transformers modeling_qwen3_next.Qwen3NextGatedDeltaNet)."""
    la = a.linear_attention
    assert la is not None
    h = a.hidden_size
    key_dim = la.num_key_heads * la.key_head_dim
    value_dim = la.num_value_heads * la.value_head_dim
    g = "linear_attention"
    _linear(inv, f"{p}.linear_attn.in_proj_qkvz", g, "in_proj_qkvz", 2 * key_dim + 2 * value_dim, h, False, i)
    _linear(inv, f"{p}.linear_attn.in_proj_ba", g, "in_proj_ba", 2 * la.num_value_heads, h, False, i)
    conv_dim = 2 * key_dim + value_dim
    inv.add(f"{p}.linear_attn.conv1d.weight", g, "conv1d", "vector", (conv_dim * la.conv_kernel_size,), i)
    inv.add(f"{p}.linear_attn.dt_bias", g, "dt_bias", "vector", (la.num_value_heads,), i)
    inv.add(f"{p}.linear_attn.A_log", g, "A_log", "vector", (la.num_value_heads,), i, dtype="fp32")
    inv.add(f"{p}.linear_attn.norm.weight", g, "norm", "vector", (la.value_head_dim,), i)
    _linear(inv, f"{p}.linear_attn.out_proj", g, "out_proj", h, value_dim, False, i)


def _dense_mlp(inv: _Inventory, a: Architecture, p: str, i: int, width: int, group: str = "mlp",
               copies: int = 1, bias: bool | None = None) -> None:
    h = a.hidden_size
    b = a.mlp_bias if bias is None else bias
    if a.mlp_gated and a.fused_gate_up:
        _linear(inv, f"{p}.gate_up_proj", group, "gate_up_proj", 2 * width, h, b, i, copies)
    else:
        if a.mlp_gated:
            _linear(inv, f"{p}.gate_proj", group, "gate_proj", width, h, b, i, copies)
        _linear(inv, f"{p}.up_proj", group, "up_proj", width, h, b, i, copies)
    _linear(inv, f"{p}.down_proj", group, "down_proj", h, width, b, i, copies)


def _moe(inv: _Inventory, a: Architecture, p: str, i: int) -> None:
    m = a.moe
    assert m is not None
    h, e, w = a.hidden_size, m.num_experts, m.moe_intermediate_size
    _linear(inv, f"{p}.mlp.router", "router", "router", e, h, m.router_bias, i)
    if m.score_correction_bias:
        inv.add(f"{p}.mlp.gate.e_score_correction_bias", "router", "correction_bias", "vector", (e,), i,
                dtype="fp32")
    if m.stacked:
        # gpt-oss: gate and up fused in one stacked tensor [E, 2W, H]; biases [E, 2W], [E, H]
        up_rows = (2 if a.mlp_gated else 1) * w
        _linear(inv, f"{p}.mlp.experts.gate_up_proj", "experts", "gate_up_proj", up_rows, h, m.expert_bias, i, e)
        _linear(inv, f"{p}.mlp.experts.down_proj", "experts", "down_proj", h, w, m.expert_bias, i, e)
    else:
        _dense_mlp(inv, a, f"{p}.mlp.experts.{{j}}", i, w, "experts", copies=e, bias=m.expert_bias)
    if m.shared_width:
        _dense_mlp(inv, a, f"{p}.mlp.shared_experts", i, m.shared_width, "shared_experts", bias=False)
    if m.shared_expert_gate:
        _linear(inv, f"{p}.mlp.shared_expert_gate", "shared_experts", "shared_expert_gate", 1, h, False, i)


def _decoder_layer(inv: _Inventory, a: Architecture, i: int, kind: str, dense: bool, prefix: str) -> None:
    p = f"{prefix}.{{i}}"  # a name template: the layer index stays "{i}" and lives in entry.layers
    if kind == "linear_attention":
        _linear_attention(inv, a, p, i)
    else:
        _attention(inv, a, p, i)
    names = ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
             "post_feedforward_layernorm"][: a.norms_per_layer]
    for n in names:
        _norm(inv, f"{p}.{n}", a.hidden_size, a, i)
    if dense:
        _dense_mlp(inv, a, f"{p}.mlp", i, a.intermediate_size or 0)
    else:
        _moe(inv, a, p, i)


def tensor_inventory(a: Architecture) -> list[TensorEntry]:
    """Every tensor of the checkpoint derived from the architecture (HF naming, ``{i}`` = layer)."""
    inv = _Inventory()
    h, v = a.hidden_size, a.vocab_size
    inv.add("model.embed_tokens.weight", "embedding", "embed_tokens", "embedding", (v, h))
    kinds = a.layer_kinds()
    dense = set(a.dense_layer_indices())
    for i in range(a.num_hidden_layers):
        _decoder_layer(inv, a, i, kinds[i], i in dense, "model.layers")
    _norm(inv, "model.norm", h, a, None)
    if not a.tie_word_embeddings:
        inv.add("lm_head.weight", "lm_head", "lm_head", "matrix", (v, h))
    entries = list(inv.entries.values())
    if a.mtp is not None:
        entries += _mtp_entries(a)
    return entries


def _mtp_entries(a: Architecture) -> list[TensorEntry]:
    """DeepSeek-V3-style MTP modules: a full decoder layer plus enorm, hnorm, eh_proj [H, 2H],
    shared_head.norm, and (when stored) their own embedding and head copies. All in group 'mtp'."""
    assert a.mtp is not None
    inv = _Inventory()
    h, v = a.hidden_size, a.vocab_size
    first = a.num_hidden_layers
    for k in range(a.mtp.num_layers):
        i = first + k
        _decoder_layer(inv, a, i, "full_attention", False if a.moe is not None else True, "model.layers")
        p = "model.layers.{i}"
        _norm(inv, f"{p}.enorm", h, a, i)
        _norm(inv, f"{p}.hnorm", h, a, i)
        _linear(inv, f"{p}.eh_proj", "mtp", "eh_proj", h, 2 * h, False, i)
        _norm(inv, f"{p}.shared_head.norm", h, a, i)
        if a.mtp.own_embedding:
            inv.add(f"{p}.embed_tokens.weight", "embedding", "embed_tokens", "embedding", (v, h), i)
        if a.mtp.own_head:
            inv.add(f"{p}.shared_head.head.weight", "lm_head", "lm_head", "matrix", (v, h), i)
    out = []
    for e in inv.entries.values():
        # Keep the main-model group in the role so recipes price MTP tensors like their
        # counterparts (an FP8 recipe makes the MTP experts FP8 too).
        if e.group != "mtp":
            e.role = f"{e.group}.{e.role}"
            e.group = "mtp"
        out.append(e)
    return out


# ---------------------------------------------------------------------------------------------
# Tensor and expert parallelism: the part of each tensor one rank holds
# ---------------------------------------------------------------------------------------------

# vLLM pads the vocabulary to a multiple of 64 rows before splitting it over the ranks
# (vllm/model_executor/layers/vocab_parallel_embedding.py: DEFAULT_VOCAB_PADDING_SIZE = 64,
# num_embeddings_per_partition = divide(pad_vocab_size(V), tp_size)).
VOCAB_PADDING = 64

# Roles split by output rows (column parallel): each rank computes its own slice of the output.
_COLUMN = {"q_proj", "q_b_proj", "kv_b_proj", "sinks", "in_proj_qkvz", "in_proj_ba", "conv1d", "dt_bias", "A_log"}
_MLP_COLUMN = {"gate_proj", "up_proj", "gate_up_proj"}
# Roles split by input columns (row parallel): partial sums, all-reduced; their bias stays whole.
_ROW = {"o_proj", "out_proj", "down_proj"}
_GROUP_NAMES = {"embedding", "attention", "linear_attention", "mlp", "router", "experts", "shared_experts", "norms",
                "lm_head", "mtp"}


def vocab_rows(vocab: int, tp: int) -> int:
    """Embedding or lm_head rows on one rank: the vocabulary padded to 64 rows, split tp ways."""
    if tp <= 1:
        return vocab
    padded = -(-vocab // VOCAB_PADDING) * VOCAB_PADDING
    return -(-padded // tp)


def mlp_width(width: int, tp: int, unit: int = 1) -> int:
    """MLP (or expert) width on one rank: whole ``unit``-element blocks of the down projection's
    input per rank, rounded up (vLLM's gpt-oss loader: per_rank_intermediate_size =
    cdiv(intermediate_size / 32, tp) x 32 for MXFP4; ``unit`` 1 for float formats)."""
    if tp <= 1:
        return width
    return -(-width // (unit * tp)) * unit


def _base_role(e: TensorEntry) -> tuple[str, bool, bool]:
    """(role without group prefix or '.bias', is a bias, is a routed-expert tensor)."""
    parts = e.role.split(".")
    expert = e.group == "experts"
    if e.group == "mtp" and parts[0] in _GROUP_NAMES:
        expert = parts[0] == "experts"
        parts = parts[1:]
    return parts[0], parts[-1] == "bias", expert


def rank_shape(e: TensorEntry, arch: Architecture, tp: int = 1, ep: int = 1, unit: int = 1
               ) -> tuple[tuple[int, ...], int, str]:
    """(shape, copies, rule) of the part of inventory entry ``e`` one rank holds.

    The layout of vLLM's parallel layers (vllm/model_executor/layers/linear.py,
    vocab_parallel_embedding.py; gpt-oss as vllm/model_executor/models/gpt_oss.py loads it):
      experts under EP     copies / ep whole experts, not split further (FusedMoE with EP)
      column parallel      q (and its sinks), gate/up, MLA q_b/kv_b, linear-attention inputs:
                           output rows / tp (MLP widths in whole blocks: ``mlp_width``)
      KV heads             k, v: n_kv / tp heads, one replicated head each when tp > n_kv
                           (QKVParallelLinear num_kv_head_replicas)
      row parallel         o_proj, down_proj, out_proj: input columns / tp; the bias whole on every
                           rank, added by rank 0 only (RowParallelLinear.forward)
      vocab parallel       embedding and lm_head: (vocab padded to 64) / tp rows
      replicated           norms, router and its correction bias, shared-expert gate, MLA's
                           q_a/kv_a projections, MTP's eh_proj, and anything not named above
    ``unit``: the block size of the down projection's format along its input (MLP splits keep
    whole blocks).
    """
    role, bias, expert = _base_role(e)
    shape, copies = list(e.shape), e.copies
    if expert and ep > 1:
        if copies % ep:
            raise InputError(f"{copies} experts do not split evenly over {ep} expert-parallel ranks",
                             hint="each rank holds num_experts / ep whole experts")
        return e.shape, copies // ep, f"{copies // ep} of {copies} experts (EP {ep})"
    if tp <= 1:
        return e.shape, copies, "whole"
    if e.kind == "embedding" or role == "lm_head":
        shape[0] = vocab_rows(shape[0], tp)
        return tuple(shape), copies, "vocab parallel"
    d = arch.head_dim_resolved
    n_kv_local = max(1, arch.num_key_value_heads // tp)
    if role in ("k_proj", "v_proj"):
        shape[0] = n_kv_local * d
        return tuple(shape), copies, "KV heads" + (" (replicated)" if tp > arch.num_key_value_heads else "")
    if role == "qkv_proj":
        q_out = shape[0] - 2 * arch.num_key_value_heads * d
        shape[0] = q_out // tp + 2 * n_kv_local * d
        return tuple(shape), copies, "column parallel (q) + KV heads"
    if role in _MLP_COLUMN:
        fused = role == "gate_up_proj"
        width = shape[0] // 2 if fused else shape[0]
        shape[0] = (2 if fused else 1) * mlp_width(width, tp, unit)
        return tuple(shape), copies, "column parallel"
    if role in _COLUMN:
        shape[0] = -(-shape[0] // tp)
        return tuple(shape), copies, "column parallel"
    if role in _ROW:
        if bias:
            return e.shape, copies, "row-parallel bias (whole)"
        shape[-1] = mlp_width(shape[-1], tp, unit) if role == "down_proj" else -(-shape[-1] // tp)
        return tuple(shape), copies, "row parallel"
    return e.shape, copies, "replicated"


def width_units(entries: list[TensorEntry], recipe: RecipeSpec, n_layers: int) -> dict[str, int]:
    """Block size along the input of each MLP's down projection, by MLP prefix (the part of the
    tensor name before the role), so that its gate/up rows and down columns split alike."""
    out: dict[str, int] = {}
    for e in entries:
        if e.kind == "matrix" and _base_role(e)[0] == "down_proj":
            out[_mlp_prefix(e.name)] = input_block(get_format(entry_format(e, recipe, None, n_layers)))
    return out


def input_block(fmt) -> int:
    """Elements along a row that share a scale (a block, or a tile's width): a split of the input
    dimension keeps them together. 1 for float formats."""
    n = fmt.block_elements
    for f in fmt.fields:
        if f.per == "block":
            n = max(n, f.elements)
        elif f.per == "tile":
            n = max(n, f.tile[1])
    return n


def _mlp_prefix(name: str) -> str:
    for role in ("gate_up_proj", "gate_proj", "up_proj", "down_proj"):
        k = name.find(f".{role}.")
        if k >= 0:
            return name[:k]
    return name


def unit_of(e: TensorEntry, units: dict[str, int]) -> int:
    return units.get(_mlp_prefix(e.name), 1)


# ---------------------------------------------------------------------------------------------
# Pricing
# ---------------------------------------------------------------------------------------------


class GroupWeights(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    name: str
    params: int
    active_params: int
    bytes: int
    format: str  # the group's matrix format(s), "+"-joined; vectors listed in `formats`
    formats: dict[str, int]  # format id -> bytes within the group
    tensors: int  # number of tensors the checkpoint stores for this group
    resident: bool = True  # loaded for text inference (MTP and some extra groups are not)


class WeightsBreakdown(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    model: str
    recipe: str
    coarse: bool
    groups: list[GroupWeights]
    terms: list[Term]
    notes: list[str] = []

    @property
    def params_total(self) -> int:
        return sum(g.params for g in self.groups)

    @property
    def params_active(self) -> int:
        return sum(g.active_params for g in self.groups)

    @property
    def disk_bytes(self) -> int:
        return sum(g.bytes for g in self.groups)

    @property
    def resident_bytes(self) -> int:
        return sum(g.bytes for g in self.groups if g.resident)

    def group(self, name: str) -> GroupWeights | None:
        for g in self.groups:
            if g.name == name:
                return g
        return None


def entry_format(e: TensorEntry, recipe: RecipeSpec, layer: int | None, n_layers: int) -> str:
    if e.dtype is not None:
        return e.dtype
    if e.kind == "vector":
        return recipe.vector_format
    group, role = (e.role.split(".", 1) if e.group == "mtp" and "." in e.role else (e.group, e.role))
    more = layer is not None and use_more_bits(layer, n_layers) if recipe.more_bits else False
    fid = pick_format(recipe, group, role, more)
    fmt = get_format(fid)
    # llama.cpp falls back when a row does not divide into whole blocks (src/llama-quant.cpp).
    while not fmt.fits_row(e.shape[-1]) and fmt.fallback:
        fmt = get_format(fmt.fallback)
    if not fmt.fits_row(e.shape[-1]):
        fmt = get_format("f16" if fmt.gguf_type is not None else recipe.vector_format)
    return fmt.id


def _active_fraction(e: TensorEntry, arch: Architecture) -> Fraction:
    if e.group == "mtp":
        return Fraction(0)
    if e.group == "embedding":
        # A lookup touches one row, so the input embedding is not active; but a tied embedding
        # is also the unembedding, which multiplies every row per token, like an lm_head.
        return Fraction(1 if arch.tie_word_embeddings else 0)
    if e.group == "experts" and arch.moe is not None:
        return Fraction(arch.moe.experts_per_token, arch.moe.num_experts)
    return Fraction(1)


def _format_split(e: TensorEntry, recipe: RecipeSpec, n: int) -> dict[str, list[int]]:
    """Format id -> the layers of ``e`` stored in it ([] for a tensor outside the layers).

    Only recipes with more-bits layers (llama.cpp's use_more_bits) store one name in two formats.
    """
    if recipe.more_bits and e.layers:
        split: dict[str, list[int]] = {}
        for layer in e.layers:
            split.setdefault(entry_format(e, recipe, layer, n), []).append(layer)
        return split
    return {entry_format(e, recipe, None, n): list(e.layers)}


def _price_entries(entries: list[TensorEntry], recipe: RecipeSpec, arch: Architecture
                   ) -> dict[str, dict[str, list[tuple[TensorEntry, int, int]]]]:
    """group -> format -> [(entry, instances at that format, bytes)]."""
    n = arch.num_hidden_layers
    out: dict[str, dict[str, list[tuple[TensorEntry, int, int]]]] = {}
    for e in entries:
        for fid, layers in _format_split(e, recipe, n).items():
            n_layers = max(1, len(layers))
            b = tensor_bytes(get_format(fid), e.shape, copies=e.copies * n_layers)
            out.setdefault(e.group, {}).setdefault(fid, []).append((e, n_layers, b))
    return out


@dataclass(frozen=True)
class LayerTable:
    """Bytes of every tensor group per decoder layer and outside the layers, by format.

    The same pricing as ``weights_breakdown`` cut by layer, so that a placement can put layers
    (and the routed experts of a layer) on different devices: Σ over layers of ``per_layer`` plus
    ``outside`` equals the group's bytes exactly (tests/test_placement.py). ``outside`` holds the
    tensors that belong to no decoder layer (embedding, final norm, lm_head) and the MTP layers.
    ``active`` is each group's share of weights a token reads (experts: k / E).
    """

    n_layers: int
    per_layer: dict[str, list[dict[str, int]]]
    outside: dict[str, dict[str, int]]
    active: dict[str, Fraction]

    def group_bytes(self, group: str, layers: range | frozenset | None, outside: bool) -> dict[str, int]:
        """{format: bytes} of ``group`` over ``layers`` (None: all), plus its outside part if asked."""
        out: dict[str, int] = {}
        rows = self.per_layer.get(group)
        if rows is not None:
            for i in (range(self.n_layers) if layers is None else layers):
                for fid, b in rows[i].items():
                    out[fid] = out.get(fid, 0) + b
        if outside:
            for fid, b in self.outside.get(group, {}).items():
                out[fid] = out.get(fid, 0) + b
        return out


def layer_table(model: ModelSpec, recipe: RecipeSpec, tp: int = 1, ep: int = 1) -> LayerTable | None:
    """Per-layer bytes of ``model`` in ``recipe`` (None for a coarse spec: it has no layers).

    With ``tp`` / ``ep`` > 1: the bytes one rank holds, every tensor cut by ``rank_shape`` in the
    format the whole tensor has (extra groups such as vision towers: ceil(bytes / tp))."""
    arch = model.architecture
    if arch is None:
        return None
    n = arch.num_hidden_layers
    per_layer: dict[str, list[dict[str, int]]] = {}
    outside: dict[str, dict[str, int]] = {}
    active: dict[str, Fraction] = {}
    entries = tensor_inventory(arch)
    units = width_units(entries, recipe, n) if tp > 1 else {}
    for e in entries:
        active.setdefault(e.group, _active_fraction(e, arch))
        shape, copies = e.shape, e.copies
        if tp > 1 or ep > 1:
            shape, copies, _ = rank_shape(e, arch, tp, ep, unit_of(e, units))
        for fid, layers in _format_split(e, recipe, n).items():
            one = tensor_bytes(get_format(fid), shape, copies=copies)
            inside = [i for i in layers if i < n]
            if inside:
                rows = per_layer.setdefault(e.group, [{} for _ in range(n)])
                for i in inside:
                    rows[i][fid] = rows[i].get(fid, 0) + one
            k = (len(layers) - len(inside)) if layers else 1
            if k:
                d = outside.setdefault(e.group, {})
                d[fid] = d.get(fid, 0) + one * k
    for x in model.extra_groups:
        g = _extra_group(x)
        outside.setdefault(x.name, {}).update({fid: -(-b // tp) for fid, b in g.formats.items()})
        active[x.name] = Fraction(0)
    return LayerTable(n_layers=n, per_layer=per_layer, outside=outside, active=active)


_GROUP_LABELS = {
    "embedding": "embedding", "attention": "attention", "linear_attention": "linear attention",
    "mlp": "dense MLP", "router": "router", "experts": "routed experts", "shared_experts": "shared experts",
    "norms": "norms", "lm_head": "lm_head", "mtp": "MTP layers", "vision": "vision tower and projector",
    "other": "other tensors",
}


def _shape_text(e: TensorEntry) -> str:
    return "×".join(str(d) for d in e.shape)


def _explain_group(name: str, priced: dict[str, list[tuple[TensorEntry, int, int]]], total: int) -> str:
    """A worked example: ``experts: 24 layers × 32 experts × (5760×2880 + 2880×2880) weights × 4.25 bits``."""
    parts = []
    for fid, rows in priced.items():
        fmt = get_format(fid)
        # Group rows by (layers, copies) so the sum reads like the architecture.
        buckets: dict[tuple[int, int], list[TensorEntry]] = {}
        for e, nl, _b in rows:
            buckets.setdefault((nl if e.layers else 0, e.copies), []).append(e)
        for (nl, copies), es in buckets.items():
            mult = []
            if nl:
                mult.append(f"{nl} layers")
            if copies > 1:
                mult.append(f"{copies} experts")
            shapes = " + ".join(_shape_text(e) for e in es)
            if len(es) > 1:
                shapes = f"({shapes})"
            b = sum(bb for e, _nl, bb in rows if e in es and (_nl if e.layers else 0) == nl)
            lead = " × ".join(mult + [shapes]) if mult else shapes
            parts.append(f"{lead} weights × {format_bits(fmt.bits_per_weight)} bits ({fmt.display_name})"
                         f" = {b:,} B")
    return f"{name}: " + "\n    + ".join(parts) + f"\n    = {total:,} B = {format_both(total)}"


def weights_breakdown(model: ModelSpec, recipe: RecipeSpec) -> WeightsBreakdown:
    """Bytes and parameters per tensor group for ``model`` stored with ``recipe``.

    A model read from real files carries its checkpoint's header-exact groups; its native
    recipe is then priced from those, not derived (``derived_breakdown`` gives the derivation).
    """
    if model.checkpoint is not None and recipe.id == model.native_recipe.id:
        return _checkpoint_breakdown(model, recipe)
    return derived_breakdown(model, recipe)


def derived_breakdown(model: ModelSpec, recipe: RecipeSpec) -> WeightsBreakdown:
    """Bytes and parameters per group derived from the architecture (or the coarse totals)."""
    if model.architecture is None:
        if model.coarse is None:
            raise InputError(
                f"{model.id}: pricing recipe {recipe.id!r} needs the model's architecture, which could not be read",
                hint="only the checkpoint's own (native) sizes are known; see the warnings for the missing fields")
        return _coarse_breakdown(model, recipe)
    arch = model.architecture
    entries = tensor_inventory(arch)
    priced = _price_entries(entries, recipe, arch)
    groups: list[GroupWeights] = []
    terms: list[Term] = []
    order = {g: k for k, g in enumerate(_GROUP_LABELS)}
    for gname in sorted(priced, key=lambda g: order.get(g, 99)):
        by_fmt = priced[gname]
        params = sum(e.numel * e.copies * nl for rows in by_fmt.values() for e, nl, _ in rows)
        active = sum(_active_fraction(e, arch) * e.numel * e.copies * nl
                     for rows in by_fmt.values() for e, nl, _ in rows)
        fmt_bytes = {fid: sum(b for _, _, b in rows) for fid, rows in by_fmt.items()}
        total = sum(fmt_bytes.values())
        matrix_fmts = [fid for fid, rows in by_fmt.items() if any(e.kind != "vector" for e, _, _ in rows)]
        # Stacked experts are one tensor per layer; per-expert ones are one per expert.
        ntensors = sum(nl * (e.copies if "{j}" in e.name else 1) for rows in by_fmt.values() for e, nl, _ in rows)
        resident = gname != "mtp"
        groups.append(GroupWeights(name=gname, params=params, active_params=round(active), bytes=total,
                                   format="+".join(matrix_fmts) or "+".join(fmt_bytes), formats=fmt_bytes,
                                   tensors=ntensors, resident=resident))
        terms.append(make_term(
            f"weights.{gname}", f"weights: {_GROUP_LABELS.get(gname, gname)}", total, kind="exact",
            formula="Σ over tensors: payload numel × element_bits/8 + Σ layout fields ceil(count × bits/8)",
            inputs={"params": params, "formats": "+".join(fmt_bytes)},
            explain=_explain_group(gname, by_fmt, total), sources=tuple(get_format(f).source for f in fmt_bytes),
        ))
    for x in model.extra_groups:
        groups.append(_extra_group(x))
        terms.append(_extra_term(x))
    notes = []
    if arch.head_dim_is_derived and arch.mla is None:
        notes.append(f"head_dim not published; derived as hidden_size / num_attention_heads = "
                     f"{arch.hidden_size} / {arch.num_attention_heads} = {arch.head_dim_resolved}")
    return WeightsBreakdown(model=model.id, recipe=recipe.id, coarse=False, groups=groups, terms=terms, notes=notes)


def _extra_group(x) -> GroupWeights:
    fmt = get_format(x.format)
    b = fmt.vector_bytes(x.params) if not fmt.block_elements > 1 else -(-x.params * fmt.bits_per_weight.numerator
                                                                      // (8 * fmt.bits_per_weight.denominator))
    return GroupWeights(name=x.name, params=x.params, active_params=0, bytes=b, format=fmt.id,
                        formats={fmt.id: b}, tensors=0, resident=x.resident)


def _extra_term(x) -> Term:
    g = _extra_group(x)
    return make_term(f"weights.{x.name}", f"weights: {x.name}", g.bytes, kind="derived",
                     formula="params × bits / 8", inputs={"params": x.params, "format": x.format},
                     explain=f"{x.name}: {format_params(x.params)} params × "
                             f"{format_bits(get_format(x.format).bits_per_weight)} bits = {g.bytes:,} B",
                     sources=(x.source,))


def _coarse_breakdown(model: ModelSpec, recipe: RecipeSpec) -> WeightsBreakdown:
    """Totals-only arithmetic: params_g = share_g × total; bytes_g = params_g × bits_g / 8."""
    c = model.coarse
    assert c is not None
    fixed = 0
    counts: dict[str, int] = {}
    for g in c.groups:
        if g.params is not None:
            counts[g.name] = g.params
        elif g.share is not None:
            counts[g.name] = round(c.total_params * g.share)
        if g.name in counts:
            fixed += counts[g.name]
    for g in c.groups:
        if g.name not in counts:
            counts[g.name] = max(0, c.total_params - fixed)
    groups, terms = [], []
    for g in c.groups:
        # The native recipe keeps each group's own format; another recipe re-prices the group.
        native = recipe.id == model.native_recipe.id
        fmt = get_format(recipe.rules.get(g.name, g.format) if native else pick_format(recipe, g.name, g.name))
        bpw = fmt.bits_per_weight
        n = counts[g.name]
        b = -(-n * bpw.numerator // (8 * bpw.denominator))
        share = Fraction(n, c.total_params)
        groups.append(GroupWeights(name=g.name, params=n, active_params=round(n * g.active_share), bytes=b,
                                   format=fmt.id, formats={fmt.id: b}, tensors=0))
        terms.append(make_term(
            f"weights.{g.name}", f"weights: {g.name} (coarse)", b, kind="coarse",
            formula="share × total_params × bits / 8", inputs={"total_params": c.total_params,
                                                                "share": float(share), "bits": float(bpw)},
            explain=f"{g.name}: {float(share):.4f} × {format_params(c.total_params)} = {format_params(n)} params "
                    f"× {format_bits(bpw)} bits = {b:,} B = {format_both(b)}",
            sources=(fmt.source,),
        ))
    for x in model.extra_groups:
        groups.append(_extra_group(x))
        terms.append(_extra_term(x))
    return WeightsBreakdown(model=model.id, recipe=recipe.id, coarse=True, groups=groups, terms=terms,
                            notes=["coarse estimate: from total parameters and group shares only; the "
                                   "architecture form gives exact bytes"])


# Groups whose weights are not used per decoded token: the embedding is a row lookup (as the
# gpt-oss model card counts active parameters), MTP layers serve speculative decoding only, and
# vision towers run on images, not on text tokens.
_NOT_ACTIVE = {"embedding", "mtp", "vision"}


def _checkpoint_breakdown(model: ModelSpec, recipe: RecipeSpec) -> WeightsBreakdown:
    """Groups exactly as the checkpoint's headers state them (bytes and honest parameter counts)."""
    ck = model.checkpoint
    assert ck is not None
    arch = model.architecture
    order = {g: k for k, g in enumerate(_GROUP_LABELS)}
    what = "safetensors headers" if ck.kind == "safetensors" else "GGUF tensor table"
    groups: list[GroupWeights] = []
    terms: list[Term] = []
    notes: list[str] = []
    for g in sorted(ck.groups, key=lambda g: order.get(g.name, 99)):
        if g.name == "embedding" and arch is not None and arch.tie_word_embeddings:
            active = g.params  # a tied embedding is also the unembedding, used in full per token
        elif g.name in _NOT_ACTIVE:
            active = 0
        elif g.name == "experts" and arch is not None and arch.moe is not None:
            active = g.params * arch.moe.experts_per_token // arch.moe.num_experts
        else:
            active = g.params
        fmts = [f for f in g.formats]
        groups.append(GroupWeights(name=g.name, params=g.params, active_params=active, bytes=g.bytes,
                                   format="+".join(fmts[:2]), formats=dict(g.formats), tensors=g.tensors,
                                   resident=g.name != "mtp"))
        parts = " + ".join(f"{fid} {b:,} B" for fid, b in g.formats.items())
        terms.append(make_term(
            f"weights.{g.name}", f"weights: {_GROUP_LABELS.get(g.name, g.name)}", g.bytes, kind="exact",
            formula="Σ over the group's tensors of the bytes their header states",
            inputs={"params": g.params, "tensors": g.tensors},
            explain=f"{g.name}: {g.tensors:,} tensors in the {what} ({parts})\n    = {g.bytes:,} B = "
                    f"{format_both(g.bytes)}",
            sources=(f"{what} of {ck.source}",),
        ))
    if arch is None and any(g.name == "experts" for g in ck.groups):
        notes.append("active parameters count every expert: the experts per token are not known for this family")
    notes.append(f"exact: {ck.tensors:,} tensors in {ck.files} file{'s' if ck.files > 1 else ''} "
                 f"({what} of {ck.source}, {ck.header_bytes_read:,} header bytes read)")
    return WeightsBreakdown(model=model.id, recipe=recipe.id, coarse=False, groups=groups, terms=terms,
                            notes=notes)
