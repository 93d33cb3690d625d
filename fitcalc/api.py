"""fitcalc's commands as plain Python functions: the facade the CLI calls, one function per command.

Each resolves its inputs through an edge (``fitcalc.edges.inputs``, ``catalog``, ``ingest``), calls
the core and returns a pydantic result; none calls another command, and none prints. Scripts and
notebooks can call them directly:

    >>> from fitcalc import api
    >>> api.size("gpt-oss-20b").disk_bytes
    13761264768
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from fitcalc.core.sizing import SizeResult, size_model
from fitcalc.edges.ingest import SourceKind, resolve_model
from fitcalc.edges.measure.run import VERIFY_DEFAULT_TIMEOUT

def size(model: str, recipe: str | None = None, source: SourceKind = "auto", check: bool = False) -> SizeResult:
    """Parameters and on-disk bytes per tensor group of ``model`` in ``recipe``.

    ``model`` is a checkpoint folder, a .safetensors or .gguf file, a spec YAML, a bundled id or
    a Hub repo id (see ``fitcalc.edges.ingest.resolve_model``). With ``check``, the header-exact groups
    of a model read from files are compared with the architecture's derivation.
    """
    return size_model(resolve_model(model, source), recipe, check=check)


class ModelRow(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    display_name: str
    hf_repo: str | None
    aliases: list[str] = []  # other names MODEL takes (Ollama tags, Hub names of variants)
    family: str | None
    params_total: int
    params_active: int
    recipe_name: str
    disk_bytes: int
    coarse: bool


def models() -> list[ModelRow]:
    """The bundled model specs with their native sizes."""
    from fitcalc.edges import catalog

    rows = []
    for m in catalog.load_all_models():
        s = size_model(m)
        rows.append(ModelRow(id=m.id, display_name=m.display_name, hf_repo=m.hf_repo, aliases=list(m.aliases),
                             family=m.architecture.family if m.architecture else None,
                             params_total=s.params_total, params_active=s.params_active,
                             recipe_name=s.recipe_name, disk_bytes=s.disk_bytes, coarse=s.coarse))
    return rows


def fit(model: str, gpus: list[str] | None = None, context: int | None = None, batch: int = 1,
        engine: str | None = None, kv_dtype: str | None = None, recipe: str | None = None,
        source: SourceKind = "auto", prompt_tokens: int | None = None, calibrated: bool | None = None,
        store: str | None = None, engine_version: str | None = None, settings: dict[str, str] | None = None):
    """Fit verdicts, headroom, terms and max context for each GPU configuration.

    Without ``engine`` each GPU is answered for the engine its kind usually runs (llama.cpp on
    consumer and Apple GPUs, vLLM on datacenter GPUs: ``fitcalc.core.choose.fit_choices``), and the
    other engine's result follows, marked ``alternative``, where its verdict differs. A GGUF engine
    without ``recipe`` runs the GGUF type its library serves (``recipes.serving_recipe``).
    ``calibrated`` scales terms by residuals stored from engine logs of the same engine, version
    family and GPU family (``fitcalc reconcile --save``); ``None`` follows ``FITCALC_CALIBRATED``.
    ``settings``: the engine's own settings (``--set KEY=VALUE``; ``fitcalc.core.engines.SETTINGS``); without
    ``engine`` they choose it: only the suited engines that take every key answer."""
    from fitcalc.core.choose import DESKTOP_ENGINE, SERVER_ENGINE, fit_choices, is_auto, prepared_with_settings, \
        serving_context
    from fitcalc.core.errors import InputError
    from fitcalc.core.estimate import prepare
    from fitcalc.core.recipes import serving_recipe
    from fitcalc.core.spec import Workload
    from fitcalc.edges import catalog
    from fitcalc.edges.inputs import resolve_devices

    spec = resolve_model(model, source)
    ctx = serving_context(spec, context)
    if batch <= 0:
        raise InputError(f"--batch must be positive, got {batch}", hint="the number of concurrent sequences, e.g. 1")
    named = None if is_auto(engine) else catalog.load_engine(engine).id  # type: ignore[arg-type]
    profiles = {e: catalog.load_engine(e) for e in ([named] if named else [DESKTOP_ENGINE, SERVER_ENGINE])}
    defaults = {e: serving_recipe(spec, p.gguf_native, p.default_gguf_recipe) for e, p in profiles.items()}
    workload = Workload(context=ctx, batch=batch, kv_dtype=kv_dtype, prompt_tokens=prompt_tokens)
    devices, notes = resolve_devices(gpus)
    prepared: dict = {}
    results = []
    for dev, count in devices:
        first = None
        for eid, rid in fit_choices(spec, dev.segment, named, recipe, defaults):
            eng = profiles.get(eid) or profiles.setdefault(eid, catalog.load_engine(eid))
            key = (eng.id, rid)
            if key not in prepared:
                prepared[key] = prepared_with_settings(spec, rid, eng, workload, settings, named is not None)
            if prepared[key] is None:  # the settings are another engine's
                continue
            p, wl = prepared[key]
            r = _fit_on(p, dev, count, wl, notes, (calibrated, store, engine_version))
            if first is None:
                first = r
                results.append(r)
            elif r.verdict != first.verdict:
                results.append(r.model_copy(update={"alternative": True}))
    if not results and settings:  # no suited engine takes these keys: say so for the server engine
        from fitcalc.core.engines import check_settings

        check_settings(profiles[SERVER_ENGINE], settings)
    return results


def train(model: str, gpus: list[str] | None = None, source: SourceKind = "auto", **setup):
    """Fine-tuning memory per GPU configuration (``setup``: the fields of ``TrainSetup``, as
    `fitcalc train` names them)."""
    from fitcalc.core.estimate.training import prepare_training, train_result
    from fitcalc.edges import catalog
    from fitcalc.edges.inputs import resolve_devices, train_setup

    spec = resolve_model(model, source)
    prepared = prepare_training(spec, train_setup(setup), catalog.load_engine("torch"))
    devices, notes = resolve_devices(gpus)
    result = train_result(prepared, [(dev, n, dev.label) for dev, n in devices])
    return result.model_copy(update={"notes": [*result.notes, *notes, *spec.warnings]})


def verify_train(model: str, layers: int | str | None = 1, source: SourceKind = "auto", seed: int = 0, **setup):
    """Measure one training step (forward, backward, optimizer step) of MODEL's first ``layers`` layers on
    the CPU and compare with `fitcalc train`'s terms for the same layers: a TrainVerifyResult."""
    from fitcalc.edges import catalog
    from fitcalc.edges.inputs import train_setup
    from fitcalc.edges.measure.train_step import verify_train as run_step

    n = int(layers) if layers not in (None, "all") else 1
    return run_step(resolve_model(model, source), train_setup(setup), n, catalog.load_engine("torch"), seed)


