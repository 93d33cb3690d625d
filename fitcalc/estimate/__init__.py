"""Estimates: one module per family of terms, each term a small pure function. CORE.

``prepare(model, recipe, engine)`` does the work that does not depend on the workload (tensor
inventory, weight bytes, KV layout) once; ``estimate(prepared, device, workload)`` composes the
terms of one device's footprint; ``required_bytes`` is the same sum without building the
explained terms (the fast path that solvers and sweeps call thousands of times). Both walk the
same list of drafts, so they cannot disagree.

Tensor parallelism (``tp``) is modelled here because every term shards differently: weight
matrices split N ways; KV splits across min(N, n_kv) heads and is replicated beyond that (MLA's
single latent head is replicated on every rank); the MLP working set splits, hidden states do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fitcalc.engines import EngineProfile
from fitcalc.estimate import activations as act
from fitcalc.estimate import overhead as ovh
from fitcalc.estimate.kvcache import KvLayout, full_tokens, kv_drafts, kv_format, kv_layout
from fitcalc.estimate.terms import Footprint, Term, make_term
from fitcalc.estimate.weights import WeightsBreakdown, tensor_inventory, weights_breakdown
from fitcalc.formats import StorageFormat, get_format
from fitcalc.recipes import resolve_recipe
from fitcalc.spec import Architecture, Device, ModelSpec, RecipeSpec, Workload
from fitcalc.units import ceil_div

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
    # Weight drafts depend on the device only through (native MXFP4?, raw budget?, TP): memoized.
    _weight_cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def arch(self) -> Architecture | None:
        return self.model.architecture


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


def _largest_packed(model: ModelSpec, recipe: RecipeSpec) -> int:
    """Numel of the largest single matrix stored in a non-float format (dequant scratch)."""
    a = model.architecture
    if a is None:
        return 0
    from fitcalc.estimate.weights import _entry_format  # same format choice as the pricing

    best = 0
    for e in tensor_inventory(a):
        if e.kind == "vector":
            continue
        fmt = get_format(_entry_format(e, recipe, None, a.num_hidden_layers))
        if not fmt.is_float and fmt.gguf_type not in (0, 1, 30):
            best = max(best, e.numel)
    return best


def prepare(model: ModelSpec, recipe: str | RecipeSpec | None, engine: EngineProfile, kv_dtype: str | None = None,
            layers: int | None = None, include_embeddings: bool = True) -> Prepared:
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
                    include_embeddings=include_embeddings)


# ---------------------------------------------------------------------------------------------
# drafts
# ---------------------------------------------------------------------------------------------


def _weight_drafts(p: Prepared, device: Device, tp: int) -> list[Draft]:
    key = ("mxfp4" in device.native_formats, device.is_budget, tp)
    cached = p._weight_cache.get(key)
    if cached is None:
        cached = p._weight_cache[key] = _build_weight_drafts(p, device, tp)
    return cached


def _build_weight_drafts(p: Prepared, device: Device, tp: int) -> list[Draft]:
    out: list[Draft] = []
    repack = p.engine.weights.mxfp4_repack_factor_without_native
    native_fp4 = "mxfp4" in device.native_formats
    for g, t in zip(p.weights.groups, p.weights.terms):
        if not g.resident or (g.name == "mtp" and not p.engine.weights.loads_mtp):
            continue
        n = g.bytes
        term: Term = t
        if repack > 1.0 and not native_fp4 and "mxfp4" in g.formats:
            grown = int(g.formats["mxfp4"] * repack)
            n = g.bytes - g.formats["mxfp4"] + grown
            why = ("device has no native MXFP4" if not device.is_budget
                   else "a raw budget: native FP4 unknown, assumed absent")
            term = make_term(t.id, t.label + " (repacked)", n, kind="engine_constant", band=0.05,
                             formula=t.formula + f"; MXFP4 part × {repack} repack factor",
                             inputs={**t.inputs, "repack_factor": repack},
                             explain=t.explain + f"\n    resident: MXFP4 part {g.formats['mxfp4']:,} B × {repack} "
                                                 f"({p.engine.display_name}, {why}) → {n:,} B",
                             sources=(*t.sources, f"engine_profiles/{p.engine.id}.yaml: weights"))
        if tp > 1:
            n = ceil_div(n, tp)
            base = term
            term = base.model_copy(update={"bytes": n, "label": base.label + f" (1/{tp} under TP)",
                                           "explain": base.explain + f"\n    ÷ TP {tp} → {n:,} B per GPU"})
        out.append((f"weights.{g.name}", n, (lambda term=term: term)))
    return out


def _chunk(p: Prepared, device: Device, workload: Workload) -> int:
    w = p.engine.working
    if workload.chunk_tokens is not None:
        return workload.chunk_tokens
    if (w.large_gpu_chunk_tokens is not None and w.large_gpu_min_bytes is not None
            and device.memory_bytes >= w.large_gpu_min_bytes):
        return w.large_gpu_chunk_tokens
    return w.chunk_tokens


def _kv_drafts(p: Prepared, workload: Workload, chunk: int, tp: int) -> list[Draft]:
    a, lay = p.arch, p.kv
    if a is None or lay is None:
        return []
    return kv_drafts(a, p.engine, workload, lay, chunk, tp)


def _kv_cells(p: Prepared, workload: Workload) -> int:
    """KV cells a llama.cpp-style graph attends over (for its mask)."""
    tokens, _ = full_tokens(p.engine, workload.context, workload.batch)
    return tokens


def drafts(p: Prepared, device: Device, workload: Workload, tp: int = 1) -> list[Draft]:
    """Every term of one device's footprint, as (id, bytes, builder)."""
    out = list(_weight_drafts(p, device, tp))
    chunk = _chunk(p, device, workload)
    out += _kv_drafts(p, workload, chunk, tp)
    a = p.arch
    e = p.engine
    prompt = workload.prompt_tokens or workload.context
    if a is not None:
        tokens = act.forward_tokens(e, chunk, prompt, workload.batch)
        large = (e.working.large_gpu_min_bytes is not None and device.memory_bytes >= e.working.large_gpu_min_bytes)
        if e.working.model == "graph_reserve":
            out.append(act.compute_buffer_draft(a, e, tokens, _kv_cells(p, workload), workload.batch))
        else:
            d = act.prefill_draft(a, e, tokens, tp)
            out.append(d)
            rows = act.logits_rows(e, workload.batch, tokens, large)
            if p.include_embeddings:  # a stack built without lm_head computes no logits (verify --no-embeddings)
                out.append(act.logits_draft(a, e, rows))
            for extra in (act.moe_routing_draft(a, tokens),
                          act.eager_attention_draft(a, e, min(tokens, prompt), workload.context, workload.batch),
                          act.dequant_scratch_draft(ceil_div(p.largest_packed_matrix, tp), e)):
                if extra is not None:
                    out.append(extra)
    allocated = sum(d[1] for d in out if not d[0].startswith("weights."))
    for extra in (ovh.allocator_slack_draft(e, allocated), ovh.cuda_context_draft(device, e)):
        if extra is not None:
            out.append(extra)
    out += ovh.engine_constant_drafts(e, tp, device)
    reserved = ovh.driver_reserved_draft(device)
    if reserved is not None:
        out.append(reserved)
    usable = device.memory_bytes - (reserved[1] if reserved is not None else 0)
    r = ovh.engine_reserve_draft(e, device, usable)
    if r is not None:
        out.append(r)
    return out


def required_bytes(p: Prepared, device: Device, workload: Workload, tp: int = 1) -> int:
    """Sum of the footprint's terms without building them (fast path)."""
    return sum(d[1] for d in drafts(p, device, workload, tp))


def estimate(p: Prepared, device: Device, workload: Workload, tp: int = 1) -> Footprint:
    """One device's footprint, every term explained."""
    return Footprint.model_construct(terms=[d[2]() for d in drafts(p, device, workload, tp)])


def kv_bytes_of(terms: list[Draft] | Footprint) -> int:
    if isinstance(terms, Footprint):
        return terms.by_prefix("kv")
    return sum(d[1] for d in terms if d[0].startswith("kv."))


__all__ = ["Prepared", "prepare", "drafts", "required_bytes", "estimate", "truncated_model", "Draft",
           "kv_bytes_of"]
