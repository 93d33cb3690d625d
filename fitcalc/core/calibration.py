"""Calibrations: residuals kept from engine logs, and the term scales they give. CORE.

``fitcalc reconcile --save`` turns each calibratable row of a reconciliation into a
``CalibrationEntry`` (engine, version family, GPU family, term id, logged and predicted bytes);
``fitcalc.edges.calibration_store`` keeps them in a YAML file. ``fit --calibrated`` picks the entries of
the same engine, version family and GPU family (``choose``) and scales each term by the
geometric mean of its logged/predicted ratios (``factors``):

    factor(term) = exp( Σ_i ln(logged_i / predicted_i) / n )      over the n residuals of that term

A geometric mean because the residuals are ratios: a log 10% over and one 10% under cancel.
Only GPU rows scale the GPU footprint. Nothing here reads files or the clock.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fitcalc.core.reconcile.model import ReconcileResult


# The largest factor, either way, a residual may carry. A log 16 times over or under fitcalc's
# prediction is not a calibration but a log of another model, other settings or a corrupt line;
# stored, it would scale every later `fit --calibrated` by it (issue #17: one corrupt log made fit
# report 1e21 PiB). The widest residuals of the bundled test logs (tests/reconcile/logs.py) are
# x0.11 (weights.* of a partly offloaded llama.cpp run) and x3.1 (vLLM V0 overhead.non_torch); of
# the 23 reference logs that reconcile (benchmarks/reference_logs/index.yaml, 57 residuals) x0.30
# (Ollama act.compute_buffer, Strix Halo) and x10.3 (vLLM V0 overhead.non_torch, 8 x H200). One is
# over: weights.* x38 of ollama-go-a10-qwen3-30b-a3b-q8-partial.log, a partial offload whose GPU
# weights fitcalc does not place yet; that log is refused rather than stored as a calibration.
MAX_RESIDUAL_RATIO = 16.0
MAX_RESIDUAL_BYTES = 1 << 50  # 1 PiB: more than any device or host logs


def residual_problem(term_id: str, logged_bytes: int, predicted_bytes: int) -> str | None:
    """Why a residual cannot be stored (None when it can)."""
    if not 0 <= logged_bytes <= MAX_RESIDUAL_BYTES or not 0 < predicted_bytes <= MAX_RESIDUAL_BYTES:
        return (f"{term_id}: logged {logged_bytes:,} / predicted {predicted_bytes:,} bytes, outside 0 to "
                f"{MAX_RESIDUAL_BYTES:,} (1 PiB)")
    ratio = logged_bytes / predicted_bytes
    if not 1 / MAX_RESIDUAL_RATIO <= ratio <= MAX_RESIDUAL_RATIO:
        return (f"{term_id}: logged/predicted is x{ratio:.3g} ({logged_bytes:,} vs {predicted_bytes:,} bytes), "
                f"outside x{1 / MAX_RESIDUAL_RATIO:g} to x{MAX_RESIDUAL_RATIO:g}")
    return None


class CalibrationEntry(BaseModel):
    """One residual: a term's prediction against what an engine logged."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    engine: str
    version_family: str | None
    gpu_family: str | None
    device_class: Literal["gpu", "host"]
    term_id: str  # a term id or id pattern: "weights.*", "kv.full", "act.compute_buffer"
    logged_bytes: int
    predicted_bytes: int
    ratio: float  # logged / predicted: the factor that maps the prediction onto the log
    offset_bytes: int  # logged − predicted
    model: str
    recipe: str
    context: int
    log_sha256: str
    log: str | None = None  # the log's file name, for people reading the store
    date: str  # ISO date the residual was saved

    @model_validator(mode="after")
    def _bounded(self) -> CalibrationEntry:
        problem = residual_problem(self.term_id, self.logged_bytes, self.predicted_bytes)
        if problem is not None:
            raise ValueError(f"residual {problem}")
        if not abs(self.ratio * self.predicted_bytes - self.logged_bytes) <= 1:  # within a byte; False for NaN
            raise ValueError(f"ratio {self.ratio} is not logged_bytes / predicted_bytes")
        return self


