"""The stack builds a shard (a subset of layers, heads, widths, experts, vocabulary) as one rank of
a distributed run holds it, and runs it without collectives (partial sums). Bytes are checked
against hand arithmetic on the tiny gpt-oss shapes (hidden 128, 4 heads of 32 over 2 KV heads,
8 experts of width 128, vocabulary 512, bf16 and MXFP4 experts)."""

import pytest

torch = pytest.importorskip("torch", reason="the measure extra (PyTorch) is not installed")

from fitcalc.edges import catalog
from fitcalc.core.errors import InputError
from fitcalc.edges.measure.stack import Shard, Stack
from fitcalc.edges.measure.tracker import StorageTracker
from tests.measure.tiny import tiny_gpt_oss, tiny_phi

ENGINE = catalog.load_engine("torch")


def _bytes(shard):
    m = tiny_gpt_oss(2)
    tr = StorageTracker()
    with torch.inference_mode(), tr:
        s = Stack(m, m.native_recipe, "cpu", shard=shard, tracker=tr)
        s.build_weights()
        s.alloc_kv(1, 16, None, ENGINE)
        if shard.embedding and shard.head:
            s.prefill(15, 8)  # runs: the shapes are consistent (no collectives, partial sums)
        return {k: v for k, v in tr.by_tag.items() if v and not k.startswith("act")}, s


def test_expert_parallel_halves_the_experts():
    full, _ = _bytes(Shard())
    half, s = _bytes(Shard(ep=(1, 2)))
    assert list(s.experts) == [4, 5, 6, 7]
    assert half["weights.experts"] * 2 == full["weights.experts"]
    assert half["weights.attention"] == full["weights.attention"]


def test_tensor_parallel_splits_heads_and_widths():
    full, _ = _bytes(Shard())
    half, s = _bytes(Shard(tp=(0, 2)))
    assert (s.n_heads, s.n_kv) == (2, 1)
    # q_proj 128x128 + bias 128 -> 64 rows; k,v 64x128 + 64 -> 32 rows; o_proj 128x128 -> 128x64
    # (its bias 128 stays whole: row parallel); sinks 4 -> 2; per layer, bf16
    per_layer = (64 * 128 + 64) + 2 * (32 * 128 + 32) + (128 * 64 + 128) + 2
    assert half["weights.attention"] == 2 * per_layer * 2
    assert half["kv.full"] * 2 == full["kv.full"]
    # vocabulary parallel: 512 rows (a multiple of 64) / 2, x 128 x 2 B
    assert half["weights.embedding"] == 256 * 128 * 2
    # replicated: router [8, 128] + bias 8 per layer, and every norm
    assert half["weights.router"] == full["weights.router"] == 2 * (8 * 128 + 8) * 2
    assert half["weights.norms"] == full["weights.norms"] == (2 * 2 + 1) * 128 * 2
    # experts: width 128 / 2 = 64 (two 32-blocks): gate_up [128, 128] + bias 128, down [128, 64] + bias 128 whole;
    # MXFP4 = 17 B per 32 weights
    per_expert = 128 * 128 * 17 // 32 + 128 * 2 + 128 * 64 * 17 // 32 + 128 * 2
    assert half["weights.experts"] == 2 * 8 * per_expert


def test_kv_heads_are_replicated_beyond_their_count():
    """tp 4 over 2 KV heads: every rank holds one KV head (vLLM QKVParallelLinear replicas)."""
    full, _ = _bytes(Shard())
    quarter, s = _bytes(Shard(tp=(3, 4)))
    assert (s.n_heads, s.n_kv, s.groups) == (1, 1, 1)
    assert quarter["kv.full"] * 2 == full["kv.full"]  # 1 of 2 heads, not 1 of 4
    # q 32 rows, k and v one head of 32 rows each, o_proj [128, 32] + bias 128, sinks 1
    assert quarter["weights.attention"] == 2 * ((32 * 128 + 32) + 2 * (32 * 128 + 32) + (128 * 32 + 128) + 1) * 2


def test_pipeline_stages_hold_embedding_first_and_head_last():
    first, _ = _bytes(Shard(layers=(0,), head=False))
    last, _ = _bytes(Shard(layers=(1,), embedding=False))
    assert "weights.lm_head" not in first and first["weights.embedding"] == 512 * 128 * 2
    assert "weights.embedding" not in last and last["weights.lm_head"] == 512 * 128 * 2
    assert first["weights.norms"] == 2 * 128 * 2  # layer 0's two norms
    assert last["weights.norms"] == 3 * 128 * 2  # layer 1's two norms + the final norm


def test_pipeline_shard_holds_its_layers():
    half, s = _bytes(Shard(layers=(1,)))
    assert [L.index for L in s.layers] == [1]
    assert "kv.sliding" not in half and half["kv.full"] > 0  # layer 1 is the full-attention one


def test_uneven_split_is_refused():
    with pytest.raises(InputError):
        Shard(ep=(0, 3)).experts(8)


def test_fused_qkv_and_gate_up_split_per_rank():
    """Phi-3 layout at tp 4 over 2 KV heads: qkv_proj rows = q 256 / 4 + one replicated KV head each
    for k and v (64 + 64); gate_up rows 2 x 384 / 4; down columns 384 / 4; o_proj columns 256 / 4."""
    m = tiny_phi(2)
    tr = StorageTracker()
    with torch.inference_mode(), tr:
        s = Stack(m, m.native_recipe, "cpu", shard=Shard(tp=(2, 4)), tracker=tr)
        s.build_weights()
        s.alloc_kv(1, 16, None, ENGINE)
        s.prefill(15, 8)  # the fused projections split into this rank's q, k and v
        s.decode(15)
    assert tr.by_tag["weights.attention"] == 2 * ((64 + 64 + 64) * 256 + 256 * 64) * 2
    assert tr.by_tag["weights.mlp"] == 2 * (2 * 96 * 256 + 256 * 96) * 2
    assert tr.by_tag["kv.full"] == 2 * 16 * 64 * 2 * 2  # 2 layers, 16 slots, one head of 64, K and V, bf16
