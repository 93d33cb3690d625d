"""`fitcalc gpus` through the CLI: the catalog listing, JSON shape, and --detect with fake drivers."""

from __future__ import annotations

import json
import sys

import pytest

from tests.nvml_fake import RTX_4090, fake_pynvml

MiB = 1 << 20
GiB = 1 << 30

ROW_KEYS = {"id", "display_name", "vendor", "aliases", "marketed_memory", "memory_bytes", "memory_reported",
            "reserved_bytes", "usable_bytes", "unified_memory", "gpu_working_set_bytes", "budget_bytes",
            "budget_basis", "bandwidth_bytes_per_s", "dense_tflops", "native_formats", "compute_capability",
            "devices_per_package"}


def test_gpus_json_shape(runner, app):
    r = runner.invoke(app, ["gpus", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)  # only the document on stdout
    assert isinstance(rows, list) and len(rows) >= 30
    for row in rows:
        assert set(row) == ROW_KEYS
        assert isinstance(row["memory_bytes"], int) and isinstance(row["budget_bytes"], int)
    by_id = {row["id"]: row for row in rows}
    h100 = by_id["h100-sxm"]
    assert h100["memory_bytes"] == 81559 * MiB == h100["budget_bytes"]  # nvidia-smi memory.total
    assert h100["reserved_bytes"] == 479 * MiB
    assert h100["dense_tflops"]["bf16"] == 989.0
    m3 = by_id["m3-max-128gb"]
    assert m3["unified_memory"] and m3["memory_bytes"] == 128 * GiB and m3["budget_bytes"] == 96 * GiB


def test_gpus_table_shows_mib_gib_and_label(runner, app):
    r = runner.invoke(app, ["gpus"], env={"FITCALC_WIDTH": "120"})  # wide: MiB and label columns shown
    assert r.exit_code == 0, r.output
    out = r.stdout
    # RTX 4090: 24564 MiB = 23.99 GiB beside the "24 GB" label; 1008 GB/s; 165.2 / 330.3 TFLOPS
    for needle in ("rtx-4090", "24,564", "23.99", "24 GB GDDR6X", "1008", "165.2", "330.3"):
        assert needle in out, needle
    assert "nvfp4" in out  # Blackwell rows list their FP4 formats


def test_gpus_detect_json_without_gpus(runner, app, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    monkeypatch.setattr("fitcalc.edges.hardware.detect_apple", lambda **kw: ([], None))
    r = runner.invoke(app, ["gpus", "--detect", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert set(doc) == {"gpus", "system_memory", "notes"}
    assert doc["gpus"] == []
    assert any("nvidia" in n for n in doc["notes"])
    assert doc["system_memory"]["total_bytes"] > 0


def test_gpus_detect_with_a_fake_rtx_4090(runner, app, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([RTX_4090]))
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    monkeypatch.setattr("fitcalc.edges.hardware.detect_apple", lambda **kw: ([], None))
    r = runner.invoke(app, ["gpus", "-d", "--json"])
    assert r.exit_code == 0, r.output
    (g,) = json.loads(r.stdout)["gpus"]
    assert g["matched_profile_id"] == "rtx-4090"
    assert g["memory_total_bytes"] == 24564 * MiB
    assert g["compute_capability"] == "8.9"

    r = runner.invoke(app, ["gpus", "--detect"], env={"FITCALC_WIDTH": "120"})
    assert r.exit_code == 0, r.output
    assert "NVIDIA GeForce RTX 4090" in r.stdout and "rtx-4090" in r.stdout and "system RAM" in r.stdout


@pytest.mark.parametrize("args", [["gpus", "--help"]])
def test_gpus_help_has_examples(runner, app, args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0
    assert "--detect" in r.stdout and "fitcalc gpus --json" in r.stdout
