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

# CUDA context. llama.cpp PR #23604 measured the bare primary context at 107 MiB on an RTX 4060 Ti
# (34 SMs) and 555 MiB on an RTX PRO 6000 Blackwell (188 SMs): it scales with SM count, ~2.91 MiB
# per SM + 8 MiB. Without an SM count: ~300 MB with CUDA lazy loading (pytorch#107667, #109888;
# PyTorch PR #86509 measured 287,047,680 B for a minimal lazy init).
CONTEXT_PER_SM = int(2.91 * MiB)
CONTEXT_BASE = 8 * MiB
CONTEXT_DEFAULT = 287_047_680
_CONTEXT_SOURCE = ("llama.cpp PR #23604 (107 MiB @ 34 SMs, 555 MiB @ 188 SMs); PyTorch PR #86509 "
                   "(287,047,680 B lazy init)")


def driver_reserved_draft(device: Device) -> Draft | None:
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


def cuda_context_draft(device: Device, engine: EngineProfile) -> Draft | None:
    if (not engine.overhead.cuda_context or device.unified_memory or device.is_host
            or device.vendor in ("apple", "intel")):
        return None
    if device.sm_count:
        n = CONTEXT_BASE + CONTEXT_PER_SM * device.sm_count
        formula, inputs = "8 MiB + 2.91 MiB × SMs", {"SMs": device.sm_count}
    else:
        n = CONTEXT_DEFAULT
        formula, inputs = "lazy-loading CUDA context, PyTorch minimal init", {}

    def build() -> Term:
        return make_term("overhead.cuda_context", "CUDA context", n, kind="heuristic", band=0.3,
                         formula=formula, inputs=inputs,
                         explain=f"overhead.cuda_context: {n / MiB:,.0f} MiB ({formula})",
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


def engine_constant_drafts(engine: EngineProfile, tp: int = 1, device: Device | None = None) -> list[Draft]:
    # cuBLAS workspaces, NCCL buffers and CUDA graphs live on a GPU; a CPU run has none of them.
    if device is not None and device.is_host:
        return []
    o = engine.overhead
    multi = tp > 1 and o.non_torch_bytes_tp > 0
    out = [
        _constant_draft("overhead.cublas_workspace", "cuBLAS workspace", o.cublas_workspace_bytes, engine,
                        "cublas_workspace_bytes"),
        _constant_draft("overhead.non_torch", "non-torch memory (NCCL, cuBLAS handles)",
                        o.non_torch_bytes_tp if multi else o.non_torch_bytes, engine,
                        "non_torch_bytes_tp" if multi else "non_torch_bytes"),
        _constant_draft("overhead.cuda_graphs", "CUDA graphs", o.cuda_graphs_bytes, engine, "cuda_graphs_bytes"),
    ]
    return [d for d in out if d is not None]


def allocator_slack_draft(engine: EngineProfile, allocated: int) -> Draft | None:
    f = engine.overhead.allocator_slack_fraction
    if f <= 0:
        return None
    n = int(allocated * f)

    def build() -> Term:
        return make_term("overhead.allocator", "allocator slack (reserved − allocated)", n, kind="heuristic", band=0.5,
                         formula="fraction × (KV + activations)", inputs={"fraction": f, "allocated": allocated},
                         explain=f"overhead.allocator: {f:.0%} × {allocated:,} B = {n:,} B",
                         sources=("PyTorch caching allocator keeps freed blocks; no published percentage, "
                                  "calibrated by fitcalc verify (memory_reserved - memory_allocated)",))

    return ("overhead.allocator", n, build)


def engine_reserve_draft(engine: EngineProfile, device: Device, usable: int) -> Draft | None:
    """What the engine leaves unused on purpose: (1 − fraction) of the usable memory (vLLM's
    gpu_memory_utilization, SGLang's mem_fraction_static) plus a fixed margin (llama.cpp --fit,
    Ollama's minimum)."""
    o = engine.overhead
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
                         sources=(f"engine_profiles/{engine.id}.yaml: overhead",))

    return ("overhead.engine_reserve", n, build)
