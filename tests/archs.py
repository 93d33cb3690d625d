"""Architectures written out from published config.json files, independent of the bundled catalog,
so estimate tests do not depend on the YAML they would be checking."""

from fitcalc.core.spec import MLA, Architecture, ModelSpec, MoE, RecipeSpec

BF16 = RecipeSpec(id="native", rules={"default": "bf16"})


def llama_3_1_8b() -> ModelSpec:
    # huggingface.co/meta-llama/Llama-3.1-8B config.json
    a = Architecture(family="llama", num_hidden_layers=32, hidden_size=4096, vocab_size=128256,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=128, intermediate_size=14336,
                     max_position_embeddings=131072, tie_word_embeddings=False)
    return ModelSpec(id="llama-3.1-8b-test", display_name="Llama-3.1-8B", architecture=a, native_recipe=BF16)


def deepseek_v3() -> ModelSpec:
    # huggingface.co/deepseek-ai/DeepSeek-V3 config.json (MTP layer left out here)
    a = Architecture(family="deepseek_v3", num_hidden_layers=61, hidden_size=7168, vocab_size=129280,
                     num_attention_heads=128, num_key_value_heads=128, intermediate_size=18432,
                     max_position_embeddings=163840,
                     mla=MLA(q_lora_rank=1536, kv_lora_rank=512, qk_rope_head_dim=64, qk_nope_head_dim=128,
                             v_head_dim=128),
                     moe=MoE(num_experts=256, experts_per_token=8, moe_intermediate_size=2048, num_shared_experts=1,
                             first_k_dense_replace=3, score_correction_bias=True))
    return ModelSpec(id="deepseek-v3-test", display_name="DeepSeek-V3", architecture=a,
                     native_recipe=RecipeSpec(id="native", rules={"default": "fp8-block128", "router": "bf16",
                                                                   "embedding": "bf16", "lm_head": "bf16"}))
