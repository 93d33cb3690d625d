"""Working memory: prefill activations, the logits buffer, MoE routing, attention scores,
dequantization scratch, llama.cpp's compute buffer. CORE.

Only one layer's activations are alive at a time in inference, so the prefill term is a
per-token working set times the tokens of one forward pass (a chunk):

    act.prefill = T × (c_h × H + max(c_m × I_eff, A)) × b
    where  T      tokens in one forward pass: the engine's chunk (vLLM max_num_batched_tokens,
                  llama.cpp n_ubatch) or, without chunking, prompt × batch
           H      hidden_size;  I_eff  widest MLP per token: dense I, or k × I_moe + shared width
           A      attention working set per token: (2 n_h + 2 n_kv) × d_head (q, k, v, output)
           c_h, c_m  copies alive at the MLP peak (engine profile; fitted to vLLM profile logs)
           b      activation bytes (2 for bf16; 4 for ggml's f32 graph)

    act.logits = rows × V × 4 × copies     (fp32 logits; rows = sequences, chunk or profiled seqs)

Sources are on each term; checked by tests/estimate/test_activations.py and measured by
``fitcalc verify`` (the torch profile).
"""

from __future__ import annotations

from fitcalc.core.engines import EngineProfile
from fitcalc.core.estimate.terms import Term, make_term
from fitcalc.core.spec import Architecture

_FWD_SOURCE = ("per-token working set fitted to vLLM profile logs (vllm#10517: +0.92 GiB peak for +9000 "
               "prefill tokens, Llama-3.1-8B) and measured by fitcalc verify; Korthikanti et al. "
               "arXiv 2205.05198 for the tensors of a layer")
_LOGITS_SOURCE = "logits are fp32 [rows, vocab] (vLLM sampler, llama.cpp output buffer, transformers generate)"

Draft = tuple  # (term id, bytes, builder of the explained Term)


def mlp_width_per_token(arch: Architecture) -> tuple[int, str]:
    """Widest MLP a token passes through, in intermediate units, and how it was found."""
    widths = []
    if arch.dense_layer_indices() and arch.intermediate_size:
        widths.append((arch.intermediate_size, f"dense I {arch.intermediate_size}"))
    if arch.moe is not None:
        m = arch.moe
        w = m.experts_per_token * m.moe_intermediate_size + m.shared_width
        txt = f"k {m.experts_per_token} × I_moe {m.moe_intermediate_size}" + (
            f" + shared {m.shared_width}" if m.shared_width else "")
        widths.append((w, txt))
    return max(widths)


def attention_width_per_token(arch: Architecture) -> int:
    if arch.mla is not None:
        m = arch.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        # q, decompressed k and v of one chunk, latent, attention output
        return arch.num_attention_heads * (2 * qk + 2 * m.v_head_dim) + m.kv_lora_rank + m.qk_rope_head_dim
    d = arch.head_dim_resolved
    return (2 * arch.num_attention_heads + 2 * arch.num_key_value_heads) * d


def forward_tokens(engine: EngineProfile, chunk: int, prompt: int, batch: int) -> int:
    """Tokens in the largest forward pass. No chunking (0): every prompt at once. Engines that
    profile or reserve for a full chunk (vLLM, llama.cpp) use it whole; others use what the
    prompts fill of it."""
    if chunk == 0:
        return prompt * batch
    return chunk if engine.working.reserves_full_chunk else min(chunk, prompt * batch)


def widths(arch: Architecture) -> tuple[int, str, int]:
    """(I_eff, how it was found, A): the per-token widths act.prefill and the compute buffer use."""
    i_eff, i_txt = mlp_width_per_token(arch)
    return i_eff, i_txt, attention_width_per_token(arch)


