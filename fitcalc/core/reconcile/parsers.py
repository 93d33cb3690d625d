"""Engine start-up logs into engine-neutral figures and settings. CORE (pure string work).

``parse_lines(lines)`` reads an iterable of lines once (it never holds the log) and returns a
``ParsedLog``. Each line format is one small rule: a regular expression and a handler, grouped
by engine, each with the source line it mirrors. Formats covered (docs/reconcile.md lists them):

vLLM
  V0 to 0.8.2 model_runner.py ``"Loading model weights took %.4f GB"`` (the value is
              ``consumed_memory / float(2**30)``: GiB printed as "GB", see ``_VLLM_GB_IS_GIB``); from
              0.8.3 ``"Model loading took %.4f GiB and %.6f seconds"``
  V0 0.6.4    worker.py        ``"Memory profiling results: total_gpu_memory=%.2fGiB initial_memory_usage=...
              peak_torch_memory=... non_torch_memory=... kv_cache_size=... gpu_memory_utilization=..."``
  V0 0.6.5    worker.py        the same as one value per line (``model weights take   14.96GiB`` ...), PR #10511
  V0 0.7-0.8  worker.py        ``"the current vLLM instance can use total_gpu_memory (%.2fGiB) x
              gpu_memory_utilization (%.2f) = ..."`` and ``"model weights take %.2fGiB; non_torch_memory takes
              %.2fGiB; PyTorch activation peak memory takes %.2fGiB; the rest of the memory reserved for KV
              Cache is %.2fGiB."`` (PR #12126); executor_base.py ``"# GPU blocks: %d, # CPU blocks: %d"``
  V1 0.8+     gpu_model_runner.py ``"Model loading took %.4f GiB and %.6f seconds"``, later ``"Model loading
              took %s GiB memory and %.6f seconds"``; gpu_worker.py ``"Available KV cache memory: %.2f GiB"``;
              kv_cache_utils.py ``"GPU KV cache size: %s tokens"``, ``"Maximum concurrency for %s tokens per
              request: %.2fx"``; gpu_model_runner.py ``"Graph capturing finished in %.0f secs, took %.2f GiB"``
  settings    ``Initializing a V1 LLM engine (v0.15.1) with config: model=..., max_seq_len=...,
              tensor_parallel_size=..., quantization=..., enforce_eager=..., kv_cache_dtype=...``,
              ``non-default args: {...}``, ``Chunked prefill is enabled with max_num_batched_tokens=%d``,
              ``Starting to load model X...``, parallel_state.py ``rank %s in world size %s is assigned as DP
              rank %s, PP rank %s, TP rank %s``, V0 shm_broadcast.py ``local_reader_ranks=[...]``
  banner      utils.py (0.11+) ``█ ▀▄▀ █  version 0.19.1`` and ``█  model   Qwen/Qwen3-8B``: from 0.19 often
              the only version in a log
llama.cpp (llama-server, llama-cli; also under Ollama's llama runner)
  src/llama-model.cpp    ``"%s: %12s model buffer size = %8.2f MiB"``, ``"%s: offloaded %d/%d layers to GPU"``
  src/llama-kv-cache.cpp ``"%s: %10s KV buffer size = %8.2f MiB"``, ``"%s: size = %7.2f MiB (%6u cells, %3d
                         layers, %2u/%u seqs), K (%s): %7.2f MiB, V (%s): %7.2f MiB"``; older builds ``"%s: KV self
                         size  = %7.2f MiB, K (%s): %7.2f MiB, V (%s): %7.2f MiB"``
  src/llama-kv-cache-iswa.cpp ``"%s: creating non-SWA KV cache, size = %u cells"`` / ``"creating     SWA ..."``
  src/llama-context.cpp  ``"%s: %10s compute buffer size = %8.2f MiB"``, ``"%s: %10s  output buffer size =
                         %8.2f MiB"``, ``n_ctx``/``n_seq_max``/``n_ubatch``/``flash_attn`` lines
  src/llama-kv-cache-iswa.cpp ``"using full-size SWA cache"`` (--swa-full; LM Studio's default)
  A model in several GGUF files is mapped as one buffer per file: consecutive buffer lines of one
  device are summed (``_extends_buffer``).
Ollama
  server.go  ``msg=offload ... memory.required.kv=... memory.weights.total=... memory.graph.full=...``
             (Ollama's own estimate), ``msg="starting llama server" cmd="... --ctx-size N --batch-size N
             --n-gpu-layers N --parallel N"``, routes.go ``Listening on ... (version X)``
  ml/device.go (Go engine) ``msg="model weights" device=CUDA0 size="4.3 GiB"``, ``msg="kv cache" ...``,
             ``msg="compute graph" ...``: sizes from format.HumanBytes2, ``%.1f`` of the unit; runner.go
             ``msg=load request="{Operation:commit ... KvSize:N ... GPULayers:N[...]}"``; ggml.go
             ``msg="" architecture=gptoss file_type=MXFP4`` (fs/ggml/type.go FileType.String())
The model a log names: ``model_name_candidates`` (quantized-checkpoint suffixes, vendor prefixes,
gguf-split shards dropped; Ollama blob paths and local paths skipped), ``quantization_in_name``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction

from fitcalc.core.reconcile.model import EngineId, Figure, LogSettings, ParsedLog
from fitcalc.core.units import GiB, KiB, MiB

RAW_MAX = 300  # characters of a line kept beside a figure

_UNIT = {"GiB": GiB, "MiB": MiB, "KiB": KiB, "B": 1}

# vLLM V0's model_runner.py logged "Loading model weights took %.4f GB" with the value
# `self.model_memory_usage / float(2**30)`: GiB labelled GB (vllm-project/vllm issue #14979, fixed
# to "Model loading took %.4f GiB" by PR #15807, March 2025). docs/reconcile.md, "Units that lie".
_VLLM_GB_IS_GIB = GiB

_ANSI = re.compile(r"(?:\x1b|#033)\[[0-9;]*m")


def amount(text: str, unit: int) -> tuple[int, int]:
    """Exact bytes of a printed decimal in ``unit``, and the rounding of the print (half the last digit)."""
    text = text.replace(",", "")
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    value = round(Fraction(text) * unit)
    resolution = round(Fraction(unit, 2 * 10 ** decimals))
    return int(value), int(resolution)


def _int(text: str) -> int:
    return int(text.replace(",", "").replace("_", ""))


def _bool(text: str) -> bool | None:
    t = text.strip().strip("'\"").lower()
    if t in ("true", "1", "on", "enabled", "yes"):
        return True
    if t in ("false", "0", "off", "disabled", "no"):
        return False
    return None


@dataclass
class _State:
    settings: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    markers: dict = field(default_factory=lambda: {"vllm": 0, "llama.cpp": 0, "ollama": 0})
    version: dict = field(default_factory=dict)  # engine -> version text
    vllm_generation: str | None = None
    v0_formats: set = field(default_factory=set)
    kv_cache: str | None = None  # llama.cpp iSWA section being read: "full" / "swa"
    kv_summaries: list = field(default_factory=list)  # (cache, bytes, resolution, line, raw)
    blocks_at: tuple | None = None  # (line, raw) of vLLM V0's "# GPU blocks"
    notes: list[str] = field(default_factory=list)
    last_weights_line: int = 0  # line of the last weights figure (buffers printed over several lines)
    weights_run: list = field(default_factory=list)  # lines of the buffers summed into the last weights figure

    def set(self, key: str, value, line: int, raw: str, *, override: bool = False) -> None:
        """Record a setting once: the first statement wins (Ollama reloads the vocabulary later)."""
        if value is None or (key in self.settings and not override):
            return
        self.settings[key] = value
        self.sources[key] = f"line {line}: {raw[:120]}"

    def add(self, what: str, value: int, resolution: int, line: int, raw: str, **kw) -> None:
        self.figures.append(Figure(what=what, value=value, resolution=resolution, line=line,  # type: ignore[arg-type]
                                   raw=raw[:RAW_MAX], **kw))
        if what == "weights":
            self.last_weights_line = line
            self.weights_run = [line]


# (engine, a literal every matching line holds: a cheap test before the expression, pattern, handler)
Rule = tuple[str, str, re.Pattern, Callable[[re.Match, _State, int, str], None]]


# ---------------------------------------------------------------------------------------------
# vLLM
# ---------------------------------------------------------------------------------------------


def _vllm_weights_gb(m: re.Match, s: _State, n: int, raw: str) -> None:
    v, r = amount(m["v"], _VLLM_GB_IS_GIB)
    s.v0_formats.add("weights_gb")
    s.add("weights", v, r, n, raw, device=None,
          note="vLLM prints 'GB' here for 2^30-byte units (model_runner.py divides by 2**30)")


def _vllm_weights_gib(m: re.Match, s: _State, n: int, raw: str) -> None:
    v, r = amount(m["v"], GiB)
    s.add("weights", v, r, n, raw, device=None)


def _vllm_profile_pairs(m: re.Match, s: _State, n: int, raw: str) -> None:
    # worker.py (0.6.4): key=valueGiB pairs on one line
    s.v0_formats.add("profile_pairs")
    pairs = dict(re.findall(r"(\w+)=([\d.]+)", m["rest"]))
    if "total_gpu_memory" in pairs:
        s.set("gpu_total_bytes", amount(pairs["total_gpu_memory"], GiB)[0], n, raw)
    if "gpu_memory_utilization" in pairs:
        s.set("gpu_memory_utilization", float(pairs["gpu_memory_utilization"]), n, raw)
    for key, what in (("peak_torch_memory", "torch_peak"), ("non_torch_memory", "non_torch"),
                      ("kv_cache_size", "kv_capacity")):
        if key in pairs:
            v, r = amount(pairs[key], GiB)
            s.add(what, v, r, n, raw, device=None)


def _vllm_total_util(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.v0_formats.add("sentence")
    s.set("gpu_total_bytes", amount(m["t"], GiB)[0], n, raw)
    s.set("gpu_memory_utilization", float(m["u"]), n, raw)


def _vllm_total_line(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.v0_formats.add("profile_lines")
    s.set("gpu_total_bytes", amount(m["v"], GiB)[0], n, raw)


def _vllm_util_line(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set("gpu_memory_utilization", float(m["v"]), n, raw)


def _figure_gib(what: str, v0: str | None = None) -> Callable:
    def handler(m: re.Match, s: _State, n: int, raw: str) -> None:
        if v0:
            s.v0_formats.add(v0)
        v, r = amount(m["v"], GiB)
        s.add(what, v, r, n, raw, device=None)

    return handler


def _vllm_blocks(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.v0_formats.add("blocks")
    s.set("gpu_blocks", _int(m["n"]), n, raw)
    if s.blocks_at is None:
        s.blocks_at = (n, raw)


def _vllm_kv_tokens(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.add("kv_capacity_tokens", _int(m["n"]), 0, n, raw, device=None, unit="tokens")


def _vllm_context(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set("context", _int(m["n"]), n, raw)


def _vllm_chunk(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set("chunk", _int(m["n"]), n, raw)


_CONFIG_PAIR = re.compile(r"(\w+)=('(?:[^'\\]|\\.)*'|[^,\s()]+)")
_DICT_PAIR = re.compile(r"'(\w+)':\s*('(?:[^'\\]|\\.)*'|[^,}\s]+)")


def _vllm_apply_args(pairs: list[tuple[str, str]], s: _State, n: int, raw: str) -> None:
    seen: set[str] = set()
    for key, value in pairs:
        if key in seen:  # nested configs repeat keys (speculative_config=...(model=...)): first wins
            continue
        seen.add(key)
        v = value.strip("'")
        if key == "model":
            s.set("model", v, n, raw)
        elif key in ("max_seq_len", "max_model_len"):
            s.set("context", _int(v), n, raw)
        elif key == "tensor_parallel_size":
            s.set("tp", _int(v), n, raw)
        elif key == "pipeline_parallel_size":
            s.set("pp", _int(v), n, raw)
        elif key == "quantization":
            s.set("quantization", None if v == "None" else v, n, raw)
        elif key == "enforce_eager":
            s.set("enforce_eager", _bool(v), n, raw)
        elif key == "kv_cache_dtype":
            s.set("kv_dtype", v, n, raw)
        elif key == "dtype":
            s.set("dtype", v.replace("torch.", ""), n, raw)
        elif key == "gpu_memory_utilization":
            s.set("gpu_memory_utilization", float(v), n, raw)
        elif key == "max_num_batched_tokens" and v.isdigit():
            s.set("chunk", int(v), n, raw)
        elif key == "max_num_seqs" and v.isdigit():
            s.set("max_num_seqs", int(v), n, raw)
        elif key == "block_size" and v.isdigit():
            s.set("block_size", int(v), n, raw)


def _vllm_init(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.version.setdefault("vllm", m["ver"])
    if m["gen"]:
        s.vllm_generation = m["gen"].lower()
    _vllm_apply_args(_CONFIG_PAIR.findall(m["cfg"]), s, n, raw)


def _vllm_api_version(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.version.setdefault("vllm", m["ver"])


def _vllm_model(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set("model", m["m"], n, raw)


def _vllm_world(m: re.Match, s: _State, n: int, raw: str) -> None:
    # parallel_state.py: "rank 7 in world size 8 is assigned as DP rank 0, PP rank 0, TP rank 7": the
    # world holds DP x PP x TP ranks, so only a line whose TP rank is the world's last says TP = world
    world, tp_rank = _int(m["n"]), _int(m["t"])
    if tp_rank == world - 1:
        s.set("tp", world, n, raw[:80] + " ... [TP rank = world size - 1]")


def _vllm_reader_ranks(m: re.Match, s: _State, n: int, raw: str) -> None:
    # shm_broadcast.py (V0): the driver's message queue lists every other local worker of its
    # tensor-parallel group as a reader (with pipeline parallelism the config line states TP first)
    ranks = [r for r in re.split(r"[,\s]+", m["r"]) if r]
    s.set("tp", len(ranks) + 1, n, raw[:80] + " ... [driver + local_reader_ranks]")


def _vllm_nondefault(m: re.Match, s: _State, n: int, raw: str) -> None:
    _vllm_apply_args(_DICT_PAIR.findall(m["body"]), s, n, raw)


_VLLM: list[Rule] = [
    ("vllm", 'Loading model weights', re.compile(r"Loading model weights took (?P<v>[\d.]+) GB\b"), _vllm_weights_gb),
    ("vllm", 'Model loading took', re.compile(r"Model loading took (?P<v>[\d.]+) GiB"), _vllm_weights_gib),
    ("vllm", 'Memory profiling results', re.compile(r"Memory profiling results: (?P<rest>.*total_gpu_memory=.*)$"), _vllm_profile_pairs),
    ("vllm", 'total_gpu_memory (', re.compile(r"total_gpu_memory \((?P<t>[\d.]+)\s*GiB\) x gpu_memory_utilization \((?P<u>[\d.]+)\)"),
     _vllm_total_util),
    ("vllm", 'total_gpu_memory', re.compile(r"\btotal_gpu_memory\s+(?P<v>[\d.]+)\s*GiB"), _vllm_total_line),
    ("vllm", 'gpu_memory_utilization', re.compile(r"\bgpu_memory_utilization\s+(?P<v>[\d.]+)\s*$"), _vllm_util_line),
    ("vllm", 'model weights take', re.compile(r"model weights take\s+(?P<v>[\d.]+)\s*GiB"), _figure_gib("weights", "sentence")),
    ("vllm", 'non_torch_memory', re.compile(r"non_torch_memory(?: takes)?\s+(?P<v>[\d.]+)\s*GiB"), _figure_gib("non_torch", "sentence")),
    ("vllm", 'PyTorch activation peak', re.compile(r"PyTorch activation peak memory(?: takes)?\s+(?P<v>[\d.]+)\s*GiB"),
     _figure_gib("act_peak", "sentence")),
    ("vllm", 'ache', re.compile(r"(?:the rest of the memory reserved for KV Cache is|available_kv_cache_memory)\s+"
                        r"(?P<v>[\d.]+)\s*GiB"), _figure_gib("kv_capacity", "sentence")),
    ("vllm", 'blocks:', re.compile(r"(?:#\s*)?(?:GPU|CUDA|cuda) blocks: (?P<n>\d+)"), _vllm_blocks),
    ("vllm", 'GPU KV cache size', re.compile(r"GPU KV cache size: (?P<n>[\d,]+) tokens"), _vllm_kv_tokens),
    # worker.py raise_if_cache_size_invalid (V0): the capacity in tokens, and max_model_len
    ("vllm", 'maximum number of tokens', re.compile(r"maximum number of tokens that can be stored in KV cache \((?P<n>\d+)\)"), _vllm_kv_tokens),
    # V0 worker.py "The model's max seq len (N) is larger than ..."; V1 kv_cache_utils.py "To serve at
    # least one request with the models's max seq len (N), ..."
    ("vllm", 'max seq len', re.compile(r"\bmodels?'s max seq len \((?P<n>\d+)\)"), _vllm_context),
    ("vllm", 'Maximum concurrency', re.compile(r"Maximum concurrency for (?P<n>[\d,]+) tokens per request"), _vllm_context),
    ("vllm", 'Using max model len', re.compile(r"Using max model len (?P<n>\d+)"), _vllm_context),
    ("vllm", 'Available KV cache memory', re.compile(r"Available KV cache memory: (?P<v>-?[\d.]+) GiB"), _figure_gib("kv_capacity")),
    ("vllm", 'Graph capturing finished', re.compile(r"Graph capturing finished in \d+ secs?, took (?P<v>[\d.]+) GiB"), _figure_gib("cuda_graphs")),
    ("vllm", 'CUDA graph pool memory', re.compile(r"CUDA graph pool memory: (?P<v>[\d.]+) GiB \(actual\)"), _figure_gib("cuda_graphs")),
    # gpu_worker.py (V1, debug level in most releases): the split behind the KV budget
    ("vllm", 'torch peak memory increase', re.compile(r"torch peak memory increase: (?P<v>[\d.]+) ?GiB"), _figure_gib("act_peak")),
    ("vllm", 'non-torch forward increase', re.compile(r"non-torch forward increase memory: (?P<v>[\d.]+) ?GiB"), _figure_gib("non_torch")),
    ("vllm", 'Chunked prefill is enabled', re.compile(r"Chunked prefill is enabled with max_num_batched_tokens=(?P<n>\d+)"), _vllm_chunk),
    ("vllm", 'LLM engine', re.compile(r"Initializing an? (?:(?P<gen>V[01]) )?LLM engine \(v(?P<ver>[^)\s]+)\) with config: "
                        r"(?P<cfg>.*)$"), _vllm_init),
    ("vllm", 'vLLM API server version', re.compile(r"vLLM API server version (?P<ver>[\w.+\-]+)"), _vllm_api_version),
    # utils.py banner (0.11+; from 0.19 the only line with the version in many logs):
    # "█ ▀▄▀ █  version 0.19.1" and "█     █  model   Qwen/Qwen3-8B"
    ("vllm", '█', re.compile(r"█\s+version (?P<ver>\d[\w.+\-]*)\s*$"), _vllm_api_version),
    ("vllm", '█', re.compile(r"█\s+model\s+(?P<m>\S+)\s*$"), _vllm_model),
    # model_runner.py / gpu_model_runner.py: "Starting to load model /models/Meta-Llama-3.1-405B-Instruct-FP8..."
    ("vllm", 'Starting to load model', re.compile(r"Starting to load model (?P<m>\S+?)\.\.\.\s*$"), _vllm_model),
    ("vllm", 'in world size', re.compile(r"rank \d+ in world size (?P<n>\d+) is assigned as DP rank \d+, "
                                         r"PP rank \d+, (?:PCP rank \d+, )?TP rank (?P<t>\d+)"), _vllm_world),
    ("vllm", 'local_reader_ranks', re.compile(r"message queue communication handle: Handle\(.*?local_reader_ranks="
                                              r"\[(?P<r>[\d, ]*)\]"), _vllm_reader_ranks),
    ("vllm", 'non-default args', re.compile(r"non-default args: \{(?P<body>.*)\}"), _vllm_nondefault),
]


# ---------------------------------------------------------------------------------------------
# llama.cpp
# ---------------------------------------------------------------------------------------------


def _llama_build(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.version.setdefault("llama.cpp", f"b{m['b']} ({m['c']})")


def _llama_device(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set("gpu_name", m["name"].strip(), n, raw)
    s.set("gpu_free_bytes", _int(m["free"]) * MiB, n, raw)


def _llama_cuda_device(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set("gpu_name", m["name"].strip(), n, raw)


def _llama_path(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set("model_path", m["path"].strip(), n, raw)


def _llama_arch(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set("architecture", m["v"], n, raw)


def _llama_name(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set("gguf_name", m["v"].strip(), n, raw)


def _llama_ftype(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set("file_type", m["v"].strip(), n, raw)


def _llama_fsize(m: re.Match, s: _State, n: int, raw: str) -> None:
    if any(f.what == "file_size" for f in s.figures):
        return
    v, r = amount(m["v"], _UNIT[m["u"]])
    s.add("file_size", v, r, n, raw, device=None)


def _llama_meta_int(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set(m["k"], int(m["v"]), n, raw)


def _llama_offloaded(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set("n_gpu_layers", int(m["x"]), n, raw)


def _llama_mmap(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set("mmap", _bool(m["v"]), n, raw)


def _mib_figure(what: str) -> Callable:
    def handler(m: re.Match, s: _State, n: int, raw: str) -> None:
        v, r = amount(m["v"], MiB)
        if what == "weights" and _extends_buffer(s, m["dev"], n):
            return _add_to_last(s, v, r, n)
        s.add(what, v, r, n, raw, device=m["dev"], cache=s.kv_cache if what == "kv" else None)

    return handler


# src/llama-model.cpp load_tensors: with mmap, each buffer type maps one buffer per GGUF file
# (`for (idx = 0; idx < ml.files.size(); idx++) ... ggml_backend_dev_buffer_from_host_ptr`), and
# llama_model prints each on its own line in a row: a split model (gpt-oss-120b-MXFP4-00001-of-
# 00002.gguf) shows "Metal_Mapped model buffer size = 37958.69 MiB" then "= 22479.80 MiB". Together
# they are the model's weights on that device.
_BUFFER_RUN_LINES = 2  # a further buffer follows the last within this many lines (LM Studio adds none between)


def _extends_buffer(s: _State, device: str, n: int) -> bool:
    last = s.figures[-1] if s.figures else None
    return (last is not None and last.what == "weights" and last.device == device and not last.engine_estimate
            and 0 < n - s.last_weights_line <= _BUFFER_RUN_LINES)


def _add_to_last(s: _State, v: int, r: int, n: int) -> None:
    last = s.figures[-1]
    s.weights_run.append(n)
    s.figures[-1] = last.model_copy(update={
        "value": last.value + v, "resolution": last.resolution + r,
        "note": f"{len(s.weights_run)} {last.device} buffers summed (lines "
                + ", ".join(map(str, s.weights_run)) + ")"})
    s.last_weights_line = n


def _llama_iswa(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.kv_cache = "full" if m["kind"].startswith("non") else "swa"
    cells = dict(s.settings.get("kv_cells", {}))
    cells.setdefault(s.kv_cache, int(m["cells"]))
    s.settings["kv_cells"] = cells
    s.sources.setdefault("kv_cells", f"line {n}: {raw[:120]}")


def _llama_kv_size(m: re.Match, s: _State, n: int, raw: str) -> None:
    v, r = amount(m["v"], MiB)
    s.kv_summaries.append((s.kv_cache, v, r, n, raw))
    s.set("kv_dtype", m["kt"], n, raw)
    if m.groupdict().get("cells"):
        cells = dict(s.settings.get("kv_cells", {}))
        cells.setdefault(s.kv_cache or "full", int(m["cells"]))
        s.settings["kv_cells"] = cells


def _llama_swa_full(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.set("swa_full", True, n, raw)


def _llama_ctx_int(m: re.Match, s: _State, n: int, raw: str) -> None:
    key = {"n_ctx_seq": "context", "n_ctx_per_seq": "context"}.get(m["k"], m["k"])
    s.set(key, int(m["v"]), n, raw)


def _llama_flash(m: re.Match, s: _State, n: int, raw: str) -> None:
    v = m["v"].lower()
    if v == "auto":
        # llama_flash_attn_type "auto" turns flash attention on where the backend supports it;
        # CUDA/Metal/Vulkan builds do (llama-context.cpp resolves it at context creation).
        s.set("flash_attn", True, n, raw + "  [auto: taken as on]")
    else:
        s.set("flash_attn", _bool(v), n, raw)


_CTX = r"(?:llama_context|llama_new_context_with_model|llama_init_from_model)"

_LLAMA: list[Rule] = [
    ("llama.cpp", 'build', re.compile(r"\bbuild(?::|=)\s*(?P<b>\d+) \((?P<c>[0-9a-f]+)\)"), _llama_build),
    ("llama.cpp", 'build=', re.compile(r"\bbuild=(?P<b>\d+) commit=\"(?P<c>[0-9a-f]+)\""), _llama_build),
    ("llama.cpp", 'version: ', re.compile(r"^version: (?P<b>\d+) \((?P<c>[0-9a-f]+)\)"), _llama_build),
    ("llama.cpp", 'using device', re.compile(r"using device (?P<dev>\S+) \((?P<name>[^)]+)\)(?: \([^)]*\))? - (?P<free>\d+) MiB free"),
     _llama_device),
    ("llama.cpp", 'compute capability', re.compile(r"Device \d+: (?P<name>[^,]+), compute capability"), _llama_cuda_device),
    ("llama.cpp", 'loaded meta data', re.compile(r"loaded meta data with \d+ key-value pairs and \d+ tensors from (?P<path>.+?) "
                             r"\(version GGUF"), _llama_path),
    ("llama.cpp", 'arch', re.compile(r"(?:general\.architecture\s+str\s+=|(?:print_info|llm_load_print_meta):\s+arch\s+=)"
                                     r"\s+(?P<v>[\w-]+)\s*$"), _llama_arch),
    ("llama.cpp", 'general.name', re.compile(r"general\.name\s+(?:str\s+)?=\s+(?P<v>.+?)\s*$"), _llama_name),
    ("llama.cpp", 'type', re.compile(r"(?:print_info|llm_load_print_meta):\s+(?:file type|model ftype)\s+=\s+(?P<v>.+?)\s*$"),
     _llama_ftype),
    ("llama.cpp", 'BPW', re.compile(r"(?:print_info|llm_load_print_meta):\s+(?:file size|model size)\s+=\s+(?P<v>[\d.]+) "
                             r"(?P<u>GiB|MiB) \([\d.]+ BPW\)"), _llama_fsize),
    ("llama.cpp", 'n_', re.compile(r"(?:print_info|llm_load_print_meta):\s+(?P<k>n_layer|n_embd|n_head_kv|n_vocab|n_swa)"
                             r"\s+=\s+(?P<v>\d+)\s*$"), _llama_meta_int),
    ("llama.cpp", 'layers to GPU', re.compile(r"offloaded (?P<x>\d+)/(?P<y>\d+) layers to GPU"), _llama_offloaded),
    ("llama.cpp", 'mmap =', re.compile(r"loading model tensors, this can take a while\.\.\. \(mmap = (?P<v>\w+)"), _llama_mmap),
    ("llama.cpp", 'buffer size', re.compile(r"(?:load_tensors|llm_load_tensors):\s+(?P<dev>\S+) (?:model )?buffer size =\s*"
                             r"(?P<v>[\d.]+) MiB"), _mib_figure("weights")),
    # llama-kv-cache-iswa.cpp: "using full-size SWA cache (ref: ...)" when swa_full is set (llama.cpp
    # --swa-full; LM Studio's runtime sets it by default, its logs show it for every SWA model)
    ("llama.cpp", 'full-size SWA cache', re.compile(r"using full-size SWA cache"), _llama_swa_full),
    ("llama.cpp", 'KV cache, size', re.compile(r"creating (?P<kind>non-SWA|\s*SWA) KV cache, size = (?P<cells>\d+) cells"), _llama_iswa),
    ("llama.cpp", 'KV buffer size', re.compile(r"(?P<dev>\S+) KV buffer size =\s*(?P<v>[\d.]+) MiB"), _mib_figure("kv")),
    ("llama.cpp", 'cells,', re.compile(r"llama_kv_cache\w*: size =\s*(?P<v>[\d.]+) MiB \(\s*(?P<cells>\d+) cells,\s*\d+ layers,"
                             r"[^)]*\), K \((?P<kt>\w+)\)"), _llama_kv_size),
    ("llama.cpp", 'KV self size', re.compile(r"KV self size\s+=\s*(?P<v>[\d.]+) MiB, K \((?P<kt>\w+)\)"), _llama_kv_size),
    ("llama.cpp", 'compute buffer size', re.compile(r"(?P<dev>\S+) compute buffer size =\s*(?P<v>[\d.]+) MiB"), _mib_figure("compute_buffer")),
    ("llama.cpp", 'output buffer size', re.compile(r"(?P<dev>\S+)\s+output buffer size =\s*(?P<v>[\d.]+) MiB"), _mib_figure("output_buffer")),
    ("llama.cpp", 'LoRA buffer size', re.compile(r"(?P<dev>\S+) LoRA buffer size =\s*(?P<v>[\d.]+) MiB"), _mib_figure("lora")),
    ("llama.cpp", ' = ', re.compile(_CTX + r":\s+(?P<k>n_ctx|n_ctx_per_seq|n_ctx_seq|n_seq_max|n_batch|n_ubatch)\s+=\s+"
                                    r"(?P<v>\d+)"), _llama_ctx_int),
    ("llama.cpp", 'flash_attn', re.compile(_CTX + r":\s+flash_attn\s+=\s+(?P<v>\S+)"), _llama_flash),
]


# ---------------------------------------------------------------------------------------------
# Ollama
# ---------------------------------------------------------------------------------------------

_LOGFMT = re.compile(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S+)')


def _logfmt(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _LOGFMT.findall(text)}


def _human(text: str) -> tuple[int, int] | None:
    """Ollama's format.HumanBytes2 ("%.1f GiB", "%.1f MiB", "%.1f KiB", "%d B") to bytes."""
    m = re.fullmatch(r"([\d.]+) (GiB|MiB|KiB|B)", text.strip())
    if not m:
        return None
    return amount(m[1], _UNIT[m[2]])


