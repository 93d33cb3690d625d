"""fitcalc's errors: each one line that says what is wrong, plus a hint that says how to fix it.

CORE: standard library only. The CLI maps these to exit code 1 through one table
(``fitcalc.shell.cli``); a traceback is shown only with ``FITCALC_DEBUG=1``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FitcalcError(Exception):
    """A user-facing error. ``str(e)`` is the one-line message; ``e.hint`` says what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.replace("\n", " ")
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class UnitError(FitcalcError):
    """A size, count or unit that cannot be read."""


class SpecError(FitcalcError):
    """A data file (model spec, GPU profile, report spec) that is malformed; names the file and field."""

    def __init__(self, message: str, hint: str | None = None, *, path: str | None = None, field: str | None = None):
        where = ""
        if path:
            where = f"{path}"
            if field:
                where += f": {field}"
            where += ": "
        elif field:
            where = f"{field}: "
        super().__init__(where + message, hint)
        self.path = path
        self.field = field


class UnknownIdError(FitcalcError):
    """An id not in a catalog; the message names the closest ids."""

    def __init__(self, kind: str, given: str, known: Iterable[str], hint: str | None = None,
                 suggestions: list[str] | None = None):
        known = list(known)
        if suggestions is not None:
            # The caller ranked candidates itself (GPU names match on aliases, not ids).
            close = list(suggestions)
        else:
            close = difflib.get_close_matches(given.lower(), [k.lower() for k in known], n=3, cutoff=0.5)
            by_lower = {k.lower(): k for k in known}
            close = [by_lower[c] for c in close]
        if close:
            msg = f"unknown {kind} {given!r}; did you mean: {', '.join(close)}?"
        else:
            msg = f"unknown {kind} {given!r}"
        super().__init__(msg, hint or _list_hint(kind, known))
        self.close_matches = close


def _list_hint(kind: str, known: list[str]) -> str:
    """Where the known ids are: the command that lists them, or the ids themselves when no command
    does (engines are few)."""
    command = {"model": "models", "GPU": "gpus", "recipe": "recipes"}.get(kind)
    if command is not None:
        return f"`fitcalc {command}` lists the known ids"
    if known and len(known) <= 12:
        return f"one of: {', '.join(known)}"
    return "`fitcalc --help` lists the commands"


class InputError(FitcalcError):
    """A value on the command line or in a workload that cannot be used (context <= 0, ...)."""


class ModelSourceError(FitcalcError):
    """A model source (folder, file, Hub id) that cannot be read."""


class MeasureUnavailable(FitcalcError):
    """Measurement needs the `measure` extra (torch) or a device that is not here."""
