"""`fitcalc size` as a pure function: parameters and bytes per tensor group, with checks. CORE."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, computed_field

from fitcalc.core.errors import InputError
from fitcalc.core.estimate.weights import GroupWeights, derived_breakdown, weights_breakdown
from fitcalc.core.formats import get_format, is_format
from fitcalc.core.recipes import resolve_recipe, validate_recipe_formats
from fitcalc.core.spec import ModelSpec, PublishedFigure
from fitcalc.core.units import GB, GiB


class GroupSize(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

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

    model_config = ConfigDict(frozen=True, defer_build=True)

    what: str
    published: float
    unit: str
    computed: float
    relative_error: float
    source: str


class CheckRow(BaseModel):
    """One group: what the checkpoint's headers state beside what the architecture predicts."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    group: str
    header_bytes: int
    derived_bytes: int
    header_params: int
    derived_params: int
    header_formats: dict[str, int]
    derived_formats: dict[str, int]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def bytes_diff(self) -> int:
        return self.header_bytes - self.derived_bytes

    @computed_field  # type: ignore[prop-decorator]
    @property
    def params_diff(self) -> int:
        return self.header_params - self.derived_params

    @computed_field  # type: ignore[prop-decorator]
    @property
    def agrees(self) -> bool:
        return self.bytes_diff == 0 and self.params_diff == 0


class CheckpointCheck(BaseModel):
    """``size --check``: header-exact bytes and parameters against the architecture's derivation."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    source: str
    recipe: str  # the derived side's recipe (the checkpoint's native one, from quantization_config)
    rows: list[CheckRow]
    header_bytes: int
    derived_bytes: int
    header_params: int
    derived_params: int
    agree: bool  # every group equal to the byte and to the parameter


class SizeResult(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

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
    bits_per_weight: float  # disk bytes × 8 / params_total: the checkpoint's average
    groups: list[GroupSize]
    explain: list[str]
    notes: list[str]
    published: list[PublishedCheck]
    exact_source: str | None = None  # "safetensors headers of ..." when the sizes are read, not derived
    warnings: list[str] = []
    check: CheckpointCheck | None = None


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


def check_checkpoint(model: ModelSpec) -> CheckpointCheck:
    """Compare the checkpoint's header-exact groups with the architecture-derived ones."""
    ck = model.checkpoint
    if ck is None:
        raise InputError(f"{model.id}: --check needs a model read from its files",
                         hint="give a checkpoint folder, a .safetensors or .gguf file, or a Hub repo id")
    if model.architecture is None:
        raise InputError(f"{model.id}: --check needs the architecture, which could not be read from config.json",
                         hint="run without --check for the header-exact sizes; its warning names the missing fields")
    header = weights_breakdown(model, model.native_recipe)
    derived = derived_breakdown(model, model.native_recipe)
    names = [g.name for g in header.groups] + [g.name for g in derived.groups if header.group(g.name) is None]
    rows = []
    for n in names:
        h, d = header.group(n), derived.group(n)
        rows.append(CheckRow(group=n, header_bytes=h.bytes if h else 0, derived_bytes=d.bytes if d else 0,
                             header_params=h.params if h else 0, derived_params=d.params if d else 0,
                             header_formats=dict(h.formats) if h else {},
                             derived_formats=dict(d.formats) if d else {}))
    return CheckpointCheck(source=ck.source, recipe=model.native_recipe.display_name or model.native_recipe.id,
                           rows=rows, header_bytes=header.disk_bytes, derived_bytes=derived.disk_bytes,
                           header_params=header.params_total, derived_params=derived.params_total,
                           agree=all(r.agrees for r in rows))


def size_model(model: ModelSpec, recipe: str | None = None, check: bool = False) -> SizeResult:
    """Sizes of ``model`` stored with ``recipe`` (default: the checkpoint's native recipe).

    A model read from its files reports the header-exact groups for its native recipe; with
    ``check`` it also carries the comparison with the architecture's derivation.
    """
    r = resolve_recipe(model, recipe)
    validate_recipe_formats(r)
    w = weights_breakdown(model, r)
    checks: list[PublishedCheck] = []
    native = r.id == model.native_recipe.id
    exact = model.checkpoint is not None and native
    if exact and model.checkpoint.index_total_size:
        checks.append(_check("index_total_size", PublishedFigure(
            value=model.checkpoint.index_total_size, unit="bytes",
            source="model.safetensors.index.json metadata.total_size"), w.disk_bytes))
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
        bits_per_weight=round(w.disk_bytes * 8 / w.params_total, 4) if w.params_total else 0.0,
        groups=[_group_size(g) for g in w.groups], explain=[t.explain for t in w.terms], notes=list(w.notes),
        published=checks,
        exact_source=(f"{'safetensors headers' if model.checkpoint.kind == 'safetensors' else 'GGUF tensor table'}"
                      f" of {model.checkpoint.source}") if exact else None,
        warnings=list(model.warnings), check=check_checkpoint(model) if check else None,
    )


def format_label(fid: str) -> str:
    """Display names of a "+"-joined list of format ids; a storage label that is no format id
    (a header's uint8 or I64 tensor) is shown as it is."""
    return "+".join(get_format(f).display_name.split(" (")[0] if is_format(f) else f for f in fid.split("+") if f)
