"""The issue's CI case, run as a user runs it: gpt-oss-20b, 2 layers, context 512, on the CPU.

Weights and KV within 1 % of the prediction and the peak within 10 %. Wall time and RSS (the
60 s / 4 GiB targets) are printed by benchmarks/verify_cpu.py, not asserted here."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="the measure extra (PyTorch) is not installed")


@pytest.mark.slow
def test_gpt_oss_20b_two_layers_on_cpu():
    out = subprocess.run([sys.executable, "-m", "fitcalc", "verify", "gpt-oss-20b", "--device", "cpu", "--layers", "2",
                          "--context", "512", "--json"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    rows = {t["id"]: t for t in doc["terms"]}
    for tid, t in rows.items():
        if tid.startswith(("weights.", "kv.")):
            assert abs(t["measured_bytes"] - t["predicted_bytes"]) <= 0.01 * t["predicted_bytes"], tid
    # weights by hand (docs: gpt-oss-20b's tensors): experts 2 x 32 x (5760x2880 + 2880x2880) x 17/32 B + biases
    assert rows["weights.experts"]["measured_bytes"] == 2 * 32 * (5760 * 2880 + 2880 * 2880) * 17 // 32 \
        + 2 * 32 * (5760 + 2880) * 2
    assert rows["kv.full"]["measured_bytes"] == 512 * 8 * 64 * 2 * 2  # 1 full layer, K+V of 8x64 bf16
    assert rows["kv.sliding"]["measured_bytes"] == 128 * 8 * 64 * 2 * 2  # ring of the 128-token window
    peak = doc["peak"]
    assert abs(peak["measured_bytes"] - peak["predicted_bytes"]) <= 0.10 * peak["predicted_bytes"]
