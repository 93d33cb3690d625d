"""fitcalc.core.measure.compare: the pure comparison logic, fed hand-made measurements (no torch)."""

import pytest

from fitcalc.core.errors import FitcalcError
from fitcalc.core.estimate.terms import Footprint, make_term
from fitcalc.core.measure.compare import (DEFAULT_TOLERANCES, LayerBytes, MeasuredTerm, Measurement, Tolerance, compare,
                                     default_layers, extrapolate, parse_tolerance, signatures, tolerance_for)

MiB = 1 << 20


@pytest.mark.parametrize("tol,pred,meas,ok", [
    (Tolerance(relative=0.01), 1000, 1010, True),  # exactly 1 % off: allowed (<=)
    (Tolerance(relative=0.01), 1000, 1011, False),  # 1.1 %
    (Tolerance(relative=0.01), 1000, 989, False),  # -1.1 %
    (Tolerance(relative=0.25, absolute_bytes=MiB), 1000, 900_000, True),  # within the 1 MiB floor
    (Tolerance(relative=0.25, absolute_bytes=MiB), 100 * MiB, 126 * MiB, False),  # 26 % > 25 %, floor too small
    (Tolerance(relative=0.0), 0, 0, True),
    (Tolerance(relative=0.5), 0, 1, False),  # nothing predicted, something measured
], ids=["at-1pct", "over-1pct", "under-1pct", "abs-floor", "rel-beats-floor", "zero-zero", "unpredicted"])
def test_tolerance_allows(tol, pred, meas, ok):
    assert tol.allows(pred, meas) is ok


@pytest.mark.parametrize("text,key,rel,absolute", [
    ("act=0.3", "act", 0.3, MiB),  # keeps the kind's 1 MiB floor
    ("peak=5%", "peak", 0.05, 2 * MiB),  # keeps the 2 MiB floor of peak
    ("act.logits=0.5:2MiB", "act.logits", 0.5, 2 * MiB),
    ("weights=0", "weights", 0.0, 0),
    ("act=0:0", "act", 0.0, 0),
])
def test_parse_tolerance(text, key, rel, absolute):
    k, t = parse_tolerance(text)
    assert (k, t.relative, t.absolute_bytes) == (key, pytest.approx(rel), absolute)


@pytest.mark.parametrize("text", ["act", "act=", "=0.3", "act=abc", "act=0.3:12G"])
def test_parse_tolerance_rejects(text):
    with pytest.raises(FitcalcError):
        parse_tolerance(text)


def test_tolerance_for_prefers_the_term_id():
    o = {"act": Tolerance(relative=0.5), "act.logits": Tolerance(relative=0.9)}
    assert tolerance_for("act.logits", o).relative == 0.9
    assert tolerance_for("act.prefill", o).relative == 0.5
    assert tolerance_for("kv.full", o) == DEFAULT_TOLERANCES["kv"]


def _fp(**terms):
    return Footprint(terms=[make_term(k.replace("__", "."), k, v) for k, v in terms.items()])


def _m(terms, peak, working=None, kind="cpu"):
    return Measurement(device="test", device_kind=kind, terms=[MeasuredTerm(id=k, bytes=v, how="hand") for k, v in
                                                               terms.items()],
                       peak_bytes=peak, peak_how="hand", working_bytes=working)


def test_compare_judges_each_term_working_and_peak():
    # predicted: weights 1000 MiB, kv 100 MiB, act 40 + 10 MiB, context 300 MiB -> total 1450 MiB
    pred = _fp(weights__experts=1000 * MiB, kv__full=100 * MiB, act__prefill=40 * MiB, act__logits=10 * MiB,
               overhead__cuda_context=300 * MiB)
    meas = _m({"weights.experts": 1000 * MiB, "kv.full": 102 * MiB,  # +2 % KV: out of its 1 %
               "act.prefill": 44 * MiB, "act.logits": 10 * MiB},  # +10 %: inside 25 %
              peak=1400 * MiB, working=48 * MiB)
    c = compare(pred, meas)
    rows = {r.id: r for r in c.terms}
    assert rows["weights.experts"].ok is True and rows["weights.experts"].error == 0.0
    assert rows["kv.full"].ok is False and rows["kv.full"].error == pytest.approx(0.02)
    assert rows["act.prefill"].ok is True and rows["act.prefill"].error == pytest.approx(0.10)
    assert rows["overhead.cuda_context"].ok is None  # not measured on a CPU: shown, not judged
    assert c.working.predicted_bytes == 50 * MiB and c.working.ok is True  # 48 vs 40+10: -4 %
    assert c.peak.predicted_bytes == 1450 * MiB and c.peak.error == pytest.approx(-50 / 1450)
    assert c.peak.ok is True  # -3.4 % inside 10 %
    assert c.failures == ["kv.full"] and c.ok is False


