"""Composition of a device footprint from the term modules. CORE.

``prepare(model, recipe, engine)`` does the work that does not depend on the workload (tensor
inventory, weight bytes, KV layout) once; ``estimate(prepared, device, workload)`` composes the
terms of one device's footprint; ``required_bytes`` is the same sum without building the
explained terms (the fast path that solvers and sweeps call thousands of times). Both walk the
same list of drafts, so they cannot disagree.

Tensor parallelism (``tp``) is modelled here because every term shards differently: weight
matrices split N ways; KV splits across min(N, n_kv) heads and is replicated beyond that (MLA's
single latent head is replicated on every rank); the MLP working set splits, hidden states do not.

A device that holds part of the model (a pipeline stage, llama.cpp's layers on one GPU, the layers
left on the GPU when experts go to RAM) passes its ``Share`` (fitcalc.core.estimate.placement): the same
terms are then taken over the layers it holds, from the per-layer weights table. ``host_drafts``
gives the system-RAM side (placement ``cpu``). Without a share the whole model is on the device,
which is ``fit``'s case and its numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fitcalc.core.engines import EngineProfile
from fitcalc.core.errors import ModelSourceError
from fitcalc.core.estimate import activations as act
from fitcalc.core.estimate import overhead as ovh
from fitcalc.core.estimate.kvcache import KvLayout, full_tokens, kv_drafts, kv_format, kv_layout
from fitcalc.core.estimate.terms import Footprint, Term, make_term
from fitcalc.core.estimate.placement import Share, whole_share
from fitcalc.core.estimate.weights import LayerTable, WeightsBreakdown, layer_table, tensor_inventory, weights_breakdown
from fitcalc.core.formats import StorageFormat, get_format
from fitcalc.core.recipes import resolve_recipe
from fitcalc.core.spec import Architecture, Device, ModelSpec, RecipeSpec, Workload
from fitcalc.core.units import ceil_div

Draft = tuple  # (term id, bytes, () -> Term)


@dataclass(frozen=True)
class Prepared:
    model: ModelSpec
    recipe: RecipeSpec
    engine: EngineProfile
    weights: WeightsBreakdown
    kv_fmt: StorageFormat | None
    kv: KvLayout | None
    largest_packed_matrix: int
    layers: int | None  # a partial stack of the first `layers` decoder layers (verify)
    include_embeddings: bool
    # Calibration: (term id or "group.*" pattern, factor) pairs applied to every draft (fitcalc.core.calibration).
    scales: tuple[tuple[str, float], ...] = ()
    table: LayerTable | None = None  # bytes per layer and group, for placements that split the model
    # Calibration per GPU family, for a plan over GPUs of several families: (family, scales) pairs,
    # applied to a device of that family when ``scales`` is empty (residuals are per GPU family).
    family_scales: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    # Weight drafts depend on the device only through (native MXFP4?, raw budget?, share): memoized,
    # as are KV layouts per set of layers, and whatever a planner derives from the prepared model
    # alone (device assignments of a layout, the rooflines' model facts).
    _weight_cache: dict = field(default_factory=dict, compare=False, repr=False)
    _kv_cache: dict = field(default_factory=dict, compare=False, repr=False)
    _plan_cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def arch(self) -> Architecture | None:
        return self.model.architecture

    def scales_for(self, device: Device) -> tuple[tuple[str, float], ...]:
        """The calibration factors that apply on ``device``: ``scales``, else its family's."""
        if self.scales or not self.family_scales:
            return self.scales
        return next((s for fam, s in self.family_scales if fam == device.family), ())


def truncated_model(model: ModelSpec, layers: int) -> ModelSpec:
    """The same model cut to its first ``layers`` decoder layers (no MTP): the stack verify builds."""
    a = model.architecture
    assert a is not None
    upd: dict = {"num_hidden_layers": layers, "mtp": None}
    if a.layer_types is not None:
        upd["layer_types"] = a.layer_types[:layers]
    if a.moe is not None and a.moe.dense_layers is not None:
        upd["moe"] = a.moe.model_copy(update={"dense_layers": [i for i in a.moe.dense_layers if i < layers]})
    return model.model_copy(update={"architecture": a.model_copy(update=upd)})


