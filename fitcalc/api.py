"""Every command as a plain Python function: resolve inputs through the edge, call the core. EDGE.

The CLI calls these and only renders; scripts and notebooks can call them directly:

    >>> from fitcalc import api
    >>> api.size("gpt-oss-20b").disk_bytes
    13761264768
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from fitcalc.ingest import SourceKind, resolve_model
from fitcalc.sizing import SizeResult, size_model


def size(model: str, recipe: str | None = None, source: SourceKind = "auto") -> SizeResult:
    """Parameters and on-disk bytes per tensor group of ``model`` in ``recipe``."""
    return size_model(resolve_model(model, source), recipe)


class ModelRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    display_name: str
    hf_repo: str | None
    family: str | None
    params_total: int
    params_active: int
    recipe_name: str
    disk_bytes: int
    coarse: bool


def models() -> list[ModelRow]:
    """The bundled model specs with their native sizes."""
    from fitcalc import catalog

    rows = []
    for m in catalog.load_all_models():
        s = size_model(m)
        rows.append(ModelRow(id=m.id, display_name=m.display_name, hf_repo=m.hf_repo,
                             family=m.architecture.family if m.architecture else None,
                             params_total=s.params_total, params_active=s.params_active,
                             recipe_name=s.recipe_name, disk_bytes=s.disk_bytes, coarse=s.coarse))
    return rows


# ---------------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------------

# Shown when no --gpu is given and no GPU is detected: the cards people ask about most.
DEFAULT_GPUS = ("rtx-4060-ti-16gb", "rtx-4090", "rtx-5090", "a100-80gb", "h100-sxm", "h200")


def pick_engine(engine: str | None, recipe_formats_gguf: bool) -> str:
    """``auto``: llama.cpp for GGUF recipes and files, vLLM otherwise (docs/cli.md, "Engines")."""
    if engine and engine.lower() != "auto":
        return engine
    return "llama.cpp" if recipe_formats_gguf else "vllm"


def _is_gguf_recipe(model, recipe) -> bool:
    from fitcalc.formats import get_format
    from fitcalc.recipes import resolve_recipe

    r = resolve_recipe(model, recipe)
    return any(get_format(f).gguf_type is not None for f in r.rules.values())


def resolve_devices(gpus: list[str] | None) -> tuple[list[tuple], list[str]]:
    """[(Device, count)] for the --gpu options; without any, the detected GPUs, else the defaults."""
    from fitcalc import catalog
    from fitcalc.hardware import detect_gpus, parse_gpu_option
    from fitcalc.spec import Device

    notes: list[str] = []
    targets = []
    if gpus:
        targets = [parse_gpu_option(g) for g in gpus]
    else:
        found, reason = detect_gpus()
        if found:
            by_profile: dict[str, list] = {}
            for d in found:
                by_profile.setdefault(d.profile.id if d.profile else d.name, []).append(d)
            for group in by_profile.values():
                d = group[0]
                targets.append(d.as_target(count=len(group)))
            notes.append("GPUs detected on this machine: " + ", ".join(t.label for t in targets))
        else:
            notes.append(f"no GPU detected ({reason}); showing popular GPUs (pass --gpu to choose)")
            targets = [parse_gpu_option(g) for g in DEFAULT_GPUS if catalog.resolve_gpu_id(g)]
    out = []
    for t in targets:
        dev = Device.from_profile(t.profile) if t.profile is not None else Device.from_budget(t.budget_bytes, t.label)
        if t.profile is not None and t.budget_bytes != dev.memory_bytes:
            dev = dev.model_copy(update={"memory_bytes": t.budget_bytes})
        out.append((dev, t.count))
    return out, notes


def fit(model: str, gpus: list[str] | None = None, context: int | None = None, batch: int = 1,
        engine: str | None = None, kv_dtype: str | None = None, recipe: str | None = None,
        source: SourceKind = "auto", prompt_tokens: int | None = None):
    """Fit verdicts, headroom, terms and max context for each GPU configuration."""
    from fitcalc import catalog
    from fitcalc.errors import InputError
    from fitcalc.estimate import prepare
    from fitcalc.plan import fit_device
    from fitcalc.spec import Workload

    spec = resolve_model(model, source)
    if context is not None and context <= 0:
        raise InputError(f"--context must be positive, got {context}", hint="e.g. --context 8192 or 128k")
    if batch <= 0:
        raise InputError(f"--batch must be positive, got {batch}", hint="the number of concurrent sequences, e.g. 1")
    eng = catalog.load_engine(pick_engine(engine, _is_gguf_recipe(spec, recipe)))
    limit = spec.architecture.max_position_embeddings if spec.architecture else None
    ctx = context if context is not None else min(DEFAULT_CONTEXT, limit or DEFAULT_CONTEXT)
    workload = Workload(context=ctx, batch=batch, kv_dtype=kv_dtype, prompt_tokens=prompt_tokens)
    prepared = prepare(spec, recipe, eng, kv_dtype)
    devices, notes = resolve_devices(gpus)
    results = []
    for dev, count in devices:
        r = fit_device(prepared, dev, workload, count)
        if notes:
            r = r.model_copy(update={"warnings": [*r.warnings, *notes]})
        results.append(r)
    return results


DEFAULT_CONTEXT = 8192  # fit's context when none is given (docs/cli.md): a common serving length


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------

VERIFY_DEFAULT_CONTEXT = 512  # verify's context when none is given: fast on a CPU (docs/verify.md)


def _verify_layers(layers: int | str | None, sigs: list[str], model: str) -> int:
    from fitcalc.errors import InputError
    from fitcalc.measure.compare import default_layers

    n = len(sigs)
    if layers is None:
        return default_layers(sigs)
    if isinstance(layers, str):
        text = layers.strip().lower()
        if text == "all":
            return n
        if not text.lstrip("-").isdigit():
            raise InputError(f"--layers must be a number or 'all', got {layers!r}", hint=f"1..{n} for {model}")
        layers = int(text)
    if layers < 1 or layers > n:
        raise InputError(f"--layers {layers} is out of range: {model} has {n} decoder layers",
                         hint=f"give 1..{n}, or 'all'")
    return layers


def _check_formats(spec, recipe) -> None:
    from fitcalc.errors import InputError
    from fitcalc.estimate.weights import _entry_format, tensor_inventory
    from fitcalc.formats import get_format
    from fitcalc.measure import BUILDABLE_FORMATS

    a = spec.architecture
    bad = set()
    for e in tensor_inventory(a):
        for layer in (e.layers or [None]):
            fid = _entry_format(e, recipe, layer, a.num_hidden_layers)
            if e.kind == "vector":
                continue
            if get_format(fid).id not in BUILDABLE_FORMATS:
                bad.add(fid)
    if bad:
        raise InputError(f"recipe {recipe.id!r} uses {', '.join(sorted(bad))}, which verify does not build",
                         hint="verify builds safetensors-style formats (bf16, fp8, fp8-block, mxfp4, nvfp4, int8, "
                              "int4-awq, int4-gptq, nf4); GGUF types run in llama.cpp")


def verify(model: str, device: str = "auto", layers: int | str | None = None, context: int | None = None,
           batch: int = 1, recipe: str | None = None, kv_dtype: str | None = None, include_embeddings: bool = True,
           tolerances: list[str] | None = None, record: str | None = None, force: bool = False, seed: int = 0,
           source: SourceKind = "auto", chunk: int | None = None, progress=None):
    """Build the first ``layers`` decoder layers of MODEL in PyTorch with the recipe's real storage
    formats, run a prefill of ``context - 1`` tokens and one decode step on ``device``, and compare
    the measured memory with the prediction for the same stack, term by term.

    Returns a ``fitcalc.measure.result.VerifyResult``; ``exit_code`` is 0 (within tolerance),
    4 (a term outside its tolerance) or 5 (out of memory: does not fit, measured)."""
    import datetime
    import json

    from fitcalc import catalog, exitcodes
    from fitcalc.errors import InputError
    from fitcalc.estimate import estimate, prepare, truncated_model
    from fitcalc.measure import check_buildable, compare as cmp
    from fitcalc.measure.result import DeviceReport, OomReport, Settings, VerifyResult, record_line
    from fitcalc.recipes import resolve_recipe
    from fitcalc.spec import Workload

    spec = resolve_model(model, source)
    check_buildable(spec)
    a = spec.architecture
    sigs = cmp.signatures(a.layer_kinds(), set(a.dense_layer_indices()))
    k = _verify_layers(layers, sigs, spec.id)
    ctx = VERIFY_DEFAULT_CONTEXT if context is None else context
    if ctx < 2:
        raise InputError(f"--context must be at least 2 (a prefill and one decode step), got {ctx}",
                         hint="e.g. --context 512")
    if batch < 1:
        raise InputError(f"--batch must be positive, got {batch}", hint="e.g. --batch 1")
    if chunk is not None and chunk < 0:
        raise InputError(f"chunk must be >= 0, got {chunk}")
    overrides = dict(cmp.parse_tolerance(t) for t in (tolerances or []))
    eng = catalog.load_engine("torch")
    r = resolve_recipe(spec, recipe)
    _check_formats(spec, r)
    chunk_tokens = eng.working.chunk_tokens if chunk is None else chunk
    workload = Workload(context=ctx, batch=batch, kv_dtype=kv_dtype, prompt_tokens=ctx - 1, chunk_tokens=chunk_tokens)
    prepared = prepare(spec, r, eng, kv_dtype, layers=k, include_embeddings=include_embeddings)

    from fitcalc.measure import harness  # torch from here on

    info = harness.resolve_device(device)
    dev = harness.prediction_device(info)
    predicted = estimate(prepared, dev, workload)
    need = predicted.total_bytes - predicted.by_prefix("overhead.cuda_context")  # the context exists already
    if need > info.available_bytes and not force:
        from fitcalc.units import format_bytes

        where = "free on " + info.name if info.kind != "cpu" else "of RAM available"
        raise InputError(f"the {k}-layer stack of {spec.id} is predicted to need {format_bytes(need)} "
                         f"({need:,} B) but only {format_bytes(info.available_bytes)} is {where}",
                         hint="build fewer --layers, a smaller --context or --batch, or pass --force to try anyway")
    run = harness.run(truncated_model(spec, k), r, eng, info, batch=batch, context=ctx, kv_dtype=kv_dtype,
                      include_embeddings=include_embeddings, chunk=chunk_tokens, seed=seed, progress=progress)
    full = estimate(prepare(spec, r, eng, kv_dtype, include_embeddings=include_embeddings), dev, workload)
    device_report = DeviceReport(kind=info.kind, name=info.name, total_bytes=info.total_bytes,
                                 available_bytes=info.available_bytes, driver=info.driver,
                                 cuda_version=info.cuda_version, torch_version=info.torch_version,
                                 sm_count=info.sm_count, compute_capability=info.compute_capability, host=info.host)
    settings = Settings(layers=k, layers_total=a.num_hidden_layers, context=ctx, batch=batch, prompt_tokens=ctx - 1,
                        chunk_tokens=chunk_tokens, kv_dtype=prepared.kv_fmt.id if prepared.kv_fmt else "?",
                        recipe=r.id, include_embeddings=include_embeddings, seed=seed,
                        engine=f"{eng.id} ({eng.version})")
    notes = list(run.notes)
    if ctx > a.max_position_embeddings:
        notes.append(f"--context {ctx:,} exceeds {spec.id}'s maximum of {a.max_position_embeddings:,} tokens; "
                     "memory is measured all the same")
    if run.oom is not None:
        empty = cmp.Measurement(device=info.name, device_kind=info.kind, terms=[], peak_bytes=0, peak_how="")
        comp = cmp.compare(predicted, empty, overrides)
        rows = [t.model_copy(update={"how": "not measured: out of memory"}) for t in comp.terms]
        peak = comp.peak.model_copy(update={"measured_bytes": None, "error": None, "ok": None,
                                            "how": f"out of memory during {run.oom.phase}"})
        oom = OomReport(phase=run.oom.phase, live_bytes=run.oom.live_bytes, predicted_bytes=predicted.total_bytes,
                        message=run.oom.message, readings=run.oom.readings)
        result = VerifyResult(model=spec.id, source=model, display_name=spec.display_name, device=device_report, settings=settings,
                              terms=rows, working=None, peak=peak, extrapolation=None, phases=run.phases,
                              readings=run.readings, timings=run.timings, ok=False, failures=["oom"], oom=oom,
                              notes=notes, exit_code=exitcodes.VERIFY_OOM)
    else:
        comp = cmp.compare(predicted, run.measurement, overrides)
        ext = cmp.extrapolate(run.measurement, full, sigs)
        result = VerifyResult(model=spec.id, source=model, display_name=spec.display_name, device=device_report, settings=settings,
                              terms=comp.terms, working=comp.working, peak=comp.peak, extrapolation=ext,
                              phases=run.phases, readings=run.readings, timings=run.timings, ok=comp.ok,
                              failures=comp.failures, oom=None, notes=notes,
                              exit_code=exitcodes.OK if comp.ok else exitcodes.VERIFY_OUT_OF_TOLERANCE)
    if record:
        date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        try:
            with open(record, "a", encoding="utf-8") as f:
                f.write(json.dumps(record_line(result, date), ensure_ascii=False) + "\n")
        except OSError as e:
            raise InputError(f"cannot append to --record {record}: {e.strerror}", hint="check the path") from None
    return result
