"""Checkpoint folders with real headers: exact bytes, honest parameters, header vs architecture.

Folders are built by tests/checkpoints.py with the published tensor names, dtypes and shapes and
the published index; payloads are sparse. Expected values are the published index totals and
hand arithmetic written out below, never output of the code under test.
"""

import json
import struct

import pytest

from tests import checkpoints as ck
from fitcalc import api
from fitcalc.core.checkpoint import CheckpointTable, TensorRecord, classify_hf
from fitcalc.core.errors import FitcalcError
from fitcalc.edges.ingest import resolve_model
from fitcalc.edges.ingest.safetensors import MAX_HEADER_BYTES, read_file_header

# --- gpt-oss-20b by hand ---------------------------------------------------------------------
# H=2880, 24 layers, 64 q heads x 64, 8 kv heads x 64, 32 experts of width 2880, vocab 201088.
H, L, V, E, W = 2880, 24, 201088, 32, 2880
ATTN = (4096 * H + 4096) + 2 * (512 * H + 512) + (H * 4096 + H) + 64  # q,k,v,o + biases + sinks[64]
EXPERT_WEIGHTS = E * (2 * W * H + H * W)  # gate_up [E, 2W, H] + down [E, H, W], logical FP4 weights
EXPERT_BIASES = E * (2 * W + H)
ROUTER = E * H + E
PARAMS_20B = L * (ATTN + ROUTER + EXPERT_WEIGHTS + EXPERT_BIASES + 2 * H) + 2 * V * H + H
# MXFP4 bytes: per 32 weights, 16 bytes of *_blocks + 1 byte of *_scales.
EXPERT_BYTES = L * (EXPERT_WEIGHTS // 32 * 17 + EXPERT_BIASES * 2)


@pytest.fixture(scope="module")
def gpt_oss_folder(tmp_path_factory):
    return ck.gpt_oss_20b(tmp_path_factory.mktemp("ckpt") / "gpt-oss-20b")


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    return ck.llama_31_8b(tmp_path_factory.mktemp("ckpt") / "Llama-3.1-8B")


@pytest.fixture(scope="module")
def qwen3_moe_folder(tmp_path_factory):
    return ck.qwen3_30b_a3b(tmp_path_factory.mktemp("ckpt") / "Qwen3-30B-A3B")


def test_gpt_oss_20b_folder_totals_equal_the_published_index(gpt_oss_folder):
    r = api.size(str(gpt_oss_folder))
    assert r.disk_bytes == ck.GPT_OSS_20B_TOTAL_SIZE == 13_761_264_768
    assert r.params_total == PARAMS_20B == 20_914_757_184
    assert r.exact_source is not None and "safetensors headers" in r.exact_source
    g = {x.name: x for x in r.groups}
    assert g["experts"].bytes == EXPERT_BYTES
    assert g["experts"].params == L * (EXPERT_WEIGHTS + EXPERT_BIASES)  # blocks count 2 per byte, scales 0
    assert g["experts"].formats == {"mxfp4": L * EXPERT_WEIGHTS // 32 * 17, "bf16": L * EXPERT_BIASES * 2}
    idx = [p for p in r.published if p.what == "index_total_size"]
    assert idx and idx[0].relative_error == 0


def test_gpt_oss_20b_header_and_architecture_agree_to_the_byte(gpt_oss_folder):
    check = api.size(str(gpt_oss_folder), check=True).check
    assert check is not None and check.agree
    assert check.header_bytes == check.derived_bytes == 13_761_264_768
    assert check.header_params == check.derived_params == 20_914_757_184
    assert {r.group for r in check.rows} == {"embedding", "attention", "router", "experts", "norms", "lm_head"}


def test_gpt_oss_20b_folder_agrees_with_the_bundled_spec(gpt_oss_folder):
    folder = api.size(str(gpt_oss_folder))
    bundled = api.size("gpt-oss-20b")
    assert folder.disk_bytes == bundled.disk_bytes
    assert folder.params_active == bundled.params_active  # 3.61B (model card Table 1)
    spec = resolve_model(str(gpt_oss_folder))
    a = spec.architecture
    assert (a.num_hidden_layers, a.num_key_value_heads, a.head_dim, a.sliding_window) == (24, 8, 64, 128)
    assert a.layer_kinds()[:2] == ["sliding_attention", "full_attention"]
    assert spec.checkpoint.tensors == 24 * 19 + 3  # 19 tensors per layer + embed, norm, lm_head


def test_dense_bf16_llama_folder(llama_folder):
    # Llama-3.1-8B: 8,030,261,248 parameters x 2 bytes = the index's 16,060,522,496
    r = api.size(str(llama_folder), check=True)
    assert r.disk_bytes == ck.LLAMA_31_8B_TOTAL_SIZE
    d = 4096 // 32
    per_layer = (4096 * 4096 + 2 * 1024 * 4096 + 4096 * 4096) + 3 * 4096 * 14336 + 2 * 4096
    assert d == 128 and r.params_total == 32 * per_layer + 2 * 128256 * 4096 + 4096 == 8_030_261_248
    assert r.check.agree


def test_moe_with_one_tensor_per_expert(qwen3_moe_folder):
    r = api.size(str(qwen3_moe_folder), check=True)
    assert r.disk_bytes == ck.QWEN3_30B_A3B_TOTAL_SIZE == 61_064_245_248
    experts = 48 * 128 * 3 * 768 * 2048
    g = {x.name: x for x in r.groups}
    assert g["experts"].params == experts
    assert g["experts"].active_params == experts * 8 // 128
    # config.json: 48 layers, H 2048, 32 q / 4 kv heads of 128, qk norms, 128 experts of 768, vocab 151936, untied
    per_layer = 2048 * (4096 + 512 + 512) + 4096 * 2048 + 2 * 128 + 2 * 2048 + 128 * 2048 + 128 * 3 * 768 * 2048
    assert r.params_total == 48 * per_layer + 2 * 151936 * 2048 + 2048 == 30_532_122_624
    assert r.check.agree
    spec = resolve_model(str(qwen3_moe_folder))
    assert spec.checkpoint.tensors == 1 + 48 * (9 + 128 * 3) + 2  # 18,867


def test_single_safetensors_file_without_config_is_header_exact_with_a_warning(tmp_path):
    f = tmp_path / "model.safetensors"
    ck.write_safetensors(f, ck.llama_tensors(layers=2, hidden=256, inter=512, heads=4, kv=2, vocab=1000))
    r = api.size(str(f))
    per_layer = 256 * 256 * 2 + 2 * (128 * 256) + 3 * 256 * 512 + 2 * 256
    assert r.disk_bytes == 2 * (2 * per_layer + 2 * 1000 * 256 + 256)
    assert r.warnings and "num_key_value_heads" in r.warnings[0] and "no config.json" in r.warnings[0]


def test_unknown_family_names_the_kv_fields(tmp_path):
    folder = tmp_path / "weird"
    cfg = {"model_type": "weirdformer", "hidden_size": 256, "num_hidden_layers": 2}
    ck.write_folder(folder, cfg, {"model.safetensors": ck.llama_tensors(layers=2, hidden=256, inter=512, heads=4,
                                                                         kv=2, vocab=1000)}, None)
    r = api.size(str(folder))
    assert r.disk_bytes > 0 and r.exact_source
    w = " ".join(r.warnings)
    assert "weirdformer" in w and "num_key_value_heads" in w and "head_dim" in w
    with pytest.raises(FitcalcError) as e:
        api.size(str(folder), recipe="q4_k_m")
    assert "architecture" in str(e.value)


# --- honest parameter counts for packed storage -------------------------------------------------


def _table(tensors):
    recs = []
    for name, dtype, shape in tensors:
        n = ck.DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        recs.append(TensorRecord(name=name, dtype=dtype, shape=tuple(shape), nbytes=n, file="x"))
    return CheckpointTable(kind="safetensors", source="x", tensors=recs, files=[])


@pytest.mark.parametrize("tensors,params,fmt", [
    # GPTQ 4-bit g128, [out=4096, in=4096]: qweight int32 [in/8, out] holds 8 weights per element;
    # qzeros, scales and g_idx are bytes only.
    ([("m.layers.0.self_attn.q_proj.qweight", "I32", (512, 4096)),
      ("m.layers.0.self_attn.q_proj.qzeros", "I32", (32, 512)),
      ("m.layers.0.self_attn.q_proj.scales", "F16", (32, 4096)),
      ("m.layers.0.self_attn.q_proj.g_idx", "I32", (4096,))], 4096 * 4096, "int4-gptq"),
    # AWQ: qweight [in, out/8], no g_idx
    ([("m.q_proj.qweight", "I32", (4096, 512)), ("m.q_proj.qzeros", "I32", (32, 512)),
      ("m.q_proj.scales", "F16", (32, 4096))], 4096 * 4096, "int4-awq"),
    # NVFP4 (ModelOpt): uint8 weight [out, in/2] = two E2M1 per byte; fp8 scale per 16; fp32 scalars
    ([("m.q_proj.weight", "U8", (4096, 2048)), ("m.q_proj.weight_scale", "F8_E4M3", (4096, 256)),
      ("m.q_proj.weight_scale_2", "F32", ()), ("m.q_proj.input_scale", "F32", ())], 4096 * 4096, "nvfp4"),
    # bitsandbytes NF4: uint8 [numel/2, 1] + absmax/quant_map/quant_state
    ([("m.q_proj.weight", "U8", (4096 * 4096 // 2, 1)), ("m.q_proj.weight.absmax", "F32", (4096 * 4096 // 64,)),
      ("m.q_proj.weight.quant_map", "F32", (16,)),
      ("m.q_proj.weight.quant_state.bitsandbytes__nf4", "U8", (120,))], 4096 * 4096, "nf4"),
    # DeepSeek-style FP8 with 128x128 block scales: scale_inv is bytes only
    ([("m.q_proj.weight", "F8_E4M3", (1536, 7168)), ("m.q_proj.weight_scale_inv", "F32", (12, 56))],
     1536 * 7168, "fp8-block128"),
    # compressed-tensors W4A16 group 128: weight_packed int32 [out, in/8]
    ([("m.q_proj.weight_packed", "I32", (4096, 512)), ("m.q_proj.weight_scale", "BF16", (4096, 32)),
      ("m.q_proj.weight_shape", "I64", (2,))], 4096 * 4096, "int4-ct-g128"),
])
def test_packed_storage_counts_logical_weights(tensors, params, fmt):
    roles = classify_hf(_table(tensors), num_hidden_layers=None)
    assert sum(r.params for r in roles) == params
    assert {r.format for r in roles} == {fmt}  # scales are priced under their weight's format


def test_gptq_folder_header_and_derivation_agree(tmp_path):
    # A 2-layer llama in GPTQ 4-bit g128 (AutoGPTQ layout); the derived recipe comes from
    # quantization_config, the bytes from the headers.
    hidden, inter, heads, kv, vocab, layers = 512, 1024, 4, 2, 1000, 2
    d = hidden // heads
    tensors = [("model.embed_tokens.weight", "F16", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}"
        for name, out, inp in (("self_attn.q_proj", heads * d, hidden), ("self_attn.k_proj", kv * d, hidden),
                               ("self_attn.v_proj", kv * d, hidden), ("self_attn.o_proj", hidden, heads * d),
                               ("mlp.gate_proj", inter, hidden), ("mlp.up_proj", inter, hidden),
                               ("mlp.down_proj", hidden, inter)):
            tensors += [(f"{p}.{name}.qweight", "I32", (inp // 8, out)), (f"{p}.{name}.qzeros", "I32",
                                                                          (inp // 128, out // 8)),
                        (f"{p}.{name}.scales", "F16", (inp // 128, out)), (f"{p}.{name}.g_idx", "I32", (inp,))]
        tensors += [(f"{p}.input_layernorm.weight", "F16", (hidden,)),
                    (f"{p}.post_attention_layernorm.weight", "F16", (hidden,))]
    tensors += [("model.norm.weight", "F16", (hidden,)), ("lm_head.weight", "F16", (vocab, hidden))]
    cfg = {"model_type": "llama", "hidden_size": hidden, "intermediate_size": inter, "num_attention_heads": heads,
           "num_key_value_heads": kv, "num_hidden_layers": layers, "vocab_size": vocab,
           "max_position_embeddings": 4096, "torch_dtype": "float16",
           "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True}}
    folder = ck.write_folder(tmp_path / "tiny-gptq", cfg, {"model.safetensors": tensors}, None)
    r = api.size(str(folder), check=True)
    linear = layers * (hidden * hidden * 2 + 2 * (kv * d * hidden) + 3 * hidden * inter)
    assert r.params_total == linear + 2 * vocab * hidden + (2 * layers + 1) * hidden
    assert r.check.agree, r.check.rows


# --- bad input: one line, exit 1, nothing read past the cap -----------------------------------


def _raw(path, head: bytes, size: int | None = None):
    path.write_bytes(head)
    if size is not None:
        import os

        os.truncate(path, size)
    return path


def _header(doc) -> bytes:
    raw = json.dumps(doc).encode()
    return struct.pack("<Q", len(raw)) + raw


BAD = {
    "truncated": (lambda p: _raw(p, b"\x10\x00\x00"), "truncated"),
    "length_past_file": (lambda p: _raw(p, struct.pack("<Q", 5000) + b"{}"), "larger than the file"),
    "over_cap": (lambda p: _raw(p, struct.pack("<Q", MAX_HEADER_BYTES + 1), 8 + MAX_HEADER_BYTES + 10), "cap"),
    "not_json": (lambda p: _raw(p, struct.pack("<Q", 8) + b"{not js}"), "not JSON"),
    "overlap": (lambda p: _raw(p, _header({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                           "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}) + b"\0" * 24),
                "overlap"),
    "out_of_range": (lambda p: _raw(p, _header({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})
                                    + b"\0" * 8), "truncated file"),
    "unknown_dtype": (lambda p: _raw(p, _header({"a": {"dtype": "F12", "shape": [4], "data_offsets": [0, 6]}})
                                     + b"\0" * 6), "unknown dtype"),
    "span_mismatch": (lambda p: _raw(p, _header({"a": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 6]}})
                                     + b"\0" * 6), "needs 8"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_safetensors_one_line_exit_1(case, tmp_path, runner, app):
    make, words = BAD[case]
    f = make(tmp_path / "bad.safetensors")
    r = runner.invoke(app, ["size", str(f)])
    assert r.exit_code == 1, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in r.output


def test_a_lying_header_length_reads_nothing_past_the_prefix(tmp_path, monkeypatch):
    # The file is big enough to hold the claimed header, but the claim is over the cap:
    # exactly the 8-byte prefix is read.
    f = _raw(tmp_path / "liar.safetensors", struct.pack("<Q", MAX_HEADER_BYTES + 1), 8 + MAX_HEADER_BYTES + 10)
    read = []
    real_open = type(f).open

    def counting_open(self, *a, **k):
        fh = real_open(self, *a, **k)
        orig = fh.read

        def rd(n=-1):
            data = orig(n)
            read.append(len(data))
            return data

        fh.read = rd
        return fh

    monkeypatch.setattr(type(f), "open", counting_open)
    with pytest.raises(FitcalcError, match="cap"):
        read_file_header(f)
    assert sum(read) == 8


def test_folder_without_config_json(tmp_path, runner, app):
    ck.write_safetensors(tmp_path / "model.safetensors", [("a.weight", "BF16", (4,))])
    r = runner.invoke(app, ["size", str(tmp_path)])
    assert r.exit_code == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "config.json" in r.stderr


def test_index_naming_a_missing_shard(tmp_path, runner, app):
    folder = ck.write_folder(tmp_path / "m", ck.LLAMA_31_8B_CONFIG,
                             ck.split(ck.llama_tensors(layers=2, hidden=256, inter=512, heads=4, kv=2, vocab=100), 2),
                             None)
    (folder / "model-00002-of-00002.safetensors").unlink()
    r = runner.invoke(app, ["size", str(folder)])
    assert r.exit_code == 1 and "model-00002-of-00002.safetensors" in r.stderr


def test_check_json_and_table(gpt_oss_folder, runner, app):
    r = runner.invoke(app, ["size", str(gpt_oss_folder), "--check", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["check"]["agree"] is True and doc["disk_bytes"] == 13_761_264_768
    r = runner.invoke(app, ["size", str(gpt_oss_folder), "--check"])
    assert r.exit_code == 0 and "agree to the byte" in r.stdout


def test_check_shows_a_difference(tmp_path, runner, app):
    # config.json says untied, the checkpoint has no lm_head: the check names the group.
    cfg = dict(ck.LLAMA_31_8B_CONFIG, num_hidden_layers=2, hidden_size=256, intermediate_size=512,
               num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
    folder = ck.write_folder(tmp_path / "m", cfg, {"model.safetensors": ck.llama_tensors(
        layers=2, hidden=256, inter=512, heads=4, kv=2, vocab=100, tied=True)}, None)
    r = api.size(str(folder), check=True)
    assert not r.check.agree
    row = {x.group: x for x in r.check.rows}["lm_head"]
    assert (row.header_bytes, row.derived_bytes) == (0, 100 * 256 * 2)


# --- DeepSeek-V3 layout (FP8 128x128 blocks, MLA, shared experts, first dense layer, MTP layer) --


def _fp8(name, out, inp):
    # weight F8_E4M3 [out, in] + weight_scale_inv F32 [ceil(out/128), ceil(in/128)]
    return [(f"{name}.weight", "F8_E4M3", (out, inp)),
            (f"{name}.weight_scale_inv", "F32", (-(-out // 128), -(-inp // 128)))]


def test_deepseek_v3_layout_fp8_blocks_agree_with_the_derivation(tmp_path):
    Hd, heads, q_lora, kv_lora, rope, nope, v = 512, 4, 384, 256, 64, 128, 128
    E, W, inter, layers, vocab = 4, 256, 1024, 2, 1000
    cfg = {"model_type": "deepseek_v3", "vocab_size": vocab, "hidden_size": Hd, "intermediate_size": inter,
           "moe_intermediate_size": W, "num_hidden_layers": layers, "num_attention_heads": heads,
           "num_key_value_heads": heads, "n_shared_experts": 1, "n_routed_experts": E, "num_experts_per_tok": 2,
           "first_k_dense_replace": 1, "moe_layer_freq": 1, "q_lora_rank": q_lora, "kv_lora_rank": kv_lora,
           "qk_rope_head_dim": rope, "qk_nope_head_dim": nope, "v_head_dim": v, "max_position_embeddings": 4096,
           "topk_method": "noaux_tc", "num_nextn_predict_layers": 1, "tie_word_embeddings": False,
           "torch_dtype": "bfloat16",
           "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}}

    def layer(i, dense):
        p = f"model.layers.{i}"
        t = [(f"{p}.input_layernorm.weight", "BF16", (Hd,)), (f"{p}.post_attention_layernorm.weight", "BF16", (Hd,)),
             (f"{p}.self_attn.q_a_layernorm.weight", "BF16", (q_lora,)),
             (f"{p}.self_attn.kv_a_layernorm.weight", "BF16", (kv_lora,))]
        t += _fp8(f"{p}.self_attn.q_a_proj", q_lora, Hd) + _fp8(f"{p}.self_attn.q_b_proj", heads * (nope + rope), q_lora)
        t += _fp8(f"{p}.self_attn.kv_a_proj_with_mqa", kv_lora + rope, Hd)
        t += _fp8(f"{p}.self_attn.kv_b_proj", heads * (nope + v), kv_lora) + _fp8(f"{p}.self_attn.o_proj", Hd, heads * v)
        if dense:
            t += _fp8(f"{p}.mlp.gate_proj", inter, Hd) + _fp8(f"{p}.mlp.up_proj", inter, Hd)
            t += _fp8(f"{p}.mlp.down_proj", Hd, inter)
        else:
            t += [(f"{p}.mlp.gate.weight", "BF16", (E, Hd)), (f"{p}.mlp.gate.e_score_correction_bias", "F32", (E,))]
            for j in range(E):
                t += _fp8(f"{p}.mlp.experts.{j}.gate_proj", W, Hd) + _fp8(f"{p}.mlp.experts.{j}.up_proj", W, Hd)
                t += _fp8(f"{p}.mlp.experts.{j}.down_proj", Hd, W)
            t += _fp8(f"{p}.mlp.shared_experts.gate_proj", W, Hd) + _fp8(f"{p}.mlp.shared_experts.up_proj", W, Hd)
            t += _fp8(f"{p}.mlp.shared_experts.down_proj", Hd, W)
        return t

    tensors = [("model.embed_tokens.weight", "BF16", (vocab, Hd))] + layer(0, True) + layer(1, False)
    # The MTP layer (index = num_hidden_layers): a MoE decoder layer plus its own embedding,
    # enorm, hnorm, eh_proj [H, 2H], shared_head.norm and shared_head.head.
    mtp = f"model.layers.{layers}"
    tensors += layer(layers, False) + [
        (f"{mtp}.embed_tokens.weight", "BF16", (vocab, Hd)), (f"{mtp}.enorm.weight", "BF16", (Hd,)),
        (f"{mtp}.hnorm.weight", "BF16", (Hd,)), (f"{mtp}.shared_head.norm.weight", "BF16", (Hd,)),
        (f"{mtp}.shared_head.head.weight", "BF16", (vocab, Hd))] + _fp8(f"{mtp}.eh_proj", Hd, 2 * Hd)
    tensors += [("model.norm.weight", "BF16", (Hd,)), ("lm_head.weight", "BF16", (vocab, Hd))]
    folder = ck.write_folder(tmp_path / "DeepSeek-V3-tiny", cfg, ck.split(tensors, 3), None)
    r = api.size(str(folder), check=True)
    assert r.check.agree, [x for x in r.check.rows if not x.agrees]
    g = {x.name: x for x in r.groups}
    # Scales are bytes, not parameters: the expert group counts E x 3 x W x H weights per MoE layer.
    assert g["experts"].params == E * 3 * W * Hd
    assert g["experts"].bytes == E * (3 * W * Hd + 3 * 2 * 4 * 4)  # 2x4 tiles per [256, 512] matrix
    assert g["mtp"].params > 0 and not g["mtp"].resident
    assert set(g["attention"].formats) == {"fp8-block128", "bf16"}


def test_gemma3_multimodal_folder_keeps_the_vision_tower_apart(tmp_path):
    cfg = {"model_type": "gemma3", "torch_dtype": "bfloat16",
           "text_config": {"head_dim": 64, "hidden_size": 256, "intermediate_size": 512, "model_type": "gemma3_text",
                           "num_attention_heads": 4, "num_hidden_layers": 6, "num_key_value_heads": 2,
                           "sliding_window": 512, "vocab_size": 1000},
           "vision_config": {"hidden_size": 128}}
    tensors = [("language_model.model.embed_tokens.weight", "BF16", (1000, 256))]
    for i in range(6):
        p = f"language_model.model.layers.{i}"
        tensors += [(f"{p}.self_attn.q_proj.weight", "BF16", (256, 256)), (f"{p}.self_attn.k_proj.weight", "BF16",
                                                                           (128, 256)),
                    (f"{p}.self_attn.v_proj.weight", "BF16", (128, 256)), (f"{p}.self_attn.o_proj.weight", "BF16",
                                                                           (256, 256)),
                    (f"{p}.self_attn.q_norm.weight", "BF16", (64,)), (f"{p}.self_attn.k_norm.weight", "BF16", (64,)),
                    (f"{p}.mlp.gate_proj.weight", "BF16", (512, 256)), (f"{p}.mlp.up_proj.weight", "BF16", (512, 256)),
                    (f"{p}.mlp.down_proj.weight", "BF16", (256, 512))]
        tensors += [(f"{p}.{n}.weight", "BF16", (256,)) for n in ("input_layernorm", "post_attention_layernorm",
                                                                   "pre_feedforward_layernorm",
                                                                   "post_feedforward_layernorm")]
    tensors += [("language_model.model.norm.weight", "BF16", (256,)),
                ("vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight", "BF16", (128, 128)),
                ("multi_modal_projector.mm_input_projection_weight", "BF16", (128, 256))]
    folder = ck.write_folder(tmp_path / "gemma-3-tiny", cfg, {"model.safetensors": tensors}, None)
    r = api.size(str(folder), check=True)
    g = {x.name: x for x in r.groups}
    assert g["vision"].params == 128 * 128 + 128 * 256 and g["vision"].active_params == 0
    assert "lm_head" not in g  # tied
    assert r.check.agree, [x for x in r.check.rows if not x.agrees]


def test_layers_past_the_config_without_mtp_tensors_are_flagged(tmp_path):
    cfg = dict(ck.LLAMA_31_8B_CONFIG, num_hidden_layers=2, hidden_size=256, intermediate_size=512,
               num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
    tensors = ck.llama_tensors(layers=3, hidden=256, inter=512, heads=4, kv=2, vocab=100)
    folder = ck.write_folder(tmp_path / "m", cfg, {"model.safetensors": tensors}, None)
    r = api.size(str(folder))
    assert any("disagree" in w for w in r.warnings)