def _largest_packed(model: ModelSpec, recipe: RecipeSpec, tp: int = 1, ep: int = 1) -> int:
    """Numel of the largest single matrix stored in a non-float format (dequant scratch), as one
    rank holds it under ``tp`` / ``ep`` (whole experts under EP stay whole)."""
    a = model.architecture
    if a is None:
        return 0
    from fitcalc.core.estimate.weights import entry_format, rank_shape, unit_of, width_units

    entries = tensor_inventory(a)
    units = width_units(entries, recipe, a.num_hidden_layers) if tp > 1 else {}
    best = 0
    for e in entries:
        if e.kind == "vector":
            continue
        fmt = get_format(entry_format(e, recipe, None, a.num_hidden_layers))
        if not fmt.is_float and fmt.gguf_type not in (0, 1, 30):
            shape = rank_shape(e, a, tp, ep, unit_of(e, units))[0] if (tp > 1 or ep > 1) else e.shape
            best = max(best, shape[0] * shape[-1])
    return best


def _rank_memo(p: Prepared, share: Share, what: str, build):
    """``build(model, recipe, tp, ep)`` for one rank of ``share``, memoized per (what, tp, ep)."""
    key = (what, share.tp, share.ep)
    v = p._weight_cache.get(key)
    if v is None:
        v = p._weight_cache[key] = build(p.model, p.recipe, share.tp, share.ep)
    return v


def largest_packed(p: Prepared, share: Share) -> int:
    """The largest packed matrix one rank of ``share`` dequantizes."""
    if p.arch is None:
        return ceil_div(p.largest_packed_matrix, share.tp)
    if share.tp <= 1 and share.ep <= 1:
        return p.largest_packed_matrix
    return _rank_memo(p, share, "largest_packed", _largest_packed)


def _require_architecture(model: ModelSpec) -> None:
    """Refuse a model without an architecture (a coarse spec, a config.json of an unknown family, a
    lone .safetensors): its KV cache, working memory and largest context cannot be estimated, and a
    verdict from weights alone said FITS with a largest context of 2^40 tokens (issue #17). Not an
    ``InputError``: a report's sweep leaves matrix rows out on those, and a CI gate over rows that
    were all left out passed."""
    if model.architecture is not None:
        return
    why = next((w.split(";")[0] for w in model.warnings if "architecture is unknown" in w), None)
    raise ModelSourceError(f"{model.id}: " + (why or "the spec has no architecture") + "; the KV cache, working memory "
                     "and largest context cannot be estimated, so there is no verdict",
                     hint="`fitcalc size` gives the weights alone; for fit, plan and check give a folder with a "
                          "config.json of a known family, or a spec YAML with an architecture (docs/data-files.md)")


def prepare(model: ModelSpec, recipe: str | RecipeSpec | None, engine: EngineProfile, kv_dtype: str | None = None,
            layers: int | None = None, include_embeddings: bool = True,
            scales: tuple[tuple[str, float], ...] = (),
            family_scales: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()) -> Prepared:
    _require_architecture(model)
    r = resolve_recipe(model, recipe)
    m = truncated_model(model, layers) if layers is not None else model
    w = weights_breakdown(m, r)
    if not include_embeddings:
        w = WeightsBreakdown(model=w.model, recipe=w.recipe, coarse=w.coarse,
                             groups=[g for g in w.groups if g.name not in ("embedding", "lm_head")],
                             terms=[t for t in w.terms if t.id not in ("weights.embedding", "weights.lm_head")],
                             notes=w.notes)
    a = m.architecture
    fmt = kv_format(a, engine, kv_dtype) if a is not None else None
    lay = kv_layout(a, engine, fmt) if (a is not None and fmt is not None) else None
    return Prepared(model=m, recipe=r, engine=engine, weights=w, kv_fmt=fmt, kv=lay,
                    largest_packed_matrix=_largest_packed(m, r), layers=layers,
                    include_embeddings=include_embeddings, scales=tuple(scales), table=layer_table(m, r),
                    family_scales=tuple(family_scales))


# ---------------------------------------------------------------------------------------------
# drafts
# ---------------------------------------------------------------------------------------------

# Which part of a share a tensor group's non-layer tensors follow: the input side (embedding,
# vision towers) or the output side (final norm, lm_head, MTP layers).
_INPUT_SIDE = ("embedding",)
_OUTPUT_SIDE = ("lm_head", "norms", "mtp")


