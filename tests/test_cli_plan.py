"""`fitcalc plan` through the CLI: the JSON document, the rendered plan, bad input (core purity and
"no torch" are in tests/test_core_purity.py)."""

import json

import pytest

REQUIRED = ("fits", "max_context", "max_batch", "gpus_needed", "placement", "decode_tokens_per_s", "engine_flags",
            "prefill_s", "prompt_tokens")


def _plan(runner, app, *args):
    return runner.invoke(app, ["plan", *args])


def test_plan_json_has_the_fields(runner, app):
    r = _plan(runner, app, "gpt-oss-20b", "--gpu", "24GiB", "--ram", "64GiB", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    for key in REQUIRED:
        assert key in doc
    assert doc["fits"] is True and doc["gpus_needed"] == 1
    dev = doc["placement"][0]
    assert {"device", "device_id", "required_bytes", "available_bytes"} <= set(dev)
    assert dev["available_bytes"] == 24 * 2**30
    assert dev["required_bytes"] == sum(t["bytes"] for t in dev["terms"]) <= dev["available_bytes"]
    assert doc["engine_flags"]["command"].startswith("vllm serve openai/gpt-oss-20b --max-model-len")


def test_plan_offload_json(runner, app):
    r = _plan(runner, app, "gpt-oss-120b", "--gpu", "24GiB", "--ram", "64GiB", "--engine", "llama.cpp",
              "--context", "32k", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["fits"] and doc["layout"]["cpu_moe"] > 0
    assert doc["host"]["required_bytes"] <= 64 * 2**30
    assert "--n-cpu-moe" in doc["engine_flags"]["args"]


def test_plan_auto_engine_falls_back_to_llama_cpp(runner, app):
    # vLLM keeps every layer on the GPUs; 24 GiB cannot hold gpt-oss-120b, llama.cpp with experts in RAM can.
    r = _plan(runner, app, "gpt-oss-120b", "--gpu", "24GiB", "--ram", "64GiB", "--context", "16k", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["engine"] == "llama.cpp" and doc["fits"]
    assert any("vLLM" in n for n in doc["notes"])


def test_plan_renders_a_table_speed_and_flags(runner, app):
    r = _plan(runner, app, "gpt-oss-120b", "--gpu", "24GiB", "--ram", "64GiB", "--engine", "llama.cpp",
              "--context", "32k")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "FITS" in out and "RAM" in out and "llama-server -m gpt-oss-120b-MXFP4_MOE.gguf" in out
    assert "largest context at batch 1" in out and "GPUs needed" in out


def test_plan_several_gpus_tensor_split(runner, app):
    r = _plan(runner, app, "llama-3.1-70b", "--gpu", "24GiB:2", "--gpu", "12GiB", "--ram", "64GiB",
              "--engine", "llama.cpp", "--recipe", "q4_k_m", "--context", "8k", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert len(doc["placement"]) == 3 and all(d["fits"] for d in doc["placement"])
    assert "-ts" in doc["engine_flags"]["args"]


def test_plan_check_exit_code(runner, app):
    r = _plan(runner, app, "gpt-oss-20b", "--gpu", "12GiB", "--ram", "64GiB", "--engine", "vllm", "--check")
    assert r.exit_code == 3, r.output  # does not fit the GPU given; 2 would
    assert "DOES NOT FIT" in r.stdout


@pytest.mark.parametrize("args,needle", [
    # no configuration fits up to the bound: says so and what is closest
    (["deepseek-r1", "--gpu", "24GiB", "--engine", "vllm", "--max-gpus", "4", "--ram", "64GiB"],
     "no configuration"),
    # conflicting options
    (["gpt-oss-20b", "--gpu", "24GiB", "--engine", "llama.cpp", "--tp", "2"], "tensor parallelism"),
    (["gpt-oss-20b", "--gpu", "24GiB", "--engine", "vllm", "--cpu-moe", "4"], "gpu"),
    (["llama-3.1-8b", "--gpu", "24GiB:2", "--engine", "vllm", "--ep", "2", "--tp", "2"], "mixture-of-experts"),
    (["gpt-oss-20b", "--gpu", "24GiB:2", "--engine", "vllm", "--tp", "2", "--pp", "2"], "needs 4 gpus"),
    # TP that does not divide the heads
    (["gpt-oss-20b", "--gpu", "24GiB:3", "--engine", "vllm", "--tp", "3"], "does not divide the 64 attention heads"),
    (["gpt-oss-20b", "--gpu", "24GiB", "--cpu-moe", "lots", "--engine", "llama.cpp"], "--cpu-moe"),
    (["gpt-oss-20b", "--gpu", "24GiB", "--batch", "0"], "--batch"),
    (["gpt-oss-20b", "--gpu", "24GiB", "--ram", "64G"], "64GiB"),
])
def test_plan_bad_input_is_one_line(runner, app, args, needle):
    r = _plan(runner, app, *args)
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle.lower() in lines[0].lower(), r.stderr
    assert "Traceback" not in r.output


def test_plan_set_places_layers_and_moves_the_engine(runner, app):
    # --set n_gpu_layers=10 is llama.cpp's -ngl 10: the GPU gets 10 of the 25 layer slots of gpt-oss-20b
    # (24 layers + the output layer), as --gpu-layers 10 does.
    r = _plan(runner, app, "gpt-oss-20b", "--gpu", "24GiB", "--ram", "64GiB", "--engine", "llama.cpp",
              "--set", "n_gpu_layers=10", "--set", "n_ubatch=1024", "--json")
    assert r.exit_code == 0, r.output
    ref = _plan(runner, app, "gpt-oss-20b", "--gpu", "24GiB", "--ram", "64GiB", "--engine", "llama.cpp",
                "--gpu-layers", "10", "--json")
    doc, base = json.loads(r.stdout), json.loads(ref.stdout)
    assert doc["layout"]["gpu_layers"] == base["layout"]["gpu_layers"] == 10
    cb = [t for t in doc["placement"][0]["terms"] if t["id"] == "act.compute_buffer"][0]
    cb0 = [t for t in base["placement"][0]["terms"] if t["id"] == "act.compute_buffer"][0]
    assert cb["inputs"]["T"] == 1024 and cb0["inputs"]["T"] == 512
    bad = _plan(runner, app, "gpt-oss-20b", "--gpu", "24GiB", "--engine", "llama.cpp", "--set", "max_num_seqs=4")
    assert bad.exit_code == 1 and "n_ubatch" in bad.output
