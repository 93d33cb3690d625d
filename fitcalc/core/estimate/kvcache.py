"""KV cache terms: bytes per token per layer kind, and what each engine's layout makes of them. CORE.

Per layer and per token the cache holds one K row and one V row:

    K bytes = bytes of n_kv × d_head elements in the KV format (block formats: whole blocks)
    kv_token_bytes = Σ over full-attention layers (K + V)          [kv.full]

For Llama-3.1-8B in BF16 that is 2 × 32 layers × 8 × 128 × 2 B = 131,072 B per token [KIPPLY22,
ml-engineering inference/README]. MLA layers (DeepSeek-V3) cache the latent instead:
(kv_lora_rank + qk_rope_head_dim) × 2 B per layer = (512 + 64) × 61 × 2 = 70,272 B per token
(DeepSeek-V2 paper, Table 1). Sliding-window layers hold a bounded number of tokens that
depends on the engine (``KvRules.sliding``); linear-attention layers keep a fixed state per
sequence. Checked by tests/estimate/test_kvcache.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from fitcalc.core.engines import EngineProfile
from fitcalc.core.errors import InputError
from fitcalc.core.estimate.terms import Term, make_term
from fitcalc.core.formats import StorageFormat, get_format
from fitcalc.core.spec import Architecture, Workload
from fitcalc.core.units import ceil_div

_KV_SOURCE = "2 (K,V) x layers x n_kv x d_head x bytes: ml-engineering inference/README (744d01e); JAX scaling book"
_MLA_SOURCE = "DeepSeek-V2 (arXiv 2405.04434) Table 1: cache (d_c + d_h^R) per token per layer"

_KV_ALIASES = {"fp8": "fp8-e4m3", "fp8_e4m3": "fp8-e4m3", "fp8_e5m2": "fp8-e5m2", "f16": "fp16", "f32": "fp32",
               "auto": "model", "float16": "fp16", "bfloat16": "bf16"}


def model_dtype_format(arch: Architecture) -> str:
    """The format id of the model's activations/torch_dtype (bf16 unless config.json says otherwise)."""
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(arch.torch_dtype, "bf16")


def kv_format(arch: Architecture, engine: EngineProfile, requested: str | None) -> StorageFormat:
    """The KV cache's storage format: requested, else the engine's default, else the model dtype."""
    name = (requested or engine.kv.default_dtype).strip().lower()
    name = _KV_ALIASES.get(name, name)
    if name == "model":
        name = model_dtype_format(arch)
    allowed = {_KV_ALIASES.get(d, d) for d in engine.kv.dtypes} | {"model"}
    if requested is not None and name not in allowed:
        raise InputError(f"{engine.display_name} does not take KV dtype {requested!r}",
                         hint=f"use one of: {', '.join(engine.kv.dtypes)}")
    return get_format(name)


@dataclass(frozen=True)
class KvLayout:
    """Per-token K+V bytes of each layer kind, computed once per (model, engine, KV format)."""

    full_layers: int
    sliding_layers: int
    mla_layers: int
    linear_layers: int
    full_token_bytes: int  # one token, all full-attention GQA layers together
    sliding_token_bytes: int  # one token, all sliding layers together
    mla_token_bytes: int  # one token, all MLA layers together
    linear_state_bytes: int  # one sequence, all linear-attention layers together
    per_layer_full: int  # one token, one full layer
    per_layer_mla: int
    window: int
    fmt_id: str
    mla_policy: str
    n_kv: int
    head_dim: int


def _row_bytes(fmt: StorageFormat, n_heads: int, d: int, span_heads: bool) -> int:
    """Bytes of one token's K (or V) row: n_heads x d elements; blocks run along d (or the whole row)."""
    if span_heads:
        return fmt.matrix_bytes(1, n_heads * d)
    return fmt.matrix_bytes(n_heads, d)