def test_compare_flags_unpredicted_memory():
    c = compare(_fp(weights__attention=10 * MiB), _m({"weights.attention": 10 * MiB, "overhead.allocator": 64 * MiB},
                                                      peak=74 * MiB))
    row = [r for r in c.terms if r.id == "overhead.allocator"][0]
    assert row.kind == "unpredicted" and row.predicted_bytes == 0 and row.ok is False  # 64 MiB > 16 MiB floor
    assert "peak" in c.failures  # 74 vs 10 MiB


def test_compare_overrides():
    pred = _fp(act__prefill=100 * MiB)
    meas = _m({"act.prefill": 140 * MiB}, peak=140 * MiB)
    assert compare(pred, meas).terms[0].ok is False
    assert compare(pred, meas, {"act": Tolerance(relative=0.5)}).terms[0].ok is True


def test_extrapolate_scales_weights_and_kv_by_signature():
    # two built layers: A (sliding) and B (full); the model has A, B, A, B, A, B
    meas = Measurement(
        device="t", device_kind="cpu",
        terms=[MeasuredTerm(id="weights.embedding", bytes=500, how="h"), MeasuredTerm(id="weights.attention", bytes=20,
                                                                                        how="h"),
               MeasuredTerm(id="kv.sliding", bytes=4, how="h"), MeasuredTerm(id="kv.full", bytes=30, how="h"),
               MeasuredTerm(id="act.prefill", bytes=77, how="h")],
        peak_bytes=631, peak_how="h", working_bytes=77,
        layers=[LayerBytes(layer=0, signature="A", terms={"weights.attention": 10, "kv.sliding": 4}),
                LayerBytes(layer=1, signature="B", terms={"weights.attention": 10, "kv.full": 30})],
        global_terms={"weights.embedding": 500})
    full = _fp(weights__embedding=500, weights__attention=60, kv__sliding=12, kv__full=90, act__prefill=80)
    x = extrapolate(meas, full, ["A", "B", "A", "B", "A", "B"])
    rows = {r.id: r for r in x.terms}
    assert rows["weights.attention"].measured_bytes == 6 * 10  # 3 A + 3 B layers of 10
    assert rows["kv.sliding"].measured_bytes == 3 * 4 and rows["kv.full"].measured_bytes == 3 * 30
    assert rows["weights.embedding"].measured_bytes == 500  # global, once
    assert rows["act.prefill"].measured_bytes == 77  # does not scale with layers
    assert x.measured_bytes == 500 + 60 + 12 + 90 + 77 and x.predicted_bytes == 742
    assert x.missing_signatures == []


def test_extrapolate_says_which_signatures_are_missing():
    meas = Measurement(device="t", device_kind="cpu", terms=[MeasuredTerm(id="weights.mlp", bytes=10, how="h")],
                       peak_bytes=10, peak_how="h",
                       layers=[LayerBytes(layer=0, signature="full_attention/dense", terms={"weights.mlp": 10})])
    x = extrapolate(meas, _fp(weights__mlp=40), ["full_attention/dense", "full_attention/moe"])
    assert x.missing_signatures == ["full_attention/moe"] and x.measured_bytes is None
    assert "--layers" in x.note


@pytest.mark.parametrize("kinds,dense,expect", [
    (["sliding_attention", "full_attention"] * 12, set(), 2),  # gpt-oss
    (["full_attention"] * 32, set(range(32)), 1),  # Llama
    (["full_attention"] * 61, {0, 1, 2}, 4),  # DeepSeek-V3: 3 dense layers, then MoE
    ((["sliding_attention"] * 5 + ["full_attention"]) * 10, set(range(60)), 6),  # Gemma 3 5:1
])
def test_default_layers_cover_every_signature(kinds, dense, expect):
    assert default_layers(signatures(kinds, dense)) == expect
