"""The inputs of every calculation, as pydantic models: model specs, recipes, GPU profiles.

CORE: standard library and pydantic only; no file I/O (``fitcalc.edges.catalog`` reads the YAML).

A ``ModelSpec`` has an *architecture* form that mirrors the fields of a Hugging Face
``config.json`` (names kept where they exist there), from which every tensor of the checkpoint
is derived, and/or a *coarse* form for when only totals are known (total parameters and the
share of each tensor group), which reproduces back-of-envelope arithmetic and says so.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]

# Limits on counts that work grows with (docs/cli.md, "Limits"). Each is far above any published
# model or machine and far below what costs real time or memory: the estimate, the plan and the
# layer-stack builder loop per layer, per head group, per expert and per GPU.
MAX_LAYERS = 1024  # decoder layers; the largest published model has 126 (Llama 3.1 405B), DeepSeek-V3 61
MAX_HEADS = 1024  # attention (or KV) heads; the largest published has 128 (Llama 3.1 405B, DeepSeek-V3)
MAX_EXPERTS = 4096  # routed experts per layer; the largest published has 512 (Qwen3-Next)
MAX_GPU_COUNT = 1024  # GPUs in one configuration (ID:COUNT); a node has 8, an NVL72 rack 72
# Strict: a count written as ``true`` or ``1e12`` (a float) is refused, not read as 1 or 10^12.
# ``strict`` refuses bools and floats in Python input; ``ingest.hf_config`` reads JSON numbers itself.
LayerCount = Annotated[int, Field(gt=0, le=MAX_LAYERS, strict=True)]
HeadCount = Annotated[int, Field(gt=0, le=MAX_HEADS, strict=True)]
ExpertCount = Annotated[int, Field(gt=0, le=MAX_EXPERTS, strict=True)]
GpuCount = Annotated[int, Field(gt=0, le=MAX_GPU_COUNT, strict=True)]
Fraction01 = Annotated[float, Field(gt=0, le=1)]

_ID_RE = re.compile(r"^[a-z0-9]+(?:[a-z0-9.]*[a-z0-9])?(?:-[a-z0-9]+(?:[a-z0-9.]*[a-z0-9])?)*$")

LayerType = Literal["full_attention", "sliding_attention", "linear_attention"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def check_id(value: str, what: str = "id") -> str:
    if not _ID_RE.match(value):
        raise ValueError(f"{what} {value!r} must be lowercase kebab-case (a-z, 0-9, '-', '.'), e.g. gpt-oss-20b")
    return value


class Source(Strict):
    """Where a number comes from. Every number in a data file is covered by one of these."""

    kind: Literal["datasheet", "hf_config", "hf_index", "paper", "model_card", "vendor_doc", "code", "measured",
                  "derived", "issue", "safetensors_header", "gguf_header"]
    url: str | None = None
    citation: str | None = None
    fields: list[str] = Field(default_factory=list)
    note: str | None = None

    @model_validator(mode="after")
    def _where(self) -> Source:
        if not self.url and not self.citation:
            raise ValueError("a source needs a url or a citation")
        return self


class RopeScaling(Strict):
    rope_type: str  # yarn, llama3, linear, dynamic, longrope ...
    factor: float = Field(gt=0)
    original_max_position_embeddings: PositiveInt | None = None


class MLA(Strict):
    """Multi-head latent attention (DeepSeek-V2/V3): low-rank K/V with a decoupled RoPE key."""

    q_lora_rank: PositiveInt | None = None  # None: q_proj maps hidden -> heads directly (V2-Lite)
    kv_lora_rank: PositiveInt
    qk_rope_head_dim: PositiveInt
    qk_nope_head_dim: PositiveInt
    v_head_dim: PositiveInt


class LinearAttention(Strict):
    """Linear-attention / SSM layers of hybrids (Qwen3-Next Gated DeltaNet): fixed state, no per-token KV."""

    kind: Literal["gated_deltanet"] = "gated_deltanet"
    num_key_heads: HeadCount
    num_value_heads: HeadCount
    key_head_dim: PositiveInt
    value_head_dim: PositiveInt
    conv_kernel_size: PositiveInt


class MoE(Strict):
    num_experts: ExpertCount  # routed experts per MoE layer (num_local_experts / n_routed_experts)
    experts_per_token: ExpertCount  # num_experts_per_tok / top-k
    moe_intermediate_size: PositiveInt  # per routed expert
    num_shared_experts: NonNegInt = 0
    shared_expert_intermediate_size: PositiveInt | None = None  # total width of the shared MLP
    first_k_dense_replace: NonNegInt = 0  # leading layers that keep a dense MLP (DeepSeek, GLM)
    dense_layers: list[NonNegInt] | None = None  # explicit dense layer indices (overrides first_k)
    router_bias: bool = False
    expert_bias: bool = False  # biases on expert projections (gpt-oss)
    score_correction_bias: bool = False  # DeepSeek-V3 e_score_correction_bias [E], fp32
    shared_expert_gate: bool = False  # Qwen2-MoE / Qwen3-Next sigmoid gate [1, H]
    stacked: bool = False  # experts stored as one tensor per projection [E, out, in] (gpt-oss)

    @model_validator(mode="after")
    def _check(self) -> MoE:
        if self.experts_per_token > self.num_experts:
            raise ValueError(f"experts_per_token ({self.experts_per_token}) exceeds num_experts ({self.num_experts})")
        return self

    @property
    def shared_width(self) -> int:
        if self.num_shared_experts == 0 and self.shared_expert_intermediate_size is None:
            return 0
        if self.shared_expert_intermediate_size is not None:
            return self.shared_expert_intermediate_size
        return self.num_shared_experts * self.moe_intermediate_size


class MTP(Strict):
    """Multi-token-prediction layers stored in the checkpoint (DeepSeek-V3 layer 61, GLM-4.5)."""

    num_layers: LayerCount
    own_embedding: bool = False  # the MTP layer stores its own embed_tokens copy
    own_head: bool = False  # ... and its own shared_head.head (lm_head copy)


class Architecture(Strict):
    """Fields of a config.json, named as there. ``head_dim`` is read as published."""

    family: str  # model_type: gpt_oss, llama, mistral, qwen3, qwen3_moe, deepseek_v3, glm4_moe, gemma3 ...
    num_hidden_layers: LayerCount
    hidden_size: PositiveInt
    vocab_size: PositiveInt
    num_attention_heads: HeadCount
    num_key_value_heads: HeadCount
    head_dim: PositiveInt | None = None  # None: hidden_size / num_attention_heads (recorded as derived)
    intermediate_size: PositiveInt | None = None  # dense MLP width (None for all-MoE models)
    hidden_act: str = "silu"
    mlp_gated: bool = True  # gate + up + down (SwiGLU/GeGLU); False: up + down
    mlp_bias: bool = False
    attention_bias: bool = False  # biases on q, k, v projections
    attention_out_bias: bool = False  # bias on o_proj
    attention_output_gate: bool = False  # q_proj also emits a gate (Qwen3-Next gated attention)
    # Checkpoint layout, not arithmetic: some families store q, k, v as one qkv_proj [(nh + 2 nkv) d, H]
    # and gate, up as one gate_up_proj [2 I, H] (phi3: Phi-3, Phi-4). The weights are the same; the
    # tensor count, and any quantizer that works per tensor, see one tensor instead of three/two.
    fused_qkv: bool = False
    fused_gate_up: bool = False
    attention_sinks: bool = False  # learned per-head softmax bias (gpt-oss): shape [heads], not cached tokens
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3, Gemma 3)
    norm_kind: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    norms_per_layer: Annotated[int, Field(ge=1, le=4)] = 2  # Gemma 2/3 have 4 (pre/post attn and mlp)
    tie_word_embeddings: bool = False
    max_position_embeddings: PositiveInt
    rope_theta: float | None = None
    rope_scaling: RopeScaling | None = None
    layer_types: list[LayerType] | None = None  # explicit per-layer attention kind
    layer_pattern: list[LayerType] | None = None  # or a cycle repeated over the layers
    sliding_window: PositiveInt | None = None
    mla: MLA | None = None
    linear_attention: LinearAttention | None = None
    moe: MoE | None = None
    mtp: MTP | None = None
    torch_dtype: str = "bfloat16"

    # A field validator (not the model check below) so that the error is reported against
    # architecture.num_key_value_heads, the field a user has to change.
    @field_validator("num_key_value_heads")
    @classmethod
    def _kv_divides_heads(cls, v: int, info: ValidationInfo) -> int:
        heads = info.data.get("num_attention_heads")
        if heads is not None and heads % v != 0:
            raise ValueError(f"num_attention_heads ({heads}) is not divisible by num_key_value_heads ({v})")
        return v

    @model_validator(mode="after")
    def _check(self) -> Architecture:
        if self.layer_types is not None and self.layer_pattern is not None:
            raise ValueError("give layer_types or layer_pattern, not both")
        if self.layer_types is not None and len(self.layer_types) != self.num_hidden_layers:
            raise ValueError(
                f"layer_types has {len(self.layer_types)} entries for {self.num_hidden_layers} layers"
            )
        kinds = set(self.layer_types or self.layer_pattern or ["full_attention"])
        if "sliding_attention" in kinds and self.sliding_window is None:
            raise ValueError("sliding_attention layers need sliding_window")
        if "linear_attention" in kinds and self.linear_attention is None:
            raise ValueError("linear_attention layers need the linear_attention block")
        if self.moe is None and self.intermediate_size is None:
            raise ValueError("a dense model needs intermediate_size")
        if self.moe is not None and self.intermediate_size is None and self.dense_layer_indices():
            raise ValueError("dense MLP layers (first_k_dense_replace / dense_layers) need intermediate_size")
        if self.moe and self.moe.dense_layers and max(self.moe.dense_layers) >= self.num_hidden_layers:
            raise ValueError("moe.dense_layers names a layer beyond num_hidden_layers")
        if self.moe and self.moe.first_k_dense_replace >= self.num_hidden_layers:
            raise ValueError("moe.first_k_dense_replace must be smaller than num_hidden_layers")
        if self.head_dim is None and self.mla is None and self.hidden_size % self.num_attention_heads != 0:
            raise ValueError("head_dim is missing and hidden_size is not divisible by num_attention_heads")
        return self

    # ---- derived views (pure) -------------------------------------------------------------

    @property
    def head_dim_resolved(self) -> int:
        """head_dim as published, else hidden_size / num_attention_heads (see head_dim_is_derived)."""
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_attention_heads

    @property
    def head_dim_is_derived(self) -> bool:
        return self.head_dim is None

    def layer_kinds(self) -> list[LayerType]:
        if self.layer_types is not None:
            return list(self.layer_types)
        if self.layer_pattern is not None:
            p = self.layer_pattern
            return [p[i % len(p)] for i in range(self.num_hidden_layers)]
        return ["full_attention"] * self.num_hidden_layers

    def dense_layer_indices(self) -> list[int]:
        """Indices of layers with a dense MLP (all layers for a dense model)."""
        if self.moe is None:
            return list(range(self.num_hidden_layers))
        if self.moe.dense_layers is not None:
            return sorted(set(self.moe.dense_layers))
        return list(range(self.moe.first_k_dense_replace))


class CoarseGroup(Strict):
    name: str
    share: Fraction01 | None = None  # fraction of total_params; None on at most one group = the rest
    params: PositiveInt | None = None  # or an absolute count
    format: str = "bf16"
    active_share: Annotated[float, Field(ge=0, le=1)] = 1.0  # share of this group used per token


class CoarseSpec(Strict):
    """Totals only. Reproduces the arithmetic people do by hand, and is labelled coarse."""

    total_params: PositiveInt
    groups: list[CoarseGroup]

    @model_validator(mode="after")
    def _check(self) -> CoarseSpec:
        rest = [g for g in self.groups if g.share is None and g.params is None]
        if len(rest) > 1:
            raise ValueError("at most one coarse group may take the rest (no share and no params)")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError("coarse group names must be unique")
        return self


class RecipeSpec(Strict):
    """Which storage format each tensor group uses.

    ``rules`` maps a selector to a format id; a selector is ``default``, a group name
    (``experts``) or ``group.role`` (``attention.v_proj``). The most specific match wins.
    ``more_bits`` gives formats used instead on llama.cpp's "use_more_bits" layers
    (first and last eighth and every third layer between; src/llama-quant.cpp).
    Vectors (norms, biases, sinks) use ``vector_format`` unless the tensor has a fixed dtype.
    """

    id: str
    display_name: str | None = None
    description: str | None = None
    rules: dict[str, str]
    more_bits: dict[str, str] = Field(default_factory=dict)
    vector_format: str = "bf16"
    source: str | None = None

    @model_validator(mode="after")
    def _default(self) -> RecipeSpec:
        if "default" not in self.rules:
            raise ValueError("a recipe needs a 'default' rule")
        return self


class PublishedFigure(Strict):
    value: float
    source: str  # a citation; the tests compare against it with a stated tolerance
    unit: Literal["params", "bytes", "GiB", "GB", "B-params"] = "params"


class Published(Strict):
    """Figures published by the model's authors (model card, index total_size) for checks."""

    params_total: PublishedFigure | None = None
    params_active: PublishedFigure | None = None
    checkpoint_size: PublishedFigure | None = None  # e.g. 12.8 GiB on the model card
    index_total_size: PublishedFigure | None = None  # model.safetensors.index.json metadata.total_size