def rank_table(p: Prepared, share: Share) -> LayerTable | None:
    """The per-layer bytes one rank of ``share`` holds: the model's table, or under tensor or
    expert parallelism the table of each tensor's rank part (``weights.rank_shape``), memoized."""
    if p.table is None or (share.tp <= 1 and share.ep <= 1):
        return p.table
    return _rank_memo(p, share, "rank_table", layer_table)


def _group_share(p: Prepared, name: str, share: Share) -> dict[str, int] | None:
    """{format: bytes} of group ``name`` that ``share`` holds; None: the whole group (fast path).

    A group's tensors outside the decoder layers follow the output side (final norm, lm_head,
    MTP: ``share.head``) or the input side (embedding, vision towers: ``share.embedding``)."""
    t = rank_table(p, share)
    layer_group = t is not None and (name in t.per_layer) and name not in _OUTPUT_SIDE
    if name in _OUTPUT_SIDE:
        outside = share.head
    elif name in _INPUT_SIDE or not (layer_group or t is None):
        outside = share.embedding
    else:
        outside = True  # a layer group has no tensors outside the layers
    layers = share.expert_layers if name == "experts" and share.expert_layers is not None else share.layers
    if layers is None and outside and t is p.table:
        return None
    if t is None:  # a coarse spec: whole groups only (placement.assign refuses layer splits)
        return {}
    return t.group_bytes(name, layers, outside)


def weight_drafts(p: Prepared, device: Device | None, share: Share) -> list[Draft]:
    key = (device is not None and "mxfp4" in device.native_formats, device is None or device.is_budget,
           device is None, share.key)
    cached = p._weight_cache.get(key)
    if cached is None:
        cached = p._weight_cache[key] = _build_weight_drafts(p, device, share)
    return cached


def _layers_text(share: Share, name: str, n: int) -> str:
    s = share.expert_set(n) if name == "experts" else share.layer_set(n)
    if len(s) == n:
        return "all layers"
    if not s:
        return "no layers"
    lo, hi = min(s), max(s)
    return f"layers {lo}-{hi}" if hi - lo + 1 == len(s) else f"{len(s)} layers"


