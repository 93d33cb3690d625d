"""Turning the outside world into a ModelSpec. EDGE.

``resolve_model(source)`` is the one entry point every command uses. Order (issue: real model
sources): a local path (a spec YAML here; folders, safetensors and GGUF files where supported),
then a bundled id / Hub name / alias, then the Hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fitcalc.errors import ModelSourceError
from fitcalc.spec import ModelSpec

SourceKind = Literal["auto", "catalog", "local", "hub"]


def resolve_model(source: str, kind: SourceKind = "auto") -> ModelSpec:
    from fitcalc import catalog

    if kind in ("auto", "local"):
        p = Path(source).expanduser()
        if p.exists():
            if p.is_file() and p.suffix.lower() in (".yaml", ".yml"):
                return catalog.load_model_spec_path(p)
            raise ModelSourceError(f"{source}: not a model spec YAML", hint="give a .yaml model spec or a bundled id")
        if kind == "local":
            raise ModelSourceError(f"{source}: no such file or folder", hint="check the path")
    return catalog.load_model(source)
