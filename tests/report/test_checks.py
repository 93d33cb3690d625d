"""Assertions against hand-made results: each boundary, `where`, `require: any`, unavailable figures."""

import pytest

from fitcalc.core.plan import FitResult
from fitcalc.core.report.checks import evaluate_assertions, has_assertions, selects, summary_line
from fitcalc.core.report.matrix import Case
from fitcalc.core.report.result import PlanFields, ScenarioResult
from fitcalc.core.report.spec import ReportSpec, Where

GiB = 2**30


def fit(required: int, available: int, max_context: int | None = 65536, count: int = 1) -> FitResult:
    return FitResult(
        model="m", recipe="native", engine="vllm", engine_version="x", device="d", device_id=None, count=count,
        tp=count, context=8192, batch=1, kv_dtype="bf16", fits=required <= available,
        verdict="fits" if required <= available else "does not fit", required_bytes=required,
        available_bytes=available, headroom_bytes=available - required, uncertainty_bytes=0,
        max_context=max_context, max_context_limit=131072, max_context_step=16, kv_capacity_bytes=0,
        kv_capacity_tokens=None, terms=[], warnings=[])


def scenario(name: str, f: FitResult, gpu: str = "24GiB", decode: float | None = None) -> ScenarioResult:
    return ScenarioResult(name=name, origin="scenario", model="m", gpu=gpu, engine_requested="vllm",
                          recipe_requested="native", kv_dtype_requested="auto", fit=f,
                          plan=PlanFields(decode_tokens_per_s=decode))


def case(name: str, gpu: str = "24GiB", context: int = 8192) -> Case:
    return Case(name, "scenario", "m", "auto", gpu, context, 1, "vllm", "native", "auto", None)


def run(assert_: dict, results: list[ScenarioResult], cases: list[Case] | None = None, checks=None):
    spec = ReportSpec.model_validate({"assert": assert_, "checks": checks or []})
    return evaluate_assertions(spec, cases or [case(r.name, r.gpu) for r in results], results)


@pytest.mark.parametrize("assertion,value,required,available,max_ctx,status", [
    # must_fit: headroom >= 0 fits, exactly full still fits
    ("must_fit", True, 20 * GiB, 24 * GiB, 65536, "pass"),
    ("must_fit", True, 24 * GiB, 24 * GiB, 65536, "pass"),
    ("must_fit", True, 24 * GiB + 1, 24 * GiB, None, "fail"),
    # max_vram: required per GPU <= limit
    ("max_vram", "20GiB", 20 * GiB, 24 * GiB, 65536, "pass"),
    ("max_vram", "20GiB", 20 * GiB + 1, 24 * GiB, 65536, "fail"),
    ("max_vram", "20GB", 20 * 10**9 + 1, 24 * GiB, 65536, "fail"),  # GB is 10^9 bytes
    # min_context: the largest context that fits >= wanted; none at all fails
    ("min_context", "64k", 20 * GiB, 24 * GiB, 65536, "pass"),
    ("min_context", "64k", 20 * GiB, 24 * GiB, 65535, "fail"),
    ("min_context", 1024, 30 * GiB, 24 * GiB, None, "fail"),
    # min_headroom: available - required >= wanted
    ("min_headroom", "4GiB", 20 * GiB, 24 * GiB, 65536, "pass"),
    ("min_headroom", "4GiB", 20 * GiB + 1, 24 * GiB, 65536, "fail"),
])
def test_assertion_boundaries(assertion, value, required, available, max_ctx, status):
    (a,) = run({assertion: value}, [scenario("s", fit(required, available, max_ctx))])
    assert a.status == status, a.message
    assert a.scenario == "s" and a.assertion == assertion and a.source == "assert"