def _build_weight_drafts(p: Prepared, device: Device | None, share: Share) -> list[Draft]:
    """weights.<group> for the groups this share holds; ``device`` None: the host (no repack,
    no parallel split)."""
    out: list[Draft] = []
    repack = p.engine.mxfp4_repack_factor() if device is not None else 1.0
    native_fp4 = device is not None and "mxfp4" in device.native_formats
    n = p.table.n_layers if p.table is not None else 0
    table = rank_table(p, share)
    per_rank = table is not p.table
    # A device that computes the logits without holding the input embedding keeps its own copy
    # of a tied embedding as the output matrix: llama.cpp's output tensor on the output device;
    # vLLM's last pipeline stage (models/llama.py builds embed_tokens when is_first_rank or
    # (tie_word_embeddings and is_last_rank)).
    tied_copy = (share.head and p.arch is not None and p.arch.tie_word_embeddings and not share.embedding
                 and device is not None)
    for g, t in zip(p.weights.groups, p.weights.terms):
        if not g.resident or (g.name == "mtp" and not p.engine.weights.loads_mtp):
            continue
        part = _group_share(p, g.name, share)
        if part is None:
            formats, nbytes, term = g.formats, g.bytes, t
        else:
            if g.name == "embedding" and tied_copy:
                part = dict(g.formats) if table is None else table.group_bytes("embedding", frozenset(), True)
            formats, nbytes = part, sum(part.values())
            if nbytes == 0:
                continue
            where = _layers_text(share, g.name, n) if (p.table and g.name in p.table.per_layer) else "outside layers"
            rank = f", one rank of {_parallel_text(share, g.name)}" if per_rank else ""
            term = make_term(t.id, f"{t.label} ({where}{rank})", nbytes, kind=t.kind, band=t.band,
                             formula=t.formula + ("; over the layers this device holds" if not share.all_layers else "")
                                     + ("; each tensor's rank part (docs/formulas.md, 'Tensor and expert "
                                        "parallelism per rank')" if per_rank else ""),
                             inputs={**t.inputs, "layers": where, **({"tp": share.tp, "ep": share.ep} if per_rank
                                                                      else {})},
                             explain=f"{t.id}: {where}{rank}: "
                                     + " + ".join(f"{b:,} B {fid}" for fid, b in formats.items())
                                     + f" = {nbytes:,} B (of {g.bytes:,} B for the whole model)"
                                     + (f"\n    {_rank_rules_text(g.name)}" if per_rank else ""),
                             sources=(*t.sources, *(_RANK_SOURCES if per_rank else ())))
        if repack > 1.0 and not native_fp4 and "mxfp4" in formats:
            grown = int(formats["mxfp4"] * repack)
            n_rep = nbytes - formats["mxfp4"] + grown
            backend = f", {p.engine.weights.mxfp4_backend} MoE backend" if p.engine.weights.mxfp4_backend else ""
            why = ("device has no native MXFP4" if not device.is_budget  # type: ignore[union-attr]
                   else "a raw budget: native FP4 unknown, assumed absent")
            term = make_term(t.id, term.label + " (repacked)", n_rep, kind="engine_constant", band=0.05,
                             formula=term.formula + f"; MXFP4 part × {repack} repack factor",
                             inputs={**term.inputs, "repack_factor": repack},
                             explain=term.explain + f"\n    resident: MXFP4 part {formats['mxfp4']:,} B × {repack} "
                                                    f"({p.engine.display_name}{backend}, {why}) → {n_rep:,} B",
                             sources=(*term.sources, f"engine_profiles/{p.engine.id}.yaml: weights"))
            nbytes = n_rep
        div, how = (share.ep, "EP") if (g.name == "experts" and share.ep > 1) else (share.tp, "TP")
        if div > 1 and table is None:  # a coarse spec has no tensors to cut: its groups divide
            nbytes = ceil_div(nbytes, div)
            base = term
            term = base.model_copy(update={"bytes": nbytes, "label": base.label + f" (1/{div} under {how})",
                                           "explain": base.explain + f"\n    ÷ {how} {div} → {nbytes:,} B per GPU"})
        else:
            term = term if term.bytes == nbytes else term.model_copy(update={"bytes": nbytes})
        if device is None:
            term = term.model_copy(update={"placement": "cpu"})
        out.append((f"weights.{g.name}", nbytes, (lambda term=term: term)))
    return out


_RANK_SOURCES = ("vllm/model_executor/layers/linear.py (ColumnParallelLinear, RowParallelLinear: bias on rank 0, "
                 "QKVParallelLinear: KV heads replicated when tp > n_kv), vocab_parallel_embedding.py (vocab padded to "
                 "64 and split), models/gpt_oss.py at 0025d69 (router and norms replicated, sinks per head, expert "
                 "width split in whole MXFP4 blocks, experts whole under EP)",)

_RULES = {
    "attention": "q rows ÷ TP, k/v rows = KV heads ÷ min(TP, n_kv) (replicated beyond), o_proj columns ÷ TP "
                 "with its bias whole, sinks ÷ TP",
    "linear_attention": "input projections, conv and per-head vectors ÷ TP, out_proj columns ÷ TP, norm whole",
    "mlp": "gate/up rows and down columns ÷ TP in whole blocks, down bias whole",
    "shared_experts": "gate/up rows and down columns ÷ TP in whole blocks, the shared-expert gate whole",
    "experts": "whole experts ÷ EP, or each expert's width ÷ TP in whole blocks (down bias whole)",
    "router": "replicated on every rank",
    "norms": "replicated on every rank",
    "embedding": "vocabulary padded to 64 rows, ÷ TP",
    "lm_head": "vocabulary padded to 64 rows, ÷ TP",
}


def _parallel_text(share: Share, group: str) -> str:
    if group == "experts" and share.ep > 1:
        return f"EP {share.ep}"
    return f"TP {share.tp}" + (f" × DP {share.dp}" if share.dp > 1 else "")


def _rank_rules_text(group: str) -> str:
    return "per rank: " + _RULES.get(group, "÷ TP")


