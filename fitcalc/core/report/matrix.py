"""A report spec expanded to scenarios, each answered by the fit machinery. CORE.

``expand`` turns the matrix lists and the named scenarios into ``Case`` rows (pure, no lookups).
``evaluate`` answers every case with ``fitcalc.core.plan.fit_device``, the function behind ``fitcalc fit``,
doing each piece of work once per sweep rather than once per row:

* a model is resolved, and a GPU entry turned into a ``Device``, once (through the ``Resolver`` the
  edge passes in: catalogs and files are not this module's business);
* ``prepare`` (tensor inventory, weight bytes, KV layout) runs once per (model, recipe, engine, KV dtype);
* the largest context that fits does not depend on the context asked for, so it is solved once per
  (prepared model, GPU entry, batch, prompt length) and handed to ``fit_device``.

Each row also gets what `fitcalc plan` says about the same configuration on its GPUs without CPU
offload (``PlanFigures``, with plan's own functions): the placement ``find_layout`` picks, the
decode speed and prefill time on it (``speed_at``), the largest batch at the row's context
(``solve_max_batch``) and the GPUs of its type needed (``solve_gpu_count``). Work that does not
depend on the row is shared: the speed's per-placement setup once per (prepared model, GPU entry,
placement); the largest batch does not depend on the row's batch, and never grows with the context,
so the answer at a shorter context caps the search at a longer one; the GPUs needed do not depend on
the GPU count, and never fall as the context grows, so the search starts at the shorter context's
answer. A raw budget has no bandwidth: its speed is "not available" and is not computed.

A 10,000-row sweep takes a few seconds on one core (benchmarks/report_sweep.py); most of it is
building each row's explained terms, which the verdict's uncertainty and the reports need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING, Protocol

from fitcalc.core.errors import InputError
from fitcalc.core.estimate.placement import Layout
from fitcalc.core.report.result import Origin, PlanFields, ScenarioResult
from fitcalc.core.report.spec import HARD_MAX_SCENARIOS, ReportSpec, gpu_text, model_source, model_text

if TYPE_CHECKING:
    from fitcalc.core.engines import EngineProfile
    from fitcalc.core.spec import Device, ModelSpec


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
    # engine id -> settings (defaults.engine_settings, a scenario's own settings over them for its engine
    # under the key "*"): applied once the engine is resolved (fitcalc.core.engines.apply_settings)
    settings: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()


def _case_settings(defaults: dict, own: dict | None = None) -> tuple:
    out = [(eid, tuple(sorted(v.items()))) for eid, v in sorted(defaults.items())]
    if own:
        out.append(("*", tuple(sorted(own.items()))))
    return tuple(out)


def settings_for(c: Case, engine_id: str) -> dict[str, object]:
    """The settings ``c`` gives its resolved engine: the defaults' for that engine, then its own."""
    table = dict(c.settings)
    return {**dict(table.get(engine_id, ())), **dict(table.get("*", ()))}


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
    if spec.models is None and not spec.scenarios and not spec.training:
        raise InputError("the spec has no scenarios",
                         hint="give models, gpus and contexts (a matrix), a list of named scenarios, or training "
                              "scenarios (docs/report-spec.md)")
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
    if total > HARD_MAX_SCENARIOS:
        raise InputError(f"the spec expands to {total:,} scenarios, over the limit of {HARD_MAX_SCENARIOS:,} per report "
                         "(--yes does not lift it)", hint="split the matrix into several specs (docs/cli.md, Limits)")
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
                              ctx, batch, engine, recipe, kv, d.prompt_tokens, _case_settings(d.engine_settings)))
    for s in spec.scenarios:
        ctx = s.context if s.context is not None else d.context
        assert ctx is not None  # ReportSpec's validator guarantees one of them
        cases.append(Case(s.name, "scenario", model_text(s.model), model_source(s.model), gpu_text(s.gpu), ctx,
                          s.batch or d.batch, s.engine or d.engine, s.recipe or d.recipe, s.kv_dtype or d.kv_dtype,
                          s.prompt_tokens if s.prompt_tokens is not None else d.prompt_tokens,
                          _case_settings(d.engine_settings, s.settings)))
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


