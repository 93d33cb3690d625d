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

from fitcalc.core.errors import SpecError, UnknownIdError
from fitcalc.core.spec import GpuProfile, ModelSpec

MAX_DATA_FILE_BYTES = 1 << 20  # 1 MiB: the largest bundled spec is a few KiB

T = TypeVar("T", bound=BaseModel)

_PKG = Path(__file__).resolve().parents[1]  # the fitcalc package folder (this file is fitcalc/edges/catalog.py)


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


_MERGE_TAG = "tag:yaml.org,2002:merge"

# The most nodes one YAML document may hold once its aliases are expanded. A report spec of a
# few hundred scenarios is a few thousand nodes; the largest bundled data file is under 2,000.
# Aliases share nodes in the composed tree, so "billion laughs" (each level a list of nine
# aliases of the one before) is 1 KB of text but 9^9 values once anything walks it (str(),
# pydantic): it is refused here, on the node tree, before anything is constructed.
MAX_YAML_NODES = 100_000
# The deepest nesting a document may have. The composer and the checks below recurse per level
# (libyaml's composer in C: 100,000 nested "[" crash the interpreter); real files nest under 10.
MAX_YAML_DEPTH = 64


def _nesting_depth(text: str, limit: int = MAX_YAML_DEPTH) -> int | None:
    """The deepest collection nesting of ``text``, read from the parser's events (an iterative state
    machine, no recursion); None as soon as it passes ``limit``."""
    depth = deepest = 0
    for event in yaml.parse(text, Loader=_Base):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                return None
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
    return deepest