def _ollama_version(m: re.Match, s: _State, n: int, raw: str) -> None:
    s.version.setdefault("ollama", m["v"])


def _ollama_inference(m: re.Match, s: _State, n: int, raw: str) -> None:
    kv = _logfmt(m["rest"])
    name = kv.get("description") or kv.get("name")
    if name and not re.fullmatch(r"(CUDA|ROCm|Vulkan)\d+", name):
        s.set("gpu_name", name, n, raw)


def _ollama_offload(m: re.Match, s: _State, n: int, raw: str) -> None:
    kv = _logfmt(m["rest"])
    if kv.get("layers.offload", "").isdigit():
        s.set("n_gpu_layers", int(kv["layers.offload"]), n, raw)
    for key, what in (("memory.weights.total", "weights"), ("memory.required.kv", "kv"),
                      ("memory.graph.full", "compute_buffer")):
        got = _human(kv.get(key, ""))
        if got:
            s.add(what, got[0], got[1], n, raw, device=None, engine_estimate=True,
                  note=f"Ollama's own estimate ({key}), not an allocation")


def _ollama_start(m: re.Match, s: _State, n: int, raw: str) -> None:
    args = m["cmd"].split()
    flags = {"--ctx-size": "n_ctx", "--batch-size": "n_ubatch", "--n-gpu-layers": "n_gpu_layers",
             "--parallel": "n_seq_max", "--kv-cache-type": "kv_dtype"}
    for i, a in enumerate(args):
        if a in flags and i + 1 < len(args):
            v = args[i + 1]
            s.set(flags[a], int(v) if v.isdigit() else v, n, raw)
        elif a == "--flash-attn":
            s.set("flash_attn", True, n, raw)
        elif a == "--no-mmap":
            s.set("mmap", False, n, raw)
        elif a == "--model" and i + 1 < len(args):
            s.set("model_path", args[i + 1], n, raw)