class PlanFigures:
    """`fitcalc plan`'s figures for report rows, sharing work between rows (see the module docstring).

    For one row the answer is what ``make_plan`` computes for the same prepared model, GPUs, context
    and batch with CPU offload off: the same ``find_layout``, ``solve_max_batch``, ``speed_at`` and
    ``solve_gpu_count``; the caches only skip work whose answer is already known.
    """

    def __init__(self, max_gpus: int | None = None):
        from fitcalc.core.plan import DEFAULT_MAX_GPUS

        self.max_gpus = max_gpus or DEFAULT_MAX_GPUS
        self._setups: dict[tuple, object] = {}
        self._batches: dict[tuple, dict[int, int | None]] = {}
        self._needed: dict[tuple, dict[int, int | None]] = {}

    def gpus_needed(self, pkey: tuple, p, device: Device, workload, bound: int) -> int | None:
        from fitcalc.core.plan import solve_gpu_count

        key = (pkey, device.label, device.memory_bytes, device.profile_id, workload.batch, workload.prompt_tokens,
               bound)
        seen = self._needed.setdefault(key, {})
        ctx = workload.context
        if ctx in seen:
            return seen[ctx]
        start = 1
        for c, n in seen.items():
            if c <= ctx:
                if n is None:  # more than `bound` at a shorter context: more here too
                    seen[ctx] = None
                    return None
                start = max(start, n)
        found = solve_gpu_count(p, device, workload, bound, None, start)
        seen[ctx] = found[0] if found else None
        return seen[ctx]

    def max_batch(self, key: tuple, p, hw, asg, workload) -> int | None:
        """``solve_max_batch``'s answer. Its search is narrowed first, never changing the answer since
        ``fits`` is monotone in the batch: the answer at a shorter context caps it, the row's batch is
        known to fit, and a guess ``g`` (``_batch_guess``) is tried with ``g + 1``: fits at g and not
        at g + 1 is the answer; otherwise g bounds the bisection from one side."""
        from fitcalc.core.plan import MAX_BATCH_BOUND, fits_on, solve_max_batch

        seen = self._batches.setdefault(key, {})
        ctx = workload.context
        if ctx in seen:
            return seen[ctx]
        cap = min([b for c, b in seen.items() if c <= ctx and b is not None] or [MAX_BATCH_BOUND])
        known = workload.batch if workload.batch <= cap else None  # the placement was found at this batch

        def ok(b: int) -> bool:
            return fits_on(p, hw, asg, workload.model_copy(update={"batch": b}))

        guess = _batch_guess(p, hw, asg, workload) if known is not None and known < cap else None
        if guess is not None:
            g = min(max(guess, known), cap)  # type: ignore[type-var]
            if not ok(g):
                cap = g - 1  # g > known here: known fits
            elif g == cap or not ok(g + 1):
                seen[ctx] = g
                return g
            else:
                known = g + 1
        seen[ctx] = solve_max_batch(p, hw, asg, workload, cap, known)
        return seen[ctx]

    def fits_at_batch(self, key: tuple, workload) -> bool | None:
        """Whether ``workload`` fits the placement of ``key``, from a largest batch already solved at
        its context (fits iff its batch is at most that); None when none is known yet."""
        seen = self._batches.get(key)
        if seen is None or workload.context not in seen:
            return None
        mb = seen[workload.context]
        return mb is not None and workload.batch <= mb

    def fields(self, pkey: tuple, gpu: str, p, device: Device, count: int, workload, fit) -> PlanFields:
        from fitcalc.core.plan import (MAX_BATCH_BOUND, Hardware, assignment, find_layout, layout_choice, speed_at,
                                  speed_setup)

        bound = max(self.max_gpus, count)
        base: dict = {"max_gpus": bound, "max_batch_bound": MAX_BATCH_BOUND,
                      "prompt_tokens": workload.prompt_tokens or workload.context}
        hw = Hardware(tuple(device for _ in range(count)))
        # fit's verdict decides whether the row runs at all; then plan's placement on the same GPUs.
        # On one GPU find_layout has one candidate, the whole model (Layout()), so once the largest
        # batch on it is known at this context, whether this row's batch fits is known too.
        found = None
        if fit.fits:
            one = self.fits_at_batch((pkey, gpu, Layout(), 1, workload.prompt_tokens), workload) if count == 1 \
                else None
            if one is None:
                found = find_layout(p, hw, workload, None, offload=False)
            elif one:
                found = (Layout(), 1)
        if found is not None and found[1] == 1 and count == 1:
            # solve_gpu_count's first try is this very layout on one GPU, and it fits
            base["gpus_needed"] = 1
        else:
            base["gpus_needed"] = self.gpus_needed(pkey, p, device, workload, bound)
        if found is None:
            where = f"{count} × {device.label}"
            note = (f"does not fit {where}: no speed" if not fit.fits else
                    f"`fitcalc plan` finds no placement on {where} without CPU offload: no speed")
            return PlanFields.model_construct(**base, speed_status="no fit", speed_note=note)
        lay, n_used = found
        sub = Hardware(hw.devices[:n_used])
        asg = assignment(p, sub.devices, lay)
        desc = layout_choice(p, lay, n_used).description + (f" (uses {n_used} of {count} GPUs)"
                                                            if n_used < count else "")
        base.update(layout=desc, max_batch=self.max_batch((pkey, gpu, lay, n_used, workload.prompt_tokens), p, sub,
                                                          asg, workload))
        if any(not d.bandwidth_bytes_per_s for d in sub.devices):
            why = ("a raw budget has no memory bandwidth" if device.is_budget
                   else f"{device.label}'s memory bandwidth is unknown")
            return PlanFields.model_construct(**base, speed_status="unavailable", speed_note=(
                f"not available: {why}; name a catalog GPU (rtx-4090, h100-sxm ...) for a speed estimate"))
        skey = (pkey, gpu, lay, n_used)
        setup = self._setups.get(skey)
        if setup is None:
            setup = self._setups[skey] = speed_setup(p, sub, asg, lay)
        prompt = workload.prompt_tokens or workload.context
        s = speed_at(p, setup, workload, depth=prompt, prompt=prompt)  # type: ignore[arg-type]
        if s.decode_tokens_per_s is None:
            return PlanFields.model_construct(**base, prefill_s=s.prefill_s, speed_status="unavailable",
                              speed_note="not available: " + ("; ".join(s.notes) or "no speed estimate"))
        return PlanFields.model_construct(**base, decode_tokens_per_s=s.decode_tokens_per_s,
                          decode_tokens_per_s_total=s.decode_tokens_per_s_total, prefill_s=s.prefill_s,
                          speed_status="estimated")


