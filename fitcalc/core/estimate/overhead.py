"""Runtime overhead: driver reserve, CUDA context, cuBLAS workspace, allocator slack, engine
reservations. Named constants with their sources and the raw measurements behind them. CORE.
"""

from __future__ import annotations

from fitcalc.core.engines import EngineProfile
from fitcalc.core.estimate.terms import Term, make_term
from fitcalc.core.spec import Device
from fitcalc.core.units import MiB

Draft = tuple

# nvidia-smi memory.reserved captures (utkuozdemir/nvidia_gpu_exporter internal/captures at
# e656cd81a180e7e0e7862b53c9acd4c2fb0f590b): RTX 4080 SUPER 434 of 16376 MiB, H100 479 of 81559,
# H200 614 of 143771, L40S 609 of 46068. Where a profile has no reading, a line through these
# (400 MiB + 0.15 % of the total) stands in; its error on the four is within 25 %.
DRIVER_RESERVE_BASE = 400 * MiB
DRIVER_RESERVE_FRACTION = 0.0015
_RESERVE_SOURCE = "nvidia-smi memory.reserved captures: utkuozdemir/nvidia_gpu_exporter internal/captures (e656cd8)"

# CUDA context: what a process's device memory grows by when its primary context is created
# (CUDA >= 11.7 loads kernels lazily, so no library's kernels are in it yet). Most of it is the
# local-memory (stack) reservation the driver makes for every thread that can be resident at
# once, so it scales with SMs x resident threads per SM, not with the SM count alone:
#     context = CONTEXT_BASE + CONTEXT_PER_THREAD x SMs x max resident threads per SM
# Fitted on two measurements, checked on a third (docs/validation.md, "Constants and the runs behind them"):
#   fit       NVIDIA H200, 132 SMs x 2048 = 270,336 threads: 548,995,072 B (523.6 MiB), NVML
#             used after - before context creation, driver 580.159.04, CUDA 13.0, torch 2.11.0+cu130
#             (docs/validation/h200-2026-12-04/README.md)
#   fit       RTX 4060 Ti, 34 SMs x 1536 = 52,224 threads: 107 MiB
#             (https://github.com/ggml-org/llama.cpp/pull/23604; its CUDA version is not stated)
#   held out  RTX PRO 6000 Blackwell, 188 SMs x 1536 = 288,768 threads: 555 MiB measured (the same
#             PR), 558.8 MiB predicted (+0.7 %). llama.cpp PR #20595 gives the same range ("120-550 MB
#             depending on GPU", tested on an RTX PRO 6000 Blackwell).
# slope = (548,995,072 - 112,197,632) / (270,336 - 52,224) = 2,002.6 B per thread;
# base  = 112,197,632 - 52,224 x 2,002.6 = 7,612,283 B.
CONTEXT_PER_THREAD = 436_797_440 / 218_112
CONTEXT_BASE = 7_612_283
# Maximum resident threads per SM by compute capability (CUDA C++ Programming Guide, "Technical
# Specifications per Compute Capability"). An unknown capability takes 2048 (the most common).
MAX_THREADS_PER_SM = {"7.0": 2048, "7.2": 2048, "7.5": 1024, "8.0": 2048, "8.6": 1536, "8.7": 2048,
                      "8.9": 1536, "9.0": 2048, "10.0": 2048, "10.3": 2048, "12.0": 1536, "12.1": 1536}
THREADS_PER_SM_DEFAULT = 2048
# Without an SM count: ~300 MB with CUDA lazy loading (pytorch#107667, #109888; PyTorch PR #86509
# measured 287,047,680 B for a minimal lazy init).
CONTEXT_DEFAULT = 287_047_680
_CONTEXT_SOURCE = ("fitted on fitcalc's H200 run of 2026-12-04 (523.6 MiB, CUDA 13.0, torch 2.11) and "
                   "llama.cpp PR #23604 (107 MiB @ RTX 4060 Ti); held out 555 MiB @ RTX PRO 6000 "
                   "(docs/validation.md)")
_CONTEXT_VALIDITY = "CUDA >= 11.7 with lazy module loading; measured on CUDA 13.0 and llama.cpp builds"


