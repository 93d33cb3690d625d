"""Logged figures against fitcalc's predictions: placement rules and residuals.

Expected predictions come from hand arithmetic in the comments; logged values are the real
figures of ../shared/reference/engine-logs.yaml (sources in tests/reconcile/logs.py), compared
with a stated tolerance where fitcalc's term is a heuristic.
"""

from fractions import Fraction

import pytest

from fitcalc import api
from fitcalc.core.estimate.weights import layer_table, weights_breakdown
from fitcalc.core.recipes import resolve_recipe
from fitcalc.core.reconcile.compare import llama_split
from fitcalc.core.spec import Device
from fitcalc.edges.catalog import load_engine, load_model
from tests.archs import llama_3_1_8b
from tests.reconcile import logs

GiB, MiB = 2**30, 2**20
LLAMA_8B_PARAMS = 8_030_261_248  # tests/estimate/test_engine_logs.py: by hand from config.json

# Llama-3.1-8B Q4_K_M by hand (Q4_K: 144 B per 256 weights, Q6_K: 210 B per 256; F32 norms):
TOKEN_EMBD = 128256 * 4096 // 256 * 144  # 295,501,824: token_embd in Q4_K
OUTPUT = 128256 * 4096 // 256 * 210  # 430,940,160: output.weight in Q6_K
OUTPUT_NORM = 4096 * 4  # 16,384
# A use_more_bits layer (i < n/8, i >= 7n/8, every third between; llama-quant.cpp): attn_v and
# ffn_down in Q6_K, q/k/o/gate/up in Q4_K, two F32 norms.
MORE_BITS_LAYER = (4096 * 4096 // 256 * 144 * 2  # q, o
                   + 1024 * 4096 // 256 * 144  # k
                   + 1024 * 4096 // 256 * 210  # v (Q6_K)
                   + 14336 * 4096 // 256 * 144 * 2  # gate, up
                   + 4096 * 14336 // 256 * 210  # down (Q6_K)
                   + 2 * 4096 * 4)  # = 138,936,320


def test_hand_sizes():
    assert (TOKEN_EMBD, OUTPUT, MORE_BITS_LAYER) == (295_501_824, 430_940_160, 138_936_320)


def layer_bytes(t, group, layer):
    return sum(t.per_layer[group][layer].values())


def test_layer_table_matches_the_hand_sizes():
    t = layer_table(llama_3_1_8b(), resolve_recipe(llama_3_1_8b(), "q4_k_m"))
    assert sum(t.outside["embedding"].values()) == TOKEN_EMBD
    assert sum(layer_bytes(t, g, 0) for g in ("attention", "mlp", "norms")) == MORE_BITS_LAYER  # layer 0: more bits


@pytest.mark.parametrize("ngl,cpu", [
    (33, TOKEN_EMBD),  # everything offloaded: only the input layer stays on the CPU
    (32, TOKEN_EMBD + OUTPUT + OUTPUT_NORM),  # all repeating layers, the output layer not
    (29, TOKEN_EMBD + OUTPUT + OUTPUT_NORM + 3 * MORE_BITS_LAYER),  # layers 0-2 (more-bits ones) on the CPU
])
def test_llama_cpp_placement(ngl, cpu):
    m = llama_3_1_8b()
    total = weights_breakdown(m, resolve_recipe(m, "q4_k_m")).resident_bytes
    s = llama_split(m, "q4_k_m", ngl, 0, load_engine("llama.cpp"))
    assert s.cpu_weights == cpu
    assert s.gpu_weights == total - cpu


def test_n_cpu_moe_keeps_routed_experts_on_the_cpu():
    m = load_model("gpt-oss-20b")
    t = layer_table(m, resolve_recipe(m, "mxfp4_moe"))
    llama = load_engine("llama.cpp")
    embd = sum(t.outside["embedding"].values())
    s = llama_split(m, "mxfp4_moe", 25, 99, llama)
    # GPU: everything but the embedding and the routed experts (routers stay: ffn_gate_inp)
    assert s.cpu_weights == embd + sum(layer_bytes(t, "experts", i) for i in range(24))
    half = llama_split(m, "mxfp4_moe", 25, 12, llama)
    assert half.cpu_weights == embd + sum(layer_bytes(t, "experts", i) for i in range(12))


def rows_by(result):
    return {(r.label, r.device): r for r in result.rows}


def test_gpt_oss_llama_server_residuals(write_log):
    # ik_llama.cpp#822, llama-server b6699, -ngl 99 --n-cpu-moe 99 -c 131072 -fa on (not in the log:
    # --n-cpu-moe comes from the command line)
    r = api.reconcile(write_log(logs.LLAMA_GPT_OSS), overrides={"n_cpu_moe": "99"})
    assert (r.engine, r.model, r.recipe, r.context, r.batch) == ("llama.cpp", "gpt-oss-20b", "mxfp4_moe", 131072, 1)
    rows = rows_by(r)
    # KV by hand: 131,072 cells × 12 full layers × (2 × 8 × 64 × 2 B) = 3072 MiB;
    # SWA: pad(128 + 512, 256) = 768 cells × 12 × 2048 B = 18 MiB
    full = rows[("KV cache, full-attention layers", "CUDA0")]
    swa = rows[("KV cache, sliding-window layers", "CUDA0")]
    assert full.predicted_bytes == 131072 * 12 * 2048 == full.logged_bytes and full.id == "kv.full"
    assert swa.predicted_bytes == 768 * 12 * 2048 == swa.logged_bytes and swa.id == "kv.sliding"
    # output buffer: 1 sequence × 201,088 vocab × 4 B = 804,352 B; logged "0.77 MiB" (± 0.005 MiB)
    out = rows[("output buffer (logits)", "CUDA_Host")]
    assert out.predicted_bytes == 201088 * 4 and out.within_rounding
    # CUDA0 weights: everything but the embedding and the routed experts, against the logged
    # 1242.03 MiB: within 0.01%
    w = rows[("model weights", "CUDA0")]
    assert w.logged_bytes == round(Fraction("1242.03") * MiB)
    assert abs(w.diff_pct) < 0.01 and w.calibratable
    # CPU_Mapped is the mapped file span, not the CPU tensors: reported, never calibrated
    cpu = rows[("model weights", "CPU_Mapped")]
    assert not cpu.calibratable and "get_mapping_range" in cpu.note
    assert cpu.predicted_bytes < cpu.logged_bytes
    # the compute buffer is a heuristic term with a 30% band (estimate/activations.py)
    cb = rows[("compute buffer", "CUDA0")]
    assert cb.id == "act.compute_buffer" and abs(cb.diff_pct) <= 30
    # the host compute buffer: act.host_compute, whose factor was fitted on this very log (263.15 MiB), so it
    # must come back within a few percent and is not kept as calibration
    host = rows[("compute buffer (host)", "CUDA_Host")]
    assert host.id == "act.host_compute" and not host.calibratable and abs(host.diff_pct) < 5
    # the row arithmetic: diff = predicted − logged, pct = diff / logged
    assert cb.diff == cb.predicted_bytes - cb.logged_bytes
    assert cb.diff_pct == pytest.approx(cb.diff / cb.logged_bytes * 100)


def test_partial_offload_kv_split_by_layers(write_log, llama_spec):
    r = api.reconcile(write_log(logs.LLAMA_OLD_PARTIAL), model=llama_spec)
    rows = rows_by(r)
    # 4096 cells × 4096 B (K+V of one layer in f16) = 16 MiB per layer: 29 layers on CUDA0, 3 on the CPU
    assert rows[("KV cache", "CUDA0")].predicted_bytes == 29 * 16 * MiB
    assert rows[("KV cache", "CPU")].predicted_bytes == 3 * 16 * MiB
    assert rows[("model weights", "CPU")].predicted_bytes == TOKEN_EMBD + OUTPUT + OUTPUT_NORM + 3 * MORE_BITS_LAYER
    assert any("n_seq_max" in a for a in r.assumptions)  # not in this log: 1 was assumed, and said


def test_ollama_runner_residuals(write_log, llama_spec):
    # MagicWand18/Securetag-AI-Agent logcompleto.md: Ollama 0.5.4, Q4_K_M, --ctx-size 8192 --parallel 4
    r = api.reconcile(write_log(logs.OLLAMA_RUNNER), model=llama_spec)
    assert (r.engine, r.recipe, r.context, r.batch) == ("ollama", "q4_k_m", 2048, 4)
    rows = rows_by(r)
    cpu = rows[("model weights", "CPU")]
    assert cpu.predicted_bytes == TOKEN_EMBD and cpu.within_rounding  # logged 281.81 MiB
    gpu = rows[("model weights", "CUDA0")]
    assert gpu.within_rounding and abs(gpu.diff) <= 5243  # logged 4403.49 MiB, ± 0.005 MiB
    # 8192 cells × 32 layers × 4096 B = 1 GiB
    assert rows[("KV cache", "CUDA0")].predicted_bytes == 8192 * 32 * 4096 == GiB
    # Ollama's runner makes every context with embeddings: 4 × (128,256 + 4,096) × 4 B = 2,117,632 B
    out = rows[("output buffer (logits)", "CUDA_Host")]
    assert out.predicted_bytes == 4 * (128256 + 4096) * 4 and out.within_rounding
    # without flash attention the compute buffer holds the scores: 30% band as in test_engine_logs
    assert abs(rows[("compute buffer", "CUDA0")].diff_pct) <= 30
    lora = rows[("LoRA adapter buffer", "CUDA0")]
    assert lora.id is None and lora.predicted_bytes is None and lora.logged_bytes == 160 * MiB
    est = rows[("Ollama's estimate: KV cache", None)]
    assert est.engine_estimate and not est.calibratable


