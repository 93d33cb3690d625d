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


def size(model: str, recipe: str | None = None, source: SourceKind = "auto", check: bool = False) -> SizeResult:
    """Parameters and on-disk bytes per tensor group of ``model`` in ``recipe``.

    ``model`` is a checkpoint folder, a .safetensors or .gguf file, a spec YAML, a bundled id or
    a Hub repo id (see ``fitcalc.ingest.resolve_model``). With ``check``, the header-exact groups
    of a model read from files are compared with the architecture's derivation.
    """
    return size_model(resolve_model(model, source), recipe, check=check)


class ModelRow(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

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
    from fitcalc.hardware import detect_local, parse_gpu_option
    from fitcalc.spec import Device

    notes: list[str] = []
    out: list[tuple] = []
    if gpus:
        targets = [parse_gpu_option(g) for g in gpus]
    else:
        local = detect_local()
        if local.gpus:
            # identical GPUs are one configuration of `count` devices
            groups: dict[tuple, list] = {}
            for d in local.gpus:
                groups.setdefault((d.matched_profile_id or d.name, d.budget_bytes), []).append(d)
            targets = []
            for (pid, budget), group in groups.items():
                d = group[0]
                if d.matched_profile_id:
                    t = parse_gpu_option(f"{d.matched_profile_id}:{len(group)}")
                    targets.append(t.model_copy(update={"budget_bytes": budget, "label": d.name}))
                else:
                    out.append((Device.from_budget(budget, d.name), len(group)))
            notes.append("GPUs detected on this machine: " + ", ".join(f"{len(g)} × {g[0].name}"
                                                                        for g in groups.values()))
        else:
            notes.append("no GPU detected on this machine; showing popular GPUs (choose with --gpu)")
            targets = [parse_gpu_option(g) for g in DEFAULT_GPUS if catalog.resolve_gpu_id(g)]
    for t in targets:
        if t.profile is not None:
            dev = Device.from_profile(t.profile)
            if t.budget_bytes != dev.memory_bytes:
                dev = dev.model_copy(update={"memory_bytes": t.budget_bytes})
        else:
            dev = Device.from_budget(t.budget_bytes)  # per-device label; the count is shown beside it
        out.append((dev, t.count))
    return out, notes


def fit(model: str, gpus: list[str] | None = None, context: int | None = None, batch: int = 1,
        engine: str | None = None, kv_dtype: str | None = None, recipe: str | None = None,
        source: SourceKind = "auto", prompt_tokens: int | None = None, calibrated: bool | None = None,
        store: str | None = None, engine_version: str | None = None):
    """Fit verdicts, headroom, terms and max context for each GPU configuration.

    ``calibrated`` scales terms by residuals stored from engine logs of the same engine, version
    family and GPU family (``fitcalc reconcile --save``); ``None`` follows ``FITCALC_CALIBRATED``."""
    import dataclasses

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
        scales, info, why = calibration_for(eng.id, dev, calibrated, store, engine_version)
        p = dataclasses.replace(prepared, scales=scales) if scales else prepared
        r = fit_device(p, dev, workload, count)
        extra = [*notes, *([why] if why else [])]
        update: dict = {"calibration": info} if info else {}
        if extra:
            update["warnings"] = [*r.warnings, *extra]
        if update:
            r = r.model_copy(update=update)
        results.append(r)
    return results


DEFAULT_CONTEXT = 8192  # fit's context when none is given (docs/cli.md): a common serving length
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
    from fitcalc import catalog

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


def detect_gpus():  # -> fitcalc.hardware.LocalHardware
    """The GPUs and RAM of this machine, each GPU matched to a catalog profile when possible."""
    from fitcalc.hardware import detect_local

    return detect_local()


# ---------------------------------------------------------------------------------------------
# report and check
# ---------------------------------------------------------------------------------------------


def report(spec_path: str, yes: bool = False, progress=None):
    """Every scenario of a report spec (docs/report-spec.md) answered, with its assertions: a ``Report``.

    ``yes`` lets a matrix past the spec's ``max_scenarios`` run; ``progress(done, total)`` is called
    during the sweep.
    """
    from fitcalc.report.load import build_report

    return build_report(spec_path, yes=yes, progress=progress)[2]


def check(spec_path: str, yes: bool = False, baseline: str | None = None, progress=None):
    """The report's assertions, and what grew or shrank since ``baseline`` (a JSON report): ``(Report, diff)``.

    A spec without any assertion is an error: a gate that asserts nothing would always pass.
    """
    from fitcalc.errors import InputError
    from fitcalc.report.baseline import compare
    from fitcalc.report.checks import has_assertions
    from fitcalc.report.load import build_report, read_json_report

    old = read_json_report(baseline) if baseline else None
    spec, _, rep = build_report(spec_path, yes=yes, progress=progress)
    if not has_assertions(spec):
        raise InputError(f"{spec_path}: the spec has no assertions to check",
                         hint="add e.g. `assert: {must_fit: true}` (docs/report-spec.md)")
    return rep, (compare(old, rep.scenarios) if old is not None else None)


# ---------------------------------------------------------------------------------------------
# calibration (fit, plan)
# ---------------------------------------------------------------------------------------------


def calibration_for(engine_id: str, device, calibrated: bool | None = None, store: str | None = None,
                    engine_version: str | None = None):
    """Term scales from the calibration store for ``engine_id`` on ``device``'s GPU family.

    Returns ``(scales, info, note)``: ``scales`` for ``fitcalc.estimate.prepare``; ``info`` to attach
    to the result (``None`` when nothing applies); ``note`` says why nothing applies. ``calibrated``
    ``None`` follows the ``FITCALC_CALIBRATED`` environment variable. ``plan`` uses it the same way.
    """
    from fitcalc import calibration, calibration_store

    if calibrated is None:
        calibrated = calibration_store.calibrated_by_env()
    if not calibrated:
        return (), None, None
    path = calibration_store.store_path(store)
    entries = calibration_store.load(path).entries
    family = getattr(device, "family", None)
    chosen, version = calibration.choose(entries, engine_id, family, engine_version)
    if not chosen:
        why = "a raw budget has no GPU family" if family is None else f"no residuals for {engine_id}"
        if family is not None:
            why += f" on {family}" + (f" (version {engine_version})" if engine_version else "")
        return (), None, f"calibration requested but not applied: {why} (store: {path})"
    info = calibration.info(chosen, engine_id, version, family, str(path))
    return calibration.scales(info.factors), info, None


# ---------------------------------------------------------------------------------------------
# reconcile
# ---------------------------------------------------------------------------------------------


def _model_candidates(settings) -> list[str]:
    """Names a log gives its model, turned into ids the catalog may know (most literal first)."""
    import re

    out: list[str] = []
    for raw in (settings.model, settings.gguf_name, settings.model_path):
        if not raw:
            continue
        base = raw.rstrip("/").replace("\\", "/").split("/")[-1]
        stem = re.sub(r"\.gguf$", "", base, flags=re.I)
        stem = re.sub(r"[-._](?:i?q\d\w*|mxfp4\w*|f16|bf16|fp16|f32)$", "", stem, flags=re.I)
        norm = re.sub(r"[\s_]+", "-", stem.strip()).lower()
        no_vendor = re.sub(r"^meta-", "", norm)
        for cand in (raw, base, stem, norm, no_vendor, re.sub(r"-(instruct|chat|it)$", "", no_vendor)):
            # a path on the machine that wrote the log names nothing here: only its last part is tried
            if cand and cand not in out and not cand.startswith(("/", ".", "~")) and "\\" not in cand:
                out.append(cand)
    return out


def _log_model(parsed, model: str | None, source: SourceKind):
    from fitcalc import catalog
    from fitcalc.errors import InputError

    if model:
        return resolve_model(model, source)
    names = _model_candidates(parsed.settings)
    for name in names:
        mid = catalog.resolve_model_id(name)
        if mid:
            return catalog.load_model(mid)
    said = next((n for n in (parsed.settings.model, parsed.settings.gguf_name, parsed.settings.model_path) if n),
                None)
    what = f"the log's model {said!r}" if said else "the log's model (it does not name one)"
    raise InputError(f"cannot map {what} to a model spec",
                     hint="pass --model (a bundled id, a Hub name, or a spec YAML path)")


def _log_device(parsed, gpu: str | None, device=None):
    """The GPU the prediction plans against: ``device``, else --gpu, else what the log states. When
    the log prints the GPU's total (vLLM 0.6-0.8), that total is used: it is CUDA's total, with the
    driver's reserve already outside it."""
    from fitcalc import catalog
    from fitcalc.errors import InputError
    from fitcalc.spec import Device
    from fitcalc.units import format_bytes

    st = parsed.settings
    dev = device
    if dev is None and gpu:
        devices, _ = resolve_devices([gpu])
        dev, count = devices[0]
        if count > 1 and st.tp is None and parsed.engine == "vllm":
            st.tp = count
            st.sources["tp"] = f"--gpu {gpu}"
    elif dev is None and st.gpu_name and catalog.resolve_gpu_id(st.gpu_name):
        dev = Device.from_profile(catalog.load_gpu(st.gpu_name))
    total = st.gpu_total_bytes
    if total is not None:
        label = (dev.label if dev is not None else "GPU") + f" ({format_bytes(total)} total, from the log)"
        base = dev.model_dump() if dev is not None else {}
        base.update(label=label, memory_bytes=total, reserved_bytes=0, is_budget=False)
        return Device(**base)
    if dev is not None:
        return dev
    if parsed.engine == "vllm":
        raise InputError("the log does not state the GPU's memory, and vLLM's KV capacity depends on it",
                         hint="pass --gpu (an id such as a100-40gb, or the GPU's total such as 40960MiB)")
    free = st.gpu_free_bytes
    name = st.gpu_name or "GPU"
    if free:
        return Device.from_budget(free, f"{name} ({format_bytes(free)} free at load, from the log)")
    return Device.from_budget(1 << 40, f"{name} (memory unknown: pass --gpu for a verdict)")


def _apply_overrides(parsed, overrides: dict[str, str] | None):
    from fitcalc.errors import InputError
    from fitcalc.reconcile.model import LogSettings

    if not overrides:
        return parsed
    data = parsed.settings.model_dump()
    sources = dict(data.pop("sources"))
    known = sorted(k for k in LogSettings.model_fields if k not in ("sources", "kv_cells"))
    for key, value in overrides.items():
        if key not in known:
            raise InputError(f"--set {key}: not a setting reconcile knows", hint="one of: " + ", ".join(known))
        data[key] = value
        sources[key] = f"--set {key}={value}"
    try:
        settings = LogSettings.model_validate({**data, "sources": sources})
    except Exception as e:  # pydantic's ValidationError, as one line
        errors = e.errors() if hasattr(e, "errors") else [{"loc": ("?",), "msg": str(e)}]
        first = errors[0]
        raise InputError(f"--set {first['loc'][0]}: {first['msg']}", hint="e.g. --set n_cpu_moe=99") from None
    return parsed.model_copy(update={"settings": settings})


def reconcile(log: str, model: str | None = None, gpu: str | None = None, overrides: dict[str, str] | None = None,
              save: bool = False, store: str | None = None, device=None, source: SourceKind = "auto",
              max_bytes: int | None = None):
    """Read an engine's start-up log, predict each memory figure it prints, and (with ``save``)
    keep the residuals in the calibration store. ``device`` (a ``Device``) overrides ``gpu``."""
    from fitcalc import catalog
    from fitcalc.errors import InputError
    from fitcalc.reconcile.compare import reconcile as compare
    from fitcalc.reconcile.parsers import parse_lines
    from fitcalc.reconcile.read import MAX_LOG_BYTES, LogReader

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
    parsed = _apply_overrides(parsed, overrides)
    spec = _log_model(parsed, model, source)
    dev = _log_device(parsed, gpu, device)
    engine = catalog.load_engine(parsed.engine)
    result = compare(parsed, spec, engine, dev, gpu_family=dev.family)
    result = result.model_copy(update={"log": str(log), "log_sha256": reader.sha256,
                                       "notes": [*read_notes, *result.notes]})
    if save:
        from fitcalc import calibration, calibration_store

        path = calibration_store.store_path(store)
        entries = calibration.entries_from(result, reader.sha256, calibration_store.today(),
                                           log_name=str(log).replace("\\", "/").split("/")[-1])
        added, skipped = calibration_store.append(path, entries)
        note = []
        if skipped:
            note.append(f"{skipped} residual(s) of this log were already in the store")
        if result.gpu_family is None:
            note.append("no GPU family known (pass --gpu with a catalog id): fit cannot match these residuals")
        result = result.model_copy(update={"saved": added, "store": str(path), "notes": [*result.notes, *note]})
    return result


# ---------------------------------------------------------------------------------------------
# plan
# ---------------------------------------------------------------------------------------------



def detect_ram_bytes() -> int | None:
    """Total system RAM (psutil), or None when psutil is missing."""
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().total)