def driver_reserved_draft(device: Device) -> Draft | None:
    """The driver's and firmware's reservation. [term: overhead.driver_reserved]

    nvidia-smi memory.reserved (NVML v2 ``reserved``) when the profile or the device gives it,
    else 400 MiB + 0.0015 × total. verify reads it on the device (fitcalc.core.measure.compare.driver_reserved)."""
    if device.is_budget or device.unified_memory:
        return None
    known = device.reserved_bytes is not None
    n = device.reserved_bytes if known else int(DRIVER_RESERVE_BASE + DRIVER_RESERVE_FRACTION * device.memory_bytes)

    def build() -> Term:
        return make_term(
            "overhead.driver_reserved", "driver/firmware reserve", n, kind="measured" if known else "heuristic",
            band=0.0 if known else 0.25,
            formula="nvidia-smi memory.reserved" if known else "400 MiB + 0.0015 × total",
            inputs={"total": device.memory_bytes},
            explain=f"overhead.driver_reserved: {n / MiB:,.0f} MiB" + ("" if known else
                                                                        " (no reading for this GPU; fitted line)"),
            sources=(_RESERVE_SOURCE,))

    return ("overhead.driver_reserved", n, build)


def threads_per_sm(compute_capability: str | None) -> tuple[int, bool]:
    """Maximum resident threads per SM of a compute capability, and whether it was known."""
    n = MAX_THREADS_PER_SM.get(compute_capability or "")
    return (n, True) if n is not None else (THREADS_PER_SM_DEFAULT, False)


def cuda_context_bytes(sm_count: int | None, compute_capability: str | None) -> tuple[int, str, dict]:
    """The bare CUDA context of one process on one GPU. [term: overhead.cuda_context]

    CONTEXT_BASE + CONTEXT_PER_THREAD x SMs x T_sm
    where  SMs   streaming multiprocessors (gpu_profiles sm_count, or the device's property)
           T_sm  maximum resident threads per SM of the compute capability (2048 when unknown)
    Source: the fit above. Checked by tests/estimate/test_overhead.py::test_context_held_out
    Returns (bytes, formula, inputs): ``fit``, ``plan``, ``report`` and ``verify`` all call this.
    """
    if not sm_count:
        return CONTEXT_DEFAULT, "lazy-loading CUDA context, PyTorch minimal init (SM count unknown)", {}
    t, known = threads_per_sm(compute_capability)
    n = round(CONTEXT_BASE + CONTEXT_PER_THREAD * sm_count * t)
    formula = f"{CONTEXT_BASE / MiB:.2f} MiB + {CONTEXT_PER_THREAD:,.1f} B × SMs × threads/SM"
    inputs = {"SMs": sm_count, "threads_per_SM": t, "compute_capability": compute_capability or "unknown",
              "threads_per_SM_known": known}
    return n, formula, inputs


def cuda_context_draft(device: Device, engine: EngineProfile) -> Draft | None:
    if (not engine.overhead.cuda_context or device.unified_memory or device.is_host
            or device.vendor in ("apple", "intel")):
        return None
    n, formula, inputs = cuda_context_bytes(device.sm_count, device.compute_capability)

    def build() -> Term:
        # 15 % where the fit applies (its held-out point is within 1 %), 30 % for the fallback
        return make_term("overhead.cuda_context", "CUDA context", n, kind="heuristic",
                         band=0.15 if device.sm_count else 0.3,
                         formula=formula, inputs=inputs,
                         explain=f"overhead.cuda_context: {n / MiB:,.1f} MiB ({formula}; {_CONTEXT_VALIDITY})",
                         sources=(_CONTEXT_SOURCE,))

    return ("overhead.cuda_context", n, build)


def _constant_draft(term_id: str, label: str, n: int, engine: EngineProfile, field: str) -> Draft | None:
    if n <= 0:
        return None

    def build() -> Term:
        return make_term(term_id, label, n, kind="engine_constant", band=0.3, formula=f"{engine.id}: {field}",
                         inputs={field: n}, explain=f"{term_id}: {n / MiB:,.1f} MiB ({engine.display_name} {field})",
                         sources=(f"engine_profiles/{engine.id}.yaml: {field}",))

    return (term_id, n, build)


