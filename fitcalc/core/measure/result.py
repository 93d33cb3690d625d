"""What `fitcalc verify` returns and records. CORE: pydantic only.

``VerifyResult`` is the JSON document of ``fitcalc verify --json`` (at least ``device``, ``terms``
with ``id``/``predicted_bytes``/``measured_bytes``, and ``peak``); ``record_line`` is the one JSON
line ``--record FILE`` appends per run (docs/validation.md keeps a table of them).

A distributed run (``--tp``/``--pp``/``--ep``) returns a ``DistributedVerifyResult``: the same
fields, its ``terms`` carrying a ``rank``, plus ``world_size``, ``layout`` and ``ranks`` (one
``RankReport`` per rank, each with the fields of a single-device result).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fitcalc.core.measure.compare import Check, Extrapolation, Measurement, TermRow, Tolerance, compare


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


class MeasuredRun(BaseModel):
    """The measured part of a run, the same for one device and for each rank of a distributed run."""

    model_config = ConfigDict(frozen=True)

    device: DeviceReport
    terms: list[TermRow]
    working: Check | None
    peak: Check
    phases: list[dict[str, Any]]
    readings: dict[str, Any]
    timings: dict[str, float]
    ok: bool
    failures: list[str]
    oom: OomReport | None
    notes: list[str]
    exit_code: int


class VerifyResult(MeasuredRun):
    model: str
    source: str  # MODEL as given (an id, a Hub name or a spec path)
    display_name: str
    settings: Settings
    extrapolation: Extrapolation | None


class RankTermRow(TermRow):
    rank: int


class RankCheck(Check):
    rank: int


class RankOom(OomReport):
    rank: int


class Holds(BaseModel):
    """What one rank holds, in the placement's words."""

    model_config = ConfigDict(frozen=True)

    layers: list[int]
    embedding: bool
    head: bool
    tp_rank: int
    ep_rank: int | None  # None without expert parallelism
    stage: int


class RankReport(MeasuredRun):
    """One rank's measurement against its share of the plan: the fields of a single-device run."""

    rank: int
    local_rank: int
    node: str  # host name
    role: str  # placement's words: "stage 0 (layers 0-11), rank 1 of 2"
    holds: Holds


class LayoutReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    tp: int
    pp: int
    ep: int
    world_size: int
    backend: str  # gloo | nccl
    launcher: str  # spawn (fitcalc started the ranks) | torchrun
    nodes: int


class DistributedVerifyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    source: str
    display_name: str
    device: DeviceReport  # rank 0's
    settings: Settings
    world_size: int
    layout: LayoutReport
    terms: list[RankTermRow]  # every rank's rows, rank by rank
    working: RankCheck | None  # the rank whose peak is predicted largest (the one a plan binds on)
    peak: RankCheck
    extrapolation: None = None  # single-device runs only
    ranks: list[RankReport]
    timings: dict[str, float]
    ok: bool
    failures: list[str]  # "rank 1: weights.norms"
    oom: RankOom | None
    notes: list[str]
    exit_code: int


def assemble(model: str, source: str, display_name: str, settings: Settings, layout: LayoutReport,
             reports: list[RankReport], wall_s: float, notes: list[str]) -> DistributedVerifyResult:
    """Every rank's report in one result: rows with their rank, the binding rank's peak on top,
    the exit code of the worst rank (5 out of memory, 4 out of tolerance, 0)."""
    reports = sorted(reports, key=lambda r: r.rank)
    rows = [RankTermRow(**t.model_dump(), rank=r.rank) for r in reports for t in r.terms]
    bind = max(reports, key=lambda r: (r.peak.predicted_bytes, -r.rank))
    working = None if bind.working is None else RankCheck(**bind.working.model_dump(), rank=bind.rank)
    failures = [f"rank {r.rank}: {f}" for r in reports for f in r.failures]
    oom_rank = next((r for r in reports if r.oom is not None), None)
    oom = None if oom_rank is None else RankOom(**oom_rank.oom.model_dump(), rank=oom_rank.rank)  # type: ignore[union-attr]
    code = max((r.exit_code for r in reports), key=lambda c: {5: 2, 4: 1}.get(c, 0))
    return DistributedVerifyResult(
        model=model, source=source, display_name=display_name, device=reports[0].device, settings=settings,
        world_size=layout.world_size, layout=layout, terms=rows, working=working,
        peak=RankCheck(**bind.peak.model_dump(), rank=bind.rank), ranks=reports, timings={"wall": round(wall_s, 3)},
        ok=all(r.ok for r in reports), failures=failures, oom=oom,
        notes=[*notes, *[f"rank {r.rank}: {n}" for r in reports for n in r.notes]], exit_code=code)


def oom_comparison(predicted, device: str, device_kind: str, phase: str, live_bytes: int, message: str,
                   readings: dict[str, Any], overrides: dict[str, Tolerance]) -> tuple[list[TermRow], Check, OomReport]:
    """The rows of a run that ran out of memory at ``phase``: every term predicted, none measured."""
    empty = Measurement(device=device, device_kind=device_kind, terms=[], peak_bytes=0, peak_how="")
    comp = compare(predicted, empty, overrides)
    rows = [t.model_copy(update={"how": "not measured: out of memory"}) for t in comp.terms]
    peak = comp.peak.model_copy(update={"measured_bytes": None, "error": None, "ok": None,
                                        "how": f"out of memory during {phase}"})
    oom = OomReport(phase=phase, live_bytes=live_bytes, predicted_bytes=predicted.total_bytes, message=message,
                    readings=readings)
    return rows, peak, oom


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


def record_line_distributed(r: DistributedVerifyResult, date: str) -> dict[str, Any]:
    """A distributed run as one JSON line: the single-device fields, plus world size, layout and
    one entry per rank (its device, what it holds, predicted and measured per term)."""
    d = r.device
    return {
        "date": date, "device": d.name, "device_kind": d.kind, "host": d.host, "driver": d.driver,
        "torch": d.torch_version, "cuda": d.cuda_version, "model": r.model, "source": r.source,
        "settings": r.settings.model_dump(), "world_size": r.world_size, "layout": r.layout.model_dump(),
        "terms": [{"rank": t.rank, "id": t.id, "predicted_bytes": t.predicted_bytes,
                   "measured_bytes": t.measured_bytes} for t in r.terms],
        "ranks": [{"rank": k.rank, "node": k.node, "role": k.role, "device": k.device.name,
                   "holds": k.holds.model_dump(),
                   "working": None if k.working is None else {"predicted_bytes": k.working.predicted_bytes,
                                                              "measured_bytes": k.working.measured_bytes},
                   "peak": {"predicted_bytes": k.peak.predicted_bytes, "measured_bytes": k.peak.measured_bytes},
                   "readings": k.readings, "timings": k.timings, "ok": k.ok,
                   "oom": None if k.oom is None else k.oom.model_dump()} for k in r.ranks],
        "peak": {"rank": r.peak.rank, "predicted_bytes": r.peak.predicted_bytes,
                 "measured_bytes": r.peak.measured_bytes},
        "timings": r.timings, "ok": r.ok, "oom": None if r.oom is None else r.oom.model_dump(),
    }


__all__ = ["DeviceReport", "Settings", "OomReport", "VerifyResult", "record_line", "oom_comparison", "RankTermRow", "RankCheck",
           "RankOom", "Holds", "RankReport", "LayoutReport", "DistributedVerifyResult", "assemble",
           "record_line_distributed"]
