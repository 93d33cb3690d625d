"""Budgets for the hostile-input cases (issue #17): each runs fitcalc as a child process under a
memory limit (RLIMIT_AS) and a wall-clock timeout, so a regression fails here instead of hanging
the suite or taking the machine's memory. A case answers with one line on stderr and a documented
exit code (docs/cli.md), never a traceback.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

MEMORY_BUDGET = 300 << 20  # bytes of address space a case may map (python + fitcalc's imports: ~200 MiB)
# CPU seconds (user + system) a case may take, interpreter start-up included (measured: 0.25-0.5 s).
# CPU time, not wall time: the suite shares 2 cores with others, and a loaded machine must not fail
# a case that does no more work than before. A hang that sleeps is caught by KILL_AFTER (wall time).
TIME_BUDGET = 1.0
KILL_AFTER = 20.0  # a hang is killed here and the case fails
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float

    def one_line(self) -> str:
        """The single stderr line of a refusal (asserts there is exactly one, and no traceback)."""
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        assert "Traceback" not in self.stderr, self.stderr
        assert len(lines) == 1, self.stderr
        return lines[0]


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BUDGET, MEMORY_BUDGET))
    resource.setrlimit(resource.RLIMIT_CPU, (int(KILL_AFTER), int(KILL_AFTER) + 1))


def fitcalc(*args: str, stdin=None, stdout=None, env: dict[str, str] | None = None, cwd: Path | None = None,
            budget: float = TIME_BUDGET, input_bytes: bytes | None = None) -> Outcome:
    """Run ``python -m fitcalc ARGS`` from the worktree under the budgets; fails the test past ``budget`` s."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "FITCALC_WIDTH": "120", **(env or {})}
    full_env.pop("FITCALC_DEBUG", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        r = subprocess.run([sys.executable, "-m", "fitcalc", *args], stdin=stdin, stdout=stdout or subprocess.PIPE,
                           stderr=subprocess.PIPE, input=input_bytes, env=full_env, cwd=str(cwd or REPO),
                           timeout=KILL_AFTER, preexec_fn=_limits)
    except subprocess.TimeoutExpired:
        pytest.fail(f"fitcalc {' '.join(args)} hung (killed after {KILL_AFTER:g} s)")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = Outcome(r.returncode, (r.stdout or b"").decode(errors="replace") if stdout is None else "",
                  r.stderr.decode(errors="replace"), seconds)
    assert "MemoryError" not in out.stderr, out.stderr
    assert seconds < budget, f"fitcalc {' '.join(args)} took {seconds:.2f} CPU s (budget {budget:g} s)"
    return out


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    """No case reads or writes the real data directory, calibration store or Hub cache."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("FITCALC_CALIBRATION", "FITCALC_CALIBRATED", "HF_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)


class _Hung(Exception):
    pass


def _alarm(signum, frame):
    raise _Hung()


def cli(*args: str, budget: float = TIME_BUDGET, env: dict[str, str] | None = None) -> Outcome:
    """``fitcalc ARGS`` in this process (typer's CliRunner): for cases whose input is small and whose
    failure mode is a wrong answer, not a hang or a blow-up. CPU time is budgeted like ``fitcalc``'s;
    a hang is interrupted after KILL_AFTER seconds and fails the case."""
    import signal

    from typer.testing import CliRunner

    from fitcalc.shell.cli import app

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, KILL_AFTER)
    t = time.process_time()
    try:
        r = CliRunner().invoke(app, list(args), env={"FITCALC_DEBUG": None, **(env or {})})
    except _Hung:
        pytest.fail(f"fitcalc {' '.join(args)} hung (stopped after {KILL_AFTER:g} s)")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    seconds = time.process_time() - t
    if isinstance(r.exception, _Hung):
        pytest.fail(f"fitcalc {' '.join(args)} hung (stopped after {KILL_AFTER:g} s)")
    assert seconds < budget, f"fitcalc {' '.join(args)} took {seconds:.2f} CPU s (budget {budget:g} s)"
    return Outcome(r.exit_code, r.stdout, r.stderr, seconds)


# The loopback Hub (tests/hubserver.py) with HF_ENDPOINT and HF_HOME pointed at it, shared with
# tests/test_ingest_hub.py; test_hub.py makes it misbehave.
from tests.test_ingest_hub import hub  # noqa: E402, F401