def chunk_tokens(p: Prepared, device: Device | None, workload: Workload) -> int:
    w = p.engine.working
    if workload.chunk_tokens is not None:
        return workload.chunk_tokens
    if p.engine.overhead.memory_fraction_rule == "sglang" and device is not None and not device.is_budget:
        return ovh.sglang_defaults(device.memory_bytes)[0]
    if (device is not None and w.large_gpu_chunk_tokens is not None and w.large_gpu_min_bytes is not None
            and device.memory_bytes >= w.large_gpu_min_bytes):
        return w.large_gpu_chunk_tokens
    return w.chunk_tokens


def _kv_layout_for(p: Prepared, share: Share) -> KvLayout | None:
    a = p.arch
    if a is None or p.kv is None or p.kv_fmt is None:
        return None
    if share.layers is None:
        return p.kv
    lay = p._kv_cache.get(share.layers)
    if lay is None:
        lay = p._kv_cache[share.layers] = kv_layout(a, p.engine, p.kv_fmt, indices=share.layers)
    return lay


def _kv_drafts(p: Prepared, share: Share, workload: Workload, chunk: int) -> list[Draft]:
    a, lay = p.arch, _kv_layout_for(p, share)
    if a is None or lay is None:
        return []
    return kv_drafts(a, p.engine, workload, lay, chunk, share.tp)


def _kv_cells(p: Prepared, workload: Workload) -> int:
    """KV cells a llama.cpp-style graph attends over (for its mask)."""
    tokens, _ = full_tokens(p.engine, workload.context, workload.batch)
    return tokens


def _per_rank(workload: Workload, share: Share) -> Workload:
    """Data-parallel attention replicas each hold their own sequences: the batch splits dp ways."""
    if share.dp <= 1:
        return workload
    return workload.model_copy(update={"batch": ceil_div(workload.batch, share.dp)})


def drafts(p: Prepared, device: Device, workload: Workload, tp: int = 1, share: Share | None = None) -> list[Draft]:
    """Every term of one device's footprint, as (id, bytes, builder).

    ``share`` is the part of the model the device holds (default: all of it, per rank under
    ``tp``, with the engine's rule for the input embedding)."""
    if share is None:
        share = whole_share(p.engine, tp)
    workload = _per_rank(workload, share)
    out = list(weight_drafts(p, device, share))
    n_weights = len(out)
    chunk = chunk_tokens(p, device, workload)
    computes = share.layers is None or bool(share.layers) or share.head
    out += _kv_drafts(p, share, workload, chunk)
    a = p.arch
    if a is not None and computes:
        out += _working_drafts(p, device, workload, share, chunk)
    allocated = sum(d[1] for d in out[n_weights:])
    slack = ovh.allocator_slack_draft(p.engine, allocated, weights=sum(d[1] for d in out[:n_weights]))
    if slack is not None:
        out.append(slack)
    out += _graph_drafts(p, device, workload, share, chunk, _overhead_drafts(p, device, share))
    scales = p.scales_for(device)
    if scales:
        out = [_scaled(d, scales) for d in out]
    return out


def _working_drafts(p: Prepared, device: Device, workload: Workload, share: Share, chunk: int) -> list[Draft]:
    """act.* terms of one device: the engine's compute buffer, or the forward pass's terms and the
    logits (vLLM: the sampler warm-up's peak above the forward's)."""
    a, e = p.arch, p.engine
    assert a is not None
    prompt = workload.prompt_tokens or workload.context
    has_layers = share.layers is None or bool(share.layers)
    tokens = act.forward_tokens(e, chunk, prompt, workload.batch)
    if e.working.model == "graph_reserve":
        return [act.compute_buffer_draft(a, e, tokens, _kv_cells(p, workload), workload.batch, output=share.head,
                                         layers=has_layers)]
    out: list[Draft] = []
    if has_layers:
        moe_here = a.moe is not None and (share.layers is None or bool(
            share.layers - frozenset(a.dense_layer_indices())))
        fused = act.moe_workspace_draft(a, e, tokens, share.tp) if moe_here else None
        out.append(act.prefill_draft(a, e, tokens, share.tp, _widths(p, fused is not None)))
        for extra in ((act.moe_routing_draft(a, tokens) if moe_here else None), fused,
                      act.eager_attention_draft(a, e, min(tokens, prompt), workload.context, workload.batch),
                      act.dequant_scratch_draft(largest_packed(p, share), e)):
            if extra is not None:
                out.append(extra)
    if share.head and p.include_embeddings:  # a stack without lm_head computes no logits (verify)
        rows = _logits_rows(p, device, workload, tokens)
        if e.working.sampler_copies is not None:
            out.append(act.sampler_draft(a, e, rows, sum(d[1] for d in out)))
        else:
            out.append(act.logits_draft(a, e, rows))
    return out