def _ollama_file_type(m: re.Match, s: _State, n: int, raw: str) -> None:
    # ggml.go logs the GGUF's general.file_type as fs/ggml/type.go FileType.String() prints it
    # ("MXFP4", "Q8_0", "Q4_K_M"); reconcile.compare maps those names to recipes
    s.set("file_type", m["v"], n, raw)
    s.set("architecture", m["arch"], n, raw)


def _ollama_buffer(m: re.Match, s: _State, n: int, raw: str) -> None:
    got = _human(f"{m['v']} {m['u']}")
    if got is None:
        return
    kv = _logfmt(m["rest"])
    dev = kv.get("buffer_type") or kv.get("device") or kv.get("buffer") or kv.get("backend")
    what = {"model weights": "weights", "kv cache": "kv", "compute graph": "compute_buffer"}[m["kind"]]
    s.add(what, got[0], got[1], n, raw, device=dev)


def _ollama_load_request(m: re.Match, s: _State, n: int, raw: str) -> None:
    body = m["body"]
    # runner.go sends fit/alloc requests while it searches a layout, then the one it keeps: commit
    final = "Operation:commit" in body
    for key, setting in (("KvSize", "n_ctx"), ("BatchSize", "n_ubatch"), ("Parallel", "n_seq_max")):
        got = re.search(key + r":(\d+)", body)
        if got:
            s.set(setting, int(got[1]), n, raw, override=final)
    # GPULayers:37[ID:0 Layers:37(0..36)] counts the output layer like llama.cpp's "offloaded 37/37";
    # GPULayers:[] is a CPU-only load
    layers = re.search(r"GPULayers:(\d*)\[", body)
    if layers:
        s.set("n_gpu_layers", int(layers[1] or 0), n, raw, override=final)
    fa = re.search(r"FlashAttention:(\w+)", body)
    if fa:
        s.set("flash_attn", _bool(fa[1]), n, raw)
    kt = re.search(r"KvCacheType:(\w+)", body)
    if kt:
        s.set("kv_dtype", kt[1], n, raw)