def prefill_draft(arch: Architecture, engine: EngineProfile, tokens: int, tp: int = 1,
                  known_widths: tuple[int, str, int] | None = None) -> Draft:
    """[term: act.prefill] Under tensor parallelism the MLP and attention widths split over the
    ranks; the hidden states (residual stream) are whole on every rank. ``known_widths``: the
    result of ``widths(arch)`` when the caller keeps it (solvers call this thousands of times)."""
    w = engine.working
    i_eff, i_txt, a = known_widths or widths(arch)
    h = arch.hidden_size
    per_token = int((w.hidden_copies * h + max(w.mlp_copies * i_eff, a) / tp) * w.activation_bytes)
    n = tokens * per_token
    tp_txt = f" / TP {tp}" if tp > 1 else ""

    def build() -> Term:
        return make_term(
            "act.prefill", "activations: one prefill pass", n, kind="calibrated", band=0.3,
            formula="T × (c_h × H + max(c_m × I_eff, A) / TP) × b",
            inputs={"T": tokens, "H": h, "I_eff": i_eff, "A": a, "c_h": w.hidden_copies, "c_m": w.mlp_copies,
                    "b": w.activation_bytes, "TP": tp},
            explain=f"act.prefill: T {tokens:,} × ({w.hidden_copies:g} × H {h} + max({w.mlp_copies:g} × I_eff "
                    f"{i_eff} [{i_txt}], A {a}){tp_txt}) × {w.activation_bytes} B = {n:,} B",
            sources=(_FWD_SOURCE,))

    return ("act.prefill", n, build)


def moe_routing_draft(arch: Architecture, tokens: int) -> Draft | None:
    if arch.moe is None:
        return None
    e, k = arch.moe.num_experts, arch.moe.experts_per_token
    # router logits fp32 [T, E]; top-k weights fp32 and expert ids int64 [T, k]
    n = tokens * (e * 4 + k * (4 + 8))

    def build() -> Term:
        return make_term("act.moe_routing", "activations: MoE routing", n, kind="derived", band=0.5,
                         formula="T × (E × 4 + k × (4 + 8))",
                         inputs={"T": tokens, "E": e, "k": k},
                         explain=f"act.moe_routing: T {tokens:,} × (E {e} × 4 B fp32 logits + k {k} × 12 B "
                                 f"weights+ids) = {n:,} B",
                         sources=("router logits fp32 and top-k (weight, index) pairs per token",))

    return ("act.moe_routing", n, build)


def logits_rows(engine: EngineProfile, batch: int, tokens: int, large_gpu: bool) -> int:
    w = engine.working
    if w.logits_rows == "batch":
        return batch
    if w.logits_rows == "chunk":
        return tokens
    if large_gpu and w.large_gpu_logits_rows is not None:
        return w.large_gpu_logits_rows
    return int(w.logits_rows)


def logits_draft(arch: Architecture, engine: EngineProfile, rows: int) -> Draft:
    v = arch.vocab_size
    copies = engine.working.logits_copies
    n = int(rows * v * 4 * copies)

    def build() -> Term:
        return make_term("act.logits", "logits buffer (fp32)", n, kind="derived" if copies == 1 else "heuristic",
                         band=0.0 if copies == 1 else 0.5, formula="rows × V × 4 × copies",
                         inputs={"rows": rows, "V": v, "copies": copies},
                         explain=f"act.logits: {rows:,} rows × V {v:,} × 4 B × {copies:g} = {n:,} B",
                         sources=(_LOGITS_SOURCE, f"rows rule {engine.working.logits_rows!r}: "
                                                  f"engine_profiles/{engine.id}.yaml"))

    return ("act.logits", n, build)


def uses_eager_attention(arch: Architecture, engine: EngineProfile) -> bool:
    """Eager attention: the engine's rule, or an architecture the engine always runs eagerly
    (transformers: gpt-oss declares ``_supports_sdpa = False`` for its attention sinks)."""
    w = engine.working
    return w.attention == "eager" or arch.family in w.eager_model_types


