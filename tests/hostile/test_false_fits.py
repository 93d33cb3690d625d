"""No false "fits" (issue #17): a model fitcalc cannot describe gets no verdict, and counts that
contradict each other or the tensor table are refused, each in one line with exit code 1."""

from __future__ import annotations

import json

import pytest

from tests.hostile.conftest import cli, fitcalc
from tests.hostile.makers import LLAMA_CONFIG, hf_folder, llama_gguf


@pytest.mark.parametrize("config,needle", [
    ({"model_type": "weird", "hidden_size": 64}, "model_type 'weird' is not a family"),
    ({"hidden_size": 64}, "config.json has no model_type"),
], ids=["unknown-model-type", "missing-model-type"])
def test_unknown_architecture_gets_no_verdict(tmp_path, config, needle):
    # Before: FITS with no KV term and a largest context of 1,099,511,627,776 tokens.
    folder = hf_folder(tmp_path / "m", config)
    for cmd in ("fit", "plan"):
        r = cli(cmd, str(folder), "--gpu", "h100-sxm", "--context", "1000000")
        assert r.code == 1 and needle in r.one_line() and "no verdict" in r.one_line()
    assert cli("size", str(folder)).code == 0  # the weights alone are still answered


def test_lone_safetensors_gets_no_verdict(tmp_path):
    f = hf_folder(tmp_path / "lone", None) / "model.safetensors"
    r = cli("fit", str(f), "--gpu", "h100-sxm")
    assert r.code == 1 and "there is no config.json" in r.one_line()


def test_check_must_fit_fails_for_an_unknown_architecture(tmp_path):
    # A CI gate: `check` with must_fit and min_context 1,000,000 exited 0 before.
    hf_folder(tmp_path / "m", {"model_type": "weird"})
    spec = tmp_path / "gate.yaml"
    spec.write_text("models: [m]\ngpus: [h100-sxm]\ncontexts: [8192]\n"
                    "assert: {must_fit: true, min_context: 1000000}\n", encoding="utf-8")
    r = cli("check", str(spec))
    assert r.code == 1 and "no verdict" in r.one_line()


def test_check_over_scenarios_all_left_out_fails(tmp_path):
    # llama.cpp takes no fp8 KV cache: the only matrix row is left out, and a gate over no
    # scenario at all used to print "0 assertions over 0 scenarios" and exit 0.
    spec = tmp_path / "gate.yaml"
    spec.write_text("models: [gpt-oss-20b]\ngpus: [h100-sxm]\ncontexts: [8192]\nengines: [llama.cpp]\n"
                    "kv_dtypes: [fp8]\nassert: {must_fit: true}\n", encoding="utf-8")
    r = cli("check", str(spec))
    assert r.code == 1


@pytest.mark.parametrize("gpu,needle", [
    # gpt-oss-20b has 64 attention heads (model_specs/gpt-oss-20b.yaml): 64 % 3 != 0.
    ("h100-sxm:3", "3 does not divide the 64 attention heads"),
    ("h100-sxm:1000000000", "over the limit of 1,024"),
], ids=["tp3", "tp1e9"])
def test_fit_refuses_a_tensor_parallelism_plan_refuses(gpu, needle):
    r = fitcalc("fit", "gpt-oss-20b", "--gpu", gpu, "--engine", "vllm")
    assert r.code == 1 and needle in r.one_line()
    plan = cli("plan", "gpt-oss-20b", "--gpu", "h100-sxm:4", "--tp", "3")
    assert plan.code == 1 and "--tp 3 does not divide the 64 attention heads" in plan.one_line()


def test_fit_with_a_dividing_gpu_count_still_answers():
    r = cli("fit", "gpt-oss-20b", "--gpu", "h100-sxm:4", "--engine", "vllm", "--json")
    assert r.code == 0 and json.loads(r.stdout)["fits"] is True


@pytest.mark.parametrize("blocks,table,needle", [
    (1_000_000, 2, "block_count is 1,000,000, over the limit of 1,024 layers"),  # priced 488 GiB of KV before
    (3, 2, "block_count says 3 blocks but the tensor table holds 2 (blk.0 to blk.1)"),
    (2, 1, "block_count says 2 blocks but the tensor table holds 1"),
], ids=["1e6-for-2", "3-for-2", "2-for-1"])
def test_gguf_metadata_contradicting_its_tensor_table(tmp_path, blocks, table, needle):
    path = llama_gguf(tmp_path / "m.gguf", blocks, table)
    r = fitcalc("fit", str(path), "--gpu", "h100-sxm")
    assert r.code == 1 and needle in r.one_line()


def test_an_honest_gguf_still_answers(tmp_path):
    r = cli("size", str(llama_gguf(tmp_path / "m.gguf", 2, 2)), "--json")
    assert r.code == 0 and json.loads(r.stdout)["params_total"] > 0


@pytest.mark.parametrize("field,value,needle", [
    ("num_key_value_heads", 0, "num_key_value_heads must be a positive integer, got 0"),
    ("num_hidden_layers", 1e12, "num_hidden_layers"),  # a float in JSON: 10^12 layers
    ("num_hidden_layers", 10_000_000, "num_hidden_layers"),
    ("num_hidden_layers", True, "num_hidden_layers must be a positive integer, got True"),
    ("num_attention_heads", 100_000, "num_attention_heads"),
], ids=["kv-heads-0", "layers-1e12", "layers-1e7", "layers-true", "heads-1e5"])
def test_config_counts_out_of_bounds(tmp_path, field, value, needle):
    folder = hf_folder(tmp_path / "m", {**LLAMA_CONFIG, field: value})
    r = cli("size", str(folder))
    assert r.code == 1 and needle in r.one_line()


@pytest.mark.parametrize("value,needle", [
    ("true", "num_hidden_layers"),  # YAML true was read as one layer
    ("10000000", "less than or equal to 1024"),  # 1.7 GB and 54 s before
    ("2.5", "num_hidden_layers"),
], ids=["true", "1e7", "float"])
def test_spec_yaml_counts_out_of_bounds(tmp_path, value, needle):
    from tests.test_spec_errors import GOOD

    spec = tmp_path / "spec.yaml"
    text = GOOD.replace("  num_hidden_layers: 2\n", f"  num_hidden_layers: {value}\n")
    assert text != GOOD
    spec.write_text(text, encoding="utf-8")
    r = fitcalc("fit", str(spec), "--gpu", "h100-sxm")
    assert r.code == 1 and needle in r.one_line()