class ExtraGroup(Strict):
    """Weights outside the text decoder that ship in the checkpoint (vision tower, projector)."""

    name: str
    params: PositiveInt
    format: str = "bf16"
    resident: bool = True  # loaded by engines serving text
    source: str


class CheckpointGroup(Strict):
    """One tensor group as the checkpoint's own headers state it: exact bytes, honest parameters."""

    name: str
    params: NonNegInt  # logical weights: a packed FP4 byte holds two, scales and zero points hold none
    bytes: NonNegInt
    tensors: NonNegInt
    formats: dict[str, NonNegInt]  # storage format (a fitcalc format id where one fits) -> bytes


class Checkpoint(Strict):
    """Header-exact weights of a checkpoint read from its files (safetensors headers, a GGUF tensor table).

    When a model carries one, its native sizes come from here and not from the architecture;
    ``fitcalc size --check`` compares the two group by group.
    """

    kind: Literal["safetensors", "gguf"]
    source: str  # the folder, file or Hub repo@commit the headers came from
    files: PositiveInt
    tensors: NonNegInt
    groups: list[CheckpointGroup]
    header_bytes_read: NonNegInt = 0  # what was read to get here (never the weights)
    index_total_size: NonNegInt | None = None  # model.safetensors.index.json metadata.total_size, when given

    @property
    def total_bytes(self) -> int:
        return sum(g.bytes for g in self.groups)

    @property
    def total_params(self) -> int:
        return sum(g.params for g in self.groups)


