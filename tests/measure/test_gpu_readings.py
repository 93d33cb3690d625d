"""CUDA checks of the device-memory readings and the overhead model (marker ``gpu``; skipped
without a CUDA device): each overhead term within 15 % of what verify reads on one stated base,
the peak (what the device needed) within 5 %."""

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="the measure extra (PyTorch) is not installed")

pytestmark = pytest.mark.gpu


def test_overheads_and_peak_on_cuda():
    out = subprocess.run([sys.executable, "-m", "fitcalc", "verify", "tests/data/specs/llama-3.1-8b.yaml", "--layers", "2", "--context",
                          "4096", "--device", "cuda", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode in (0, 4), out.stderr[-2000:]
    doc = json.loads(out.stdout)
    rows = {t["id"]: t for t in doc["terms"]}
    ctx = rows["overhead.cuda_context"]
    assert "context was created" in ctx["how"]  # one base, stated
    for tid in ("overhead.cuda_context", "overhead.cublas_workspace", "overhead.driver_reserved"):
        t = rows[tid]
        assert abs(t["measured_bytes"] - t["predicted_bytes"]) <= 0.15 * t["predicted_bytes"], (tid, t)
    mem = doc["readings"]["device_memory"]
    assert mem["cuda_total"] > 0 and mem["torch_reserved_end"] > 0
    peak = doc["peak"]
    assert "driver reservation" in peak["how"] or mem.get("nvml_total") is None
    assert abs(peak["measured_bytes"] - peak["predicted_bytes"]) <= 0.05 * peak["predicted_bytes"], peak
