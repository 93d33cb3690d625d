"""Tiny architectures for the measurement tests: the shapes of real families, scaled down so a
CPU runs them in milliseconds (every dimension a multiple of the block sizes the formats need)."""

from fitcalc.core.spec import Architecture, ModelSpec, MoE, RecipeSpec


def tiny_gpt_oss(layers: int = 2) -> ModelSpec:
    """gpt-oss-20b's structure (sinks, biases, sliding/full alternation, stacked MXFP4 experts with
    interleaved gate/up) at hidden 128, 4 heads of 32 over 2 KV heads, 8 experts of width 128, top 2."""
    a = Architecture(family="gpt_oss", num_hidden_layers=layers, hidden_size=128, vocab_size=512,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=32, attention_bias=True,
                     attention_out_bias=True, attention_sinks=True, max_position_embeddings=4096,
                     rope_theta=150000, layer_pattern=["sliding_attention", "full_attention"], sliding_window=8,
                     moe=MoE(num_experts=8, experts_per_token=2, moe_intermediate_size=128, router_bias=True,
                             expert_bias=True, stacked=True))
    return ModelSpec(id="tiny-gpt-oss", display_name="tiny gpt-oss", architecture=a,
                     native_recipe=RecipeSpec(id="native", rules={"default": "bf16", "experts": "mxfp4"}))


def tiny_llama(layers: int = 2) -> ModelSpec:
    """A Llama-style dense model: GQA 4/2, SwiGLU MLP 256 wide (multiples of 128 for the int4 groups)."""
    a = Architecture(family="llama", num_hidden_layers=layers, hidden_size=256, vocab_size=512,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=64, intermediate_size=384,
                     max_position_embeddings=4096, rope_theta=500000.0)
    return ModelSpec(id="tiny-llama", display_name="tiny llama", architecture=a,
                     native_recipe=RecipeSpec(id="native", rules={"default": "bf16"}))


def tiny_qwen_moe(layers: int = 2) -> ModelSpec:
    """A Qwen-MoE-style model: per-expert tensors, qk-norm, a shared expert with its gate."""
    a = Architecture(family="qwen2_moe", num_hidden_layers=layers, hidden_size=256, vocab_size=512,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=64, qk_norm=True,
                     max_position_embeddings=4096, intermediate_size=256,
                     moe=MoE(num_experts=4, experts_per_token=2, moe_intermediate_size=128,
                             shared_expert_intermediate_size=256, shared_expert_gate=True, first_k_dense_replace=1))
    return ModelSpec(id="tiny-qwen-moe", display_name="tiny qwen moe", architecture=a,
                     native_recipe=RecipeSpec(id="native", rules={"default": "bf16"}))


def tiny_phi(layers: int = 2) -> ModelSpec:
    """A Phi-3-style dense model: fused qkv_proj [q | k | v] and fused gate_up_proj, GQA 4/2."""
    a = Architecture(family="phi3", num_hidden_layers=layers, hidden_size=256, vocab_size=512,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=64, intermediate_size=384,
                     fused_qkv=True, fused_gate_up=True, max_position_embeddings=4096, rope_theta=250000.0)
    return ModelSpec(id="tiny-phi", display_name="tiny phi", architecture=a,
                     native_recipe=RecipeSpec(id="native", rules={"default": "bf16"}))