# cuBLAS workspace as PyTorch sizes it: pytorch/pytorch aten/src/ATen/cuda/CublasHandlePool.cpp,
# parseChosenWorkspaceSize() at 26a39059ec580351411f180816c47e2ef5134ae1 ("/* :4096:2:16:8 default,
# 32MiB for Hopper */": sm90 ? 4096 * 8 * 1024 : 4096 * 1024 * 2 + 16 * 1024 * 8). One per
# (handle, stream), allocated through the caching allocator (getNewWorkspace); cuBLASLt shares it
# (getCUDABlasLtWorkspaceSize, TORCH_CUBLASLT_UNIFIED_WORKSPACE on by default). Only compute
# capability 9.0 gets 32 MiB in that version. Measured: 33,554,432 B on the H200 (every record of
# 2026-12-04, allocator delta of the first matmul beyond its tensors).
PYTORCH_CUBLAS_WORKSPACE_SM90 = 4096 * 8 * 1024
PYTORCH_CUBLAS_WORKSPACE_DEFAULT = 4096 * 1024 * 2 + 16 * 1024 * 8
_CUBLAS_SOURCE = ("pytorch/pytorch aten/src/ATen/cuda/CublasHandlePool.cpp parseChosenWorkspaceSize "
                  "(26a39059): 32 MiB on sm 9.0, :4096:2:16:8 = 8,519,680 B otherwise")


def cublas_workspace_bytes(compute_capability: str | None) -> tuple[int, str]:
    """PyTorch's default cuBLAS workspace for a compute capability. [term: overhead.cublas_workspace]

    4096 KiB x 8 on sm 9.0, else 4096 KiB x 2 + 16 KiB x 8 (CUBLAS_WORKSPACE_CONFIG unset)
    Source: CublasHandlePool.cpp parseChosenWorkspaceSize (above).
    Checked by tests/estimate/test_overhead.py::test_cublas_workspace_per_capability
    """
    if compute_capability == "9.0":
        return PYTORCH_CUBLAS_WORKSPACE_SM90, "PyTorch default on sm 9.0: 4096 KiB × 8"
    return PYTORCH_CUBLAS_WORKSPACE_DEFAULT, "PyTorch default :4096:2:16:8 = 4096 KiB × 2 + 16 KiB × 8"


def _cublas_draft(engine: EngineProfile, device: Device | None) -> Draft | None:
    o = engine.overhead
    if o.cublas_workspace_rule != "pytorch":
        return _constant_draft("overhead.cublas_workspace", "cuBLAS workspace", o.cublas_workspace_bytes, engine,
                               "cublas_workspace_bytes")
    cc = device.compute_capability if device is not None else None
    n, formula = cublas_workspace_bytes(cc)

    def build() -> Term:
        return make_term("overhead.cublas_workspace", "cuBLAS workspace", n, kind="derived", band=0.0,
                         formula=formula, inputs={"compute_capability": cc or "unknown"},
                         explain=f"overhead.cublas_workspace: {n:,} B ({formula}, compute capability "
                                 f"{cc or 'unknown'})", sources=(_CUBLAS_SOURCE,))

    return ("overhead.cublas_workspace", n, build)


def engine_constant_drafts(engine: EngineProfile, tp: int = 1, device: Device | None = None) -> list[Draft]:
    # cuBLAS workspaces, NCCL buffers and CUDA graphs live on a GPU; a CPU run has none of them.
    if device is not None and device.is_host:
        return []
    o = engine.overhead
    multi = tp > 1 and o.non_torch_bytes_tp > 0
    out = [
        _cublas_draft(engine, device),
        _constant_draft("overhead.non_torch", "non-torch memory (NCCL, cuBLAS handles)",
                        o.non_torch_bytes_tp if multi else o.non_torch_bytes, engine,
                        "non_torch_bytes_tp" if multi else "non_torch_bytes"),
        # per_capture: priced from the model and the capture sizes (activations.cuda_graphs_draft)
        _constant_draft("overhead.cuda_graphs", "CUDA graphs", o.cuda_graphs_bytes, engine, "cuda_graphs_bytes")
        if o.cuda_graphs_model == "constant" else None,
    ]
    return [d for d in out if d is not None]


def allocator_slack_draft(engine: EngineProfile, allocated: int, weights: int = 0) -> Draft | None:
    """Caching-allocator slack, reserved − allocated. [term: overhead.allocator]

    fraction × base, base = KV + activations ("working") or weights + KV + activations ("all")
    Source: engine_profiles/<engine>.yaml overhead.allocator_slack_fraction (torch: fitted on the
    H200 runs, docs/validation.md "Allocator slack")."""
    o = engine.overhead
    f = o.allocator_slack_fraction
    if f <= 0:
        return None
    base = allocated + (weights if o.allocator_slack_base == "all" else 0)
    n = int(base * f)
    what = "weights + KV + activations" if o.allocator_slack_base == "all" else "KV + activations"

    def build() -> Term:
        return make_term("overhead.allocator", "allocator slack (reserved − allocated)", n, kind="heuristic", band=0.5,
                         formula=f"fraction × ({what})", inputs={"fraction": f, "allocated": base},
                         explain=f"overhead.allocator: {f:.2%} × {base:,} B ({what}) = {n:,} B",
                         sources=(f"engine_profiles/{engine.id}.yaml: overhead.allocator_slack_fraction; PyTorch "
                                  "caching allocator (c10/cuda/CUDACachingAllocator.cpp) rounds to 512 B, packs "
                                  "<= 1 MiB in 2 MiB segments, 1-10 MiB in 20 MiB, larger rounded to 2 MiB",))

    return ("overhead.allocator", n, build)


