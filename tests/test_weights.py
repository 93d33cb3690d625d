"""Weights from the architecture, checked to the byte against hand arithmetic and the real index."""

from fitcalc.edges.catalog import load_model
from fitcalc.core.estimate.weights import tensor_inventory, weights_breakdown
from fitcalc.core.recipes import resolve_recipe

# gpt-oss-20b by hand (config.json: H=2880, L=24, 64 q heads, 8 kv heads, head_dim 64, 32 experts
# of width 2880, vocab 201088, biases on q/k/v/o and on experts, sinks [64] per layer):
H, L, V, E, I = 2880, 24, 201088, 32, 2880
ATTN = (4096 * H + 4096) + 2 * (512 * H + 512) + (H * 4096 + H) + 64  # q,k,v,o with biases + sinks
ROUTER = E * H + E
EXPERT_MATRICES = E * (2 * I * H + H * I)
EXPERT_BIASES = E * (2 * I + H)
NORMS = 2 * H
PER_LAYER = ATTN + ROUTER + EXPERT_MATRICES + EXPERT_BIASES + NORMS
TOTAL_20B = L * PER_LAYER + 2 * V * H + H  # + embedding + lm_head + final norm


def test_gpt_oss_20b_params_by_hand():
    m = load_model("gpt-oss-20b")
    w = weights_breakdown(m, m.native_recipe)
    assert TOTAL_20B == 20_914_757_184  # the figure issue #5 quotes from the real headers
    assert w.params_total == TOTAL_20B


def test_gpt_oss_20b_disk_bytes_equal_the_index_total_size():
    # MXFP4 expert matrices: per 32 weights 16 bytes of blocks + 1 byte of scale = 17 bytes.
    mxfp4 = L * EXPERT_MATRICES // 32 * 17
    bf16 = 2 * (L * (PER_LAYER - EXPERT_MATRICES) + 2 * V * H + H)
    # huggingface.co/openai/gpt-oss-20b model.safetensors.index.json: "total_size": 13761264768
    assert mxfp4 + bf16 == 13_761_264_768
    m = load_model("gpt-oss-20b")
    assert weights_breakdown(m, m.native_recipe).disk_bytes == 13_761_264_768


def test_gpt_oss_20b_active_params_as_the_model_card_counts():
    # Model card Table 1: 3.61B active = total - embedding - (1 - 4/32) of expert params
    m = load_model("gpt-oss-20b")
    w = weights_breakdown(m, m.native_recipe)
    expected = TOTAL_20B - V * H - L * (EXPERT_MATRICES + EXPERT_BIASES) * 28 // 32
    assert w.params_active == expected
    assert round(expected / 1e9, 2) == 3.61


def test_groups_partition_the_total():
    m = load_model("gpt-oss-20b")
    w = weights_breakdown(m, m.native_recipe)
    assert sum(g.params for g in w.groups) == w.params_total
    assert sum(g.bytes for g in w.groups) == w.disk_bytes
    assert w.group("experts").params == L * (EXPERT_MATRICES + EXPERT_BIASES)


def test_inventory_keeps_shapes_as_stored():
    m = load_model("gpt-oss-20b")
    by_name = {e.name: e for e in tensor_inventory(m.architecture)}
    gu = by_name["model.layers.{i}.mlp.experts.gate_up_proj.weight"]
    assert gu.shape == (2 * I, H) and gu.copies == E and len(gu.layers) == L
    assert by_name["model.layers.{i}.self_attn.sinks"].shape == (64,)


def test_bf16_recipe_prices_every_weight_at_two_bytes():
    m = load_model("gpt-oss-20b")
    w = weights_breakdown(m, resolve_recipe(m, "bf16"))
    assert w.disk_bytes == 2 * TOTAL_20B


def test_q4_k_m_falls_back_for_rows_of_2880():
    # 2880 is not a multiple of 256, so llama.cpp stores would-be Q4_K tensors with rows of 2880
    # as Q5_0 and would-be Q6_K ones as Q8_0 (src/llama-quant.cpp fallback). Only o_proj, whose
    # rows are 64 heads x 64 = 4096 long, can stay Q4_K.
    m = load_model("gpt-oss-20b")
    w = weights_breakdown(m, resolve_recipe(m, "q4_k_m"))
    assert set(w.group("experts").formats) <= {"q5_0", "q8_0", "f32"}
    assert w.group("lm_head").formats == {"q8_0": 201088 * 2880 // 32 * 34}
    o_proj = 24 * 2880 * 4096 // 256 * 144  # 24 layers of o_proj in Q4_K (144 B per 256 weights)
    assert w.group("attention").formats["q4_k"] == o_proj
    assert w.group("norms").formats == {"f32": (24 * 2 * 2880 + 2880) * 4}  # GGUF keeps 1-D tensors F32