def _batch_guess(p, hw, asg, workload) -> int | None:
    """Where the largest batch should be if each device's footprint grew linearly with the batch:
    B + ⌊(memory − need(B)) / (need(B + 1) − need(B))⌋, the smallest over the devices. Only a
    starting point for ``PlanFigures.max_batch``, which checks it (padding and per-batch buffers
    make the growth uneven)."""
    from fitcalc.core.estimate import required_bytes

    b = workload.batch
    nxt = workload.model_copy(update={"batch": b + 1})
    best = None
    seen: set[tuple] = set()
    for d, sh in zip(hw.devices, asg.gpus):
        if (id(d), sh.key) in seen:
            continue
        seen.add((id(d), sh.key))
        n0 = required_bytes(p, d, workload, share=sh)
        slope = required_bytes(p, d, nxt, share=sh) - n0
        if slope <= 0:
            continue
        g = b + (d.memory_bytes - n0) // slope
        best = g if best is None else min(best, g)
    return best


def evaluate(cases: list[Case], resolver: Resolver, progress: Progress | None = None,
             every: int = 200) -> tuple[list[ScenarioResult], list[str]]:
    """Results for ``cases`` in order, and notes on matrix rows left out.

    A matrix row whose engine does not take its KV dtype (llama.cpp and ``fp8``) is left out with a
    note, since crossing two lists makes such pairs; a named scenario asking for one is an error.
    """
    from fitcalc.core.estimate import prepare
    from fitcalc.core.plan import fit_device, solve_fit_max_context
    from fitcalc.core.spec import Workload

    models: dict[tuple[str, str], ModelSpec] = {}
    devices: dict[str, tuple[Device, int]] = {}
    prepared: dict[tuple, object] = {}
    max_ctx: dict[tuple, int | None] = {}
    planner = PlanFigures()
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
        pkey = (mkey, c.recipe, c.engine, c.kv_dtype, c.settings)
        p = prepared.get(pkey)
        if p is None:
            engine = _with_settings(resolver.engine(spec, c.recipe, c.engine), c)
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
            max_ctx[ckey] = solve_fit_max_context(p, device, workload, count)  # type: ignore[arg-type]
        fit = fit_device(p, device, workload, count, max_context=max_ctx[ckey])  # type: ignore[arg-type]
        plan = planner.fields(pkey, c.gpu, p, device, count, workload, fit)
        results.append(ScenarioResult.model_construct(
            name=c.name, origin=c.origin, model=c.model, gpu=c.gpu, engine_requested=c.engine,
            recipe_requested=c.recipe, kv_dtype_requested=c.kv_dtype, fit=fit, plan=plan))
    if progress is not None:
        progress(total, total)
    notes = [f"left out {n:,} matrix scenario{'s' if n > 1 else ''}: {msg}" for msg, n in left_out.items()]
    return results, notes


def _with_settings(engine: EngineProfile, c: Case) -> EngineProfile:
    """The engine with the case's settings in; settings that place layers belong to `fitcalc plan`."""
    from fitcalc.core.engines import apply_settings
    from fitcalc.core.spec import Workload

    settings = settings_for(c, engine.id)
    if not settings:
        return engine
    ap = apply_settings(engine, Workload(context=c.context, batch=c.batch), settings)
    moved = [k for k in settings if k in ("max_model_len", "context_length", "num_ctx", "n_ctx", "parallel",
                                          "kv_cache_dtype", "n_gpu_layers", "n_cpu_moe")]
    if moved:
        raise InputError(f"scenario {c.name!r}: settings {', '.join(moved)} are report fields or placements",
                         hint="give context, batch and kv_dtype as the spec's own fields; placements with fitcalc plan")
    return ap.engine


__all__ = ["Case", "PlanFigures", "expand", "evaluate", "matrix_size", "scenario_count", "case_name", "Resolver"]
