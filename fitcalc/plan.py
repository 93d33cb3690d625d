"""Fit questions as pure functions: does it fit, with what headroom, at what largest context. CORE.

``fit_device`` answers for one device type (``count`` identical GPUs in tensor parallel);
``solve_max_context`` finds the largest context that fits at a batch. Both use the fast path
``required_bytes``; the explained terms are built once, for the answer.

Verdict rule (docs/formulas.md, "Verdict"): headroom = available − required; uncertainty = Σ of
each term's band × bytes. ``fits`` is headroom ≥ 0. The verdict says "fits" when the headroom
covers the uncertainty, "tight" when 0 ≤ headroom < uncertainty, "does not fit" below 0.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from fitcalc.calibration import CalibrationInfo
from fitcalc.estimate import Prepared, drafts, estimate, required_bytes
from fitcalc.estimate.terms import Term
from fitcalc.spec import Device, Workload
from fitcalc.units import format_bytes

Verdict = Literal["fits", "tight", "does not fit"]


class FitResult(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    model: str
    recipe: str
    engine: str
    engine_version: str
    device: str
    device_id: str | None
    count: int
    tp: int
    context: int
    batch: int
    kv_dtype: str | None
    fits: bool
    verdict: Verdict
    required_bytes: int  # per device
    available_bytes: int  # per device
    headroom_bytes: int
    uncertainty_bytes: int
    max_context: int | None  # largest context that fits at this batch (None: not even the smallest)
    max_context_limit: int | None  # the model's own maximum (max_position_embeddings)
    max_context_step: int
    kv_capacity_bytes: int  # what is left for KV after every other term (vLLM's "available KV cache")
    kv_capacity_tokens: int | None  # that capacity in tokens at full-attention cost
    terms: list[Term]
    warnings: list[str]
    calibration: CalibrationInfo | None = None  # set when terms were scaled by stored engine-log residuals


def verdict_of(headroom: int, uncertainty: int) -> Verdict:
    if headroom < 0:
        return "does not fit"
    return "fits" if headroom >= uncertainty else "tight"


def context_step(p: Prepared) -> int:
    """Granularity of a context length for the engine: vLLM's block, llama.cpp's 256-cell padding."""
    k = p.engine.kv
    if k.full == "blocks":
        return k.block_tokens
    if k.full == "cells_padded":
        return k.cell_pad
    return 1


def model_context_limit(p: Prepared) -> int | None:
    a = p.model.architecture
    return a.max_position_embeddings if a is not None else None


def _with_context(w: Workload, context: int) -> Workload:
    return w.model_copy(update={"context": context, "prompt_tokens": min(w.prompt_tokens, context)
                                if w.prompt_tokens else None})


def solve_max_context(p: Prepared, device: Device, workload: Workload, tp: int = 1,
                      limit: int | None = None) -> int | None:
    """Largest context (a multiple of the engine's step, at most ``limit``) whose footprint fits.

    Footprints never shrink as the context grows, so a bisection finds it; the result fits and
    one step more does not (unless it is the limit).
    """
    step = context_step(p)
    avail = device.memory_bytes

    def ok(c: int) -> bool:
        return required_bytes(p, device, _with_context(workload, c), tp) <= avail

    if not ok(step):
        return None
    # Without a model limit, 2^40 tokens stands for "unbounded" (40-odd bisection steps).
    cap = (limit // step) * step if limit else (1 << 40)
    if ok(cap):
        return cap
    lo, hi = step, cap  # invariant: ok(lo), not ok(hi), both multiples of step
    while hi - lo > step:
        mid = lo + ((hi - lo) // (2 * step)) * step
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def context_warnings(p: Prepared, context: int) -> list[str]:
    a = p.model.architecture
    if a is None or context <= a.max_position_embeddings:
        return []
    rs = a.rope_scaling
    how = ""
    if rs is not None:
        orig = f" over {rs.original_max_position_embeddings}" if rs.original_max_position_embeddings else ""
        how = f"; rope_scaling {rs.rope_type} factor {rs.factor:g}{orig}"
    return [f"context {context:,} exceeds {p.model.id}'s maximum of {a.max_position_embeddings:,} tokens "
            f"(max_position_embeddings{how}); quality beyond it is not expected"]


_SOLVE = object()


def fit_device(p: Prepared, device: Device, workload: Workload, count: int = 1, *,
               max_context: int | None | object = _SOLVE) -> FitResult:
    """Does ``workload`` fit on ``count`` identical ``device`` (tensor parallel when count > 1)?

    ``max_context``: the answer of ``solve_max_context`` for this prepared model, device, count and
    workload, when the caller has it already. It does not depend on ``workload.context``, so a sweep
    over contexts solves it once (fitcalc.report.matrix) instead of bisecting for every row.
    """
    tp = count
    fp = estimate(p, device, workload, tp)
    required = fp.total_bytes
    avail = device.memory_bytes
    headroom = avail - required
    unc = fp.uncertainty_bytes
    kv_now = fp.by_prefix("kv")
    capacity = max(0, avail - (required - kv_now))
    lay = p.kv
    per_token = 0
    if lay is not None:
        full = lay.full_token_bytes + lay.mla_token_bytes
        split = min(tp, 1 if lay.mla_layers else lay.n_kv) if tp > 1 else 1
        per_token = -(-full // split) if full else 0
    limit = model_context_limit(p)
    max_ctx = solve_max_context(p, device, workload, tp, limit) if max_context is _SOLVE else max_context
    warnings = context_warnings(p, workload.context)
    if device.is_budget:
        warnings.append(f"{device.label}: a raw budget is taken as usable memory as given "
                        "(no driver reserve subtracted)")
    return FitResult(
        model=p.model.id, recipe=p.recipe.id, engine=p.engine.id, engine_version=p.engine.version,
        device=device.label, device_id=device.profile_id, count=count, tp=tp, context=workload.context,
        batch=workload.batch, kv_dtype=p.kv_fmt.id if p.kv_fmt else None, fits=headroom >= 0,
        verdict=verdict_of(headroom, unc), required_bytes=required, available_bytes=avail,
        headroom_bytes=headroom, uncertainty_bytes=unc, max_context=max_ctx, max_context_limit=limit,
        max_context_step=context_step(p), kv_capacity_bytes=capacity,
        kv_capacity_tokens=capacity // per_token if per_token else None, terms=list(fp.terms),
        warnings=warnings,
    )


def fits_fast(p: Prepared, device: Device, workload: Workload, tp: int = 1) -> bool:
    """The fast yes/no (no terms built): for sweeps and solvers."""
    return required_bytes(p, device, workload, tp) <= device.memory_bytes


def headroom_text(r: FitResult) -> str:
    sign = "" if r.headroom_bytes >= 0 else "-"
    return f"{sign}{format_bytes(abs(r.headroom_bytes))}"


__all__ = ["FitResult", "fit_device", "solve_max_context", "fits_fast", "verdict_of", "context_step", "drafts"]
