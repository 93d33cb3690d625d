"""`fitcalc size` as a pure function: parameters and bytes per tensor group, with checks. CORE."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from fitcalc.estimate.weights import GroupWeights, weights_breakdown
from fitcalc.formats import get_format
from fitcalc.recipes import resolve_recipe, validate_recipe_formats
from fitcalc.spec import ModelSpec, PublishedFigure
from fitcalc.units import GB, GiB


class GroupSize(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    params: int
    active_params: int
    format: str
    bits_per_weight: float  # bytes × 8 / params for this group (scales and vectors included)
    bytes: int
    formats: dict[str, int]
    resident: bool


class PublishedCheck(BaseModel):
    """A figure the model's authors published next to ours."""

    model_config = ConfigDict(frozen=True)

    what: str
    published: float
    unit: str
    computed: float
    relative_error: float
    source: str


class SizeResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    display_name: str
    hf_repo: str | None
    recipe: str
    recipe_name: str
    coarse: bool
    params_total: int
    params_active: int
    disk_bytes: int
    resident_bytes: int
    groups: list[GroupSize]
    explain: list[str]
    notes: list[str]
    published: list[PublishedCheck]


def _group_size(g: GroupWeights) -> GroupSize:
    return GroupSize(name=g.name, params=g.params, active_params=g.active_params, format=g.format,
                     bits_per_weight=round(g.bytes * 8 / g.params, 4) if g.params else 0.0, bytes=g.bytes,
                     formats=g.formats, resident=g.resident)


def _unit_value(nbytes: int, unit: str) -> float:
    return {"bytes": nbytes, "GiB": nbytes / GiB, "GB": nbytes / GB}[unit]


def _check(what: str, fig: PublishedFigure, computed_raw: int) -> PublishedCheck:
    if fig.unit in ("params", "B-params"):
        scale = 1e9 if fig.unit == "B-params" else 1.0
        computed = computed_raw / scale
    else:
        computed = _unit_value(computed_raw, fig.unit)
    err = (computed - fig.value) / fig.value
    return PublishedCheck(what=what, published=fig.value, unit=fig.unit, computed=computed,
                          relative_error=err, source=fig.source)


def size_model(model: ModelSpec, recipe: str | None = None) -> SizeResult:
    """Sizes of ``model`` stored with ``recipe`` (default: the checkpoint's native recipe)."""
    r = resolve_recipe(model, recipe)
    validate_recipe_formats(r)
    w = weights_breakdown(model, r)
    checks: list[PublishedCheck] = []
    native = r.id == model.native_recipe.id
    p = model.published
    if p is not None:
        if p.params_total:
            checks.append(_check("params_total", p.params_total, w.params_total))
        if p.params_active:
            checks.append(_check("params_active", p.params_active, w.params_active))
        if native and p.checkpoint_size:
            checks.append(_check("checkpoint_size", p.checkpoint_size, w.disk_bytes))
        if native and p.index_total_size:
            checks.append(_check("index_total_size", p.index_total_size, w.disk_bytes))
    return SizeResult(
        model=model.id, display_name=model.display_name, hf_repo=model.hf_repo, recipe=r.id,
        recipe_name=r.display_name or r.id, coarse=w.coarse, params_total=w.params_total,
        params_active=w.params_active, disk_bytes=w.disk_bytes, resident_bytes=w.resident_bytes,
        groups=[_group_size(g) for g in w.groups], explain=[t.explain for t in w.terms], notes=list(w.notes),
        published=checks,
    )


def format_label(fid: str) -> str:
    return "+".join(get_format(f).display_name.split(" (")[0] for f in fid.split("+"))