def eager_attention_draft(arch: Architecture, engine: EngineProfile, q_tokens: int, kv_tokens: int,
                          batch: int) -> Draft | None:
    """[term: act.attention] Eager attention materialises the [B, heads, q, k] score matrix of one
    layer; FlashAttention and SDPA's fused kernels do not.

        B × n_heads × q × k × b_s × copies  +  B × q × k × 2 (the additive causal mask, bf16)
    where  b_s     bytes of one score (engine: eager_score_bytes)
           copies  score tensors alive together at the peak (engine: eager_score_copies)
    Source: transformers models/gpt_oss/modeling_gpt_oss.py eager_attention_forward (4.55 .. 5.x):
    scores, scores + mask, cat(sinks) and its max-shifted copy, softmax: three bf16 copies alive
    together; integrations/sdpa_attention.py never builds them. Checked by
    tests/estimate/test_engine_logs.py::test_transformers_gpt_oss_eager_16k_h200_does_not_fit.
    """
    if not uses_eager_attention(arch, engine):
        return None
    w = engine.working
    nh = arch.num_attention_heads
    scores = batch * nh * q_tokens * kv_tokens
    mask = batch * q_tokens * kv_tokens * 2
    n = int(scores * w.eager_score_bytes * w.eager_score_copies) + mask
    why = ("the engine runs this architecture eagerly" if w.attention != "eager" else "eager attention")

    def build() -> Term:
        return make_term("act.attention", "attention scores (eager)", n, kind="derived", band=0.1,
                         formula="B × n_heads × q × k × b_s × copies + B × q × k × 2",
                         inputs={"B": batch, "n_heads": nh, "q": q_tokens, "k": kv_tokens,
                                 "b_s": w.eager_score_bytes, "copies": w.eager_score_copies},
                         explain=f"act.attention ({why}): {batch} × {nh} heads × {q_tokens:,} × {kv_tokens:,} × "
                                 f"{w.eager_score_bytes} B × {w.eager_score_copies:g} + mask {mask:,} B = {n:,} B",
                         sources=("transformers eager_attention_forward (modeling_gpt_oss.py, models' eager paths): "
                                  "the score matrix and its softmax are materialised; FlashAttention (Dao et al. "
                                  "2022) and fused SDPA never hold them",
                                  f"engine_profiles/{engine.id}.yaml: working.eager_score_copies"))

    return ("act.attention", n, build)


