"""Reading a report spec and resolving its ids: the edge between files/catalogs and the report core. EDGE.

Everything that can be wrong with a spec is found here, before any scenario is evaluated and before
any output is written: YAML syntax and duplicate keys, unknown keys (with the closest known key),
bad sizes, unknown model/GPU/engine/recipe ids (with close matches), KV dtypes no listed engine
takes, an empty matrix, a matrix over the cap. Each is one ``SpecError`` line naming the file and
the field.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from fitcalc.core.errors import FitcalcError, InputError, SpecError
from fitcalc.core.report import spec as S
from fitcalc.core.report.spec import ReportSpec, gpu_text, model_source, model_text

SPEC_DOC = "docs/report-spec.md"

# Which model an unknown key was found in, by the field that holds it (for "did you mean").
_HOLDER: dict[str, type[BaseModel]] = {
    "defaults": S.Defaults, "scenarios": S.Scenario, "assert": S.Assertions, "checks": S.Check, "where": S.Where,
    "models": S.ModelRef, "model": S.ModelRef, "gpus": S.GpuRef, "gpu": S.GpuRef,
    "training": S.TrainingScenario, "train": S.TrainSetup,
}
# Inside a training scenario, its `assert` holds training assertions.
_TRAINING_HOLDER: dict[str, type[BaseModel]] = {**_HOLDER, "assert": S.TrainAssertions}
_RANK = {"extra_forbidden": 0, "string_type": 2, "model_type": 2, "model_attributes_type": 2, "dict_type": 2}


def _keys(cls: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in cls.model_fields.items()]


def _loc_text(loc: tuple) -> str:
    out = ""
    for x in loc:
        if isinstance(x, int):
            out += f"[{x}]"
        elif x in ("str", "ModelRef", "GpuRef", "int") or "[" in str(x):
            continue  # pydantic's tag for the member of a union it tried
        else:
            out += ("." if out else "") + str(x)
    return out


def validation_error(err: ValidationError, path: str) -> SpecError:
    """The most useful of pydantic's errors as one line, with the closest key for an unknown one."""
    errors = sorted(err.errors(), key=lambda e: _RANK.get(e["type"], 1))
    first = errors[0]
    loc = tuple(first["loc"])
    field = _loc_text(loc) or None
    msg = str(first["msg"]).replace("Value error, ", "")
    hint = f"see {SPEC_DOC}"
    if first["type"] == "extra_forbidden":
        holder: type[BaseModel] = ReportSpec
        holders = _TRAINING_HOLDER if loc and loc[0] == "training" else _HOLDER
        for x in reversed(loc[:-1]):
            if isinstance(x, str) and x in holders:
                holder = holders[x]
                break
        known = _keys(holder)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        msg = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
        hint = f"known keys here: {', '.join(known)}"
    elif first["type"] == "missing":
        msg = "missing required key"
    return SpecError(msg, hint, path=path, field=field)


def load_spec(path: str | Path) -> ReportSpec:
    from fitcalc.edges import catalog

    p = Path(path)
    if p.is_dir():
        raise SpecError("is a folder, not a report spec", hint="give the YAML file", path=str(p))
    data = catalog.load_yaml_text(catalog.read_text_capped(p, what="report spec"), str(p))
    if not isinstance(data, dict):
        raise SpecError("expected a mapping at the top level (models:, gpus:, contexts: ...)",
                        hint=f"see {SPEC_DOC}", path=str(p))
    try:
        return ReportSpec.model_validate(data)
    except ValidationError as e:
        raise validation_error(e, str(p)) from None


class CatalogResolver:
    """Models, GPUs and engines the way the CLI finds them; model paths are relative to the spec's folder."""

    def __init__(self, base: Path | None = None):
        self.base = base

    def model(self, text: str, source: str):
        from fitcalc.edges.ingest import resolve_model

        if self.base is not None and source in ("auto", "local") and not Path(text).is_absolute():
            candidate = self.base / text
            if candidate.exists():
                return resolve_model(str(candidate), source)  # type: ignore[arg-type]
        return resolve_model(text, source)  # type: ignore[arg-type]

    def device(self, gpu: str):
        from fitcalc.edges.inputs import resolve_devices

        (dev, count), = resolve_devices([gpu])[0]
        return dev, count

    def engine(self, model, recipe: str, engine: str):
        from fitcalc.core.choose import engine_for
        from fitcalc.edges import catalog

        return catalog.load_engine(engine_for(model, engine, None if recipe == "native" else recipe))


def _kv_refused(model, engines: list, kv: str, path: str, field: str) -> None:
    """Raise when none of ``engines`` takes KV dtype ``kv`` for ``model`` (close matches suggested)."""
    from fitcalc.core.estimate.kvcache import kv_format

    if kv == "auto" or model.architecture is None or not engines:
        return
    for eng in engines:
        try:
            kv_format(model.architecture, eng, kv)
            return
        except FitcalcError:
            continue
    known = sorted({t for e in engines for t in e.kv.dtypes} | {"auto"})
    close = difflib.get_close_matches(kv.lower(), known, n=3, cutoff=0.5)
    names = ", ".join(sorted({e.id for e in engines}))
    msg = f"KV dtype {kv!r} is not taken by {names}" + (f"; did you mean: {', '.join(close)}?" if close else "")
    raise SpecError(msg, f"{names} take: {', '.join(known)}", path=path, field=field)


