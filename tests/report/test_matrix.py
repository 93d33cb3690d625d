"""Evaluating a matrix: the same answers as `fitcalc fit`, with the shared work done once."""

from pathlib import Path

import pytest

from fitcalc import api
from fitcalc.core.errors import SpecError
from fitcalc.edges.report.load import CatalogResolver, build_report
from fitcalc.core.report.matrix import Case, evaluate

GiB = 2**30


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return str(p)


def test_every_row_matches_fit(tmp_path):
    """Each scenario's numbers are exactly what `fitcalc fit` gives for the same inputs."""
    spec = write(tmp_path, "models: [gpt-oss-20b]\ngpus: [8GiB, 16GiB, '12GiB:2', 80000MB]\n"
                           "contexts: [4k, 32k, 128k]\nbatches: [1, 4]\nengines: [llama.cpp, vllm]\n")
    _, cases, rep = build_report(spec)
    assert len(rep.scenarios) == 4 * 3 * 2 * 2
    for c, r in zip(cases, rep.scenarios):
        # the spec's recipe as written ("native": the checkpoint's own), which fit takes as --recipe
        (ref,) = api.fit("gpt-oss-20b", [c.gpu], c.context, c.batch, c.engine, recipe=c.recipe)
        got = r.fit
        for key in ("required_bytes", "available_bytes", "headroom_bytes", "uncertainty_bytes", "verdict",
                    "max_context", "kv_capacity_bytes", "count"):
            assert getattr(got, key) == getattr(ref, key), (c.name, key)
        assert [(t.id, t.bytes) for t in got.terms] == [(t.id, t.bytes) for t in ref.terms]


def test_weights_add_up_to_the_published_checkpoint(tmp_path):
    """llama.cpp loads gpt-oss-20b's MXFP4 as stored: the GPU's weights terms plus the input embedding,
    which llama.cpp keeps in system RAM (201,088 x 2,880 BF16 = 1,158,266,880 B), sum to the checkpoint's
    13,761,264,768 bytes (model.safetensors.index.json total_size of openai/gpt-oss-20b)."""
    spec = write(tmp_path, "models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\nengines: [llama.cpp]\n")
    (r,) = api.report(spec).scenarios
    on_gpu = sum(t.bytes for t in r.fit.terms if t.id.startswith("weights."))
    assert on_gpu + 201_088 * 2_880 * 2 == 13_761_264_768
    assert r.fit.available_bytes == 24 * GiB
    assert r.fit.required_bytes == sum(t.bytes for t in r.fit.terms)
    assert r.fit.headroom_bytes == 24 * GiB - r.fit.required_bytes