def plan(model: str, gpus: list[str] | None = None, ram: str | int | None = None,
         ram_bandwidth: str | int | None = None, engine: str | None = None, context: int | None = None,
         batch: int = 1, kv_dtype: str | None = None, recipe: str | None = None, tp: int | None = None,
         pp: int | None = None, ep: int | None = None, gpu_layers: int | None = None,
         cpu_moe: int | str | None = None, max_gpus: int | None = None, prompt_tokens: int | None = None,
         source: SourceKind = "auto", calibrated: bool | None = None, store: str | None = None,
         engine_version: str | None = None):
    """What to run MODEL with on these GPUs: placement, limits, GPUs needed, speed and engine flags.

    ``ram`` defaults to the detected total; ``cpu_moe`` takes a layer count or ``all``. With no
    ``engine`` (or ``auto``) the plan uses vLLM (llama.cpp for GGUF recipes) and, when that
    cannot hold the model on the GPUs given, llama.cpp with CPU offload. ``max_gpus`` bounds the
    GPU count search (``fitcalc.plan.DEFAULT_MAX_GPUS`` when None). ``calibrated`` scales each
    GPU's terms as ``fit`` does (``calibration_for``, per GPU family and per engine tried).
    """
    from fitcalc import catalog
    from fitcalc.errors import InputError
    from fitcalc.estimate.placement import Layout
    from fitcalc.plan import DEFAULT_MAX_GPUS, Hardware, NoFitError, make_plan
    from fitcalc.spec import Host
    from fitcalc.units import parse_bytes

    if max_gpus is None:
        max_gpus = DEFAULT_MAX_GPUS
    spec = resolve_model(model, source)
    if not gpus:
        devices, _notes = resolve_devices(None)
        if not _notes or not _notes[0].startswith("GPUs detected"):
            raise InputError("no GPU detected to plan for", hint="pass --gpu, e.g. --gpu rtx-4090 or --gpu h100-sxm:8")
    else:
        devices, _notes = resolve_devices(gpus)
    hw_devices = tuple(d for d, count in devices for _ in range(count))
    ram_bytes = parse_bytes(ram) if ram is not None else detect_ram_bytes()
    bw = parse_bytes(ram_bandwidth) if ram_bandwidth is not None else None
    host = Host(ram_bytes=ram_bytes, ram_bandwidth_bytes_per_s=bw) if ram_bytes else None
    moe_layers = 0
    if cpu_moe is not None:
        if str(cpu_moe).lower() == "all":
            a = spec.architecture
            moe_layers = a.num_hidden_layers if a is not None else 0
        else:
            try:
                moe_layers = int(cpu_moe)
            except ValueError:
                raise InputError(f"--cpu-moe takes a layer count or 'all', got {cpu_moe!r}",
                                 hint="e.g. --cpu-moe 12 or --cpu-moe all") from None
            if moe_layers < 0:
                raise InputError(f"--cpu-moe must not be negative, got {moe_layers}", hint="e.g. --cpu-moe 12")
    if gpu_layers is not None and gpu_layers < 0:
        raise InputError(f"--gpu-layers must not be negative, got {gpu_layers}", hint="e.g. --gpu-layers 20")
    fixed = None
    if any(x is not None for x in (tp, pp, ep, gpu_layers, cpu_moe)):
        fixed = Layout(tp=tp or 1, pp=pp or 1, ep=ep or 1, gpu_layers=gpu_layers, cpu_moe=moe_layers)
    auto = engine is None or engine.lower() == "auto"
    eng = catalog.load_engine(pick_engine(engine, _is_gguf_recipe(spec, recipe)))
    hw = Hardware(hw_devices, host)
    kwargs = dict(context=context, batch=batch, kv_dtype=kv_dtype, recipe=recipe, fixed=fixed, max_gpus=max_gpus,
                  prompt_tokens=prompt_tokens)

    def planned(engine_profile):
        """make_plan with this engine's calibrations for each GPU family given, attached to the plan."""
        family_scales, infos, why = [], [], []
        families: dict = {}
        for dev in hw_devices:  # residuals are per GPU family: one look-up each (raw budgets: None)
            families.setdefault(dev.family, dev)
        for family, dev in families.items():
            scales, info, note = calibration_for(engine_profile.id, dev, calibrated, store, engine_version)
            if scales and info is not None:
                family_scales.append((family, scales))
                infos.append(info)
            if note:
                why.append(note)
        p = make_plan(spec, engine_profile, hw, **kwargs, family_scales=tuple(family_scales))
        if infos or why:
            p = p.model_copy(update={"calibration": infos, "notes": [*p.notes, *why]})
        return p

    try:
        result = planned(eng)
        first_error = None
    except NoFitError as e:
        result, first_error = None, e
    fallback_id = "llama.cpp"
    if (result is None or not result.fits) and auto and eng.id != fallback_id and fixed is None and recipe is None:
        # vLLM keeps every layer on the GPUs; llama.cpp can leave layers and experts in RAM.
        fallback = catalog.load_engine(fallback_id)
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
        assert first_error is not None
        raise first_error
    if _notes and not gpus:
        result = result.model_copy(update={"notes": [*result.notes, *_notes]})
    return result


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------