def kv_layout(arch: Architecture, engine: EngineProfile, fmt: StorageFormat, layers: int | None = None,
              indices: range | frozenset[int] | None = None) -> KvLayout:
    """Count layer kinds (over the first ``layers`` layers, or the layers ``indices`` a device
    holds) and their per-token bytes."""
    all_kinds = arch.layer_kinds()
    if indices is not None:
        kinds = [all_kinds[i] for i in sorted(indices)]
    else:
        kinds = all_kinds[: layers if layers is not None else arch.num_hidden_layers]
    n_full = sum(1 for k in kinds if k == "full_attention")
    n_slide = sum(1 for k in kinds if k == "sliding_attention")
    n_lin = sum(1 for k in kinds if k == "linear_attention")
    span = engine.kv.row_blocks_span_heads
    per_full = per_mla = 0
    n_mla = 0
    if arch.mla is not None:
        m = arch.mla
        n_mla, n_full = n_full + n_slide, 0
        n_slide = 0
        if engine.kv.mla == "latent":
            per_mla = fmt.matrix_bytes(1, m.kv_lora_rank + m.qk_rope_head_dim)
        elif engine.kv.mla == "latent_plus_v":
            per_mla = fmt.matrix_bytes(1, m.kv_lora_rank + m.qk_rope_head_dim) + fmt.matrix_bytes(1, m.kv_lora_rank)
        else:  # decompressed per-head K (nope + rope) and V
            nh = arch.num_attention_heads
            per_mla = (_row_bytes(fmt, nh, m.qk_nope_head_dim + m.qk_rope_head_dim, span)
                       + _row_bytes(fmt, nh, m.v_head_dim, span))
    d, nkv = arch.head_dim_resolved, arch.num_key_value_heads
    per_full = 2 * _row_bytes(fmt, nkv, d, span)
    state = 0
    if n_lin:
        la = arch.linear_attention
        assert la is not None
        conv_dim = 2 * la.num_key_heads * la.key_head_dim + la.num_value_heads * la.value_head_dim
        act = get_format(model_dtype_format(arch))
        conv = act.matrix_bytes(conv_dim, la.conv_kernel_size - 1)
        rec = get_format(engine.kv.linear_state_dtype).matrix_bytes(
            la.num_value_heads * la.key_head_dim, la.value_head_dim)
        state = n_lin * (conv + rec)
    return KvLayout(full_layers=n_full, sliding_layers=n_slide, mla_layers=n_mla, linear_layers=n_lin,
                    full_token_bytes=n_full * per_full, sliding_token_bytes=n_slide * per_full,
                    mla_token_bytes=n_mla * per_mla, linear_state_bytes=state, per_layer_full=per_full,
                    per_layer_mla=per_mla, window=arch.sliding_window or 0, fmt_id=fmt.id,
                    mla_policy=engine.kv.mla, n_kv=nkv, head_dim=d)


# ---- tokens each policy keeps ------------------------------------------------------------------


def full_tokens(engine: EngineProfile, context: int, batch: int) -> tuple[int, str]:
    """Tokens a full-attention layer holds for ``batch`` sequences of ``context``, and the rule."""
    k = engine.kv
    if k.full == "blocks":
        blocks = ceil_div(context, k.block_tokens)
        return batch * blocks * k.block_tokens, f"B × cdiv(C, {k.block_tokens}) × {k.block_tokens}"
    if k.full == "cells_padded":
        return ceil_div(context * batch, k.cell_pad) * k.cell_pad, f"pad(C × B, {k.cell_pad})"
    return context * batch, "B × C"


def sliding_tokens(engine: EngineProfile, window: int, context: int, batch: int, chunk: int) -> tuple[int, str]:
    """Tokens a sliding-window layer holds, by the engine's rule (see KvRules)."""
    k = engine.kv
    if k.sliding == "full":
        return full_tokens(engine, context, batch)
    if k.sliding == "window_plus_chunk_blocks":
        # vLLM SlidingWindowSpec: the last W-1 computed tokens plus one scheduled chunk, in
        # blocks, plus one block because the window does not start on a block boundary.
        per_seq = min(window - 1 + chunk, context)
        blocks = ceil_div(per_seq, k.block_tokens) + 1
        return batch * blocks * k.block_tokens, f"B × (cdiv(min(W - 1 + chunk, C), {k.block_tokens}) + 1) × " \
                                                f"{k.block_tokens}"
    if k.sliding == "window_plus_ubatch_cells":
        # llama.cpp: GGML_PAD(min(kv_size, n_swa + n_ubatch), 256) cells per sequence stream
        per_seq = min(ceil_div(context, k.cell_pad) * k.cell_pad, window + chunk)
        return batch * ceil_div(per_seq, k.cell_pad) * k.cell_pad, f"B × pad(min(C, W + ubatch), {k.cell_pad})"
    return batch * min(window, context), "B × min(W, C)"


