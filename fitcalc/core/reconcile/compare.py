"""A parsed log beside fitcalc's prediction with the same settings, figure by figure. CORE.

``reconcile(log, model, engine, device)`` turns the settings the log states into a workload and
an engine profile (``setup``), runs the same estimate ``fitcalc fit`` runs, and pairs each logged
figure with the fitcalc terms it corresponds to (``FIGURE_TERMS``). Where the engine splits a
model over devices (llama.cpp ``-ngl``/``--n-cpu-moe``) the prediction is split the same way
(``llama_split``). Nothing here reads files or prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fitcalc.core.engines import EngineProfile, apply_settings, with_settings
from fitcalc.core.errors import FitcalcError, InputError
from fitcalc.core.estimate import prepare
from fitcalc.core.estimate.activations import host_output_draft
from fitcalc.core.estimate.footprint import weight_drafts
from fitcalc.core.estimate.kvcache import full_tokens
from fitcalc.core.estimate.placement import Layout, assign
from fitcalc.core.plan import FitResult, fit_device
from fitcalc.core.recipes import GENERIC_RECIPES
from fitcalc.core.reconcile.model import (
    Figure,
    LogSettings,
    ParsedLog,
    ReconcileResult,
    ReconcileRow,
    is_host,
)
from fitcalc.core.reconcile.parsers import quantization_in_name
from fitcalc.core.spec import Architecture, Device, ModelSpec, Workload
from fitcalc.core.units import format_bytes

# llama_ftype_name() strings (llama.cpp src/llama-model-loader.cpp) -> fitcalc recipe ids.
GGUF_FILE_TYPES = {
    "Q8_0": "q8_0", "Q6_K": "q6_k", "Q5_K - Medium": "q5_k_m", "Q4_K - Medium": "q4_k_m", "Q4_0": "q4_0",
    "Q3_K - Medium": "q3_k_m", "Q2_K - Medium": "q2_k", "IQ4_XS - 4.25 bpw": "iq4_xs", "MXFP4 MoE": "mxfp4_moe",
    "BF16": "bf16", "F16": "fp16", "all F32": "fp32",
}

# Ollama's ggml.go line prints general.file_type as its fs/ggml/type.go FileType.String() does
# ("MXFP4", "Q4_K_M", "Q8_0"; forks print "MXFP4_MOE") -> fitcalc recipe ids.
OLLAMA_FILE_TYPES = {
    "Q8_0": "q8_0", "Q6_K": "q6_k", "Q5_K_M": "q5_k_m", "Q4_K_M": "q4_k_m", "Q4_0": "q4_0", "Q3_K_M": "q3_k_m",
    "Q2_K": "q2_k", "IQ4_XS": "iq4_xs", "MXFP4": "mxfp4_moe", "MXFP4_MOE": "mxfp4_moe", "BF16": "bf16",
    "F16": "fp16", "F32": "fp32",
}

# A GGUF type read off the logged weights must come this close to them (the mmap'd CPU span may
# hold a few GPU tensors), and the next type must be at least this many times further away.
_GGUF_MATCH_TOLERANCE = 0.03
_GGUF_MATCH_MARGIN = 2.0

# vLLM quantization= values -> fitcalc recipe ids. None/checkpoint formats keep the spec's own recipe.
VLLM_QUANTIZATION = {"fp8": "fp8", "awq": "int4-awq", "awq_marlin": "int4-awq", "gptq": "int4-gptq",
                     "gptq_marlin": "int4-gptq", "bitsandbytes": "nf4"}

# Figure -> (row id, label, term-id prefixes summed for the prediction). A prefix "kv" matches
# every kv.* term; an exact id matches itself.
FIGURE_TERMS: dict[tuple[str, str | None], tuple[str | None, str, tuple[str, ...]]] = {
    ("weights", None): ("weights.*", "model weights", ("weights",)),
    ("kv", None): ("kv.*", "KV cache", ("kv",)),
    ("kv", "full"): ("kv.full", "KV cache, full-attention layers", ("kv.full", "kv.mla")),
    ("kv", "swa"): ("kv.sliding", "KV cache, sliding-window layers", ("kv.sliding",)),
    ("compute_buffer", None): ("act.compute_buffer", "compute buffer", ("act.compute_buffer",)),
    ("output_buffer", None): ("act.host_output", "output buffer (logits)", ()),
    ("lora", None): (None, "LoRA adapter buffer", ()),
    ("act_peak", None): ("act.*", "activation peak (profile run)", ("act",)),
    ("torch_peak", None): ("weights.*+act.*", "torch peak (weights + activations)", ("weights", "act")),
    ("non_torch", None): ("overhead.non_torch", "non-torch memory", ("overhead.non_torch",)),
    ("cuda_graphs", None): ("overhead.cuda_graphs", "CUDA graphs", ("overhead.cuda_graphs",)),
    ("kv_capacity", None): ("kv_capacity_bytes", "memory left for the KV cache", ()),
    ("kv_capacity_tokens", None): ("kv_capacity_tokens", "KV cache capacity", ()),
    ("file_size", None): ("weights.* (file)", "GGUF tensor data", ()),
}


@dataclass
class Setup:
    """What the prediction runs with, and which of it the log did not say."""

    engine: EngineProfile
    workload: Workload
    tp: int
    recipe: str | None
    kv_dtype: str | None
    settings: dict = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)
    graphs_engine: EngineProfile | None = None  # vLLM V0: graphs outside the KV budget, but logged


def _recipe(log: ParsedLog, model: ModelSpec, base: EngineProfile) -> tuple[str | None, str | None]:
    """The recipe the log's settings name, and the assumption made when the log does not name one."""
    st = log.settings
    if st.recipe:
        return st.recipe, None
    if log.engine in ("llama.cpp", "ollama"):
        if st.file_type is None:
            return _gguf_type_from_weights(log, model, base)
        ft = st.file_type.replace(" (guessed)", "").strip()
        recipe = GGUF_FILE_TYPES.get(ft) or OLLAMA_FILE_TYPES.get(ft.upper())
        if recipe is None:
            raise InputError(f"GGUF file type {ft!r} has no fitcalc recipe",
                             hint="pass --set recipe=ID with the closest of `fitcalc recipes`")
        return recipe, None
    q, assumed = (st.quantization or "").lower(), None
    if not q and (named := quantization_in_name(st.model)):
        q = named[0]
        assumed = f"quantization not stated: {q}, from the model name's '-{named[1]}' suffix ({st.model})"
    if q and q in VLLM_QUANTIZATION and VLLM_QUANTIZATION[q] in GENERIC_RECIPES:
        native_formats = set(model.native_recipe.rules.values())
        if not any(f.startswith(VLLM_QUANTIZATION[q].split("-")[0]) for f in native_formats):
            return VLLM_QUANTIZATION[q], assumed
    return None, None  # the checkpoint's own recipe


