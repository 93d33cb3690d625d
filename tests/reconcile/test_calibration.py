"""The calibration store (reconcile --save) and its use by `fit --calibrated`. Every test runs with
HOME and XDG_DATA_HOME in a temporary folder (conftest.py): the user's own store is never touched."""

import json
import math
from fractions import Fraction
from pathlib import Path

import pytest

from fitcalc.core import calibration
from fitcalc.edges import calibration_store
from fitcalc.core.calibration import CalibrationEntry
from tests.reconcile import logs

GiB = 2**30
LLAMA_8B_BF16 = 8_030_261_248 * 2  # bytes of the weights, by hand (tests/estimate/test_engine_logs.py)

GPU_PROFILE = """\
schema_version: 1
id: test-hopper-80g
display_name: Test Hopper 80G
vendor: nvidia
family: hopper
marketed_memory: 80 GB HBM3
memory_bytes: 85520809984
memory_reported: 81559 MiB (nvidia-smi memory.total)
reserved_bytes: 502267904
bandwidth_bytes_per_s: 3350000000000
native_formats: [fp8, bf16, fp16, int8]
sm_count: 132
sources:
  - kind: measured
    citation: a test GPU shaped like an H100 SXM (81559 MiB total, 479 MiB reserved)
    fields: [memory_bytes, reserved_bytes]
"""


@pytest.fixture
def gpu_dir(tmp_path, monkeypatch):
    d = tmp_path / "gpu_profiles"
    d.mkdir()
    (d / "test-hopper-80g.yaml").write_text(GPU_PROFILE, encoding="utf-8")
    monkeypatch.setenv("FITCALC_GPU_PROFILES_DIR", str(d))
    return d


def entry(ratio: float, term="weights.*", version="0.11", sha="a", family="hopper") -> CalibrationEntry:
    return CalibrationEntry(engine="vllm", version_family=version, gpu_family=family, device_class="gpu",
                            term_id=term, logged_bytes=round(1000 * ratio), predicted_bytes=1000, ratio=ratio,
                            offset_bytes=round(1000 * ratio) - 1000, model="m", recipe="native", context=8192,
                            log_sha256=sha, date="2026-01-01")


def test_store_path_precedence(tmp_path, monkeypatch):
    assert calibration_store.store_path() == tmp_path / "xdg" / "fitcalc" / "calibration.yaml"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert calibration_store.store_path() == tmp_path / "home" / ".local" / "share" / "fitcalc" / "calibration.yaml"
    monkeypatch.setenv("FITCALC_CALIBRATION", str(tmp_path / "env.yaml"))
    assert calibration_store.store_path() == tmp_path / "env.yaml"
    assert calibration_store.store_path(str(tmp_path / "opt.yaml")) == tmp_path / "opt.yaml"


def test_geometric_mean_and_choice():
    # a log 10% over and one 10% under cancel: exp((ln 1.1 + ln(1/1.1)) / 2) = 1
    f = calibration.factors([entry(1.1, sha="a"), entry(1 / 1.1, sha="b")])
    assert f["weights.*"] == pytest.approx(1.0)
    f = calibration.factors([entry(1.21, sha="a"), entry(1.0, sha="b")])
    assert f["weights.*"] == pytest.approx(math.sqrt(1.21))  # 1.1
    entries = [entry(1.0, version="0.6"), entry(1.05, version="0.11"), entry(2.0, family="ada")]
    chosen, version = calibration.choose(entries, "vllm", "hopper")
    assert version == "0.11" and [e.ratio for e in chosen] == [1.05]  # the newest family, same GPU family
    assert calibration.choose(entries, "vllm", "hopper", "0.6")[0][0].ratio == 1.0
    assert calibration.choose(entries, "vllm", None) == ([], None)  # a raw budget has no GPU family
    assert calibration.choose(entries, "llama.cpp", "hopper") == ([], None)


