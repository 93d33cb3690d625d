"""A report spec expanded to scenarios, each answered by the fit machinery. CORE.

``expand`` turns the matrix lists and the named scenarios into ``Case`` rows (pure, no lookups).
``evaluate`` answers every case with ``fitcalc.plan.fit_device``, the function behind ``fitcalc fit``,
doing each piece of work once per sweep rather than once per row:

* a model is resolved, and a GPU entry turned into a ``Device``, once (through the ``Resolver`` the
  edge passes in: catalogs and files are not this module's business);
* ``prepare`` (tensor inventory, weight bytes, KV layout) runs once per (model, recipe, engine, KV dtype);
* the largest context that fits does not depend on the context asked for, so it is solved once per
  (prepared model, GPU entry, batch, prompt length) and handed to ``fit_device``.

A 10,000-row sweep takes about two seconds on one core (benchmarks/report_sweep.py); most of it is
building each row's explained terms, which the verdict's uncertainty and the reports need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING, Protocol

from fitcalc.errors import InputError
from fitcalc.report.result import Origin, PlanFields, ScenarioResult
from fitcalc.report.spec import ReportSpec, gpu_text, model_source, model_text

if TYPE_CHECKING:
    from fitcalc.engines import EngineProfile
    from fitcalc.spec import Device, ModelSpec


@dataclass(frozen=True)
class Case:
    """One scenario's inputs, as the spec wrote them (``auto`` and ``native`` kept as words)."""

    name: str
    origin: Origin
    model: str
    model_source: str
    gpu: str
    context: int
    batch: int
    engine: str
    recipe: str
    kv_dtype: str
    prompt_tokens: int | None


def case_name(model: str, gpu: str, context: int, batch: int, engine: str, recipe: str, kv_dtype: str) -> str:
    """A matrix row's name: every input, so it is unique and stable across runs (baselines match on it)."""
    return f"{model} @ {gpu} ctx={context} batch={batch} engine={engine} recipe={recipe} kv={kv_dtype}"


def _axes(spec: ReportSpec) -> dict[str, list]:
    d = spec.defaults
    return {
        "models": list(spec.models or []),
        "recipes": list(spec.recipes) if spec.recipes is not None else [d.recipe],
        "engines": list(spec.engines) if spec.engines is not None else [d.engine],
        "kv_dtypes": list(spec.kv_dtypes) if spec.kv_dtypes is not None else [d.kv_dtype],
        "gpus": list(spec.gpus or []),
        "batches": list(spec.batches) if spec.batches is not None else [d.batch],
        "contexts": list(spec.contexts) if spec.contexts is not None else [d.context],
    }


def matrix_size(spec: ReportSpec) -> int:
    if spec.models is None:
        return 0
    n = 1
    for values in _axes(spec).values():
        n *= len(values)
    return n


def scenario_count(spec: ReportSpec) -> int:
    return matrix_size(spec) + len(spec.scenarios)


def _check_axes(spec: ReportSpec) -> None:
    if spec.models is None and not spec.scenarios:
        raise InputError("the spec has no scenarios",
                         hint="give models, gpus and contexts (a matrix) or a list of named scenarios")
    if spec.models is None:
        return
    for key, values in _axes(spec).items():
        if not values:
            raise InputError(f"empty matrix: {key} is an empty list",
                             hint=f"list at least one value under {key}, or remove the key to use the default")
        shown = [gpu_text(v) if key == "gpus" else model_text(v) if key == "models" else v for v in values]
        seen = set()
        for v in shown:
            if v in seen:
                raise InputError(f"{key} lists {v!r} twice", hint="remove the repeated value")
            seen.add(v)