def _split(n: int, tp: int, heads: int) -> tuple[int, str]:
    """Per-rank share under tensor parallelism: KV heads split over min(TP, heads) ranks and are
    replicated beyond that (MLA has one latent head, so every rank holds all of it)."""
    if tp <= 1:
        return n, ""
    k = min(tp, heads)
    return ceil_div(n, k), f"\n    ÷ min(TP {tp}, KV heads {heads}) = {k} → {ceil_div(n, k):,} B per GPU"


def kv_drafts(arch: Architecture, engine: EngineProfile, workload: Workload, layout: KvLayout,
              chunk: int, tp: int = 1) -> list[tuple]:
    """kv.full, kv.mla, kv.sliding and kv.linear_state as (id, bytes, builder) drafts."""
    kinds = ((layout.full_layers, _kv_full), (layout.mla_layers, _kv_mla), (layout.sliding_layers, _kv_sliding),
             (layout.linear_layers, _kv_linear))
    return [draft(arch, engine, workload, layout, chunk, tp) for layers, draft in kinds if layers]


def _kv_full(arch: Architecture, engine: EngineProfile, workload: Workload, layout: KvLayout,
            chunk: int, tp: int) -> tuple:
    """kv.full: K and V of the full-attention layers for the tokens the engine keeps."""
    c, b = workload.context, workload.batch
    fmt = layout.fmt_id
    tokens, rule = full_tokens(engine, c, b)
    total = tokens * layout.full_token_bytes
    n, tp_txt = _split(total, tp, layout.n_kv)
    exact = engine.kv.full == "exact"

    def build_full(tokens=tokens, rule=rule, total=total, n=n, tp_txt=tp_txt, exact=exact) -> Term:
        return make_term(
            "kv.full", "KV cache: full-attention layers", n, kind="exact" if exact else "derived",
            band=0.0 if exact else 0.01,
            formula=f"tokens × L_full × 2 × n_kv × d_head × bits/8, tokens = {rule}",
            inputs={"tokens": tokens, "context": c, "batch": b, "L_full": layout.full_layers,
                    "n_kv": layout.n_kv, "d_head": layout.head_dim, "kv_format": fmt,
                    "bytes_per_token": layout.full_token_bytes},
            explain=f"kv.full: {tokens:,} tokens ({rule}) × {layout.full_layers} layers × "
                    f"{layout.per_layer_full:,} B (K+V of {layout.n_kv}×{layout.head_dim} in {fmt}) = {total:,} B"
                    + tp_txt,
            sources=(_KV_SOURCE,))

    return ("kv.full", n, build_full)


def _kv_mla(arch: Architecture, engine: EngineProfile, workload: Workload, layout: KvLayout,
           chunk: int, tp: int) -> tuple:
    """kv.mla: the latent cache of multi-head latent attention layers, in the engine's MLA policy."""
    c, b = workload.context, workload.batch
    fmt = layout.fmt_id
    tokens, rule = full_tokens(engine, c, b)
    total = tokens * layout.mla_token_bytes
    n, tp_txt = _split(total, tp, 1)
    m = arch.mla
    assert m is not None

    def build_mla(tokens=tokens, rule=rule, total=total, n=n, tp_txt=tp_txt) -> Term:
        what = {"latent": f"(kv_lora_rank {m.kv_lora_rank} + rope {m.qk_rope_head_dim})",
                "latent_plus_v": f"(kv_lora_rank {m.kv_lora_rank} + rope {m.qk_rope_head_dim}) + V "
                                 f"{m.kv_lora_rank}",
                "decompressed": f"heads {arch.num_attention_heads} × (K {m.qk_nope_head_dim}+"
                                f"{m.qk_rope_head_dim} + V {m.v_head_dim})"}[layout.mla_policy]
        return make_term(
            "kv.mla", f"KV cache: MLA layers ({layout.mla_policy})", n, kind="derived", band=0.01,
            formula=f"tokens × L × {layout.mla_policy} row bytes, tokens = {rule}",
            inputs={"tokens": tokens, "L": layout.mla_layers, "policy": layout.mla_policy,
                    "bytes_per_token": layout.mla_token_bytes, "kv_format": fmt},
            explain=f"kv.mla: {tokens:,} tokens × {layout.mla_layers} layers × {what} elements in {fmt} "
                    f"= {layout.per_layer_mla:,} B per layer-token → {total:,} B" + tp_txt,
            sources=(_MLA_SOURCE,))

    return ("kv.mla", n, build_mla)