def moe_workspace_draft(arch: Architecture, engine: EngineProfile, tokens: int, tp: int = 1) -> Draft | None:
    """[term: act.moe_workspace] The MoE layer's working set where the engine runs it as one kernel
    over all token-expert pairs (S = M × k), per rule:

        fused       M × k × (max(2 I / TP, H) + I / TP) × b,   M = min(T, moe_chunk_tokens)
        grouped_mm  S × (H + max(3 I, 3 H)) × b
        batched_mm  S × (H + 3 I + 3 H + 3 I × H) × b
    where  k  experts per token;  I  moe_intermediate_size;  H  hidden_size;  b  activation bytes
    Sources: vllm/model_executor/layers/fused_moe/fused_moe.py fused_experts_impl (0.9 .. 0.19):
    cache13 = empty(M * topk * max(N, K)) holds the gate_up output [M, k, N = 2 I] and, reused,
    the down output [M, k, K = H]; intermediate_cache2 = empty(M * topk, N // 2); M is
    min(tokens, VLLM_FUSED_MOE_CHUNK_SIZE = 32768). transformers 5.x integrations/moe.py
    grouped_mm_experts_forward (the default experts_implementation on CUDA with torch >= 2.9): the
    sorted inputs [S, H] stay referenced while the gate_up output [S, 2 I] and its activation [S, I]
    are alive, then the down output, its weighted copy and the reordered copy [S, H] each;
    batched_mm_experts_forward also gathers each pair's gate_up [2 I, H] and down [H, I] weights.
    """
    rule = engine.working.moe_workspace
    if rule == "none" or arch.moe is None:
        return None
    m = arch.moe
    k, h, b = m.experts_per_token, arch.hidden_size, engine.working.activation_bytes
    i = -(-m.moe_intermediate_size // tp)
    if rule == "fused":
        rows = min(tokens, engine.working.moe_chunk_tokens)
        per = max(2 * i, h) + i
        formula, src = "M × k × (max(2 I / TP, H) + I / TP) × b", "vllm fused_moe.fused_experts_impl (cache13, cache2)"
    elif rule == "grouped_mm":
        rows, per = tokens, h + max(3 * i, 3 * h)
        formula, src = "S × (H + max(3 I, 3 H)) × b", "transformers 5.x integrations/moe.py grouped_mm_experts_forward"
    else:
        rows, per = tokens, h + 3 * i + 3 * h + 3 * i * h
        formula, src = "S × (H + 3 I + 3 H + 3 I × H) × b", "transformers 5.x integrations/moe.py batched_mm_experts_forward"
    n = rows * k * per * b

    def build() -> Term:
        # the fused caches are read off the code; the transformers paths are not measured yet
        return make_term("act.moe_workspace", f"MoE working set ({rule})", n, kind="derived",
                         band=0.1 if rule == "fused" else 0.2,
                         formula=formula,
                         inputs={"M": rows, "k": k, "I": m.moe_intermediate_size, "H": h, "TP": tp, "b": b},
                         explain=f"act.moe_workspace ({rule}): {rows:,} tokens × k {k} × {per:,} × {b} B = {n:,} B",
                         sources=(src,))

    return ("act.moe_workspace", n, build)


def sampler_draft(arch: Architecture, engine: EngineProfile, rows: int, forward_bytes: int) -> Draft:
    """[term: act.logits] vLLM's profile run: the sampler warm-up after the dummy forward.

        max(0, R × V × 4 × s − F)
    where  R  rows: min(max_num_seqs, max_num_batched_tokens)  V  vocab_size
           s  the warm-up's peak in fp32 copies of the logits (engine: working.sampler_copies)
           F  the forward pass's working memory (the other act.* terms): the profile's torch peak is
              the larger of the two phases, so this term is what the sampler adds above the forward
    s = 9.5 from the code (vLLM 0.9 .. 0.19): the bf16 logits (0.5) stay referenced by
    gpu_model_runner._dummy_sampler_run while sampler.py makes an fp32 copy (1); the dummy metadata
    sets top_k = V - 1 and top_p = 0.99, so topk_topp_sampler.apply_top_k_top_p sorts every row:
    sorted values (1) and int64 indices (2), and PyTorch's segmented sort (aten SortStable.cu
    segmented_sort_pairs) holds int64 source indices (2) and cub's alternate key (1) and value (2)
    buffers while it runs. Checked by tests/estimate/test_engine_logs.py (gpt-oss-120b on one H100,
    vllm#23278 and #27508; Llama-3.1-8B and Qwen3-8B on an A100 40GB).
    """
    v = arch.vocab_size
    s = engine.working.sampler_copies or 1.0
    peak = int(rows * v * 4 * s)
    n = max(0, peak - forward_bytes)

    def build() -> Term:
        return make_term("act.logits", "sampler warm-up (logits, sort)", n, kind="derived", band=0.1,
                         formula="max(0, R × V × 4 × s − F)",
                         inputs={"R": rows, "V": v, "s": s, "F": forward_bytes},
                         explain=f"act.logits: sampler peak R {rows:,} × V {v:,} × 4 B × {s:g} = {peak:,} B; "
                                 f"above the forward's {forward_bytes:,} B by {n:,} B",
                         sources=("vllm/v1/worker/gpu_model_runner.py profile_run/_dummy_sampler_run, "
                                  "vllm/v1/sample/ops/topk_topp_sampler.py apply_top_k_top_p (0.9 .. 0.19); "
                                  "pytorch aten/src/ATen/native/cuda/SortStable.cu segmented_sort_pairs",
                                  f"engine_profiles/{engine.id}.yaml: working.sampler_copies"))

    return ("act.logits", n, build)


def capture_sizes(engine: EngineProfile, max_num_seqs: int, chunk: int) -> tuple[int, int]:
    """(piecewise graphs, full decode graphs) vLLM captures.

    Sizes: [1, 2, 4] + range(8, 256, 8) + range(256, max + 1, 16), max = max_cudagraph_capture_size
    (default min(2 × max_num_seqs, 512)), none above max_num_batched_tokens; FULL decode graphs
    only for sizes ≤ max_num_seqs. Source: vllm/config/vllm.py _set_cudagraph_sizes and
    compilation.py (0.11 .. 0.19; "Profiling CUDA graph memory: PIECEWISE=51 (largest=512),
    FULL=35 (largest=256)" in a 0.19.1 log at max_num_seqs 256). vLLM 0.9/0.10 (rule "0.9"):
    [1, 2, 4] + range(8, 513, 8), piecewise graphs only.
    """
    o = engine.overhead
    if o.cudagraph_sizes_rule == "0.9":  # vLLM 0.9/0.10 compilation.py: 512 whatever max_num_seqs
        top = o.cudagraph_max_capture_size or 512
        sizes = [1, 2, 4] + list(range(8, 513, 8))
    else:
        top = o.cudagraph_max_capture_size or min(2 * max_num_seqs, 512)
        sizes = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, top + 1, 16))
    sizes = [x for x in sizes if x <= top and x <= max(chunk, 1)]
    mode = o.cudagraph_mode
    if mode == "none":
        return 0, 0
    full = [x for x in sizes if x <= max_num_seqs] if mode == "full_and_piecewise" else []
    return len(sizes), len(full)


