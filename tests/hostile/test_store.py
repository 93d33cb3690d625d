"""The calibration store under concurrent writers and hostile contents (issue #17): 20 writers
keep all 100 entries; a residual out of bounds is refused with its reason; a damaged store is one
line."""

from __future__ import annotations

import multiprocessing

import pytest

from fitcalc.core.calibration import CalibrationEntry
from fitcalc.core.errors import FitcalcError, InputError
from fitcalc.edges import calibration_store
from tests.hostile.conftest import cli
from tests.reconcile import logs


def _entries(writer: int, n: int = 5) -> list[CalibrationEntry]:
    """``n`` residuals of one log (its own sha256), as `reconcile --save` makes them."""
    return [CalibrationEntry(engine="vllm", version_family="0.11", gpu_family="hopper", device_class="gpu",
                             term_id=f"term.{k}", logged_bytes=1100, predicted_bytes=1000, ratio=1.1, offset_bytes=100,
                             model="m", recipe="native", context=8192, log_sha256=f"{writer:064x}",
                             date="2026-12-04") for k in range(n)]


def _save(path: str, writer: int, barrier) -> None:
    from pathlib import Path

    barrier.wait()  # all 20 read-merge-write at once
    added, _ = calibration_store.append(Path(path), _entries(writer))
    assert added == 5


def test_twenty_concurrent_writers_keep_all_100_entries(tmp_path):
    # Before: each writer read, merged and renamed without a lock; 15-25 of 100 entries survived.
    store = tmp_path / "calibration.yaml"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(20)
    procs = [ctx.Process(target=_save, args=(str(store), i, barrier)) for i in range(20)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(20)
    assert [p.exitcode for p in procs] == [0] * 20
    entries = calibration_store.load(store).entries
    assert len(entries) == 100
    assert len({(e.log_sha256, e.term_id) for e in entries}) == 100
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("logged,predicted,needle", [
    (10**21, 10**9, "outside 0 to"),  # the corrupt log that made fit report 1e21 PiB
    (17 * 10**9, 10**9, "x17"),  # 17x over: over MAX_RESIDUAL_RATIO = 16
    (10**9 // 20, 10**9, "x0.05"),
], ids=["1e21", "17x", "1/20"])
def test_a_residual_out_of_bounds_is_refused_with_its_reason(logged, predicted, needle):
    from fitcalc.core.calibration import residual_problem

    assert needle in (residual_problem("weights.*", logged, predicted) or "")


def test_reconcile_save_refuses_an_absurd_log(tmp_path, monkeypatch):
    # The log says the weights took 1,498,880 GB: saved, it would scale every calibrated fit by 10^5.
    log = tmp_path / "vllm.log"
    log.write_text(logs.VLLM_V0_PAIRS.replace("Loading model weights took 14.9888 GB",
                                              "Loading model weights took 1498880 GB"), encoding="utf-8")
    store = tmp_path / "store.yaml"
    r = cli("reconcile", str(log), "--save", "--store", str(store))
    assert r.code == 1 and "not saved: residual" in r.one_line() and "run without --save" in r.one_line()
    assert not store.exists()


@pytest.mark.parametrize("text,needle", [
    ("entries: [\n", "not valid YAML"),
    ("- just\n- a list\n", "not a calibration store"),
    ("schema_version: 1\nentries:\n  - {engine: vllm}\n", "missing required field"),
    ("\x00\x01binary", "not valid YAML"),
], ids=["truncated", "list", "bad-entry", "binary"])
def test_a_corrupt_store_is_one_line(tmp_path, text, needle):
    store = tmp_path / "store.yaml"
    store.write_text(text, encoding="utf-8")
    r = cli("fit", "gpt-oss-20b", "--gpu", "h100-sxm", "--calibrated", "--store", str(store))
    assert r.code == 1 and needle in r.one_line()


def test_a_stored_absurd_residual_is_refused_on_load(tmp_path):
    import yaml

    e = _entries(1, 1)[0].model_dump(mode="json")
    e.update(logged_bytes=10**21, ratio=1e12, offset_bytes=10**21 - 1000)
    store = tmp_path / "store.yaml"
    store.write_text(yaml.safe_dump({"schema_version": 1, "entries": [e]}), encoding="utf-8")
    with pytest.raises(FitcalcError, match="outside 0 to"):
        calibration_store.load(store)


def test_a_lock_that_is_never_released_is_one_line(tmp_path):
    import fcntl
    import os

    store = tmp_path / "store.yaml"
    fd = os.open(str(store) + ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(InputError, match="held the calibration store's lock"):
            with calibration_store._locked(store, wait_s=0.2):
                pass
    finally:
        os.close(fd)