def test_tensor_parallel_splits_the_weights_per_rank(tmp_path):
    """Two GPUs in tensor parallel: each holds its rank's part of every tensor (vLLM's parallel
    layers): matrices halved, the router, norms and o_proj's bias whole. An RTX 5090 computes MXFP4 natively,
    so vLLM keeps the experts as stored (no repack)."""
    spec = write(tmp_path, "models: [gpt-oss-20b]\ngpus: [rtx-5090, 'rtx-5090:2']\ncontexts: [8192]\n"
                           "engines: [vllm]\n")
    one, two = api.report(spec).scenarios
    w1 = {t.id: t.bytes for t in one.fit.terms if t.id.startswith("weights.")}
    w2 = {t.id: t.bytes for t in two.fit.terms if t.id.startswith("weights.")}
    # attention per layer (bf16): q [4096/2, 2880] + bias, k and v [512/2, 2880] + bias,
    # o_proj [2880, 4096/2] + its whole bias [2880], sinks 64/2
    assert w2["weights.attention"] == 24 * 2 * (2048 * 2880 + 2048 + 2 * (256 * 2880 + 256) + 2880 * 2048 + 2880 + 32)
    # experts (MXFP4, 17 B per 32 weights; bf16 biases): gate_up [5760/2, 2880] + bias rows, down [2880, 2880/2]
    # + its whole bias
    assert w2["weights.experts"] == 24 * 32 * (2880 * 2880 * 17 // 32 + 2880 * 2 + 2880 * 1440 * 17 // 32 + 2880 * 2)
    # vocabulary-parallel embedding and lm_head: 201,088 rows (a multiple of 64) split in two
    assert w2["weights.lm_head"] == w2["weights.embedding"] == 201088 // 2 * 2880 * 2
    assert w2["weights.router"] == w1["weights.router"] and w2["weights.norms"] == w1["weights.norms"]
    assert two.fit.count == 2 and two.gpu == "rtx-5090:2"


def test_llama_cpp_splits_layers_over_two_gpus(tmp_path):
    """llama.cpp splits 25 slots (24 layers and the output) over two equal GPUs as 13 + 12: layers 0-12 on
    the first, layers 13-23 and the output on the second. The GPU shown is the fuller one, so its routed
    experts are those of 13 or of 11 layers (each layer holds 1/24 of them)."""
    spec = write(tmp_path, "models: [gpt-oss-20b]\ngpus: [24GiB, '24GiB:2']\ncontexts: [8192]\n"
                           "engines: [llama.cpp]\n")
    one, two = api.report(spec).scenarios
    experts = {r.fit.count: next(t.bytes for t in r.fit.terms if t.id == "weights.experts") for r in (one, two)}
    per_layer = experts[1] // 24
    assert per_layer * 24 == experts[1]
    assert experts[2] in (13 * per_layer, 11 * per_layer)
    assert two.fit.tp == 1 and any("splits whole layers" in w for w in two.fit.warnings)


class CountingResolver(CatalogResolver):
    def __init__(self):
        super().__init__()
        self.calls = {"model": 0, "device": 0, "engine": 0}

    def model(self, text, source):
        self.calls["model"] += 1
        return super().model(text, source)

    def device(self, gpu):
        self.calls["device"] += 1
        return super().device(gpu)

    def engine(self, model, recipe, engine):
        self.calls["engine"] += 1
        return super().engine(model, recipe, engine)


def test_lookups_and_solves_happen_once(monkeypatch):
    import fitcalc.core.plan as plan

    solves = []
    real = plan.solve_max_context
    monkeypatch.setattr(plan, "solve_max_context", lambda *a, **k: solves.append(1) or real(*a, **k))
    gpus = ["8GiB", "16GiB", "24GiB"]
    cases = [Case(f"c{i}", "matrix", "gpt-oss-20b", "auto", g, ctx, 1, "llama.cpp", "native", "auto", None)
             for i, (g, ctx) in enumerate((g, c) for g in gpus for c in (1024, 4096, 16384, 65536))]
    res = CountingResolver()
    results, notes = evaluate(cases, res)
    assert len(results) == 12 and notes == []
    assert res.calls == {"model": 1, "device": 3, "engine": 1}
    assert len(solves) == 3  # once per GPU: the max context does not depend on the context asked for
    # and the cached answer is the one a fresh solve gives
    for r in results:
        (ref,) = api.fit("gpt-oss-20b", [r.gpu], r.fit.context, 1, "llama.cpp", recipe="native")
        assert r.fit.max_context == ref.max_context


def test_engine_without_the_kv_dtype_is_left_out_with_a_note(tmp_path):
    # vLLM takes fp8 KV; llama.cpp does not (engine_profiles/llama.cpp.yaml kv.dtypes)
    spec = write(tmp_path, "models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\n"
                           "engines: [vllm, llama.cpp]\nkv_dtypes: [auto, fp8]\n")
    rep = api.report(spec)
    assert [(r.fit.engine, r.kv_dtype_requested) for r in rep.scenarios] == [
        ("vllm", "auto"), ("vllm", "fp8"), ("llama.cpp", "auto")]
    assert rep.scenarios[1].fit.kv_dtype == "fp8-e4m3"
    assert len(rep.notes) == 1 and "left out 1 matrix scenario" in rep.notes[0] and "fp8" in rep.notes[0]


@pytest.mark.parametrize("text,field,needle", [
    ("models: [gpt-oss-2b]\ngpus: [24GiB]\ncontexts: [8192]\n", "models[0]", "did you mean: gpt-oss-20b"),
    ("models: [gpt-oss-20b]\ngpus: [24GiB, 24G]\ncontexts: [8192]\n", "gpus[1]", "24GiB"),
    ("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\nengines: [vlm]\n", "engines[0]",
     "did you mean: vllm"),
    ("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\nrecipes: [q4_k_n]\n", "recipes[0]",
     "did you mean: q4_k_m"),
    ("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\nengines: [vllm, llama.cpp]\nkv_dtypes: [fp88]\n",
     "kv_dtypes[0]", "did you mean: fp8"),
    ("scenarios:\n  - {name: s, model: gpt-oss-20b, gpu: 24GiB, context: 4096, engine: llama.cpp, "
     "kv_dtype: fp8}\n", "scenarios[s].kv_dtype", "not taken by llama.cpp"),
    ("scenarios:\n  - {name: s, model: gpt-oss-20b, gpu: 24GiB, context: 4096, engine: lama.cpp}\n",
     "scenarios[s].engine", "did you mean: llama.cpp"),
])
def test_unknown_ids_name_the_field_and_the_closest_ids(tmp_path, text, field, needle):
    with pytest.raises(SpecError) as e:
        build_report(write(tmp_path, text))
    line = e.value.one_line()
    assert f": {field}: " in line, line
    assert needle in line, line


def test_model_path_is_relative_to_the_spec(tmp_path):
    import shutil

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "models").mkdir()
    shutil.copy(root / "model_specs" / "gpt-oss-20b.yaml", tmp_path / "models" / "mine.yaml")
    spec = write(tmp_path, "models: [models/mine.yaml]\ngpus: [24GiB]\ncontexts: [8192]\n")
    (r,) = api.report(spec).scenarios
    assert r.model == "models/mine.yaml" and r.fit.model == "gpt-oss-20b"