def _fit_on(prepared, dev, count: int, workload, notes: list[str], calibration: tuple):
    """fit_device with this engine's stored calibration for the GPU family, and the notes attached."""
    import dataclasses

    from fitcalc.core.plan import fit_device
    from fitcalc.edges.inputs import calibration_for

    scales, info, why = calibration_for(prepared.engine.id, dev, *calibration)
    p = dataclasses.replace(prepared, scales=scales) if scales else prepared
    r = fit_device(p, dev, workload, count)
    extra = [*notes, *([why] if why else [])]
    update: dict = {"calibration": info} if info else {}
    if extra:
        update["warnings"] = [*r.warnings, *extra]
    return r.model_copy(update=update) if update else r


class GpuRow(BaseModel):
    """One catalog GPU as `fitcalc gpus` lists it. Bytes are exact ints; rates as published."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    display_name: str
    vendor: str
    aliases: list[str]
    marketed_memory: str
    memory_bytes: int  # as the driver reports it
    memory_reported: str
    reserved_bytes: int | None
    usable_bytes: int | None
    unified_memory: bool
    gpu_working_set_bytes: int | None
    budget_bytes: int  # what a plan checks against (per device)
    budget_basis: str
    bandwidth_bytes_per_s: int
    dense_tflops: dict[str, float]
    native_formats: list[str]
    compute_capability: str | None
    devices_per_package: int


def gpus() -> list[GpuRow]:
    """The bundled GPU profiles, one row each, sorted by vendor then id."""
    from fitcalc.edges import catalog

    rows = []
    for g in sorted(catalog.load_all_gpus(), key=lambda g: (g.vendor, g.id)):
        rows.append(GpuRow(
            id=g.id, display_name=g.display_name, vendor=g.vendor, aliases=list(g.aliases),
            marketed_memory=g.marketed_memory, memory_bytes=g.memory_bytes, memory_reported=g.memory_reported,
            reserved_bytes=g.reserved_bytes, usable_bytes=g.usable_bytes, unified_memory=g.unified_memory,
            gpu_working_set_bytes=g.gpu_working_set_bytes, budget_bytes=g.planning_budget_bytes,
            budget_basis=g.planning_budget_basis, bandwidth_bytes_per_s=g.bandwidth_bytes_per_s,
            dense_tflops=dict(g.dense_tflops), native_formats=list(g.native_formats),
            compute_capability=g.compute_capability, devices_per_package=g.devices_per_package,
        ))
    return rows


def detect_gpus():  # -> fitcalc.edges.hardware.LocalHardware
    """The GPUs and RAM of this machine, each GPU matched to a catalog profile when possible."""
    from fitcalc.edges.hardware import detect_local

    return detect_local()


def report(spec_path: str, yes: bool = False, progress=None):
    """Every scenario of a report spec (docs/report-spec.md) answered, with its assertions: a ``Report``.

    ``yes`` lets a matrix past the spec's ``max_scenarios`` run; ``progress(done, total)`` is called
    during the sweep.
    """
    from fitcalc.edges.report.load import build_report

    return build_report(spec_path, yes=yes, progress=progress)[2]


def check(spec_path: str, yes: bool = False, baseline: str | None = None, progress=None):
    """The report's assertions, and what grew or shrank since ``baseline`` (a JSON report): ``(Report, diff)``.

    A spec without any assertion is an error: a gate that asserts nothing would always pass.
    """
    from fitcalc.core.errors import InputError
    from fitcalc.core.report.baseline import compare
    from fitcalc.core.report.checks import has_assertions
    from fitcalc.edges.report.load import build_report, read_json_report

    old = read_json_report(baseline) if baseline else None
    spec, _, rep = build_report(spec_path, yes=yes, progress=progress)
    if not has_assertions(spec):
        raise InputError(f"{spec_path}: the spec has no assertions to check",
                         hint="add e.g. `assert: {must_fit: true}` (docs/report-spec.md)")
    if not rep.scenarios and not rep.training:  # every matrix row left out: a gate over nothing would pass
        why = f" ({rep.notes[0]})" if rep.notes else ""
        raise InputError(f"{spec_path}: no scenario could be evaluated{why}", hint="fix the spec so that at least one "
                         "scenario is answered: `fitcalc report` shows which were left out and why")
    return rep, (compare(old, rep.scenarios) if old is not None else None)


def reconcile(log: str, model: str | None = None, gpu: str | None = None, overrides: dict[str, str] | None = None,
              save: bool = False, store: str | None = None, device=None, source: SourceKind = "auto",
              max_bytes: int | None = None):
    """Read an engine's start-up log, predict each memory figure it prints, and (with ``save``)
    keep the residuals in the calibration store. ``device`` (a ``Device``) overrides ``gpu``."""
    from fitcalc.core.errors import InputError
    from fitcalc.core.reconcile.compare import reconcile as compare
    from fitcalc.core.reconcile.model import with_overrides
    from fitcalc.core.reconcile.parsers import parse_lines
    from fitcalc.edges import catalog
    from fitcalc.edges.inputs import log_device, log_model
    from fitcalc.edges.logfile import MAX_LOG_BYTES, LogReader

    reader = LogReader(log, max_bytes=max_bytes or MAX_LOG_BYTES)
    parsed = parse_lines(reader)
    read_notes = reader.summary()
    where = f" ({read_notes[0]})" if read_notes else ""
    if parsed.engine is None:
        raise InputError(f"{log}: no vLLM, llama.cpp or Ollama lines found{where}",
                         hint="reconcile reads the start-up logs of vLLM (V0, V1), llama.cpp/llama-server and Ollama")
    if not any(not f.engine_estimate and f.what != "file_size" for f in parsed.figures):
        raise InputError(f"{log}: a {parsed.engine} log without memory lines{where}",
                         hint="give the log from start-up until the engine is ready; the memory lines follow "
                              "the model load")
    parsed = with_overrides(parsed, overrides)
    spec, assumed = log_model(parsed, model, source)
    dev = log_device(parsed, gpu, device)
    result = compare(parsed, spec, catalog.load_engine(parsed.engine), dev, gpu_family=dev.family)
    result = result.model_copy(update={"log": str(log), "log_sha256": reader.sha256,
                                       "notes": [*read_notes, *result.notes],
                                       "assumptions": [*([assumed] if assumed else []), *result.assumptions]})
    if save:
        from fitcalc.edges.calibration_store import save_residuals

        result = save_residuals(result, reader.sha256, store, log_name=str(log).replace("\\", "/").split("/")[-1])
    return result


def plan(model: str, gpus: list[str] | None = None, ram: str | int | None = None,
         ram_bandwidth: str | int | None = None, engine: str | None = None, context: int | None = None,
         batch: int = 1, kv_dtype: str | None = None, recipe: str | None = None, tp: int | None = None,
         pp: int | None = None, ep: int | None = None, gpu_layers: int | None = None,
         cpu_moe: int | str | None = None, max_gpus: int | None = None, prompt_tokens: int | None = None,
         source: SourceKind = "auto", calibrated: bool | None = None, store: str | None = None,
         engine_version: str | None = None, settings: dict[str, str] | None = None):
    """What to run MODEL with on these GPUs: placement, limits, GPUs needed, speed and engine flags.
    ``settings``: the engine's own settings (``--set KEY=VALUE``), as ``fit`` takes them; their
    n_gpu_layers and n_cpu_moe fix the placement like ``gpu_layers`` and ``cpu_moe``.

    ``ram`` defaults to the detected total; ``cpu_moe`` takes a layer count or ``all``. With no
    ``engine`` (or ``auto``) the plan uses the engine the first GPU's kind usually runs (llama.cpp
    on consumer and Apple GPUs, vLLM on datacenter GPUs; with a GGUF ``recipe`` llama.cpp) and,
    when vLLM cannot hold the model on the GPUs given, llama.cpp with CPU offload. ``max_gpus`` bounds the
    GPU count search (``fitcalc.core.plan.DEFAULT_MAX_GPUS`` when None). ``calibrated`` scales each
    GPU's terms as ``fit`` does (per GPU family and per engine tried).
    """
    from fitcalc.core.choose import OFFLOAD_ENGINE, engine_for, fixed_layout, is_auto, suited_engines, \
        tries_offload_engine
    from fitcalc.core.errors import InputError
    from fitcalc.core.plan import DEFAULT_MAX_GPUS, Hardware, NoFitError, make_plan
    from fitcalc.edges import catalog
    from fitcalc.edges.inputs import detected, family_calibrations, host_of, resolve_devices

    spec = resolve_model(model, source)
    devices, notes = resolve_devices(gpus or None)
    if not gpus and not detected(notes):
        raise InputError("no GPU detected to plan for", hint="pass --gpu, e.g. --gpu rtx-4090 or --gpu h100-sxm:8")
    hw = Hardware(tuple(d for d, count in devices for _ in range(count)), host_of(ram, ram_bandwidth))
    # without --engine and --recipe: the engine the first GPU's kind usually runs, as fit answers
    # (the other suited one when only it takes the --set keys)
    if is_auto(engine) and recipe is None:
        suited = suited_engines(hw.devices[0].segment)
        taking = [e for e in suited if all(k in catalog.load_engine(e).settings for k in (settings or {}))]
        base = catalog.load_engine((taking or suited)[0])
    else:
        base = catalog.load_engine(engine_for(spec, engine, recipe))
    eng, context, batch, kv_dtype, gpu_layers, cpu_moe = _plan_settings(
        base, settings, context, batch, kv_dtype, gpu_layers, cpu_moe)
    fixed = fixed_layout(spec, tp, pp, ep, gpu_layers, cpu_moe)
    kwargs = dict(context=context, batch=batch, kv_dtype=kv_dtype, recipe=recipe, fixed=fixed,
                  max_gpus=DEFAULT_MAX_GPUS if max_gpus is None else max_gpus, prompt_tokens=prompt_tokens)

    def planned(engine_profile):
        """make_plan with this engine's calibrations for each GPU family given, attached to the plan."""
        scales, infos, why = family_calibrations(engine_profile.id, hw.devices, calibrated, store, engine_version)
        p = make_plan(spec, engine_profile, hw, **kwargs, family_scales=scales)
        return p.model_copy(update={"calibration": infos, "notes": [*p.notes, *why]}) if infos or why else p

    try:
        result, first_error = planned(eng), None
    except NoFitError as e:
        result, first_error = None, e
    if (result is None or not result.fits) and not settings and tries_offload_engine(engine, eng.id, fixed, recipe):
        fallback = catalog.load_engine(OFFLOAD_ENGINE)
        try:
            other = planned(fallback)
        except NoFitError:
            other = None
        if other is not None and other.fits:
            why = "does not fit" if result is None else f"needs {result.gpus_needed} × {result.gpus_needed_device}"
            result = other.model_copy(update={"notes": [
                f"{eng.display_name} {why} on the GPUs given; {fallback.display_name} fits with the layout below",
                *other.notes]})
    if result is None:
        raise first_error
    if notes and not gpus:
        result = result.model_copy(update={"notes": [*result.notes, *notes]})
    return result


