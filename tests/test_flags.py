"""Engine flags: one pure function over each engine profile's `flags:` map."""

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
    assert model_reference(load_engine("vllm"), m, "native") == "openai/gpt-oss-20b"
    assert model_reference(load_engine("ollama"), m, "native") == "gpt-oss:20b"
    assert model_reference(load_engine("llama.cpp"), m, "mxfp4_moe") == "gpt-oss-20b-MXFP4_MOE.gguf"