_OLLAMA: list[Rule] = [
    ("ollama", 'Listening on', re.compile(r"Listening on .*\(version (?P<v>[^)\s]+)\)"), _ollama_version),
    ("ollama", 'inference compute', re.compile(r'msg="inference compute"(?P<rest>.*)$'), _ollama_inference),
    ("ollama", 'memory.', re.compile(r'msg="?offload(?: to \w+)?"? (?P<rest>.*memory\..*)$'), _ollama_offload),
    # server.go: "starting llama server" (llama runner), later "starting runner" (both engines)
    ("ollama", 'msg="starting ', re.compile(r'msg="starting (?:llama server|runner)" cmd="(?P<cmd>[^"]*)"'), _ollama_start),
    ("ollama", 'size=', re.compile(r'msg="(?P<kind>model weights|kv cache|compute graph)"(?P<rest>.*?) '
                          r'size="(?P<v>[\d.]+) (?P<u>GiB|MiB|KiB|B)"'), _ollama_buffer),
    ("ollama", 'file_type=', re.compile(r'msg="?"? architecture=(?P<arch>\S+) file_type=(?P<v>\w+)'), _ollama_file_type),
    ("ollama", 'request=', re.compile(r'msg="?load"? request="\{(?P<body>[^}]*)\}'), _ollama_load_request),
]

