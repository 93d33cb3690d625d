"""The seed scenarios of `fitcalc plan`, as documented in docs/examples/plan.md.

Devices are written out from published numbers (tests/devices.py); switch them to catalog ids
(rtx-4090, rtx-4060-ti-16gb, h100-sxm, gh200-96gb, h200) once gpu_profiles/ lands.
"""

import pytest

from fitcalc.edges.catalog import load_engine, load_model
from fitcalc.core.estimate.placement import Layout
from fitcalc.core.plan import Hardware, NoFitError, make_plan
from fitcalc.core.units import GiB
from tests import devices as dev

# gpt-oss-120b in llama.cpp's MXFP4_MOE GGUF, worked by hand from config.json (36 layers, hidden 2880,
# 64 x 64 query heads, 8 KV heads, 128 experts of width 2880, vocab 201,088):
Q8_0 = (34, 32)  # 34 bytes per 32 weights
ATTN_W = 4096 * 2880 + 2 * 512 * 2880 + 2880 * 4096  # q, k, v, o weights per layer = 26,542,080
ATTN_LAYER = ATTN_W * 34 // 32 + (4096 + 512 + 512 + 2880) * 4 + 64 * 4  # Q8_0 matrices + f32 biases + sinks
ROUTER_LAYER = (128 * 2880 + 128) * 4  # f32 router weight and bias
NORMS = (36 * 2 + 1) * 2880 * 4  # two f32 norms per layer and the final norm
HEAD = 201088 * 2880 * 34 // 32  # output matrix, Q8_0
EMBED = 201088 * 2880 * 34 // 32  # token_embd, Q8_0: kept in RAM by llama.cpp
EXPERTS_LAYER = 128 * ((5760 * 2880 + 2880 * 2880) * 17 // 32 + (5760 + 2880) * 4)  # MXFP4 + f32 biases


def test_gpt_oss_120b_one_24gb_gpu_64gb_ram_experts_on_cpu():
    # `fitcalc plan gpt-oss-120b --gpu rtx-4090 --ram 64GiB --engine llama.cpp --context 32k`
    m = load_model("gpt-oss-120b")
    plan = make_plan(m, load_engine("llama.cpp"), Hardware((dev.rtx_4090(),), dev.host(64)), context=32768)
    assert plan.fits and plan.recipe == "mxfp4_moe"
    lay = plan.layout
    assert lay.gpu_layers is None and 0 < lay.cpu_moe < 36  # attention of every layer on the GPU, some experts in RAM
    gpu, ram = plan.placement[0], plan.host
    assert gpu.required_bytes <= gpu.available_bytes and ram.required_bytes <= 64 * GiB
    # The GPU holds every non-expert weight and the experts of the layers not in RAM; RAM the rest + token_embd.
    on_gpu = 36 * (ATTN_LAYER + ROUTER_LAYER) + NORMS + HEAD + (36 - lay.cpu_moe) * EXPERTS_LAYER
    assert sum(t.bytes for t in gpu.terms if t.id.startswith("weights.")) == on_gpu
    assert ram.weights_bytes == lay.cpu_moe * EXPERTS_LAYER + EMBED
    assert "--n-cpu-moe" in plan.engine_flags.args and str(lay.cpu_moe) in plan.engine_flags.args
    assert plan.engine_flags.args[plan.engine_flags.args.index("-c") + 1] == "32768"
    assert plan.decode_tokens_per_s is not None and plan.decode_tokens_per_s > 0


def test_gpt_oss_120b_all_experts_on_cpu_fits_64gb_ram():
    # `... --cpu-moe all`: every expert tensor in RAM (llama.cpp --cpu-moe). By hand: 36 x 1,696,481,280 B of
    # experts + 615 MB of token_embd = 61.7 GB = 57.5 GiB of weights, under 64 GiB with the host buffers.
    m = load_model("gpt-oss-120b")
    plan = make_plan(m, load_engine("llama.cpp"), Hardware((dev.rtx_4090(),), dev.host(64)), context=32768,
                     fixed=Layout(cpu_moe=36))
    assert plan.fits
    assert plan.host.weights_bytes == 36 * EXPERTS_LAYER + EMBED
    gpu_w = sum(t.bytes for t in plan.placement[0].terms if t.id.startswith("weights."))
    assert gpu_w == 36 * (ATTN_LAYER + ROUTER_LAYER) + NORMS + HEAD  # 1.69 GB: attention, routers, norms, head
    # More in RAM buys context: with every expert out, the 24 GB card holds the whole 131,072-token window.
    assert plan.max_context == 131072
    # ... and costs speed: decode is slower than with the smallest expert share.
    best = make_plan(m, load_engine("llama.cpp"), Hardware((dev.rtx_4090(),), dev.host(64)), context=32768)
    assert plan.decode_tokens_per_s < best.decode_tokens_per_s


def test_gpt_oss_120b_does_not_fit_32gb_ram_with_experts_on_cpu():
    m = load_model("gpt-oss-120b")
    with pytest.raises(NoFitError) as ex:
        make_plan(m, load_engine("llama.cpp"), Hardware((dev.rtx_4090(),), dev.host(32)), context=32768,
                  max_gpus=2)
    # 64 GB of experts must leave a 24 GB card, and 32 GiB of RAM cannot take them; 2 cards are not enough either.
    assert "no configuration" in ex.value.one_line() and "2 × RTX 4090" in ex.value.one_line()


def test_gpt_oss_20b_16gb_card_largest_context():
    # `fitcalc plan gpt-oss-20b --gpu rtx-4060-ti-16gb --engine llama.cpp`: no --context, so the plan reports
    # the largest context. The whole 131,072-token window fits: KV is 12 full layers x 2048 B x 131,072 =
    # 3 GiB (f16) beside 11.6 GiB of weights.
    m = load_model("gpt-oss-20b")
    plan = make_plan(m, load_engine("llama.cpp"), Hardware((dev.rtx_4060_ti_16gb(),), dev.host(32)))
    assert plan.fits and plan.recipe == "mxfp4_moe" and plan.layout.cpu_moe == 0
    assert plan.max_context == plan.context == 131072
    kv = sum(t.bytes for t in plan.placement[0].terms if t.id == "kv.full")
    assert kv == 131072 * 12 * 2 * 8 * 64 * 2
    assert plan.engine_flags.command.endswith("-c 131072 --parallel 1 -ngl 25")


def test_gpt_oss_20b_16gb_card_vllm_needs_two():
    # vLLM on the same card: the MXFP4 experts are repacked on GPUs without native FP4 (13.47 GiB resident,
    # llm-d), 0.9 of 16 GiB leaves too little: 2 GPUs (tensor parallel) are needed. No recipe re-quantizes the
    # MXFP4 experts, so there is no smaller checkpoint to fall back to.
    m = load_model("gpt-oss-20b")
    plan = make_plan(m, load_engine("vllm"), Hardware((dev.rtx_4060_ti_16gb(),), dev.host(32)))
    assert not plan.fits and plan.gpus_needed == 2 and plan.engine_flags is None
    assert [t.recipe for t in plan.recipes_tried] == ["native", "native"]  # bf16 and fp8 KV


# DeepSeek-R1 (vLLM, FP8 checkpoint): the routed experts alone are 58 MoE layers x 256 experts x 3 matrices
# of 2048 x 7168 FP8 weights plus one fp32 scale per 128x128 tile (16 x 56 tiles per matrix):
R1_EXPERTS = 58 * 256 * 3 * (2048 * 7168 + 16 * 56 * 4)  # 654,068,416,512 B


def test_deepseek_r1_8x80gb_does_not_hold_fp8_so_int4():
    # 8 x H100 (81,559 MiB, 479 MiB reserved): vLLM budgets 0.9 x (total - reserve) = 71.3 GiB per GPU, and
    # the experts alone need 654.1 GB / 8 = 76.1 GiB per GPU: FP8 cannot fit on eight, whatever the context.
    budget = 0.9 * (81559 - 479) * 2**20
    assert R1_EXPERTS / 8 > budget
    plan = make_plan(load_model("deepseek-r1"), load_engine("vllm"), Hardware((dev.h100_sxm(),) * 8), max_gpus=16)
    assert plan.gpus_needed_recipe == "native" and plan.gpus_needed > 8
    assert plan.fits and plan.recipe.startswith("int4") and plan.layout.tp == 8
    assert plan.max_context == 163840  # the 4-bit model leaves room for the whole window
    assert "--tensor-parallel-size 8" in plan.engine_flags.command


def test_deepseek_r1_8x96gb_holds_fp8_with_a_shorter_context():
    # 8 x 96 GB (97,871 MiB): 0.9 x (95.6 GiB - the fitted 0.55 GiB driver reserve) = 85.5 GiB per GPU holds
    # the ~80 GiB FP8 share, with about a GiB left for MLA KV (70,272 B per token, replicated on every rank):
    # the profile run also holds vLLM's sampler warm-up, 1024 rows (max_num_seqs on a >= 70 GiB GPU) x
    # 129,280 x 4 B x 9.5 = 4.7 GiB, and the CUDA graphs overflow the 10 % left outside the budget.
    plan = make_plan(load_model("deepseek-r1"), load_engine("vllm"), Hardware((dev.gh200_96gb(),) * 8), max_gpus=16)
    assert plan.fits and plan.recipe == "native" and plan.layout.tp == 8 and plan.gpus_needed == 8
    assert 8192 <= plan.max_context < 163840
    per_token = 61 * (512 + 64) * 2
    kv = sum(t.bytes for t in plan.placement[0].terms if t.id == "kv.mla")
    assert kv == -(-plan.context // 16) * 16 * per_token  # 16-token blocks, the whole latent on each rank


def test_deepseek_r1_8x141gb_holds_fp8_and_the_whole_window():
    plan = make_plan(load_model("deepseek-r1"), load_engine("vllm"), Hardware((dev.h200(),) * 8), max_gpus=16)
    assert plan.fits and plan.recipe == "native" and plan.max_context == 163840 and plan.max_batch >= 2
    assert plan.gpus_needed < 8  # fewer H200s would do (pipeline stages)
    small = make_plan(load_model("deepseek-r1"), load_engine("vllm"), Hardware((dev.gh200_96gb(),) * 8),
                      max_gpus=16, context=plan.max_context)
    assert not small.fits or small.recipe != "native"  # the 96 GB cards cannot hold FP8 at the full window
