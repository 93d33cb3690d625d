"""Inference engines as data: how each one lays out KV, sizes its working memory and reserves memory. CORE.

The profiles live in ``engine_profiles/<id>.yaml`` (read by ``fitcalc.edges.catalog``); this module
holds their schema. The estimate code reads the rules named here (a KV *policy*, a working-memory
*model*) and never branches on an engine's name: a new engine is a new YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from fitcalc.core.spec import NonNegInt, PositiveInt, Source, Strict, check_id

FullPolicy = Literal["exact", "blocks", "cells_padded"]
SlidingPolicy = Literal["window", "window_plus_chunk_blocks", "window_plus_ubatch_cells", "full"]
MlaPolicy = Literal["latent", "latent_plus_v", "decompressed"]


class KvRules(Strict):
    """How the engine stores K and V.

    full:    ``exact`` tokens; ``blocks`` of ``block_tokens`` per sequence (vLLM paging);
             ``cells_padded``: one pool of context × batch cells padded to ``cell_pad`` (llama.cpp).
    sliding: ``window`` keeps min(W, context) tokens; ``window_plus_chunk_blocks`` is vLLM's
             SlidingWindowSpec (W - 1 + chunk tokens, in blocks, plus one block);
             ``window_plus_ubatch_cells`` is llama.cpp's SWA cache pad(W + ubatch, 256);
             ``full`` keeps the whole context like a full-attention layer.
    mla:     ``latent`` caches kv_lora_rank + rope dims once per token; ``latent_plus_v`` adds a
             kv_lora_rank V row (llama.cpp's MLA cache); ``decompressed`` caches per-head K and V.
    """

    full: FullPolicy = "exact"
    block_tokens: PositiveInt = 1
    cell_pad: PositiveInt = 1
    sliding: SlidingPolicy = "window"
    mla: MlaPolicy = "latent"
    default_dtype: str = "model"  # "model": the model's torch_dtype (bf16 for most)
    dtypes: list[str] = Field(default_factory=lambda: ["bf16", "fp16"])
    row_blocks_span_heads: bool = False  # block formats quantize a row of n_kv x head_dim (llama.cpp)
    linear_state_dtype: str = "fp32"  # recurrent state of linear-attention layers


class WorkingMemoryRules(Strict):
    """Memory an engine uses while it computes, beside weights and KV.

    ``chunk_tokens``: tokens per forward pass in prefill (vLLM max_num_batched_tokens, llama.cpp
    n_ubatch); 0 means the whole prompt at once (transformers generate). ``large_gpu_chunk_tokens``
    is used on devices of at least ``large_gpu_min_bytes`` (vLLM's defaults differ by GPU).
    ``model``: ``forward`` (per-token activations of one layer, fitted constants below) or
    ``graph_reserve`` (llama.cpp's worst-case compute buffer). ``logits_rows``: rows of fp32
    logits the engine materialises (``chunk`` = every prompt token of a chunk).
    """

    chunk_tokens: NonNegInt
    reserves_full_chunk: bool = True  # sized for a whole chunk whatever the prompt (profile/graph reserve)
    large_gpu_chunk_tokens: NonNegInt | None = None
    large_gpu_min_bytes: PositiveInt | None = None
    model: Literal["forward", "graph_reserve"] = "forward"
    hidden_copies: float = 3.0  # residual, normed input and layer output alive at the MLP peak
    mlp_copies: float = 3.0  # gate_up output (2 x I) and the activated product (I)
    logits_rows: int | Literal["chunk", "batch"] = "batch"
    large_gpu_logits_rows: int | None = None
    logits_copies: float = 1.0  # fp32 logits, plus sampler copies (softmax, sort) where they exist
    attention: Literal["flash", "eager"] = "flash"
    dequant_scratch: bool = False  # dequantizes a packed weight to bf16 before its matmul
    activation_bytes: PositiveInt = 2  # bf16/fp16 activations
    graph_compute_extra_bytes: NonNegInt = 0  # llama.cpp: scheduler and graph metadata
    output_embeddings: bool = False  # the output buffer also holds embeddings (Ollama's runner turns them on)
    # vLLM's profile run (gpu_model_runner.profile_run): the dummy forward, then the sampler warm-up
    # on the logits of min(max_num_seqs, max_num_batched_tokens) rows. The torch peak is the larger of
    # the two phases, so act.logits carries the sampler's peak above the forward's. ``sampler_copies``:
    # that peak in fp32 copies of the logits (None: logits_copies, added like the other terms).
    sampler_copies: float | None = None
    logits_rows_capped_by_chunk: bool = False  # rows = min(max_num_seqs, chunk) (vLLM _dummy_run num_reqs)
    # Fused MoE (vLLM fused_moe.fused_experts_impl): one [M, k, max(2 I, H)] cache shared by the
    # gate_up output and the down output, and one [M * k, I] activation cache, M = min(T, chunk size).
    # transformers 5.x integrations/moe.py: ``grouped_mm`` sorts the token-expert pairs and runs
    # torch._grouped_mm; ``batched_mm`` gathers each pair's expert weights; ``eager`` loops over experts.
    moe_workspace: Literal["none", "fused", "grouped_mm", "batched_mm"] = "none"
    moe_chunk_tokens: PositiveInt = 32768
    # Architectures (config model_type) the engine runs with eager attention whatever ``attention``
    # says (transformers: gpt-oss's attention sinks); ``attn_implementation`` overrides it.
    eager_model_types: list[str] = Field(default_factory=list)
    # Eager attention holds the scores and their softmax together: fp32 scores plus a copy in the
    # model dtype (transformers eager_attention_forward: softmax(..., dtype=float32).to(query.dtype)).
    eager_score_copies: float = 1.0
    eager_score_bytes: PositiveInt = 4


class OverheadRules(Strict):
    """What the engine keeps for itself, and what it leaves unused on purpose."""

    memory_fraction: float | None = Field(default=None, gt=0, le=1)  # vLLM/SGLang budget share of total
    memory_fraction_name: str | None = None  # the flag that sets it
    # "sglang": memory_fraction and the prefill chunk follow SGLang's defaults for the GPU's memory
    # (fitcalc.core.estimate.overhead.sglang_defaults); "fixed": memory_fraction as given.
    memory_fraction_rule: Literal["fixed", "sglang"] = "fixed"
    fixed_reserve_bytes: NonNegInt = 0  # llama.cpp --fit margin, Ollama's minimum
    fixed_reserve_name: str | None = None
    cuda_context: bool = True  # the process's CUDA context counts against the device
    cuda_graphs_bytes: NonNegInt = 0
    non_torch_bytes: NonNegInt = 0  # NCCL, cuBLAS handles and the like, measured by the engine
    non_torch_bytes_tp: NonNegInt = 0  # the same with tensor parallelism (NCCL buffers), when it differs
    cublas_workspace_bytes: NonNegInt = 0
    # "pytorch": the workspace PyTorch's CublasHandlePool picks for the device's compute
    # capability (32 MiB on sm 9.0), not the fixed cublas_workspace_bytes
    cublas_workspace_rule: Literal["fixed", "pytorch"] = "fixed"
    # CUDA graphs per capture size (vLLM): ``per_capture`` prices every captured graph; ``constant``
    # takes cuda_graphs_bytes as it is. ``cuda_graphs_in_budget``: the graphs come out of the
    # memory-fraction budget before the KV cache is sized (vLLM with
    # VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1); otherwise they are captured afterwards, out of
    # the (1 - fraction) share.
    cuda_graphs_model: Literal["constant", "per_capture"] = "constant"
    cudagraph_mode: Literal["none", "piecewise", "full", "full_and_piecewise"] = "piecewise"
    cudagraph_max_capture_size: PositiveInt | None = None  # None: min(2 x max_num_seqs, 512)
    # "0.11": [1, 2, 4] + range(8, 256, 8) + range(256, max + 1, 16); "0.9": [1, 2, 4] + range(8, 513, 8)
    cudagraph_sizes_rule: Literal["0.9", "0.11"] = "0.11"
    cudagraph_bytes_per_hidden: float = Field(default=0.0, ge=0)  # per captured graph and hidden unit
    cuda_graphs_in_budget: bool = True
    allocator_slack_fraction: float = Field(default=0.0, ge=0, lt=1)  # caching-allocator fragmentation
    # what the fraction applies to: "working" = KV + activations, "all" = everything allocated
    allocator_slack_base: Literal["working", "all"] = "working"


class WeightRules(Strict):
    """What the engine does to weights on load."""

    # Weight-only MXFP4 on GPUs without native FP4: experts grow by this factor when resident
    # (repacked for a Marlin-style kernel). 1.0 = stored as in the checkpoint.
    mxfp4_repack_factor_without_native: float = Field(default=1.0, ge=1.0)
    # The same factor per MoE backend, where the engine has several (vLLM on Hopper: marlin, triton);
    # ``mxfp4_backend`` names the one in use and its factor replaces the one above.
    mxfp4_backend_factors: dict[str, float] = Field(default_factory=dict)
    mxfp4_backend: str | None = None
    loads_mtp: bool = False  # loads multi-token-prediction layers (speculative decoding)
    mmap_weights: bool = False  # weights memory-mapped from the file (llama.cpp/Ollama CPU part)
    # llama.cpp keeps the token-embedding matrix in host memory whatever -ngl says (a row lookup
    # gains nothing on the GPU): src/llama-model.cpp "dev_input = cpu".
    input_embedding_on_host: bool = False


class ParallelRules(Strict):
    """How the engine spreads one model over several GPUs and the CPU.

    ``multi_gpu``: ``tensor`` shards every weight matrix over the GPUs of a stage (vLLM, SGLang
    ``--tensor-parallel-size``); ``layer`` gives each GPU whole layers in proportions (llama.cpp's
    default ``--split-mode layer`` with ``-ts``). ``pipeline``: stages of consecutive layers
    (vLLM ``--pipeline-parallel-size``). ``expert_parallel``: routed experts split whole over the
    ranks. ``cpu_layers`` / ``cpu_experts``: whole layers (``-ngl``) or routed-expert tensors
    (``--n-cpu-moe``) may stay in system RAM. ``output_is_layer``: the GPU-layer count includes
    the output layer (llama.cpp counts n_layer + 1 slots). ``output_offloaded_first``: which end
    of those slots -ngl fills first. llama.cpp builds of 2025 (src/llama-model.cpp load_tensors:
    ``i_gpu_start = max(n_layer - n_gpu_layers, 0)``) give the GPU the last ngl repeating layers and
    the output layer only when ngl > n_layer; builds of 2026 (``max(n_layer_all + 1 - n_gpu_layers,
    0)``, b9993 and later) give it the output layer first, then the last ngl - 1 layers.
    """

    multi_gpu: Literal["tensor", "layer", "none"] = "tensor"
    pipeline: bool = False
    expert_parallel: bool = False
    cpu_layers: bool = False
    cpu_experts: bool = False
    output_is_layer: bool = False
    output_offloaded_first: bool = False


class SpeedRules(Strict):
    """Achieved fractions of peak rates, per device vendor or family (``default`` for the rest).

    decode step = Σ bytes read / (bandwidth × bandwidth_efficiency) per device, at least FLOPs /
    (rate × compute_efficiency), plus ``layer_latency_us`` per decoder layer (launches and syncs
    that do not shrink with bytes). ``prefill_dtype``: the tensor rate prefill runs at
    (``int8`` for llama.cpp's quantized MMQ kernels, ``bf16`` for weight-only paths, ``native``:
    the weights' own format when the GPU computes in it, else bf16). ``streams_host_weights``:
    host-resident weights are copied to the GPU for batches of at least ``stream_min_batch``
    tokens (llama.cpp op offload), so prefill of CPU layers runs at PCIe speed.
    """

    bandwidth_efficiency: dict[str, float] = Field(default_factory=lambda: {"default": 0.8})
    compute_efficiency: dict[str, float] = Field(default_factory=lambda: {"default": 0.5})
    host_bandwidth_efficiency: float = Field(default=0.7, gt=0, le=1)
    layer_latency_us: float = Field(default=0.0, ge=0)
    prefill_dtype: Literal["bf16", "fp16", "int8", "native"] = "native"
    streams_host_weights: bool = False
    stream_min_batch: PositiveInt = 32

    def pick(self, table: dict[str, float], family: str | None, vendor: str | None) -> tuple[float, str]:
        """The factor for a device: by family, else vendor, else ``default``; and the key used."""
        for key in (family, vendor):
            if key and key in table:
                return table[key], key
        return table.get("default", 1.0), "default"


class EngineProfile(Strict):
    schema_version: Literal[1] = 1
    id: str
    display_name: str
    version: str  # the version (family) these constants were read from
    aliases: list[str] = Field(default_factory=list)
    description: str
    gguf_native: bool = False  # runs GGUF recipes (llama.cpp, Ollama)
    # The GGUF type the engine's own model source serves when none is named (Ollama's library tags,
    # llama-server -hf): what a user gets by default, so what fit answers for. Models whose
    # checkpoint keeps 4-bit float experts (gpt-oss MXFP4) keep them (recipes.serving_recipe).
    default_gguf_recipe: str | None = None
    kv: KvRules
    working: WorkingMemoryRules
    overhead: OverheadRules
    weights: WeightRules = WeightRules()
    parallel: ParallelRules = ParallelRules()
    speed: SpeedRules = SpeedRules()
    # How the engine spells its knobs: a value starting with "-" is a command-line flag, an
    # UPPER_CASE name an environment variable, anything else a model parameter (Ollama's
    # Modelfile). ``launch`` is the command line the flags follow ({model} is filled in).
    flags: dict[str, str] = Field(default_factory=dict)
    # Engine spellings of fitcalc ids, per knob: {"kv_dtype": {"fp8-e4m3": "fp8_e4m3"}}.
    flag_values: dict[str, dict[str, str]] = Field(default_factory=dict)
    # What the context flag counts: one sequence (vLLM --max-model-len, Ollama num_ctx) or the
    # whole KV pool of all parallel sequences (llama-server -c = context x --parallel).
    context_flag_scope: Literal["sequence", "total"] = "sequence"
    # The engine's own settings a user may give (``--set KEY=VALUE``); fitcalc.core.engines.apply_settings.
    settings: list[str] = Field(default_factory=list)
    sources: list[Source]

    @model_validator(mode="after")
    def _check(self) -> EngineProfile:
        check_id(self.id)
        unknown = sorted(set(self.settings) - set(SETTINGS))
        if unknown:
            raise ValueError(f"settings {unknown} are not known to fitcalc (fitcalc.core.engines.SETTINGS)")
        w = self.weights
        if w.mxfp4_backend is not None and w.mxfp4_backend not in w.mxfp4_backend_factors:
            raise ValueError(f"weights.mxfp4_backend {w.mxfp4_backend!r} has no factor in mxfp4_backend_factors")
        return self

    def mxfp4_repack_factor(self) -> float:
        """Growth of MXFP4 weights on a GPU without native FP4, for the backend in use."""
        w = self.weights
        if w.mxfp4_backend is not None:
            return w.mxfp4_backend_factors[w.mxfp4_backend]
        return w.mxfp4_repack_factor_without_native




def with_settings(engine: EngineProfile, *, memory_fraction: float | None = None, cuda_graphs: bool | None = None,
                  logits_rows: int | None = None, flash_attention: bool | None = None) -> EngineProfile:
    """The profile with a user's settings applied (vLLM --gpu-memory-utilization, --enforce-eager,
    --max-num-seqs). Pure: returns a copy. The prefill chunk is a workload field (chunk_tokens)."""
    o, w = engine.overhead, engine.working
    o_upd: dict = {}
    w_upd: dict = {}
    if memory_fraction is not None:
        if o.memory_fraction is None:
            from fitcalc.core.errors import InputError

            raise InputError(f"{engine.display_name} has no memory-fraction setting",
                             hint="--memory-fraction applies to vllm and sglang")
        o_upd["memory_fraction"] = memory_fraction
    if cuda_graphs is False:
        o_upd.update(cuda_graphs_bytes=0, cudagraph_mode="none")
    if flash_attention is not None:
        w_upd["attention"] = "flash" if flash_attention else "eager"
    if logits_rows is not None and not isinstance(w.logits_rows, str):
        w_upd.update(logits_rows=logits_rows, large_gpu_logits_rows=None)
    if not o_upd and not w_upd:
        return engine
    return engine.model_copy(update={"overhead": o.model_copy(update=o_upd), "working": w.model_copy(update=w_upd)})


# ---------------------------------------------------------------------------------------------
# The engines' own settings (``--set KEY=VALUE`` of fit, plan, report, check and reconcile)
# ---------------------------------------------------------------------------------------------

# key -> (value kind, what it sets). Kinds: int, float, bool, or a tuple of allowed words. Each
# engine profile lists the keys it accepts (``settings:``); the engine's own flag is in ``flags``.
SETTINGS: dict[str, tuple[object, str]] = {
    "gpu_memory_utilization": (float, "vLLM --gpu-memory-utilization: the share of the GPU vLLM budgets"),
    "mem_fraction_static": (float, "SGLang --mem-fraction-static: the share for weights and the KV pool"),
    "max_num_batched_tokens": (int, "vLLM --max-num-batched-tokens: tokens of the profiled forward pass"),
    "chunked_prefill_size": (int, "SGLang --chunked-prefill-size: tokens of one prefill chunk"),
    "max_num_seqs": (int, "vLLM --max-num-seqs: rows of the sampler warm-up, largest decode graph"),
    "max_running_requests": (int, "SGLang --max-running-requests"),
    "max_model_len": (int, "vLLM --max-model-len: tokens per sequence"),
    "context_length": (int, "SGLang --context-length: tokens per sequence"),
    "n_ctx": (int, "llama.cpp -c: KV cells of all sequences together"),
    "num_ctx": (int, "Ollama num_ctx: tokens per sequence"),
    "parallel": (int, "llama.cpp --parallel / OLLAMA_NUM_PARALLEL: sequences"),
    "n_ubatch": (int, "llama.cpp -ub: tokens of the worst-case graph"),
    "enforce_eager": (bool, "vLLM --enforce-eager: no CUDA graphs"),
    "disable_cuda_graph": (bool, "SGLang --disable-cuda-graph"),
    "cudagraph_mode": (("none", "piecewise", "full", "full_and_piecewise"), "vLLM compilation_config.cudagraph_mode"),
    "max_cudagraph_capture_size": (int, "vLLM compilation_config.max_cudagraph_capture_size"),
    "estimate_cudagraphs": (bool, "vLLM VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS: graphs inside the budget"),
    "mxfp4_backend": (("marlin", "triton"), "vLLM MXFP4 MoE backend on GPUs without native FP4"),
    "kv_cache_dtype": (str, "KV cache type (vLLM --kv-cache-dtype, llama.cpp -ctk/-ctv, OLLAMA_KV_CACHE_TYPE)"),
    "flash_attn": (bool, "llama.cpp -fa / OLLAMA_FLASH_ATTENTION"),
    "swa_full": (bool, "llama.cpp --swa-full: sliding-window layers keep the whole context"),
    "n_gpu_layers": (int, "llama.cpp -ngl / Ollama num_gpu: layers on the GPU, output layer counted"),
    "n_cpu_moe": (int, "llama.cpp --n-cpu-moe: leading layers whose routed experts stay in RAM"),
    "new_engine": (bool, "Ollama's Go engine (runner/ollamarunner, to v0.29): logits for `parallel` rows only"),
    "attn_implementation": (("eager", "sdpa", "flash_attention_2"), "transformers attn_implementation"),
    "experts_implementation": (("eager", "grouped_mm", "batched_mm"), "transformers 5.x experts_implementation"),
}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _parse_setting(engine: EngineProfile, key: str, raw: object) -> object:
    from fitcalc.core.errors import InputError

    kind, _ = SETTINGS[key]
    text = str(raw).strip().lower() if not isinstance(raw, (int, float)) or isinstance(raw, bool) else raw
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise ValueError
        if kind is int:
            v = int(text)  # type: ignore[arg-type]
            if v < 0:
                raise ValueError
            return v
        if kind is float:
            v = float(text)  # type: ignore[arg-type]
            if not 0 < v <= 1:
                raise ValueError
            return v
        if isinstance(kind, tuple):
            if text not in kind:
                raise ValueError
            return text
        return str(raw)
    except (TypeError, ValueError):
        want = {bool: "true or false", int: "a whole number >= 0", float: "a fraction in (0, 1]"}.get(
            kind, "one of " + ", ".join(kind) if isinstance(kind, tuple) else "a value")  # type: ignore[arg-type]
        raise InputError(f"--set {key}={raw}: {engine.display_name} takes {want}",
                         hint=f"e.g. --set {key}={_example(kind)}") from None


def _example(kind: object) -> str:
    return {bool: "true", int: "8192", float: "0.9"}.get(kind, kind[0] if isinstance(kind, tuple) else "auto")  # type: ignore[index, call-overload]


def check_settings(engine: EngineProfile, settings: dict[str, object] | None) -> dict[str, object]:
    """The settings parsed to their kinds; an unknown key or a bad value is an InputError of one line
    that lists the engine's keys."""
    from fitcalc.core.errors import InputError

    out: dict[str, object] = {}
    for key, raw in (settings or {}).items():
        if key not in engine.settings:
            raise InputError(f"--set {key}: not a setting of {engine.display_name}",
                             hint=f"{engine.id} takes: " + ", ".join(engine.settings))
        out[key] = _parse_setting(engine, key, raw)
    return out


@dataclass(frozen=True)
class Applied:
    """An engine profile and a workload with the user's settings in; placement settings apart."""

    engine: EngineProfile
    workload: object  # fitcalc.core.spec.Workload
    gpu_layers: int | None = None
    cpu_moe: int | None = None
    settings: tuple[tuple[str, object], ...] = ()


def apply_settings(engine: EngineProfile, workload, settings: dict[str, object] | None) -> Applied:
    """``engine`` and ``workload`` as the engine runs with ``settings`` (checked first). Pure."""
    s = check_settings(engine, settings)
    if not s:
        return Applied(engine=engine, workload=workload)
    o_upd, w_upd, k_upd, b_upd = _engine_updates(engine, s)
    wl_upd: dict = {}
    for key, field in (("max_model_len", "context"), ("context_length", "context"), ("num_ctx", "context"),
                       ("max_num_batched_tokens", "chunk_tokens"), ("chunked_prefill_size", "chunk_tokens"),
                       ("n_ubatch", "chunk_tokens"), ("parallel", "batch"), ("kv_cache_dtype", "kv_dtype")):
        if key in s:
            wl_upd[field] = s[key]
    if "n_ctx" in s:  # llama.cpp: -c counts the cells of every sequence
        wl_upd["context"] = max(1, int(s["n_ctx"]) // int(s.get("parallel", workload.batch)))  # type: ignore[call-overload]
    if any(v == 0 for k, v in wl_upd.items() if k in ("context", "batch")):
        from fitcalc.core.errors import InputError

        raise InputError("--set: a context or a sequence count of 0", hint="give a positive number")
    eng = engine.model_copy(update={
        "overhead": engine.overhead.model_copy(update=o_upd), "working": engine.working.model_copy(update=w_upd),
        "kv": engine.kv.model_copy(update=k_upd), "weights": engine.weights.model_copy(update=b_upd)})
    gpu_layers = s.get("n_gpu_layers")
    cpu_moe = s.get("n_cpu_moe")
    return Applied(engine=eng, workload=workload.model_copy(update=wl_upd) if wl_upd else workload,
                   gpu_layers=gpu_layers, cpu_moe=cpu_moe, settings=tuple(s.items()))  # type: ignore[arg-type]


def _engine_updates(engine: EngineProfile, s: dict[str, object]) -> tuple[dict, dict, dict, dict]:
    """(overhead, working, kv, weights) field updates for parsed settings ``s``."""
    o: dict = {}
    w: dict = {}
    k: dict = {}
    b: dict = {}
    for key in ("gpu_memory_utilization", "mem_fraction_static"):
        if key in s:
            o.update(memory_fraction=s[key], memory_fraction_rule="fixed")
    for key in ("max_num_batched_tokens", "chunked_prefill_size", "n_ubatch"):
        if key in s:  # the engine's chunk on every GPU, so callers without a workload field see it too
            w.update(chunk_tokens=s[key], large_gpu_chunk_tokens=None)
    for key in ("max_num_seqs", "max_running_requests"):
        if key in s and not isinstance(engine.working.logits_rows, str):
            w.update(logits_rows=s[key], large_gpu_logits_rows=None)
    if s.get("enforce_eager") or s.get("disable_cuda_graph"):
        o.update(cudagraph_mode="none", cuda_graphs_bytes=0)
    elif "cudagraph_mode" in s:
        o["cudagraph_mode"] = s["cudagraph_mode"]
        if s["cudagraph_mode"] == "none":
            o["cuda_graphs_bytes"] = 0
    if "max_cudagraph_capture_size" in s:
        o["cudagraph_max_capture_size"] = s["max_cudagraph_capture_size"]
    if "estimate_cudagraphs" in s:
        o["cuda_graphs_in_budget"] = s["estimate_cudagraphs"]
    if "mxfp4_backend" in s:
        b["mxfp4_backend"] = s["mxfp4_backend"]
    if "flash_attn" in s:
        w["attention"] = "flash" if s["flash_attn"] else "eager"
    if "attn_implementation" in s:
        eager = s["attn_implementation"] == "eager"
        w.update(attention="eager" if eager else "flash", eager_model_types=[])
    if "new_engine" in s:
        w["logits_rows"] = "batch" if s["new_engine"] else "chunk"
    if "experts_implementation" in s:
        w["moe_workspace"] = "none" if s["experts_implementation"] == "eager" else s["experts_implementation"]
    if s.get("swa_full"):
        k["sliding"] = "full"
    return o, w, k, b
