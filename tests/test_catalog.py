"""The bundled model catalog, checked model by model against independent arithmetic and the
published record.

Each row of ``CASES`` derives the parameter count and the native on-disk bytes by hand from the
model's config.json numbers (written out below, never taken from fitcalc), then compares:

* fitcalc's numbers with the hand arithmetic, exactly;
* the hand arithmetic with the checkpoint's own record, exactly: the Hub index
  ``metadata.total_size`` where a copy of it was found, else the Hub's safetensors parameter
  counts (``api/models/<repo>?expand[]=safetensors``), which fix the bytes of an all-BF16 checkpoint
  (2 bytes each) and, with the per-dtype split, of DeepSeek's FP8 one;
* the model card's rounded figures, with a stated relative tolerance and, where the card counts
  differently from fitcalc (docstring of fitcalc/core/estimate/weights.py), the stated adjustment.

None of the Hub figures were read from huggingface.co here: each was found quoted in public code,
docs or notes, and the YAML ``sources:`` say so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from fitcalc.edges.catalog import data_dir, load_model, model_ids, resolve_model_id
from fitcalc.core.estimate.weights import tensor_inventory, weights_breakdown


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def fp8_block(rows: int, cols: int) -> int:
    """Bytes of one DeepSeek FP8 matrix: 1 byte per weight + an fp32 weight_scale_inv per 128x128 tile."""
    return rows * cols + 4 * ceil_div(rows, 128) * ceil_div(cols, 128)


@dataclass(frozen=True)
class Card:
    """A model-card figure and what of ours it is compared with."""

    value: float
    ours: int  # the hand-derived count the card's definition corresponds to
    rel_tol: float
    source: str


@dataclass(frozen=True)
class Case:
    id: str
    params: int  # hand-derived total parameters (fitcalc's convention: MTP and towers included)
    active: int  # hand-derived active parameters (gpt-oss card convention)
    disk: int  # hand-derived native bytes on disk
    index_total: int | None = None  # model.safetensors.index.json metadata.total_size, as published
    hub_params: int | None = None  # Hub safetensors total, as published
    card_total: Card | None = None
    card_active: Card | None = None


CASES: list[Case] = []

# ---------------------------------------------------------------------------------------------
# gpt-oss-120b. config.json: H=2880, L=36, 64 q heads, 8 kv heads, head_dim 64, 128 experts of
# width 2880 (top-4), vocab 201088, biases on q/k/v/o and on experts, sinks [64] per layer.
# ---------------------------------------------------------------------------------------------
_H, _L, _V, _E, _I = 2880, 36, 201088, 128, 2880
_ATTN = (4096 * _H + 4096) + 2 * (512 * _H + 512) + (_H * 4096 + _H) + 64
_ROUTER = _E * _H + _E
_EXP_MAT = _E * (2 * _I * _H + _H * _I)
_EXP_BIAS = _E * (2 * _I + _H)
_LAYER = _ATTN + _ROUTER + _EXP_MAT + _EXP_BIAS + 2 * _H
GPT_OSS_120B = _L * _LAYER + 2 * _V * _H + _H
CASES.append(Case(
    "gpt-oss-120b",
    params=GPT_OSS_120B,
    active=GPT_OSS_120B - _V * _H - _L * (_EXP_MAT + _EXP_BIAS) * (_E - 4) // _E,
    # MXFP4 expert matrices: 17 bytes per 32 weights; everything else BF16.
    disk=_L * _EXP_MAT // 32 * 17 + 2 * (GPT_OSS_120B - _L * _EXP_MAT),
    index_total=65_248_815_744,  # openai/gpt-oss-120b model.safetensors.index.json
    card_total=Card(116.83e9, GPT_OSS_120B, 0.0005, "gpt-oss model card, Table 1: 116.83B"),
    card_active=Card(5.13e9, GPT_OSS_120B - _V * _H - _L * (_EXP_MAT + _EXP_BIAS) * 124 // 128, 0.001,
                     "gpt-oss model card, Table 1: 5.13B active"),
))

# ---------------------------------------------------------------------------------------------
# DeepSeek-V3 and DeepSeek-R1 (same config.json): H=7168, L=61 (first 3 dense, I=18432), 128 heads,
# MLA q_lora 1536, kv_lora 512, rope 64, nope 128, v 128; 256 routed experts of width 2048 (top-8)
# + 1 shared; vocab 129280; 1 MTP layer (index 61) with its own embed_tokens and shared_head.head.
# FP8 128x128 blocks on every layer linear except the router gate and the MTP eh_proj (BF16);
# norms BF16; e_score_correction_bias FP32.
# ---------------------------------------------------------------------------------------------
_H, _V = 7168, 129280
_ATTN_MATS = [(1536, _H), (128 * 192, 1536), (512 + 64, _H), (128 * (128 + 128), 512), (_H, 128 * 128)]
_ATTN_P = sum(r * c for r, c in _ATTN_MATS) + 1536 + 512  # + q_a_layernorm, kv_a_layernorm
_ATTN_B = sum(fp8_block(r, c) for r, c in _ATTN_MATS) + 2 * (1536 + 512)
_DENSE_P = 3 * _H * 18432
_DENSE_B = 2 * fp8_block(18432, _H) + fp8_block(_H, 18432)
_EXPERT_P = 3 * 2048 * _H  # gate, up, down of one routed or shared expert
_EXPERT_B = 2 * fp8_block(2048, _H) + fp8_block(_H, 2048)
_MOE_P = 256 * _H + 256 + 256 * _EXPERT_P + _EXPERT_P  # gate, correction bias, routed, shared
_MOE_B = 2 * 256 * _H + 4 * 256 + 256 * _EXPERT_B + _EXPERT_B
_NORMS = 2 * _H  # input_layernorm, post_attention_layernorm
_MAIN_P = 61 * (_ATTN_P + _NORMS) + 3 * _DENSE_P + 58 * _MOE_P + 2 * _V * _H + _H
_MAIN_B = 61 * (_ATTN_B + 2 * _NORMS) + 3 * _DENSE_B + 58 * _MOE_B + 2 * 2 * _V * _H + 2 * _H
# MTP layer: a MoE decoder layer + enorm, hnorm, shared_head.norm + eh_proj [H, 2H] + embed + head
_MTP_P = _ATTN_P + _NORMS + _MOE_P + 3 * _H + _H * 2 * _H + 2 * _V * _H
_MTP_B = _ATTN_B + 2 * _NORMS + _MOE_B + 2 * 3 * _H + 2 * _H * 2 * _H + 2 * 2 * _V * _H
DEEPSEEK = _MAIN_P + _MTP_P
DEEPSEEK_DISK = _MAIN_B + _MTP_B
# Active (README_WEIGHTS.md convention, = gpt-oss's): main model without the input embedding,
# routed experts 8/256.
DEEPSEEK_ACTIVE = _MAIN_P - _V * _H - 58 * 248 * _EXPERT_P
# The Hub's per-dtype element counts for both repos: BF16 3918786560, F8_E4M3 680571043840,
# F32 41555600 (total 684531386000, which counts the fp32 scales as parameters).
DEEPSEEK_HUB_BYTES = 2 * 3_918_786_560 + 680_571_043_840 + 4 * 41_555_600
for _mid, _readme in (("deepseek-v3", "DeepSeek-V3"), ("deepseek-r1", "DeepSeek-R1")):
    CASES.append(Case(
        _mid, params=DEEPSEEK, active=DEEPSEEK_ACTIVE, disk=DEEPSEEK_DISK,
        card_total=Card(685e9, DEEPSEEK, 0.001, f"{_readme} README: 685B on the Hub = 671B + 14B MTP"),
        card_active=Card(36.6e9, DEEPSEEK_ACTIVE, 0.002,
                         "DeepSeek-V3 README_WEIGHTS.md: 36.6B activated incl. 0.9B output head"),
    ))

# ---------------------------------------------------------------------------------------------
# Qwen3 dense. config.json: head_dim 128, q_norm/k_norm [128] per layer, untied, vocab 151936.
# Qwen3-8B: H=4096, I=12288, L=36, 32 q / 8 kv heads.  Qwen3-32B: H=5120, I=25600, L=64, 64 / 8.
# ---------------------------------------------------------------------------------------------


def _gqa(h: int, nh: int, nkv: int, d: int) -> int:
    """q, k, v, o projection weights without biases."""
    return h * nh * d * 2 + 2 * h * nkv * d


QWEN3_8B = 36 * (_gqa(4096, 32, 8, 128) + 2 * 128 + 3 * 4096 * 12288 + 2 * 4096) + 2 * 151936 * 4096 + 4096
QWEN3_32B = 64 * (_gqa(5120, 64, 8, 128) + 2 * 128 + 3 * 5120 * 25600 + 2 * 5120) + 2 * 151936 * 5120 + 5120
CASES += [
    Case("qwen3-8b", params=QWEN3_8B, active=QWEN3_8B - 151936 * 4096, disk=2 * QWEN3_8B,
         index_total=16_381_470_720, hub_params=8_190_735_360,
         card_total=Card(8.2e9, QWEN3_8B, 0.01, "Qwen3-8B model card: 8.2B")),
    Case("qwen3-32b", params=QWEN3_32B, active=QWEN3_32B - 151936 * 5120, disk=2 * QWEN3_32B,
         index_total=65_524_246_528, hub_params=32_762_123_264,
         card_total=Card(32.8e9, QWEN3_32B, 0.01, "Qwen3-32B model card: 32.8B")),
]

# ---------------------------------------------------------------------------------------------
# Qwen3 MoE: every layer MoE (mlp_only_layers []), router gate [E, H] without bias, no shared expert.
# 30B-A3B: H=2048, L=48, 32 q / 4 kv heads, 128 experts of 768 (top-8).
# 235B-A22B: H=4096, L=94, 64 q / 4 kv heads, 128 experts of 1536 (top-8).
# The cards count the input embedding as activated; fitcalc does not, so the card's active figure
# is compared with ours + V*H.
# ---------------------------------------------------------------------------------------------


def _qwen3_moe(h: int, layers: int, nh: int, width: int) -> tuple[int, int]:
    expert = 3 * width * h
    layer = _gqa(h, nh, 4, 128) + 2 * 128 + 128 * h + 128 * expert + 2 * h
    total = layers * layer + 2 * 151936 * h + h
    active = total - 151936 * h - layers * 120 * expert
    return total, active


Q30, Q30_ACTIVE = _qwen3_moe(2048, 48, 32, 768)
Q235, Q235_ACTIVE = _qwen3_moe(4096, 94, 64, 1536)
CASES += [
    Case("qwen3-30b-a3b", params=Q30, active=Q30_ACTIVE, disk=2 * Q30,
         index_total=61_064_245_248, hub_params=30_532_122_624,
         card_total=Card(30.5e9, Q30, 0.01, "Qwen3-30B-A3B model card: 30.5B in total"),
         card_active=Card(3.3e9, Q30_ACTIVE + 151936 * 2048, 0.02,
                          "Qwen3-30B-A3B model card: 3.3B activated (input embedding included)")),
    Case("qwen3-235b-a22b", params=Q235, active=Q235_ACTIVE, disk=2 * Q235,
         index_total=470_187_269_120, hub_params=235_093_634_560,
         card_total=Card(235e9, Q235, 0.001, "Qwen3-235B-A22B model card: 235B in total"),
         card_active=Card(22e9, Q235_ACTIVE + 151936 * 4096, 0.01,
                          "Qwen3-235B-A22B model card: 22B activated (input embedding included)")),
]

# ---------------------------------------------------------------------------------------------
# GLM-4.5 / GLM-4.5-Air (glm4_moe). 96 q / 8 kv heads of 128 (q is 12288 wide, not H), biases on
# q, k, v; routed experts + 1 shared expert of moe_intermediate_size; gate [E, H] + FP32
# e_score_correction_bias [E]; MTP layer with own embed_tokens and shared_head.head.
# GLM-4.5: H=5120, L=92 (3 dense, I=12288), 160 experts of 1536, use_qk_norm true, vocab 151552.
# Air:     H=4096, L=46 (1 dense, I=10944), 128 experts of 1408, use_qk_norm false.
# The cards leave out the MTP layer from the total and embedding and lm_head from the active count.
# ---------------------------------------------------------------------------------------------


def _glm(h: int, layers: int, dense: int, inter: int, experts: int, width: int, qk_norm: bool
         ) -> tuple[int, int, int, int]:
    v = 151552
    attn = _gqa(h, 96, 8, 128) + 96 * 128 + 2 * 8 * 128 + (2 * 128 if qk_norm else 0)
    expert = 3 * width * h
    moe = experts * h + experts + experts * expert + expert
    main = layers * (attn + 2 * h) + dense * 3 * inter * h + (layers - dense) * moe + 2 * v * h + h
    mtp = attn + 2 * h + moe + 3 * h + h * 2 * h + 2 * v * h
    active_no_io = main - 2 * v * h - (layers - dense) * (experts - 8) * expert
    fp32 = (layers - dense + 1) * experts  # correction-bias elements, stored FP32
    return main + mtp, main, active_no_io, fp32


GLM45, GLM45_MAIN, GLM45_ACT_NO_IO, GLM45_FP32 = _glm(5120, 92, 3, 12288, 160, 1536, True)
AIR, AIR_MAIN, AIR_ACT_NO_IO, AIR_FP32 = _glm(4096, 46, 1, 10944, 128, 1408, False)
CASES += [
    Case("glm-4.5", params=GLM45, active=GLM45_ACT_NO_IO + 151552 * 5120, disk=2 * GLM45 + 2 * GLM45_FP32,
         hub_params=358_337_791_296,
         card_total=Card(355e9, GLM45_MAIN, 0.01, "GLM-4.5 model card: 355B total (ours without MTP: 352.80B)"),
         card_active=Card(32e9, GLM45_ACT_NO_IO, 0.01, "GLM-4.5 model card: 32B active (ours without lm_head)")),
    Case("glm-4.5-air", params=AIR, active=AIR_ACT_NO_IO + 151552 * 4096, disk=2 * AIR + 2 * AIR_FP32,
         hub_params=110_468_824_832,
         card_total=Card(106e9, AIR_MAIN, 0.01, "GLM-4.5-Air model card: 106B total (ours without MTP: 106.85B)"),
         card_active=Card(12e9, AIR_ACT_NO_IO, 0.02, "GLM-4.5-Air model card: 12B active (ours without lm_head)")),
]

# ---------------------------------------------------------------------------------------------
# Llama 3.1: 8 kv heads, head_dim 128, vocab 128256, untied.
# 8B: H=4096, I=14336, L=32, 32 heads. 70B: H=8192, I=28672, L=80, 64 heads.
# 405B: H=16384, I=53248, L=126, 128 heads.
# ---------------------------------------------------------------------------------------------


def _dense(h: int, inter: int, layers: int, nh: int, nkv: int, d: int, v: int) -> int:
    return layers * (_gqa(h, nh, nkv, d) + 3 * h * inter + 2 * h) + 2 * v * h + h


L8 = _dense(4096, 14336, 32, 32, 8, 128, 128256)
L70 = _dense(8192, 28672, 80, 64, 8, 128, 128256)
L405 = _dense(16384, 53248, 126, 128, 8, 128, 128256)
_LLAMA_CARD = "Llama 3.1 model card: {}B"
CASES += [
    Case("llama-3.1-8b", params=L8, active=L8 - 128256 * 4096, disk=2 * L8, index_total=16_060_522_496,
         hub_params=8_030_261_248, card_total=Card(8e9, L8, 0.01, _LLAMA_CARD.format(8))),
    Case("llama-3.1-70b", params=L70, active=L70 - 128256 * 8192, disk=2 * L70, index_total=141_107_412_992,
         hub_params=70_553_706_496, card_total=Card(70e9, L70, 0.01, _LLAMA_CARD.format(70))),
    Case("llama-3.1-405b", params=L405, active=L405 - 128256 * 16384, disk=2 * L405,
         hub_params=405_853_388_800, card_total=Card(405e9, L405, 0.01, _LLAMA_CARD.format(405))),
]

# ---------------------------------------------------------------------------------------------
# Mixtral-8x7B-v0.1: H=4096, L=32, 32 q / 8 kv heads of 128, vocab 32000, 8 experts (top-2), each a
# full SwiGLU of intermediate_size 14336; router [8, H]. Mistral's 12.9B per token counts the
# input embedding, so it is compared with ours + V*H.
# ---------------------------------------------------------------------------------------------
_X = 3 * 14336 * 4096
MIXTRAL = 32 * (_gqa(4096, 32, 8, 128) + 8 * 4096 + 8 * _X + 2 * 4096) + 2 * 32000 * 4096 + 4096
MIXTRAL_ACTIVE = MIXTRAL - 32000 * 4096 - 32 * 6 * _X
CASES.append(Case(
    "mixtral-8x7b", params=MIXTRAL, active=MIXTRAL_ACTIVE, disk=2 * MIXTRAL, index_total=93_405_585_408,
    hub_params=46_702_792_704,
    card_total=Card(46.7e9, MIXTRAL, 0.001, "Mistral AI, Mixtral of experts: 46.7B total"),
    card_active=Card(12.9e9, MIXTRAL_ACTIVE + 32000 * 4096, 0.005,
                     "Mistral AI, Mixtral of experts: 12.9B per token (input embedding included)"),
))

# ---------------------------------------------------------------------------------------------
# Gemma 3 27B IT, text_config: H=5376, I=21504, L=62, 32 q / 16 kv heads of 128, q/k norms, 4 norms
# per layer, vocab 262208, tied (the embedding is also the unembedding, so it is active).
# vision_config (SigLIP): hidden 1152, intermediate 4304, 27 layers, patch 14, image 896 (4096
# positions), biases everywhere, LayerNorm weight+bias; projector [1152, 5376] + RMSNorm [1152].
# Technical report Table 1: vision encoder 417M, non-embedding 25,600M.
# ---------------------------------------------------------------------------------------------
GEMMA_TEXT = 62 * (_gqa(5376, 32, 16, 128) + 2 * 128 + 3 * 5376 * 21504 + 4 * 5376) + 262208 * 5376 + 5376
_SIG_LAYER = 4 * (1152 * 1152 + 1152) + (4304 * 1152 + 4304) + (1152 * 4304 + 1152) + 2 * 2 * 1152
SIGLIP = (1152 * 3 * 14 * 14 + 1152) + 4096 * 1152 + 27 * _SIG_LAYER + 2 * 1152
PROJECTOR = 1152 * 5376 + 1152
GEMMA = GEMMA_TEXT + SIGLIP + PROJECTOR
CASES.append(Case(
    "gemma-3-27b", params=GEMMA, active=GEMMA_TEXT, disk=2 * GEMMA,
    # google/medgemma-27b-it (same architecture) index total_size; gemma-3-27b-it's own not found.
    index_total=54_864_813_280, hub_params=27_432_406_640,
    card_total=Card(417e6 + 1416e6 + 25600e6, GEMMA, 0.001,
                    "Gemma 3 Technical Report, Table 1: 417M + 1,416M + 25,600M"),
))

# ---------------------------------------------------------------------------------------------
# Mistral-Small-24B-Instruct-2501: H=5120, I=32768, L=40, 32 q / 8 kv heads, head_dim 128 as
# published (not 5120/32 = 160), vocab 131072, untied. Its own index was not found; the Hub count
# is that of same-architecture repos.
# ---------------------------------------------------------------------------------------------
MISTRAL_SMALL = _dense(5120, 32768, 40, 32, 8, 128, 131072)
CASES.append(Case(
    "mistral-small-24b", params=MISTRAL_SMALL, active=MISTRAL_SMALL - 131072 * 5120, disk=2 * MISTRAL_SMALL,
    hub_params=23_572_403_200,
    card_total=Card(24e9, MISTRAL_SMALL, 0.02, "Mistral-Small-24B-Instruct-2501 model card: 24B"),
))

# ---------------------------------------------------------------------------------------------
# phi-4 (phi3): H=5120, I=17920, L=40, 40 q / 10 kv heads (head_dim 5120/40 = 128), vocab 100352,
# untied; qkv_proj [7680, 5120] and gate_up_proj [35840, 5120] fused, same weights as unfused.
# The card's "14B" is 14.66B rounded down: tolerance 5%.
# ---------------------------------------------------------------------------------------------
PHI4 = 40 * ((40 + 2 * 10) * 128 * 5120 + 5120 * 5120 + 2 * 17920 * 5120 + 5120 * 17920 + 2 * 5120) \
    + 2 * 100352 * 5120 + 5120
CASES.append(Case(
    "phi-4", params=PHI4, active=PHI4 - 100352 * 5120, disk=2 * PHI4, index_total=29_319_014_400,
    hub_params=14_659_507_200, card_total=Card(14e9, PHI4, 0.05, "microsoft/phi-4 model card: 14B"),
))


@pytest.fixture(scope="module")
def breakdowns():
    cache = {}

    def get(mid):
        if mid not in cache:
            m = load_model(mid)
            cache[mid] = (m, weights_breakdown(m, m.native_recipe))
        return cache[mid]

    return get


_IDS = [c.id for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_params_and_disk_bytes_match_hand_arithmetic(case, breakdowns):
    _, w = breakdowns(case.id)
    assert w.params_total == case.params
    assert w.disk_bytes == case.disk
    assert w.params_active == case.active


@pytest.mark.parametrize("case", [c for c in CASES if c.index_total], ids=[c.id for c in CASES if c.index_total])
def test_disk_bytes_equal_the_published_index_total_size(case):
    assert case.disk == case.index_total


@pytest.mark.parametrize("case", [c for c in CASES if c.hub_params], ids=[c.id for c in CASES if c.hub_params])
def test_params_equal_the_hub_safetensors_count(case):
    assert case.params == case.hub_params


def test_deepseek_matches_the_hub_per_dtype_counts():
    # No copy of the DeepSeek index was found; the Hub's per-dtype element counts fix the bytes.
    assert DEEPSEEK_DISK == DEEPSEEK_HUB_BYTES == 688_574_839_360
    # Parameters are the BF16 and F8 elements plus the 59 fp32 correction biases of 256 experts
    # (58 MoE layers + the MTP layer); the other F32 elements are weight_scale_inv tiles:
    assert DEEPSEEK == 3_918_786_560 + 680_571_043_840 + 59 * 256
    tiles = (62 * sum(ceil_div(r, 128) * ceil_div(c, 128) for r, c in _ATTN_MATS)  # 61 layers + MTP
             + 3 * 3 * ceil_div(18432, 128) * ceil_div(7168, 128)  # dense MLPs
             + 59 * 257 * 3 * ceil_div(2048, 128) * ceil_div(7168, 128))  # routed + shared experts
    assert tiles + 59 * 256 == 41_555_600


@pytest.mark.parametrize("case", [c for c in CASES if c.card_total], ids=[c.id for c in CASES if c.card_total])
def test_model_card_total(case):
    card = case.card_total
    assert abs(card.ours - card.value) <= card.rel_tol * card.value, card.source


@pytest.mark.parametrize("case", [c for c in CASES if c.card_active], ids=[c.id for c in CASES if c.card_active])
def test_model_card_active(case):
    card = case.card_active
    assert abs(card.ours - card.value) <= card.rel_tol * card.value, card.source


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_yaml_published_figures_match_the_table(case):
    """The figures in the data file are the ones checked here (no silent drift between the two)."""
    pub = load_model(case.id).published
    assert pub is not None and pub.params_total is not None and pub.params_total.source
    if case.card_total:
        assert pub.params_total.value == case.card_total.value
    if case.card_active:
        assert pub.params_active is not None and pub.params_active.value == case.card_active.value
    if pub.index_total_size is not None:
        assert pub.index_total_size.value == case.index_total


def test_every_bundled_model_has_a_row():
    assert sorted(_IDS + ["gpt-oss-20b"]) == model_ids()


# ---------------------------------------------------------------------------------------------
# The catalog as a whole
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mid", model_ids())
def test_every_spec_loads_and_its_id_is_its_file_name(mid, breakdowns):
    m, w = breakdowns(mid)
    assert m.id == mid
    assert (data_dir("model_specs") / f"{m.id}.yaml").is_file()
    assert sum(g.params for g in w.groups) == w.params_total
    assert any(s.kind == "hf_config" for s in m.sources), "architecture numbers need their config.json"


def test_names_are_unique_across_specs():
    owner: dict[str, str] = {}
    for mid in model_ids():
        m = load_model(mid)
        for name in [m.id, m.hf_repo, *m.aliases]:
            assert name is not None
            key = name.lower()
            assert owner.setdefault(key, mid) == mid, f"{name} names both {owner[key]} and {mid}"


@pytest.mark.parametrize("mid", model_ids())
def test_hub_name_and_aliases_resolve(mid):
    m = load_model(mid)
    for name in [m.hf_repo, *m.aliases]:
        assert resolve_model_id(name) == mid
        assert resolve_model_id(name.upper()) == mid


def test_gpt_oss_120b_hub_name(runner, app):
    a = runner.invoke(app, ["size", "openai/gpt-oss-120b", "--json"])
    assert a.exit_code == 0, a.output
    assert json.loads(a.stdout)["model"] == "gpt-oss-120b"
    assert json.loads(a.stdout)["disk_bytes"] == 65_248_815_744


def test_models_json_lists_every_spec(runner, app):
    r = runner.invoke(app, ["models", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert sorted(row["id"] for row in rows) == model_ids()
    by_id = {row["id"]: row for row in rows}
    for case in CASES:
        assert by_id[case.id]["disk_bytes"] == case.disk
        assert by_id[case.id]["params_total"] == case.params


def test_phi4_stores_fused_projections():
    by_name = {e.name: e for e in tensor_inventory(load_model("phi-4").architecture)}
    assert by_name["model.layers.{i}.self_attn.qkv_proj.weight"].shape == ((40 + 2 * 10) * 128, 5120)
    assert by_name["model.layers.{i}.mlp.gate_up_proj.weight"].shape == (2 * 17920, 5120)
    assert "model.layers.{i}.self_attn.q_proj.weight" not in by_name


def test_deepseek_mtp_eh_proj_is_bf16_and_correction_bias_fp32(breakdowns):
    _, w = breakdowns("deepseek-v3")
    mtp = w.group("mtp")
    assert mtp is not None and not mtp.resident
    # 59 correction biases (58 MoE layers + MTP) of 256 fp32 values
    assert w.group("router").formats["fp32"] + mtp.formats["fp32"] == 59 * 256 * 4