def test_save_appends_once_per_log(runner, app, write_log, llama_spec, gpu_dir, tmp_path):
    store = tmp_path / "cal.yaml"
    path = write_log(logs.VLLM_V1)
    args = ["reconcile", path, "--model", llama_spec, "--gpu", "test-hopper-80g", "--save", "--store", str(store)]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert doc["saved"] == 2 and doc["store"] == str(store)  # weights.* and overhead.cuda_graphs
    saved = calibration_store.load(store).entries
    assert {e.term_id for e in saved} == {"weights.*", "overhead.cuda_graphs"}
    w = next(e for e in saved if e.term_id == "weights.*")
    logged = round(Fraction("14.9596") * GiB)
    assert (w.engine, w.version_family, w.gpu_family, w.device_class) == ("vllm", "0.11", "hopper", "gpu")
    assert (w.logged_bytes, w.predicted_bytes) == (logged, LLAMA_8B_BF16)
    assert w.ratio == logged / LLAMA_8B_BF16 and w.offset_bytes == logged - LLAMA_8B_BF16
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "saved 0 residual(s)" in again.stdout
    assert len(calibration_store.load(store).entries) == 2
    assert not (tmp_path / "home").exists()  # --store given: nothing written under HOME


def test_save_defaults_to_the_data_directory(runner, app, write_log, llama_spec, tmp_path):
    r = runner.invoke(app, ["reconcile", write_log(logs.VLLM_V0_PAIRS), "--model", llama_spec, "--save"])
    assert r.exit_code == 0, r.output
    store = tmp_path / "xdg" / "fitcalc" / "calibration.yaml"
    assert store.exists() and calibration_store.load(store).entries
    assert "no GPU family known" in r.stdout  # the log's total alone does not say which GPU it was


