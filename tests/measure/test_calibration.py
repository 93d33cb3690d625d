"""The torch profile's fitted constants against the recorded runs behind them
(docs/validation/cpu-runs.jsonl): the runs they were fitted on, and the held-out run each must
predict. No torch needed: the records hold the measurements; the prediction is recomputed from
the current engine_profiles/torch.yaml."""

import json
from pathlib import Path

import pytest

from fitcalc.edges.catalog import load_engine
from fitcalc.core.estimate import estimate, prepare
from fitcalc.edges.ingest import resolve_model
from fitcalc.core.spec import Device, Workload

ROOT = Path(__file__).resolve().parents[2]
RECORDS = [json.loads(x) for x in (ROOT / "docs" / "validation" / "cpu-runs.jsonl").read_text().splitlines()
           if x.strip()]


def _predicted(rec):
    s = rec["settings"]
    src = rec["source"]
    spec = resolve_model(str(ROOT / src) if "/" in src else src)
    p = prepare(spec, None if s["recipe"] == "native" else s["recipe"], load_engine("torch"), None,
                layers=s["layers"], include_embeddings=s["include_embeddings"])
    w = Workload(context=s["context"], batch=s["batch"], prompt_tokens=s["prompt_tokens"],
                 chunk_tokens=s["chunk_tokens"])
    return estimate(p, Device.host(64 << 30), w)


def _measured(rec, term_id):
    return next(t["measured_bytes"] for t in rec["terms"] if t["id"] == term_id)


def test_there_is_a_held_out_run_and_fit_runs():
    roles = [r["role"] for r in RECORDS]
    assert roles.count("held-out") >= 1 and roles.count("fit") >= 2


@pytest.mark.parametrize("rec", RECORDS, ids=[f"{r['role']}-{r['model']}" for r in RECORDS])
def test_act_prefill_constants_predict_the_runs(rec):
    # hidden_copies / mlp_copies: within 2 % on the fit runs, 5 % on the held-out one
    pred = _predicted(rec).term("act.prefill").bytes
    tol = 0.02 if rec["role"] == "fit" else 0.05
    assert abs(pred - _measured(rec, "act.prefill")) <= tol * _measured(rec, "act.prefill")


@pytest.mark.parametrize("rec", [r for r in RECORDS if any(t["id"] == "act.logits" for t in r["terms"])],
                         ids=lambda r: f"{r['role']}-{r['model']}")
def test_logits_copies_predict_the_runs(rec):
    pred = _predicted(rec).term("act.logits").bytes
    assert abs(pred - _measured(rec, "act.logits")) <= 0.01 * _measured(rec, "act.logits")


@pytest.mark.parametrize("rec", RECORDS, ids=[f"{r['role']}-{r['model']}" for r in RECORDS])
def test_recorded_weights_and_kv_are_exact(rec):
    pred = _predicted(rec)
    for t in rec["terms"]:
        if t["id"].startswith(("weights.", "kv.")):
            assert t["measured_bytes"] == pred.term(t["id"]).bytes == t["predicted_bytes"], t["id"]
