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
