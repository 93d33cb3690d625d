"""Reading a log file: streamed, bounded, text only. EDGE.

An engine prints its memory figures in the first seconds of its life, so the start of a log is
what matters; logs that ran for days can be gigabytes. ``LogReader`` reads in blocks and splits
lines itself, with a cap on bytes, lines and line length, never holding more than a block and one
line: a 1 GB file costs ``max_bytes`` of reading and one line of memory. Binary data is refused at
the start (NUL bytes in the first line, or mostly non-text bytes in the first block) and skipped
later (a line with NUL bytes is dropped and counted). A last line without its newline is dropped
as cut off (a truncated copy of a log).

Pipes and FIFOs (``-`` for stdin, ``/dev/stdin``, ``journalctl ... |``, a named pipe) are read
once, from one descriptor: the block the binary check looks at is the block the lines start with
(reading it twice would lose the start of a pipe). They are opened non-blocking, so a FIFO nobody
writes to is refused after ``WAIT_FIRST_BYTES_S`` instead of blocking ``open()`` forever, and the
whole read stops after ``READ_DEADLINE_S`` (``journalctl -f`` never ends), with a note.
"""

from __future__ import annotations

import hashlib
import os
import select
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from fitcalc.core.errors import InputError
from fitcalc.core.units import MiB, format_bytes

MAX_LOG_BYTES = 64 * MiB  # the start-up section of any engine is a few hundred KiB
MAX_LOG_LINES = 2_000_000
MAX_LINE_BYTES = 64 * 1024  # longer lines (progress bars, binary) are skipped
WAIT_FIRST_BYTES_S = 10.0  # a pipe or FIFO: how long to wait for the writer's first bytes
READ_DEADLINE_S = 60.0  # a pipe or FIFO: how long the whole read may take
_SNIFF_BYTES = 8192
_BLOCK = 64 * 1024
STDIN = "-"