def _kv_sliding(arch: Architecture, engine: EngineProfile, workload: Workload, layout: KvLayout,
               chunk: int, tp: int) -> tuple:
    """kv.sliding: K and V of the sliding-window layers, capped by the window as the engine caps it."""
    c, b = workload.context, workload.batch
    fmt = layout.fmt_id
    tokens, rule = sliding_tokens(engine, layout.window, c, b, chunk)
    total = tokens * layout.sliding_token_bytes
    n, tp_txt = _split(total, tp, layout.n_kv)

    def build_sliding(tokens=tokens, rule=rule, total=total, n=n, tp_txt=tp_txt) -> Term:
        return make_term(
            "kv.sliding", f"KV cache: sliding-window layers (W={layout.window})", n, kind="derived", band=0.02,
            formula=f"tokens × L_sliding × 2 × n_kv × d_head × bits/8, tokens = {rule}",
            inputs={"tokens": tokens, "window": layout.window, "chunk": chunk,
                    "L_sliding": layout.sliding_layers, "kv_format": fmt},
            explain=f"kv.sliding: {tokens:,} tokens ({rule}, W={layout.window}) × {layout.sliding_layers} "
                    f"layers × {layout.per_layer_full:,} B = {total:,} B" + tp_txt,
            sources=(_KV_SOURCE, f"engine rule {engine.kv.sliding}: engine_profiles/{engine.id}.yaml"))

    return ("kv.sliding", n, build_sliding)


def _kv_linear(arch: Architecture, engine: EngineProfile, workload: Workload, layout: KvLayout,
              chunk: int, tp: int) -> tuple:
    """kv.linear_state: the recurrent state of linear-attention layers, per sequence."""
    b = workload.batch
    total = b * layout.linear_state_bytes
    la = arch.linear_attention
    heads = la.num_value_heads if la is not None else 1
    n, tp_txt = _split(total, tp, heads)

    def build_linear(total=total, n=n, tp_txt=tp_txt) -> Term:
        return make_term(
            "kv.linear_state", "recurrent state: linear-attention layers", n, kind="derived", band=0.05,
            formula="B × L_linear × (conv_dim × (kernel - 1) × act bytes + v_heads × d_k × d_v × state bytes)",
            inputs={"batch": b, "L_linear": layout.linear_layers, "state_dtype": engine.kv.linear_state_dtype},
            explain=f"kv.linear_state: {b} sequences × {layout.linear_state_bytes:,} B = {total:,} B "
                    f"(independent of context)" + tp_txt,
            sources=("Gated DeltaNet state per layer: transformers modeling_qwen3_next (conv and recurrent "
                     "state)",))

    return ("kv.linear_state", n, build_linear)


def kv_terms(arch: Architecture, engine: EngineProfile, workload: Workload, layout: KvLayout,
             chunk: int, tp: int = 1) -> list[Term]:
    """The KV terms, explained."""
    return [d[2]() for d in kv_drafts(arch, engine, workload, layout, chunk, tp)]


def kv_bytes_per_token(arch: Architecture, engine: EngineProfile, fmt: StorageFormat) -> int:
    """K and V bytes of one token over the full-attention (and MLA) layers. [term: kv.full per token]"""
    lay = kv_layout(arch, engine, fmt)
    return lay.full_token_bytes + lay.mla_token_bytes
