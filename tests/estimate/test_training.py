"""Fine-tuning memory (fitcalc.core.estimate.training) against hand arithmetic and published figures.

Every expected value below is derived by hand in its comment or taken from a paper, never from the code.
"""

import pytest

from fitcalc.core.errors import InputError
from fitcalc.core.estimate.training import (
    TrainSetup,
    fit_training,
    logits_term,
    optimizer_bytes,
    prepare_training,
    train_footprint,
)
from fitcalc.core.estimate.weights import TensorEntry
from fitcalc.core.spec import Architecture, Device, ModelSpec, RecipeSpec
from fitcalc.edges import catalog
from tests.archs import llama_3_1_8b

BF16 = RecipeSpec(id="native", rules={"default": "bf16"})
ENGINE = catalog.load_engine("torch")
BIG = Device.from_budget(10**15)  # a budget large enough that nothing is cut: arithmetic only
# Llama-3.1-8B parameters (huggingface.co/meta-llama/Llama-3.1-8B): embedding and lm_head 128,256 × 4,096 each;
# per layer q, o 4096² + k, v 1024 × 4096 + 3 × 14,336 × 4,096 + 2 norms of 4,096; final norm 4,096.
LLAMA_PARAMS = 2 * 128256 * 4096 + 32 * (2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 14336 * 4096 + 2 * 4096) + 4096


def _tensor(shape, copies=1) -> TensorEntry:
    return TensorEntry(name="t", group="mlp", role="t", kind="matrix" if len(shape) > 1 else "vector", shape=shape,
                       copies=copies)


def _terms(model, n_gpus=1, device=BIG, **kw):
    p = prepare_training(model, TrainSetup(**kw), ENGINE)
    fp, notes = train_footprint(p, device, n_gpus)
    return p, {t.id: t for t in fp.terms}, notes


def _states(terms) -> int:
    return sum(t.bytes for i, t in terms.items() if i.split(".")[0] in ("weights", "grads", "master", "optimizer"))


def test_lora_r16_all_linear_llama_8b_trains_41_943_040():
    # Per layer, r (out + in) per matrix: q 16·(4096+4096) = 131,072; k, v 16·(1024+4096) = 81,920 each;
    # o 131,072; gate, up, down 16·(14336+4096) = 294,912 each: 1,310,720 per layer × 32 = 41,943,040.
    p, t, _ = _terms(llama_3_1_8b(), method="lora", rank=16, targets="all-linear")
    assert p.params_trainable == 41_943_040
    assert t["weights.lora"].bytes == 41_943_040 * 2


def test_mixed_precision_adamw_is_16_bytes_per_parameter():
    # 2 (bf16 weights) + 2 (bf16 grads) + 4 (fp32 master) + 8 (two fp32 Adam states) = 16 B per parameter
    # (ZeRO paper sec. 3.1, K = 12); Llama-3.1-8B has 8,030,261,248 parameters.
    p, t, _ = _terms(llama_3_1_8b(), method="full")
    assert p.params_trainable == LLAMA_PARAMS == 8_030_261_248
    assert _states(t) == 16 * LLAMA_PARAMS
    assert t["master.fp32"].bytes == 4 * LLAMA_PARAMS and t["optimizer.states"].bytes == 8 * LLAMA_PARAMS


@pytest.mark.parametrize("precision, optimizer, per_param", [
    ("bf16", "adamw", 2 + 2 + 2 * 2),       # pure bf16: states take the parameter's dtype
    ("fp32", "adamw", 4 + 4 + 2 * 4),
    ("bf16-mixed", "lion", 2 + 2 + 4 + 4),  # one fp32 state
    ("bf16-mixed", "sgd", 2 + 2 + 4 + 4),   # momentum buffer
    ("bf16", "paged-adamw", 2 + 2 + 2 * 4),  # bitsandbytes 32-bit states are fp32 whatever the params
], ids=["bf16", "fp32", "lion", "sgd", "paged-32bit"])
def test_bytes_per_parameter_by_precision_and_optimizer(precision, optimizer, per_param):
    _p, t, _ = _terms(llama_3_1_8b(), method="full", precision=precision, optimizer=optimizer)
    assert _states(t) == per_param * LLAMA_PARAMS


def test_adamw_8bit_blockwise_states():
    # 4096 × 4096: 2 uint8 states + 2 fp32 absmax per 256 elements = 2·16,777,216 + 2·65,536·4 = 34,078,720;
    # 4,095 elements stay fp32 (below bitsandbytes' min_8bit_size 4096): 2 × 4,095 × 4 = 32,760.
    big, small = _tensor((4096, 4096)), _tensor((4095,))
    assert optimizer_bytes([big], "adamw-8bit", 4)[0] == 34_078_720
    assert optimizer_bytes([small], "paged-adamw-8bit", 4)[0] == 32_760
    assert optimizer_bytes([_tensor((4096, 4096), copies=3)], "adamw-8bit", 4)[0] == 3 * 34_078_720