VERIFY_DEFAULT_CONTEXT = 512  # verify's context when none is given: fast on a CPU (docs/verify.md)
VERIFY_DEFAULT_TIMEOUT = 600.0  # seconds a distributed run may take before its ranks are stopped


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
    from fitcalc.estimate.weights import entry_format, tensor_inventory
    from fitcalc.formats import get_format
    from fitcalc.measure import BUILDABLE_FORMATS

    a = spec.architecture
    bad = set()
    for e in tensor_inventory(a):
        for layer in (e.layers or [None]):
            fid = entry_format(e, recipe, layer, a.num_hidden_layers)
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
           source: SourceKind = "auto", chunk: int | None = None, progress=None, tp: int = 1, pp: int = 1,
           ep: int = 1, launcher: str = "auto", timeout: float = VERIFY_DEFAULT_TIMEOUT):
    """Build the first ``layers`` decoder layers of MODEL in PyTorch with the recipe's real storage
    formats, run a prefill of ``context - 1`` tokens and one decode step on ``device``, and compare
    the measured memory with the prediction for the same stack, term by term.

    Returns a ``fitcalc.measure.result.VerifyResult``; ``exit_code`` is 0 (within tolerance),
    4 (a term outside its tolerance) or 5 (out of memory: does not fit, measured).

    With ``tp``/``pp``/``ep`` (or under torchrun) the stack runs as tp x pp ranks on
    torch.distributed, each measured against its share of the plan: a
    ``DistributedVerifyResult`` (``_verify_distributed``). A rank that dies, hangs past
    ``timeout`` seconds or fails raises ``RankFailed`` (one line naming the rank and the cause)."""
    from fitcalc import catalog, exitcodes
    from fitcalc.errors import InputError
    from fitcalc.estimate import estimate, prepare, truncated_model
    from fitcalc.measure import check_buildable, compare as cmp
    from fitcalc.measure.result import DeviceReport, Settings, VerifyResult, oom_comparison, record_line
    from fitcalc.recipes import resolve_recipe
    from fitcalc.spec import Workload

    spec = resolve_model(model, source)
    check_buildable(spec)
    a = spec.architecture
    sigs = cmp.signatures(a.layer_kinds(), set(a.dense_layer_indices()))
    k = _verify_layers(layers, sigs, spec.id)
    distributed = (tp, pp, ep) != (1, 1, 1) or _under_torchrun(launcher)
    if distributed and layers is None:
        k = min(max(k, pp), len(sigs))  # a layer per pipeline stage at least
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
    if distributed:
        return _verify_distributed(spec, model, r, prepared, k, ctx, batch, chunk_tokens, kv_dtype, include_embeddings,
                                   tolerances or [], record, force, seed, device, tp, pp, ep, launcher, timeout,
                                   progress)

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
        o = run.oom
        rows, peak, oom = oom_comparison(predicted, info.name, info.kind, o.phase, o.live_bytes, o.message, o.readings,
                                         overrides)
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
        _append_record(record, lambda date: record_line(result, date))
    return result


