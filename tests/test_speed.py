"""Speed rooflines: hand-checkable pieces, and predictions against published measurements.

Published decode figures are llama.cpp token generation at batch 1 near an empty context
(llama-bench tg128 or a short chat). The engine profile's constants: bandwidth efficiency 0.8
(aiconfigurator, an independent source), and a per-layer time of 41.4 µs calibrated on ONE
measurement (RTX 3080, dmatora/LLM-inference-speed-benchmarks#12). Every other row is held out.
Tolerance: ±10 % on tokens/s.
"""

from fractions import Fraction

import pytest

from fitcalc.edges.catalog import load_engine, load_model
from fitcalc.core.estimate.placement import Layout
from fitcalc.core.estimate.speed import expert_union_share, pcie_bytes_per_s
from fitcalc.core.plan import Hardware, make_plan
from fitcalc.core.spec import Device
from fitcalc.core.units import GiB, MiB
from tests import devices as dev

GB_S = 10**9


def _gpu(label: str, bw_gb_s: float, mem_bytes: int, tflops: dict | None = None) -> Device:
    return Device(label=label, memory_bytes=mem_bytes, vendor="nvidia", family="test",
                  bandwidth_bytes_per_s=int(bw_gb_s * GB_S), dense_tflops=tflops or {"bf16": 100.0})


# DGX Spark (GB10): 273 GB/s LPDDR5x, 128 GB unified (NVIDIA DGX Spark product page).
SPARK = _gpu("DGX Spark", 273, 128 * 10**9)
# GeForce RTX 3080 10GB: 760 GB/s, INT8 tensor 238 TOPS dense (NVIDIA Ampere GA102 whitepaper, appendix).
RTX_3080 = _gpu("RTX 3080", 760, 10240 * MiB, {"int8": 238.0, "fp16": 59.5})
# GeForce RTX 2080 8GB: 448 GB/s (NVIDIA Turing TU104 specifications).
RTX_2080 = _gpu("RTX 2080", 448, 8192 * MiB)
# GeForce RTX 5090: 1792 GB/s, 32607 MiB (facts sec. 1.1: NVIDIA spec; nvidia-smi club-3090#1261).
RTX_5090 = _gpu("RTX 5090", 1792, 32607 * MiB)

PUBLISHED = [
    # (model, recipe, device, measured tok/s, source)
    pytest.param("gpt-oss-20b", "mxfp4_moe", SPARK, 82.74,
                 "https://developer.nvidia.com/blog/how-nvidia-dgx-sparks-performance-enables-intensive-ai-tasks/ "
                 "(llama.cpp, MXFP4, BS 1, ISL 2048 / OSL 128)", id="spark-gpt-oss-20b"),
    pytest.param("gpt-oss-120b", "mxfp4_moe", SPARK, 55.37,
                 "the same NVIDIA DGX Spark post: GPT-OSS-120B MXFP4 llama.cpp 55.37 tok/s", id="spark-gpt-oss-120b"),
    pytest.param("llama-3.1-8b", "q4_k_m", RTX_3080, 111.95,
                 "https://github.com/dmatora/LLM-inference-speed-benchmarks/issues/12 (build 3622; the calibration "
                 "point of layer_latency_us)", id="rtx3080-llama8b-calibration"),
    pytest.param("llama-3.1-8b", "q4_k_m", RTX_2080, 71.9,
                 "https://github.com/AlexsJones/llmfit/pull/773 (llama.cpp, Meta-Llama-3.1-8B-Instruct Q4_K_M, "
                 "ctx 4096, one slot, -ngl 99)", id="rtx2080-llama8b"),
    pytest.param("qwen3-8b", "q4_k_m", RTX_5090, 221.7,
                 "https://github.com/CambrianTech/continuum/pull/1627 (llama.cpp CUDA, Qwen3-8B Q4_K_M fully in VRAM)",
                 id="rtx5090-qwen3-8b"),
]


def test_decode_matches_published_vllm_measurement():
    # vLLM 0.23.0, one A100 40GB (40960 MiB, 1555 GB/s: NVIDIA A100 datasheet), Llama-3.1-8B-Instruct BF16,
    # `vllm bench serve --random-input-len 1024 --random-output-len 128 --max-concurrency 1`: "decode at one
    # request per time runs at about 75 tokens/sec" (https://johnmusgrave.com/p/vllm-throughput-latency-sweep-on).
    # vLLM's per-layer time is llama.cpp's calibration carried over, so this row is held out. Tolerance ±10 %.
    a100 = _gpu("A100 40GB", 1555, 40960 * MiB, {"bf16": 312.0})
    plan = make_plan(load_model("llama-3.1-8b"), load_engine("vllm"), Hardware((a100,), None), context=4096,
                     prompt_tokens=1024 + 64)
    assert abs(plan.decode_tokens_per_s - 75) / 75 <= 0.10, plan.decode_tokens_per_s


@pytest.mark.parametrize("model,recipe,device,measured,source", PUBLISHED)
def test_decode_matches_published_llama_cpp_measurements(model, recipe, device, measured, source):
    plan = make_plan(load_model(model), load_engine("llama.cpp"), Hardware((device,), dev.host(128)),
                     context=4096, recipe=recipe, prompt_tokens=64)  # tg128: depth 0..128, mean 64
    assert plan.fits
    got = plan.decode_tokens_per_s
    assert abs(got - measured) / measured <= 0.10, (got, measured, source)


