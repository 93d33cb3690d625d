"""Turning the outside world into a ModelSpec. EDGE.

``resolve_model(source)`` is the one entry point every command uses. MODEL is tried, in order:

1. a local path: a folder with ``config.json`` (and ``*.safetensors`` or an index), a single
   ``.safetensors`` file, a ``.gguf`` file, or a spec ``.yaml``;
2. a bundled spec: its id, its ``hf_repo`` or an alias;
3. a Hub repo id, ``org/name`` or ``org/name@revision`` (config.json and the safetensors headers
   by range requests, never the weights), or a GGUF repo, ``org/name[:QUANT]`` (the chosen
   file's GGUF header by range requests).

``kind`` forces one of them: ``local``, ``catalog`` or ``hub``. docs/sources.md has the details.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from fitcalc.core.errors import ModelSourceError, UnknownIdError
from fitcalc.core.spec import ModelSpec

SourceKind = Literal["auto", "catalog", "local", "hub"]
SOURCE_KINDS = ("auto", "catalog", "local", "hub")

# org/name with an optional @revision; the Hub allows letters, digits, '-', '_' and '.'.
# org/name, an optional :QUANT (a GGUF repo's file, as llama-server -hf takes it), an optional @revision
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(?::[\w.-]+)?(?:@[\w./-]+)?$")


def looks_like_hub_id(text: str) -> bool:
    return bool(_HUB_ID.match(text)) and ".." not in text


def resolve_model(source: str, kind: SourceKind = "auto") -> ModelSpec:
    if kind not in SOURCE_KINDS:
        raise ModelSourceError(f"unknown source kind {kind!r}", hint=f"use one of: {', '.join(SOURCE_KINDS)}")
    if kind in ("auto", "local"):
        p = Path(source).expanduser()
        if p.exists():
            return _local(p)
        if kind == "local":
            raise ModelSourceError(f"{source}: no such file or folder", hint="check the path")
        if _looks_like_path(source):
            raise ModelSourceError(f"{source}: no such file or folder",
                                   hint="check the path; bundled ids are listed by `fitcalc models`")
    if kind in ("auto", "catalog"):
        from fitcalc.edges import catalog

        try:
            return catalog.load_model(source)
        except UnknownIdError:
            if kind == "catalog" or not looks_like_hub_id(source):
                raise
    if not looks_like_hub_id(source):
        raise ModelSourceError(f"{source!r} is not a Hub repo id", hint="write it as org/name or org/name@revision")
    if kind == "auto" and ":" not in source:  # org/name:QUANT names a GGUF file, typed on purpose
        _refuse_near_miss(source)
    from fitcalc.edges.ingest import hub, hub_gguf

    if hub_gguf.split_quant(source)[1] is not None:
        return hub_gguf.load_hub_gguf(source)
    try:
        return hub.load_hub_model(source)
    except hub.HubError as e:
        if getattr(e, "missing", None) != "config.json":
            raise
        return hub_gguf.load_hub_gguf(source)  # no config.json: a GGUF repo


def _refuse_near_miss(source: str) -> None:
    """A Hub id one typo from a bundled model's (``openai/gpt-oss-21b``) is answered with the bundled
    one before any network request; ``--source hub`` reads the id as typed. A repo already in the
    Hugging Face cache was read before on purpose and is not questioned."""
    from fitcalc.edges import catalog
    from fitcalc.edges.ingest.hub import HubSettings

    close = catalog.close_hub_names(source)
    repo = source.split("@", 1)[0]
    if close and not (HubSettings.from_env().hub_cache / ("models--" + repo.replace("/", "--"))).is_dir():
        raise UnknownIdError("model", source, [], suggestions=close,
                             hint=f"the bundled one is {close[0]}; to read {source} from the Hub as typed, "
                                  f"add --source hub")


def _looks_like_path(text: str) -> bool:
    return (text.startswith(("/", "./", "../", "~")) or text.lower().endswith((".gguf", ".safetensors", ".yaml",
                                                                               ".yml", ".json"))
            or "\\" in text)


def _local(p: Path) -> ModelSpec:
    if p.is_dir():
        return _folder(p)
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        from fitcalc.edges import catalog

        return catalog.load_model_spec_path(p)
    if suffix == ".gguf":
        from fitcalc.edges.ingest import gguf

        return gguf.load_gguf_model(p)
    if suffix == ".safetensors":
        return _safetensors_file(p)
    if p.name == "config.json":
        return _folder(p.parent)
    raise ModelSourceError(f"{p}: not a model source",
                           hint="give a folder with config.json, a .safetensors or .gguf file, or a spec .yaml")


def _folder(folder: Path) -> ModelSpec:
    from fitcalc.edges.ingest import hf_config, safetensors

    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        ggufs = sorted(folder.glob("*.gguf"))
        hint = (f"for a GGUF give the file itself, e.g. {ggufs[0]}" if ggufs
                else "a Hugging Face checkpoint folder has config.json beside its *.safetensors")
        raise ModelSourceError(f"{folder}: no config.json in this folder", hint=hint)
    config = safetensors.read_json_capped(cfg_path, "config.json")
    table = safetensors.read_folder(folder)
    spec = hf_config.spec_from_hf(config, table, name=folder.resolve().name, source=str(folder))
    if table is None:
        spec = spec.model_copy(update={"warnings": [*spec.warnings, f"{folder} holds no *.safetensors: sizes are "
                                                                      "derived from config.json, not read from headers"]})
    return spec


def _safetensors_file(path: Path) -> ModelSpec:
    """One .safetensors file: its header, and the config.json beside it when there is one."""
    from fitcalc.edges.ingest import hf_config, safetensors

    table = safetensors.read_single_file(path)
    cfg_path = path.parent / "config.json"
    if cfg_path.is_file():
        config = safetensors.read_json_capped(cfg_path, "config.json")
    else:
        config = {}
    spec = hf_config.spec_from_hf(config, table, name=path.stem, source=str(path))
    return spec