class LogReader:
    """Iterate over the text lines of a log within the caps; the counters say what was read."""

    def __init__(self, path: str | Path, max_bytes: int = MAX_LOG_BYTES, max_lines: int = MAX_LOG_LINES,
                 max_line: int = MAX_LINE_BYTES, wait_s: float = WAIT_FIRST_BYTES_S,
                 deadline_s: float = READ_DEADLINE_S) -> None:
        self.name = str(path)
        self.path = Path(path)
        self.max_bytes, self.max_lines, self.max_line = max_bytes, max_lines, max_line
        self.wait_s, self.deadline_s = wait_s, deadline_s
        self.bytes_read = 0
        self.lines_read = 0
        self.skipped_binary = 0
        self.skipped_long = 0
        self.cut_last_line = False
        self.stopped_at_cap = False
        self.timed_out = False
        self.file_size = 0
        self.is_stream = False  # a pipe, FIFO or character device: read once, with deadlines
        self._fd: int | None = None
        self._own_fd = True
        self._head = b""
        self._eof = False
        self._deadline = 0.0
        self._sha = hashlib.sha256()
        self._open()
        try:
            self._check_head()
        except BaseException:
            self._close()
            raise

    # ---- opening -------------------------------------------------------------------------

    def _open(self) -> None:
        if self.name == STDIN:
            self._open_stdin()
            return
        p = self.path
        try:
            st = p.stat()
        except FileNotFoundError:
            raise InputError(f"{p}: no such file", hint="give the path of an engine's start-up log") from None
        except OSError as e:
            raise InputError(f"{p}: cannot read ({e.strerror})", hint="check the path and its permissions") from None
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{p}: is a folder, not a log file", hint="give the log file itself")
        self.is_stream = not stat.S_ISREG(st.st_mode)
        self.file_size = st.st_size if not self.is_stream else 0
        flags = os.O_RDONLY | (os.O_NONBLOCK if self.is_stream else 0)
        try:
            self._fd = os.open(p, flags)
        except OSError as e:
            raise InputError(f"{p}: cannot read ({e.strerror})", hint="check the path and its permissions") from None
        if self.is_stream and os.isatty(self._fd):
            self._close()
            raise InputError(f"{p}: is a terminal, not a log", hint="pipe a log into it: journalctl -u vllm | "
                                                                    "fitcalc reconcile -")

    def _open_stdin(self) -> None:
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):
            raise InputError("-: there is no standard input to read", hint="give the log's path instead") from None
        if os.isatty(fd):
            raise InputError("-: standard input is a terminal, not a log",
                             hint="pipe a log into it (journalctl -u vllm | fitcalc reconcile -) or give its path")
        self._fd, self._own_fd = fd, False
        self.is_stream = not stat.S_ISREG(os.fstat(fd).st_mode)
        if self.is_stream:
            os.set_blocking(fd, False)

    def _close(self) -> None:
        if self._fd is not None and self._own_fd:
            os.close(self._fd)
        elif self._fd is not None and self.is_stream:
            os.set_blocking(self._fd, True)  # stdin is the caller's: leave it as it was
        self._fd = None

    # ---- reading blocks ------------------------------------------------------------------

    def _read_block(self, size: int, until: float | None) -> bytes:
        """Up to ``size`` bytes; b"" at end of file. A stream waits until ``until`` (monotonic), then
        raises TimeoutError."""
        assert self._fd is not None
        if not self.is_stream:
            return os.read(self._fd, size)
        while True:
            try:
                return os.read(self._fd, size)
            except BlockingIOError:
                left = (until - time.monotonic()) if until is not None else None
                if left is not None and left <= 0:
                    raise TimeoutError from None
                select.select([self._fd], [], [], left)

    def _first_block(self) -> bytes:
        """The first block. A FIFO opened before its writer reads as empty (end of file) until the
        writer opens it, so a stream given by path is polled until ``wait_s`` before "empty"."""
        if not self.is_stream:
            return self._read_block(_SNIFF_BYTES, None)
        until = time.monotonic() + self.wait_s
        while True:
            block = self._read_block(_SNIFF_BYTES, until)
            if block or self.name == STDIN:
                return block
            if time.monotonic() >= until:
                raise TimeoutError
            time.sleep(0.02)

    def _check_head(self) -> None:
        where = self.name
        self._deadline = time.monotonic() + self.deadline_s
        try:
            head = self._first_block()
            # a regular file gives its first block at once; a pipe gives what the writer has written
            while head and len(head) < _SNIFF_BYTES and not self.is_stream:
                more = self._read_block(_SNIFF_BYTES - len(head), None)
                if not more:
                    break
                head += more
        except TimeoutError:
            raise InputError(f"{where}: nothing to read after {self.wait_s:g} s (a pipe or FIFO nobody writes to)",
                             hint="start the writer first, or save the log to a file and give its path") from None
        except OSError as e:
            raise InputError(f"{where}: cannot read ({e.strerror})", hint="check the path and its permissions") from None
        if not head:
            raise InputError(f"{where}: the file is empty", hint="give the log the engine printed at start-up")
        if b"\x00" in head.split(b"\n", 1)[0] or _mostly_binary(head):
            raise InputError(f"{where}: not a text log (binary data in the first {len(head):,} bytes)",
                             hint="give the engine's text log (stdout/stderr or journalctl output)")
        self._head = head

    def _blocks(self) -> Iterator[bytes]:
        """The head block, then the rest, block by block; a stream stops at its deadline."""
        head, self._head = self._head, b""
        if head:
            yield head
        while not self._eof:
            try:
                block = self._read_block(_BLOCK, self._deadline if self.is_stream else None)
            except TimeoutError:
                self.timed_out = True
                return
            if not block:
                self._eof = True
                return
            yield block

    @property
    def sha256(self) -> str:
        """Hash of the bytes read: identifies the log for the calibration store."""
        return self._sha.hexdigest()

    # ---- lines ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._lines()
        finally:
            self._close()

    def _take(self, raw: bytes) -> None:
        self.bytes_read += len(raw)
        self._sha.update(raw)

    def _lines(self) -> Iterator[str]:
        rest = b""  # the start of a line whose newline has not arrived yet
        skipping = False  # inside an over-long line: drop bytes up to its newline
        blocks = self._blocks()
        for block in blocks:
            buf, pos = rest + block, 0
            while True:
                if self.bytes_read >= self.max_bytes or self.lines_read >= self.max_lines:
                    self.stopped_at_cap = pos < len(buf) or any(True for b in blocks if b)
                    return
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    break
                raw, pos = buf[pos:nl + 1], nl + 1
                self._take(raw)
                if skipping:
                    skipping = False
                    continue
                if len(raw) > self.max_line + 1:
                    self.skipped_long += 1
                    continue
                if b"\x00" in raw:
                    self.skipped_binary += 1
                    continue
                self.lines_read += 1
                yield raw.decode("utf-8", errors="replace")
            rest = buf[pos:]
            if len(rest) > self.max_line:
                # an over-long line: its bytes are counted, not kept, up to its newline
                if not skipping:
                    self.skipped_long += 1
                skipping = True
                self._take(rest)
                rest = b""
        if rest and not skipping:
            self.cut_last_line = True

    def summary(self) -> list[str]:
        """Notes on what was not read, for the report."""
        notes = []
        if self.stopped_at_cap:
            of = f" of {format_bytes(self.file_size)}" if self.file_size else ""
            notes.append(f"read the first {format_bytes(self.bytes_read)} ({self.lines_read:,} lines){of}: "
                         "the start-up section is at the top")
        if self.timed_out:
            notes.append(f"stopped reading after {self.deadline_s:g} s ({self.lines_read:,} lines): the writer was "
                         "still open (journalctl -f?)")
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
