"""Inference engines as data: how each one lays out KV, sizes its working memory and reserves memory. CORE.

The profiles live in ``engine_profiles/<id>.yaml`` (read by ``fitcalc.edges.catalog``); this module
holds their schema. The estimate code reads the rules named here (a KV *policy*, a working-memory
*model*) and never branches on an engine's name: a new engine is a new YAML file.
"""

from __future__ import annotations

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


class OverheadRules(Strict):
    """What the engine keeps for itself, and what it leaves unused on purpose."""

    memory_fraction: float | None = Field(default=None, gt=0, le=1)  # vLLM/SGLang budget share of total
    memory_fraction_name: str | None = None  # the flag that sets it
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
    allocator_slack_fraction: float = Field(default=0.0, ge=0, lt=1)  # caching-allocator fragmentation
    # what the fraction applies to: "working" = KV + activations, "all" = everything allocated
    allocator_slack_base: Literal["working", "all"] = "working"


class WeightRules(Strict):
    """What the engine does to weights on load."""

    # Weight-only MXFP4 on GPUs without native FP4: experts grow by this factor when resident
    # (repacked for a Marlin-style kernel). 1.0 = stored as in the checkpoint.
    mxfp4_repack_factor_without_native: float = Field(default=1.0, ge=1.0)
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
    sources: list[Source]

    @model_validator(mode="after")
    def _check(self) -> EngineProfile:
        check_id(self.id)
        return self




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
        o_upd["cuda_graphs_bytes"] = 0
    if flash_attention is not None:
        w_upd["attention"] = "flash" if flash_attention else "eager"
    if logits_rows is not None and not isinstance(w.logits_rows, str):
        w_upd.update(logits_rows=logits_rows, large_gpu_logits_rows=None)
    if not o_upd and not w_upd:
        return engine
    return engine.model_copy(update={"overhead": o.model_copy(update=o_upd), "working": w.model_copy(update=w_upd)})
