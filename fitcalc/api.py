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
# plan
# ---------------------------------------------------------------------------------------------

DEFAULT_MAX_GPUS = 16  # the bound `plan` searches for the GPU count when none is given


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
         cpu_moe: int | str | None = None, max_gpus: int = DEFAULT_MAX_GPUS, prompt_tokens: int | None = None,
         source: SourceKind = "auto"):
    """What to run MODEL with on these GPUs: placement, limits, GPUs needed, speed and engine flags.

    ``ram`` defaults to the detected total; ``cpu_moe`` takes a layer count or ``all``. With no
    ``engine`` (or ``auto``) the plan uses vLLM (llama.cpp for GGUF recipes) and, when that
    cannot hold the model on the GPUs given, llama.cpp with CPU offload.
    """
    from fitcalc import catalog
    from fitcalc.errors import InputError
    from fitcalc.estimate.placement import Layout
    from fitcalc.plan import Hardware, NoFitError, make_plan
    from fitcalc.spec import Host
    from fitcalc.units import parse_bytes

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
    try:
        result = make_plan(spec, eng, hw, **kwargs)
        first_error = None
    except NoFitError as e:
        result, first_error = None, e
    fallback_id = "llama.cpp"
    if (result is None or not result.fits) and auto and eng.id != fallback_id and fixed is None and recipe is None:
        # vLLM keeps every layer on the GPUs; llama.cpp can leave layers and experts in RAM.
        fallback = catalog.load_engine(fallback_id)
        try:
            other = make_plan(spec, fallback, hw, **kwargs)
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
