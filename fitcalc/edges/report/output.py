"""Where a report goes: the format from the file's suffix, an atomic write. EDGE.

A report is rendered whole in memory and then written to a temporary file in the target's folder
and moved over the target with ``os.replace`` (atomic on one filesystem), so a failure at any point
leaves either the old file or none, never a half-written one. What the target is decides where
the bytes go: a symbolic link is followed (its target is replaced, the link stays); a device, FIFO
or socket (``-o /dev/null``) is refused in one line, never renamed over.
"""

from __future__ import annotations

import os
import stat
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


def target_path(out: str | Path) -> Path:
    """Where OUT's bytes go: OUT itself, or the file a symbolic link (chain) points at. The link
    stays a link; renaming over it would replace the link with a file (issue #17)."""
    p = Path(out)
    return Path(os.path.realpath(p)) if p.is_symlink() else p


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_writable(out: str | Path) -> None:
    """Fail before the work when OUT cannot be written (no folder, not a folder, no permission, or not
    a regular file: a device such as /dev/null, a FIFO or a socket is refused, never replaced)."""
    p = target_path(out)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise InputError(f"cannot write {out}: it is a folder", hint="give a file name, e.g. report.html")
    if p.exists() and not stat.S_ISREG(p.stat().st_mode):
        raise InputError(f"cannot write {out}: it is {_kind(p.stat().st_mode)}, not a regular file",
                         hint="give a file name; without -o (or with -o -) the text goes to stdout")
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


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _keep_owner_and_mode(tmp: str, old: os.stat_result | None) -> None:
    """The new file gets the replaced file's permissions (and owner, where allowed), or a new file's."""
    if old is None:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report is an ordinary file
        return
    os.chmod(tmp, stat.S_IMODE(old.st_mode))
    if hasattr(os, "chown") and (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
        try:
            os.chown(tmp, old.st_uid, old.st_gid)
        except OSError:
            pass  # only root may give a file away; the file is then ours, as any new file would be


def write_atomic(out: str | Path, text: str) -> None:
    """Write ``text`` to OUT in one step: a temporary file beside the target, then a rename over it.

    OUT a symbolic link: its target is written and the link kept. OUT a device, FIFO or socket:
    refused (``check_writable``). An existing file keeps its permissions. A failure or a signal
    (SIGTERM, SIGINT: ``fitcalc.shell.cli`` turns them into exceptions) removes the temporary file.
    """
    check_writable(out)
    p = target_path(out)
    try:
        old: os.stat_result | None = p.stat()
    except FileNotFoundError:
        old = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise InputError(f"cannot write {out}: {e.strerror}", hint="choose a folder you can write to") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _keep_owner_and_mode(tmp, old)
        os.replace(tmp, p)
    except OSError as e:
        _unlink_quietly(tmp)
        raise InputError(f"cannot write {out}: {e.strerror}", hint="check the path and free space") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise
