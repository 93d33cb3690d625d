"""KV cache terms against hand-derived golden values and engines' own logs."""

import pytest

from fitcalc.edges.catalog import load_engine, load_model
from fitcalc.core.estimate import estimate, prepare
from fitcalc.core.estimate.kvcache import kv_bytes_per_token, kv_format
from fitcalc.core.spec import Device, Workload
from fitcalc.core.units import GiB, MiB
from tests.archs import deepseek_v3, llama_3_1_8b

BIG = Device.from_budget(1 << 50)  # capacity is irrelevant to KV terms


def kv_terms(model, engine_id, context, batch=1, kv_dtype=None, chunk=None):
    e = load_engine(engine_id)
    p = prepare(model, None, e, kv_dtype)
    f = estimate(p, BIG, Workload(context=context, batch=batch, kv_dtype=kv_dtype, chunk_tokens=chunk))
    return {t.id: t.bytes for t in f.terms if t.id.startswith("kv.")}


def test_per_token_golden_llama_3_1_8b():
    # 2 (K,V) x 32 layers x 8 KV heads x 128 head_dim x 2 B (bf16) = 131,072 B per token
    # (ml-engineering inference/README: 0.131 MB/token for Llama-3.1-8B in bf16)
    m = llama_3_1_8b()
    e = load_engine("torch")
    assert kv_bytes_per_token(m.architecture, e, kv_format(m.architecture, e, None)) == 2 * 32 * 8 * 128 * 2 == 131_072


def test_mla_latent_golden_deepseek_v3():
    # (kv_lora_rank 512 + qk_rope_head_dim 64) x 61 layers x 2 B = 70,272 B per token (DeepSeek-V2 paper Table 1)
    m = deepseek_v3()
    e = load_engine("vllm")
    assert kv_bytes_per_token(m.architecture, e, kv_format(m.architecture, e, None)) == (512 + 64) * 61 * 2 == 70_272


def test_mla_decompressed_in_transformers_is_per_head():
    # transformers caches K (128 heads x (128 nope + 64 rope)) and V (128 heads x 128) per layer
    m = deepseek_v3()
    e = load_engine("transformers")
    per_token = kv_bytes_per_token(m.architecture, e, kv_format(m.architecture, e, None))
    assert per_token == 61 * (128 * 192 + 128 * 128) * 2


def test_mla_fp8_latent_halves_it():
    m = deepseek_v3()
    e = load_engine("vllm")
    assert kv_bytes_per_token(m.architecture, e, kv_format(m.architecture, e, "fp8")) == (512 + 64) * 61


# gpt-oss-20b: 24 layers alternating sliding (W=128) and full; K+V per layer-token = 2 x 8 x 64 x 2 B = 2048 B
PER_LAYER = 2 * 8 * 64 * 2


def test_gpt_oss_20b_torch_profile():
    # plain PyTorch stack: full layers hold every token, sliding layers a ring buffer of the window
    kv = kv_terms(load_model("gpt-oss-20b"), "torch", context=4096, batch=2)
    assert kv["kv.full"] == 12 * PER_LAYER * 4096 * 2
    assert kv["kv.sliding"] == 12 * PER_LAYER * 128 * 2


def test_gpt_oss_20b_vllm_blocks_and_sliding_rule():
    # vLLM: full layers cdiv(C, 16) blocks; sliding layers cdiv(min(W - 1 + chunk, C), 16) + 1 blocks
    # (vllm/v1/kv_cache_interface.py SlidingWindowSpec). chunk 2048: cdiv(127 + 2048, 16) + 1 = 137 blocks.
    kv = kv_terms(load_model("gpt-oss-20b"), "vllm", context=131_072, chunk=2048)
    assert kv["kv.full"] == 12 * PER_LAYER * 131_072
    assert kv["kv.sliding"] == 12 * PER_LAYER * 137 * 16
    # a context that is not a block multiple is rounded up to whole blocks: cdiv(1000, 16) = 63 blocks
    kv = kv_terms(load_model("gpt-oss-20b"), "vllm", context=1000, chunk=2048)
    assert kv["kv.full"] == 12 * PER_LAYER * 63 * 16
    # ... and a short context caps the sliding layers: min(2175, 1000) -> cdiv(1000, 16) + 1 = 64 blocks
    assert kv["kv.sliding"] == 12 * PER_LAYER * 64 * 16


def test_gpt_oss_20b_llama_cpp_matches_its_own_log():
    # ik_llama.cpp#822, llama-server build 6699, -c 131072, n_ubatch 512, f16 cache:
    # "non-SWA KV 3072.00 MiB (131072 cells, 12 layers)" and "SWA KV 18.00 MiB (768 cells, 12 layers)"
    kv = kv_terms(load_model("gpt-oss-20b"), "llama.cpp", context=131_072)
    assert kv["kv.full"] == 3072 * MiB
    assert kv["kv.sliding"] == 18 * MiB  # pad(128 + 512, 256) = 768 cells


def test_llama_cpp_pads_cells_to_256():
    # llama.cpp pads the cache to a multiple of 256 cells: 1000 x 2 sequences -> 2048 cells
    kv = kv_terms(llama_3_1_8b(), "llama.cpp", context=1000, batch=2)
    assert kv["kv.full"] == 2048 * 131_072 // 2 * 2  # f16 = bf16 bytes: 131,072 B per cell


def test_ollama_log_kv_self_size():
    # Ollama (llama.cpp runner), Llama-3.1-8B, --ctx-size 8192 --parallel 4, f16: "KV self size 1024.00 MiB"
    # (engine-logs: MagicWand18/Securetag-AI-Agent runpod-deploy/logcompleto.md). 8192 cells shared by 4
    # sequences = 4 x 2048 per sequence.
    kv = kv_terms(llama_3_1_8b(), "ollama", context=2048, batch=4)
    assert kv["kv.full"] == 1024 * MiB


@pytest.mark.parametrize("dtype,bytes_per_layer_token", [
    ("q8_0", 2 * (8 * 128 // 32) * 34),  # Q8_0: 34 B per 32 values, K and V rows of 8 x 128
    ("q4_0", 2 * (8 * 128 // 32) * 18),  # Q4_0: 18 B per 32
    ("fp16", 2 * 8 * 128 * 2),
])
def test_llama_cpp_quantized_kv(dtype, bytes_per_layer_token):
    kv = kv_terms(llama_3_1_8b(), "llama.cpp", context=4096, kv_dtype=dtype)
    assert kv["kv.full"] == 4096 * 32 * bytes_per_layer_token


def test_unknown_kv_dtype_for_engine():
    from fitcalc.core.errors import InputError

    with pytest.raises(InputError) as e:
        kv_terms(llama_3_1_8b(), "vllm", context=4096, kv_dtype="q4_0")
    assert "fp8" in e.value.hint


def test_kv_grows_with_context_and_batch():
    m = load_model("gpt-oss-20b")
    for engine in ("torch", "vllm", "llama.cpp", "sglang", "transformers"):
        prev = -1
        for c in (1, 100, 128, 129, 640, 641, 4096, 4097, 32768):
            total = sum(kv_terms(m, engine, context=c).values())
            assert total >= prev, (engine, c)
            prev = total
        assert sum(kv_terms(m, engine, 4096, batch=3).values()) >= sum(kv_terms(m, engine, 4096, batch=2).values())


def test_three_gib_is_three_gib():
    assert 3072 * MiB == 3 * GiB