def _gguf_type_from_weights(log: ParsedLog, model: ModelSpec, base: EngineProfile) -> tuple[str, str]:
    """A log without a file type line: the GGUF type whose weights match the model buffers it prints."""
    weights = [f for f in log.figures if f.what == "weights" and not f.engine_estimate]
    hint = "pass --set recipe=q4_k_m (or the file's type; `fitcalc recipes` lists them)"
    if not weights:
        raise InputError("the log does not state the GGUF file type (print_info: file type = ...)", hint=hint)
    logged = sum(f.value for f in weights)
    sizes = []
    for recipe in dict.fromkeys(GGUF_FILE_TYPES.values()):
        try:
            sizes.append((abs(prepare(model, recipe, base).weights.disk_bytes - logged) / logged, recipe))
        except FitcalcError:
            continue  # a recipe this model cannot take
    sizes.sort()
    if not sizes or sizes[0][0] > _GGUF_MATCH_TOLERANCE or (
            len(sizes) > 1 and sizes[1][0] < _GGUF_MATCH_MARGIN * sizes[0][0]):
        near = ", ".join(f"{r} {e:+.1%}" for e, r in sizes[:2])
        raise InputError(f"the log does not state the GGUF file type, and no type's weights match the "
                         f"{format_bytes(logged)} of model buffers it prints (nearest: {near})", hint=hint)
    err, recipe = sizes[0]
    lines = ", ".join(str(f.line) for f in weights)
    return recipe, (f"GGUF file type not printed: {recipe}, whose weights come within {err:.1%} of the "
                    f"{format_bytes(logged)} of model buffers the log prints (lines {lines})")