def _expanded_nodes(node: Any, limit: int = MAX_YAML_NODES) -> int | None:
    """Nodes under ``node`` counting each alias as a full copy; None when over ``limit`` or cyclic.

    Memoized per node, so the count costs one visit per distinct node however deep the aliases nest.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(n: Any) -> int | None:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            return None  # an alias of its own ancestor: infinite once expanded
        open_nodes.add(key)
        total = 1
        children: list[Any] = []
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                children += [k, v]
        elif isinstance(n, yaml.SequenceNode):
            children = list(n.value)
        for child in children:
            s = size(child)
            if s is None:
                return None
            total += s
            if total > limit:
                return None
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(node)


def _duplicate_key(node: Any, path: tuple[str, ...] = (), visited: set[int] | None = None
                   ) -> tuple[str, str] | None:
    """The first mapping key given twice anywhere under ``node``: (dotted field path, message).

    Checked on the composed node tree, before anything is constructed, because a plain
    ``dict`` keeps the last value silently, and the tree still knows where each key sits.
    Each node is visited once: YAML aliases share nodes, and may even point at an ancestor.
    """
    visited = set() if visited is None else visited
    if id(node) in visited:
        return None
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = (key_node.tag, str(key_node.value))
            line = key_node.start_mark.line + 1
            field = ".".join((*path, str(key_node.value)))
            if key in seen:
                return field, f"duplicate key (lines {seen[key]} and {line})"
            seen[key] = line
            found = _duplicate_key(value_node, (*path, str(key_node.value)), visited)
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for k, item in enumerate(node.value):
            found = _duplicate_key(item, (*path, str(k)), visited)
            if found is not None:
                return found
    return None


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
    """Parse one YAML document with the safe loader; duplicate keys are an error, not a last-wins."""
    loader = _Base(text)
    try:
        if _nesting_depth(text) is None:
            raise SpecError(f"the YAML nests deeper than {MAX_YAML_DEPTH} levels", hint="a spec nests a few levels; "
                            "is this the right file?", path=path)
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_nodes(node) is None:
            raise SpecError(f"the YAML expands to more than {MAX_YAML_NODES:,} values (aliases repeated, or an "
                            "alias of its own parent)", hint="write the values out; a spec needs far fewer",
                            path=path)
        dup = _duplicate_key(node)
        if dup is not None:
            raise SpecError(dup[1], hint="remove one of them", path=path, field=dup[0])
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"not valid YAML: {problem}", hint="check indentation and quoting", path=path,
                        field=where) from None
    finally:
        loader.dispose()


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
        # pydantic's own messages ("Input should be greater than 0") do not say what was given;
        # our value_error messages already do.
        given = first.get("input")
        if typ != "value_error" and isinstance(given, (bool, int, float, str)):
            msg += f", got {given!r}"
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


def close_hub_names(name: str, cutoff: float = 0.9) -> list[str]:
    """Bundled Hub names (``org/name`` as the spec writes it) one typo away from ``name``: same org
    (case ignored), difflib ratio at least ``cutoff`` on the whole id. ``openai/gpt-oss-21b``
    gives ``openai/gpt-oss-20b``; a Hub name with no bundled neighbour gives nothing."""
    import difflib

    want = name.strip().split("@", 1)[0].lower()
    org = want.split("/", 1)[0]
    names: dict[str, str] = {}
    for p in sorted(data_dir("model_specs").glob("*.yaml")):
        m = re.search(r"^hf_repo:\s*(\S+)", p.read_text(encoding="utf-8")[:MAX_DATA_FILE_BYTES], re.M)
        if m and m.group(1).lower().split("/", 1)[0] == org:
            names[m.group(1).lower()] = m.group(1)
    return [names[k] for k in difflib.get_close_matches(want, list(names), n=3, cutoff=cutoff)]


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


# Words that vendors put in front of a product name and people leave out when they type it:
# "NVIDIA GeForce RTX 4090" and "rtx 4090" are the same GPU.
_GPU_NAME_NOISE = re.compile(r"\b(nvidia|geforce|tesla|amd|radeon|instinct|intel|apple)\b|\(r\)|\(tm\)")


def gpu_name_key(name: str) -> str:
    """A GPU name reduced for lookups: lower case, vendor words and punctuation dropped.

    ``"NVIDIA GeForce RTX 4090"``, ``"rtx-4090"`` and ``"RTX4090"`` all give ``"rtx4090"``.
    """
    text = _GPU_NAME_NOISE.sub(" ", name.lower())
    return re.sub(r"[^a-z0-9]+", "", text)


@lru_cache(maxsize=4)
def _gpu_name_index_for(directory: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    index: dict[str, str] = {}
    collisions: dict[str, list[str]] = {}
    for key, fid in _gpu_names(Path(directory)):
        if not key:
            continue
        if key in index and index[key] != fid:
            collisions.setdefault(key, [index[key]]).append(fid)
            continue
        index.setdefault(key, fid)
    return index, collisions


def _gpu_names(d: Path) -> list[tuple[str, str]]:
    """(key, id) for every id, alias and display name, read as text (no YAML parse)."""
    pairs: list[tuple[str, str]] = []
    for p in sorted(d.glob("*.yaml")):
        fid = p.stem
        pairs.append((gpu_name_key(fid), fid))
        try:
            text = p.read_text(encoding="utf-8")[:MAX_DATA_FILE_BYTES]
        except OSError:
            continue
        for key, value in _LINE_RE.findall(text):
            if key == "hf_repo":
                continue
            value = value.split(" #", 1)[0].strip()
            if key == "aliases":
                names = [v.strip().strip("'\"") for v in value.strip("[]").split(",") if v.strip()]
            else:
                names = [value.strip("'\"")]
            pairs.extend((gpu_name_key(n), fid) for n in names)
    return pairs


def _gpu_name_index() -> dict[str, str]:
    return _gpu_name_index_for(str(data_dir("gpu_profiles")))[0]


def gpu_name_collisions() -> dict[str, list[str]]:
    """Names that two profiles both claim (a data error; the test suite keeps this empty)."""
    return _gpu_name_index_for(str(data_dir("gpu_profiles")))[1]


def resolve_gpu_id(name: str) -> str | None:
    """The profile id for an id, alias or display name, ignoring case, spacing and vendor words."""
    key = name.strip().lower()
    if key and (data_dir("gpu_profiles") / f"{key}.yaml").is_file():
        return key
    return _gpu_name_index().get(gpu_name_key(name))


def close_gpu_ids(name: str, n: int = 3) -> list[str]:
    """Profile ids whose id or alias is closest to ``name``, best first (for error messages)."""
    import difflib

    index = _gpu_name_index()
    want = gpu_name_key(name)
    # A family typed on its own ("a100", "4060 ti") lists the parts whose id contains it,
    # then the closest spellings of any id or alias.
    out = [fid for fid in gpu_ids() if len(want) >= 3 and want in gpu_name_key(fid)]
    for key in difflib.get_close_matches(want, list(index), n=12, cutoff=0.6):
        if index[key] not in out:
            out.append(index[key])
    return out[:n]


def unknown_gpu_error(name: str, hint: str | None = None) -> UnknownIdError:
    return UnknownIdError("GPU", name, gpu_ids(), hint=hint, suggestions=close_gpu_ids(name))


@lru_cache(maxsize=128)
def load_gpu(name: str) -> GpuProfile:
    gid = resolve_gpu_id(name)
    if gid is None:
        raise unknown_gpu_error(name)
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
    from fitcalc.core.engines import EngineProfile

    eid = resolve_engine_id(name)
    if eid is None:
        raise UnknownIdError("engine", name, engine_ids())
    return load_model_file(data_dir("engine_profiles") / f"{eid}.yaml", EngineProfile)
def gpus_by_driver_name(name: str) -> list[GpuProfile]:
    """Profiles whose ``driver_names`` include ``name`` (compared as ``gpu_name_key``).

    Several profiles may share a driver name (memory variants); the caller picks by memory.
    """
    key = gpu_name_key(name)
    return [g for g in load_all_gpus() if any(gpu_name_key(d) == key for d in g.driver_names)]
