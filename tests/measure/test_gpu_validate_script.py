"""scripts/gpu-validate.sh on a machine without a GPU: its step list and limits (--dry-run) and
the process-group kill of a step that outlives its limit (the CPU smoke's timeout-kill-check)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-validate.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("setsid") is None,
                                reason="needs bash and setsid (util-linux)")


def _run(*args, **env):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}, cwd=ROOT)


def _limits(out: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+limit\s+(\d+)s", out, re.M)}


def test_dry_run_lists_the_steps_within_the_budget():
    r = _run("--dry-run", OUT_DIR="/tmp/x", PYTHON="python3")
    assert r.returncode == 0, r.stderr
    steps = _limits(r.stdout)
    for name in ("pytest-gpu", "gpt-oss-20b-L2-c4096", "llama-3.1-8b-bf16-all-c16384", "qwen3-8b-fp8-all-c4096",
                 "gpt-oss-20b-all-c16384", "seed-gpt-oss-20b-whole-c131072", "seed-gpt-oss-120b-whole-c32768",
                 "verify-speed", "gpu-readings-probe"):
        assert name in steps, name
    assert "budget 290s" in r.stdout  # under 5 minutes, whatever the steps do
    assert "python3 -m fitcalc verify gpt-oss-120b --layers all --context 32768 --device cuda" in r.stdout
    assert "--record /tmp/x/records.jsonl --json" in r.stdout


def test_quick_is_a_subset_in_under_two_minutes():
    r = _run("--dry-run", "--quick", OUT_DIR="/tmp/x")
    assert r.returncode == 0 and "budget 115s" in r.stdout
    assert "seed-gpt-oss-120b-whole-c32768" not in r.stdout


def test_a_step_past_its_limit_is_killed_with_its_children(tmp_path):
    # the step starts a background `sleep 300` and waits on another: 3 s limit, then the group
    # gets SIGTERM; the summary line says how many processes of its group were left (none)
    out = tmp_path / "gv"
    r = _run(OUT_DIR=str(out), PYTHON="python3", FITCALC_GPU_VALIDATE_DEVICE="cpu", ONLY="timeout-kill-check")
    summary = (out / "summary.txt").read_text()
    assert r.returncode == 0, summary + r.stderr
    assert "ok: outlived its limit as meant, its whole group killed" in summary
    assert "0 process(es) left after the kill" in summary