# A model chosen by its weights (a log that names none) must come this close to the weights the log
# prints: models of one architecture in the catalog differ in size several times over, while the
# same model's GGUF differs between converters by a few percent (Ollama keeps gpt-oss's non-expert
# tensors in BF16, llama.cpp's converter in Q8_0).
_MODEL_MATCH_TOLERANCE = 0.10


def model_by_weights(log: ParsedLog, specs: list[ModelSpec], base: EngineProfile) -> tuple[ModelSpec, str]:
    """A log that names no model (Ollama's blobs): of ``specs`` (the catalog's models of the log's
    architecture), the one whose weights in the log's GGUF type match the weights the log prints."""
    weights = [f for f in log.figures if f.what == "weights" and not f.engine_estimate]
    arch = log.settings.architecture
    if not weights or not (log.settings.file_type or log.settings.recipe):
        raise InputError(f"the log names no model (architecture {arch}) and prints no GGUF type to size one by",
                         hint="pass --model (a bundled id, a Hub name, or a spec YAML path)")
    logged = sum(f.value for f in weights)
    scored = []
    for spec in specs:
        try:
            recipe, _ = _recipe(log, spec, base)
            scored.append((abs(prepare(spec, recipe, base).weights.disk_bytes - logged) / logged, spec.id, spec, recipe))
        except FitcalcError:
            continue  # a model this GGUF type does not apply to
    scored.sort(key=lambda x: (x[0], x[1]))
    if not scored or scored[0][0] > _MODEL_MATCH_TOLERANCE or (
            len(scored) > 1 and scored[1][0] < _GGUF_MATCH_MARGIN * scored[0][0]):
        near = ", ".join(f"{mid} {e:+.1%}" for e, mid, _, _ in scored[:2]) or "none of this architecture"
        raise InputError(f"the log names no model, and no catalog model of architecture {arch} has the "
                         f"{format_bytes(logged)} of weights it prints (nearest: {near})",
                         hint="pass --model (a bundled id, a Hub name, or a spec YAML path)")
    err, _, spec, recipe = scored[0]
    lines = ", ".join(str(f.line) for f in weights)
    return spec, (f"model not named (architecture {arch}): {spec.id}, whose {recipe} weights come within "
                  f"{err:.1%} of the {format_bytes(logged)} of weights the log prints (lines {lines})")


def _before_0_11(family: str | None) -> bool:
    try:
        major, minor = (int(x) for x in (family or "").split(".")[:2])
    except ValueError:
        return False
    return (major, minor) < (0, 11)


def _has_mxfp4(model: ModelSpec) -> bool:
    return "mxfp4" in set(model.native_recipe.rules.values())


def _kv_dtype(text: str | None) -> str | None:
    if text is None or text.lower() == "auto":
        return None
    return text.lower()


def setup(log: ParsedLog, model: ModelSpec, base: EngineProfile) -> Setup:
    """Settings from the log (or the user) into an engine profile, a workload and a TP size."""
    st = log.settings
    a = model.architecture
    if a is None:
        raise InputError(f"{model.id} is a coarse spec (totals only): its terms cannot be matched to a log",
                         hint="give a spec with an architecture block (--model)")
    assumptions: list[str] = []
    recipe, assumed = _recipe(log, model, base)
    if assumed:
        assumptions.append(assumed)
    kv = _kv_dtype(st.kv_dtype)
    if log.engine == "vllm":
        return _vllm_setup(log, st, a, base, recipe, kv, assumptions, mxfp4=_has_mxfp4(model))
    return _llama_setup(st, base, recipe, kv, assumptions)


_VLLM_SEQS_BY_CHUNK = {2048: 256, 16384: 1024}


