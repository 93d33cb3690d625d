"""The one module that reads the bundled data: ``model_specs/`` and ``gpu_profiles/``. EDGE.

Files are YAML read with a safe loader that rejects duplicate keys, with a size cap (a data
file is a few KiB; anything over ``MAX_DATA_FILE_BYTES`` is refused before it is read), and
validated by pydantic with ``extra="forbid"``. Every error names the file and the field.

Ids resolve cheaply: the file name is the id, so ``fitcalc size gpt-oss-20b`` reads one file.
Hub names (``openai/gpt-oss-20b``) and aliases are found by scanning the files' ``hf_repo:`` and
``aliases:`` lines as text, without parsing every file.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from fitcalc.errors import SpecError, UnknownIdError
from fitcalc.spec import GpuProfile, ModelSpec

MAX_DATA_FILE_BYTES = 1 << 20  # 1 MiB: the largest bundled spec is a few KiB

T = TypeVar("T", bound=BaseModel)

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``model_specs`` or ``gpu_profiles``: inside the wheel (fitcalc/_data) or at the repo top."""
    env = os.environ.get(f"FITCALC_{name.upper()}_DIR")
    if env:
        return Path(env)
    packaged = _PKG / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PKG.parent / name


# ---------------------------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------------------------

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_Base):  # type: ignore[misc, valid-type]
    """Safe loader that refuses a mapping with the same key twice."""


def _construct_mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise SpecError(
                f"duplicate key {key!r} (lines {seen[key] + 1} and {key_node.start_mark.line + 1})",
                hint="remove one of them", field=str(key),
            )
        seen[key] = key_node.start_mark.line
    return {loader.construct_object(k, deep=True): loader.construct_object(v, deep=True) for k, v in node.value}


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_text_capped(path: Path, limit: int = MAX_DATA_FILE_BYTES, what: str = "data file") -> str:
    """Read a text file of at most ``limit`` bytes; refuse larger ones before reading them."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SpecError("file not found", hint="check the path", path=str(path)) from None
    except OSError as e:
        raise SpecError(f"cannot read: {e.strerror}", path=str(path)) from None
    if size > limit:
        raise SpecError(f"{what} is {size:,} bytes, over the {limit:,}-byte limit",
                        hint="a spec is a few KiB; is this the right file?", path=str(path))
    with path.open("rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise SpecError(f"{what} grew past the {limit:,}-byte limit while reading", path=str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError("not UTF-8 text", hint="a spec is a YAML text file", path=str(path)) from None


def load_yaml_text(text: str, path: str = "<text>") -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except SpecError as e:
        raise SpecError(e.message.split(": ", 1)[-1] if e.field else e.message, e.hint, path=path,
                        field=e.field) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"not valid YAML: {problem}", hint="check indentation and quoting", path=path,
                        field=where) from None


def validation_error_to_spec_error(err: ValidationError, path: str) -> SpecError:
    """First pydantic error as one line: file, dotted field path, message."""
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"] if not str(x).startswith("function-after"))
    msg = first["msg"]
    typ = first["type"]
    if typ == "extra_forbidden":
        msg = "unknown field"
        hint = "remove it or check its spelling against docs/data-files.md"
    elif typ == "missing":
        msg = "missing required field"
        hint = "add it (docs/data-files.md lists the fields)"
    else:
        hint = "see docs/data-files.md"
    more = len(err.errors()) - 1
    if more:
        msg += f" (and {more} more error{'s' if more > 1 else ''})"
    return SpecError(msg.replace("Value error, ", ""), hint, path=path, field=loc or None)


def load_model_file(path: Path, cls: type[T]) -> T:
    text = read_text_capped(path)
    data = load_yaml_text(text, str(path))
    if not isinstance(data, dict):
        raise SpecError("expected a mapping at the top level", path=str(path))
    try:
        obj = cls.model_validate(data)
    except ValidationError as e:
        raise validation_error_to_spec_error(e, str(path)) from None
    return obj


# ---------------------------------------------------------------------------------------------
# Model specs
# ---------------------------------------------------------------------------------------------

_LINE_RE = re.compile(r"^(hf_repo|aliases|display_name):\s*(.+?)\s*$", re.M)


@lru_cache(maxsize=4)
def _name_index(kind: str) -> dict[str, str]:
    """lower-case name -> id, from each file's hf_repo, aliases and display_name lines."""
    index: dict[str, str] = {}
    d = data_dir(kind)
    for p in sorted(d.glob("*.yaml")):
        fid = p.stem
        index[fid.lower()] = fid
        try:
            text = p.read_text(encoding="utf-8")[:MAX_DATA_FILE_BYTES]
        except OSError:
            continue
        for key, value in _LINE_RE.findall(text):
            value = value.strip()
            if key == "aliases":
                names = [v.strip().strip("'\"") for v in value.strip("[]").split(",") if v.strip()]
            else:
                names = [value.strip("'\"")]
            for n in names:
                index.setdefault(n.lower(), fid)
    return index


