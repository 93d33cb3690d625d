"""Each engine format read into exact figures and settings (tests/reconcile/logs.py holds the logs)."""

from fractions import Fraction

import pytest

from fitcalc.core.reconcile.parsers import amount, parse_lines
from tests.reconcile import logs

GiB, MiB = 2**30, 2**20


def fig(parsed, what, device=None, cache=None, estimate=False):
    found = [f for f in parsed.figures if f.what == what and f.device == device and f.cache == cache
             and f.engine_estimate == estimate]
    assert len(found) == 1, (what, device, cache, [(f.what, f.device, f.cache) for f in parsed.figures])
    return found[0]


def exact(text: str, unit: int) -> int:
    return round(Fraction(text) * unit)


@pytest.mark.parametrize("text,unit,value,resolution", [
    ("14.9888", GiB, 16_094_101_452, 53_687),  # 14.9888 × 2^30 = 16,094,101,452.3; ± 0.00005 GiB
    ("19.28", GiB, 20_701_742_367, 5_368_709),  # ± 0.005 GiB
    ("1242.03", MiB, 1_302_362_849, 5_243),  # 1242.03 × 2^20 = 1,302,362,849.3; ± 0.005 MiB
    ("560.0", MiB, 587_202_560, 52_429),  # Ollama's %.1f: ± 0.05 MiB
    ("157,936", 1, 157_936, 0),
])
def test_amount_is_exact_with_its_rounding(text, unit, value, resolution):
    assert amount(text, unit) == (value, resolution)


def test_vllm_v1():
    p = parse_lines(logs.VLLM_V1.splitlines(keepends=True))
    assert p.engine == "vllm" and p.vllm_generation == "v1"
    assert (p.version, p.version_family, p.version_inferred) == ("0.11.0", "0.11", False)
    st = p.settings
    assert (st.model, st.context, st.chunk, st.tp, st.gpu_memory_utilization) == (
        "meta-llama/Llama-3.1-8B-Instruct", 32768, 8192, 1, 0.92)
    assert st.enforce_eager is False and st.kv_dtype == "auto" and st.dtype == "bfloat16"
    assert fig(p, "weights").value == exact("14.9596", GiB)
    assert fig(p, "kv_capacity").value == exact("53.17", GiB)
    assert fig(p, "kv_capacity_tokens").value == 435_584
    assert fig(p, "cuda_graphs").value == exact("0.52", GiB)


def test_vllm_v0_one_line_profile_and_gb_that_is_gib():
    p = parse_lines(logs.VLLM_V0_PAIRS.splitlines(keepends=True))
    assert p.engine == "vllm" and p.vllm_generation == "v0"
    assert (p.version, p.version_family) == ("0.6.4.post1", "0.6")
    w = fig(p, "weights")
    # model_runner.py divides by float(2**30) and labels it "GB": read as GiB, not 10^9
    assert w.value == exact("14.9888", GiB) == 16_094_101_452
    assert w.value != 14_988_800_000
    assert p.settings.gpu_total_bytes == exact("79.10", GiB)
    assert p.settings.gpu_memory_utilization == 0.90
    assert fig(p, "torch_peak").value == exact("16.20", GiB)
    assert fig(p, "non_torch").value == exact("0.40", GiB)
    assert fig(p, "kv_capacity").value == exact("54.59", GiB)
    assert fig(p, "kv_capacity_tokens").value == 27950 * 16  # blocks × vLLM's default block of 16
    # 0.6.4 prints the torch peak with the weights in it: activation = peak − weights
    assert fig(p, "act_peak").value == exact("16.20", GiB) - exact("14.9888", GiB)
    assert p.settings.context == 8192


