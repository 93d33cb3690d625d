"""config.json -> ModelSpec per family, checked against published configs and parameter counts.

Each config below is the published config.json's architecture fields (the Hub page named in the
row). Totals are compared with the figure the authors published: exactly where they published
an exact count, with a stated tolerance where they published a rounded one.
"""

import pytest

from fitcalc.edges.ingest.hf_config import ConfigError, recipe_from_config, spec_from_hf
from fitcalc.core.sizing import size_model


def _size(cfg, name="m"):
    return size_model(spec_from_hf(cfg, None, name=name, source=name))


# huggingface.co/mistralai/Mixtral-8x7B-v0.1 config.json
MIXTRAL = {"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000, "num_local_experts": 8,
           "num_experts_per_tok": 2, "max_position_embeddings": 32768, "sliding_window": None,
           "rope_theta": 1e6, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
# huggingface.co/mistralai/Mistral-7B-v0.1
MISTRAL_V01 = {"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
               "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000,
               "max_position_embeddings": 32768, "sliding_window": 4096, "rope_theta": 10000.0,
               "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
# huggingface.co/microsoft/Phi-3-mini-4k-instruct
PHI3_MINI = {"model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
             "max_position_embeddings": 4096, "sliding_window": 2047, "tie_word_embeddings": False,
             "torch_dtype": "bfloat16"}
# huggingface.co/Qwen/Qwen2.5-7B (no attention_bias field: Qwen2 always has q/k/v biases)
QWEN25_7B = {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
             "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
             "max_position_embeddings": 131072, "sliding_window": 131072, "use_sliding_window": False,
             "max_window_layers": 28, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
# huggingface.co/Qwen/Qwen3-8B
QWEN3_8B = {"model_type": "qwen3", "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
            "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
            "max_position_embeddings": 40960, "attention_bias": False, "use_sliding_window": False,
            "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
# huggingface.co/deepseek-ai/DeepSeek-V3
DEEPSEEK_V3 = {"model_type": "deepseek_v3", "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432,
               "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_attention_heads": 128,
               "num_key_value_heads": 128, "n_shared_experts": 1, "n_routed_experts": 256, "num_experts_per_tok": 8,
               "first_k_dense_replace": 3, "moe_layer_freq": 1, "q_lora_rank": 1536, "kv_lora_rank": 512,
               "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128, "max_position_embeddings": 163840,
               "topk_method": "noaux_tc", "num_nextn_predict_layers": 1, "tie_word_embeddings": False,
               "torch_dtype": "bfloat16", "rope_theta": 10000,
               "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                                "original_max_position_embeddings": 4096, "type": "yarn"},
               "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                       "weight_block_size": [128, 128]}}
# huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct
QWEN3_NEXT = {"model_type": "qwen3_next", "decoder_sparse_step": 1, "full_attention_interval": 4, "head_dim": 256,
              "hidden_size": 2048, "intermediate_size": 5120, "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128,
              "linear_num_key_heads": 16, "linear_num_value_heads": 32, "linear_value_head_dim": 128,
              "max_position_embeddings": 262144, "mlp_only_layers": [], "moe_intermediate_size": 512,
              "num_attention_heads": 16, "num_experts": 512, "num_experts_per_tok": 10, "num_hidden_layers": 48,
              "num_key_value_heads": 2, "shared_expert_intermediate_size": 512, "tie_word_embeddings": False,
              "vocab_size": 151936, "rope_theta": 10000000, "partial_rotary_factor": 0.25, "torch_dtype": "bfloat16"}
# huggingface.co/zai-org/GLM-4.5
GLM45 = {"model_type": "glm4_moe", "attention_bias": True, "first_k_dense_replace": 3, "head_dim": 128,
         "hidden_size": 5120, "intermediate_size": 12288, "max_position_embeddings": 131072,
         "moe_intermediate_size": 1536, "n_routed_experts": 160, "n_shared_experts": 1, "num_attention_heads": 96,
         "num_experts_per_tok": 8, "num_hidden_layers": 92, "num_key_value_heads": 8, "num_nextn_predict_layers": 1,
         "partial_rotary_factor": 0.5, "rope_theta": 1000000, "tie_word_embeddings": False,
         "torch_dtype": "bfloat16", "use_qk_norm": True, "vocab_size": 151552}
# huggingface.co/google/gemma-3-27b-it: the text_config leaves vocab_size, max_position_embeddings,
# the sliding-window pattern and tie_word_embeddings to Gemma3TextConfig's defaults.
GEMMA3_27B = {"model_type": "gemma3", "torch_dtype": "bfloat16",
              "text_config": {"head_dim": 128, "hidden_size": 5376, "intermediate_size": 21504,
                              "model_type": "gemma3_text", "num_attention_heads": 32, "num_hidden_layers": 62,
                              "num_key_value_heads": 16, "query_pre_attn_scalar": 168,
                              "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024},
              "vision_config": {"model_type": "siglip_vision_model"}}
# huggingface.co/google/gemma-2-9b
GEMMA2_9B = {"model_type": "gemma2", "hidden_size": 3584, "intermediate_size": 14336, "num_hidden_layers": 42,
             "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256, "vocab_size": 256000,
             "max_position_embeddings": 8192, "sliding_window": 4096, "torch_dtype": "float32"}


@pytest.mark.parametrize("cfg,expected", [
    # Hand counts (embedding + lm_head + per layer: attention, MLP or experts + router, norms),
    # each consistent with the figure its model card publishes:
    # 32 x (41,943,040 attn + 8 x 3 x 4096 x 14336 experts + 32,768 router + 8,192 norms) + 2 x 131,072,000 + 4,096
    (MIXTRAL, 46_702_792_704),  # Mixtral-8x7B model card: 46.7B
    # 32 x (41,943,040 + 176,160,768 + 8,192) + 262,144,000 + 4,096
    (MISTRAL_V01, 7_241_732_096),  # Mistral-7B: 7.24B
    # 32 x (4 x 3072^2 + 3 x 3072 x 8192 + 6,144) + 2 x 32064 x 3072 + 3,072
    (PHI3_MINI, 3_821_079_552),  # Phi-3-mini: 3.8B
    # 28 x (29,360,128 + 4,608 qkv biases + 203,685,888 + 7,168) + 2 x 152064 x 3584 + 3,584
    (QWEN25_7B, 7_615_616_512),  # Qwen2.5-7B model card: 7.61B
    # 36 x (41,943,040 + 256 q/k norms + 150,994,944 + 8,192) + 2 x 151936 x 4096 + 4,096
    (QWEN3_8B, 8_190_735_360),  # Qwen3-8B model card: 8.2B
])
def test_dense_and_mixtral_totals_exact(cfg, expected):
    assert _size(cfg).params_total == expected


@pytest.mark.parametrize("cfg,published,tol,what", [
    (DEEPSEEK_V3, 685e9, 0.005, "DeepSeek-V3 Hub page: 685B = 671B main + 14B MTP"),
    (QWEN3_NEXT, 80e9, 0.01, "Qwen3-Next-80B-A3B model card: 80B total"),
    (GLM45, 355e9, 0.01, "GLM-4.5 model card: 355B total"),
    (GEMMA3_27B, 27.0e9, 0.005, "Gemma 3 report Table 1: 25,600M non-embedding + 1.4B embedding (text)"),
])
def test_moe_and_hybrid_totals_near_published(cfg, published, tol, what):
    got = _size(cfg).params_total
    assert abs(got - published) / published < tol, f"{what}: got {got:,}"


def test_deepseek_v3_main_model_is_671b_and_mtp_is_separate():
    r = _size(DEEPSEEK_V3)
    g = {x.name: x for x in r.groups}
    main = r.params_total - g["mtp"].params
    assert abs(main - 671e9) / 671e9 < 0.001  # model card: 671B total, 37B activated
    assert abs(r.params_active - 37e9) / 37e9 < 0.02
    assert not g["mtp"].resident


def test_deepseek_v3_fields():
    s = spec_from_hf(DEEPSEEK_V3, None, name="deepseek-ai/DeepSeek-V3", source="x")
    a = s.architecture
    assert (a.mla.q_lora_rank, a.mla.kv_lora_rank, a.mla.qk_rope_head_dim, a.mla.qk_nope_head_dim) == (1536, 512, 64,
                                                                                                       128)
    assert a.moe.first_k_dense_replace == 3 and a.moe.num_shared_experts == 1 and a.moe.score_correction_bias
    assert a.mtp.num_layers == 1 and a.mtp.own_embedding and a.mtp.own_head
    assert a.rope_scaling.rope_type == "yarn" and a.rope_scaling.factor == 40
    assert s.native_recipe.rules["default"] == "fp8-block128" and s.native_recipe.rules["lm_head"] == "bf16"
    assert s.id == "deepseek-v3"


def test_qwen3_next_hybrid_layers():
    a = spec_from_hf(QWEN3_NEXT, None, name="q", source="x").architecture
    kinds = a.layer_kinds()
    assert kinds.count("full_attention") == 12 and kinds[3] == "full_attention" and kinds[0] == "linear_attention"
    assert a.linear_attention.num_value_heads == 32 and a.attention_output_gate and a.qk_norm
    assert a.moe.shared_expert_gate and a.moe.shared_width == 512


def test_gemma3_defaults_fill_a_partial_text_config():
    a = spec_from_hf(GEMMA3_27B, None, name="g", source="x").architecture
    assert a.vocab_size == 262208 and a.max_position_embeddings == 131072 and a.tie_word_embeddings
    kinds = a.layer_kinds()
    assert kinds[:6] == ["sliding_attention"] * 5 + ["full_attention"] and a.sliding_window == 1024
    assert a.norms_per_layer == 4 and a.qk_norm


def test_gemma2_alternates_and_reads_float32():
    s = spec_from_hf(GEMMA2_9B, None, name="g2", source="x")
    assert s.architecture.layer_kinds()[:2] == ["sliding_attention", "full_attention"]
    assert s.native_recipe.rules == {"default": "fp32"}


@pytest.mark.parametrize("cfg,kinds", [
    (MISTRAL_V01, {"sliding_attention"}),  # window 4096 < 32768 on every layer
    (PHI3_MINI, {"sliding_attention"}),  # 2047 < 4096
    (dict(MISTRAL_V01, sliding_window=None), {"full_attention"}),  # Mistral-7B-v0.3 and later
    (dict(PHI3_MINI, sliding_window=262144, max_position_embeddings=131072), {"full_attention"}),
    (QWEN25_7B, {"full_attention"}),  # use_sliding_window false
    (MIXTRAL, {"full_attention"}),
])
def test_sliding_window_reading(cfg, kinds):
    assert set(spec_from_hf(cfg, None, name="m", source="x").architecture.layer_kinds()) == kinds


def test_qwen2_biases_on_qkv_not_o():
    a = spec_from_hf(QWEN25_7B, None, name="m", source="x").architecture
    assert a.attention_bias and not a.attention_out_bias


@pytest.mark.parametrize("q,default,extra", [
    ({"quant_method": "mxfp4"}, "bf16", {"experts": "mxfp4"}),
    ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8-block128", {"lm_head": "bf16"}),
    ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False}, "int4-gptq", {}),
    ({"quant_method": "gptq", "bits": 8, "group_size": 64}, "int8-gptq-g64", {}),
    ({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm"}, "int4-awq", {}),
    ({"quant_method": "compressed-tensors", "format": "float-quantized",
      "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"num_bits": 8, "type": "float",
                                                                       "strategy": "channel"}}}}, "fp8-channel", {}),
    ({"quant_method": "compressed-tensors", "format": "pack-quantized",
      "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "int", "strategy": "group",
                                                "group_size": 128}}}}, "int4-ct-g128", {}),
    ({"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized",
      "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group",
                                                "group_size": 16}}}}, "nvfp4", {}),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
      "bnb_4bit_use_double_quant": True}, "nf4-dq", {}),
    ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "int8", {}),
    ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "nvfp4", {}),
])
def test_quantization_config_sets_the_recipe(q, default, extra):
    r, warnings = recipe_from_config({"model_type": "llama", "torch_dtype": "bfloat16", "quantization_config": q})
    assert r.rules["default"] == default and not warnings
    for k, v in extra.items():
        assert r.rules[k] == v
    from fitcalc.core.recipes import validate_recipe_formats

    validate_recipe_formats(r)


def test_unknown_quant_method_warns():
    r, warnings = recipe_from_config({"quantization_config": {"quant_method": "hqq"}})
    assert warnings and "hqq" in warnings[0] and r.rules == {"default": "bf16"}


def test_missing_field_names_it():
    cfg = dict(QWEN3_8B)
    del cfg["num_attention_heads"]
    with pytest.raises(ConfigError, match="num_attention_heads"):
        spec_from_hf(cfg, None, name="m", source="x")


def test_unknown_family_without_weights_is_an_error_naming_the_kv_fields():
    with pytest.raises(ConfigError) as e:
        spec_from_hf({"model_type": "rwkv7", "hidden_size": 2048}, None, name="m", source="x")
    assert "num_key_value_heads" in str(e.value) and "rwkv7" in str(e.value)
