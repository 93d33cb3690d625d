"""The report spec: the simplest form as written in the issue, defaults, expansion, and bad specs."""

import json
from pathlib import Path

import pytest

from fitcalc.core.errors import InputError, SpecError
from fitcalc.edges.report.load import load_spec
from fitcalc.core.report.matrix import expand, matrix_size
from fitcalc.core.report.spec import ReportSpec, report_spec_schema

ROOT = Path(__file__).resolve().parents[2]


def spec_of(tmp_path, text: str) -> ReportSpec:
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return load_spec(p)


def test_simplest_spec_works_as_written(tmp_path):
    # The issue's own example: three lists and one assertion for every scenario.
    s = spec_of(tmp_path, "models: [gpt-oss-20b]\ngpus: [24GiB, 16GiB]\ncontexts: [8192, 32k]\n"
                          "assert: {must_fit: true}\n")
    cases = expand(s)
    assert len(cases) == 1 * 2 * 2
    assert s.assert_.must_fit is True
    # 32k is 32 * 1024 tokens (context lengths are quoted in binary thousands)
    assert [c.context for c in cases] == [8192, 32768, 8192, 32768]
    assert [c.gpu for c in cases] == ["24GiB", "24GiB", "16GiB", "16GiB"]
    # defaults fill the rest
    assert {(c.batch, c.engine, c.recipe, c.kv_dtype) for c in cases} == {(1, "auto", "native", "auto")}


def test_matrix_is_the_product_of_every_list(tmp_path):
    s = spec_of(tmp_path, "models: [gpt-oss-20b]\ngpus: [24GiB, 'h100-sxm:8', {gpu: 80000MB, count: 2}]\n"
                          "contexts: [4k, 8k]\nbatches: [1, 4, 16]\nengines: [vllm, llama.cpp]\n"
                          "recipes: [native, q4_k_m]\nkv_dtypes: [auto, fp8]\n")
    assert matrix_size(s) == 1 * 3 * 2 * 3 * 2 * 2 * 2  # = 144
    names = [c.name for c in expand(s)]
    assert len(set(names)) == 144
    assert "gpt-oss-20b @ 80000MB:2 ctx=4096 batch=16 engine=llama.cpp recipe=q4_k_m kv=fp8" in names


def test_defaults_and_named_scenarios(tmp_path):
    s = spec_of(tmp_path, "defaults: {context: 16k, engine: llama.cpp, batch: 2}\n"
                          "scenarios:\n  - {name: a, model: gpt-oss-20b, gpu: 24GiB}\n"
                          "  - {name: b, model: gpt-oss-20b, gpu: 24GiB, context: 4096, batch: 1, engine: vllm}\n")
    a, b = expand(s)
    assert (a.context, a.batch, a.engine, a.origin) == (16384, 2, "llama.cpp", "scenario")
    assert (b.context, b.batch, b.engine) == (4096, 1, "vllm")


@pytest.mark.parametrize("text,field,needle", [
    ("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\nbatchs: [1]\n", "batchs", "did you mean 'batches'"),
    ("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontext: [8192]\n", "context", "did you mean 'contexts'"),
    ("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\nassert: {must_fits: true}\n", "assert.must_fits",
     "did you mean 'must_fit'"),
    ("models: [gpt-oss-20b]\ngpus: [{gpu: 24GiB, cout: 2}]\ncontexts: [8192]\n", "gpus[0].cout",
     "did you mean 'count'"),
    ("scenarios:\n  - {name: a, model: gpt-oss-20b, gpu: 24GiB, contxt: 4096}\n", "scenarios[0].contxt",
     "did you mean 'context'"),
    ("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\nassert: {max_vram: 24G}\n", "assert.max_vram",
     "ambiguous"),
    ("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [32q]\n", "contexts[0]", "cannot read"),
    ("models: [gpt-oss-20b]\ncontexts: [8192]\n", None, "gpus"),
    ("scenarios:\n  - {name: a, model: gpt-oss-20b, gpu: 24GiB}\n", None, "defaults.context"),
    ("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\nmodels: [x]\n", None, "duplicate key"),
    ("- just\n- a list\n", None, "mapping"),
])
def test_bad_spec_is_one_spec_error(tmp_path, text, field, needle):
    with pytest.raises(SpecError) as e:
        spec_of(tmp_path, text)
    line = e.value.one_line()
    assert "\n" not in line
    assert needle.lower() in line.lower(), line
    if field:
        assert f": {field}: " in line, line


@pytest.mark.parametrize("text,needle", [
    ("models: []\ngpus: [24GiB]\ncontexts: [8192]\n", "empty matrix: models"),
    ("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: []\n", "empty matrix: contexts"),
    ("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\nengines: []\n", "empty matrix: engines"),
    ("title: nothing\n", "no scenarios"),
    ("models: [gpt-oss-20b]\ngpus: [24GiB, 24GiB]\ncontexts: [8192]\n", "twice"),
    ("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192, 8k]\n", "twice"),
])
def test_empty_or_repeated_matrix_is_refused(tmp_path, text, needle):
    with pytest.raises(InputError) as e:
        expand(spec_of(tmp_path, text))
    assert needle in e.value.one_line()


def test_cap_needs_yes(tmp_path):
    # 1 model x 3 GPUs x 4 contexts = 12 scenarios, over a stated cap of 10
    text = "models: [gpt-oss-20b]\ngpus: [8GiB, 16GiB, 24GiB]\ncontexts: [1k, 2k, 4k, 8k]\nmax_scenarios: 10\n"
    s = spec_of(tmp_path, text)
    with pytest.raises(InputError, match="12 scenarios, over the cap of 10"):
        expand(s)
    assert len(expand(s, yes=True)) == 12


def test_schema_in_docs_is_current():
    """docs/report-spec.schema.json is what `python scripts/export_report_schema.py` writes."""
    published = json.loads((ROOT / "docs" / "report-spec.schema.json").read_text())
    assert published == report_spec_schema(), "run: python scripts/export_report_schema.py"


def test_examples_validate_against_the_published_schema():
    """Every spec under docs/examples/ passes both the pydantic model and the published JSON Schema
    (what an editor checks), and the schema refuses a misspelt key as the model does."""
    import yaml

    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the dev extra: pip install '.[dev]'")
    published = json.loads((ROOT / "docs" / "report-spec.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(published)
    specs = sorted((ROOT / "docs" / "examples").glob("*.yaml")) + [ROOT / "tests" / "golden" / "report-small.yaml"]
    assert len(specs) >= 3
    for p in specs:
        load_spec(p)
        errors = list(validator.iter_errors(yaml.safe_load(p.read_text())))
        assert errors == [], (p.name, [e.message for e in errors])
    bad = {"models": ["gpt-oss-20b"], "gpus": ["24GiB"], "contexts": ["32k"], "batchs": [1]}
    assert list(validator.iter_errors(bad))
    assert list(validator.iter_errors({"models": ["m"], "gpus": ["g"], "contexts": [0]}))


@pytest.mark.parametrize("example", ["ci-sizing.yaml", "fine-tuning.yaml"])
def test_ci_examples_pass(runner, app, example):
    r = runner.invoke(app, ["check", str(ROOT / "docs" / "examples" / example)])
    assert r.exit_code == 0, r.output


def test_schema_names_the_assert_key_by_its_yaml_spelling():
    schema = report_spec_schema()
    assert "assert" in schema["properties"] and "assert_" not in schema["properties"]
    assert schema["additionalProperties"] is False