_RULES: list[Rule] = _VLLM + _OLLAMA + _LLAMA

# Words that say which engine wrote a line, for lines no rule reads (headers, warnings).
_MARKERS = {
    "vllm": re.compile(r"\bvLLM\b|\[(?:gpu_)?(?:model_runner|worker|gpu_worker|kv_cache_utils|executor_base)\.py"),
    "llama.cpp": re.compile(r"^(?:llama_model_loader|load_tensors|llm_load_tensors|print_info|llama_context|"
                            r"llama_kv_cache\w*|llama_new_context_with_model|ggml_cuda_init):"),
    "ollama": re.compile(r"source=(?:server|sched|routes|runner|ggml|device|backend|llama_server)\.go:\d+|ollama_llama_server|"
                         r"\bollama runner\b"),
}


_MARKER_LINES = 5000  # after this many lines, markers are looked for only while none was seen
# Literals that must be in a line for its marker expression to be worth running.
_MARKER_LITERALS = {"vllm": ("vLLM", ".py"), "llama.cpp": (":",), "ollama": ("source=", "ollama")}


def clean(line: str) -> str:
    """A log line without colour codes, trailing newline or surrounding space."""
    return _ANSI.sub("", line).strip()


class LogParser:
    """Feed lines one at a time; ``finish()`` gives the ParsedLog. Holds figures, never the log."""

    def __init__(self) -> None:
        self.s = _State()
        self.lines = 0
        self.bytes = 0

    def feed(self, line: str) -> None:
        self.lines += 1
        self.bytes += len(line)
        text = clean(line)
        if not text:
            return
        s = self.s
        if self.lines <= _MARKER_LINES or not any(s.markers.values()):
            for engine, rx in _MARKERS.items():
                if any(lit in text for lit in _MARKER_LITERALS[engine]) and rx.search(text):
                    s.markers[engine] += 1
        for engine, literal, rx, handler in _RULES:
            if literal not in text:
                continue
            m = rx.search(text)
            if m:
                s.markers[engine] += 1
                handler(m, s, self.lines, text)

    def finish(self) -> ParsedLog:
        s = self.s
        engine = _engine_of(s)
        figures = _kv_summaries_as_figures(s)
        if engine == "vllm":
            figures = [f for f in figures if _is_vllm(f)]
            figures += _vllm_block_tokens(s)
            figures += _vllm_activation_from_peak(figures)
        elif engine in ("llama.cpp", "ollama"):
            figures = [f for f in figures if not _is_vllm(f)]
        figures, dropped = _dedupe(figures)
        notes = list(s.notes) + dropped
        settings = LogSettings(**{k: v for k, v in s.settings.items() if k in LogSettings.model_fields},
                               sources=s.sources)
        version = s.version.get(engine) if engine else None
        family, inferred, generation = _version_family(engine, version, s)
        return ParsedLog(engine=engine, version=version, version_family=family, version_inferred=inferred,
                         vllm_generation=generation, settings=settings, figures=figures, notes=notes,
                         lines=self.lines, bytes_read=self.bytes)