def _max_num_seqs(p: Prepared, device: Device, workload: Workload) -> int:
    e = p.engine
    large = e.working.large_gpu_min_bytes is not None and device.memory_bytes >= e.working.large_gpu_min_bytes
    return act.logits_rows(e, workload.batch, 0, large) if not isinstance(e.working.logits_rows, str) else workload.batch


def _logits_rows(p: Prepared, device: Device, workload: Workload, tokens: int) -> int:
    e = p.engine
    large = e.working.large_gpu_min_bytes is not None and device.memory_bytes >= e.working.large_gpu_min_bytes
    rows = act.logits_rows(e, workload.batch, tokens, large)
    return min(rows, tokens) if e.working.logits_rows_capped_by_chunk and tokens > 0 else rows


def _graph_drafts(p: Prepared, device: Device, workload: Workload, share: Share, chunk: int,
                  overhead: list[Draft]) -> list[Draft]:
    """The overhead terms, with CUDA graphs priced per capture size where the engine says so. Graphs
    captured after the KV cache is sized come out of the engine's reserve (vLLM 0.9 .. 0.19 by
    default): the reserve term keeps only what the graphs leave of it."""
    e = p.engine
    if e.overhead.cuda_graphs_model != "per_capture" or p.arch is None or device.is_host:
        return overhead
    g = act.cuda_graphs_draft(p.arch, e, _max_num_seqs(p, device, workload), chunk)
    if g is None:
        return overhead
    out = []
    for d in overhead:
        if d[0] == "overhead.engine_reserve" and not e.overhead.cuda_graphs_in_budget:
            d = _reserve_less_graphs(d, g[1])
        out.append(d)
    return [g, *out]


def _reserve_less_graphs(d: Draft, graphs: int) -> Draft:
    tid, n, build = d
    m = max(0, n - graphs)

    def rebuilt(build=build) -> Term:
        t = build()
        return t.model_copy(update={"bytes": m, "inputs": {**t.inputs, "cuda_graphs": graphs},
                                    "explain": t.explain + f"\n    − CUDA graphs {graphs:,} B, captured after the KV "
                                                           f"cache is sized, out of this share → {m:,} B"})

    return (tid, m, rebuilt)


def _widths(p: Prepared, fused_moe: bool = False) -> tuple[int, str, int]:
    """(I_eff, how, A) of act.prefill; with a fused-MoE workspace term the MoE part of the MLP is
    priced there, so I_eff keeps only the dense layers' width."""
    if fused_moe:
        key = "widths_fused"
        w = p._weight_cache.get(key)
        if w is None:
            a = p.arch
            assert a is not None
            dense = a.intermediate_size if (a.dense_layer_indices() and a.intermediate_size) else 0
            w = p._weight_cache[key] = (dense, f"dense I {dense}; experts in act.moe_workspace",
                                        act.attention_width_per_token(a))
        return w
    return _widths_plain(p)


def _widths_plain(p: Prepared) -> tuple[int, str, int]:
    w = p._weight_cache.get("widths")
    if w is None:
        w = p._weight_cache["widths"] = act.widths(p.arch)  # type: ignore[arg-type]
    return w


def _overhead_drafts(p: Prepared, device: Device, share: Share) -> list[Draft]:
    """CUDA context, engine constants, driver reserve and engine reserve: they depend on the device
    and the share, not on the workload, so they are built once per (device, share) and reused."""
    key = ("overhead", device.memory_bytes, device.reserved_bytes, device.sm_count, device.compute_capability,
           device.vendor,
           device.unified_memory, device.is_budget, device.is_host, share.key)
    cached = p._weight_cache.get(key)
    if cached is not None:
        return cached
    e = p.engine
    out: list[Draft] = []
    ctx = ovh.cuda_context_draft(device, e)
    if ctx is not None:
        out.append(ctx)
    out += ovh.engine_constant_drafts(e, max(2, share.tp, share.ep) if _split_model(share) else 1, device)
    reserved = ovh.driver_reserved_draft(device)
    if reserved is not None:
        out.append(reserved)
    usable = device.memory_bytes - (reserved[1] if reserved is not None else 0)
    r = ovh.engine_reserve_draft(e, device, usable, max(1, share.tp))
    if r is not None:
        out.append(r)
    p._weight_cache[key] = out
    return out


