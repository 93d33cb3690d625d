"""Start the ranks of a distributed `fitcalc verify` on this machine and watch them. EDGE
(processes and files; no torch, so the launcher starts fast and holds no device memory).

Each rank is ``python -m fitcalc.edges.measure.rank JOB.json`` in a session of its own
(``start_new_session``), with the environment torchrun gives its workers: ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` 127.0.0.1 and a free
``MASTER_PORT``. The launcher polls them; as soon as one ends badly it gives the others a short
grace to end by themselves (their collectives fail when a peer is gone), then kills every rank's
process group; past the timeout it kills them all. Whatever happens, no rank outlives the call:
every group gets SIGKILL and every child is reaped, and on Linux each rank also dies with the
launcher (PR_SET_PDEATHSIG).

The outcome names each rank's end: measured, out of memory at a phase, died with a signal,
exited with a code, a fitcalc error, a crash, a failed collective (a consequence: a peer went
away), timed out (and where it waited), or stopped by the launcher.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from fitcalc.core.errors import FitcalcError
from fitcalc.core.exitcodes import VERIFY_OOM
from fitcalc.core.measure.job import RankJob, error_path, log_path, report_path, status_path
from fitcalc.core.measure.result import RankReport

_PHASES = ("weights", "kv", "prefill", "decode")  # fitcalc.edges.measure.harness.PHASES, without importing torch
GRACE_S = 3.0  # after a rank ends badly, how long the others get to end by themselves
POLL_S = 0.05


class RankFailed(FitcalcError):
    """A rank died, hung, crashed or refused to run: one line naming the rank and the cause (exit 1)."""


class RankOutOfMemory(RankFailed):
    """Under torchrun, a rank that ran out of memory ends its process at once (its peers wait in a
    collective that will not come; torchrun then stops them): exit 5, as a single-device run."""

    exit_code = VERIFY_OOM


@dataclass
class RankEnd:
    rank: int
    returncode: int | None  # None: still running when the launcher killed it
    report: RankReport | None
    error: dict | None  # {"kind": error | collective | crash, "message": ...}
    phase: str
    waiting: str  # the collective it was waiting in, or ""
    killed: str | None  # "timeout" | "stopped": the launcher ended it
    log_tail: str = ""

    @property
    def cause(self) -> str:
        """What ended this rank, in words."""
        where = f" during {self.phase}" if self.phase not in ("", "done") else ""
        if self.killed == "timeout":
            return f"timed out{where}" + (f", {self.waiting}" if self.waiting else "")
        if self.killed == "stopped":
            return "stopped by the launcher" + (f" ({self.waiting})" if self.waiting else "")
        rc = self.returncode
        if self.report is not None and self.report.oom is not None:
            return f"out of memory at {self.report.oom.phase}: {self.report.oom.message}"
        if rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = "unknown signal"
            return f"died with signal {-rc} ({name}){where}"
        if self.error is not None:
            kind, msg = self.error.get("kind"), self.error.get("message", "")
            if kind == "collective":  # the backend's own text names a socket, not a rank: leave it to the log
                return f"stopped: its collective failed{where}" + (f" ({self.waiting})" if self.waiting else "")
            if kind == "crash":
                return f"crashed{where}: {msg}"
            return msg
        if rc not in (0, 4, 5) or self.report is None:
            return f"exited with code {rc}{where}" + (f" (last output: {self.log_tail})" if self.log_tail else "")
        return "measured"

    @property
    def primary(self) -> bool:
        """A cause of the failure rather than a consequence of another rank's."""
        if self.killed == "stopped" or (self.error is not None and self.error.get("kind") == "collective"):
            return False
        if self.killed == "timeout":
            return not self.waiting  # a rank waiting in a collective waits for the one that hangs
        return self.report is None or self.report.oom is not None


@dataclass
class Outcome:
    ends: list[RankEnd]
    wall_s: float
    timed_out: bool
    run_dir: str

    @property
    def reports(self) -> list[RankReport]:
        return [e.report for e in self.ends if e.report is not None]

    @property
    def oom(self) -> RankEnd | None:
        return next((e for e in self.ends if e.report is not None and e.report.oom is not None), None)

    def failure(self, timeout_s: float) -> str | None:
        """One line naming the rank(s) that made the run fail and why; None when every rank
        measured (or the only failure is running out of memory, which is a result)."""
        bad = [e for e in self.ends if e.cause != "measured" and not (e.report is not None and e.report.oom)]
        if not bad:
            return None
        first = [e for e in bad if e.primary]
        if not first:
            if self.oom is not None:  # the others stopped because one ran out of memory: a result
                return None
            first = bad  # every rank waits in a collective (or failed in one): name them all
        rest = [e for e in bad if e not in first]
        parts = []
        for e in first:
            text = e.cause
            if e.killed == "timeout":
                text = text.replace("timed out", f"timed out after {timeout_s:g} s", 1)
            parts.append(f"rank {e.rank}: {text}")
        if rest:
            if len(rest) <= 2:
                parts += [f"rank {e.rank}: {e.cause}" for e in rest]
            else:
                parts.append(f"ranks {', '.join(str(e.rank) for e in rest)}: stopped with it")
        return "; ".join(parts)