_VLLM_KINDS = {"act_peak", "torch_peak", "non_torch", "cuda_graphs", "kv_capacity", "kv_capacity_tokens"}


def _is_vllm(f: Figure) -> bool:
    """Figures only vLLM rules make: vLLM ones carry no device (per GPU) and are not engine estimates."""
    return f.what in _VLLM_KINDS or (f.what == "weights" and f.device is None and not f.engine_estimate)


def _engine_of(s: _State) -> EngineId | None:
    m = s.markers
    if m["ollama"]:
        return "ollama"  # Ollama's llama runner prints llama.cpp's lines too
    if m["llama.cpp"] and m["llama.cpp"] >= m["vllm"]:
        return "llama.cpp"
    if m["vllm"]:
        return "vllm"
    return None


def _kv_summaries_as_figures(s: _State) -> list[Figure]:
    """llama.cpp prints per-device KV buffers and a per-cache total; the total is a figure only when
    no buffer line covers its cache (logs that print just ``KV self size``)."""
    out = list(s.figures)
    covered = {f.cache for f in s.figures if f.what == "kv" and not f.engine_estimate}
    for cache, v, r, n, raw in s.kv_summaries:
        if cache not in covered and v > 0:
            out.append(Figure(what="kv", device=None, value=v, resolution=r, cache=cache, line=n, raw=raw[:RAW_MAX]))
    return out


