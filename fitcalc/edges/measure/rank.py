"""``python -m fitcalc.edges.measure.rank JOB.json``: one rank of a distributed `fitcalc verify`. EDGE.

Started by ``fitcalc.edges.measure.launch`` with the torchrun environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). It writes its report to
``rank-R.json`` in the job's folder and exits with the code of a single-device run (0, 4, 5); a
fitcalc error or a crash goes to ``rank-R.error`` as one JSON object (``kind``: error, collective
or crash; ``message``) with exit code 1. A signal or ``os._exit`` leaves no file: the launcher
reads the exit status.
"""

from __future__ import annotations

import json
import os
import sys


def _die_with_parent() -> None:
    """Linux: SIGKILL this rank when the launcher dies, so no rank outlives a killed run."""
    parent = os.environ.get("FITCALC_LAUNCHER_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != int(parent):  # the launcher died before prctl took effect
            os._exit(1)
    except (OSError, AttributeError, ValueError):
        pass


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m fitcalc.edges.measure.rank JOB.json (started by fitcalc verify --tp/--pp)", file=sys.stderr)
        return 2
    _die_with_parent()
    from fitcalc.core.errors import FitcalcError
    from fitcalc.core.measure.job import RankJob, error_path, report_path

    with open(args[0], encoding="utf-8") as f:
        job = RankJob.model_validate_json(f.read())
    rank = int(os.environ.get("RANK", "0"))
    try:
        from fitcalc.edges.measure.distributed import env_rank, is_collective_error, run_rank

        rank, world, local, local_world = env_rank()
        report = run_rank(job, rank, world, local, local_world)
    except FitcalcError as e:
        _write(error_path(job.run_dir, rank), json.dumps({"kind": "error", "message": e.one_line()}))
        return 1
    except Exception as e:  # noqa: BLE001 - reported to the launcher as this rank's cause
        kind = "collective" if is_collective_error(e) else "crash"
        line = (str(e).strip().splitlines() or [""])[0][:300]
        _write(error_path(job.run_dir, rank), json.dumps({"kind": kind, "message": f"{type(e).__name__}: {line}"}))
        if os.environ.get("FITCALC_DEBUG"):
            raise
        return 1
    _write(report_path(job.run_dir, rank), report.model_dump_json())
    return report.exit_code


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without running interpreter teardown: a process group torn down at exit could wait
    # on a peer that is gone.
    os._exit(code)
