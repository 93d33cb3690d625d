"""Engine flags: one pure function over each engine profile's `flags:` map."""

import pytest

from fitcalc.edges.catalog import load_engine, load_model
from fitcalc.core.estimate.placement import Layout
from fitcalc.core.flags import engine_flags, model_reference
from fitcalc.core.plan import Hardware, make_plan
from tests import devices as dev


def test_spellings_decide_flag_env_or_parameter():
    e = load_engine("ollama")
    f = engine_flags(e, "gpt-oss:20b", {"context": 8192, "batch": 2, "kv_dtype": "q8_0", "gpu_layers": 25,
                                        "tensor_parallel": 2})
    assert f.env == {"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_KV_CACHE_TYPE": "q8_0"}
    assert f.parameters == {"num_ctx": "8192", "num_gpu": "25"}
    assert f.unsupported == ["tensor_parallel"]  # Ollama has no such setting
    assert f.command == "OLLAMA_NUM_PARALLEL=2 OLLAMA_KV_CACHE_TYPE=q8_0 ollama run gpt-oss:20b"


def test_engine_value_spellings_and_switches():
    e = load_engine("vllm")
    f = engine_flags(e, "openai/gpt-oss-120b", {"context": 32768, "kv_dtype": "fp8-e4m3", "tensor_parallel": 4,
                                                "expert_parallel": 4})
    # fitcalc's fp8-e4m3 is vLLM's fp8_e4m3; --enable-expert-parallel takes no value
    assert f.args == ["--max-model-len", "32768", "--kv-cache-dtype", "fp8_e4m3", "--tensor-parallel-size", "4",
                      "--enable-expert-parallel"]
    assert f.command.startswith("vllm serve openai/gpt-oss-120b --max-model-len 32768")


def test_llama_cpp_context_counts_every_sequence_and_quantized_v_needs_flash_attention():
    # llama-server's -c is the KV pool of all --parallel sequences; a q8_0 V cache needs -fa.
    m = load_model("gpt-oss-20b")
    plan = make_plan(m, load_engine("llama.cpp"), Hardware((dev.budget(24),), dev.host(64)), context=8192, batch=4,
                     kv_dtype="q8_0")
    a = plan.engine_flags.args
    assert a[a.index("-c") + 1] == str(8192 * 4) and a[a.index("--parallel") + 1] == "4"
    assert a[a.index("-ctk") + 1] == "q8_0" and a[a.index("-ctv") + 1] == "q8_0" and a[a.index("-fa") + 1] == "on"


def test_llama_cpp_offload_and_split_flags():
    m = load_model("gpt-oss-120b")
    plan = make_plan(m, load_engine("llama.cpp"), Hardware((dev.budget(24), dev.budget(16)), dev.host(64)),
                     context=16384, fixed=Layout(cpu_moe=20))
    a = plan.engine_flags.args
    assert a[a.index("--n-cpu-moe") + 1] == "20"
    assert a[a.index("-ngl") + 1] == "37"  # 36 layers + the output layer
    split = [int(x) for x in a[a.index("-ts") + 1].split(",")]
    assert sum(split) == 37 and split == plan.layout.split


def test_model_reference_by_engine():
    m = load_model("gpt-oss-20b")
    assert model_reference(load_engine("vllm"), m, "native").ref == "openai/gpt-oss-20b"
    # Ollama's gpt-oss tags ship the release's MXFP4 experts: the GGUF engines' mix that keeps them
    assert model_reference(load_engine("ollama"), m, "mxfp4_moe").ref == "gpt-oss:20b"
    assert model_reference(load_engine("llama.cpp"), m, "mxfp4_moe").ref == "gpt-oss-20b-MXFP4_MOE.gguf"