def _vllm_block_tokens(s: _State) -> list[Figure]:
    blocks = s.settings.get("gpu_blocks")
    if blocks is None:
        return []
    bs = s.settings.get("block_size")
    note = None
    if bs is None:
        bs = 16
        note = "blocks × 16 tokens (vLLM's default block_size; the log does not state it)"
    line, raw = s.blocks_at or (0, "")
    return [Figure(what="kv_capacity_tokens", device=None, value=blocks * bs, unit="tokens", line=line,
                   raw=raw[:RAW_MAX], note=note)]


def _vllm_activation_from_peak(figures: list[Figure]) -> list[Figure]:
    """vLLM 0.6.4 prints the torch peak with the weights in it; the activation peak is the difference
    (worker.py: peak_torch_memory is torch's allocated_bytes peak after the weights were loaded)."""
    if any(f.what == "act_peak" for f in figures):
        return []
    peak = next((f for f in figures if f.what == "torch_peak"), None)
    weights = min((f for f in figures if f.what == "weights"), key=lambda f: f.resolution, default=None)
    if peak is None or weights is None:
        return []
    return [Figure(what="act_peak", device=None, value=peak.value - weights.value,
                   resolution=peak.resolution + weights.resolution, line=peak.line, raw=peak.raw,
                   note=f"derived: peak_torch_memory − model weights (line {weights.line})")]


def _dedupe(figures: list[Figure]) -> tuple[list[Figure], list[str]]:
    """One figure per (what, device, cache, estimate): the most precisely printed, else the first.
    Workers under tensor parallelism print the same lines once each."""
    best: dict[tuple, Figure] = {}
    order: list[tuple] = []
    notes: list[str] = []
    for f in figures:
        key = (f.what, f.device, f.cache, f.engine_estimate)
        have = best.get(key)
        if have is None:
            best[key] = f
            order.append(key)
            continue
        if f.resolution < have.resolution:
            best[key] = f
        elif f.resolution == have.resolution and f.value != have.value and f.unit == have.unit:
            notes.append(f"{f.what} printed twice with different values (line {have.line}: {have.value:,}, "
                         f"line {f.line}: {f.value:,}); the first is used")
    return [best[k] for k in order], notes