def test_adafactor_factored_second_moment():
    # a 14,336 × 4,096 matrix keeps a row and a column vector: (14,336 + 4,096) × 4 = 73,728 B; a vector whole
    assert optimizer_bytes([_tensor((14336, 4096))], "adafactor", 4)[0] == 73_728
    assert optimizer_bytes([_tensor((4096,))], "adafactor", 4)[0] == 16_384


@pytest.mark.parametrize("kw, sharded", [
    (dict(zero=1), {"master.fp32", "optimizer.states"}),
    (dict(zero=2), {"master.fp32", "optimizer.states", "grads.trainable"}),
    (dict(zero=3), {"master.fp32", "optimizer.states", "grads.trainable", "weights.mlp"}),
    (dict(fsdp="full"), {"master.fp32", "optimizer.states", "grads.trainable", "weights.mlp"}),
], ids=["zero1", "zero2", "zero3", "fsdp"])
def test_zero_stages_split_states_over_8(kw, sharded):
    # ZeRO stage 1 splits optimizer states (with master weights), 2 adds gradients, 3 adds parameters:
    # each is exactly ceil(whole / 8) per GPU.
    _p, one, _ = _terms(llama_3_1_8b(), method="full")
    _p, eight, _ = _terms(llama_3_1_8b(), n_gpus=8, method="full", **kw)
    for tid in ("master.fp32", "optimizer.states", "grads.trainable", "weights.mlp"):
        expect = -(-one[tid].bytes // 8) if tid in sharded else one[tid].bytes
        assert eight[tid].bytes == expect, tid
    assert ("weights.gathered" in eight) == ("weights.mlp" in sharded)


def test_fsdp_hybrid_shards_within_a_node():
    # 16 GPUs, 8 per node: HYBRID_SHARD splits 8 ways and replicates the two nodes
    _p, one, _ = _terms(llama_3_1_8b(), method="full")
    _p, hyb, notes = _terms(llama_3_1_8b(), n_gpus=16, method="full", fsdp="hybrid")
    assert hyb["optimizer.states"].bytes == -(-one["optimizer.states"].bytes // 8)
    assert "over 8" in notes[0]


def test_zero3_on_one_gpu_is_zero0_and_says_so():
    _p, z0, _ = _terms(llama_3_1_8b(), method="full")
    _p, z3, notes = _terms(llama_3_1_8b(), method="full", zero=3)
    assert {k: v.bytes for k, v in z3.items()} == {k: v.bytes for k, v in z0.items()}
    assert any("same as ZeRO-0" in n for n in notes)


def test_ddp_keeps_a_second_copy_of_the_gradients():
    # torch DDP's default gradient_as_bucket_view=False: buckets = P × 2 B beside the grads
    _p, t, _ = _terms(llama_3_1_8b(), n_gpus=2, method="full")
    assert t["overhead.ddp_buckets"].bytes == 2 * LLAMA_PARAMS


def test_optimizer_offload_moves_master_and_states_to_host():
    p, t, _ = _terms(llama_3_1_8b(), n_gpus=8, method="full", zero=2, offload="optimizer")
    assert t["master.fp32"].placement == t["optimizer.states"].placement == t["grads.host"].placement == "cpu"
    assert t["grads.trainable"].placement == "gpu"
    r = fit_training(p, Device.from_budget(80 * 10**9), 8, "80GB")
    # one node of 8 GPUs holds every shard: (4 master + 8 states + 4 fp32 grads) × P, up to the ceil per shard
    assert abs(r.host_bytes - 16 * LLAMA_PARAMS) <= 8 * 3


def test_gradient_accumulation_costs_nothing():
    _p, a, _ = _terms(llama_3_1_8b(), method="lora")
    _p, b, _ = _terms(llama_3_1_8b(), method="lora", grad_accum=16)
    assert {k: v.bytes for k, v in a.items()} == {k: v.bytes for k, v in b.items()}


def test_saved_activations_of_a_llama_layer_full_finetuning():
    # Per token, bf16 (e = 2), Llama-3.1-8B (H 4096, a 32, n_kv 8, d 128, I 14,336), all weights trained:
    # norms 2 × (4·4096 fp32 upcast + 2·4096 normed) = 49,152
    # attention 2·4096 input + 2·(4096 + 2·1024) q,k,v + 2·4096 out + 4·32 lse = 28,800
    # MLP 2·4096 input + 3·2·14,336 gate/SiLU/up + 2·14,336 product = 122,880      → 200,832 B per token
    p, t, _ = _terms(llama_3_1_8b(), method="full", micro_batch=1, seq=1024)
    assert p.saved_per_token[0] == 200_832
    assert t["act.layers"].bytes == 1024 * 32 * 200_832


def test_checkpointing_keeps_layer_inputs_and_recomputes_one_layer():
    # every layer checkpointed: each keeps its bf16 input (2 × 4096 B per token); one layer recomputed
    _p, t, _ = _terms(llama_3_1_8b(), method="full", seq=1024, checkpointing=True)
    assert t["act.layers"].bytes == 1024 * 32 * 2 * 4096
    assert t["act.recompute"].bytes == 1024 * 200_832
    # every 4th layer (torchtitan's selective layer AC): 8 checkpointed, 24 stored whole
    _p, t4, _ = _terms(llama_3_1_8b(), method="full", seq=1024, checkpointing=True, checkpoint_every=4)
    assert t4["act.layers"].bytes == 1024 * (24 * 200_832 + 8 * 2 * 4096)


def test_eager_attention_keeps_the_score_matrix():
    # (4 + 2) × a 32 × S per token per layer for the fp32 softmax and its bf16 copy, + repeated K and V:
    # 2 × 2 × (32 − 8) × 128 = 12,288 B
    _p, t, _ = _terms(llama_3_1_8b(), method="full", seq=1024, attention="eager")
    assert t["act.attention_scores"].bytes == 1024 * 32 * (6 * 32 * 1024 + 12_288)


def test_loss_over_a_200k_vocabulary():
    # gpt-oss (V 201,088, H 2,880) at 8,192 tokens: one fp32 copy of the logits is
    # 8,192 × 201,088 × 4 = 6,589,251,584 B = 6.14 GiB; the loss keeps bf16 logits, the fp32 copy and the
    # fp32 log-softmax: × (2 + 4 + 4) / 4.
    assert logits_term(8192, 201088, 2880, 2, "full").bytes == 6_589_251_584 * 10 // 4
    # chunked (Liger): chunk = next_pow2(ceil(8192 / ceil(201,088 / 2,880) = 70)) = next_pow2(118) = 128
    assert logits_term(8192, 201088, 2880, 2, "chunked").bytes == 128 * 201088 * 2 + 8192 * 2880 * 2 + 4 * 8192


@pytest.mark.parametrize("kw, message", [
    (dict(method="lora", targets="q_a_proj"), "not a linear layer"),
    (dict(method="lora", rank=0), "at least 1"),
    (dict(method="lora", rank=1025), "larger than the layer"),  # k_proj is 1024 × 4096
    (dict(method="full", offload="params"), "needs parameter sharding"),
], ids=["missing-target", "rank-0", "rank-too-big", "param-offload-unsharded"])
def test_bad_input_is_one_line(kw, message):
    with pytest.raises(InputError, match=message) as e:
        prepare_training(llama_3_1_8b(), TrainSetup(**kw), ENGINE)
    assert "\n" not in str(e.value) and e.value.hint


def test_qlora_on_an_already_quantized_checkpoint_is_refused():
    with pytest.raises(InputError, match="already quantized.*mxfp4"):
        prepare_training(catalog.load_model("gpt-oss-20b"), TrainSetup(method="qlora"), ENGINE)


def test_gpt_oss_all_linear_is_attention_only():
    # gpt-oss experts and router are nn.Parameter, not nn.Linear: PEFT's all-linear adapts q, k, v, o only.
    # 20b: 24 layers × 16 × (q (4096 + 2880) + k, v (512 + 2880) + o (2880 + 4096)) = 7,962,624
    p = prepare_training(catalog.load_model("gpt-oss-20b"), TrainSetup(method="lora"), ENGINE)
    assert p.params_trainable == 24 * 16 * (2 * (4096 + 2880) + 2 * (512 + 2880)) == 7_962_624


def test_mixtral_all_linear_adapts_every_expert_but_not_the_router():
    # Mixtral-8x7B (32 layers, H 4096, 8 KV heads of 128, 8 experts of I 14,336), r = 16, per layer:
    # q, o 16·(4096+4096) each + k, v 16·(1024+4096) each + 8 experts × 3 × 16·(14336+4096) = 7,503,872;
    # × 32 = 240,123,904. The router (8 × 4096) is left out: r = 16 would exceed its 8 outputs.
    p = prepare_training(catalog.load_model("mixtral-8x7b"), TrainSetup(method="lora"), ENGINE)
    assert p.params_trainable == 32 * 16 * (2 * 8192 + 2 * 5120 + 8 * 3 * 18432) == 240_123_904
    with pytest.raises(InputError, match="larger than the layer"):
        prepare_training(catalog.load_model("mixtral-8x7b"), TrainSetup(method="lora", targets="router"), ENGINE)


def test_solvers_are_tight():
    p = prepare_training(llama_3_1_8b(), TrainSetup(method="lora", seq=512), ENGINE)
    dev = Device.from_budget(24 * 2**30)
    r = fit_training(p, dev, 1, "24GiB")
    assert r.max_seq is not None and r.max_micro_batch is not None

    def total(b, s):
        return train_footprint(p, dev, 1, b, s)[0].total_bytes

    assert total(1, r.max_seq) <= dev.memory_bytes < total(1, r.max_seq + 1)
    assert total(r.max_micro_batch, 512) <= dev.memory_bytes < total(r.max_micro_batch + 1, 512)


def test_totals_grow_with_micro_batch_and_sequence():
    p = prepare_training(llama_3_1_8b(), TrainSetup(method="full", attention="eager"), ENGINE)
    totals = [train_footprint(p, BIG, 1, b, s)[0].total_bytes for b, s in [(1, 512), (1, 1024), (2, 1024), (4, 1024)]]
    assert totals == sorted(totals) and len(set(totals)) == 4


def _llama_65b() -> ModelSpec:
    # LLaMA-65B (Touvron et al. arXiv 2302.13971 Table 2; HF config): 80 layers, dim 8192, 64 heads, FFN 22,016
    a = Architecture(family="llama", num_hidden_layers=80, hidden_size=8192, vocab_size=32000, num_attention_heads=64,
                     num_key_value_heads=64, intermediate_size=22016, max_position_embeddings=2048)
    return ModelSpec(id="llama-65b-test", display_name="LLaMA-65B", architecture=a, native_recipe=BF16)


def test_qlora_paper_65b_on_one_48gb_gpu():
    # QLoRA (Dettmers et al. arXiv 2305.14314, abstract): 65B fine-tuned on a single 48 GB GPU. Their script
    # (artidoro/qlora scripts/finetune_guanaco_65b.sh): NF4 + double quant, LoRA r 64 on all linear layers,
    # bf16, gradient checkpointing, paged 32-bit AdamW (qlora.py default), target length 512.
    p = prepare_training(_llama_65b(), TrainSetup(method="qlora", rank=64, precision="bf16", optimizer="paged-adamw",
                                                  checkpointing=True, micro_batch=1, seq=512), ENGINE)
    r = fit_training(p, Device.from_budget(48 * 10**9), 1, "48 GB")
    assert r.fits and r.gpu_bytes - r.pageable_bytes < 48 * 10**9 < 2 * 10**9 + r.gpu_bytes * 2  # fits, not trivially
    # the script's micro-batch 4 × 528 tokens fits only by paging optimizer states, which is why the paper pages
    p4 = prepare_training(_llama_65b(), p.setup.model_copy(update={"micro_batch": 4, "seq": 528}), ENGINE)
    r4 = fit_training(p4, Device.from_budget(48 * 10**9), 1, "48 GB")
    assert r4.fits and r4.gpu_bytes > 48 * 10**9


def test_lora_paper_gpt3_175b_350gb():
    # LoRA (Hu et al. arXiv 2106.09685 sec. 4.2): GPT-3 175B with r = 4 on W_q and W_v cuts training VRAM from
    # 1.2 TB to 350 GB: the frozen fp16 weights (175B × 2 B) plus 18.9M adapter parameters and their states.
    a = Architecture(family="gpt3", num_hidden_layers=96, hidden_size=12288, vocab_size=50257, num_attention_heads=96,
                     num_key_value_heads=96, intermediate_size=4 * 12288, mlp_gated=False, hidden_act="gelu",
                     norm_kind="layernorm", attention_bias=True, attention_out_bias=True, mlp_bias=True,
                     max_position_embeddings=2048, tie_word_embeddings=True)
    gpt3 = ModelSpec(id="gpt-3-test", display_name="GPT-3 175B", architecture=a, native_recipe=BF16)
    p, lora, _ = _terms(gpt3, method="lora", rank=4, targets="q_proj,v_proj", precision="bf16")
    assert p.params_trainable == 96 * 2 * 4 * (12288 + 12288)  # 18,874,368
    assert _states(lora) == pytest.approx(350e9, rel=0.01)
    _p, full, _ = _terms(gpt3, method="full", precision="bf16")
    assert _states(full) / _states(lora) > 1.2e12 / 350e9  # fitcalc's full AdamW needs more than the paper's 1.2 TB