class ModelSpec(Strict):
    schema_version: Literal[1] = 1
    id: str
    display_name: str
    hf_repo: str | None = None
    aliases: list[str] = Field(default_factory=list)
    architecture: Architecture | None = None
    coarse: CoarseSpec | None = None
    native_recipe: RecipeSpec
    extra_groups: list[ExtraGroup] = Field(default_factory=list)
    published: Published | None = None
    notes: str | None = None
    sources: list[Source] = Field(default_factory=list)
    # Set by readers of real files, never in a data file: the checkpoint's exact tensors by group,
    # and what the reader could not determine (shown by every command that uses the model).
    checkpoint: Checkpoint | None = None
    warnings: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        check_id(self.id)
        if self.architecture is None and self.coarse is None and self.checkpoint is None:
            raise ValueError("a model spec needs an architecture block or a coarse block")
        return self

    @property
    def is_coarse(self) -> bool:
        return self.architecture is None


# --------------------------------------------------------------------------------------------
# GPU profiles
# --------------------------------------------------------------------------------------------

NativeFormat = Literal["fp8", "mxfp4", "nvfp4", "int8", "bf16", "fp16"]

# Keys of ``GpuProfile.dense_tflops``. A closed set so that a typo in a data file ("bf61")
# is an error instead of a silently missing rate. fp32 is the shader rate and is only given
# for parts without matrix units (Apple before M5).
TflopsDtype = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "fp4", "nvfp4", "int8"]