def expand(spec: ReportSpec, *, yes: bool = False) -> list[Case]:
    """Every scenario of the spec: the matrix rows (models outermost, contexts innermost), then the named ones."""
    _check_axes(spec)
    total = scenario_count(spec)
    if total > spec.max_scenarios and not yes:
        raise InputError(f"the spec expands to {total:,} scenarios, over the cap of {spec.max_scenarios:,}",
                         hint="pass --yes to run it anyway, or set max_scenarios in the spec")
    d = spec.defaults
    cases: list[Case] = []
    if spec.models is not None:
        a = _axes(spec)
        for m, recipe, engine, kv, g, batch, ctx in product(a["models"], a["recipes"], a["engines"], a["kv_dtypes"],
                                                            a["gpus"], a["batches"], a["contexts"]):
            mt, gt = model_text(m), gpu_text(g)
            cases.append(Case(case_name(mt, gt, ctx, batch, engine, recipe, kv), "matrix", mt, model_source(m), gt,
                              ctx, batch, engine, recipe, kv, d.prompt_tokens))
    for s in spec.scenarios:
        ctx = s.context if s.context is not None else d.context
        assert ctx is not None  # ReportSpec's validator guarantees one of them
        cases.append(Case(s.name, "scenario", model_text(s.model), model_source(s.model), gpu_text(s.gpu), ctx,
                          s.batch or d.batch, s.engine or d.engine, s.recipe or d.recipe, s.kv_dtype or d.kv_dtype,
                          s.prompt_tokens if s.prompt_tokens is not None else d.prompt_tokens))
    names = set()
    for c in cases:
        if c.name in names:
            raise InputError(f"two scenarios are named {c.name!r}", hint="rename the named scenario")
        names.add(c.name)
    return cases


class Resolver(Protocol):
    """Lookups the edge provides: catalogs, files, GPU options."""

    def model(self, text: str, source: str) -> ModelSpec: ...

    def device(self, gpu: str) -> tuple[Device, int]: ...

    def engine(self, model: ModelSpec, recipe: str, engine: str) -> EngineProfile: ...


Progress = Callable[[int, int], None]


def evaluate(cases: list[Case], resolver: Resolver, progress: Progress | None = None,
             every: int = 200) -> tuple[list[ScenarioResult], list[str]]:
    """Results for ``cases`` in order, and notes on matrix rows left out.

    A matrix row whose engine does not take its KV dtype (llama.cpp and ``fp8``) is left out with a
    note, since crossing two lists makes such pairs; a named scenario asking for one is an error.
    """
    from fitcalc.estimate import prepare
    from fitcalc.plan import fit_device, model_context_limit, solve_max_context
    from fitcalc.spec import Workload

    models: dict[tuple[str, str], ModelSpec] = {}
    devices: dict[str, tuple[Device, int]] = {}
    prepared: dict[tuple, object] = {}
    max_ctx: dict[tuple, int | None] = {}
    left_out: dict[str, int] = {}
    results: list[ScenarioResult] = []
    total = len(cases)
    for i, c in enumerate(cases):
        if progress is not None and i % every == 0:
            progress(i, total)
        mkey = (c.model, c.model_source)
        spec = models.get(mkey)
        if spec is None:
            spec = models[mkey] = resolver.model(c.model, c.model_source)
        dev = devices.get(c.gpu)
        if dev is None:
            dev = devices[c.gpu] = resolver.device(c.gpu)
        device, count = dev
        kv = None if c.kv_dtype == "auto" else c.kv_dtype
        recipe = None if c.recipe == "native" else c.recipe
        pkey = (mkey, c.recipe, c.engine, c.kv_dtype)
        p = prepared.get(pkey)
        if p is None:
            engine = resolver.engine(spec, c.recipe, c.engine)
            try:
                p = prepare(spec, recipe, engine, kv)
            except InputError as e:
                if c.origin != "matrix":
                    raise
                p = e
            prepared[pkey] = p
        if isinstance(p, InputError):
            left_out[p.message] = left_out.get(p.message, 0) + 1
            continue
        prompt = min(c.prompt_tokens, c.context) if c.prompt_tokens else None
        workload = Workload(context=c.context, batch=c.batch, kv_dtype=kv, prompt_tokens=prompt)
        ckey = (pkey, c.gpu, c.batch, prompt)
        if ckey not in max_ctx:
            max_ctx[ckey] = solve_max_context(p, device, workload, count, model_context_limit(p))  # type: ignore[arg-type]
        fit = fit_device(p, device, workload, count, max_context=max_ctx[ckey])  # type: ignore[arg-type]
        results.append(ScenarioResult.model_construct(
            name=c.name, origin=c.origin, model=c.model, gpu=c.gpu, engine_requested=c.engine,
            recipe_requested=c.recipe, kv_dtype_requested=c.kv_dtype, fit=fit, plan=PlanFields()))
    if progress is not None:
        progress(total, total)
    notes = [f"left out {n:,} matrix scenario{'s' if n > 1 else ''}: {msg}" for msg, n in left_out.items()]
    return results, notes


__all__ = ["Case", "expand", "evaluate", "matrix_size", "scenario_count", "case_name", "Resolver"]
