"""The public engine logs in benchmarks/reference_logs: the index is complete, every file parses, and
reconcile reads what each log states (issue #15, point 5). Expected values come from the log lines
themselves or from the post that published them, with the arithmetic in comments; none is taken
from running fitcalc."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from fitcalc import api
from fitcalc.core.errors import InputError
from fitcalc.core.reconcile.model import LogSettings
from fitcalc.core.reconcile.parsers import (
    is_blob_path,
    model_name_candidates,
    model_named,
    parse_lines,
    quantization_in_name,
)
from fitcalc.core.spec import Device
from fitcalc.core.units import GiB, MiB

LOGS = Path(__file__).resolve().parents[2] / "benchmarks" / "reference_logs"
INDEX = yaml.safe_load((LOGS / "index.yaml").read_text(encoding="utf-8"))["logs"]
REQUIRED = ("id", "file", "title", "kind", "source", "engine", "version", "gpus", "model", "flags", "figures",
            "split", "tags")
ENGINES = {"vllm", "llama.cpp", "lmstudio", "ollama-go", "ollama-llama"}
PARSER_ENGINE = {"vllm": "vllm", "llama.cpp": "llama.cpp", "lmstudio": "llama.cpp", "ollama-go": "ollama",
                 "ollama-llama": "ollama"}


def _parse(log_id: str):
    with open(LOGS / f"{log_id}.log", encoding="utf-8") as f:
        return parse_lines(f)


def _mib(text: str) -> int:
    return round(Fraction(text) * MiB)


@pytest.mark.parametrize("entry", INDEX, ids=[e["id"] for e in INDEX])
def test_index_entry_is_complete_and_its_log_parses(entry):
    missing = [k for k in REQUIRED if entry.get(k) in (None, "")]
    assert not missing, missing
    assert entry["file"] == entry["id"] + ".log" and (LOGS / entry["file"]).is_file()
    assert entry["kind"] in ("excerpt", "quoted", "reconstructed")
    assert entry["split"] in ("fit", "held_out") and entry["engine"] in ENGINES
    assert entry["source"].startswith(("https://github.com/", "public GitHub"))
    if entry["source"].startswith("public GitHub"):
        assert "search tool" in entry.get("source_note", "")  # says the repository path is not exposed
    model = entry["model"]
    assert (LOGS / model).is_file() if model.endswith(".yaml") else model
    if entry.get("settings"):
        assert entry.get("settings_source"), "settings need the post that states them"
    parsed = _parse(entry["id"])
    assert parsed.engine == PARSER_ENGINE[entry["engine"]]
    kinds = {f.what for f in parsed.figures}
    assert set(entry["figures"]) - {"engine estimates"} <= kinds, kinds


def test_the_index_covers_what_the_issue_asks_for():
    # issue #15 point 4: >= 25 logs; each engine; >= 3 MoE models, 2 TP runs, 2 partial offloads,
    # 2 Apple and 1 AMD machine; both gpt-oss-120b-on-one-H100 vLLM cases; both splits per engine
    assert len(INDEX) >= 25
    assert {e["engine"] for e in INDEX} == ENGINES
    tagged = {tag: [e for e in INDEX if tag in e["tags"]] for tag in ("moe", "tp", "partial_offload", "apple", "amd")}
    assert len({e["model"] for e in tagged["moe"]}) >= 3
    assert len(tagged["tp"]) >= 2 and len(tagged["partial_offload"]) >= 2
    assert len(tagged["apple"]) >= 2 and len(tagged["amd"]) >= 1
    sources = {e["source"] for e in INDEX}
    assert {"https://github.com/vllm-project/vllm/issues/23278", "https://github.com/vllm-project/vllm/issues/27508"} <= sources
    for engine in ("vllm", "llama.cpp", "ollama-go", "ollama-llama"):
        assert {e["split"] for e in INDEX if e["engine"] == engine} == {"fit", "held_out"}, engine


# --------------------------------------------------------------------------- what the log states


def test_vllm_019_version_from_the_banner_only():
    p = _parse("vllm-0.19.1-a100-40gb-qwen3-8b")  # "█ ▀▄▀ █  version 0.19.1", "█  model   Qwen/Qwen3-8B"
    assert (p.version, p.version_family, p.vllm_generation) == ("0.19.1", "0.19", "v1")
    assert p.settings.model == "Qwen/Qwen3-8B" and p.settings.context == 40960


def test_vllm_tensor_parallel_size_from_the_worker_ranks():
    # V0: the driver's message queue lists local_reader_ranks=[1, 2, 3, 4, 5, 6, 7]: 7 + the driver = 8
    p = _parse("vllm-v0-0.6.4-h200x8-tp8-llama-3.1-70b")
    assert p.settings.tp == 8
    assert p.settings.model == "/models/Meta-Llama-3.1-70B-Instruct"  # "Starting to load model ..."


def test_vllm_v1_tensor_parallel_size_from_the_world_size_line():
    # infiniflow/ragflow#9856 (vLLM 0.10, TP 2): "rank 1 in world size 2 is assigned as DP rank 0, PP
    # rank 0, TP rank 1": the last TP rank of a world of 2. Rank 0's line alone says nothing of TP.
    line = ("(VllmWorker TP1 pid=19251) INFO 09-01 21:25:41 [parallel_state.py:1134] rank 1 in world size 2 "
            "is assigned as DP rank 0, PP rank 0, TP rank 1, EP rank 1")
    assert parse_lines([line]).settings.tp == 2
    assert parse_lines([line.replace("rank 1 in", "rank 0 in").replace("TP rank 1", "TP rank 0")]).settings.tp is None
    assert _parse("vllm-0.13.0-gb10-qwen3-30b-a3b-fp8").settings.tp == 1  # world size 1 (and the config line)


def test_model_name_with_a_quantization_suffix():
    assert quantization_in_name("Qwen/Qwen3-30B-A3B-FP8") == ("fp8", "FP8")
    assert quantization_in_name("/models/Meta-Llama-3.1-405B-Instruct-FP8") == ("fp8", "FP8")
    assert quantization_in_name("Qwen/Qwen3-8B") is None
    names = model_name_candidates(_parse("vllm-0.13.0-gb10-qwen3-30b-a3b-fp8").settings)
    assert names[0] == "Qwen/Qwen3-30B-A3B-FP8" and "qwen3-30b-a3b" in names


def test_quantization_suffix_gives_the_recipe_and_says_so():
    # The 0.5 log names only the path /models/Meta-Llama-3.1-405B-Instruct-FP8: the recipe comes from
    # the suffix. TP 8 from the issue title; the weights line is 57.7520 "GB" (2^30 B) per GPU.
    r = api.reconcile(str(LOGS / "vllm-v0-0.5-h100x8-tp8-llama-3.1-405b-fp8.log"), gpu="h100-sxm",
                      overrides={"tp": "8"})
    assert (r.model, r.recipe, r.tp) == ("llama-3.1-405b", "fp8", 8)
    assert any("'-FP8' suffix" in a for a in r.assumptions)
    weights = next(row for row in r.rows if row.id == "weights.*")
    assert weights.logged_bytes == round(Fraction("57.7520") * GiB)


def test_fp8_checkpoint_name_maps_to_its_base_model_with_gpu_alone():
    # "model='Qwen/Qwen3-30B-A3B-FP8' ... quantization=fp8" (vLLM 0.13.0 on a GB10): the catalog's
    # qwen3-30b-a3b with the fp8 recipe, no --model needed
    entry = next(e for e in INDEX if e["id"] == "vllm-0.13.0-gb10-qwen3-30b-a3b-fp8")
    d = {k: v for k, v in entry["device"].items() if k != "source"}
    r = api.reconcile(str(LOGS / entry["file"]), device=Device(**d))
    assert (r.model, r.recipe, r.kv_dtype) == ("qwen3-30b-a3b", "fp8", "fp8-e4m3")


def test_gguf_name_with_a_vendor_and_a_split_file_name():
    # LM Studio: general.name "Openai_Gpt Oss 120b", file gpt-oss-120b-MXFP4-00001-of-00002.gguf
    names = model_name_candidates(_parse("lmstudio-1.44.0-m4-max-gpt-oss-120b").settings)
    assert "gpt-oss-120b" in names
    r = api.reconcile(str(LOGS / "lmstudio-1.44.0-m4-max-gpt-oss-120b.log"), gpu="m4-max-128gb")
    assert (r.model, r.recipe) == ("gpt-oss-120b", "mxfp4_moe")


def test_a_log_naming_only_a_blob_says_so(tmp_path):
    # the Strix Halo log's lines without ggml.go's "architecture=gptoss file_type=MXFP4" line
    lines = [ln for ln in (LOGS / "ollama-0.11.10-strix-halo-gpt-oss-120b.log").read_text(encoding="utf-8").splitlines()
             if "architecture=" not in ln]
    log = tmp_path / "blob-only.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"names its model only by an Ollama blob \(sha256-90a618fe6ff") as e:
        api.reconcile(str(log))
    assert "--model" in e.value.hint


def test_a_log_naming_no_model_takes_the_model_of_its_architecture_and_size():
    # Ollama's Go engine names the model only by its blob, but states architecture=gptoss and
    # file_type=MXFP4, and prints 59.8 GiB (ROCm0) + 1.1 GiB (CPU) of weights: gpt-oss-120b (about
    # 60 GiB in MXFP4), not gpt-oss-20b (about 12 GiB), and the result says so
    r = api.reconcile(str(LOGS / "ollama-0.11.10-strix-halo-gpt-oss-120b.log"))
    assert (r.model, r.recipe) == ("gpt-oss-120b", "mxfp4_moe")
    said = r.assumptions[0]
    assert said.startswith("model not named (architecture gptoss): gpt-oss-120b") and "60.90 GiB" in said


def test_vllm_max_model_len_not_stated_is_the_models_maximum_and_said():
    # issue #23278 runs `vllm serve openai/gpt-oss-120b` with defaults: vLLM takes max_model_len from
    # the checkpoint's max_position_embeddings, 131072 for gpt-oss (its config.json)
    r = api.reconcile(str(LOGS / "vllm-0.10-h100-gpt-oss-120b-defaults.log"), model="gpt-oss-120b", gpu="h100-sxm")
    assert r.context == 131072
    assert any(a.startswith("max_model_len not stated: 131,072") for a in r.assumptions)


def test_windows_and_ollama_blob_paths_are_not_model_names():
    st = _parse("ollama-0.13-windows-cpu-llama-3-8b-q4_0").settings
    # the runner command line: --model A:\\Ollama_Data\\blobs\\sha256-6a07... (Go %q doubles backslashes)
    assert is_blob_path(st.model_path) and st.model_path.endswith("sha256-6a0746a1ec1aef3e7ec53868f220ff6e"
                                                                  "389f6f8ef87a01d77c96807de94ca2aa")
    assert model_named(st) == "Meta-Llama-3-8B-Instruct"
    assert not any("sha256" in n or "\\" in n for n in model_name_candidates(st))
    only_blob = _parse("ollama-0.11.10-strix-halo-gpt-oss-120b").settings  # name="" in the ggml.go line
    assert model_name_candidates(only_blob) == []
    assert model_named(only_blob).startswith("an Ollama blob (sha256-90a618fe6ff")
    windows = LogSettings(model_path="C:\\Users\\ksh\\.ollama\\models\\blobs\\sha256-" + "ab" * 32)
    assert model_name_candidates(windows) == [] and model_named(windows).startswith("an Ollama blob")


def test_ollama_file_type_line():
    st = _parse("ollama-0.11.10-strix-halo-gpt-oss-120b").settings
    assert st.file_type == "MXFP4"  # ggml.go: architecture=gptoss file_type=MXFP4
    assert (st.n_ctx, st.n_seq_max, st.n_gpu_layers) == (8192, 1, 37)  # load request: KvSize:8192 Parallel:1 GPULayers:37
    assert _parse("ollama-0.9-2gpu-mistral-small-3-q8_0").settings.file_type == "Q8_0"
    r = api.reconcile(str(LOGS / "ollama-0.11.10-strix-halo-gpt-oss-120b.log"), model="gpt-oss-120b")
    assert r.recipe == "mxfp4_moe"


def test_ollama_cpu_only_load_puts_no_layer_on_a_gpu():
    st = _parse("ollama-0.13-windows-cpu-llama-3-8b-q4_0").settings
    assert st.n_gpu_layers == 0  # load request GPULayers:[]


def test_metal_mapped_model_in_two_buffers_is_summed():
    # LM Studio, gpt-oss-120b in two GGUF files: one Metal_Mapped buffer per file
    p = _parse("lmstudio-1.44.0-m4-max-gpt-oss-120b")
    metal = [f for f in p.figures if f.what == "weights" and f.device == "Metal_Mapped"]
    assert len(metal) == 1
    assert metal[0].value == _mib("37958.69") + _mib("22479.80")
    assert "2 Metal_Mapped buffers summed" in metal[0].note
    assert not any("printed twice" in n for n in p.notes)


def test_lm_studio_full_size_swa_cache():
    # "using full-size SWA cache": the SWA cache has 4096 cells like the full one. 4096 cells x 18
    # layers x 2 (K, V) x 8 KV heads x 64 x 2 B (f16) = 150,994,944 B = 144.00 MiB, as logged
    r = api.reconcile(str(LOGS / "lmstudio-1.44.0-m4-max-gpt-oss-120b.log"), model="gpt-oss-120b",
                      gpu="m4-max-128gb")
    assert r.settings["swa_full"] is True
    swa = next(row for row in r.rows if row.id == "kv.sliding")
    assert swa.logged_bytes == 4096 * 18 * 2 * 8 * 64 * 2 == swa.predicted_bytes


def test_gguf_type_from_the_logged_buffers_when_the_log_has_no_file_type():
    # llama.cpp#13729 names Qwen3-30B-A3B-Q4_K_M.gguf; the excerpt prints only the two model buffers
    log = str(LOGS / "llama.cpp-b5466-qwen3-30b-a3b-partial-30of49.log")
    assert _parse("llama.cpp-b5466-qwen3-30b-a3b-partial-30of49").settings.file_type is None
    r = api.reconcile(log, model="qwen3-30b-a3b")
    assert r.recipe == "q4_k_m"
    said = next(a for a in r.assumptions if a.startswith("GGUF file type not printed"))
    assert "q4_k_m" in said and "lines 4, 5" in said  # CUDA0 10750.86 MiB + CPU_Mapped 6940.48 MiB
