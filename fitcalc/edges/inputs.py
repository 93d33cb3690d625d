"""What the user named, turned into core models: GPUs (the catalog or this machine), RAM, the
calibration store's scales, and the model and GPU an engine log speaks of. EDGE: reads the catalog,
the machine and the calibration store."""

from __future__ import annotations

import re

from fitcalc.core.errors import InputError
from fitcalc.core.reconcile.parsers import model_name_candidates, model_named
from fitcalc.core.spec import Device, Host, ModelSpec
from fitcalc.core.units import format_bytes, parse_bytes
from fitcalc.edges import catalog
from fitcalc.edges.ingest import SourceKind, resolve_model

# Shown when no --gpu is given and no GPU is detected: the cards people ask about most.
DEFAULT_GPUS = ("rtx-4060-ti-16gb", "rtx-4090", "rtx-5090", "a100-80gb", "h100-sxm", "h200")


# ---------------------------------------------------------------------------------------------
# GPUs and RAM
# ---------------------------------------------------------------------------------------------


def _detected_targets(notes: list[str], out: list[tuple]) -> list:
    """--gpu options for the GPUs of this machine (identical GPUs are one configuration of `count`);
    GPUs no profile matches go straight to ``out`` as raw budgets."""
    from fitcalc.edges.hardware import detect_local, parse_gpu_option

    local = detect_local()
    if not local.gpus:
        notes.append("no GPU detected on this machine; showing popular GPUs (choose with --gpu)")
        return [parse_gpu_option(g) for g in DEFAULT_GPUS if catalog.resolve_gpu_id(g)]
    groups: dict[tuple, list] = {}
    for d in local.gpus:
        groups.setdefault((d.matched_profile_id or d.name, d.budget_bytes), []).append(d)
    targets = []
    for (_pid, budget), group in groups.items():
        d = group[0]
        if d.matched_profile_id:
            t = parse_gpu_option(f"{d.matched_profile_id}:{len(group)}")
            targets.append(t.model_copy(update={"budget_bytes": budget, "label": d.name}))
        else:
            out.append((Device.from_budget(budget, d.name), len(group)))
    notes.append("GPUs detected on this machine: " + ", ".join(f"{len(g)} × {g[0].name}" for g in groups.values()))
    return targets


def resolve_devices(gpus: list[str] | None) -> tuple[list[tuple[Device, int]], list[str]]:
    """[(Device, count)] for the --gpu options; without any, the detected GPUs, else the defaults."""
    from fitcalc.edges.hardware import parse_gpu_option

    notes: list[str] = []
    out: list[tuple[Device, int]] = []
    targets = [parse_gpu_option(g) for g in gpus] if gpus else _detected_targets(notes, out)
    for t in targets:
        if t.profile is not None:
            dev = Device.from_profile(t.profile)
            if t.budget_bytes != dev.memory_bytes:
                dev = dev.model_copy(update={"memory_bytes": t.budget_bytes})
        else:
            dev = Device.from_budget(t.budget_bytes)  # per-device label; the count is shown beside it
        out.append((dev, t.count))
    return out, notes


def detected(notes: list[str]) -> bool:
    """Whether ``resolve_devices(None)`` found GPUs on this machine (rather than falling back to defaults)."""
    return bool(notes) and notes[0].startswith("GPUs detected")


def detect_ram_bytes() -> int | None:
    """Total system RAM (psutil), or None when psutil is missing."""
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().total)


def host_of(ram: str | int | None, ram_bandwidth: str | int | None) -> Host | None:
    """--ram and --ram-bandwidth as a Host (RAM defaults to this machine's total); None when unknown."""
    ram_bytes = parse_bytes(ram) if ram is not None else detect_ram_bytes()
    bw = parse_bytes(ram_bandwidth) if ram_bandwidth is not None else None
    return Host(ram_bytes=ram_bytes, ram_bandwidth_bytes_per_s=bw) if ram_bytes else None


# ---------------------------------------------------------------------------------------------
# calibration (fit, plan)
# ---------------------------------------------------------------------------------------------