def test_failure_line_names_the_scenario_and_the_numbers():
    (a,) = run({"max_vram": "12GiB"}, [scenario("laptop", fit(14 * GiB + GiB // 2, 16 * GiB))])
    # 14.5 GiB needed against a 12 GiB limit: 2.5 GiB over
    assert a.line() == "FAIL laptop: max_vram: needs 14.50 GiB, 2.50 GiB over the limit of 12.00 GiB"
    (b,) = run({"must_fit": True}, [scenario("big", fit(26 * GiB, 24 * GiB, None, count=2))])
    assert b.line() == ("FAIL big: must_fit: does not fit: needs 26.00 GiB of 24.00 GiB per GPU "
                        "(headroom -2.00 GiB)")


def test_decode_speed_is_not_available_and_does_not_pass():
    (a,) = run({"min_decode_tokens_per_s": 20}, [scenario("s", fit(GiB, 24 * GiB))])
    assert a.status == "unavailable" and not a.ok
    assert "not available" in a.line()
    (b,) = run({"min_decode_tokens_per_s": 20}, [scenario("s", fit(GiB, 24 * GiB), decode=19.5)])
    assert b.status == "fail"
    (c,) = run({"min_decode_tokens_per_s": 20}, [scenario("s", fit(GiB, 24 * GiB), decode=20.0)])
    assert c.status == "pass"


def test_decode_speed_line_carries_the_numbers_and_a_no_fit_fails():
    pl = PlanFields(decode_tokens_per_s=19.5, decode_tokens_per_s_total=19.5, prompt_tokens=8192,
                    speed_status="estimated")
    r = ScenarioResult(name="s", origin="scenario", model="m", gpu="rtx-4090", engine_requested="vllm",
                       recipe_requested="native", kv_dtype_requested="auto", fit=fit(GiB, 24 * GiB), plan=pl)
    (a,) = run({"min_decode_tokens_per_s": 20}, [r])
    assert a.line() == ("FAIL s: min_decode_tokens_per_s: decode 19.5 tokens/s per sequence at a depth of "
                        "8,192 tokens < 20 wanted")
    assert (a.expected, a.actual) == (20, 19.5)
    # no placement holds it: no speed, and the assertion fails (it is known, not missing)
    none = PlanFields(speed_status="no fit", speed_note="does not fit 1 × d: no speed")
    r2 = r.model_copy(update={"plan": none, "fit": fit(30 * GiB, 24 * GiB)})
    (b,) = run({"min_decode_tokens_per_s": 20}, [r2])
    assert b.status == "fail"
    assert b.line() == "FAIL s: min_decode_tokens_per_s: does not fit 1 × d: no speed; cannot check >= 20 tokens/s"


def test_where_selects_by_the_values_as_written():
    c = case("x", gpu="h100-sxm:8", context=32768)
    assert selects(Where(gpu="H100-SXM:8"), c)
    assert selects(Where(gpu=["rtx-4090", "h100-sxm:8"], context=["32k"]), c)
    assert not selects(Where(gpu="h100-sxm"), c)
    assert not selects(Where(context=8192), c)
    assert selects(Where(), c)


def test_checks_apply_to_what_where_selects():
    results = [scenario("a", fit(20 * GiB, 24 * GiB), gpu="24GiB"), scenario("b", fit(30 * GiB, 24 * GiB), gpu="16GiB")]
    out = run({}, results, checks=[{"name": "only-24", "where": {"gpu": "24GiB"}, "assert": {"must_fit": True}}])
    assert [(a.scenario, a.source, a.status) for a in out] == [("a", "only-24", "pass")]


def test_require_any_holds_when_one_scenario_does():
    results = [scenario("a", fit(30 * GiB, 24 * GiB)), scenario("b", fit(20 * GiB, 24 * GiB))]
    (ok,) = run({}, results, checks=[{"name": "some", "require": "any", "assert": {"must_fit": True}}])
    assert ok.status == "pass" and "1 of 2 hold" in ok.message and "b" in ok.message
    results = [scenario("a", fit(30 * GiB, 24 * GiB)), scenario("b", fit(31 * GiB, 24 * GiB))]
    (bad,) = run({}, results, checks=[{"name": "some", "require": "any", "assert": {"must_fit": True}}])
    assert bad.status == "fail" and "none of 2" in bad.message


def test_where_that_selects_nothing_fails():
    (a,) = run({}, [scenario("a", fit(GiB, 24 * GiB))],
               checks=[{"where": {"gpu": "rtx-4909"}, "assert": {"must_fit": True}}])
    assert a.status == "fail" and a.source == "checks[0]" and "selects no scenario" in a.message


def test_has_assertions_and_summary():
    assert not has_assertions(ReportSpec.model_validate({"assert": {"must_fit": False}}))
    assert has_assertions(ReportSpec.model_validate({"assert": {"min_context": 4096}}))
    out = run({"must_fit": True, "min_decode_tokens_per_s": 1},
              [scenario("a", fit(GiB, 24 * GiB)), scenario("b", fit(30 * GiB, 24 * GiB, None))])
    assert summary_line(out, 2) == "4 assertions over 2 scenarios: 1 hold, 1 fail, 2 not available"