def _vllm_version_rules(log: ParsedLog, engine: EngineProfile, v0: bool, eager: bool, assumptions: list[str],
                        mxfp4: bool) -> EngineProfile:
    """The vLLM profile as the log's version runs: 0.9/0.10 captured piecewise graphs of [1, 2, 4] +
    range(8, 513, 8); V0 profiled no V1 sampler warm-up; the MXFP4 backend where the log says it."""
    st = log.settings
    if not v0 and not eager and _before_0_11(log.version_family):
        engine = engine.model_copy(update={"overhead": engine.overhead.model_copy(
            update={"cudagraph_mode": "piecewise", "cudagraph_sizes_rule": "0.9"})})
    if st.mxfp4_backend is not None:
        engine = apply_settings(engine, Workload(context=1), {"mxfp4_backend": st.mxfp4_backend}).engine
    elif engine.weights.mxfp4_backend is not None and mxfp4:
        assumptions.append(f"MXFP4 MoE backend not stated: {engine.weights.mxfp4_backend} (--set "
                           "mxfp4_backend=marlin for vLLM 0.10, whose log warns of 'marlin_utils_fp4')")
    if v0:  # the sampler warm-up peak is V1's profile_run (0.9+); V0 logs show the forward's alone
        engine = engine.model_copy(update={"working": engine.working.model_copy(update={"sampler_copies": None})})
    return engine


def _vllm_setup(log: ParsedLog, st: LogSettings, a: Architecture, base: EngineProfile, recipe: str | None,
                kv: str | None, assumptions: list[str], mxfp4: bool = False) -> Setup:
    """vLLM V0 and V1: the KV budget's settings, and the defaults taken for those the log omits."""
    used: dict = {}
    context = st.context
    if context is None:
        # vllm/config ModelConfig: without --max-model-len, max_model_len is the model's own
        # maximum (_get_and_verify_max_len over the HF config's max_position_embeddings)
        context = a.max_position_embeddings
        assumptions.append(f"max_model_len not stated: {context:,}, the model's max_position_embeddings "
                           "(vLLM's default)")
        st = st.model_copy(update={"context": context})
    tp = st.tp or 1
    if st.tp is None:
        assumptions.append("tensor parallel size not stated: 1")
    util = st.gpu_memory_utilization
    if util is None:
        util = base.overhead.memory_fraction
        assumptions.append(f"gpu_memory_utilization not stated: vLLM's default {util}")
    v0 = log.vllm_generation == "v0"
    eager = bool(st.enforce_eager)
    seqs = st.max_num_seqs
    if seqs is None and not v0 and st.chunk is not None:
        # vLLM picks max_num_seqs with max_num_batched_tokens by GPU class and entry point (PR #12369:
        # API server 2048 tokens / 256 seqs, LLM class on H100-class GPUs 16384 / 1024; 8192 is both the
        # API server's on H100 and the LLM class's elsewhere, so it says nothing)
        seqs = _VLLM_SEQS_BY_CHUNK.get(st.chunk)
        if seqs is not None:
            assumptions.append(f"max_num_seqs not stated: {seqs}, vLLM's default beside the logged "
                               f"max_num_batched_tokens {st.chunk:,}")
    engine = with_settings(base, memory_fraction=util, cuda_graphs=False if (eager or v0) else None,
                           logits_rows=seqs)
    engine = _vllm_version_rules(log, engine, v0, eager, assumptions, mxfp4)
    graphs_engine = None
    if v0 and not eager:
        # V0 captured its graphs after sizing the KV cache, out of the memory left unused.
        graphs_engine = base
        assumptions.append("vLLM V0: CUDA graphs are captured after the KV cache is sized, so they are "
                           "left out of the KV budget")
    chunk = st.chunk
    if chunk is None and v0:
        # vllm/config.py SchedulerConfig (0.6): chunked prefill -> 2048 tokens, else max(max_model_len,
        # 2048); engine/arg_utils.py turns chunked prefill on by default above 32K tokens.
        chunk = 2048 if st.context > 32768 else max(st.context, 2048)
        assumptions.append(f"max_num_batched_tokens not stated: {chunk:,} (vLLM V0's default for "
                           f"max_model_len {st.context:,})")
    elif chunk is None:
        assumptions.append("max_num_batched_tokens not stated: vLLM V1's default for this GPU")
    if st.pp and st.pp > 1:
        assumptions.append(f"pipeline parallel size {st.pp} is not modelled: the prediction is for one "
                           "stage holding every layer")
    wl = Workload(context=st.context, batch=1, kv_dtype=kv, chunk_tokens=chunk)
    used.update(context=st.context, tp=tp, gpu_memory_utilization=util, enforce_eager=eager,
                max_num_batched_tokens=chunk, generation=log.vllm_generation)
    return Setup(engine=engine, workload=wl, tp=tp, recipe=recipe, kv_dtype=kv, settings=used,
                 assumptions=assumptions, graphs_engine=graphs_engine)


