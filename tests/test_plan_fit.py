"""Fit verdicts and the max-context solver: invariants over grids, and the verdict rule."""

import pytest

from fitcalc.edges.catalog import load_engine, load_model
from fitcalc.core.estimate import estimate, prepare, required_bytes
from fitcalc.core.plan import context_step, fit_device, solve_max_context, verdict_of
from fitcalc.core.spec import Device, Workload
from fitcalc.core.units import GiB
from tests.archs import deepseek_v3, llama_3_1_8b

ENGINES = ["torch", "vllm", "llama.cpp", "ollama", "sglang", "transformers"]


def models():
    return [load_model("gpt-oss-20b"), llama_3_1_8b()]


@pytest.mark.parametrize("engine", ENGINES)
def test_fast_path_equals_explained_sum(engine):
    e = load_engine(engine)
    for m in models():
        p = prepare(m, None, e)
        for gib in (16, 24, 80):
            d = Device.from_budget(gib * GiB)
            for c, b in ((512, 1), (8192, 2), (100_000, 1)):
                w = Workload(context=c, batch=b)
                assert required_bytes(p, d, w) == estimate(p, d, w).total_bytes


@pytest.mark.parametrize("engine", ENGINES)
def test_totals_never_decrease_with_context_or_batch(engine):
    e = load_engine(engine)
    d = Device.from_budget(80 * GiB)
    for m in models():
        p = prepare(m, None, e)
        for b in (1, 2, 5):
            prev = 0
            for c in (1, 15, 16, 17, 127, 128, 129, 255, 256, 257, 640, 1000, 4096, 8191, 8192, 8193, 65536):
                n = required_bytes(p, d, Workload(context=c, batch=b))
                assert n >= prev, (m.id, engine, b, c)
                prev = n
        for c in (100, 4096):
            assert required_bytes(p, d, Workload(context=c, batch=3)) >= required_bytes(p, d, Workload(context=c,
                                                                                                        batch=2))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("gib", [14, 16, 24, 48])
def test_max_context_fits_and_one_step_more_does_not(engine, gib):
    e = load_engine(engine)
    d = Device.from_budget(gib * GiB)
    for m in models():
        p = prepare(m, None, e)
        w = Workload(context=4096)
        limit = m.architecture.max_position_embeddings
        c = solve_max_context(p, d, w, limit=limit)
        if c is None:
            assert required_bytes(p, d, Workload(context=context_step(p))) > d.memory_bytes
            continue
        assert c % context_step(p) == 0
        assert required_bytes(p, d, Workload(context=c)) <= d.memory_bytes
        if c < limit:
            assert required_bytes(p, d, Workload(context=c + context_step(p))) > d.memory_bytes


def test_more_memory_never_gives_a_smaller_max_context():
    e = load_engine("llama.cpp")
    p = prepare(load_model("gpt-oss-20b"), None, e)
    prev = 0
    for gib in range(12, 40):
        c = solve_max_context(p, Device.from_budget(gib * GiB), Workload(context=1), limit=None) or 0
        assert c >= prev
        prev = c


def test_verdict_rule():
    assert verdict_of(-1, 0) == "does not fit"
    assert verdict_of(0, 10) == "tight"
    assert verdict_of(9, 10) == "tight"
    assert verdict_of(10, 10) == "fits"


def test_fit_result_numbers_are_consistent():
    e = load_engine("vllm")
    p = prepare(load_model("gpt-oss-20b"), None, e)
    r = fit_device(p, Device.from_budget(24 * GiB), Workload(context=8192))
    assert r.required_bytes == sum(t.bytes for t in r.terms)
    assert r.headroom_bytes == r.available_bytes - r.required_bytes
    assert r.fits == (r.headroom_bytes >= 0)
    kv = sum(t.bytes for t in r.terms if t.id.startswith("kv."))
    assert r.kv_capacity_bytes == r.available_bytes - (r.required_bytes - kv)


def test_tensor_parallel_replicates_mla_latent_and_splits_gqa():
    # MLA keeps one latent per token: every TP rank holds all of it. GQA with 8 KV heads splits up to 8 ways
    # and is replicated beyond.
    d = Device.from_budget(1 << 40)
    e = load_engine("vllm")
    ds = prepare(deepseek_v3(), None, e)
    one = estimate(ds, d, Workload(context=8192), tp=1).term("kv.mla").bytes
    assert estimate(ds, d, Workload(context=8192), tp=8).term("kv.mla").bytes == one
    ll = prepare(llama_3_1_8b(), None, e)
    full = estimate(ll, d, Workload(context=8192), tp=1).term("kv.full").bytes
    assert estimate(ll, d, Workload(context=8192), tp=4).term("kv.full").bytes == full // 4
    assert estimate(ll, d, Workload(context=8192), tp=16).term("kv.full").bytes == full // 8


def test_context_beyond_model_maximum_warns_with_rope_scaling():
    p = prepare(load_model("gpt-oss-20b"), None, load_engine("vllm"))
    r = fit_device(p, Device.from_budget(80 * GiB), Workload(context=262_144))
    assert any("131,072" in w and "yarn" in w for w in r.warnings)