Vendor = Literal["nvidia", "amd", "apple", "intel"]


class Interconnect(Strict):
    kind: str  # nvlink3, nvlink4, nvlink5, pcie3, pcie4, pcie5, xgmi, c2c, none
    bandwidth_bytes_per_s: PositiveInt | None = None  # unidirectional, per GPU


class GpuProfile(Strict):
    """One accelerator as its driver shows it; the marketing label sits beside the reading.

    Memory fields, from largest to smallest:
      memory_bytes           what the driver reports as the total (nvidia-smi ``memory.total`` MiB x 2^20,
                             rocm-smi / amdgpu bytes, SYCL global memory; Apple: ``hw.memsize``, all RAM)
      reserved_bytes         nvidia-smi ``memory.reserved`` (driver and firmware), when a capture shows it
      usable_bytes           the CUDA-visible total (``cudaMemGetInfo``), when measured exactly
      gpu_working_set_bytes  unified memory only: Metal's ``recommendedMaxWorkingSetSize``, the GPU budget
    ``planning_budget_bytes`` picks the one a plan is checked against.
    """

    schema_version: Literal[1] = 1
    id: str
    display_name: str
    aliases: list[str] = Field(default_factory=list)  # what people type: "4090", "rtx 4090", "h100"
    # Names the driver reports (NVML / nvidia-smi ``name``, amdsmi market name, Apple
    # ``machdep.cpu.brand_string``). Used only to match detected devices; kept apart from
    # ``aliases`` because one driver name can cover several memory sizes (RTX 4060 Ti 8/16 GB),
    # which detection tells apart by memory and a typed alias cannot.
    driver_names: list[str] = Field(default_factory=list)
    vendor: Vendor
    family: str  # ampere, ada, hopper, blackwell, blackwell-consumer, turing, cdna2, cdna3, rdna3, apple-m, xe-hpg ...
    # Who buys it, which says what it usually runs: desktops and Macs run llama.cpp/Ollama (GGUF),
    # datacenter cards vLLM/SGLang (fitcalc.core.choose.suited_engines).
    segment: Literal["consumer", "workstation", "apple", "datacenter"] = "datacenter"
    marketed_memory: str  # the label as sold, e.g. "24 GB GDDR6X"
    memory_bytes: PositiveInt  # as the driver reports it (nvidia-smi memory.total MiB x 2^20, rocm-smi bytes)
    memory_reported: str  # the raw reading, e.g. "24564 MiB (nvidia-smi memory.total)"
    reserved_bytes: NonNegInt | None = None  # nvidia-smi memory.reserved (driver/firmware), when known
    usable_bytes: PositiveInt | None = None  # what CUDA's cudaMemGetInfo total reports, when measured
    unified_memory: bool = False  # Apple/UMA: memory_bytes is system RAM; see gpu_working_set_bytes
    gpu_working_set_bytes: PositiveInt | None = None  # Apple recommendedMaxWorkingSetSize, when known
    bandwidth_bytes_per_s: PositiveInt
    dense_tflops: dict[TflopsDtype, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    native_formats: list[NativeFormat] = Field(default_factory=list)
    compute_capability: str | None = None  # "8.9"; gfx942 for AMD
    sm_count: PositiveInt | None = None
    # Driver-visible devices in one physical package: MI250X shows its two GCDs as two GPUs,
    # a GB200 superchip carries two Blackwell GPUs. Every other number here is per device.
    devices_per_package: PositiveInt = 1
    interconnect: Interconnect | None = None
    pcie_gen: PositiveInt | None = None
    power_w: PositiveInt | None = None
    notes: str | None = None  # what is unknown or derived, in words
    sources: list[Source]

    @model_validator(mode="after")
    def _check(self) -> GpuProfile:
        check_id(self.id)
        if self.reserved_bytes is not None and self.reserved_bytes >= self.memory_bytes:
            raise ValueError("reserved_bytes must be smaller than memory_bytes")
        if self.usable_bytes is not None and self.usable_bytes > self.memory_bytes:
            raise ValueError("usable_bytes cannot exceed memory_bytes")
        if self.gpu_working_set_bytes is not None:
            if not self.unified_memory:
                raise ValueError("gpu_working_set_bytes is for unified-memory devices (set unified_memory: true)")
            if self.gpu_working_set_bytes > self.memory_bytes:
                raise ValueError("gpu_working_set_bytes cannot exceed memory_bytes")
        if not self.sources:
            raise ValueError("a GPU profile needs at least one source")
        return self

    @property
    def planning_budget_bytes(self) -> int:
        """The per-device memory a plan is checked against.

        Discrete GPUs: the driver-reported total (``memory_bytes``). Not all of it is
        allocatable: ``reserved_bytes`` goes to the driver and firmware and every process pays a
        CUDA context; those are overhead terms of the estimate, not cuts to the budget, so
        that each appears by name in the result. Unified memory: the GPU working set when
        known, else all of RAM (an upper bound, flagged by ``planning_budget_basis``).
        """
        if self.unified_memory and self.gpu_working_set_bytes is not None:
            return self.gpu_working_set_bytes
        return self.memory_bytes

    @property
    def planning_budget_basis(self) -> str:
        """Which reading ``planning_budget_bytes`` is, in words, for explanations."""
        if self.unified_memory:
            if self.gpu_working_set_bytes is not None:
                return "GPU working set (Metal recommendedMaxWorkingSetSize)"
            return "total unified memory (working set unknown; an upper bound)"
        return "driver-reported total: " + self.memory_reported


class GpuTarget(Strict):
    """What a plan runs against: ``count`` devices of ``budget_bytes`` each.

    Built from a catalog profile (``h100-sxm:8``) or from a raw budget (``24GiB:2``), in
    which case ``profile`` is None and bandwidth and FLOPs are unknown.
    """

    profile: GpuProfile | None = None
    count: GpuCount = 1
    budget_bytes: PositiveInt  # per device
    label: str  # how the target is shown: "8 x NVIDIA H100 SXM 80GB", "2 x 24.00 GiB"
    budget_basis: str  # where budget_bytes comes from, for explanations

    @property
    def total_budget_bytes(self) -> int:
        return self.budget_bytes * self.count


# --------------------------------------------------------------------------------------------
# Workload and device
# --------------------------------------------------------------------------------------------


class Workload(Strict):
    """What the model is asked to hold: ``batch`` sequences of ``context`` tokens each."""

    context: PositiveInt  # tokens per sequence, prompt plus generated (vLLM max_model_len)
    batch: PositiveInt = 1  # concurrent sequences
    kv_dtype: str | None = None  # None: the engine's default (usually the model dtype)
    prompt_tokens: PositiveInt | None = None  # prefill length; None: the whole context
    chunk_tokens: NonNegInt | None = None  # prefill chunk; None: the engine's default


class Device(Strict):
    """One accelerator as the estimate sees it: a catalog profile or a raw budget."""

    label: str
    memory_bytes: PositiveInt  # the total to plan against (driver-reported total, or the budget given)
    reserved_bytes: NonNegInt | None = None  # driver/firmware reserve inside memory_bytes, when known
    native_formats: list[str] = Field(default_factory=list)
    family: str | None = None
    vendor: str | None = None
    segment: str | None = None  # GpuProfile.segment; None for a raw budget
    sm_count: PositiveInt | None = None
    compute_capability: str | None = None  # "9.0": sizes the CUDA context and PyTorch's cuBLAS workspace
    unified_memory: bool = False
    profile_id: str | None = None
    is_budget: bool = False  # a raw budget: taken as usable as given, no driver reserve subtracted
    # Rates for the speed rooflines (None / empty: unknown, e.g. a raw budget).
    bandwidth_bytes_per_s: PositiveInt | None = None  # memory bandwidth as published (peak)
    dense_tflops: dict[str, float] = Field(default_factory=dict)  # dense tensor TFLOP/s by dtype
    pcie_gen: PositiveInt | None = None  # host link, for streaming CPU-resident weights
    # Host RAM as the device (the CPU stack `fitcalc verify --device cpu` measures): no CUDA
    # context, no cuBLAS workspace, no driver reserve.
    is_host: bool = False

    @classmethod
    def from_profile(cls, p: GpuProfile) -> Device:
        return cls(label=p.display_name, memory_bytes=p.planning_budget_bytes, reserved_bytes=p.reserved_bytes,
                   native_formats=list(p.native_formats), family=p.family, vendor=p.vendor, segment=p.segment,
                   sm_count=p.sm_count, compute_capability=p.compute_capability,
                   unified_memory=p.unified_memory, profile_id=p.id, bandwidth_bytes_per_s=p.bandwidth_bytes_per_s,
                   dense_tflops={str(k): float(v) for k, v in p.dense_tflops.items()}, pcie_gen=p.pcie_gen)

    @classmethod
    def from_budget(cls, nbytes: int, label: str | None = None) -> Device:
        from fitcalc.core.units import format_bytes

        return cls(label=label or f"{format_bytes(nbytes)} budget", memory_bytes=nbytes, is_budget=True)

    @classmethod
    def host(cls, nbytes: int, label: str | None = None) -> Device:
        """Host RAM of ``nbytes`` as the device (a CPU run)."""
        return cls(label=label or "host RAM", memory_bytes=nbytes, is_budget=True, is_host=True, vendor="cpu")

class Host(Strict):
    """The machine around the GPUs: system RAM that CPU-resident layers and experts use.

    ``ram_bytes`` is what a plan checks CPU-resident weights, KV and buffers against (default:
    the detected total, read at the edge). ``ram_bandwidth_bytes_per_s`` and ``pcie_gen`` feed the
    speed estimate; when unknown, ``fitcalc.core.estimate.speed`` uses named defaults and says so.
    """

    ram_bytes: PositiveInt
    ram_bandwidth_bytes_per_s: PositiveInt | None = None
    label: str = "host RAM"