def cuda_graphs_draft(arch: Architecture, engine: EngineProfile, max_num_seqs: int, chunk: int) -> Draft | None:
    """[term: overhead.cuda_graphs] vLLM's CUDA graphs, per captured graph:

        (n_piecewise + n_full) × H × c
    where  n_*  graphs captured (capture_sizes)   H  hidden_size
           c    bytes per graph and hidden unit (engine: cudagraph_bytes_per_hidden)
    c = 8,100 B, fitted on two logs of Qwen3-8B (H 4096) on an A100 40GB (vLLM 0.9.2: 67 piecewise
    graphs, 2.24 GiB -> 8,764 B; 0.19.1: 51 + 35 graphs, 2.44 GiB -> 7,438 B); held out:
    Qwen3-30B-A3B-FP8 (H 2048, 48 layers against 36) on a GB10 (0.13.0, 51 + 35 graphs): 1.33 GiB
    predicted, 1.28 GiB logged. The layer count does not enter: the held-out log, with a third more
    layers and half the width, took half the memory per graph.
    """
    n_pw, n_full = capture_sizes(engine, max_num_seqs, chunk)
    c = engine.overhead.cudagraph_bytes_per_hidden
    graphs = n_pw + n_full
    h = arch.hidden_size
    n = int(graphs * h * c)
    if n <= 0:
        return None
    where = "inside" if engine.overhead.cuda_graphs_in_budget else "outside"

    def build() -> Term:
        return make_term("overhead.cuda_graphs", "CUDA graphs", n, kind="calibrated", band=0.15,
                         formula="(n_piecewise + n_full) × H × c",
                         inputs={"n_piecewise": n_pw, "n_full": n_full, "H": h, "c": c,
                                 "mode": engine.overhead.cudagraph_mode},
                         explain=f"overhead.cuda_graphs: ({n_pw} piecewise + {n_full} full graphs) × "
                                 f"H {h} × {c:g} B = {n:,} B ({where} the "
                                 f"{engine.overhead.memory_fraction_name or 'memory'} budget)",
                         sources=("vllm/v1/worker/gpu_model_runner.py capture_model; vllm/config/vllm.py "
                                  "_set_cudagraph_sizes",
                                  f"engine_profiles/{engine.id}.yaml: overhead.cudagraph_bytes_per_hidden"))

    return ("overhead.cuda_graphs", n, build)


