"""What a parsed engine log holds, and what reconciling it with fitcalc gives. CORE.

A ``ParsedLog`` is engine-neutral: each ``Figure`` names *what* the engine allocated (weights,
a KV cache, a compute buffer ...), on which device, in exact bytes (or tokens), with the line it
came from and the rounding of the printed number. ``LogSettings`` are the settings the log states;
every one records the line it was read from, so the report can say where a number came from.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EngineId = Literal["vllm", "llama.cpp", "ollama"]

# Engine-neutral names of the figures engines print.
FigureKind = Literal[
    "weights",  # model weights resident on a device (vLLM "Model loading took", llama.cpp model buffer)
    "kv",  # a KV cache buffer (llama.cpp per device, cache full/swa; Ollama "kv cache")
    "compute_buffer",  # llama.cpp/Ollama compute graph buffer
    "output_buffer",  # llama.cpp graph output buffer (host logits)
    "lora",  # LoRA adapter buffer
    "act_peak",  # vLLM: activation peak of the profile run
    "torch_peak",  # vLLM 0.6 "peak_torch_memory": weights + activation peak
    "non_torch",  # vLLM: memory outside torch (NCCL, cuBLAS)
    "cuda_graphs",  # vLLM: CUDA graph capture
    "kv_capacity",  # vLLM: memory left for the KV cache
    "kv_capacity_tokens",  # vLLM: that capacity in tokens
    "file_size",  # llama.cpp: the GGUF file's tensor data
]

Unit = Literal["bytes", "tokens"]


class Figure(BaseModel):
    """One number an engine printed about its memory."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    what: FigureKind
    device: str | None  # the engine's buffer/device name (CUDA0, CPU_Mapped, CUDA_Host); None: per GPU/all
    value: int  # bytes, or tokens for kv_capacity_tokens
    unit: Unit = "bytes"
    resolution: int = 0  # half of the last printed digit, in the figure's unit: the rounding of the print
    cache: Literal["full", "swa"] | None = None  # which KV cache (llama.cpp iSWA)
    engine_estimate: bool = False  # the engine's own estimate (Ollama's offload line), not an allocation
    line: int  # 1-based line number in the log
    raw: str  # the line, trimmed
    note: str | None = None


