"""GGUF files written with gguf's own writer (sparse data): exact bytes, architecture from keys, bad input.

Expected bytes are worked out by hand from the ggml block sizes (Q8_0: 34 B per 32 weights,
Q4_K: 144 B per 256, Q6_K: 210 B per 256, MXFP4: 17 B per 32, F32: 4 B per weight).
"""

import struct

import pytest

from fitcalc import api
from fitcalc.core.errors import FitcalcError
from fitcalc.edges.ingest import resolve_model
from tests.gguf_files import T, write_gguf

H, F, V, L = 256, 512, 1000, 2


def tiny_llama(path):
    keys = [("add_uint32", "llama.block_count", L), ("add_uint32", "llama.context_length", 4096),
            ("add_uint32", "llama.embedding_length", H), ("add_uint32", "llama.feed_forward_length", F),
            ("add_uint32", "llama.attention.head_count", 4), ("add_uint32", "llama.attention.head_count_kv", 2),
            ("add_float32", "llama.rope.freq_base", 500000.0), ("add_uint32", "general.file_type", 15),
            ("add_string", "general.name", "tiny"),
            ("add_array", "tokenizer.ggml.tokens", [f"t{i}" for i in range(V)])]  # a long array, skipped
    ts = [("token_embd.weight", (V, H), T.Q8_0)]
    for i in range(L):
        b = f"blk.{i}"
        ts += [(f"{b}.attn_norm.weight", (H,), T.F32), (f"{b}.attn_q.weight", (H, H), T.Q4_K),
               (f"{b}.attn_k.weight", (128, H), T.Q4_K), (f"{b}.attn_v.weight", (128, H), T.Q6_K),
               (f"{b}.attn_output.weight", (H, H), T.Q4_K), (f"{b}.ffn_norm.weight", (H,), T.F32),
               (f"{b}.ffn_gate.weight", (F, H), T.Q4_K), (f"{b}.ffn_up.weight", (F, H), T.Q4_K),
               (f"{b}.ffn_down.weight", (H, F), T.Q6_K)]
    ts += [("output_norm.weight", (H,), T.F32), ("output.weight", (V, H), T.Q6_K)]
    write_gguf(path, "llama", keys, ts)
    return path