def dequant_scratch_draft(largest_packed_matrix: int, engine: EngineProfile) -> Draft | None:
    """Weight-only paths that dequantize a packed matrix to bf16 before its matmul hold one copy."""
    if not engine.working.dequant_scratch or largest_packed_matrix == 0:
        return None
    n = largest_packed_matrix * 2

    def build() -> Term:
        return make_term("act.dequant_scratch", "dequantization scratch (bf16)", n, kind="derived", band=0.1,
                         formula="largest packed matrix numel × 2",
                         inputs={"numel": largest_packed_matrix},
                         explain=f"act.dequant_scratch: {largest_packed_matrix:,} weights × 2 B = {n:,} B",
                         sources=("dequantize-on-the-fly matmul: one bf16 copy of the matrix in use",))

    return ("act.dequant_scratch", n, build)


def compute_buffer_draft(arch: Architecture, engine: EngineProfile, tokens: int, kv_cells: int,
                         batch: int, output: bool = True, layers: bool = True) -> Draft:
    """[term: act.compute_buffer] llama.cpp's compute buffer on one device: the worst-case graph of
    one ubatch, f32 intermediates, for the nodes that device runs.

    buffer = [layers] mask + max([layers] layer working set, [output] output logits) + scheduler extra
    where  mask     T × kv_cells × 2 (f16 KQ mask, alive for the whole graph)
           layer    T × (3 H + max(3 I_eff, A)) × 4, plus n_heads × T × kv_cells × 4 without flash attention
           output   R × V × 4: R = T (llama.cpp graph_reserve: n_outputs = n_tokens of the ubatch) or
                    R = parallel sequences (Ollama's Go engine, runner/ollamarunner/runner.go
                    reserveWorstCaseGraph: batch.Outputs = Empty(I32, s.parallel), until v0.30)
    A device that holds no repeating layer (``-ngl`` below the layer count puts the first layers on
    the CPU; ``-ngl 0`` none) has no layer working set nor mask: the scheduler (ggml-backend.cpp
    ggml_backend_sched_split_graph) allocates a node's output on the backend that runs it.
    No closed form is published (facts: gguf-parser-go mirrors the allocator instead); checked
    against llama.cpp logs with a 30% band (tests/estimate/test_engines_logs.py).
    """
    w = engine.working
    i_eff, _ = mlp_width_per_token(arch)
    a = attention_width_per_token(arch)
    h, v = arch.hidden_size, arch.vocab_size
    b = w.activation_bytes
    mask = tokens * kv_cells * 2 if layers else 0
    layer = tokens * int(w.hidden_copies * h + max(w.mlp_copies * i_eff, a)) * b if layers else 0
    if layers and uses_eager_attention(arch, engine):
        layer += arch.num_attention_heads * tokens * kv_cells * 4
    rows = batch if w.logits_rows == "batch" else tokens
    logits = rows * v * 4 if output else 0  # only the device that holds the output layer
    n = mask + max(layer, logits) + w.graph_compute_extra_bytes

    def build() -> Term:
        return make_term(
            "act.compute_buffer", "compute buffer (worst-case graph)", n, kind="heuristic", band=0.3,
            formula="[layers] T × cells × 2 + max([layers] T × (3H + max(3 I_eff, A)) × 4, [output] R × V × 4) + extra",
            inputs={"T": tokens, "cells": kv_cells, "H": h, "I_eff": i_eff, "A": a, "V": v, "R": rows,
                    "layers": str(layers), "output": str(output)},
            explain=f"act.compute_buffer: mask {mask:,} + max(layer {layer:,}, output {logits:,}) + "
                    f"{w.graph_compute_extra_bytes:,} = {n:,} B",
            sources=("llama.cpp graph reserve with n_ubatch tokens; calibrated on ik_llama.cpp#822 (456.98 MiB) "
                     "and an Ollama log (560.00 MiB), see engine-logs",))

    return ("act.compute_buffer", n, build)