def test_model_reference_names_only_weights_it_holds():
    # issue #16: deepseek-ai/DeepSeek-R1 holds FP8 blocks; an INT4 GPTQ plan must not name it
    r = model_reference(load_engine("vllm"), load_model("deepseek-r1"), "int4-gptq")
    assert not r.found and r.ref.startswith("<") and "deepseek-ai/DeepSeek-R1 holds FP8" in r.note
    # the library tag qwen3:30b-a3b serves Q4_K_M: it names that, and only that
    q = load_model("qwen3-30b-a3b")
    assert model_reference(load_engine("ollama"), q, "q4_k_m").ref == "qwen3:30b-a3b"
    r = model_reference(load_engine("ollama"), q, "q5_k_m")
    assert not r.found and r.ref.endswith(":Q5_K_M") and "serves Q4_K_M" in r.note


# Plans whose paste-ready lines are run against fake engines that accept exactly the arguments
# in tests/data/engine_args.yaml (read from each engine's source): every spelling a profile
# uses, on one GPU and several, with offload and quantized KV.
PASTE_CASES = [
    ("gpt-oss-20b", ["rtx-4090"], "vllm", {}),
    ("gpt-oss-20b", ["rtx-4090"], "sglang", {}),
    ("gpt-oss-20b", ["rtx-4060-ti-16gb"], "llama.cpp", {"kv_dtype": "q8_0"}),
    ("gpt-oss-20b", ["rtx-4060-ti-16gb"], "ollama", {"kv_dtype": "q8_0"}),
    ("gpt-oss-120b", ["h100-sxm:2"], "vllm", {"kv_dtype": "fp8-e4m3"}),
    ("gpt-oss-120b", ["h100-sxm:2"], "sglang", {}),
    ("gpt-oss-120b", ["rtx-4090", "rtx-4060-ti-16gb"], "llama.cpp", {"context": 16384}),
    ("gpt-oss-120b", ["rtx-4090"], "ollama", {"context": 16384}),
    ("qwen3-30b-a3b", ["rtx-4090"], "ollama", {}),  # Q5_K_M: no library tag holds it
    ("deepseek-r1", ["h100-sxm:8"], "vllm", {}),     # INT4 GPTQ: no bundled repository holds it
]


@pytest.mark.parametrize("model,gpus,engine,kw", PASTE_CASES,
                         ids=[f"{m}-{e}-{'+'.join(g)}" for m, g, e, _ in PASTE_CASES])
def test_paste_ready_lines_run_against_the_engines_argument_lists(tmp_path, model, gpus, engine, kw):
    import subprocess

    from fitcalc import api
    from tests import engine_fakes

    plan = api.plan(model, gpus, ram="128GiB", engine=engine, **kw)
    f = plan.engine_flags
    assert f is not None and f.steps
    lines = [line for step in f.steps for line in step.lines]
    if not f.model_ref.found:
        # a placeholder, and a note saying what to put there, shown with the plan
        assert f.model_ref.note in plan.notes and f.model_ref.ref in "\n".join(lines)
        lines = [line.replace(f.model_ref.ref, "someone/" + model + "-quantized") for line in lines]
    fakes = engine_fakes.install(tmp_path / "bin")
    script = "set -e\ncd " + str(tmp_path) + "\n" + "\n".join(lines) + "\n"
    r = subprocess.run(["bash", "-c", script], env=engine_fakes.run_env(fakes), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, (script, r.stderr)


def test_ollama_settings_are_server_environment_and_a_modelfile():
    # issue #16: not `PARAMETER` lines after a shell command
    plan = make_plan(load_model("gpt-oss-20b"), load_engine("ollama"),
                     Hardware((dev.budget(16),), dev.host(64)), context=8192, kv_dtype="q8_0")
    serve, model = plan.engine_flags.steps
    assert serve.lines == ["OLLAMA_NUM_PARALLEL=1 OLLAMA_KV_CACHE_TYPE=q8_0 OLLAMA_FLASH_ATTENTION=1 ollama serve"]
    assert model.lines[0] == "cat > Modelfile <<'EOF'" and model.lines[1] == "FROM gpt-oss:20b"
    assert "PARAMETER num_ctx 8192" in model.lines and model.lines[-1] == "ollama run gpt-oss-20b-fitcalc"
