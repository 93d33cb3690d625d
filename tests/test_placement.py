"""Placement: per-layer bytes, shares, engine layer rules, and per-device footprints against logs."""

import pytest

from fitcalc.edges.catalog import load_engine, load_model, model_ids
from fitcalc.core.errors import InputError
from fitcalc.core.estimate import estimate, prepare, required_bytes
from fitcalc.core.estimate.footprint import host_estimate
from fitcalc.core.estimate.placement import Layout, Share, assign, pipeline_stages, proportional_slots, whole_share
from fitcalc.core.estimate.weights import layer_table, weights_breakdown
from fitcalc.core.recipes import resolve_recipe
from fitcalc.core.spec import Device, Workload
from fitcalc.core.units import GiB, MiB
from tests.archs import deepseek_v3, llama_3_1_8b


@pytest.mark.parametrize("model_id", model_ids())
@pytest.mark.parametrize("recipe", [None, "q4_k_m", "fp8"])
def test_layer_table_sums_to_the_breakdown_exactly(model_id, recipe):
    # Cutting the pricing by layer must not move a byte: Σ layers + outside == group bytes, per format.
    m = load_model(model_id)
    r = resolve_recipe(m, recipe)
    t = layer_table(m, r)
    for g in weights_breakdown(m, r).groups:
        assert t.group_bytes(g.name, None, True) == g.formats, (model_id, recipe, g.name)


def test_layer_table_per_layer_by_hand():
    # Llama-3.1-8B BF16, one layer: q 4096x4096 + k,v 1024x4096 each + o 4096x4096 = 41,943,040 weights;
    # MLP 3 x 14336 x 4096 = 176,160,768 weights; x 2 bytes.
    m = llama_3_1_8b()
    t = layer_table(m, m.native_recipe)
    assert t.per_layer["attention"][7] == {"bf16": 41_943_040 * 2}
    assert t.per_layer["mlp"][0] == {"bf16": 176_160_768 * 2}
    assert t.outside["embedding"] == {"bf16": 128256 * 4096 * 2}
    assert t.outside["norms"] == {"bf16": 4096 * 2}  # the final norm; per-layer norms are inside


@pytest.mark.parametrize("n,pp,expected", [
    (61, 4, (15, 15, 16, 15)),  # vLLM docs example for a 61-layer model
    (61, 2, (31, 30)),
    (22, 4, (5, 6, 6, 5)),
    (3, 2, (2, 1)),
    (32, 4, (8, 8, 8, 8)),
])
def test_pipeline_stages_follow_vllm(n, pp, expected):
    # vllm/distributed/utils.py get_pp_indices: n // pp each; remainder added from the second-to-last stage back.
    assert pipeline_stages(n, pp) == expected


@pytest.mark.parametrize("slots,weights,expected", [
    (25, [1, 1], (13, 12)),  # slot j to device 0 while 1/2 > j/25: j = 0..12
    (37, [3, 1], (28, 9)),  # 3/4 > j/37 for j <= 27
    (10, [5, 3, 2], (5, 3, 2)),  # proportions that are layer counts land exactly
    (62, [8, 8, 8, 7, 8, 8, 8, 7], (8, 8, 8, 7, 8, 8, 8, 7)),
])
def test_llama_cpp_layer_split(slots, weights, expected):
    assert proportional_slots(slots, weights) == expected


def test_whole_share_one_gpu_equals_fit_path():
    # A plan on one GPU with every layer there takes fit's path: the same bytes.
    for engine in ("vllm", "llama.cpp", "sglang", "ollama"):
        e = load_engine(engine)
        p = prepare(load_model("gpt-oss-20b"), None, e)
        d = Device.from_budget(24 * GiB)
        asg = assign(p.arch, e, Layout(), [d.memory_bytes])
        w = Workload(context=8192)
        assert required_bytes(p, d, w, share=asg.gpus[0]) == required_bytes(p, d, w)


def test_llama_cpp_keeps_the_input_embedding_in_ram_ollama_log():
    # Ollama log (MagicWand18/Securetag-AI-Agent runpod-deploy/logcompleto.md), Llama-3.1-8B-Instruct Q4_K_M,
    # --n-gpu-layers 33 (all): "CUDA0 model buffer 4403.49 MiB", "CPU model buffer 281.81 MiB".
    # The CPU part is token_embd Q4_K: 128256 x 4096 x 144/256 B = 295,501,824 B = 281.81 MiB.
    e = load_engine("ollama")
    p = prepare(llama_3_1_8b(), "q4_k_m", e)
    gpu = estimate(p, Device.from_budget(24 * GiB), Workload(context=2048, batch=4)).by_prefix("weights")
    asg = assign(p.arch, e, Layout(), [24 * GiB])
    host = host_estimate(p, asg.host, Workload(context=2048, batch=4)).by_prefix("weights")
    assert host == 128256 * 4096 * 144 // 256
    assert abs(host / MiB - 281.81) < 0.01
    assert abs(gpu / MiB - 4403.49) < 0.05  # the recipe's per-layer Q4_K/Q6_K choice reproduces the log


def test_gpt_oss_20b_experts_on_cpu_ik_llama_log():
    # ik_llama.cpp#822 (llama-server build 6699, gpt-oss-20b-mxfp4.gguf, -ngl 99 --n-cpu-moe 99):
    # "CUDA0 model buffer 1242.03 MiB": attention (Q8_0 + f32 biases, sinks), routers, norms and the output
    # matrix; the experts and token_embd stay in RAM.
    e = load_engine("llama.cpp")
    p = prepare(load_model("gpt-oss-20b"), "mxfp4_moe", e)
    asg = assign(p.arch, e, Layout(cpu_moe=24), [8 * GiB])
    gpu = estimate(p, Device.from_budget(8 * GiB), Workload(context=131072), share=asg.gpus[0])
    assert abs(gpu.by_prefix("weights") / MiB - 1242.03) < 0.05
    assert gpu.term("weights.experts") is None and gpu.term("weights.embedding") is None
    # Host compute buffer: 263.15 MiB logged ("CUDA_Host compute buffer"); the heuristic's band covers it.
    host = host_estimate(p, asg.host, Workload(context=131072))
    t = host.term("act.host_compute")
    assert abs(t.bytes / MiB - 263.15) / 263.15 <= t.band
    assert host.term("act.host_output").bytes == 201088 * 4  # "CUDA_Host output buffer 0.77 MiB"
    assert all(term.placement == "cpu" for term in host.terms)