# llama.cpp host buffers. Two logs: with every layer on the GPU, Ollama's Llama-3.1-8B (ubatch 512)
# logged "CUDA_Host compute buffer 24.01 MiB" = 3 x 512 x 4096 x 4 B (graph inputs kept in pinned
# host memory); with every expert tensor on the CPU, gpt-oss-20b (ik_llama.cpp#822) logged 263.15 MiB.
# No closed form is published; HOST_COMPUTE_FACTOR scales the one-layer working set so the second
# log is met (calibrated on that one log; no held-out check yet).
HOST_INPUT_COPIES = 3
HOST_COMPUTE_FACTOR = 2.9
_HOST_SOURCE = ("llama.cpp CUDA_Host compute buffer: Ollama log 24.01 MiB (Llama-3.1-8B, all on GPU); "
                "ik_llama.cpp#822 263.15 MiB (gpt-oss-20b, --n-cpu-moe 99)")


def host_compute_draft(arch: Architecture, engine: EngineProfile, tokens: int, cpu_computes: bool) -> Draft:
    """[term: act.host_compute] Host-memory graph buffers of a llama.cpp-style engine:

        3 × T × H × 4  +  (CPU runs layers or experts) 2.9 × T × (c_h × H + c_m × I_eff) × 4
    """
    w = engine.working
    h = arch.hidden_size
    i_eff, i_txt = mlp_width_per_token(arch)
    base = HOST_INPUT_COPIES * tokens * h * 4
    work = int(HOST_COMPUTE_FACTOR * tokens * (w.hidden_copies * h + w.mlp_copies * i_eff) * 4) if cpu_computes else 0
    n = base + work

    def build() -> Term:
        return make_term(
            "act.host_compute", "host compute buffer", n, kind="heuristic", band=0.5, placement="cpu",
            formula="3 × T × H × 4 + [CPU computes] 2.9 × T × (c_h × H + c_m × I_eff) × 4",
            inputs={"T": tokens, "H": h, "I_eff": i_eff, "cpu_computes": int(cpu_computes)},
            explain=f"act.host_compute: 3 × T {tokens:,} × H {h} × 4 B = {base:,} B"
                    + (f" + 2.9 × T × ({w.hidden_copies:g} × H + {w.mlp_copies:g} × I_eff {i_eff} [{i_txt}]) × 4 B "
                       f"= {work:,} B" if cpu_computes else " (no layer or expert runs on the CPU)") + f" → {n:,} B",
            sources=(_HOST_SOURCE,))

    return ("act.host_compute", n, build)


def host_output_draft(arch: Architecture, n_seq_max: int, embeddings: bool = False) -> Draft:
    """[term: act.host_output] llama.cpp's graph output buffer, in pinned host memory.

    bytes = n_seq_max × (V + (H if embeddings)) × 4
    where  V  vocab_size (fp32 logits per output row);  H  hidden_size (fp32 embedding per row, only
              when the context was created with embeddings on: Ollama's runner always does)
    Source: llama.cpp src/llama-context.cpp ``output_reserve(n_seq_max)``: logits_size =
    n_vocab × n_outputs_max, embd_size = n_embd × n_outputs_max, both float. Checked against
    ik_llama.cpp#822 (0.77 MiB = 201,088 × 4 B) and an Ollama 0.5.4 log (2.02 MiB = 4 × (128,256 +
    4,096) × 4 B) in tests/reconcile/test_compare.py. Not part of a GPU's footprint (CUDA_Host).
    """
    width = arch.vocab_size + (arch.hidden_size if embeddings else 0)
    n = n_seq_max * width * 4

    def build() -> Term:
        return make_term("act.host_output", "host output buffer (logits)", n, kind="derived", band=0.0,
                         placement="cpu", formula="n_seq_max × (V + H·embeddings) × 4",
                         inputs={"n_seq_max": n_seq_max, "V": arch.vocab_size, "H": arch.hidden_size,
                                 "embeddings": str(embeddings)},
                         explain=f"act.host_output: {n_seq_max} × ({arch.vocab_size:,}"
                                 + (f" + {arch.hidden_size:,}" if embeddings else "") + f") × 4 B = {n:,} B",
                         sources=("llama.cpp src/llama-context.cpp output_reserve(): (n_vocab + n_embd if "
                                  "embeddings) × n_outputs_max floats",))

    return ("act.host_output", n, build)