def free_port() -> int:
    """A TCP port free on the loopback interface now (the rendezvous of rank 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_status(run_dir: str, rank: int) -> tuple[str, str]:
    try:
        with open(status_path(run_dir, rank), encoding="utf-8") as f:
            line = f.read().rstrip("\n")
    except OSError:
        return "start", ""
    phase, _, detail = line.partition("\t")
    return phase, detail


def _tail(path: str, n: int = 200) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:n] if lines else ""


def _kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _on_sigterm():
    """Turn SIGTERM into SystemExit(143) while the ranks run (main thread only); the old handler."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(_sig, _frame):
        raise SystemExit(128 + signal.SIGTERM)

    return signal.signal(signal.SIGTERM, stop)


def rank_env(rank: int, world: int, port: int, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
               GROUP_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
               FITCALC_LAUNCHER_PID=str(os.getpid()))
    # Like torchrun, one OpenMP pool per rank sized so the ranks do not oversubscribe the cores.
    env.setdefault("OMP_NUM_THREADS", str(threads))
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # ranks of one machine talk over loopback
    elif sys.platform == "darwin":
        env.setdefault("GLOO_SOCKET_IFNAME", "lo0")
    return env


def launch(job: RankJob, progress=None) -> Outcome:
    """Run ``job.world`` ranks here; return how each ended. ``job.run_dir`` must exist."""
    assert job.run_dir is not None
    if not hasattr(os, "killpg"):
        raise RankFailed("fitcalc starts ranks in POSIX process groups, which this system does not have",
                         hint="start the ranks with torchrun and pass --launcher torchrun")
    say = progress or (lambda _msg: None)
    world = job.world
    job_path = os.path.join(job.run_dir, "job.json")
    with open(job_path, "w", encoding="utf-8") as f:
        f.write(job.model_dump_json())
    port = free_port()
    threads = max(1, (os.cpu_count() or 1) // world)
    procs: list[subprocess.Popen] = []
    killed: dict[int, str] = {}
    t0 = time.monotonic()
    timed_out = False
    status = [("start", "")] * world
    # SIGTERM (`timeout`, a CI runner cancelling) ends the launcher through the cleanup below.
    previous = _on_sigterm()
    try:
        for r in range(world):
            log = open(log_path(job.run_dir, r), "wb")  # noqa: SIM115 - closed below, after the rank ends
            try:
                procs.append(subprocess.Popen([sys.executable, "-m", "fitcalc.edges.measure.rank", job_path],
                                              env=rank_env(r, world, port, threads), stdin=subprocess.DEVNULL,
                                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            finally:
                log.close()
        say(f"{world} ranks started ({job.backend}, tp {job.tp}, pp {job.pp}, ep {job.ep})")
        first_bad: float | None = None
        shown = ""
        while True:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes):
                break
            now = time.monotonic()
            if first_bad is None and any(c not in (None, 0, 4) for c in codes):
                first_bad = now
            if first_bad is not None and now - first_bad > GRACE_S:
                for r, c in enumerate(codes):
                    if c is None:
                        killed[r] = "stopped"
                break
            if now - t0 > job.timeout_s:
                timed_out = True
                for r, c in enumerate(codes):
                    if c is None:
                        killed[r] = "timeout"
                break
            phases = {_read_status(job.run_dir, r)[0] for r in range(world)}
            if len(phases) == 1 and (ph := phases.pop()) != shown and ph in _PHASES:
                shown = ph
                say(f"{ph} … (all {world} ranks)")
            time.sleep(POLL_S)
        # what each rank was doing when it was stopped, read before the kill changes nothing
        status = [_read_status(job.run_dir, r) for r in range(world)]
    finally:
        for p in procs:
            _kill_group(p)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:  # unkillable (D state): report, do not hang
                pass
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    wall = time.monotonic() - t0
    ends = [_rank_end(job.run_dir, r, None if r in killed else p.returncode, status[r], killed.get(r))
            for r, p in enumerate(procs)]
    return Outcome(ends=ends, wall_s=wall, timed_out=timed_out, run_dir=job.run_dir)


def _rank_end(run_dir: str, rank: int, returncode: int | None, status: tuple[str, str],
              killed: str | None) -> RankEnd:
    """How one rank ended, from the files it left in ``run_dir``: its report, its error, its log."""
    report = error = None
    try:
        with open(report_path(run_dir, rank), encoding="utf-8") as f:
            report = RankReport.model_validate_json(f.read())
    except (OSError, ValueError):
        pass
    try:
        with open(error_path(run_dir, rank), encoding="utf-8") as f:
            error = json.loads(f.read())
    except (OSError, ValueError):
        pass
    phase, detail = status
    return RankEnd(rank=rank, returncode=returncode, report=report, error=error, phase=phase, waiting=detail,
                   killed=killed, log_tail=_tail(log_path(run_dir, rank)))


__all__ = ["launch", "Outcome", "RankEnd", "RankFailed", "RankOutOfMemory", "free_port", "rank_env", "GRACE_S"]
