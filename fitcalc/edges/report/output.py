"""Where a report goes: the format from the file's suffix, an atomic write. EDGE.

A report is rendered whole in memory and then written to a temporary file in the target's folder
and moved over the target with ``os.replace`` (atomic on one filesystem), so a failure at any point
leaves either the old file or none, never a half-written one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fitcalc.core.errors import InputError

SUFFIXES = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".json": "json", ".yaml": "yaml",
            ".yml": "yaml", ".xml": "junit"}


def pick_format(out: str | None, fmt: str | None, allowed: tuple[str, ...]) -> str:
    """``--format`` if given, else OUT's suffix, else Markdown (for stdout)."""
    if fmt:
        f = fmt.strip().lower()
        if f == "markdown":
            f = "md"
        if f not in allowed:
            raise InputError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(allowed)}")
        return f
    if out is None or out == "-":
        return "md"
    suffix = Path(out).suffix.lower()
    f = SUFFIXES.get(suffix)
    if f is None or f not in allowed:
        raise InputError(f"cannot tell the format from {out!r}",
                         hint=f"name it .md, .html, .json or .yaml, or pass --format {'|'.join(allowed)}")
    return f


def check_writable(out: str | Path) -> None:
    """Fail before the work when OUT cannot be written (no folder, not a folder, no permission)."""
    p = Path(out)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise InputError(f"cannot write {out}: it is a folder", hint="give a file name, e.g. report.html")
    if parent.exists() and not parent.is_dir():
        raise InputError(f"cannot write {out}: {parent} is a file, not a folder", hint="choose another path")
    if not parent.is_dir():
        raise InputError(f"cannot write {out}: folder {parent} does not exist", hint="create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {out}: no permission to write in {parent}",
                         hint="choose a folder you can write to")
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(f"cannot write {out}: the file is read-only", hint="remove it or choose another name")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(out: str | Path, text: str) -> None:
    p = Path(out)
    check_writable(p)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise InputError(f"cannot write {out}: {e.strerror}", hint="choose a folder you can write to") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report is an ordinary file
        os.replace(tmp, p)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise InputError(f"cannot write {out}: {e.strerror}", hint="check the path and free space") from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
