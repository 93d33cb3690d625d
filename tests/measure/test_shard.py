"""The stack can build a shard (a subset of layers, heads, widths, experts) for distributed
verify later (issue #8). Bytes are checked against hand arithmetic on the tiny gpt-oss shapes."""

import pytest

torch = pytest.importorskip("torch", reason="the measure extra (PyTorch) is not installed")

from fitcalc import catalog
from fitcalc.errors import InputError
from fitcalc.measure.stack import Shard, Stack
from fitcalc.measure.tracker import StorageTracker
from tests.measure.tiny import tiny_gpt_oss

ENGINE = catalog.load_engine("torch")


def _bytes(shard):
    m = tiny_gpt_oss(2)
    tr = StorageTracker()
    with torch.inference_mode(), tr:
        s = Stack(m, m.native_recipe, "cpu", shard=shard, tracker=tr)
        s.build_weights()
        s.alloc_kv(1, 16, None, ENGINE)
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
    # (its bias 128 stays whole); sinks 4 -> 2; per layer, bf16
    per_layer = (64 * 128 + 64) + 2 * (32 * 128 + 32) + (128 * 64 + 128) + 2
    assert half["weights.attention"] == 2 * per_layer * 2
    assert half["kv.full"] * 2 == full["kv.full"]
    assert half["weights.embedding"] == full["weights.embedding"]  # replicated


def test_pipeline_shard_holds_its_layers():
    half, s = _bytes(Shard(layers=(1,)))
    assert [L.index for L in s.layers] == [1]
    assert "kv.sliding" not in half and half["kv.full"] > 0  # layer 1 is the full-attention one


def test_uneven_split_is_refused():
    with pytest.raises(InputError):
        Shard(ep=(0, 3)).experts(8)
