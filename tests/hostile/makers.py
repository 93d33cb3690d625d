"""Small hostile inputs, made on the fly (a few KB each; weights are sparse holes)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from tests.checkpoints import write_safetensors

# One layer's q_proj of a 64-wide model: enough for a header-exact table.
Q_PROJ = [("model.layers.0.self_attn.q_proj.weight", "BF16", (64, 64))]

# A llama-shaped config.json of 2 layers (fields named as transformers' LlamaConfig names them).
LLAMA_CONFIG = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
                "vocab_size": 100, "num_attention_heads": 4, "num_key_value_heads": 2,
                "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}


def hf_folder(folder: Path, config: dict | None, tensors=Q_PROJ) -> Path:
    """A checkpoint folder: ``config`` as config.json (None: no config.json) and one shard."""
    folder.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    write_safetensors(folder / "model.safetensors", list(tensors))
    return folder


def nested_safetensors(path: Path, depth: int) -> Path:
    """A safetensors file whose JSON header nests ``depth`` arrays (100,000 deep is 200 KB)."""
    doc = b'{"__metadata__":' + b"[" * depth + b"]" * depth + b"}"
    doc += b" " * (-len(doc) % 8)
    path.write_bytes(struct.pack("<Q", len(doc)) + doc)
    return path


def llama_gguf(path: Path, block_count: int, blocks_in_table: int = 2) -> Path:
    """A llama GGUF whose ``llama.block_count`` says ``block_count`` over a table of ``blocks_in_table``."""
    from tests.gguf_files import T, write_gguf

    keys = [("add_uint32", "llama.block_count", block_count), ("add_uint32", "llama.context_length", 4096),
            ("add_uint32", "llama.embedding_length", 64), ("add_uint32", "llama.feed_forward_length", 128),
            ("add_uint32", "llama.attention.head_count", 4), ("add_uint32", "llama.attention.head_count_kv", 2)]
    tensors = [("token_embd.weight", (100, 64), T.F16), ("output_norm.weight", (64,), T.F32)]
    for i in range(blocks_in_table):
        for name, shape in (("attn_q", (64, 64)), ("attn_k", (32, 64)), ("attn_v", (32, 64)),
                            ("attn_output", (64, 64)), ("ffn_gate", (128, 64)), ("ffn_up", (128, 64)),
                            ("ffn_down", (64, 128))):
            tensors.append((f"blk.{i}.{name}.weight", shape, T.F16))
        tensors += [(f"blk.{i}.attn_norm.weight", (64,), T.F32), (f"blk.{i}.ffn_norm.weight", (64,), T.F32)]
    write_gguf(path, "llama", keys, tensors)
    return path


def alias_bomb(levels: int = 9) -> str:
    """ "Billion laughs" in YAML: each anchor a list of nine aliases of the one before (1 KB, 9^9 values)."""
    text = 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels):
        text += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n"
    return text + f"contexts: *l{levels - 1}\n"
