"""The calibration store: a YAML file of residuals from engine logs. EDGE.

Where it lives (first that applies):
  1. ``--store PATH`` on the command line;
  2. the ``FITCALC_CALIBRATION`` environment variable;
  3. ``$XDG_DATA_HOME/fitcalc/calibration.yaml``, else ``~/.local/share/fitcalc/calibration.yaml``.

Writes go to a temporary file in the same folder, then replace the store in one rename, so a
store is never half-written (``fitcalc.edges.report.output.write_atomic``: a symlinked store is written
at its target, a device or FIFO refused). Read, merge and write happen under an exclusive
``fcntl`` lock on ``<store>.lock`` beside it, so concurrent ``reconcile --save`` runs queue up
instead of each renaming its own copy over the others' (issue #17: 20 writers kept 15-25 of 100
entries). Reads are capped and validated (``extra="forbid"``, residuals bounded:
``fitcalc.core.calibration.MAX_RESIDUAL_RATIO``) like every data file (``fitcalc.edges.catalog``). The format
is ``fitcalc.core.calibration.CalibrationFile``.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from fitcalc.core.calibration import CalibrationEntry, CalibrationFile, merge
from fitcalc.core.errors import InputError

MAX_STORE_BYTES = 32 << 20  # about 100k residuals
ENV_PATH = "FITCALC_CALIBRATION"
ENV_ON = "FITCALC_CALIBRATED"  # "1": fit/plan use the store without --calibrated
LOCK_WAIT_S = 30.0  # a save holds the lock for milliseconds; 30 s of waiting means a stuck writer


def store_path(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_PATH)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fitcalc" / "calibration.yaml"


def calibrated_by_env() -> bool:
    return os.environ.get(ENV_ON, "").strip().lower() in ("1", "true", "yes", "on")


def load(path: Path) -> CalibrationFile:
    """The store at ``path``; a missing file is an empty store."""
    from fitcalc.edges import catalog

    if not path.exists():
        return CalibrationFile()
    _check_store_path(path)
    text = catalog.read_text_capped(path, MAX_STORE_BYTES, what="calibration store")
    data = catalog.load_yaml_text(text, str(path))
    if data is None:
        return CalibrationFile()
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a calibration store (expected a mapping)",
                         hint="move it aside; `fitcalc reconcile --save` writes a new one")
    try:
        return CalibrationFile.model_validate(data)
    except Exception as e:  # pydantic's ValidationError: one line through the catalog's formatter
        from pydantic import ValidationError

        if isinstance(e, ValidationError):
            raise catalog.validation_error_to_spec_error(e, str(path)) from None
        raise


def _check_store_path(path: Path) -> None:
    """A store is a regular file (or a link to one); a folder, device or FIFO is refused in one line."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # missing: created on save
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a folder, not a calibration store",
                         hint=f"pass --store FILE.yaml (e.g. {path / 'calibration.yaml'})")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: not a regular file (a device, FIFO or socket) for the calibration store",
                         hint=f"pass --store PATH or set {ENV_PATH} to a .yaml file")


@contextlib.contextmanager
def _locked(path: Path, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold an exclusive lock on ``<store>.lock`` (created beside the store, never removed: removing
    it would let two writers lock two different files)."""
    import fcntl

    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as e:
        raise InputError(f"{lock_path}: cannot open the calibration store's lock file ({e.strerror})",
                         hint=f"pass --store PATH or set {ENV_PATH} to a file in a folder you can write") from None
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise InputError(f"{path}: another fitcalc has held the calibration store's lock for "
                                     f"{wait_s:g} s", hint=f"wait for it, or remove {lock_path} if no "
                                                           "fitcalc is running") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def append(path: Path, entries: list[CalibrationEntry]) -> tuple[int, int]:
    """Add entries to the store (creating it), skipping residuals of a log already stored. (Each
    entry is bounded when it is made: ``fitcalc.core.calibration.entries_from``.)"""
    from fitcalc.edges.report.output import write_atomic

    _check_store_path(path)
    with _locked(path):
        current = load(path)
        merged, added, skipped = merge(current.entries, entries)
        if added == 0:
            return 0, skipped
        data = CalibrationFile(entries=merged).model_dump(mode="json")
        text = ("# fitcalc calibration store: residuals of engine logs (fitcalc reconcile --save).\n"
                "# docs/reconcile.md describes the fields.\n" + yaml.safe_dump(data, sort_keys=False, width=120))
        try:
            write_atomic(path, text)
        except InputError as e:
            raise InputError(f"{path}: cannot write the calibration store ({e.message})",
                             hint=f"pass --store PATH or set {ENV_PATH} to a writable file") from None
    return added, skipped


def today() -> str:
    return datetime.date.today().isoformat()


def save_residuals(result, log_sha256: str, store: str | None, log_name: str):
    """Append a reconciled log's residuals to the store; the result, with what was saved and where."""
    from fitcalc.core import calibration

    path = store_path(store)
    entries = calibration.entries_from(result, log_sha256, today(), log_name=log_name)
    added, skipped = append(path, entries)
    note = []
    if skipped:
        note.append(f"{skipped} residual(s) of this log were already in the store")
    if result.gpu_family is None:
        note.append("no GPU family known (pass --gpu with a catalog id): fit cannot match these residuals")
    return result.model_copy(update={"saved": added, "store": str(path), "notes": [*result.notes, *note]})
