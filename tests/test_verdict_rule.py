"""One verdict rule for fit, plan, report and check (issue #16): headroom = available − required,
uncertainty = Σ band × bytes; "fits" when headroom ≥ uncertainty, "tight" when 0 ≤ headroom <
uncertainty, "does not fit" below 0 (docs/formulas.md, "Verdict")."""

import pytest

from fitcalc import api
from fitcalc.core.plan import verdict_of


@pytest.mark.parametrize("headroom,unc,verdict", [
    (0, 0, "fits"),              # exactly full, nothing uncertain
    (1, 2, "tight"),
    (2, 2, "fits"),
    (-1, 0, "does not fit"),
])
def test_verdict_of_table(headroom, unc, verdict):
    assert verdict_of(headroom, unc) == verdict


@pytest.mark.parametrize("model,gpu,engine", [
    ("gpt-oss-120b", "h100-sxm", "vllm"),            # the case: plan said FITS, fit TIGHT
    ("gpt-oss-20b", "rtx-4060-ti-16gb", "llama.cpp"),
    ("gpt-oss-20b", "rtx-4090", "vllm"),
])
def test_plan_and_fit_agree_at_the_plans_context(model, gpu, engine):
    plan = api.plan(model, [gpu], ram="64GiB", engine=engine)
    fit = api.fit(model, [gpu], context=plan.context, engine=engine, recipe=plan.recipe, kv_dtype=plan.kv_dtype)[0]
    assert (plan.verdict, plan.headroom_bytes, plan.uncertainty_bytes) == (
        fit.verdict, fit.headroom_bytes, fit.uncertainty_bytes)


def test_plan_at_its_largest_context_is_tight_not_fits():
    # gpt-oss-120b on one H100 with vLLM at --gpu-memory-utilization 0.95 --max-num-batched-tokens 1024
    # (the run of vllm-project/vllm#27508, which logged 1.71 GiB for KV): the largest context leaves
    # headroom under one vLLM block of KV, far below the estimate's uncertainty (GiBs), so the plan says
    # "tight" as fit does. (At vLLM's defaults it does not fit one H100: vllm-project/vllm#23278.)
    plan = api.plan("gpt-oss-120b", ["h100-sxm"], ram="64GiB", engine="vllm",
                    settings={"gpu_memory_utilization": "0.95", "max_num_batched_tokens": "1024"})
    assert plan.fits and plan.verdict == "tight"
    assert 0 <= plan.headroom_bytes < plan.uncertainty_bytes


def test_train_answers_with_the_same_rule():
    # Llama-3.1-8B LoRA needs the same bytes on any GPU of the same runtime reserve; a raw budget
    # of exactly need + half the uncertainty leaves 0 <= headroom < uncertainty: "tight", as fit says;
    # need + the whole uncertainty: "fits"; need − 1 byte: "does not fit".
    r0 = api.train("llama-3.1-8b", ["80GiB"]).fits[0]
    need, unc = r0.gpu_bytes, r0.uncertainty_bytes
    assert unc > 0 and r0.verdict == "fits"
    for budget, verdict in ((need + unc // 2, "tight"), (need + unc, "fits"), (need - 1, "does not fit")):
        r = api.train("llama-3.1-8b", [f"{budget}B"]).fits[0]
        assert (r.gpu_bytes, r.verdict) == (need, verdict), budget
        assert r.verdict == verdict_of(r.headroom_bytes, r.uncertainty_bytes)
