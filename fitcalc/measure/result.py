"""What `fitcalc verify` returns and records. CORE: pydantic only.

``VerifyResult`` is the JSON document of ``fitcalc verify --json`` (at least ``device``, ``terms``
with ``id``/``predicted_bytes``/``measured_bytes``, and ``peak``); ``record_line`` is the one JSON
line ``--record FILE`` appends per run (docs/validation.md keeps a table of them).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fitcalc.measure.compare import Check, Extrapolation, TermRow


class DeviceReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str  # cpu | cuda | mps
    name: str
    total_bytes: int
    available_bytes: int
    driver: str | None = None
    cuda_version: str | None = None
    torch_version: str
    sm_count: int | None = None
    compute_capability: str | None = None
    host: str = ""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    layers: int
    layers_total: int
    context: int
    batch: int
    prompt_tokens: int
    chunk_tokens: int
    kv_dtype: str
    recipe: str
    include_embeddings: bool
    seed: int
    engine: str


class OomReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    phase: str
    live_bytes: int
    predicted_bytes: int
    message: str
    readings: dict[str, Any] = Field(default_factory=dict)


class VerifyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    source: str  # MODEL as given (an id, a Hub name or a spec path)
    display_name: str
    device: DeviceReport
    settings: Settings
    terms: list[TermRow]
    working: Check | None
    peak: Check
    extrapolation: Extrapolation | None
    phases: list[dict[str, Any]]
    readings: dict[str, Any]
    timings: dict[str, float]
    ok: bool
    failures: list[str]
    oom: OomReport | None
    notes: list[str]
    exit_code: int


def record_line(r: VerifyResult, date: str) -> dict[str, Any]:
    """One run as a JSON-able dict: when, where (device, driver, torch, CUDA), what, and per term."""
    return {
        "date": date,
        "device": r.device.name,
        "device_kind": r.device.kind,
        "host": r.device.host,
        "driver": r.device.driver,
        "torch": r.device.torch_version,
        "cuda": r.device.cuda_version,
        "model": r.model,
        "source": r.source,
        "settings": r.settings.model_dump(),
        "terms": [{"id": t.id, "predicted_bytes": t.predicted_bytes, "measured_bytes": t.measured_bytes}
                  for t in r.terms],
        "working": None if r.working is None else {"predicted_bytes": r.working.predicted_bytes,
                                                   "measured_bytes": r.working.measured_bytes},
        "peak": {"predicted_bytes": r.peak.predicted_bytes, "measured_bytes": r.peak.measured_bytes},
        "extrapolation": None if r.extrapolation is None else {
            "layers": r.extrapolation.layers, "predicted_bytes": r.extrapolation.predicted_bytes,
            "measured_bytes": r.extrapolation.measured_bytes},
        "readings": r.readings,
        "timings": r.timings,
        "ok": r.ok,
        "oom": None if r.oom is None else r.oom.model_dump(),
    }


__all__ = ["DeviceReport", "Settings", "OomReport", "VerifyResult", "record_line"]