def _append_record(path: str, line) -> None:
    """Append ``line(date)`` (a dict, date in UTC) to the --record file as one JSON line."""
    import datetime
    import json

    from fitcalc.errors import InputError

    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line(date), ensure_ascii=False) + "\n")
    except OSError as e:
        raise InputError(f"cannot append to --record {path}: {e.strerror}", hint="check the path") from None


def _under_torchrun(launcher: str) -> bool:
    """Whether this process is one rank that torchrun (or a launcher like it) started."""
    import os

    from fitcalc.errors import InputError

    if launcher not in ("auto", "spawn", "torchrun"):
        raise InputError(f"unknown --launcher {launcher!r}", hint="auto, spawn or torchrun")
    present = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if launcher == "torchrun" and not present:
        raise InputError("--launcher torchrun: RANK and WORLD_SIZE are not set (this process was not started by "
                         "torchrun)", hint="run it as: torchrun --nproc-per-node N -m fitcalc verify ... "
                                           "--launcher torchrun")
    return launcher == "torchrun" or (launcher == "auto" and present)


def _verify_distributed(spec, source_text, recipe, prepared, layers, ctx, batch, chunk_tokens, kv_dtype,
                        include_embeddings, tolerances, record, force, seed, device, tp, pp, ep, launcher, timeout,
                        progress):
    """tp x pp ranks, each its share of the plan, on torch.distributed; one result for them all."""
    import os
    import shutil
    import tempfile
    import time

    from fitcalc.errors import InputError
    from fitcalc.estimate import estimate
    from fitcalc.estimate.placement import Layout, assign
    from fitcalc.measure.job import RankJob
    from fitcalc.measure.result import LayoutReport, Settings, assemble, record_line_distributed
    from fitcalc.spec import Device, Workload

    if ep not in (1, tp):
        raise InputError(f"verify runs expert parallelism over the tensor-parallel ranks: --ep {ep} with --tp {tp}",
                         hint=f"use --ep {tp} (or 1); data-parallel attention (ep > tp) is planned, not yet built")
    if timeout <= 0:
        raise InputError(f"--timeout must be positive, got {timeout:g}", hint="e.g. --timeout 600")
    if pp > layers:
        raise InputError(f"--pp {pp} needs a layer per stage; the stack has {layers}",
                         hint=f"pass --layers {pp} or more")
    eng = prepared.engine
    world = tp * pp
    kind = _distributed_device(device)
    layout = Layout(tp=tp, pp=pp, ep=ep)
    workload = Workload(context=ctx, batch=batch, kv_dtype=kv_dtype, prompt_tokens=ctx - 1, chunk_tokens=chunk_tokens)
    torchrun = _under_torchrun(launcher)
    if not torchrun and kind == "cpu":
        # every rank's share, on one machine's RAM: the same placement the ranks will use
        import psutil

        ram = psutil.virtual_memory()
        host = Device.host(ram.total)
        asg = assign(prepared.arch, eng, layout, [host.memory_bytes] * world)
        need = sum(estimate(prepared, host, workload, share=sh).total_bytes for sh in asg.gpus)
        if need > ram.available and not force:
            from fitcalc.units import format_bytes

            raise InputError(f"the {world} ranks of the {layers}-layer stack of {spec.id} are predicted to need "
                             f"{format_bytes(need)} ({need:,} B) together but only {format_bytes(ram.available)} "
                             "of RAM is available", hint="build fewer --layers, a smaller --context, or pass --force")
    else:
        assign(prepared.arch, eng, layout, [1 << 40] * world)  # the layout errors, before any rank starts
    job = RankJob(model=spec, source=source_text, recipe=recipe, layers=layers, context=ctx, batch=batch,
                  chunk=chunk_tokens, kv_dtype=kv_dtype, include_embeddings=include_embeddings, seed=seed,
                  tolerances=tolerances, tp=tp, pp=pp, ep=ep, device=kind, backend="nccl" if kind == "cuda" else "gloo",
                  timeout_s=float(timeout), force=force)
    settings = Settings(layers=layers, layers_total=spec.architecture.num_hidden_layers, context=ctx, batch=batch,
                        prompt_tokens=ctx - 1, chunk_tokens=chunk_tokens,
                        kv_dtype=prepared.kv_fmt.id if prepared.kv_fmt else "?", recipe=recipe.id,
                        include_embeddings=include_embeddings, seed=seed, engine=f"{eng.id} ({eng.version})")
    t0 = time.monotonic()
    notes = [f"pipeline stage sizes, heads, KV heads and experts per rank: fitcalc plan's placement "
             f"(Layout(tp={tp}, pp={pp}, ep={ep}) over the {layers}-layer stack)"]
    if torchrun:
        result = _torchrun_rank(job, settings, spec, progress, notes, t0)
    else:
        from fitcalc.measure.launch import RankFailed, launch

        run_dir = tempfile.mkdtemp(prefix="fitcalc-verify-")
        job = job.model_copy(update={"run_dir": run_dir})
        outcome = launch(job, progress)
        why = outcome.failure(timeout)
        if why is not None:
            raise RankFailed(why, hint=f"rank logs in {run_dir}")
        if outcome.oom is not None and len(outcome.reports) < world:
            stopped = [e.rank for e in outcome.ends if e.report is None]
            notes.append(f"rank(s) {', '.join(map(str, stopped))} stopped when rank {outcome.oom.rank} ran out of "
                         "memory: not measured")
        lay = LayoutReport(tp=tp, pp=pp, ep=ep, world_size=world, backend=job.backend, launcher="spawn", nodes=1)
        result = assemble(spec.id, source_text, spec.display_name, settings, lay, outcome.reports, outcome.wall_s,
                          notes)
        shutil.rmtree(run_dir, ignore_errors=True)
    if record and (not torchrun or int(os.environ.get("RANK", "0")) == 0):
        _append_record(record, lambda date: record_line_distributed(result, date))
    return result