def test_ollama_go_engine_rows_within_humanbytes_rounding(write_log, llama_spec):
    path = write_log(logs.OLLAMA_ENGINE)
    # No file type line: with --model, the GGUF type whose weights match the logged buffers
    # (4.3 GiB + 281.8 MiB of a Q4_K_M Llama-3.1-8B) is taken, and the result says so (issue #15).
    guessed = api.reconcile(path, model=llama_spec)
    assert guessed.recipe == "q4_k_m"
    assert any(a.startswith("GGUF file type not printed: q4_k_m") for a in guessed.assumptions)
    r = api.reconcile(path, model=llama_spec, overrides={"recipe": "q4_k_m"})
    rows = rows_by(r)
    for key in (("model weights", "CUDA0"), ("model weights", "CPU"), ("KV cache", "CUDA0")):
        assert rows[key].within_rounding, rows[key]  # HumanBytes2 prints one decimal: ± 0.05 of the unit


def test_vllm_v1_a100_residuals(write_log, llama_spec):
    # ilseokoh/vllm-gce: vLLM 0.15.1, A100 40GB (40960 MiB, modal-client#2797), enforce_eager
    a100 = Device(label="A100 40GB", memory_bytes=40960 * MiB, family="ampere")
    r = api.reconcile(write_log(logs.VLLM_V1_A100), model=llama_spec, device=a100)
    rows = {r_.id: r_ for r_ in r.rows}
    w = rows["weights.*"]
    assert w.predicted_bytes == LLAMA_8B_PARAMS * 2
    assert w.logged_bytes == round(Fraction("14.99") * GiB)
    assert w.diff == LLAMA_8B_PARAMS * 2 - round(Fraction("14.99") * GiB)
    # derived capacity rows: not calibration; within 5% as in tests/estimate/test_engine_logs.py
    cap, tok = rows["kv_capacity_bytes"], rows["kv_capacity_tokens"]
    assert not cap.calibratable and not tok.calibratable
    assert abs(cap.diff_pct) < 5 and abs(tok.diff_pct) < 5
    assert tok.predicted_tokens == cap.predicted_bytes // 131072  # 2 × 32 × 8 × 128 × 2 B per token
    assert r.settings["enforce_eager"] is True and r.settings["max_num_batched_tokens"] == 8192


def test_vllm_v0_uses_the_logged_total_and_reads_gb_as_gib(write_log, llama_spec):
    r = api.reconcile(write_log(logs.VLLM_V0_PAIRS), model=llama_spec)
    assert "79.10 GiB total, from the log" in r.device
    rows = {r_.id: r_ for r_ in r.rows}
    w = rows["weights.*"]
    assert w.logged_bytes == 16_094_101_452  # 14.9888 × 2^30; as 10^9 it would be 14,988,800,000
    assert w.predicted_bytes == LLAMA_8B_PARAMS * 2
    assert rows["act.*"].note.startswith("derived")
    assert not rows["weights.*+act.*"].calibratable
    assert any("V0" in a for a in r.assumptions)


def test_wrong_model_is_flagged(write_log, llama_spec):
    r = api.reconcile(write_log(logs.LLAMA_GPT_OSS), model=llama_spec)
    assert any("n_layer = 24" in w and "32" in w for w in r.warnings)


def test_engine_profiles_load():
    for e in ("vllm", "llama.cpp", "ollama"):
        assert load_engine(e).id == e


def test_cpu_only_run_prices_the_whole_graph_on_the_host():
    # benchmarks/reference_logs ollama-0.13-windows-cpu-llama-3-8b-q4_0.log (engine-logs branch): Llama-3-8B Q4_0,
    # n_ctx 4096, n_ubatch 512, no GPU layer: "CPU compute buffer size = 258.50 MiB". The whole worst-case graph
    # runs on the CPU: mask 512 x 4096 x 2 B (4 MiB) + max(layer 512 x (3 x 4096 + 3 x 14336) x 4 B, logits
    # 512 x 128,256 x 4 B = 250.5 MiB) + 4 MiB = 258.5 MiB.
    from fitcalc.core.estimate.footprint import host_drafts
    from fitcalc.core.estimate.placement import Layout, assign
    from fitcalc.edges.catalog import load_engine, load_model
    from fitcalc.core.estimate import prepare
    from fitcalc.core.spec import Workload

    e = load_engine("ollama")
    m = load_model("llama-3.1-8b")
    placed = assign(m.architecture, e, Layout(gpu_layers=0, cpu_moe=0), [1])
    p = prepare(m, "q4_0", e)
    (n,) = [d[1] for d in host_drafts(p, placed.host, Workload(context=4096, chunk_tokens=512)) if d[0] == "act.host_compute"]
    assert n == 512 * 4096 * 2 + 512 * 128256 * 4 + 4 * 2**20