def model_ids() -> list[str]:
    return sorted(p.stem for p in data_dir("model_specs").glob("*.yaml"))


def resolve_model_id(name: str) -> str | None:
    """The bundled id for an id, a Hub name or an alias (case-insensitive), or None."""
    key = name.strip().lower()
    if (data_dir("model_specs") / f"{key}.yaml").is_file():
        return key
    return _name_index("model_specs").get(key) or _name_index("model_specs").get(key.split("@", 1)[0])


@lru_cache(maxsize=64)
def load_model(name: str) -> ModelSpec:
    """A bundled model spec by id, Hub name or alias."""
    mid = resolve_model_id(name)
    if mid is None:
        raise UnknownIdError("model", name, model_ids())
    return load_model_file(data_dir("model_specs") / f"{mid}.yaml", ModelSpec)


def load_all_models() -> list[ModelSpec]:
    return [load_model(i) for i in model_ids()]


def load_model_spec_path(path: str | Path) -> ModelSpec:
    """A model spec YAML given by path (a user's own file)."""
    return load_model_file(Path(path), ModelSpec)


# ---------------------------------------------------------------------------------------------
# GPU profiles
# ---------------------------------------------------------------------------------------------


def gpu_ids() -> list[str]:
    return sorted(p.stem for p in data_dir("gpu_profiles").glob("*.yaml"))


def resolve_gpu_id(name: str) -> str | None:
    key = name.strip().lower()
    if (data_dir("gpu_profiles") / f"{key}.yaml").is_file():
        return key
    idx = _name_index("gpu_profiles")
    for cand in (key, key.replace(" ", "-"), key.replace("nvidia ", "").replace("geforce ", "")):
        if cand in idx:
            return idx[cand]
    return None


@lru_cache(maxsize=128)
def load_gpu(name: str) -> GpuProfile:
    gid = resolve_gpu_id(name)
    if gid is None:
        raise UnknownIdError("GPU", name, gpu_ids())
    return load_model_file(data_dir("gpu_profiles") / f"{gid}.yaml", GpuProfile)


def load_all_gpus() -> list[GpuProfile]:
    return [load_gpu(i) for i in gpu_ids()]


# ---------------------------------------------------------------------------------------------
# Engine profiles
# ---------------------------------------------------------------------------------------------


def engine_ids() -> list[str]:
    return sorted(p.stem for p in data_dir("engine_profiles").glob("*.yaml"))


def resolve_engine_id(name: str) -> str | None:
    key = name.strip().lower()
    if (data_dir("engine_profiles") / f"{key}.yaml").is_file():
        return key
    return _name_index("engine_profiles").get(key)


@lru_cache(maxsize=32)
def load_engine(name: str):
    from fitcalc.engines import EngineProfile

    eid = resolve_engine_id(name)
    if eid is None:
        raise UnknownIdError("engine", name, engine_ids())
    return load_model_file(data_dir("engine_profiles") / f"{eid}.yaml", EngineProfile)