def test_tiny_llama_gguf_exact_bytes_by_type(tmp_path):
    r = api.size(str(tiny_llama(tmp_path / "tiny-Q4_K_M.gguf")))
    g = {x.name: x for x in r.groups}
    assert g["embedding"].bytes == V * H // 32 * 34  # Q8_0
    attn = H * H // 256 * 144 + 128 * H // 256 * 144 + 128 * H // 256 * 210 + H * H // 256 * 144
    assert g["attention"].bytes == L * attn
    assert g["mlp"].bytes == L * (2 * F * H // 256 * 144 + H * F // 256 * 210)
    assert g["norms"].bytes == (2 * L + 1) * H * 4
    assert g["lm_head"].bytes == V * H // 256 * 210
    assert r.params_total == V * H * 2 + L * (2 * H * H + 2 * 128 * H + 3 * F * H + 2 * H) + H
    assert "GGUF tensor table" in r.exact_source


def test_tiny_llama_gguf_architecture_from_keys(tmp_path):
    spec = resolve_model(str(tiny_llama(tmp_path / "tiny.gguf")))
    a = spec.architecture
    assert (a.family, a.num_hidden_layers, a.hidden_size, a.num_attention_heads, a.num_key_value_heads) == \
        ("llama", 2, 256, 4, 2)
    assert a.head_dim_resolved == 64 and a.vocab_size == V and a.max_position_embeddings == 4096
    assert a.tie_word_embeddings is False and a.intermediate_size == F and a.rope_theta == 500000.0
    assert spec.native_recipe.display_name == "GGUF Q4_K_M"


def test_gguf_check_shows_where_the_mix_departs_from_one_type_per_group(tmp_path):
    r = api.size(str(tiny_llama(tmp_path / "tiny.gguf")), check=True)
    rows = {x.group: x for x in r.check.rows}
    assert all(x.params_diff == 0 for x in r.check.rows)  # same weights either way
    # attn_v and ffn_down are Q6_K in the file; the per-group recipe prices them as Q4_K.
    assert rows["attention"].bytes_diff == L * (128 * H // 256 * (210 - 144))
    assert rows["mlp"].bytes_diff == L * (H * F // 256 * (210 - 144))
    assert rows["embedding"].agrees and rows["lm_head"].agrees


def gpt_oss_20b_gguf(path):
    """gpt-oss-20b laid out as llama.cpp converts it: gate/up/down experts apart, MXFP4; Q8_0
    attention and embeddings; F32 norms, biases, sinks and router."""
    Hd, E, W, Vv, Ll = 2880, 32, 2880, 201088, 24
    keys = [("add_uint32", "gpt-oss.block_count", Ll), ("add_uint32", "gpt-oss.context_length", 131072),
            ("add_uint32", "gpt-oss.embedding_length", Hd), ("add_uint32", "gpt-oss.feed_forward_length", W),
            ("add_uint32", "gpt-oss.attention.head_count", 64), ("add_uint32", "gpt-oss.attention.head_count_kv", 8),
            ("add_uint32", "gpt-oss.attention.key_length", 64), ("add_uint32", "gpt-oss.attention.value_length", 64),
            ("add_uint32", "gpt-oss.attention.sliding_window", 128), ("add_uint32", "gpt-oss.expert_count", E),
            ("add_uint32", "gpt-oss.expert_used_count", 4), ("add_uint32", "gpt-oss.expert_feed_forward_length", W),
            ("add_float32", "gpt-oss.rope.freq_base", 150000.0), ("add_uint32", "gpt-oss.vocab_size", Vv),
            ("add_string", "gpt-oss.rope.scaling.type", "yarn"), ("add_float32", "gpt-oss.rope.scaling.factor", 32.0),
            ("add_uint32", "gpt-oss.rope.scaling.original_context_length", 4096)]
    ts = [("token_embd.weight", (Vv, Hd), T.Q8_0)]
    for i in range(Ll):
        b = f"blk.{i}"
        ts += [(f"{b}.attn_norm.weight", (Hd,), T.F32), (f"{b}.post_attention_norm.weight", (Hd,), T.F32),
               (f"{b}.attn_q.weight", (4096, Hd), T.Q8_0), (f"{b}.attn_q.bias", (4096,), T.F32),
               (f"{b}.attn_k.weight", (512, Hd), T.Q8_0), (f"{b}.attn_k.bias", (512,), T.F32),
               (f"{b}.attn_v.weight", (512, Hd), T.Q8_0), (f"{b}.attn_v.bias", (512,), T.F32),
               (f"{b}.attn_output.weight", (Hd, 4096), T.Q8_0), (f"{b}.attn_output.bias", (Hd,), T.F32),
               (f"{b}.attn_sinks.weight", (64,), T.F32),
               (f"{b}.ffn_gate_inp.weight", (E, Hd), T.F32), (f"{b}.ffn_gate_inp.bias", (E,), T.F32),
               (f"{b}.ffn_gate_exps.weight", (E, W, Hd), T.MXFP4), (f"{b}.ffn_gate_exps.bias", (E, W), T.F32),
               (f"{b}.ffn_up_exps.weight", (E, W, Hd), T.MXFP4), (f"{b}.ffn_up_exps.bias", (E, W), T.F32),
               (f"{b}.ffn_down_exps.weight", (E, Hd, W), T.MXFP4), (f"{b}.ffn_down_exps.bias", (E, Hd), T.F32)]
    ts += [("output_norm.weight", (Hd,), T.F32), ("output.weight", (Vv, Hd), T.Q8_0)]
    write_gguf(path, "gpt-oss", keys, ts)
    return path


def test_gpt_oss_20b_gguf_counts_the_same_weights_and_agrees_with_its_derivation(tmp_path):
    r = api.size(str(gpt_oss_20b_gguf(tmp_path / "gpt-oss-20b-mxfp4.gguf")), check=True)
    assert r.params_total == 20_914_757_184  # the same logical weights as the safetensors checkpoint
    Hd, E, W, Vv, Ll = 2880, 32, 2880, 201088, 24
    experts = Ll * (3 * E * W * Hd // 32 * 17 + E * (2 * W + Hd) * 4)
    attention = Ll * ((4096 + 2 * 512) * Hd // 32 * 34 + Hd * 4096 // 32 * 34 + (4096 + 2 * 512 + Hd + 64) * 4)
    g = {x.name: x for x in r.groups}
    assert g["experts"].bytes == experts and g["attention"].bytes == attention
    assert g["embedding"].bytes == g["lm_head"].bytes == Vv * Hd // 32 * 34
    assert r.check.agree, [x for x in r.check.rows if not x.agrees]


def test_gpt_oss_gguf_attention_layout_for_the_kv_cache(tmp_path):
    a = resolve_model(str(gpt_oss_20b_gguf(tmp_path / "g.gguf"))).architecture
    assert a.layer_kinds()[:4] == ["sliding_attention", "full_attention"] * 2  # llama.cpp set_swa_pattern(2)
    assert (a.sliding_window, a.head_dim, a.num_key_value_heads) == (128, 64, 8)
    assert a.attention_sinks and a.attention_bias and a.attention_out_bias
    assert a.moe.num_experts == 32 and a.moe.experts_per_token == 4 and a.moe.expert_bias and a.moe.router_bias
    assert a.rope_scaling.rope_type == "yarn" and a.rope_scaling.factor == 32.0


def test_deepseek2_gguf_mla_and_shared_experts(tmp_path):
    Hd, E, W, Ll, heads = 512, 8, 128, 3, 4
    q_lora, kv_lora, rope, nope, v = 256, 128, 64, 128, 128
    keys = [("add_uint32", "deepseek2.block_count", Ll), ("add_uint32", "deepseek2.context_length", 163840),
            ("add_uint32", "deepseek2.embedding_length", Hd), ("add_uint32", "deepseek2.feed_forward_length", 1024),
            ("add_uint32", "deepseek2.attention.head_count", heads),
            ("add_uint32", "deepseek2.attention.head_count_kv", heads),
            ("add_uint32", "deepseek2.attention.key_length", nope + rope),
            ("add_uint32", "deepseek2.attention.value_length", v),
            ("add_uint32", "deepseek2.attention.q_lora_rank", q_lora),
            ("add_uint32", "deepseek2.attention.kv_lora_rank", kv_lora),
            ("add_uint32", "deepseek2.rope.dimension_count", rope), ("add_uint32", "deepseek2.expert_count", E),
            ("add_uint32", "deepseek2.expert_used_count", 2), ("add_uint32", "deepseek2.expert_shared_count", 1),
            ("add_uint32", "deepseek2.expert_feed_forward_length", W),
            ("add_uint32", "deepseek2.leading_dense_block_count", 1), ("add_uint32", "deepseek2.vocab_size", 1000)]
    ts = [("token_embd.weight", (1000, Hd), T.F16)]
    for i in range(Ll):
        b = f"blk.{i}"
        ts += [(f"{b}.attn_norm.weight", (Hd,), T.F32), (f"{b}.ffn_norm.weight", (Hd,), T.F32),
               (f"{b}.attn_q_a.weight", (q_lora, Hd), T.F16), (f"{b}.attn_q_a_norm.weight", (q_lora,), T.F32),
               (f"{b}.attn_q_b.weight", (heads * (nope + rope), q_lora), T.F16),
               (f"{b}.attn_kv_a_mqa.weight", (kv_lora + rope, Hd), T.F16),
               (f"{b}.attn_kv_a_norm.weight", (kv_lora,), T.F32),
               (f"{b}.attn_kv_b.weight", (heads * (nope + v), kv_lora), T.F16),
               (f"{b}.attn_output.weight", (Hd, heads * v), T.F16)]
        if i == 0:
            ts += [(f"{b}.ffn_gate.weight", (1024, Hd), T.F16), (f"{b}.ffn_up.weight", (1024, Hd), T.F16),
                   (f"{b}.ffn_down.weight", (Hd, 1024), T.F16)]
        else:
            ts += [(f"{b}.ffn_gate_inp.weight", (E, Hd), T.F32), (f"{b}.exp_probs_b.bias", (E,), T.F32),
                   (f"{b}.ffn_gate_exps.weight", (E, W, Hd), T.F16), (f"{b}.ffn_up_exps.weight", (E, W, Hd), T.F16),
                   (f"{b}.ffn_down_exps.weight", (E, Hd, W), T.F16),
                   (f"{b}.ffn_gate_shexp.weight", (W, Hd), T.F16), (f"{b}.ffn_up_shexp.weight", (W, Hd), T.F16),
                   (f"{b}.ffn_down_shexp.weight", (Hd, W), T.F16)]
    ts += [("output_norm.weight", (Hd,), T.F32), ("output.weight", (1000, Hd), T.F16)]
    path = tmp_path / "ds.gguf"
    write_gguf(path, "deepseek2", keys, ts)
    spec = resolve_model(str(path))
    a = spec.architecture
    assert a.mla.kv_lora_rank == kv_lora and a.mla.qk_rope_head_dim == rope and a.mla.qk_nope_head_dim == nope
    assert a.mla.q_lora_rank == q_lora and a.mla.v_head_dim == v
    assert a.moe.num_shared_experts == 1 and a.moe.dense_layers == [0] and a.moe.score_correction_bias
    r = api.size(str(path), check=True)
    assert all(x.params_diff == 0 for x in r.check.rows), r.check.rows


# --- bad input ---------------------------------------------------------------------------------


def _gguf_bytes(version=3, magic=b"GGUF", n_tensors=0, n_kv=0) -> bytes:
    return magic + struct.pack("<IQQ", version, n_tensors, n_kv)


@pytest.mark.parametrize("content,words", [
    (b"GGML" + b"\0" * 60, "bad magic"),
    (_gguf_bytes(version=1), "version 1"),
    (_gguf_bytes(version=99), "version 99"),
    (b"GG", "bad magic"),
    (_gguf_bytes(n_kv=10**12), "past the end"),  # counts that cannot fit are refused before any loop
    (_gguf_bytes(n_kv=1) + struct.pack("<Q", 5) + b"ab", "truncated"),
])
def test_bad_gguf_one_line_exit_1(content, words, tmp_path, runner, app):
    f = tmp_path / "bad.gguf"
    f.write_bytes(content)
    r = runner.invoke(app, ["size", str(f)])
    assert r.exit_code == 1, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in r.output


def test_gguf_tensor_past_the_end_of_the_file(tmp_path, runner, app):
    f = tiny_llama(tmp_path / "cut.gguf")
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - 1000])
    r = runner.invoke(app, ["size", str(f)])
    assert r.exit_code == 1 and "past the end of the file" in r.stderr


def test_long_vocabulary_is_skipped_quickly(tmp_path):
    import time

    keys = [("add_uint32", "llama.block_count", 1), ("add_uint32", "llama.context_length", 4096),
            ("add_uint32", "llama.embedding_length", 256), ("add_uint32", "llama.feed_forward_length", 512),
            ("add_uint32", "llama.attention.head_count", 4),
            ("add_array", "tokenizer.ggml.tokens", [f"token{i}" for i in range(150_000)]),
            ("add_array", "tokenizer.ggml.scores", [0.0] * 150_000)]
    ts = [("token_embd.weight", (150_000, 256), T.F16), ("blk.0.attn_q.weight", (256, 256), T.F16),
          ("blk.0.attn_k.weight", (256, 256), T.F16), ("blk.0.attn_v.weight", (256, 256), T.F16),
          ("blk.0.attn_output.weight", (256, 256), T.F16), ("blk.0.ffn_up.weight", (512, 256), T.F16),
          ("blk.0.ffn_gate.weight", (512, 256), T.F16), ("blk.0.ffn_down.weight", (256, 512), T.F16)]
    f = tmp_path / "vocab.gguf"
    write_gguf(f, "llama", keys, ts)
    t = time.perf_counter()
    spec = resolve_model(str(f))
    assert time.perf_counter() - t < 1.0
    assert spec.architecture.vocab_size == 150_000  # from the token list's length


def test_qwen3next_gguf_hybrid_layers_for_the_kv_cache(tmp_path):
    # Gated DeltaNet blocks (ssm_*) with full attention every 4th block, as llama.cpp converts Qwen3-Next.
    Hd, Ll, heads, kvh, hd, E, W = 256, 4, 4, 2, 64, 8, 64
    nk, nv, dk, dv, K = 2, 4, 32, 32, 4
    keys = [("add_uint32", "qwen3next.block_count", Ll), ("add_uint32", "qwen3next.context_length", 262144),
            ("add_uint32", "qwen3next.embedding_length", Hd), ("add_uint32", "qwen3next.feed_forward_length", 512),
            ("add_uint32", "qwen3next.attention.head_count", heads),
            ("add_uint32", "qwen3next.attention.head_count_kv", kvh),
            ("add_uint32", "qwen3next.attention.key_length", hd), ("add_uint32", "qwen3next.expert_count", E),
            ("add_uint32", "qwen3next.expert_used_count", 2), ("add_uint32", "qwen3next.expert_feed_forward_length", W),
            ("add_uint32", "qwen3next.expert_shared_feed_forward_length", W),
            ("add_uint32", "qwen3next.ssm.conv_kernel", K), ("add_uint32", "qwen3next.ssm.state_size", dk),
            ("add_uint32", "qwen3next.ssm.group_count", nk), ("add_uint32", "qwen3next.ssm.time_step_rank", nv),
            ("add_uint32", "qwen3next.ssm.inner_size", nv * dv), ("add_uint32", "qwen3next.vocab_size", 1000),
            ("add_uint32", "qwen3next.full_attention_interval", 4)]
    ts = [("token_embd.weight", (1000, Hd), T.BF16)]
    conv = 2 * nk * dk + nv * dv
    for i in range(Ll):
        b = f"blk.{i}"
        ts += [(f"{b}.attn_norm.weight", (Hd,), T.F32), (f"{b}.post_attention_norm.weight", (Hd,), T.F32)]
        if (i + 1) % 4:
            ts += [(f"{b}.ssm_in.weight", (2 * nk * dk + 2 * nv * dv, Hd), T.BF16),
                   (f"{b}.ssm_ba.weight", (2 * nv, Hd), T.BF16), (f"{b}.ssm_conv1d.weight", (conv, K), T.F32),
                   (f"{b}.ssm_dt.bias", (nv,), T.F32), (f"{b}.ssm_a", (nv,), T.F32),
                   (f"{b}.ssm_norm.weight", (dv,), T.F32), (f"{b}.ssm_out.weight", (Hd, nv * dv), T.BF16)]
        else:
            ts += [(f"{b}.attn_q.weight", (2 * heads * hd, Hd), T.BF16), (f"{b}.attn_k.weight", (kvh * hd, Hd), T.BF16),
                   (f"{b}.attn_v.weight", (kvh * hd, Hd), T.BF16), (f"{b}.attn_output.weight", (Hd, heads * hd), T.BF16),
                   (f"{b}.attn_q_norm.weight", (hd,), T.F32), (f"{b}.attn_k_norm.weight", (hd,), T.F32)]
        ts += [(f"{b}.ffn_gate_inp.weight", (E, Hd), T.F32), (f"{b}.ffn_gate_exps.weight", (E, W, Hd), T.BF16),
               (f"{b}.ffn_up_exps.weight", (E, W, Hd), T.BF16), (f"{b}.ffn_down_exps.weight", (E, Hd, W), T.BF16),
               (f"{b}.ffn_gate_inp_shexp.weight", (Hd,), T.F32), (f"{b}.ffn_gate_shexp.weight", (W, Hd), T.BF16),
               (f"{b}.ffn_up_shexp.weight", (W, Hd), T.BF16), (f"{b}.ffn_down_shexp.weight", (Hd, W), T.BF16)]
    ts += [("output_norm.weight", (Hd,), T.F32), ("output.weight", (1000, Hd), T.BF16)]
    path = tmp_path / "qwen3next.gguf"
    write_gguf(path, "qwen3next", keys, ts)
    a = resolve_model(str(path)).architecture
    assert a.layer_kinds() == ["linear_attention"] * 3 + ["full_attention"]
    la = a.linear_attention
    assert (la.num_key_heads, la.num_value_heads, la.key_head_dim, la.value_head_dim, la.conv_kernel_size) == \
        (nk, nv, dk, dv, K)
    assert a.attention_output_gate and a.qk_norm and a.moe.shared_width == W and a.moe.shared_expert_gate
    r = api.size(str(path), check=True)
    assert all(x.params_diff == 0 for x in r.check.rows), [x for x in r.check.rows if x.params_diff]


def test_split_gguf_reads_every_part(tmp_path):
    # gguf-split layout: part 1 holds the metadata and some tensors, part 2 the rest; both carry
    # split.no / split.count / split.tensors.count.
    common = [("add_uint16", "split.count", 2), ("add_int32", "split.tensors.count", 21)]
    keys = [("add_uint32", "llama.block_count", L), ("add_uint32", "llama.context_length", 4096),
            ("add_uint32", "llama.embedding_length", H), ("add_uint32", "llama.feed_forward_length", F),
            ("add_uint32", "llama.attention.head_count", 4), ("add_uint32", "llama.attention.head_count_kv", 2),
            ("add_uint32", "llama.vocab_size", V), ("add_uint16", "split.no", 0)] + common
    first = [("token_embd.weight", (V, H), T.Q8_0)]
    rest = []
    for i in range(L):
        b = f"blk.{i}"
        (first if i == 0 else rest).extend([
            (f"{b}.attn_norm.weight", (H,), T.F32), (f"{b}.attn_q.weight", (H, H), T.Q8_0),
            (f"{b}.attn_k.weight", (128, H), T.Q8_0), (f"{b}.attn_v.weight", (128, H), T.Q8_0),
            (f"{b}.attn_output.weight", (H, H), T.Q8_0), (f"{b}.ffn_norm.weight", (H,), T.F32),
            (f"{b}.ffn_gate.weight", (F, H), T.Q8_0), (f"{b}.ffn_up.weight", (F, H), T.Q8_0),
            (f"{b}.ffn_down.weight", (H, F), T.Q8_0)])
    rest += [("output_norm.weight", (H,), T.F32), ("output.weight", (V, H), T.Q8_0)]
    write_gguf(tmp_path / "m-00001-of-00002.gguf", "llama", keys, first)
    write_gguf(tmp_path / "m-00002-of-00002.gguf", "llama", [("add_uint16", "split.no", 1)] + common, rest)
    for part in ("m-00001-of-00002.gguf", "m-00002-of-00002.gguf"):  # either part names the whole model
        r = api.size(str(tmp_path / part))
        matrices = V * H * 2 + L * (2 * H * H + 2 * 128 * H + 3 * F * H)
        assert r.disk_bytes == matrices // 32 * 34 + (2 * L + 1) * H * 4
    (tmp_path / "m-00002-of-00002.gguf").unlink()
    with pytest.raises(FitcalcError, match="missing"):
        api.size(str(tmp_path / "m-00001-of-00002.gguf"))
