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


class GpuRow(BaseModel):
    """One catalog GPU as `fitcalc gpus` lists it. Bytes are exact ints; rates as published."""

    model_config = ConfigDict(frozen=True)

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
