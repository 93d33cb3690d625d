"""The calibration store: a YAML file of residuals from engine logs. EDGE.

Where it lives (first that applies):
  1. ``--store PATH`` on the command line;
  2. the ``FITCALC_CALIBRATION`` environment variable;
  3. ``$XDG_DATA_HOME/fitcalc/calibration.yaml``, else ``~/.local/share/fitcalc/calibration.yaml``.

Writes go to a temporary file in the same folder, then replace the store in one rename, so a
store is never half-written. Reads are capped and validated (``extra="forbid"``) like every data
file (``fitcalc.edges.catalog``). The format is ``fitcalc.core.calibration.CalibrationFile``.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path

import yaml

from fitcalc.core.calibration import CalibrationEntry, CalibrationFile, merge
from fitcalc.core.errors import InputError

MAX_STORE_BYTES = 32 << 20  # about 100k residuals
ENV_PATH = "FITCALC_CALIBRATION"
ENV_ON = "FITCALC_CALIBRATED"  # "1": fit/plan use the store without --calibrated


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


def append(path: Path, entries: list[CalibrationEntry]) -> tuple[int, int]:
    """Add entries to the store (creating it), skipping residuals of a log already stored."""
    current = load(path)
    merged, added, skipped = merge(current.entries, entries)
    if added == 0:
        return 0, skipped
    data = CalibrationFile(entries=merged).model_dump(mode="json")
    text = ("# fitcalc calibration store: residuals of engine logs (fitcalc reconcile --save).\n"
            "# docs/reconcile.md describes the fields.\n" + yaml.safe_dump(data, sort_keys=False, width=120))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".calibration-", suffix=".yaml", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(f"{path}: cannot write the calibration store ({e.strerror})",
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
