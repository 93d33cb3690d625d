"""`reconcile` on pipes and FIFOs (issue #17): a FIFO nobody writes to is refused after a wait
instead of blocking forever; `-` and `/dev/stdin` read a pipe from its first byte (the binary check
used to consume the start of the pipe)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest

from fitcalc.core.errors import InputError
from fitcalc.edges.logfile import LogReader
from tests.hostile.conftest import fitcalc
from tests.reconcile import logs

# A vLLM V0 log of Llama-3.1-8B-Instruct (tests/reconcile/logs.py; it states the GPU's memory):
# the same rows must come out whether it is read from a file, from stdin or from a FIFO.
ARGS = ["--json"]


@pytest.fixture
def log_file(tmp_path):
    p = tmp_path / "vllm.log"
    p.write_text(logs.VLLM_V0_PAIRS, encoding="utf-8")
    return p


def _rows(out: str) -> list:
    return [(r["id"], r["logged_bytes"], r["predicted_bytes"]) for r in json.loads(out)["rows"]]


def test_fifo_without_a_writer_is_refused_not_waited_on_forever(tmp_path):
    fifo = tmp_path / "log"
    os.mkfifo(fifo)
    t = time.monotonic()
    with pytest.raises(InputError, match="nothing to read after 0.3 s"):
        LogReader(fifo, wait_s=0.3)
    assert time.monotonic() - t < 1.0


def test_fifo_whose_writer_comes_late_is_read(tmp_path, log_file):
    fifo = tmp_path / "log"
    os.mkfifo(fifo)

    def writer():
        time.sleep(0.2)
        with open(fifo, "w") as f:
            f.write(log_file.read_text())

    threading.Thread(target=writer, daemon=True).start()
    assert "".join(LogReader(fifo, wait_s=5)) == log_file.read_text()


def test_a_stream_stops_at_its_deadline(tmp_path):
    # journalctl -f never closes the pipe: the read stops, with a note, instead of waiting forever.
    fifo = tmp_path / "log"
    os.mkfifo(fifo)
    hold = threading.Event()

    def writer():
        with open(fifo, "w") as f:
            f.write("INFO first line\n")
            f.flush()
            hold.wait(5)

    threading.Thread(target=writer, daemon=True).start()
    r = LogReader(fifo, wait_s=5, deadline_s=0.4)
    assert list(r) == ["INFO first line\n"]
    hold.set()
    assert any("stopped reading after 0.4 s" in n for n in r.summary())


@pytest.mark.parametrize("name", ["-", "/dev/stdin"])
def test_a_piped_log_reads_like_the_file(log_file, name):
    from_file = fitcalc("reconcile", str(log_file), *ARGS, budget=2.0)
    assert from_file.code == 0, from_file.stderr
    piped = subprocess.Popen(["cat", str(log_file)], stdout=subprocess.PIPE)
    try:
        r = fitcalc("reconcile", name, *ARGS, stdin=piped.stdout, budget=2.0)
    finally:
        piped.stdout.close()
        piped.wait()
    assert r.code == 0, r.stderr
    assert _rows(r.stdout) == _rows(from_file.stdout)


def test_stdin_that_is_empty():
    r = fitcalc("reconcile", "-", input_bytes=b"")
    assert r.code == 1 and "-: the file is empty" in r.one_line()