def test_vllm_v0_profile_one_value_per_line():
    p = parse_lines(logs.VLLM_V0_LINES.splitlines(keepends=True))
    assert p.engine == "vllm" and p.vllm_generation == "v0"
    assert (p.version_family, p.version_inferred) == ("0.6", True)
    assert p.settings.gpu_total_bytes == exact("79.22", GiB) and p.settings.gpu_memory_utilization == 0.90
    # two weights lines: the finer print (14.9595, 4 decimals) wins over "14.96GiB"
    assert fig(p, "weights").value == exact("14.9595", GiB)
    assert fig(p, "non_torch").value == exact("1.79", GiB)
    assert fig(p, "act_peak").value == exact("1.26", GiB)
    assert fig(p, "kv_capacity").value == exact("53.29", GiB)
    assert fig(p, "kv_capacity_tokens").value == 27284 * 16


def test_vllm_v0_sentence_with_colour_codes():
    p = parse_lines(logs.VLLM_V0_SENTENCE.splitlines(keepends=True))
    assert p.engine == "vllm" and p.vllm_generation == "v0"
    assert (p.version_family, p.version_inferred) == ("0.7", True)
    assert p.settings.gpu_total_bytes == exact("23.65", GiB) and p.settings.gpu_memory_utilization == 0.95
    assert fig(p, "weights").value == exact("7.5552", GiB)
    assert fig(p, "non_torch").value == exact("0.04", GiB)
    assert fig(p, "act_peak").value == exact("0.74", GiB)
    assert fig(p, "kv_capacity").value == exact("14.13", GiB)
    assert fig(p, "kv_capacity_tokens").value == 6430 * 16
    assert fig(p, "cuda_graphs").value == exact("0.58", GiB)
    assert p.settings.context == 10000


def test_llama_cpp_iswa_build_6699():
    p = parse_lines(logs.LLAMA_GPT_OSS.splitlines(keepends=True))
    assert p.engine == "llama.cpp"
    assert (p.version, p.version_family) == ("b6699 (c08002a1)", "b6xxx")
    st = p.settings
    assert (st.file_type, st.gguf_name, st.model_path) == ("MXFP4 MoE", "Gpt Oss 20b", "gpt-oss-20b-mxfp4.gguf")
    assert (st.n_ctx, st.context, st.n_seq_max, st.n_ubatch, st.n_gpu_layers) == (131072, 131072, 1, 512, 25)
    assert st.flash_attn is True and st.mmap is True and st.kv_dtype == "f16"
    assert st.kv_cells == {"full": 131072, "swa": 768}
    assert (st.n_layer, st.n_embd, st.n_head_kv, st.n_vocab, st.n_swa) == (24, 2880, 8, 201088, 128)
    assert st.gpu_name == "NVIDIA GeForce RTX 3070" and st.gpu_free_bytes == 7672 * MiB
    assert fig(p, "weights", "CUDA0").value == exact("1242.03", MiB)
    assert fig(p, "weights", "CPU_Mapped").value == exact("10949.33", MiB)
    assert fig(p, "kv", "CUDA0", "full").value == 3072 * MiB
    assert fig(p, "kv", "CUDA0", "swa").value == 18 * MiB
    assert fig(p, "compute_buffer", "CUDA0").value == exact("456.98", MiB)
    assert fig(p, "compute_buffer", "CUDA_Host").value == exact("263.15", MiB)
    assert fig(p, "output_buffer", "CUDA_Host").value == exact("0.77", MiB)
    assert fig(p, "file_size").value == exact("11.27", GiB)
    # the per-cache totals are covered by the buffer lines: no double count
    assert not [f for f in p.figures if f.what == "kv" and f.device is None]


def test_llama_cpp_2024_format_partial_offload():
    p = parse_lines(logs.LLAMA_OLD_PARTIAL.splitlines(keepends=True))
    assert p.engine == "llama.cpp" and p.version is None
    st = p.settings
    assert (st.n_ctx, st.n_gpu_layers, st.n_ubatch, st.flash_attn, st.kv_dtype) == (4096, 29, 512, False, "f16")
    assert fig(p, "weights", "CPU").value == 1100 * MiB
    assert fig(p, "weights", "CUDA0").value == 3590 * MiB
    assert fig(p, "kv", "CUDA0").value == 464 * MiB
    assert fig(p, "kv", "CPU").value == 48 * MiB


