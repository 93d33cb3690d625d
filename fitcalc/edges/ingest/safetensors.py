"""safetensors headers: the 8-byte length, the JSON header, and nothing after it. EDGE.

A safetensors file is ``u64 little-endian N`` + ``N bytes of JSON`` + the tensor data. The JSON
maps each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to
the end of the header) plus an optional ``__metadata__`` string map. We read the 8 bytes, check
the length against a cap and against the file's size (a header can lie), read exactly N bytes,
and validate what the format requires: a known dtype, ``end - begin`` equal to the bytes the
dtype and shape make, offsets inside the data section, no overlap and no holes
(huggingface/safetensors ``safetensors/src/tensor.rs``, ``Metadata::validate``).

The same parser serves Hub files, whose headers come by HTTP range requests (``hub.py``).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fitcalc.core.checkpoint import SAFETENSORS_DTYPE_BITS, CheckpointTable, FileRecord, TensorRecord
from fitcalc.core.errors import ModelSourceError

# The safetensors library refuses headers over 100,000,000 bytes (MAX_HEADER_SIZE in
# safetensors/src/tensor.rs). A 19,000-tensor shard has a ~2.5 MB header.
MAX_HEADER_BYTES = 100_000_000
# config.json and the shard index are small JSON files; anything this large is not one.
MAX_JSON_BYTES = 64 * 1024 * 1024
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


class SafetensorsError(ModelSourceError):
    """A safetensors file or index that is malformed; the message names the file."""


def _bad(where: str, what: str, hint: str | None = None) -> SafetensorsError:
    return SafetensorsError(f"{where}: {what}", hint=hint or "the file is damaged or not a safetensors file; "
                                                            "download it again")


def header_length(prefix: bytes, where: str, file_size: int | None) -> int:
    """The header length the first 8 bytes claim, checked against the cap and the file size."""
    if len(prefix) < 8:
        raise _bad(where, f"truncated: {len(prefix)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n > MAX_HEADER_BYTES:
        raise _bad(where, f"header claims {n:,} bytes, over the {MAX_HEADER_BYTES:,}-byte cap")
    if file_size is not None and n > file_size - 8:
        raise _bad(where, f"header length {n:,} is larger than the file ({file_size:,} bytes)")
    if n < 2:
        raise _bad(where, f"header length {n} is too short for a JSON object")
    return n


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # a name given twice: json would silently keep the last one
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise ValueError(f"duplicate key {k!r}")
            seen.add(k)
    return out


def parse_header(raw: bytes, *, where: str, file: str, data_size: int | None) -> tuple[list[TensorRecord], dict]:
    """Tensors and ``__metadata__`` of a header. ``data_size``: bytes after the header, when known."""
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError:
        raise _bad(where, "header is not UTF-8 text") from None
    except RecursionError:  # json's decoder recurses per level: "[" * 100000 is 100 KB
        raise _bad(where, "header nests too deep to be a safetensors header") from None
    except ValueError as e:
        raise _bad(where, f"header is not JSON ({str(e).splitlines()[0][:80]})") from None
    if not isinstance(doc, dict):
        raise _bad(where, "header is not a JSON object")
    meta = doc.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise _bad(where, "__metadata__ must map strings to strings")
    tensors: list[TensorRecord] = []
    bits_of = SAFETENSORS_DTYPE_BITS
    for name, info in doc.items():
        if not isinstance(info, dict):
            raise _bad(where, f"tensor {name!r}: entry is not an object")
        dtype, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        bits = bits_of.get(dtype) if isinstance(dtype, str) else None
        if bits is None:
            raise _bad(where, f"tensor {name!r}: unknown dtype {dtype!r}",
                       hint=f"safetensors dtypes are {', '.join(bits_of)}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise _bad(where, f"tensor {name!r}: shape {shape!r} is not a list of non-negative integers")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(type(o) is int for o in offs)
                or offs[0] < 0 or offs[1] < offs[0]):
            raise _bad(where, f"tensor {name!r}: data_offsets {offs!r} are not [begin, end] with begin <= end")
        numel = 1
        for d in shape:
            numel *= d
        if (numel * bits) % 8:
            raise _bad(where, f"tensor {name!r}: {numel} x {bits}-bit elements are not whole bytes")
        nbytes = numel * bits // 8
        if offs[1] - offs[0] != nbytes:
            raise _bad(where, f"tensor {name!r}: data_offsets span {offs[1] - offs[0]:,} bytes but "
                              f"{dtype} {shape} needs {nbytes:,}")
        tensors.append(TensorRecord(name=name, dtype=dtype, shape=tuple(shape), nbytes=nbytes, file=file,
                                    begin=offs[0]))
    # The data section is indexed completely: sorted by offset, each tensor starts where the
    # previous one ended, the first at 0 (safetensors rejects overlaps and holes alike).
    end = 0
    prev = None
    for t in sorted(tensors, key=lambda t: (t.begin, t.nbytes)):
        if t.begin < end:
            raise _bad(where, f"tensors {prev!r} and {t.name!r} overlap (offset {t.begin:,} < {end:,})")
        if t.begin > end:
            raise _bad(where, f"hole of {t.begin - end:,} bytes before tensor {t.name!r} at offset {t.begin:,}")
        end = t.begin + t.nbytes
        prev = t.name
    if data_size is not None and end > data_size:
        raise _bad(where, f"tensor data runs to offset {end:,} but the file holds {data_size:,} bytes after "
                          "its header (out-of-range offsets or a truncated file)")
    if data_size is not None and end < data_size:
        raise _bad(where, f"{data_size - end:,} bytes after the last tensor are not indexed by the header")
    return tensors, meta


def read_file_header(path: Path) -> tuple[list[TensorRecord], dict, FileRecord]:
    """Read one local .safetensors file's header: 8 bytes, then exactly the length they claim."""
    where = str(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            prefix = f.read(8)
            n = header_length(prefix, where, size)
            raw = f.read(n)
    except OSError as e:
        raise SafetensorsError(f"{where}: cannot read ({e.strerror or e})", hint="check the path and permissions") \
            from None
    if len(raw) != n:
        raise _bad(where, f"truncated: the header claims {n:,} bytes, {len(raw):,} are there")
    tensors, meta = parse_header(raw, where=where, file=path.name, data_size=size - 8 - n)
    return tensors, meta, FileRecord(name=path.name, header_bytes=8 + n, file_bytes=size,
                                     data_bytes=sum(t.nbytes for t in tensors))


def read_json_capped(path: Path, what: str, limit: int = MAX_JSON_BYTES) -> Any:
    try:
        size = path.stat().st_size
        if size > limit:
            raise SafetensorsError(f"{path}: {what} is {size:,} bytes, over the {limit:,}-byte cap",
                                   hint="is this the right file?")
        with path.open("rb") as f:
            raw = f.read(limit + 1)
    except FileNotFoundError:
        raise SafetensorsError(f"{path}: no such file", hint="check the path") from None
    except OSError as e:
        raise SafetensorsError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:  # json's decoder recurses per level
        raise SafetensorsError(f"{path}: {what} nests too deep to be a {what}", hint="is this the right file?") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise SafetensorsError(f"{path}: {what} is not valid JSON ({str(e).splitlines()[0][:80]})",
                               hint="download it again") from None


def shard_files(folder: Path) -> tuple[list[str], dict[str, str] | None, int | None]:
    """(files, weight_map, index total_size) of the safetensors weights in ``folder``.

    The index names the shards when there is one; otherwise ``model.safetensors``; otherwise every
    ``*.safetensors`` directly in the folder (not in sub-folders such as ``original/``).
    """
    index_path = folder / INDEX_NAME
    if index_path.is_file():
        index = read_json_capped(index_path, "the shard index")
        wm = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(wm, dict) or not wm or not all(isinstance(v, str) for v in wm.values()):
            raise SafetensorsError(f"{index_path}: weight_map is missing or not a name -> file map",
                                   hint="download the index again")
        total = (index.get("metadata") or {}).get("total_size") if isinstance(index.get("metadata"), dict) else None
        files = sorted(set(wm.values()))
        check_shard_names(files, str(index_path))
        return files, wm, int(total) if isinstance(total, (int, float)) and not isinstance(total, bool) else None
    if (folder / SINGLE_NAME).is_file():
        return [SINGLE_NAME], None, None
    return sorted(p.name for p in folder.glob("*.safetensors") if p.is_file()), None, None


def check_shard_names(names: Iterable[str], where: str) -> None:
    """Shard names from an index are plain file names: no folder part, no "..", no hidden file (a
    local index or the Hub's; a name such as ``../../x.safetensors`` would read or cache outside
    the checkpoint)."""
    for f in names:
        if "/" in f or "\\" in f or f.startswith(".") or not f or "\x00" in f:
            raise SafetensorsError(f"{where}: shard name {f!r} is not a plain file name",
                                   hint="the index is damaged or hostile; a shard sits beside the index")


def check_against_index(table_names: dict[str, str], weight_map: dict[str, str] | None, where: str) -> None:
    """Every tensor the index names is in the shard it names, and no shard holds extra tensors."""
    if weight_map is None:
        return
    for name, file in weight_map.items():
        got = table_names.get(name)
        if got is None:
            raise SafetensorsError(f"{where}: the index names tensor {name!r} in {file}, which its headers lack",
                                   hint="the shards and the index do not match; download them again")
        if got != file:
            raise SafetensorsError(f"{where}: the index puts {name!r} in {file}, the headers in {got}")
    extra = set(table_names) - set(weight_map)
    if extra:
        raise SafetensorsError(f"{where}: {len(extra)} tensor(s) in the shards are not in the index "
                               f"(e.g. {sorted(extra)[0]!r})", hint="the shards and the index do not match")


def build_table(parts: list[tuple[list[TensorRecord], dict, FileRecord]], *, source: str,
                weight_map: dict[str, str] | None, index_total: int | None) -> CheckpointTable:
    tensors: list[TensorRecord] = []
    seen: dict[str, str] = {}
    files: list[FileRecord] = []
    meta: dict[str, object] = {}
    for ts, m, fr in parts:
        files.append(fr)
        meta.update(m)
        for t in ts:
            if t.name in seen:
                raise SafetensorsError(f"{source}: tensor {t.name!r} is in both {seen[t.name]} and {t.file}",
                                       hint="a folder should hold one copy of the weights")
            seen[t.name] = t.file
            tensors.append(t)
    check_against_index(seen, weight_map, source)
    return CheckpointTable(kind="safetensors", source=source, tensors=tensors, files=files, metadata=meta,
                           index_total_size=index_total)


def read_folder(folder: Path) -> CheckpointTable | None:
    """The header-exact table of the safetensors weights in ``folder`` (None when it has none)."""
    files, wm, total = shard_files(folder)
    if not files:
        return None
    parts = []
    for f in files:
        p = folder / f
        if not p.is_file():
            raise SafetensorsError(f"{folder}: the index names {f}, which is not in the folder",
                                   hint="download the missing shard, or all of them again")
        parts.append(read_file_header(p))
    return build_table(parts, source=str(folder), weight_map=wm, index_total=total)


def read_single_file(path: Path) -> CheckpointTable:
    part = read_file_header(path)
    return build_table([part], source=str(path), weight_map=None, index_total=None)

