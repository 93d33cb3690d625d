"""Reading a log file: streamed, bounded, text only. EDGE.

An engine prints its memory figures in the first seconds of its life, so the start of a log is
what matters; logs that ran for days can be gigabytes. ``LogReader`` reads line by line with a
cap on bytes, lines and line length, never holding more than one line: a 1 GB file costs
``max_bytes`` of reading and one line of memory. Binary data is refused at the start (NUL bytes
in the first block) and skipped later (a line with NUL bytes is dropped and counted). A last
line without its newline is dropped as cut off (a truncated copy of a log).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from fitcalc.core.errors import InputError
from fitcalc.core.units import MiB, format_bytes

MAX_LOG_BYTES = 64 * MiB  # the start-up section of any engine is a few hundred KiB
MAX_LOG_LINES = 2_000_000
MAX_LINE_BYTES = 64 * 1024  # longer lines (progress bars, binary) are skipped
_SNIFF_BYTES = 8192


class LogReader:
    """Iterate over the text lines of a log file within the caps; the counters say what was read."""

    def __init__(self, path: str | Path, max_bytes: int = MAX_LOG_BYTES, max_lines: int = MAX_LOG_LINES,
                 max_line: int = MAX_LINE_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes, self.max_lines, self.max_line = max_bytes, max_lines, max_line
        self.bytes_read = 0
        self.lines_read = 0
        self.skipped_binary = 0
        self.skipped_long = 0
        self.cut_last_line = False
        self.stopped_at_cap = False
        self.file_size = 0
        self._sha = hashlib.sha256()
        self._check()

    def _check(self) -> None:
        p = self.path
        if not p.exists():
            raise InputError(f"{p}: no such file", hint="give the path of an engine's start-up log")
        if p.is_dir():
            raise InputError(f"{p}: is a folder, not a log file", hint="give the log file itself")
        try:
            self.file_size = p.stat().st_size
            with p.open("rb") as f:
                head = f.read(_SNIFF_BYTES)
        except OSError as e:
            raise InputError(f"{p}: cannot read ({e.strerror})", hint="check the path and its permissions") from None
        if not head:
            raise InputError(f"{p}: the file is empty", hint="give the log the engine printed at start-up")
        if b"\x00" in head.split(b"\n", 1)[0] or _mostly_binary(head):
            raise InputError(f"{p}: not a text log (binary data in the first {len(head):,} bytes)",
                             hint="give the engine's text log (stdout/stderr or journalctl output)")

    @property
    def sha256(self) -> str:
        """Hash of the bytes read: identifies the log for the calibration store."""
        return self._sha.hexdigest()

    def __iter__(self) -> Iterator[str]:
        with self.path.open("rb") as f:
            while True:
                if self.bytes_read >= self.max_bytes or self.lines_read >= self.max_lines:
                    self.stopped_at_cap = f.read(1) != b""
                    return
                raw = f.readline(self.max_line + 1)
                if not raw:
                    return
                self.bytes_read += len(raw)
                self._sha.update(raw)
                if not raw.endswith(b"\n"):
                    if len(raw) > self.max_line:
                        self.skipped_long += 1
                        # the rest of an over-long line is not text we read: skip to its end
                        while raw and not raw.endswith(b"\n") and self.bytes_read < self.max_bytes:
                            raw = f.readline(self.max_line + 1)
                            self.bytes_read += len(raw)
                            self._sha.update(raw)
                        continue
                    self.cut_last_line = True
                    return
                if b"\x00" in raw:
                    self.skipped_binary += 1
                    continue
                self.lines_read += 1
                yield raw.decode("utf-8", errors="replace")

    def summary(self) -> list[str]:
        """Notes on what was not read, for the report."""
        notes = []
        if self.stopped_at_cap:
            notes.append(f"read the first {format_bytes(self.bytes_read)} ({self.lines_read:,} lines) of "
                         f"{format_bytes(self.file_size)}: the start-up section is at the top")
        if self.skipped_binary:
            notes.append(f"skipped {self.skipped_binary:,} line(s) holding binary data")
        if self.skipped_long:
            notes.append(f"skipped {self.skipped_long:,} line(s) longer than {self.max_line:,} bytes")
        if self.cut_last_line:
            notes.append("the last line has no newline (a cut-off copy?); it was not read")
        return notes


def _mostly_binary(head: bytes) -> bool:
    """More than 30% of bytes outside printable ASCII, whitespace and UTF-8 multi-byte ranges."""
    text = sum(1 for b in head if b in (9, 10, 13) or 32 <= b < 127 or b >= 128)
    return text < 0.7 * len(head)