class CalibrationFile(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    schema_version: Literal[1] = 1
    entries: list[CalibrationEntry] = Field(default_factory=list)


class CalibrationInfo(BaseModel):
    """What a calibrated fit used, for its output and JSON."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    store: str | None
    engine: str
    version_family: str | None
    gpu_family: str | None
    n_logs: int
    factors: dict[str, float]
    note: str


def entries_from(result: ReconcileResult, log_sha256: str, date: str, log_name: str | None = None
                 ) -> list[CalibrationEntry]:
    """The calibratable rows of a reconciliation as store entries (byte rows with a prediction).

    Refuses the whole log, with the reason, when one residual is out of bounds
    (``MAX_RESIDUAL_RATIO``): nothing of a log that far off is stored."""
    from fitcalc.core.errors import InputError
    from fitcalc.core.reconcile.model import is_host

    out = []
    for r in result.rows:
        if not r.calibratable or r.id is None or r.logged_bytes is None or not r.predicted_bytes:
            continue
        problem = residual_problem(r.id, r.logged_bytes, r.predicted_bytes)
        if problem is not None:
            raise InputError(f"not saved: residual {problem}: a log of another model or other settings?",
                             hint="run without --save to see every row; give --model/--set/--gpu to match the log")
        out.append(CalibrationEntry(
            engine=result.engine, version_family=result.version_family, gpu_family=result.gpu_family,
            device_class="host" if is_host(r.device) else "gpu", term_id=r.id, logged_bytes=r.logged_bytes,
            predicted_bytes=r.predicted_bytes, ratio=r.logged_bytes / r.predicted_bytes,
            offset_bytes=r.logged_bytes - r.predicted_bytes, model=result.model, recipe=result.recipe,
            context=result.context, log_sha256=log_sha256, log=log_name, date=date))
    return out


def merge(existing: list[CalibrationEntry], new: list[CalibrationEntry]) -> tuple[list[CalibrationEntry], int, int]:
    """Append ``new`` unless the same log already gave that residual: (entries, added, skipped)."""
    seen = {(e.log_sha256, e.term_id, e.device_class) for e in existing}
    out = list(existing)
    added = skipped = 0
    for e in new:
        key = (e.log_sha256, e.term_id, e.device_class)
        if key in seen:
            skipped += 1
            continue
        seen.add(key)
        out.append(e)
        added += 1
    return out, added, skipped


def _family_key(v: str | None) -> tuple:
    """Sort version families so the newest comes last: "0.15" after "0.6", "b6xxx" after "b5xxx"."""
    if v is None:
        return (-1,)
    digits = [int(x) for x in "".join(c if c.isdigit() else " " for c in v).split()]
    return tuple(digits) or (0,)


def choose(entries: list[CalibrationEntry], engine: str, gpu_family: str | None,
           version_family: str | None = None) -> tuple[list[CalibrationEntry], str | None]:
    """Entries for this engine and GPU family (GPU rows), of ``version_family`` or else the newest
    family stored. A raw budget has no GPU family and matches nothing."""
    if gpu_family is None:
        return [], version_family
    same = [e for e in entries if e.engine == engine and e.gpu_family == gpu_family and e.device_class == "gpu"]
    if not same:
        return [], version_family
    if version_family is None:
        version_family = max((e.version_family for e in same), key=_family_key)
    return [e for e in same if e.version_family == version_family], version_family


def factors(entries: list[CalibrationEntry]) -> dict[str, float]:
    """Geometric mean of logged/predicted per term id (see the module docstring)."""
    logs: dict[str, list[float]] = {}
    for e in entries:
        if e.ratio > 0:
            logs.setdefault(e.term_id, []).append(math.log(e.ratio))
    return {k: math.exp(sum(v) / len(v)) for k, v in sorted(logs.items())}


def scales(f: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """Factors in the form ``fitcalc.core.estimate.prepare(scales=...)`` takes."""
    return tuple(sorted(f.items()))


def info(entries: list[CalibrationEntry], engine: str, version_family: str | None, gpu_family: str | None,
         store: str | None) -> CalibrationInfo:
    f = factors(entries)
    n_logs = len({e.log_sha256 for e in entries})
    shown = ", ".join(f"{k} ×{v:.3f}" for k, v in f.items())
    note = (f"calibrated from {n_logs} log{'s' if n_logs != 1 else ''} ({engine} {version_family or '?'}, "
            f"{gpu_family}): {shown}")
    return CalibrationInfo(store=store, engine=engine, version_family=version_family, gpu_family=gpu_family,
                           n_logs=n_logs, factors=f, note=note)