def calibration_for(engine_id: str, device, calibrated: bool | None = None, store: str | None = None,
                    engine_version: str | None = None):
    """Term scales from the calibration store for ``engine_id`` on ``device``'s GPU family.

    Returns ``(scales, info, note)``: ``scales`` for ``fitcalc.core.estimate.prepare``; ``info`` to attach
    to the result (``None`` when nothing applies); ``note`` says why nothing applies. ``calibrated``
    ``None`` follows the ``FITCALC_CALIBRATED`` environment variable.
    """
    from fitcalc.core import calibration
    from fitcalc.edges import calibration_store

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


def family_calibrations(engine_id: str, devices, calibrated: bool | None, store: str | None,
                        engine_version: str | None) -> tuple[tuple, list, list[str]]:
    """``calibration_for`` once per GPU family among ``devices`` (raw budgets: None):
    ``(((family, scales), ...), infos, notes)`` for ``make_plan``."""
    families: dict = {}
    for dev in devices:
        families.setdefault(dev.family, dev)
    family_scales, infos, notes = [], [], []
    for family, dev in families.items():
        scales, info, note = calibration_for(engine_id, dev, calibrated, store, engine_version)
        if scales and info is not None:
            family_scales.append((family, scales))
            infos.append(info)
        if note:
            notes.append(note)
    return tuple(family_scales), infos, notes


# ---------------------------------------------------------------------------------------------
# the model and GPU an engine log speaks of (reconcile)
# ---------------------------------------------------------------------------------------------


def log_model(parsed, model: str | None, source: SourceKind) -> tuple[ModelSpec, str | None]:
    """--model, else the first name the log gives its model that the catalog knows (the names as
    core.reconcile.parsers.model_name_candidates derives them: a quantized checkpoint's suffix such
    as -FP8 dropped, Ollama blob paths left out), else, for a log that names none but states its
    architecture, the catalog model of that architecture whose weights match the log's. The second
    value says what was assumed."""
    if model:
        return resolve_model(model, source), None
    for name in model_name_candidates(parsed.settings):
        mid = catalog.resolve_model_id(name)
        if mid:
            return catalog.load_model(mid), None
    said = model_named(parsed.settings)
    if parsed.settings.architecture and (not said or said.startswith("an Ollama blob")):
        return _model_of_architecture(parsed)
    if said and said.startswith("an Ollama blob"):
        message = f"the log names its model only by {said}: no model spec to map it to"
    else:
        what = f"the log's model {said!r}" if said else "the log's model (it does not name one)"
        message = f"cannot map {what} to a model spec"
    raise InputError(message, hint="pass --model (a bundled id, a Hub name, or a spec YAML path)")


def _model_of_architecture(parsed) -> tuple[ModelSpec, str]:
    from fitcalc.core.reconcile.compare import model_by_weights

    def key(name: str) -> str:  # Ollama "gptoss", llama.cpp "gpt-oss", the catalog's "gpt_oss"
        return re.sub(r"[^a-z0-9]", "", name.lower())

    arch = key(parsed.settings.architecture)
    specs = [s for s in map(catalog.load_model, catalog.model_ids())
             if s.architecture is not None and key(s.architecture.family) == arch]
    return model_by_weights(parsed, specs, catalog.load_engine(parsed.engine))


def log_device(parsed, gpu: str | None, device=None) -> Device:
    """The GPU the prediction plans against: ``device``, else --gpu, else what the log states. When
    the log prints the GPU's total (vLLM 0.6-0.8), that total is used: it is CUDA's total, with the
    driver's reserve already outside it."""
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


def train_setup(fields: dict):
    """The `fitcalc train` options as a TrainSetup; pydantic's complaint becomes one line naming the option."""
    from pydantic import ValidationError

    from fitcalc.core.estimate.training import TrainSetup

    try:
        return TrainSetup(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        name = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "setup"
        raise InputError(f"{name}: {err['msg']}", hint="see `fitcalc train --help`") from None