def _fit(runner, app, llama_spec, *extra):
    r = runner.invoke(app, ["fit", llama_spec, "--gpu", "test-hopper-80g", "--engine", "vllm", "--json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_fit_calibrated_scales_the_terms(runner, app, write_log, llama_spec, gpu_dir, tmp_path):
    store = str(tmp_path / "cal.yaml")
    r = runner.invoke(app, ["reconcile", write_log(logs.VLLM_V1), "--model", llama_spec, "--gpu",
                            "test-hopper-80g", "--save", "--store", store])
    assert r.exit_code == 0, r.output
    plain = _fit(runner, app, llama_spec, "--store", store)
    cal = _fit(runner, app, llama_spec, "--calibrated", "--store", store)
    assert plain["calibration"] is None
    assert cal["calibration"]["n_logs"] == 1 and cal["calibration"]["gpu_family"] == "hopper"
    w_ratio = round(Fraction("14.9596") * GiB) / LLAMA_8B_BF16
    g_ratio = round(Fraction("0.52") * GiB) / next(t["bytes"] for t in plain["terms"]
                                                    if t["id"] == "overhead.cuda_graphs")
    before = {t["id"]: t["bytes"] for t in plain["terms"]}
    after = {t["id"]: t for t in cal["terms"]}
    for tid, b in before.items():
        if tid.startswith("weights."):
            assert after[tid]["bytes"] == round(b * w_ratio) and after[tid]["kind"] == "calibrated"
        elif tid == "overhead.cuda_graphs":
            assert after[tid]["bytes"] == round(b * g_ratio)
        elif tid != "overhead.engine_reserve":
            assert after[tid]["bytes"] == b, tid
    assert cal["required_bytes"] == sum(t["bytes"] for t in cal["terms"])
    text = runner.invoke(app, ["fit", llama_spec, "--gpu", "test-hopper-80g", "--engine", "vllm", "--calibrated",
                               "--store", store])
    assert "calibrated from 1 log (vllm 0.11, hopper)" in text.stdout


def test_fit_calibrated_by_env_and_when_nothing_matches(runner, app, llama_spec, gpu_dir, tmp_path, monkeypatch):
    store = Path(tmp_path / "cal.yaml")
    calibration_store.append(store, [entry(1.5, family="ada")])  # another GPU family only
    monkeypatch.setenv("FITCALC_CALIBRATION", str(store))
    monkeypatch.setenv("FITCALC_CALIBRATED", "1")
    doc = _fit(runner, app, llama_spec)
    assert doc["calibration"] is None
    assert any("not applied" in w and "hopper" in w for w in doc["warnings"])
    calibration_store.append(store, [entry(1.5, family="hopper", sha="b")])
    doc = _fit(runner, app, llama_spec)
    assert doc["calibration"]["factors"] == {"weights.*": 1.5}


def test_a_broken_store_is_one_line(runner, app, llama_spec, gpu_dir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nentries:\n  - engine: vllm\n    surprise: 1\n", encoding="utf-8")
    r = runner.invoke(app, ["fit", llama_spec, "--gpu", "test-hopper-80g", "--calibrated", "--store", str(bad)])
    assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1 and "bad.yaml" in r.stderr


# ---- plan --calibrated -----------------------------------------------------------------------------


def _plan(runner, app, llama_spec, *extra, gpus=("test-hopper-80g",)):
    # A fixed context, recipe and RAM: the plan's choices then cannot move with the calibration, so
    # every difference between two plans is the scaling itself.
    args = ["plan", llama_spec, "--engine", "vllm", "--context", "8192", "--recipe", "native", "--ram", "64GiB",
            "--json", *[x for g in gpus for x in ("--gpu", g)], *extra]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_plan_calibrated_scales_the_terms(runner, app, llama_spec, gpu_dir, tmp_path, monkeypatch):
    store = tmp_path / "cal.yaml"
    # weights.*: two logs, 1.0 and 2.25 -> geometric mean sqrt(2.25) = 1.5; kv.full: one log, 1.25
    calibration_store.append(store, [entry(1.0, sha="a"), entry(2.25, sha="b"), entry(1.25, term="kv.full", sha="a")])
    none = _plan(runner, app, llama_spec)
    plain = _plan(runner, app, llama_spec, "--store", str(store))
    monkeypatch.setenv("FITCALC_CALIBRATED", "1")
    forced_off = _plan(runner, app, llama_spec, "--uncalibrated", "--store", str(store))
    cal = _plan(runner, app, llama_spec, "--store", str(store))  # on through FITCALC_CALIBRATED
    assert plain == none == forced_off  # uncalibrated: the store changes nothing
    assert plain["calibration"] == []
    (info,) = cal["calibration"]
    assert (info["engine"], info["version_family"], info["gpu_family"], info["n_logs"]) == ("vllm", "0.11", "hopper", 2)
    f_w, f_kv = info["factors"]["weights.*"], info["factors"]["kv.full"]
    assert f_w == pytest.approx(1.5, rel=1e-12) and f_kv == pytest.approx(1.25, rel=1e-12)
    (d0,), (d1,) = plain["placement"], cal["placement"]
    before = {t["id"]: t["bytes"] for t in d0["terms"]}
    after = {t["id"]: t for t in d1["terms"]}
    assert set(before) == set(after)
    for tid, b in before.items():
        if tid.startswith("weights."):
            assert after[tid]["bytes"] == round(b * f_w) and after[tid]["kind"] == "calibrated", tid
        elif tid == "kv.full":
            assert after[tid]["bytes"] == round(b * f_kv) and after[tid]["kind"] == "calibrated"
        else:
            assert after[tid]["bytes"] == b, tid
    assert d1["required_bytes"] == sum(t["bytes"] for t in d1["terms"]) > d0["required_bytes"]
    # the text says where the factors came from
    r = runner.invoke(app, ["plan", llama_spec, "--gpu", "test-hopper-80g", "--engine", "vllm", "--context", "8192",
                            "--ram", "64GiB", "--store", str(store)])
    assert "calibrated from 2 logs (vllm 0.11, hopper): kv.full ×1.250, weights.* ×1.500" in r.stdout


def test_plan_calibrates_each_gpu_by_its_family(runner, app, llama_spec, gpu_dir, tmp_path):
    """Two GPUs in tensor parallel, one a catalog GPU (family hopper) and one a raw budget (no family):
    only the first is scaled, and the plan says why the second is not."""
    store = tmp_path / "cal.yaml"
    calibration_store.append(store, [entry(1.5, sha="a")])
    gpus = ("test-hopper-80g", "80GiB")
    plain = _plan(runner, app, llama_spec, gpus=gpus)
    cal = _plan(runner, app, llama_spec, "--calibrated", "--store", str(store), gpus=gpus)
    assert cal["layout"]["tp"] == 2 and [d["device_id"] for d in cal["placement"]] == ["test-hopper-80g", None]
    hop0, bud0 = ({t["id"]: t["bytes"] for t in d["terms"]} for d in plain["placement"])
    hop1, bud1 = ({t["id"]: t["bytes"] for t in d["terms"]} for d in cal["placement"])
    assert bud1 == bud0  # the budget: untouched
    f = cal["calibration"][0]["factors"]["weights.*"]
    assert f == pytest.approx(1.5, rel=1e-12)
    assert all(hop1[k] == (round(b * f) if k.startswith("weights.") else b) for k, b in hop0.items())
    assert any("not applied" in n and "raw budget has no GPU family" in n for n in cal["notes"])
