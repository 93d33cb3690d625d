"""A report row's plan figures (decode speed, prefill, largest batch, GPUs needed) are what
`fitcalc plan` computes for the same model, engine, GPUs, context and batch; and `check` gates on
the decode speed with the numbers in its line."""

import json
from pathlib import Path

import pytest

from fitcalc import api
from fitcalc.core.plan import NoFitError
from fitcalc.edges.report.load import build_report

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _plan(c):
    """`fitcalc plan` for a report case: the same inputs, the checkpoint's recipe, RAM that never
    limits (so the host check cannot differ from the report's, which plans GPUs only)."""
    try:
        return api.plan(c.model, [c.gpu], ram="1TiB", engine=c.engine, context=c.context, batch=c.batch,
                        recipe="native")
    except NoFitError:
        return None


def test_every_row_matches_plan(tmp_path):
    # Contexts out of order and a GPU type listed with two counts: the sweep's caches (the largest
    # batch capped by a shorter context's, the GPU count started from a shorter context's, shared
    # across counts) must not change any answer.
    spec = write(tmp_path, "models: [gpt-oss-20b]\n"
                           "gpus: [rtx-4090, 'rtx-4090:2', rtx-4060-ti-16gb, 16GiB, h100-sxm]\n"
                           "contexts: [64k, 4k, 128k]\nbatches: [1, 8]\nengines: [vllm, llama.cpp]\n")
    _, cases, rep = build_report(spec)
    assert len(rep.scenarios) == 5 * 3 * 2 * 2
    estimated = 0
    for c, r in zip(cases, rep.scenarios):
        ref = _plan(c)
        pl = r.plan
        # GPUs of this type for the whole model at this context and batch, as plan counts them
        assert pl.gpus_needed == (ref.gpus_needed if ref is not None else None), c.name
        assert pl.max_gpus == 16 and pl.max_batch_bound == 1024
        assert pl.prompt_tokens == c.context
        if not r.fit.fits:
            assert pl.speed_status == "no fit" and pl.decode_tokens_per_s is None and pl.max_batch is None, c.name
            continue
        # the row fits: plan puts it on the GPUs given without offload, and says the same
        assert ref is not None and ref.fits, c.name
        assert ref.host is None or ref.host.holds == "the input embedding", c.name  # llama.cpp's rule
        assert ref.layout.gpu_layers is None and ref.layout.cpu_moe == 0, c.name
        assert pl.layout == ref.layout.description, c.name
        assert pl.max_batch == ref.max_batch, c.name
        if c.gpu == "16GiB":  # a raw budget: no bandwidth, no tensor rate
            assert ref.decode_tokens_per_s is None and pl.decode_tokens_per_s is None
            assert pl.speed_status == "unavailable" and "no memory bandwidth" in pl.speed_note
            continue
        assert pl.speed_status == "estimated", c.name
        assert pl.decode_tokens_per_s == ref.decode_tokens_per_s, c.name
        assert pl.decode_tokens_per_s_total == ref.decode_tokens_per_s_total, c.name
        assert pl.prefill_s == ref.prefill_s, c.name
        estimated += 1
    assert estimated >= 20  # the comparison above really ran on most rows


def test_decode_speed_equals_plan_for_one_configuration(tmp_path):
    spec = write(tmp_path, "models: [gpt-oss-20b]\ngpus: [rtx-4090]\ncontexts: [8192]\nengines: [llama.cpp]\n")
    (r,) = api.report(spec).scenarios
    ref = api.plan("gpt-oss-20b", ["rtx-4090"], ram="1TiB", engine="llama.cpp", context=8192, batch=1,
                   recipe="native")
    assert ref.decode_tokens_per_s is not None
    assert r.plan.decode_tokens_per_s == ref.decode_tokens_per_s
    assert r.plan.max_batch == ref.max_batch and r.plan.gpus_needed == ref.gpus_needed == 1


def test_prompt_tokens_set_the_prefill_and_the_decode_depth(tmp_path):
    spec = write(tmp_path, "models: [gpt-oss-20b]\ngpus: [h100-sxm]\ncontexts: [32k]\nengines: [vllm]\n"
                           "defaults: {prompt_tokens: 2048}\n")
    (r,) = api.report(spec).scenarios
    ref = api.plan("gpt-oss-20b", ["h100-sxm"], ram="1TiB", engine="vllm", context=32768, prompt_tokens=2048,
                   recipe="native")
    assert r.plan.prompt_tokens == 2048 == ref.prompt_tokens
    assert r.plan.decode_tokens_per_s == ref.decode_tokens_per_s
    assert r.plan.prefill_s == ref.prefill_s
    long = api.report(write(tmp_path, "models: [gpt-oss-20b]\ngpus: [h100-sxm]\ncontexts: [32k]\n"
                                      "engines: [vllm]\n", "long.yaml")).scenarios[0]
    # a shallower KV cache to read and a shorter prompt: faster decode, quicker prefill
    assert r.plan.decode_tokens_per_s > long.plan.decode_tokens_per_s
    assert r.plan.prefill_s < long.plan.prefill_s