def test_engine_settings_match_fit_with_set(tmp_path):
    """defaults.engine_settings and a scenario's settings give what `fitcalc fit --set` gives."""
    spec = write(tmp_path, "defaults:\n  context: 131072\n  engine_settings:\n"
                           "    vllm: {gpu_memory_utilization: 0.95, max_num_batched_tokens: 1024}\n"
                           "scenarios:\n"
                           "  - {name: a, model: gpt-oss-120b, gpu: h100-sxm, engine: vllm}\n"
                           "  - {name: b, model: gpt-oss-120b, gpu: h100-sxm, engine: vllm,"
                           " settings: {mxfp4_backend: marlin}}\n")
    _, _, rep = build_report(spec)
    base = {"gpu_memory_utilization": "0.95", "max_num_batched_tokens": "1024"}
    for r, extra in zip(rep.scenarios, ({}, {"mxfp4_backend": "marlin"})):
        (ref,) = api.fit("gpt-oss-120b", ["h100-sxm"], 131072, 1, "vllm", settings={**base, **extra})
        assert r.fit.required_bytes == ref.required_bytes and r.fit.kv_capacity_bytes == ref.kv_capacity_bytes
    assert rep.scenarios[0].fit.required_bytes != rep.scenarios[1].fit.required_bytes


def test_engine_settings_unknown_key_is_one_line(tmp_path):
    from fitcalc.core.errors import InputError

    spec = write(tmp_path, "defaults:\n  context: 4096\nscenarios:\n"
                           "  - {name: a, model: gpt-oss-20b, gpu: 24GiB, engine: llama.cpp, settings: {ubatch: 9}}\n")
    with pytest.raises(InputError) as e:
        build_report(spec)
    assert "n_ubatch" in e.value.one_line()