def test_ollama_llama_runner():
    p = parse_lines(logs.OLLAMA_RUNNER.splitlines(keepends=True))
    assert p.engine == "ollama"
    assert (p.version, p.version_family) == ("0.5.4-0-g2ddc32d-dirty", "0.5")
    st = p.settings
    # the runner's command line and llama.cpp's context lines agree; the later vocabulary-only
    # load ("model ftype = all F32") does not overwrite the file type
    assert (st.n_ctx, st.n_seq_max, st.n_ubatch, st.n_gpu_layers, st.flash_attn) == (8192, 4, 512, 33, False)
    assert st.file_type == "Q4_K - Medium" and st.gguf_name == "Meta Llama 3.1 8B Instruct"
    assert st.gpu_name == "NVIDIA GeForce RTX 4090"
    assert fig(p, "weights", "CPU").value == exact("281.81", MiB)
    assert fig(p, "weights", "CUDA0").value == exact("4403.49", MiB)
    assert fig(p, "kv", "CUDA0").value == 1024 * MiB
    assert fig(p, "lora", "CUDA0").value == 160 * MiB
    assert fig(p, "output_buffer", "CUDA_Host").value == exact("2.02", MiB)
    # Ollama's own estimate (HumanBytes2, one decimal) is kept apart from allocations
    est = fig(p, "kv", None, None, estimate=True)
    assert (est.value, est.resolution) == (GiB, round(Fraction(GiB, 20)))
    assert fig(p, "weights", None, None, estimate=True).value == exact("4.9", GiB)
    assert fig(p, "compute_buffer", None, None, estimate=True).value == 560 * MiB


def test_ollama_go_engine():
    p = parse_lines(logs.OLLAMA_ENGINE.splitlines(keepends=True))
    assert p.engine == "ollama" and (p.version, p.version_family) == ("0.12.6", "0.12")
    st = p.settings
    assert (st.n_ctx, st.n_seq_max, st.n_ubatch, st.flash_attn) == (8192, 4, 512, False)
    assert st.gpu_name == "NVIDIA GeForce RTX 4090"
    w = fig(p, "weights", "CUDA0")
    assert (w.value, w.resolution) == (exact("4.3", GiB), round(Fraction(GiB, 20)))
    assert fig(p, "weights", "CPU").value == exact("281.8", MiB)
    assert fig(p, "kv", "CUDA0").value == GiB
    assert fig(p, "compute_buffer", "CUDA0").value == 560 * MiB
    assert fig(p, "compute_buffer", "CPU").value == 8 * MiB


def test_not_an_engine_and_no_memory_lines():
    assert parse_lines(logs.NOT_AN_ENGINE.splitlines()).engine is None
    p = parse_lines(logs.VLLM_NO_MEMORY.splitlines())
    assert p.engine == "vllm" and p.figures == []
    assert p.settings.context == 32768


def test_parser_is_streaming_and_bounded():
    # 200,000 lines from a generator: the parser keeps figures, never lines.
    import tracemalloc

    def lines():
        yield "INFO 03-11 10:00:00 [api_server.py:1805] vLLM API server version 0.11.0\n"
        for i in range(200_000):
            yield f"INFO 03-11 10:00:01 [metrics.py:1] Avg prompt throughput: {i} tokens/s\n"
        yield "INFO [gpu_worker.py:298] Available KV cache memory: 53.17 GiB\n"

    tracemalloc.start()
    p = parse_lines(lines())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert p.lines == 200_002 and fig(p, "kv_capacity").value == exact("53.17", GiB)
    assert peak < 2 * MiB, peak