def scale_for(term_id: str, scales: tuple[tuple[str, float], ...]) -> float | None:
    """The calibration factor of ``term_id``: an exact id wins over a ``group.*`` pattern."""
    exact = [f for pat, f in scales if pat == term_id]
    if exact:
        return exact[0]
    group = [f for pat, f in scales if pat.endswith(".*") and term_id.startswith(pat[:-1])]
    return group[0] if group else None


def _scaled(d: Draft, scales: tuple[tuple[str, float], ...]) -> Draft:
    tid, n, build = d
    f = scale_for(tid, scales)
    if f is None:
        return d
    m = round(n * f)

    def rebuilt(build=build, m=m, f=f) -> Term:
        t = build()
        return t.model_copy(update={"bytes": m, "kind": "calibrated", "label": t.label + " (calibrated)",
                                    "inputs": {**t.inputs, "calibration_factor": round(f, 6)},
                                    "explain": t.explain + f"\n    × {f:.4f} (calibration from engine logs) "
                                                           f"→ {m:,} B"})

    return (tid, m, rebuilt)


def _split_model(share: Share) -> bool:
    """The model is spread over several GPUs (ranks or stages), so collective-communication
    buffers exist (NCCL); one device holding every layer has none (experts in RAM do not count)."""
    return share.tp > 1 or share.ep > 1 or share.layers is not None or not share.head


def host_drafts(p: Prepared, share: Share, workload: Workload, any_gpu: bool = True) -> list[Draft]:
    """System-RAM terms: weights, KV and working memory of what the host holds (llama.cpp keeps a
    CPU layer's KV with the layer), and the host-side graph buffers of a llama.cpp-style engine."""
    out = list(weight_drafts(p, None, share))
    a = p.arch
    if a is None:
        return out
    n = a.num_hidden_layers
    if share.layers:
        chunk = chunk_tokens(p, None, workload)
        out += [(i, b, (lambda f=f: f().model_copy(update={"placement": "cpu"})))
                for i, b, f in _kv_drafts(p, share, workload, chunk)]
    if p.engine.working.model == "graph_reserve":
        tokens = act.forward_tokens(p.engine, chunk_tokens(p, None, workload), workload.prompt_tokens or workload.context,
                                    workload.batch)
        computes = bool(share.layers) or bool(share.expert_set(n))
        if len(share.layer_set(n)) == n and share.head:
            # the CPU runs the whole graph (-ngl 0, no GPU): its buffer is the worst-case graph itself
            full = act.compute_buffer_draft(a, p.engine, tokens, _kv_cells(p, workload), workload.batch)
            out.append(("act.host_compute", full[1],
                        lambda b=full[2]: b().model_copy(update={"id": "act.host_compute", "placement": "cpu"})))
        else:
            out.append(act.host_compute_draft(a, p.engine, tokens, computes))
        if share.head or any_gpu:
            out.append(act.host_output_draft(a, workload.batch, p.engine.working.output_embeddings))
    return out


def required_bytes(p: Prepared, device: Device, workload: Workload, tp: int = 1, share: Share | None = None) -> int:
    """Sum of the footprint's terms without building them (fast path)."""
    return sum(d[1] for d in drafts(p, device, workload, tp, share))


def estimate(p: Prepared, device: Device, workload: Workload, tp: int = 1, share: Share | None = None) -> Footprint:
    """One device's footprint, every term explained."""
    return Footprint.model_construct(terms=[d[2]() for d in drafts(p, device, workload, tp, share)])


def host_estimate(p: Prepared, share: Share, workload: Workload, any_gpu: bool = True) -> Footprint:
    return Footprint.model_construct(terms=[d[2]() for d in host_drafts(p, share, workload, any_gpu)])




__all__ = ["Prepared", "prepare", "drafts", "required_bytes", "estimate", "truncated_model", "Draft",
           "host_drafts", "host_estimate"]
