"""Output written without replacing what fitcalc does not own (issue #17): `report -o`, `check
--junit`, `verify --record` and the calibration store follow a symbolic link to its target and
refuse a device, FIFO or socket in one line; stdout errors are one line; a signal removes temporary
files and `fitcalc-verify-*` folders."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.hostile.conftest import REPO, cli, fitcalc

SPEC = "models: [gpt-oss-20b]\ngpus: [h100-sxm]\ncontexts: [8192]\nassert: {must_fit: true}\n"


@pytest.fixture
def spec(tmp_path):
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC, encoding="utf-8")
    return str(p)


def test_report_to_a_device_is_refused_and_the_device_kept(spec):
    # As root, `-o /dev/null` replaced the device node with a regular file and said "wrote".
    r = cli("report", spec, "-o", "/dev/null", "--format", "md")
    assert r.code == 1 and "it is a character device, not a regular file" in r.one_line()
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_junit_to_a_fifo_is_refused_without_blocking(spec, tmp_path):
    fifo = tmp_path / "out.xml"
    os.mkfifo(fifo)
    r = cli("check", spec, "--junit", str(fifo))
    assert r.code == 1 and "it is a FIFO" in r.one_line()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_report_through_a_symlink_writes_its_target_and_keeps_the_link(spec, tmp_path):
    target = tmp_path / "real.md"
    target.write_text("old\n")
    link = tmp_path / "link.md"
    link.symlink_to(target)
    r = cli("report", spec, "-o", str(link))
    assert r.code == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("# fitcalc report")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_replaced_report_keeps_its_permissions(spec, tmp_path):
    out = tmp_path / "r.md"
    out.write_text("old\n")
    out.chmod(0o640)
    assert cli("report", spec, "-o", str(out)).code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and out.read_text() != "old\n"


def test_junit_is_well_formed_with_control_characters_in_names(tmp_path):
    # A scenario name with \x01 and \x1b made ElementTree write XML no parser accepts.
    p = tmp_path / "spec.yaml"
    p.write_text('scenarios:\n  - {name: "bad\\x01name\\x1b[31m", model: gpt-oss-20b, gpu: h100-sxm, context: 8192}\n'
                 "assert: {must_fit: true}\n", encoding="utf-8")
    out = tmp_path / "j.xml"
    r = cli("check", str(p), "--junit", str(out))
    assert r.code == 0, r.stderr
    root = ET.parse(out).getroot()  # raises on XML that is not well-formed
    names = [c.get("name") for c in root.iter("testcase")]
    assert any("bad\\x01name\\x1b[31m" in n for n in names)


def test_html_report_where_nothing_fits_prints_no_warnings(tmp_path):
    p = tmp_path / "spec.yaml"
    p.write_text("models: [gpt-oss-120b]\ngpus: [8GiB]\ncontexts: [8192]\n", encoding="utf-8")
    r = fitcalc("report", str(p), "-o", str(tmp_path / "r.html"), budget=4.0)  # matplotlib's import is ~1 s
    assert r.code == 0 and r.one_line().startswith("wrote ")


@pytest.mark.parametrize("args", [["size", "gpt-oss-20b"], ["size", "gpt-oss-20b", "--json"], ["models"]])
def test_stdout_on_a_full_disk(args):
    with open("/dev/full", "w") as full:
        r = fitcalc(*args, stdout=full)
    assert r.code == 1 and "cannot write the output: No space left on device" in r.one_line()


def test_store_that_is_a_folder(tmp_path):
    r = cli("fit", "gpt-oss-20b", "--gpu", "h100-sxm", "--calibrated", "--store", str(tmp_path))
    assert r.code == 1 and "is a folder, not a calibration store" in r.one_line()


def test_verify_record_is_checked_before_the_measurement(tmp_path):
    # The path was found unwritable only after the measurement, and the run's results were lost.
    r = cli("verify", "gpt-oss-20b", "--device", "cpu", "--record", str(tmp_path / "no" / "such" / "runs.jsonl"))
    assert r.code == 1 and "folder" in r.one_line() and "does not exist" in r.one_line()


def test_a_signal_during_a_write_leaves_no_temporary_file(tmp_path):
    # SIGTERM arrives between writing the temporary file and renaming it (fsync is the last step
    # before the rename); fitcalc's handler turns it into an exception, and the file is removed.
    code = (
        "import os, signal, sys\n"
        "from fitcalc.shell.cli import _stop_on_signal\n"
        "signal.signal(signal.SIGTERM, _stop_on_signal)\n"
        "from fitcalc.edges.report import output\n"
        "real = os.fsync\n"
        "os.fsync = lambda fd: (os.kill(os.getpid(), signal.SIGTERM), real(fd))\n"
        "output.write_atomic(sys.argv[1], 'report')\n"
    )
    out = tmp_path / "r.md"
    r = subprocess.run([sys.executable, "-c", code, str(out)], cwd=str(REPO), capture_output=True, timeout=20,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode != 0 and b"KeyboardInterrupt" in r.stderr
    assert list(tmp_path.iterdir()) == []  # neither the report nor its temporary file


def test_an_interrupted_distributed_verify_removes_its_run_folder(tmp_path, monkeypatch):
    import tempfile

    from fitcalc.edges.measure import launch, run

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    class _Job:
        def model_copy(self, update):
            return self

    def interrupted(job, progress):
        raise KeyboardInterrupt("signal 15")

    monkeypatch.setattr(launch, "launch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run._spawn_ranks(_Job(), None, 10.0)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("fitcalc-verify-")]


def test_sigterm_exits_like_ctrl_c(tmp_path):
    fifo = tmp_path / "log"
    os.mkfifo(fifo)  # reconcile waits for a writer: time to send the signal
    p = subprocess.Popen([sys.executable, "-m", "fitcalc", "reconcile", str(fifo)], cwd=str(REPO),
                         env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE)
    try:
        import time

        time.sleep(1.5)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert p.returncode == 130 and b"Traceback" not in err
