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