def _llama_setup(st: LogSettings, base: EngineProfile, recipe: str | None, kv: str | None, assumptions: list[str]) -> Setup:
    """llama.cpp and Ollama's runners."""
    used: dict = {}
    n_seq = st.n_seq_max or 1
    if st.n_seq_max is None:
        assumptions.append("n_seq_max (parallel sequences) not stated: 1")
    n_ctx = st.n_ctx or st.kv_cells.get("full")
    if n_ctx is None:
        raise InputError("the log does not state n_ctx (the context size)",
                         hint="pass --set n_ctx=N (llama.cpp -c, Ollama num_ctx × parallel)")
    context = st.context or max(1, n_ctx // n_seq)
    chunk = st.n_ubatch
    if chunk is None:
        chunk = base.working.chunk_tokens
        assumptions.append(f"n_ubatch not stated: llama.cpp's default {chunk}")
    if st.n_gpu_layers is None:
        assumptions.append("offloaded layers not stated: every layer and the output layer on the GPU")
    fa = st.flash_attn
    if fa is None:
        assumptions.append(f"flash attention not stated: the profile's {base.working.attention}")
    engine = with_settings(base, flash_attention=fa)
    if st.swa_full:
        # llama.cpp --swa-full (LM Studio's default): sliding-window layers keep a full-size cache
        engine = engine.model_copy(update={"kv": engine.kv.model_copy(update={"sliding": "full"})})
    if st.new_engine is not None and "new_engine" in base.settings:
        # Ollama's Go engine reserves logits for `parallel` rows only (runner/ollamarunner reserveWorstCaseGraph)
        engine = apply_settings(engine, Workload(context=1), {"new_engine": st.new_engine}).engine
    wl = Workload(context=context, batch=n_seq, kv_dtype=kv, chunk_tokens=chunk)
    used.update(n_ctx=n_ctx, n_seq_max=n_seq, context=context, n_ubatch=chunk,
                flash_attn=fa if fa is not None else base.working.attention == "flash",
                n_gpu_layers=st.n_gpu_layers, n_cpu_moe=st.n_cpu_moe or 0, swa_full=bool(st.swa_full))
    return Setup(engine=engine, workload=wl, tp=1, recipe=recipe, kv_dtype=kv, settings=used,
                 assumptions=assumptions)


# ---------------------------------------------------------------------------------------------
# llama.cpp placement
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    gpu_weights: int
    cpu_weights: int
    gpu_layer_share: dict  # layer kind -> (layers on GPU, layers of that kind)
    note: str
    gpu_share: object = None  # fitcalc.core.estimate.placement.Share of the GPU
    host_share: object = None  # and of the host


def llama_split(model: ModelSpec, recipe: str | None, n_gpu_layers: int | None, n_cpu_moe: int,
                engine: EngineProfile) -> Split:
    """Weights per device as llama.cpp places them (src/llama-model.cpp ``load_tensors``).

    The input layer (token embeddings) stays on the CPU ("very little benefit to offloading the
    input layer"); the last ``min(ngl, n_layer)`` repeating layers go to the GPU; the output layer
    (final norm, lm_head) goes to the GPU when ``ngl > n_layer``, and a tied model then holds a copy
    of the embedding there. ``--n-cpu-moe N`` (common/arg.cpp) overrides ``blk.<i>.ffn_(up|down|
    gate)_exps`` of layers i < N to the CPU: routed experts only, routers and shared experts stay.

    The placement is ``fitcalc.core.estimate.placement.assign`` (the one `fitcalc plan` uses) with
    llama.cpp's -ngl and --n-cpu-moe, priced by the same weight drafts.
    """
    a = model.architecture
    assert a is not None
    n = a.num_hidden_layers
    placed = assign(a, engine, Layout(gpu_layers=n_gpu_layers, cpu_moe=min(n_cpu_moe, n)), [1])
    gpu_share, host_share = placed.gpus[0], placed.host
    p = prepare(model, recipe, engine)
    # Any device: llama.cpp stores weights as in the file (no repack), so the budget is irrelevant.
    gpu = sum(d[1] for d in weight_drafts(p, Device.from_budget(1 << 50), gpu_share) if d[0].startswith("weights."))
    cpu = sum(d[1] for d in weight_drafts(p, None, host_share) if d[0].startswith("weights."))
    gpu_layers = set(gpu_share.layer_set(n))
    rep = len(gpu_layers)
    output_gpu = gpu_share.head
    note = f"{rep}/{n} repeating layers and the output layer {'on' if output_gpu else 'off'} the GPU"
    if n_cpu_moe:
        note += f"; experts of layers 0-{min(n_cpu_moe, n) - 1} on the CPU (--n-cpu-moe {n_cpu_moe})"
    if a.tie_word_embeddings and output_gpu:
        note += "; tied lm_head: a copy of the embedding on the GPU"
    kinds = a.layer_kinds()
    share = {}
    for kind in set(kinds):
        total = sum(1 for k in kinds if k == kind)
        share[kind] = (sum(1 for i, k in enumerate(kinds) if k == kind and i in gpu_layers), total)
    return Split(gpu_weights=gpu, cpu_weights=cpu, gpu_layer_share=share, note=note, gpu_share=gpu_share,
                 host_share=host_share)


# ---------------------------------------------------------------------------------------------
# rows
# ---------------------------------------------------------------------------------------------


def _sum(fit: FitResult, prefixes: tuple[str, ...]) -> tuple[int, list[str]]:
    total, ids = 0, []
    for t in fit.terms:
        if any(t.id == p or t.id.startswith(p + ".") for p in prefixes):
            total += t.bytes
            ids.append(t.id)
    return total, ids


def _merge_devices(figures: list[Figure]) -> list[Figure]:
    """Several GPUs (or host buffers) of one kind of figure become one row: llama.cpp's split of
    layers between GPUs (-ts) follows free memory, which a log does not fully state."""
    out: list[Figure] = []
    groups: dict[tuple, list[Figure]] = {}
    for f in figures:
        if f.device is None or f.engine_estimate:
            out.append(f)
            continue
        groups.setdefault((f.what, f.cache, is_host(f.device)), []).append(f)
    for fs in groups.values():
        if len(fs) == 1:
            out.append(fs[0])
            continue
        out.append(fs[0].model_copy(update={
            "device": "+".join(f.device for f in fs if f.device), "value": sum(f.value for f in fs),
            "resolution": sum(f.resolution for f in fs), "note": "summed over " + ", ".join(
                f"{f.device} (line {f.line})" for f in fs)}))
    return sorted(out, key=lambda f: f.line)


def _row(f: Figure, row_id: str | None, label: str, predicted: int | None, terms: list[str], *,
         calibratable: bool, note: str | None = None) -> ReconcileRow:
    diff = pct = None
    within = False
    if predicted is not None:
        diff = predicted - f.value
        pct = diff / f.value * 100 if f.value else None
        within = abs(diff) <= f.resolution
    notes = "; ".join(x for x in (f.note, note) if x) or None
    common = dict(id=row_id, label=label, device=f.device, terms=terms, unit=f.unit, diff=diff, diff_pct=pct,
                  within_rounding=within, resolution=f.resolution, engine_estimate=f.engine_estimate,
                  calibratable=calibratable and predicted is not None, line=f.line, raw=f.raw, note=notes)
    if f.unit == "tokens":
        return ReconcileRow(logged_tokens=f.value, predicted_tokens=predicted, **common)
    return ReconcileRow(logged_bytes=f.value, predicted_bytes=predicted, **common)


def _llama_row(f: Figure, fit: FitResult, split: Split, model: ModelSpec, setup_: Setup, log: ParsedLog,
               disk_bytes: int) -> ReconcileRow:
    row_id, label, prefixes = FIGURE_TERMS[(f.what, f.cache if f.what == "kv" else None)]
    if f.engine_estimate:
        label = "Ollama's estimate: " + label
        total, ids = _sum(fit, prefixes)
        return _row(f, row_id, label, total, ids, calibratable=False)
    host = is_host(f.device)
    if f.what == "weights":
        if f.device is None:
            return _row(f, row_id, label, split.gpu_weights + split.cpu_weights,
                        [t.id for t in fit.terms if t.id.startswith("weights.")], calibratable=True)
        pred = split.cpu_weights if host else split.gpu_weights
        ids = [t.id for t in fit.terms if t.id.startswith("weights.")]
        if f.device.startswith("CPU_Mapped"):
            return _row(f, row_id, label, pred, ids, calibratable=False, note=(
                "a memory-mapped buffer spans the file from its first to its last CPU tensor, GPU tensors "
                "between them included (llama-model-loader.cpp get_mapping_range); fitcalc predicts the CPU "
                "tensors' own bytes: " + split.note))
        return _row(f, row_id, label, pred, ids, calibratable=True, note=split.note)
    if f.what == "kv":
        total, ids = _sum(fit, prefixes)
        if f.device is None:
            return _row(f, row_id, label, total, ids, calibratable=True)
        kinds = {"kv.full": "full_attention", "kv.sliding": "sliding_attention"}
        pred = 0
        for t in fit.terms:
            if t.id in ids:
                on, of = split.gpu_layer_share.get(kinds.get(t.id, "full_attention"), (1, 1))
                frac_num, frac_den = (of - on, of) if host else (on, of)
                pred += t.bytes * frac_num // frac_den if frac_den else 0
        return _row(f, row_id, label, pred, ids, calibratable=True)
    if f.what == "compute_buffer":
        if host:
            return _host_compute_row(f, label, model, setup_, split)
        gpu_fit = _share_footprint(model, setup_, split, fit)
        total, ids = _sum(gpu_fit, prefixes)
        return _row(f, row_id, label, total, ids, calibratable=True,
                    note=None if split.gpu_share is None else f"priced for what the GPU runs: {split.note}")
    if f.what == "output_buffer":
        a = model.architecture
        assert a is not None
        emb = log.settings.embeddings
        if emb is None:
            emb = setup_.engine.working.output_embeddings  # engine_profiles: Ollama turns embeddings on
        n_seq = setup_.workload.batch
        _, n, build = host_output_draft(a, n_seq, emb)
        return _row(f, row_id, label, n, ["act.host_output"], calibratable=True, note=build().explain)
    if f.what == "file_size":
        return _row(f, row_id, label, disk_bytes, [t.id for t in fit.terms if t.id.startswith("weights.")],
                    calibratable=False, note="bytes of every tensor in the recipe (the file adds a header)")
    return _row(f, None, label, None, [], calibratable=False, note="fitcalc has no term for it")


def _host_compute_row(f: Figure, label: str, model: ModelSpec, setup_: Setup, split: Split) -> ReconcileRow:
    """The host's compute buffer (CUDA_Host, CPU): act.host_compute for what the host runs."""
    from fitcalc.core.estimate.footprint import host_drafts

    if split.host_share is None:
        return _row(f, None, label + " (host)", None, [], calibratable=False, note="no host share known")
    p = prepare(model, setup_.recipe, setup_.engine, setup_.kv_dtype)
    (_, n, build), = [d for d in host_drafts(p, split.host_share, setup_.workload)  # type: ignore[arg-type]
                      if d[0] == "act.host_compute"]
    return _row(f, "act.host_compute", label + " (host)", n, ["act.host_compute"], calibratable=False,
                note=build().explain)


def _share_footprint(model: ModelSpec, setup_: Setup, split: Split, fit: FitResult):
    """The GPU's footprint for the layers it holds (llama.cpp -ngl / --n-cpu-moe); ``fit`` when the
    GPU holds everything."""
    from fitcalc.core.estimate import estimate

    if split.gpu_share is None or split.gpu_share.all_layers and split.gpu_share.head:
        return fit
    p = prepare(model, setup_.recipe, setup_.engine, setup_.kv_dtype)
    return estimate(p, Device.from_budget(1 << 50), setup_.workload, share=split.gpu_share)  # type: ignore[arg-type]


def _vllm_row(f: Figure, fit: FitResult, graphs_fit: FitResult | None) -> ReconcileRow:
    row_id, label, prefixes = FIGURE_TERMS[(f.what, None)]
    if f.what == "kv_capacity":
        # unclamped: vLLM prints a negative figure when the other terms overrun its budget
        left = fit.available_bytes - (fit.required_bytes - sum(t.bytes for t in fit.terms if t.id.startswith("kv.")))
        return _row(f, row_id, label, left, [t.id for t in fit.terms], calibratable=False,
                    note="what is left of the memory budget after every other term (derived)")
    if f.what == "kv_capacity_tokens":
        return _row(f, row_id, label, fit.kv_capacity_tokens, [], calibratable=False,
                    note="that capacity at the full-attention cost per token (derived)")
    source = graphs_fit if (f.what == "cuda_graphs" and graphs_fit is not None) else fit
    total, ids = _sum(source, prefixes)
    composite = f.what == "torch_peak"
    return _row(f, row_id, label, total, ids, calibratable=not composite,
                note="a sum of two families of terms; not used for calibration" if composite else None)


def _checks(log: ParsedLog, model: ModelSpec) -> list[str]:
    """The log's own description of the model against the spec: a wrong --model shows here."""
    a = model.architecture
    st = log.settings
    out = []
    if a is None:
        return out
    pairs = [("n_layer", st.n_layer, a.num_hidden_layers), ("n_embd", st.n_embd, a.hidden_size),
             ("n_head_kv", st.n_head_kv, a.num_key_value_heads), ("n_vocab", st.n_vocab, a.vocab_size)]
    for name, logged, spec in pairs:
        if logged is not None and logged != spec:
            out.append(f"the log's model has {name} = {logged}, the spec {model.id} has {spec}: "
                       f"is --model the model the engine ran?")
    return out


def reconcile(log: ParsedLog, model: ModelSpec, base: EngineProfile, device: Device,
              gpu_family: str | None = None) -> ReconcileResult:
    """Predict each figure of ``log`` with fitcalc, with the settings the log states."""
    if log.engine is None:
        raise InputError("no engine recognised in the log", hint="reconcile reads vLLM, llama.cpp and Ollama logs")
    s = setup(log, model, base)
    p = prepare(model, s.recipe, s.engine, s.kv_dtype)
    fit = fit_device(p, device, s.workload, count=s.tp)
    graphs_fit = None
    if s.graphs_engine is not None:
        graphs_fit = fit_device(prepare(model, s.recipe, s.graphs_engine, s.kv_dtype), device, s.workload,
                                count=s.tp)
    rows: list[ReconcileRow] = []
    notes: list[str] = list(log.notes)
    if log.engine == "vllm":
        rows = [_vllm_row(f, fit, graphs_fit) for f in sorted(log.figures, key=lambda f: f.line)]
    else:
        split = llama_split(model, s.recipe, log.settings.n_gpu_layers, log.settings.n_cpu_moe or 0, s.engine)
        figures = _merge_devices(log.figures)
        rows = [_llama_row(f, fit, split, model, s, log, p.weights.disk_bytes) for f in figures]
        cells = log.settings.kv_cells.get("full")
        if cells is not None:
            ours, rule = full_tokens(s.engine, s.workload.context, s.workload.batch)
            if ours != cells:
                notes.append(f"the log's KV cache has {cells:,} cells; fitcalc's rule ({rule}) gives {ours:,}")
    warnings = _checks(log, model) + list(fit.warnings)
    return ReconcileResult(
        engine=log.engine, engine_profile=s.engine.id, version=log.version, version_family=log.version_family,
        model=model.id, recipe=p.recipe.id, device=device.label, gpu_family=gpu_family, tp=s.tp,
        context=s.workload.context, batch=s.workload.batch, kv_dtype=p.kv_fmt.id if p.kv_fmt else None,
        settings=s.settings, assumptions=s.assumptions, rows=rows, warnings=warnings, notes=notes)