def test_tensor_parallel_shares_split_weights_and_replicate_mla():
    """DeepSeek-V3 (FP8 with fp32 scales per 128x128 tile, bf16 vectors) on one of 8 TP ranks,
    as vLLM's layers hold it: q_a and kv_a projections (ReplicatedLinear) and their norms whole,
    q_b and kv_b rows / 8 (column parallel), o_proj columns / 8 (row parallel)."""
    e = load_engine("vllm")
    p = prepare(deepseek_v3(), None, e)
    big = Device.from_budget(1 << 40)
    one = estimate(p, big, Workload(context=4096))
    asg = assign(p.arch, e, Layout(tp=8), [1 << 40] * 8)
    rank = estimate(p, big, Workload(context=4096), share=asg.gpus[0])

    def fp8(rows, cols):  # 1 B per weight + 4 B per 128x128 tile
        return rows * cols + -(-rows // 128) * -(-cols // 128) * 4

    per_layer = (fp8(1536, 7168) + 1536 * 2  # q_a_proj [1536, 7168] + q_a_layernorm, whole
                 + fp8(128 * 192 // 8, 1536)  # q_b_proj: 128 heads x (128 + 64) rows / 8
                 + fp8(512 + 64, 7168) + 512 * 2  # kv_a_proj_with_mqa [576, 7168] + kv_a_layernorm, whole
                 + fp8(128 * 256 // 8, 512)  # kv_b_proj: 128 heads x (128 + 128) rows / 8
                 + fp8(7168, 128 * 128 // 8))  # o_proj: 16384 columns / 8
    assert rank.term("weights.attention").bytes == 61 * per_layer
    # experts: 58 MoE layers x 256 experts x (gate, up [2048/8, 7168] + down [7168, 2048/8])
    assert rank.term("weights.experts").bytes == 58 * 256 * (2 * fp8(256, 7168) + fp8(7168, 256))
    # dense MLP: 3 layers x (gate, up [18432/8, 7168] + down [7168, 18432/8])
    assert rank.term("weights.mlp").bytes == 3 * (2 * fp8(2304, 7168) + fp8(7168, 2304))
    # norms (input and post-attention per layer + the final norm) are whole on every rank
    assert rank.term("weights.norms").bytes == one.term("weights.norms").bytes == (61 * 2 + 1) * 7168 * 2
    # router [256, 7168] bf16 + fp32 correction bias [256], whole
    assert rank.term("weights.router").bytes == one.term("weights.router").bytes == 58 * (256 * 7168 * 2 + 256 * 4)
    # embedding: 129280 rows (a multiple of 64) / 8
    assert rank.term("weights.embedding").bytes == 129280 // 8 * 7168 * 2
    assert rank.term("kv.mla").bytes == one.term("kv.mla").bytes  # one latent head: every rank holds it


def test_pipeline_stage_holds_its_layers_embedding_first_head_last():
    e = load_engine("vllm")
    m = llama_3_1_8b()
    p = prepare(m, None, e)
    t = layer_table(m, m.native_recipe)
    asg = assign(p.arch, e, Layout(pp=4), [80 * GiB] * 4)
    w = Workload(context=8192)
    first = estimate(p, Device.from_budget(80 * GiB), w, share=asg.gpus[0])
    last = estimate(p, Device.from_budget(80 * GiB), w, share=asg.gpus[3])
    assert first.term("weights.embedding").bytes == t.outside["embedding"]["bf16"]
    assert first.term("weights.lm_head") is None and first.term("act.logits") is None
    assert last.term("weights.lm_head") is not None and last.term("act.logits") is not None
    assert last.term("weights.embedding") is None
    # 8 layers per stage: KV is a quarter of the whole model's
    whole = estimate(p, Device.from_budget(80 * GiB), w)
    assert first.term("kv.full").bytes * 4 == whole.term("kv.full").bytes
    assert first.term("weights.attention").bytes * 4 == whole.term("weights.attention").bytes


def _native_fp4() -> Device:
    return Device(label="1 TiB, native MXFP4", memory_bytes=1 << 40, native_formats=["mxfp4"], is_budget=True)


def test_expert_parallel_divides_experts_only():
    """gpt-oss-120b with TP 2, EP 4 (DP 2): each rank holds 128 / 4 whole experts and half of each
    attention matrix; o_proj's bias and the router stay whole."""
    e = load_engine("vllm")
    p = prepare(load_model("gpt-oss-120b"), None, e)
    d = _native_fp4()  # no MXFP4 repack: the bytes as stored
    w = Workload(context=4096)
    whole = estimate(p, d, w)
    tp = assign(p.arch, e, Layout(tp=2, ep=4), [1 << 40] * 4)  # dp 2: attention split 2 ways, experts 4 ways
    rank = estimate(p, d, w, share=tp.gpus[0])
    # experts are whole (weights, scales and biases): exactly a quarter
    assert rank.term("weights.experts").bytes * 4 == whole.term("weights.experts").bytes
    # attention per layer, bf16: q [4096/2, 2880] + bias, k and v [512/2, 2880] + bias,
    # o_proj [2880, 4096/2] + its whole bias [2880], sinks 64/2
    per_layer = (2048 * 2880 + 2048 + 2 * (256 * 2880 + 256) + 2880 * 2048 + 2880 + 32) * 2
    assert rank.term("weights.attention").bytes == 36 * per_layer
    assert rank.term("weights.router").bytes == whole.term("weights.router").bytes == 36 * (128 * 2880 + 128) * 2


def test_mxfp4_expert_width_splits_in_whole_blocks():
    """gpt-oss-120b at TP 4 without EP: the 2880-wide expert MLP is 90 MXFP4 blocks of 32; vLLM
    gives each rank cdiv(90, 4) = 23 blocks = 736 columns (models/gpt_oss.py
    per_rank_intermediate_size), so gate_up holds 2 x 736 rows."""
    e = load_engine("vllm")
    p = prepare(load_model("gpt-oss-120b"), None, e)
    d = _native_fp4()
    rank = estimate(p, d, Workload(context=4096), share=assign(p.arch, e, Layout(tp=4), [1 << 40] * 4).gpus[0])
    mxfp4 = lambda rows, cols: rows * cols // 2 + rows * (cols // 32)  # noqa: E731 - 4 bits + 1 scale per 32
    per_expert = (mxfp4(2 * 736, 2880) + 2 * 736 * 2  # gate_up [1472, 2880] + its bias rows
                  + mxfp4(2880, 736) + 2880 * 2)  # down [2880, 736] + its whole bias
    assert rank.term("weights.experts").bytes == 36 * 128 * per_expert


@pytest.mark.parametrize("engine,layout,n,needle", [
    ("vllm", Layout(tp=3), 3, "does not divide the 64 attention heads"),
    ("vllm", Layout(tp=16), 16, None),  # 16 % 8 KV heads == 0: KV heads replicated, allowed
    ("llama.cpp", Layout(tp=2), 2, "no tensor parallelism"),
    ("vllm", Layout(cpu_moe=4), 1, "keeps every layer on the GPU"),
    ("vllm", Layout(tp=2, ep=3), 3, "multiple of --tp"),
    ("vllm", Layout(tp=2, pp=2), 2, "needs 4 GPUs"),
    ("ollama", Layout(cpu_moe=4), 1, "cannot keep expert tensors"),
])
def test_layout_rules(engine, layout, n, needle):
    e = load_engine(engine)
    a = load_model("gpt-oss-20b").architecture
    if needle is None:
        assign(a, e, layout, [80 * GiB] * n)
        return
    with pytest.raises(InputError) as ex:
        assign(a, e, layout, [80 * GiB] * n)
    assert needle in ex.value.one_line()


def test_llama_cpp_gpu_layers_keep_the_first_layers_on_cpu():
    # The profile's builds (2025): i_gpu_start = max(n_layer - n_gpu_layers, 0), output offloaded only when
    # n_gpu_layers > n_layer. With -ngl 10 on a 24-layer model, layers 14..23 are on the GPU, layers 0..13
    # and the output on the CPU; -ngl 25 puts everything, output included, on the GPU.
    e = load_engine("llama.cpp")
    a = load_model("gpt-oss-20b").architecture
    asg = assign(a, e, Layout(gpu_layers=10), [24 * GiB])
    assert asg.gpus[0].layers == frozenset(range(14, 24)) and not asg.gpus[0].head
    assert asg.host.layers == frozenset(range(14)) and asg.host.head
    full = assign(a, e, Layout(gpu_layers=25), [24 * GiB])
    assert full.gpus[0].head and not full.host.head and not full.host.layers
    none = assign(a, e, Layout(gpu_layers=0), [24 * GiB])
    assert none.host.head and none.gpus[0].layers == frozenset()


def test_llama_cpp_2026_builds_offload_the_output_first():
    # b9993 and later: i_gpu_start = max(n_layer + 1 - n_gpu_layers, 0): with -ngl 10, layers 15..23 and the
    # output on the GPU, layers 0..14 on the CPU.
    e = load_engine("llama.cpp")
    new = e.model_copy(update={"parallel": e.parallel.model_copy(update={"output_offloaded_first": True})})
    a = load_model("gpt-oss-20b").architecture
    asg = assign(a, new, Layout(gpu_layers=10), [24 * GiB])
    assert asg.gpus[0].layers == frozenset(range(15, 24)) and asg.gpus[0].head
    assert asg.host.layers == frozenset(range(15)) and not asg.host.head


def test_share_defaults_mean_the_whole_model():
    s = Share()
    assert s.all_layers and s.layer_set(5) == range(5)
    assert whole_share(load_engine("llama.cpp")).embedding is False
    assert whole_share(load_engine("vllm")).embedding is True


def test_llama_cpp_tied_embedding_is_duplicated_as_the_output():
    # Gemma 3 ties its embedding: llama.cpp keeps token_embd in RAM and loads the same matrix again as the
    # output layer on the GPU that holds it (TENSOR_DUPLICATED), so both sides count it.
    e = load_engine("llama.cpp")
    m = load_model("gemma-3-27b")
    p = prepare(m, "q4_k_m", e)
    emb = p.weights.group("embedding").bytes
    asg = assign(p.arch, e, Layout(), [48 * GiB])
    gpu = estimate(p, Device.from_budget(48 * GiB), Workload(context=4096), share=asg.gpus[0])
    host = host_estimate(p, asg.host, Workload(context=4096))
    assert gpu.term("weights.embedding").bytes == emb and host.term("weights.embedding").bytes == emb