def check_ids(spec: ReportSpec, resolver: CatalogResolver, path: str) -> None:
    """Resolve every id the spec names, so a typo fails before the sweep, naming its field."""
    from fitcalc.core.recipes import resolve_recipe

    def attempt(field: str, fn, *args):
        try:
            return fn(*args)
        except FitcalcError as e:
            raise SpecError(e.message, e.hint, path=path, field=field) from None

    def listed(key: str, i: int, default_key: str) -> str:
        return f"{key}[{i}]" if getattr(spec, key) is not None else f"defaults.{default_key}"

    d = spec.defaults
    models = [attempt(f"models[{i}]", resolver.model, model_text(m), model_source(m))
              for i, m in enumerate(spec.models or [])]
    for i, g in enumerate(spec.gpus or []):
        attempt(f"gpus[{i}]", resolver.device, gpu_text(g))
    engines = spec.engines if spec.engines is not None else [d.engine]
    recipes = spec.recipes if spec.recipes is not None else [d.recipe]
    kvs = spec.kv_dtypes if spec.kv_dtypes is not None else [d.kv_dtype]
    # Recipe and engine names do not depend on the model (generic recipes, catalog engines), so
    # the first model stands for all; KV dtypes depend on the engine, hence the check across them.
    if models:
        probe = models[0]
        for j, recipe in enumerate(recipes):
            attempt(listed("recipes", j, "recipe"), resolve_recipe, probe, None if recipe == "native" else recipe)
        resolved = [attempt(listed("engines", i, "engine"), resolver.engine, probe, recipe, eng)
                    for i, eng in enumerate(engines) for recipe in recipes]
        for j, kv in enumerate(kvs):
            _kv_refused(probe, resolved, kv, path, listed("kv_dtypes", j, "kv_dtype"))
    for s in spec.scenarios:
        where = f"scenarios[{s.name}]"
        m = attempt(f"{where}.model", resolver.model, model_text(s.model), model_source(s.model))
        attempt(f"{where}.gpu", resolver.device, gpu_text(s.gpu))
        recipe = s.recipe or d.recipe
        attempt(f"{where}.recipe", resolve_recipe, m, None if recipe == "native" else recipe)
        eng = attempt(f"{where}.engine", resolver.engine, m, recipe, s.engine or d.engine)
        _kv_refused(m, [eng], s.kv_dtype or d.kv_dtype, path, f"{where}.kv_dtype")
    _check_training_ids(spec, resolver, attempt)


def _check_training_ids(spec: ReportSpec, resolver: CatalogResolver, attempt) -> None:
    """A training scenario's model, GPU and setup (a LoRA target the model lacks, QLoRA on an already
    quantized checkpoint ...) fail here, naming the scenario, as `fitcalc train` refuses them."""
    from fitcalc.core.estimate.training import prepare_training

    for t in spec.training:
        where = f"training[{t.name}]"
        m = attempt(f"{where}.model", resolver.model, model_text(t.model), model_source(t.model))
        attempt(f"{where}.gpu", resolver.device, gpu_text(t.gpu))
        attempt(f"{where}.train", prepare_training, m, t.train, resolver.engine(m, "native", "torch"))


def read_json_report(path: str | Path) -> Any:
    """A previous JSON report (for --baseline), read with the same size cap as any data file."""
    import json

    from fitcalc.edges import catalog

    text = catalog.read_text_capped(Path(path), limit=256 << 20, what="baseline report")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not JSON ({e.msg} at line {e.lineno})",
                         hint="give a report written with `fitcalc report SPEC.yaml -o OLD.json`") from None
    except RecursionError:  # json's decoder recurses per level
        raise InputError(f"{path}: nests too deep to be a fitcalc report",
                         hint="give a report written with `fitcalc report SPEC.yaml -o OLD.json`") from None


def build_report(spec_path: str | Path, *, yes: bool = False, progress=None):
    """Load, expand, check ids, evaluate, assert: the whole report for ``spec_path``.

    Returns ``(spec, cases, report)``. ``progress(done, total)`` is called during the sweep.
    """
    from fitcalc.core.report.checks import evaluate_assertions
    from fitcalc.core.report.matrix import evaluate, expand
    from fitcalc.core.report.result import Report
    from fitcalc.core.report.training import evaluate_training, training_assertions

    path = str(spec_path)
    spec = load_spec(path)
    try:
        cases = expand(spec, yes=yes)
    except InputError as e:
        raise SpecError(e.message, e.hint, path=path) from None
    resolver = CatalogResolver(base=Path(path).resolve().parent)
    check_ids(spec, resolver, path)
    results, notes = evaluate(cases, resolver, progress)
    training = evaluate_training(spec.training, resolver)
    assertions = [*evaluate_assertions(spec, cases, results), *training_assertions(spec.training, training)]
    report = Report(title=spec.title, description=spec.description, spec_path=path, scenarios=results,
                    assertions=assertions, notes=notes, training=training)
    return spec, cases, report


__all__ = ["load_spec", "CatalogResolver", "check_ids", "validation_error", "read_json_report", "build_report"]