def _plan_settings(eng, settings, context, batch, kv_dtype, gpu_layers, cpu_moe):
    """The engine profile and plan inputs with the user's engine settings in (settings win)."""
    if not settings:
        return eng, context, batch, kv_dtype, gpu_layers, cpu_moe
    from fitcalc.core.engines import apply_settings
    from fitcalc.core.spec import Workload

    ap = apply_settings(eng, Workload(context=context or 1, batch=batch, kv_dtype=kv_dtype), settings)
    s = dict(ap.settings)
    sets_context = any(k in s for k in ("max_model_len", "context_length", "num_ctx", "n_ctx"))
    return (ap.engine, ap.workload.context if sets_context else context, ap.workload.batch, ap.workload.kv_dtype,
            ap.gpu_layers if ap.gpu_layers is not None else gpu_layers,
            ap.cpu_moe if ap.cpu_moe is not None else cpu_moe)


def verify(model: str, device: str = "auto", layers: int | str | None = None, context: int | None = None,
           batch: int = 1, recipe: str | None = None, kv_dtype: str | None = None, include_embeddings: bool = True,
           tolerances: list[str] | None = None, record: str | None = None, force: bool = False, seed: int = 0,
           source: SourceKind = "auto", chunk: int | None = None, progress=None, tp: int = 1, pp: int = 1,
           ep: int = 1, launcher: str = "auto", timeout: float = VERIFY_DEFAULT_TIMEOUT):
    """Build the first ``layers`` decoder layers of MODEL in PyTorch with the recipe's real storage
    formats, run a prefill of ``context - 1`` tokens (``VERIFY_DEFAULT_CONTEXT`` when None) and one
    decode step on ``device``, and compare the measured memory with the prediction for the same
    stack, term by term.

    Returns a ``fitcalc.core.measure.result.VerifyResult``; ``exit_code`` is 0 (within tolerance),
    4 (a term outside its tolerance) or 5 (out of memory: does not fit, measured).

    With ``tp``/``pp``/``ep`` (or under torchrun) the stack runs as tp x pp ranks on
    torch.distributed, each measured against its share of the plan: a ``DistributedVerifyResult``.
    A rank that dies, hangs past ``timeout`` seconds or fails raises ``RankFailed`` (one line naming
    the rank and the cause). The work is in ``fitcalc.edges.measure.run``."""
    from fitcalc.edges.measure import run

    return run.verify(model, device, layers, context, batch, recipe, kv_dtype, include_embeddings, tolerances, record,
                      force, seed, source, chunk, progress, tp, pp, ep, launcher, timeout)