def test_prefill_matches_the_calibration_point():
    # RTX 3080, Llama-3.1-8B Q4_K_M, pp 3806.89 t/s (dmatora#12): compute efficiency 0.24 of INT8 238 TOPS
    # was read off this one point, so this checks the arithmetic, not a prediction (±5 %).
    plan = make_plan(load_model("llama-3.1-8b"), load_engine("llama.cpp"), Hardware((RTX_3080,), dev.host(64)),
                     context=4096, recipe="q4_k_m", prompt_tokens=512)
    assert abs(512 / plan.prefill_s - 3806.89) / 3806.89 <= 0.05


def test_decode_bytes_per_step_by_hand():
    # gpt-oss-20b MXFP4_MOE GGUF, one token, depth 0, every weight on one GPU (no layer-latency, bandwidth
    # 1e12 B/s, efficiency 0.8). Bytes read: attention (Q8_0 matrices + f32 biases and sinks), routers and
    # norms (f32), lm_head Q8_0, and 4 of 32 experts per layer; the input embedding is a row lookup.
    attn = 24 * (26_542_080 * 34 // 32 + 8000 * 4 + 64 * 4)
    router = 24 * (32 * 2880 + 32) * 4
    norms = (24 * 2 + 1) * 2880 * 4
    head = 201088 * 2880 * 34 // 32
    experts = 24 * 32 * (24_883_200 * 17 // 32 + (5760 + 2880) * 4)
    read = attn + router + norms + head + experts // 8
    e = load_engine("llama.cpp")
    e = e.model_copy(update={"speed": e.speed.model_copy(update={"layer_latency_us": 0.0})})
    gpu = _gpu("test", 1000, 80 * GiB)
    plan = make_plan(load_model("gpt-oss-20b"), e, Hardware((gpu,), dev.host(64)), context=256, recipe="mxfp4_moe",
                     prompt_tokens=1)
    part = plan.speed.parts[0]
    kv_at_depth_1 = 12 * 2048 + 12 * 2048  # full and sliding layers each read the one token (f16 K+V)
    assert part.bytes_per_step == read + kv_at_depth_1
    assert plan.speed.decode_step_s == pytest.approx(part.bytes_per_step / (1e12 * 0.8))


def test_expert_union_share():
    # One token reads k/E; a batch of B tokens reads 1 - (1 - k/E)^B of the experts on average.
    assert expert_union_share(4, 32, 1) == Fraction(4, 32)
    assert expert_union_share(4, 32, 2) == 1 - Fraction(28, 32) ** 2
    assert expert_union_share(8, 8, 3) == 1


def test_pcie_x16_bandwidth():
    # PCIe 4.0 x16: 16 GT/s x 16 lanes x 128/130 / 8 = 31.5 GB/s per direction.
    assert pcie_bytes_per_s(4) == 16 * 10**9 * 16 * 128 // 130 // 8
    assert round(pcie_bytes_per_s(5) / 1e9, 1) == 63.0


def test_experts_in_ram_are_read_at_ram_speed():
    # gpt-oss-120b with every expert in RAM: the host part of a step is the active experts' bytes over
    # RAM bandwidth x 0.7 (ik_llama.cpp#534 yields on single-NUMA machines).
    m = load_model("gpt-oss-120b")
    plan = make_plan(m, load_engine("llama.cpp"), Hardware((dev.rtx_4090(),), dev.host(96, bandwidth_gb_s=100)),
                     context=4096, recipe="mxfp4_moe", fixed=Layout(cpu_moe=36), prompt_tokens=64)
    host = next(p for p in plan.speed.parts if p.where == "host RAM")
    experts = 36 * 128 * (24_883_200 * 17 // 32 + (5760 + 2880) * 4)
    assert host.bytes_per_step == experts * 4 // 128
    assert host.time_s == pytest.approx(host.bytes_per_step / (100e9 * 0.7))


def test_pipeline_stages_add_and_tensor_ranks_overlap():
    e = load_engine("vllm")
    m = load_model("llama-3.1-8b")
    fixed = 32 * e.speed.layer_latency_us * 1e-6  # the per-layer time does not split
    one = make_plan(m, e, Hardware((dev.h100_sxm(),), None), context=4096, prompt_tokens=64)
    tp2 = make_plan(m, e, Hardware((dev.h100_sxm(),) * 2, None), context=4096, prompt_tokens=64, fixed=Layout(tp=2))
    pp2 = make_plan(m, e, Hardware((dev.h100_sxm(),) * 2, None), context=4096, prompt_tokens=64, fixed=Layout(pp=2))
    gpu_one = one.speed.decode_step_s - fixed
    # TP: each rank reads half the weights, side by side; PP: each stage reads half, one after the other.
    assert tp2.speed.decode_step_s - fixed == pytest.approx(gpu_one / 2, rel=0.03)
    assert pp2.speed.decode_step_s - fixed == pytest.approx(gpu_one, rel=0.03)
    assert [p.time_s for p in tp2.speed.parts][0] == pytest.approx(tp2.speed.decode_step_s - fixed)