def _distributed_device(device: str) -> str:
    from fitcalc.errors import InputError

    want = (device or "auto").strip().lower()
    if want == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if want in ("cpu", "cuda"):
        return want
    if want.startswith("cuda:"):
        raise InputError(f"--device {device}: a distributed run gives rank r the GPU cuda:LOCAL_RANK",
                         hint="use --device cuda; choose the GPUs with CUDA_VISIBLE_DEVICES")
    raise InputError(f"--device {device}: distributed verify runs on cpu (gloo) or cuda (nccl)",
                     hint="use --device cpu or --device cuda")


def _torchrun_rank(job, settings, spec, progress, notes, t0):
    """This process is one rank that torchrun started: measure it, gather every rank's report on
    every rank (so all exit with the same code), return the assembled result."""
    import os
    import socket
    import time

    from fitcalc.measure.distributed import dist, env_rank, is_collective_error, run_rank
    from fitcalc.measure.launch import RankFailed, RankOutOfMemory
    from fitcalc.measure.result import LayoutReport, assemble

    rank, world, local, local_world = env_rank()
    phase = ["start"]

    def say(msg: str) -> None:
        phase[0] = msg.split(" ")[0]
        if progress is not None:
            progress(f"rank {rank}: {msg}")

    try:
        report = run_rank(job, rank, world, local, local_world, say, keep_group=True)
    except Exception as e:
        if not is_collective_error(e):
            raise
        raise RankFailed(f"rank {rank} ({socket.gethostname()}): its collective failed during {phase[0]}: a peer "
                         f"died, or hung past --timeout {job.timeout_s:g} s",
                         hint="torchrun's summary names the rank that failed first") from None
    if report.oom is not None:
        # its peers wait in a collective that will not come: end this rank now, torchrun ends the rest
        raise RankOutOfMemory(f"rank {rank} ({socket.gethostname()}): out of memory at {report.oom.phase}: "
                         f"{report.oom.message}", hint="does not fit, measured")
    reports: list = [None] * world
    dist.all_gather_object(reports, report)
    nodes = max(1, world // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    lay = LayoutReport(tp=job.tp, pp=job.pp, ep=job.ep, world_size=world, backend=job.backend, launcher="torchrun",
                       nodes=nodes)
    # Every rank's sends of the gather must be done before any rank tears its group down: a gloo
    # pair closed under a peer's pending send aborts that peer ("terminate called without an active
    # exception", seen in CI).
    dist.barrier()
    dist.destroy_process_group()
    return assemble(spec.id, job.source, spec.display_name, settings, lay, reports, time.monotonic() - t0, notes)
