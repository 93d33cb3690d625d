"""The log reader: streamed, bounded, text only."""

import tracemalloc

import pytest

from fitcalc.core.errors import InputError
from fitcalc.edges.logfile import LogReader

MiB = 2**20


def test_reads_lines_and_hashes_what_it_read(tmp_path):
    p = tmp_path / "a.log"
    p.write_bytes(b"one\ntwo\nthree\n")
    r = LogReader(p)
    assert list(r) == ["one\n", "two\n", "three\n"]
    import hashlib

    assert r.sha256 == hashlib.sha256(b"one\ntwo\nthree\n").hexdigest()
    assert r.summary() == []


@pytest.mark.parametrize("content,needle", [
    (b"", "empty"),
    (b"\x00\x01\x02\x03" * 100, "binary"),
    (bytes(range(0, 32)) * 64, "binary"),  # control bytes, no NUL after the first
])
def test_refuses_empty_and_binary_files(tmp_path, content, needle):
    p = tmp_path / "x.log"
    p.write_bytes(content)
    with pytest.raises(InputError, match=needle):
        LogReader(p)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        LogReader(tmp_path / "nope.log")
    with pytest.raises(InputError, match="folder"):
        LogReader(tmp_path)


def test_cut_last_line_is_dropped_and_said(tmp_path):
    p = tmp_path / "cut.log"
    p.write_bytes(b"load_tensors:        CUDA0 model buffer size =  1242.03 MiB\nllama_context: n_ctx = 13")
    r = LogReader(p)
    assert list(r) == ["load_tensors:        CUDA0 model buffer size =  1242.03 MiB\n"]
    assert r.cut_last_line and "no newline" in r.summary()[0]


def test_binary_lines_later_and_overlong_lines_are_skipped(tmp_path):
    p = tmp_path / "mixed.log"
    p.write_bytes(b"first\n" + b"bin\x00ary\n" + b"x" * 5000 + b"\nlast\n")
    r = LogReader(p, max_line=1024)
    assert list(r) == ["first\n", "last\n"]
    assert (r.skipped_binary, r.skipped_long) == (1, 1)


def test_a_1_gib_file_is_read_up_to_the_cap_in_bounded_memory(tmp_path):
    # A sparse 1 GiB file: a text head, then holes that read as NUL bytes (no disk used).
    p = tmp_path / "huge.log"
    with p.open("wb") as f:
        f.write(b"INFO starting\n" * 1000)  # 14 kB of text, more than the 8 KiB sniffed
        f.truncate(1 << 30)
    tracemalloc.start()
    r = LogReader(p, max_bytes=8 * MiB)
    n = sum(1 for _ in r)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 1000
    assert r.stopped_at_cap and r.bytes_read <= 8 * MiB + 64 * 1024 + 1
    assert peak < 2 * MiB, peak
    assert "of 1.00 GiB" in r.summary()[0]