SPEED_SPEC = """\
scenarios:
  - {name: fast-enough, model: gpt-oss-20b, gpu: rtx-4090, context: 8192, engine: llama.cpp,
     assert: {min_decode_tokens_per_s: 20}}
  - {name: too-slow, model: gpt-oss-20b, gpu: rtx-4090, context: 8192, engine: llama.cpp,
     assert: {min_decode_tokens_per_s: 100000}}
  - {name: budget, model: gpt-oss-20b, gpu: 24GiB, context: 8192, engine: llama.cpp,
     assert: {min_decode_tokens_per_s: 20}}
  - {name: too-small, model: gpt-oss-20b, gpu: 8GiB, context: 8192, engine: vllm,
     assert: {min_decode_tokens_per_s: 20}}
"""


def test_check_min_decode_passes_fails_and_says_why(runner, app, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = write(tmp_path, SPEED_SPEC)
    r = runner.invoke(app, ["check", spec, "-v"])
    assert r.exit_code == 3, r.output
    lines = {ln.split(":", 1)[0]: ln for ln in r.stdout.splitlines() if ln[:4] in ("PASS", "FAIL", "N/A ")}
    ref = api.plan("gpt-oss-20b", ["rtx-4090"], ram="1TiB", engine="llama.cpp", context=8192, recipe="native")
    speed = f"{ref.decode_tokens_per_s:,.1f}"
    assert lines["PASS fast-enough"] == (f"PASS fast-enough: min_decode_tokens_per_s: decode {speed} tokens/s per "
                                         "sequence at a depth of 8,192 tokens >= 20 wanted")
    assert lines["FAIL too-slow"] == (f"FAIL too-slow: min_decode_tokens_per_s: decode {speed} tokens/s per "
                                      "sequence at a depth of 8,192 tokens < 100000 wanted")
    # a raw budget has no bandwidth: not available, which does not pass
    assert lines["N/A  budget"].startswith("N/A  budget: min_decode_tokens_per_s: not available: ")
    assert "no memory bandwidth" in lines["N/A  budget"] and "cannot check >= 20" in lines["N/A  budget"]
    # a scenario that does not fit has no speed: a failure
    assert "does not fit 1 × 8.00 GiB budget" in lines["FAIL too-small"]
    assert r.stdout.strip().splitlines()[-1] == "4 assertions over 4 scenarios: 1 hold, 2 fail, 1 not available"


def test_check_min_decode_alone_can_pass(runner, app, tmp_path):
    spec = write(tmp_path, "models: [gpt-oss-20b]\ngpus: [rtx-4090, h100-sxm]\ncontexts: [8192]\n"
                           "engines: [llama.cpp, vllm]\nassert: {min_decode_tokens_per_s: 20}\n")
    r = runner.invoke(app, ["check", spec])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "4 assertions over 4 scenarios: 4 hold, 0 fail"


def test_json_carries_the_plan_fields(runner, app, tmp_path):
    spec = write(tmp_path, "models: [gpt-oss-20b]\ngpus: [rtx-4090, 24GiB]\ncontexts: [8192]\n"
                           "engines: [llama.cpp]\n")
    out = tmp_path / "r.json"
    assert runner.invoke(app, ["report", spec, "-o", str(out)]).exit_code == 0
    card, budget = json.loads(out.read_text())["scenarios"]
    ref = api.plan("gpt-oss-20b", ["rtx-4090"], ram="1TiB", engine="llama.cpp", context=8192, recipe="native")
    assert card["plan"]["decode_tokens_per_s"] == ref.decode_tokens_per_s
    assert card["plan"]["prefill_s"] == ref.prefill_s and card["plan"]["prompt_tokens"] == 8192
    assert card["plan"]["max_batch"] == ref.max_batch and card["plan"]["gpus_needed"] == 1
    assert card["plan"]["speed_status"] == "estimated"
    assert budget["plan"]["decode_tokens_per_s"] is None and budget["plan"]["speed_status"] == "unavailable"
    assert budget["plan"]["max_batch"] is not None  # memory figures need no bandwidth


@pytest.fixture
def fresh_catalog_caches():
    from fitcalc.edges import catalog

    catalog.load_engine.cache_clear()
    catalog._name_index.cache_clear()
    yield
    catalog.load_engine.cache_clear()  # profiles loaded from the test's folder must not outlive it
    catalog._name_index.cache_clear()


def test_an_engine_on_one_gpu_uses_one_of_several(tmp_path, monkeypatch, fresh_catalog_caches):
    """An engine that runs on one GPU (parallel.multi_gpu: none; no bundled engine does today, so the test
    writes one from the torch profile): the plan figures are those of one of the two GPUs given, and the
    layout says so."""
    import shutil

    from fitcalc.edges import catalog

    engines = tmp_path / "engines"
    shutil.copytree(catalog.data_dir("engine_profiles"), engines)
    text = (engines / "torch.yaml").read_text().replace("id: torch", "id: single").replace("multi_gpu: tensor",
                                                                                           "multi_gpu: none")
    (engines / "single.yaml").write_text(text)
    monkeypatch.setenv("FITCALC_ENGINE_PROFILES_DIR", str(engines))
    spec = write(tmp_path, "models: [gpt-oss-20b]\ngpus: ['h100-sxm:2', h100-sxm]\ncontexts: [8192]\n"
                           "engines: [single]\n")
    two, one = api.report(spec).scenarios
    assert two.plan.layout == "one GPU, whole model (uses 1 of 2 GPUs)" and one.plan.layout == "one GPU, whole model"
    assert two.plan.decode_tokens_per_s == one.plan.decode_tokens_per_s is not None