# SGLang server_args.py _handle_gpu_memory_settings (sgl-project/sglang, 2025-10): by the GPU's
# memory in MiB, (upper bound, chunked_prefill_size, cuda_graph_max_bs at TP < 4, at TP >= 4).
SGLANG_BANDS = ((20 * 1024, 2048, 8, 8), (35 * 1024, 2048, 24, 80), (60 * 1024, 4096, 32, 160),
                (90 * 1024, 8192, 256, 512), (160 * 1024, 8192, 256, 512), (None, 16384, 512, 512))
_SGLANG_SOURCE = ("sglang python/sglang/srt/server_args.py _handle_gpu_memory_settings: reserved = 512 + "
                  "max(chunked_prefill_size, 2048) x 1.5 + cuda_graph_max_bs x 2 + tp x pp / 8 x 1024 MiB, at least "
                  "10 GiB above 60 GiB; mem_fraction_static = round((gpu_mem - reserved) / gpu_mem, 3)")


def sglang_defaults(memory_bytes: int, tp: int = 1) -> tuple[int, int, float]:
    """(chunked_prefill_size, cuda_graph_max_bs, mem_fraction_static) SGLang picks for a GPU of
    ``memory_bytes`` (nvidia-smi's total, in MiB as SGLang reads it) at tensor parallel ``tp``."""
    mib = memory_bytes // MiB
    chunk, max_bs = 16384, 512
    for top, c, bs_small, bs_large in SGLANG_BANDS:
        if top is None or mib < top:
            chunk, max_bs = c, (bs_small if tp < 4 else bs_large)
            break
    reserved = 512 + max(chunk, 2048) * 1.5 + max_bs * 2 + tp / 8 * 1024
    if mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return chunk, max_bs, round((mib - reserved) / mib, 3)


def engine_reserve_draft(engine: EngineProfile, device: Device, usable: int, tp: int = 1) -> Draft | None:
    """What the engine leaves unused on purpose: (1 − fraction) of the usable memory (vLLM's
    gpu_memory_utilization, SGLang's mem_fraction_static, by default from the GPU's memory) plus a
    fixed margin (llama.cpp --fit, Ollama's minimum)."""
    o = engine.overhead
    if o.memory_fraction_rule == "sglang" and not device.is_budget:
        o = o.model_copy(update={"memory_fraction": sglang_defaults(device.memory_bytes, tp)[2],
                                 "memory_fraction_name": f"{o.memory_fraction_name} (SGLang's default for this GPU)"})
    part = int(usable * (1 - o.memory_fraction)) if o.memory_fraction is not None else 0
    n = part + o.fixed_reserve_bytes
    if n <= 0:
        return None
    pieces = []
    if o.memory_fraction is not None:
        pieces.append(f"(1 − {o.memory_fraction_name} {o.memory_fraction:g}) × usable {usable:,} = {part:,}")
    if o.fixed_reserve_bytes:
        pieces.append(f"{o.fixed_reserve_name} {o.fixed_reserve_bytes / MiB:,.0f} MiB")

    def build() -> Term:
        return make_term("overhead.engine_reserve", f"{engine.display_name} reserve", n, kind="engine_constant",
                         band=0.0, formula="(1 − fraction) × usable + fixed margin",
                         inputs={"fraction": o.memory_fraction or 0.0, "usable": usable,
                                 "fixed": o.fixed_reserve_bytes},
                         explain="overhead.engine_reserve: " + " + ".join(pieces) + f" → {n:,} B",
                         sources=(f"engine_profiles/{engine.id}.yaml: overhead",
                                  *((_SGLANG_SOURCE,) if engine.overhead.memory_fraction_rule == "sglang" else ())))

    return ("overhead.engine_reserve", n, build)
