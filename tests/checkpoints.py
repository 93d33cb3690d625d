"""Checkpoint folders for tests: real safetensors headers, sparse payloads.

Each builder writes the tensor names, dtypes and shapes the published checkpoint has, an index
with its published ``metadata.total_size``, and the published config.json. Headers are written
for real (8-byte length + JSON, padded with spaces to a multiple of 8 as the safetensors library
does); the payload is made with ``truncate`` so a 13 GB checkpoint costs a few MB of disk.
Expected figures in the tests come from the published index and hand arithmetic, not from here.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "U8": 1, "I8": 1, "I32": 4, "I64": 8, "F8_E4M3": 1}

Tensor = tuple[str, str, tuple[int, ...]]  # name, dtype, shape


def header_bytes(tensors: list[Tensor], metadata: dict | None = None) -> tuple[bytes, int]:
    """(8-byte length + JSON header, data size) for tensors laid out back to back."""
    doc: dict = {}
    if metadata is not None:
        doc["__metadata__"] = metadata
    off = 0
    for name, dtype, shape in tensors:
        n = DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        doc[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    raw = json.dumps(doc, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, off


def write_safetensors(path: Path, tensors: list[Tensor], metadata: dict | None = None) -> int:
    """Write a safetensors file whose payload is a sparse hole; returns the data bytes."""
    head, data = header_bytes(tensors, metadata if metadata is not None else {"format": "pt"})
    with open(path, "wb") as f:
        f.write(head)
    os.truncate(path, len(head) + data)
    return data


def write_folder(folder: Path, config: dict, shards: dict[str, list[Tensor]], total_size: int | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    weight_map = {}
    for fname, tensors in shards.items():
        write_safetensors(folder / fname, tensors)
        weight_map.update({name: fname for name, _, _ in tensors})
    if total_size is not None or len(shards) > 1:
        index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def split(tensors: list[Tensor], n: int) -> dict[str, list[Tensor]]:
    """Spread tensors over n shards in order, named as transformers names them."""
    per = -(-len(tensors) // n)
    return {f"model-{k + 1:05d}-of-{n:05d}.safetensors": tensors[k * per:(k + 1) * per] for k in range(n)}


# --------------------------------------------------------------------------------------------
# gpt-oss-20b (huggingface.co/openai/gpt-oss-20b: config.json, model.safetensors.index.json)
# --------------------------------------------------------------------------------------------

GPT_OSS_20B_CONFIG = {
    "architectures": ["GptOssForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
    "eos_token_id": 200002, "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880,
    "initial_context_length": 4096, "initializer_range": 0.02, "intermediate_size": 2880,
    "layer_types": ["sliding_attention", "full_attention"] * 12, "max_position_embeddings": 131072,
    "model_type": "gpt_oss", "num_attention_heads": 64, "num_experts_per_tok": 4, "num_hidden_layers": 24,
    "num_key_value_heads": 8, "num_local_experts": 32, "output_router_logits": False, "pad_token_id": 199999,
    "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                       "model.embed_tokens", "lm_head"], "quant_method": "mxfp4"},
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0, "original_max_position_embeddings": 4096,
                     "rope_type": "yarn", "truncate": False},
    "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0,
    "tie_word_embeddings": False, "transformers_version": "4.55.0.dev0", "use_cache": True, "vocab_size": 201088,
}
GPT_OSS_20B_TOTAL_SIZE = 13_761_264_768  # model.safetensors.index.json "total_size"


def gpt_oss_layer(i: int, experts: int = 32, hidden: int = 2880, width: int = 2880) -> list[Tensor]:
    p = f"model.layers.{i}"
    q, kv = 64 * 64, 8 * 64
    return [
        (f"{p}.input_layernorm.weight", "BF16", (hidden,)),
        (f"{p}.self_attn.o_proj.bias", "BF16", (hidden,)),
        (f"{p}.self_attn.o_proj.weight", "BF16", (hidden, q)),
        (f"{p}.self_attn.q_proj.bias", "BF16", (q,)),
        (f"{p}.self_attn.k_proj.bias", "BF16", (kv,)),
        (f"{p}.self_attn.v_proj.bias", "BF16", (kv,)),
        (f"{p}.self_attn.q_proj.weight", "BF16", (q, hidden)),
        (f"{p}.self_attn.k_proj.weight", "BF16", (kv, hidden)),
        (f"{p}.self_attn.v_proj.weight", "BF16", (kv, hidden)),
        (f"{p}.self_attn.sinks", "BF16", (64,)),
        (f"{p}.mlp.router.bias", "BF16", (experts,)),
        (f"{p}.mlp.router.weight", "BF16", (experts, hidden)),
        (f"{p}.mlp.experts.gate_up_proj_bias", "BF16", (experts, 2 * width)),
        (f"{p}.mlp.experts.gate_up_proj_blocks", "U8", (experts, 2 * width, hidden // 32, 16)),
        (f"{p}.mlp.experts.gate_up_proj_scales", "U8", (experts, 2 * width, hidden // 32)),
        (f"{p}.mlp.experts.down_proj_bias", "BF16", (experts, hidden)),
        (f"{p}.mlp.experts.down_proj_blocks", "U8", (experts, hidden, width // 32, 16)),
        (f"{p}.mlp.experts.down_proj_scales", "U8", (experts, hidden, width // 32)),
        (f"{p}.post_attention_layernorm.weight", "BF16", (hidden,)),
    ]


def gpt_oss_20b_shards() -> dict[str, list[Tensor]]:
    # The published index spreads layers over three shards in lexicographic order of their
    # names (0, 1, 10..19, 2, 20..23, 3..9) with the embedding, final norm and lm_head last.
    order = sorted(range(24), key=str)
    tensors = [t for i in order for t in gpt_oss_layer(i)]
    tensors += [("model.embed_tokens.weight", "BF16", (201088, 2880)), ("model.norm.weight", "BF16", (2880,)),
                ("lm_head.weight", "BF16", (201088, 2880))]
    a, b = 10 * 19, 18 * 19 + 13
    return {"model-00000-of-00002.safetensors": tensors[:a], "model-00001-of-00002.safetensors": tensors[a:b],
            "model-00002-of-00002.safetensors": tensors[b:]}


def gpt_oss_20b(folder: Path) -> Path:
    return write_folder(folder, GPT_OSS_20B_CONFIG, gpt_oss_20b_shards(), GPT_OSS_20B_TOTAL_SIZE)


# --------------------------------------------------------------------------------------------
# Llama-3.1-8B (dense BF16; huggingface.co/meta-llama/Llama-3.1-8B)
# --------------------------------------------------------------------------------------------

LLAMA_31_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 128000,
    "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0", "use_cache": True, "vocab_size": 128256,
}
LLAMA_31_8B_TOTAL_SIZE = 16_060_522_496  # model.safetensors.index.json "total_size"


def llama_tensors(layers: int = 32, hidden: int = 4096, inter: int = 14336, heads: int = 32, kv: int = 8,
                  vocab: int = 128256, dtype: str = "BF16", tied: bool = False) -> list[Tensor]:
    d = hidden // heads
    out: list[Tensor] = [("model.embed_tokens.weight", dtype, (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}"
        out += [
            (f"{p}.input_layernorm.weight", dtype, (hidden,)),
            (f"{p}.mlp.down_proj.weight", dtype, (hidden, inter)),
            (f"{p}.mlp.gate_proj.weight", dtype, (inter, hidden)),
            (f"{p}.mlp.up_proj.weight", dtype, (inter, hidden)),
            (f"{p}.post_attention_layernorm.weight", dtype, (hidden,)),
            (f"{p}.self_attn.k_proj.weight", dtype, (kv * d, hidden)),
            (f"{p}.self_attn.o_proj.weight", dtype, (hidden, heads * d)),
            (f"{p}.self_attn.q_proj.weight", dtype, (heads * d, hidden)),
            (f"{p}.self_attn.v_proj.weight", dtype, (kv * d, hidden)),
        ]
    out.append(("model.norm.weight", dtype, (hidden,)))
    if not tied:
        out.append(("lm_head.weight", dtype, (vocab, hidden)))
    return out


def llama_31_8b(folder: Path) -> Path:
    return write_folder(folder, LLAMA_31_8B_CONFIG, split(llama_tensors(), 4), LLAMA_31_8B_TOTAL_SIZE)


# --------------------------------------------------------------------------------------------
# Qwen3-30B-A3B (MoE, one tensor per expert; huggingface.co/Qwen/Qwen3-30B-A3B)
# --------------------------------------------------------------------------------------------

QWEN3_30B_A3B_CONFIG = {
    "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 6144, "max_position_embeddings": 40960,
    "max_window_layers": 48, "mlp_only_layers": [], "model_type": "qwen3_moe", "moe_intermediate_size": 768,
    "norm_topk_prob": True, "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8,
    "num_hidden_layers": 48, "num_key_value_heads": 4, "output_router_logits": False, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001, "sliding_window": None,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True,
    "use_sliding_window": False, "vocab_size": 151936,
}
QWEN3_30B_A3B_TOTAL_SIZE = 61_064_245_248  # model.safetensors.index.json "total_size"


def qwen3_moe_tensors(layers: int = 48, experts: int = 128, hidden: int = 2048, width: int = 768, heads: int = 32,
                      kv: int = 4, d: int = 128, vocab: int = 151936) -> list[Tensor]:
    out: list[Tensor] = [("model.embed_tokens.weight", "BF16", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}"
        out += [(f"{p}.input_layernorm.weight", "BF16", (hidden,)),
                (f"{p}.mlp.gate.weight", "BF16", (experts, hidden))]
        for j in range(experts):
            out += [(f"{p}.mlp.experts.{j}.down_proj.weight", "BF16", (hidden, width)),
                    (f"{p}.mlp.experts.{j}.gate_proj.weight", "BF16", (width, hidden)),
                    (f"{p}.mlp.experts.{j}.up_proj.weight", "BF16", (width, hidden))]
        out += [(f"{p}.post_attention_layernorm.weight", "BF16", (hidden,)),
                (f"{p}.self_attn.k_norm.weight", "BF16", (d,)),
                (f"{p}.self_attn.k_proj.weight", "BF16", (kv * d, hidden)),
                (f"{p}.self_attn.o_proj.weight", "BF16", (hidden, heads * d)),
                (f"{p}.self_attn.q_norm.weight", "BF16", (d,)),
                (f"{p}.self_attn.q_proj.weight", "BF16", (heads * d, hidden)),
                (f"{p}.self_attn.v_proj.weight", "BF16", (kv * d, hidden))]
    out += [("model.norm.weight", "BF16", (hidden,)), ("lm_head.weight", "BF16", (vocab, hidden))]
    return out


def qwen3_30b_a3b(folder: Path) -> Path:
    return write_folder(folder, QWEN3_30B_A3B_CONFIG, split(qwen3_moe_tensors(), 16), QWEN3_30B_A3B_TOTAL_SIZE)