class LogSettings(BaseModel):
    """Settings a log states (or the user supplied). ``None``: not stated."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    model: str | None = None  # vLLM model argument (Hub name or path)
    model_path: str | None = None  # llama.cpp: the GGUF file
    gguf_name: str | None = None  # llama.cpp: general.name
    architecture: str | None = None  # GGUF general.architecture (llama.cpp "arch", Ollama "architecture=")
    file_type: str | None = None  # llama.cpp: "Q4_K - Medium", "MXFP4 MoE"
    recipe: str | None = None  # fitcalc recipe id, when the user gives it
    quantization: str | None = None  # vLLM quantization=
    dtype: str | None = None  # vLLM dtype=
    context: int | None = None  # tokens per sequence: vLLM max_model_len, llama.cpp n_ctx_per_seq
    n_ctx: int | None = None  # llama.cpp: KV cells of all sequences
    n_seq_max: int | None = None  # llama.cpp/Ollama: parallel sequences
    n_batch: int | None = None
    n_ubatch: int | None = None
    chunk: int | None = None  # vLLM max_num_batched_tokens
    max_num_seqs: int | None = None
    kv_dtype: str | None = None  # vLLM kv_cache_dtype, llama.cpp K type
    tp: int | None = None
    pp: int | None = None
    gpu_memory_utilization: float | None = None
    enforce_eager: bool | None = None
    mxfp4_backend: str | None = None
    new_engine: bool | None = None  # Ollama: the Go engine (runner/ollamarunner) wrote the lines, not llama.cpp  # vLLM on GPUs without native FP4: marlin (0.10) or triton (0.11+)
    flash_attn: bool | None = None
    n_gpu_layers: int | None = None  # llama.cpp: layers offloaded, output layer counted (offloaded X/Y)
    n_cpu_moe: int | None = None  # llama.cpp --n-cpu-moe: leading layers whose experts stay on the CPU
    swa_full: bool | None = None  # llama.cpp --swa-full (LM Studio's default): sliding-window layers keep every cell
    mmap: bool | None = None
    embeddings: bool | None = None  # llama.cpp context created with embeddings (Ollama's runner: always)
    block_size: int | None = None  # vLLM KV block
    gpu_blocks: int | None = None  # vLLM V0 "# GPU blocks"
    gpu_name: str | None = None
    gpu_total_bytes: int | None = None  # vLLM 0.6/0.7 total_gpu_memory (CUDA's total)
    gpu_free_bytes: int | None = None  # llama.cpp "MiB free" at load
    n_layer: int | None = None  # llama.cpp print_info: for a consistency check with the spec
    n_embd: int | None = None
    n_head_kv: int | None = None
    n_vocab: int | None = None
    n_swa: int | None = None
    kv_cells: dict[str, int] = Field(default_factory=dict)  # llama.cpp: cells per cache (full, swa)
    sources: dict[str, str] = Field(default_factory=dict)  # setting -> where it came from (line or option)


class ParsedLog(BaseModel):
    """An engine log read into engine-neutral figures and settings."""

    model_config = ConfigDict(defer_build=True)

    engine: EngineId | None
    version: str | None = None
    version_family: str | None = None  # what calibrations are keyed on: vLLM "0.15", llama.cpp "b6xxx"
    version_inferred: bool = False  # the family was inferred from the line formats (no version line)
    vllm_generation: Literal["v0", "v1"] | None = None
    settings: LogSettings = Field(default_factory=LogSettings)
    figures: list[Figure] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    lines: int = 0
    bytes_read: int = 0


def is_host(device: str | None) -> bool:
    """llama.cpp/Ollama buffer names of host memory: CPU, CPU_Mapped, CUDA_Host, ROCm_Host ..."""
    return device is not None and (device.upper().startswith("CPU") or device.endswith("_Host"))


def with_overrides(parsed: ParsedLog, overrides: dict[str, str] | None) -> ParsedLog:
    """``parsed`` with settings replaced by ``--set KEY=VALUE`` (each recorded as the setting's source)."""
    from fitcalc.core.errors import InputError

    if not overrides:
        return parsed
    data = parsed.settings.model_dump()
    sources = dict(data.pop("sources"))
    known = sorted(k for k in LogSettings.model_fields if k not in ("sources", "kv_cells"))
    for key, value in overrides.items():
        if key not in known:
            raise InputError(f"--set {key}: not a setting reconcile knows", hint="one of: " + ", ".join(known))
        data[key] = value
        sources[key] = f"--set {key}={value}"
    try:
        settings = LogSettings.model_validate({**data, "sources": sources})
    except Exception as e:  # pydantic's ValidationError, as one line
        errors = e.errors() if hasattr(e, "errors") else [{"loc": ("?",), "msg": str(e)}]
        first = errors[0]
        raise InputError(f"--set {first['loc'][0]}: {first['msg']}", hint="e.g. --set n_cpu_moe=99") from None
    return parsed.model_copy(update={"settings": settings})


class ReconcileRow(BaseModel):
    """One logged figure beside fitcalc's prediction with the same settings."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str | None  # fitcalc's term id (or id pattern: "weights.*"); None: fitcalc has no such term
    label: str
    device: str | None
    terms: list[str]  # the term ids summed for the prediction
    unit: Unit = "bytes"
    logged_bytes: int | None = None
    predicted_bytes: int | None = None
    logged_tokens: int | None = None
    predicted_tokens: int | None = None
    diff: int | None = None  # predicted − logged, in the row's unit
    diff_pct: float | None = None  # diff / logged × 100
    within_rounding: bool = False  # |diff| no larger than the rounding of the printed figure
    resolution: int = 0
    engine_estimate: bool = False
    calibratable: bool = False  # kept by --save and usable to scale the term in fit/plan
    line: int
    raw: str
    note: str | None = None


class ReconcileResult(BaseModel):
    model_config = ConfigDict(defer_build=True)

    engine: EngineId
    engine_profile: str  # the fitcalc profile used for the prediction
    version: str | None
    version_family: str | None
    model: str
    recipe: str
    device: str
    gpu_family: str | None
    tp: int
    context: int
    batch: int
    kv_dtype: str | None
    settings: dict[str, str | int | float | bool | None]  # what the prediction used
    assumptions: list[str]  # settings the log did not state, and what was taken instead
    rows: list[ReconcileRow]
    warnings: list[str]
    notes: list[str]
    log: str | None = None  # path
    log_sha256: str | None = None
    saved: int | None = None  # residuals appended to the store (with --save)
    store: str | None = None