def _version_family(engine: EngineId | None, version: str | None, s: _State
                    ) -> tuple[str | None, bool, str | None]:
    """Calibrations are keyed on an engine's version family: vLLM major.minor ("0.15"), Ollama
    major.minor ("0.5"), llama.cpp builds by thousands ("b6xxx", a release every few hours)."""
    generation = None
    if engine == "llama.cpp":
        if version:
            b = int(version[1:].split()[0])
            return f"b{b // 1000}xxx", False, None
        return None, False, None
    if engine == "ollama":
        if version:
            m = re.match(r"(\d+)\.(\d+)", version)
            return (f"{m[1]}.{m[2]}" if m else version), False, None
        return None, False, None
    if engine != "vllm":
        return None, False, None
    generation = s.vllm_generation
    family = None
    if version:
        m = re.match(r"(\d+)\.(\d+)", version)
        family = f"{m[1]}.{m[2]}" if m else version
        if generation is None and m:
            minor = (int(m[1]), int(m[2]))
            # V1 became the default in 0.8 and the only engine in 0.11.
            generation = "v0" if minor < (0, 8) else ("v1" if minor >= (0, 11) else None)
    if generation is None:
        v1_lines = any(f.what in ("kv_capacity", "kv_capacity_tokens") and
                       ("Available KV cache memory" in f.raw or "GPU KV cache size" in f.raw) for f in s.figures)
        generation = "v1" if v1_lines and not s.v0_formats else ("v0" if s.v0_formats else "v1")
    if family is None and generation == "v0":
        # Line formats date a V0 log: the one-line key=value profile is 0.6.4; the sentence
        # ("model weights take ...; non_torch_memory takes ...") is 0.7-0.8.
        if "profile_pairs" in s.v0_formats or "profile_lines" in s.v0_formats:
            return "0.6", True, "v0"
        if "sentence" in s.v0_formats:
            return "0.7", True, "v0"
        if "weights_gb" in s.v0_formats:
            return "0.6", True, "v0"
    return family, False, generation


# ---------------------------------------------------------------------------------------------
# The model a log names
# ---------------------------------------------------------------------------------------------

# Suffixes of Hub repository names for a quantized checkpoint of a base model ("Qwen/Qwen3-30B-A3B-FP8",
# "Meta-Llama-3.1-405B-Instruct-FP8", "...-AWQ", "...-GPTQ-Int4", "...-bnb-4bit"), and the vLLM
# quantization method each stands for (the `quantization=` value vLLM itself logs for them).
_QUANT_SUFFIX = re.compile(r"[-_.](?P<q>fp8(?:[-_]dynamic)?|awq|gptq(?:[-_]int[48])?|bnb[-_]4bit)$", re.IGNORECASE)
_QUANT_METHOD = {"fp8": "fp8", "awq": "awq", "gptq": "gptq", "bnb": "bitsandbytes"}
_GGUF_SUFFIX = re.compile(r"[-._](?:i?q\d\w*|mxfp4\w*|f16|bf16|fp16|f32)$", re.IGNORECASE)
# gguf-split's shard names ("gpt-oss-120b-MXFP4-00001-of-00002.gguf") and the vendor a GGUF's
# general.name or a file name starts with ("Openai_Gpt Oss 120b", "Meta-Llama-3.1-8B-Instruct")
_SPLIT_SUFFIX = re.compile(r"-\d{5}-of-\d{5}$")
_VENDOR_PREFIX = re.compile(r"^(?:meta|openai|mistralai|qwen|google|microsoft|deepseek-ai)-")
# Ollama stores models as content-addressed blobs: ".../blobs/sha256-<64 hex>" names no model.
_BLOB = re.compile(r"(?:^|[\\/])sha256[-:][0-9a-f]{64}$", re.IGNORECASE)


def quantization_in_name(name: str | None) -> tuple[str, str] | None:
    """(vLLM quantization method, the suffix) when a model name ends in a quantized-checkpoint suffix."""
    if not name:
        return None
    m = _QUANT_SUFFIX.search(name.rstrip("/"))
    if not m:
        return None
    key = re.split(r"[-_]", m["q"].lower())[0]
    return _QUANT_METHOD[key], m.group(0)[1:]


def is_blob_path(name: str | None) -> bool:
    return bool(name) and bool(_BLOB.search(name.strip().rstrip("\\/")))


def _base_name(raw: str) -> str:
    """The last path part of a name, whichever separator the machine that wrote the log used
    (Ollama's Go %q quoting doubles Windows backslashes)."""
    return re.split(r"[\\/]+", raw.strip().rstrip("\\/"))[-1]


def model_name_candidates(settings: LogSettings) -> list[str]:
    """Names the log gives its model, turned into ids a catalog may know (most literal first): the
    name as logged, its last path part, without a GGUF extension or type, without a quantized-
    checkpoint suffix (-FP8, -AWQ ...), lower-cased, without a vendor prefix or chat suffix. Ollama
    blob paths and local paths name nothing here."""
    out: list[str] = []
    for raw in (settings.model, settings.gguf_name, settings.model_path):
        if not raw or is_blob_path(raw):
            continue
        base = _base_name(raw)
        stem = _SPLIT_SUFFIX.sub("", re.sub(r"\.gguf$", "", base, flags=re.IGNORECASE))
        stem = _QUANT_SUFFIX.sub("", _GGUF_SUFFIX.sub("", stem))
        norm = re.sub(r"[\s_]+", "-", stem.strip()).lower()
        no_vendor = _VENDOR_PREFIX.sub("", norm)
        unquantized = _QUANT_SUFFIX.sub("", raw.rstrip("/"))
        for cand in (raw, unquantized, base, stem, norm, no_vendor, re.sub(r"-(instruct|chat|it)$", "", no_vendor)):
            if cand and cand not in out and not cand.startswith(("/", ".", "~")) and "\\" not in cand \
                    and not re.match(r"^[A-Za-z]:", cand):
                out.append(cand)
    return out


def model_named(settings: LogSettings) -> str | None:
    """The model as the log names it, for messages: a blob path is said to be one."""
    for raw in (settings.model, settings.gguf_name, settings.model_path):
        if raw and not is_blob_path(raw):
            return raw
    if settings.model_path:
        return f"an Ollama blob ({_base_name(settings.model_path)[:19]}...)"
    return None


def parse_lines(lines: Iterable[str]) -> ParsedLog:
    """Parse an iterable of log lines (streamed: each line is looked at once and dropped)."""
    p = LogParser()
    for line in lines:
        p.feed(line)
    return p.finish()
