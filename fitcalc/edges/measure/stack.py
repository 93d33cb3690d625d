"""The layer stack `fitcalc verify` builds and runs: the torch engine profile made real. EDGE (torch).

Weights: every tensor of ``tensor_inventory`` for the (truncated) model, in the format the recipe
gives it (``fitcalc.edges.measure.packed``: the real storage layout, random values). KV cache: K and V
preallocated for context x batch on full-attention layers, a ring buffer of the window on
sliding layers (engine_profiles/torch.yaml: kv.full exact, kv.sliding window).

Forward (prefill in chunks of ``chunk`` tokens, then one decode step), one layer at a time:
  attention  q, k, v projections; RoPE; K/V written to the cache; for each of the G query heads
             that share a KV head, attention over the cached past and over the current chunk
             (flash kernels that return the log-sum-exp), merged with the per-head sink (gpt-oss)
             as one more log-sum-exp term; o_proj; residual add in place.
  MLP/MoE    router logits (fp32) and top-k; then, as fused-MoE kernels do, one [pairs, 2W] buffer
             filled expert by expert (each expert's matrix dequantized, used and freed), the
             activation into a [pairs, W] buffer, and the down projection expert by expert,
             weighted and added into the output. A dense MLP is the same with one expert.
  logits     only for the last position of each sequence.

Working memory is therefore T x (2 H + max(3 k W, (2 n_h + 2 n_kv) d)) activations plus one
dequantized matrix, the routing tensors and the logits, which is what the torch profile predicts
(the constants are fitted from these measurements: docs/validation.md).

A ``Shard`` selects the part of the model one process holds under tensor, expert or pipeline
parallelism (heads, MLP widths, experts, layers, embedding on the first stage, head on the last);
the single-process stack is the whole. With a ``comm`` (``fitcalc.edges.measure.collectives``) the
sharded forward runs the collectives a tensor/pipeline-parallel engine runs: an all-reduce after
the attention output and after the MLP/MoE output and of the vocabulary-parallel embedding lookup,
an all-gather of the vocabulary-parallel logits, send/recv of the hidden states between pipeline
stages and of the next token from the last stage back to the first.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

from fitcalc.core.errors import InputError
from fitcalc.core.estimate.kvcache import kv_format
from fitcalc.core.estimate.weights import TensorEntry, entry_format, rank_shape, tensor_inventory, unit_of, width_units
from fitcalc.core.formats import get_format
from fitcalc.edges.measure import check_buildable, require_torch
from fitcalc.core.measure.compare import signatures
from fitcalc.edges.measure.packed import COMPUTE, Packed, build_packed, fill_normal, float_dtype
from fitcalc.core.spec import Architecture, ModelSpec, RecipeSpec

torch = require_torch()
F = torch.nn.functional

# Elements per step of the fp32 parts (norms, activation, RoPE): their temporaries stay at a few
# 128 KiB buffers (1 MiB on a GPU, where each step costs kernel launches) whatever the number of
# tokens, so the working memory is the buffers that scale.
_STEP_ELEMENTS = 1 << 15
_STEP_ELEMENTS_GPU = 1 << 19
_GPT_OSS_ALPHA = 1.702  # gpt-oss SwiGLU: glu = gate * sigmoid(alpha * gate), out = (up + 1) * glu
_GPT_OSS_LIMIT = 7.0  # swiglu_limit in gpt-oss config.json
_NORM_EPS = 1e-5

# Vector formats as torch dtypes (GGUF's f32/f16 vectors included).
_VECTOR_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "f32": torch.float32,
                  "f16": torch.float16, "bf16-gguf": torch.bfloat16}


# ---------------------------------------------------------------------------------------------
# shards
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """The part of the model one process holds. Default: all of it.

    layers     decoder layers held (pipeline parallelism); None = all layers of the model given
    tp         (rank, size): every tensor cut as ``fitcalc.core.estimate.weights.rank_shape`` says
               (vLLM's parallel layers: heads, KV heads, MLP widths in whole blocks, vocabulary)
    ep         (rank, size): routed experts split whole over ``size`` ranks
    embedding  holds the input embedding: the first pipeline stage
    head       holds the final norm and lm_head and computes the logits: the last stage (with a
               tied embedding it keeps its own copy of the embedding as the output matrix)
    """

    layers: tuple[int, ...] | None = None
    tp: tuple[int, int] = (0, 1)
    ep: tuple[int, int] = (0, 1)
    embedding: bool = True
    head: bool = True

    def holds(self, layer: int) -> bool:
        return self.layers is None or layer in self.layers

    def experts(self, n: int) -> range:
        rank, size = self.ep
        if n % size:
            raise InputError(f"{n} experts do not split evenly over {size} expert-parallel ranks")
        per = n // size
        return range(rank * per, (rank + 1) * per)

    def split(self, n: int, what: str) -> int:
        size = self.tp[1]
        if size == 1:
            return n
        if n % size:
            raise InputError(f"{what} ({n}) does not split evenly over tensor-parallel size {size}")
        return n // size

    def kv_heads(self, n_kv: int) -> int:
        return max(1, n_kv // self.tp[1])

    @property
    def row_parallel_bias(self) -> bool:
        """Whether this rank adds the bias of a row-parallel matrix: rank 0 of the TP group only,
        so that the all-reduce adds it once (vLLM RowParallelLinear.forward)."""
        return self.tp[0] == 0

    def entry_shape(self, e: TensorEntry, arch: Architecture, unit: int = 1) -> tuple[tuple[int, ...], int]:
        """(shape, copies) of an inventory entry on this shard (``unit``: the down projection's
        block along its input, for MLP widths)."""
        shape, copies, _ = rank_shape(e, arch, self.tp[1], self.ep[1], unit)
        return shape, copies

    def holds_global(self, e: TensorEntry, arch: Architecture) -> bool:
        """Whether a tensor outside the decoder layers lives on this shard."""
        if e.group == "embedding":
            return self.embedding or (self.head and arch.tie_word_embeddings)
        return self.head  # final norm, lm_head


def _tensor_seed(seed: int, name: str, layer: int | None) -> int:
    """A seed per tensor (name and layer), the same in every process: zlib's CRC-32, not
    ``hash()``, which Python salts per process."""
    import zlib

    return (seed * 1_000_003 + zlib.crc32(f"{name}@{layer}".encode())) & 0x7FFF_FFFF_FFFF_FFFF


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------


def _local_name(name: str) -> str:
    """'model.layers.{i}.mlp.experts.{j}.gate_proj.weight' -> 'mlp.experts.gate_proj.weight'."""
    return name.replace("model.layers.{i}.", "").replace(".{j}", "")


def layer_signature(arch: Architecture, i: int) -> str:
    """What layer i is made of (attention kind, dense or MoE): layers with the same signature hold
    the same tensors, so one measured layer stands for all of them."""
    return signatures(arch.layer_kinds(), set(arch.dense_layer_indices()))[i]


@dataclass
class Layer:
    index: int
    kind: str  # full_attention | sliding_attention
    dense: bool
    mats: dict[str, Packed] = field(default_factory=dict)
    vecs: dict[str, object] = field(default_factory=dict)  # name -> tensor
    k_cache: object = None
    v_cache: object = None


class Unsupported(InputError):
    """A model or setting the stack does not build (one line, exit 1)."""


# ---------------------------------------------------------------------------------------------
# attention kernels: (out, lse) with out [B, H, L, d] and lse fp32 [B, H, L]
# ---------------------------------------------------------------------------------------------

_NEG_INF = float("-inf")


def attend_math(q, k, v, mask, causal: bool, scale: float):
    """Reference attention in fp32, tiled over query rows so scores stay bounded."""
    B, H, L, d = q.shape
    S = k.shape[2]
    kf, vf = k.to(torch.float32), v.to(torch.float32)
    out = torch.empty(B, H, L, v.shape[-1], dtype=q.dtype, device=q.device)
    lse = torch.empty(B, H, L, dtype=torch.float32, device=q.device)
    step = max(1, (1 << 20) // max(S * H * B, 1))
    for a in range(0, L, step):
        b = min(L, a + step)
        s = torch.matmul(q[:, :, a:b].to(torch.float32), kf.transpose(-1, -2)) * scale
        if mask is not None:
            s += mask[..., a:b, :].to(torch.float32)
        if causal:
            i = torch.arange(a, b, device=q.device).view(-1, 1)
            j = torch.arange(S, device=q.device).view(1, -1)
            s.masked_fill_(j > i + (S - L), _NEG_INF)
        m = torch.logsumexp(s, dim=-1)
        lse[:, :, a:b] = m
        p = torch.exp(s - m.unsqueeze(-1)).nan_to_num_(0.0)
        out[:, :, a:b] = torch.matmul(p, vf).to(q.dtype)
    return out, lse


def _attend_cpu(q, k, v, mask, causal, scale):
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, causal, attn_mask=mask, scale=scale)


def _attend_cuda(q, k, v, mask, causal, scale):
    bias = None
    if mask is not None:
        B, H, L = q.shape[:3]
        S = mask.shape[-1]
        if S % 16:  # the memory-efficient kernel wants the bias rows 16-element aligned (as SDPA pads)
            padded = torch.zeros(*mask.shape[:-1], -(-S // 16) * 16, dtype=mask.dtype, device=mask.device)
            padded[..., :S] = mask
            mask = padded[..., :S]
        bias = mask.expand(B, H, L, S)
    out, lse, _, _ = torch.ops.aten._scaled_dot_product_efficient_attention(
        q.contiguous(), k, v, bias, True, 0.0, causal, scale=scale)
    return out, lse[..., : q.shape[2]]  # lse rows are padded to a multiple of 32


class Attention:
    """Chooses the fused kernel for the device, falls back to the math path (and says so)."""

    def __init__(self, device_type: str, force_math: bool = False):
        self.kernel = "math" if force_math else {"cpu": "flash-cpu", "cuda": "efficient-cuda"}.get(device_type, "math")
        self.fallback_reason: str | None = None

    def __call__(self, q, k, v, mask, causal, scale):
        if self.kernel == "flash-cpu":
            return _attend_cpu(q, k, v, mask, causal, scale)
        if self.kernel == "efficient-cuda":
            try:
                return _attend_cuda(q, k, v, mask, causal, scale)
            except RuntimeError as e:  # an unsupported shape or GPU: keep measuring, say so
                if isinstance(e, torch.OutOfMemoryError):
                    raise
                self.kernel, self.fallback_reason = "math", f"efficient attention failed: {str(e).splitlines()[0]}"
        return attend_math(q, k, v, mask, causal, scale)


def band_mask(q_pos, k_pos, window: int | None, dtype, device):
    """Additive mask [1, 1, L, S]: 0 where key position <= query position (and within the
    window), -inf elsewhere; k_pos < 0 marks an empty slot. Also returns rows with no key."""
    qp = q_pos.view(-1, 1)
    kp = k_pos.view(1, -1)
    keep = (kp >= 0) & (kp <= qp)
    if window is not None:
        keep &= kp > qp - window
    mask = torch.zeros(keep.shape, dtype=dtype, device=device).masked_fill_(~keep, _NEG_INF)
    return mask.view(1, 1, *keep.shape), keep.any(dim=-1)


# ---------------------------------------------------------------------------------------------
# the stack
# ---------------------------------------------------------------------------------------------


class Stack:
    """Weights, KV cache and forward of the first layers of a model, on one device."""

    def __init__(self, model: ModelSpec, recipe: RecipeSpec, device, *, shard: Shard = Shard(),
                 include_embeddings: bool = True, tracker=None, attention_math: bool = False, comm=None,
                 seed: int = 0):
        check_buildable(model)
        self.model = model
        self.arch: Architecture = model.architecture  # type: ignore[assignment]
        self.recipe = recipe
        self.device = torch.device(device)
        self.shard = shard
        self.comm = comm  # fitcalc.edges.measure.collectives.Collectives, or None for one process
        self.seed = seed
        self.include_embeddings = include_embeddings
        self.tracker = tracker
        self.attention = Attention(self.device.type, attention_math)
        a = self.arch
        self.d = a.head_dim_resolved
        self.n_heads = shard.split(a.num_attention_heads, "attention heads")
        self.n_kv = shard.kv_heads(a.num_key_value_heads)
        self.groups = max(1, self.n_heads // self.n_kv)
        self.experts = shard.experts(a.moe.num_experts) if a.moe else range(0)
        self.layers: list[Layer] = []
        self.globals: dict[str, object] = {}
        # called with "weights: 120 of 459 tensors" / "prefill: 1,024 of 4,095 tokens" as work is
        # done (the harness throttles it): the weights phase alone takes seconds on a CPU
        self.on_progress = None
        self.batch = 0
        self.context = 0
        self.window = 0
        self.kv_dtype = None
        self.kernel_notes: list[str] = []
        self.track_every_chunk = False

    def _rows(self, width: int) -> int:
        budget = _STEP_ELEMENTS if self.device.type == "cpu" else _STEP_ELEMENTS_GPU
        return max(1, budget // max(width, 1))

    def _tag(self, name: str, layer: int | None = None):
        return self.tracker.tag(name, layer) if self.tracker is not None else contextlib.nullcontext()

    # ---- weights ------------------------------------------------------------------------

    def build_weights(self, std: float = 0.02) -> None:
        a = self.arch
        kinds = a.layer_kinds()
        dense = set(a.dense_layer_indices())
        held = [i for i in range(a.num_hidden_layers) if self.shard.holds(i)]
        self.layers = [Layer(index=i, kind=kinds[i], dense=i in dense) for i in held]
        by_index = {L.index: L for L in self.layers}
        entries = tensor_inventory(a)
        units = width_units(entries, self.recipe, a.num_hidden_layers) if self.shard.tp[1] > 1 else {}
        for k, e in enumerate(entries):
            if self.on_progress is not None:
                self.on_progress(f"weights: {k:,} of {len(entries):,} tensor entries built")
            if not self.include_embeddings and e.group in ("embedding", "lm_head"):
                continue
            if not e.layers and not self.shard.holds_global(e, a):
                continue
            targets = [by_index[i] for i in e.layers if i in by_index] if e.layers else [None]
            for L in targets:
                layer_idx = L.index if L is not None else None
                fid = entry_format(e, self.recipe, layer_idx, a.num_hidden_layers)
                shape, copies = self.shard.entry_shape(e, a, unit_of(e, units))
                if self.comm is not None:
                    # the same values for a tensor on every rank: replicated tensors (norms,
                    # router) are true replicas, so the TP ranks route tokens alike
                    torch.manual_seed(_tensor_seed(self.seed, e.name, layer_idx))
                with self._tag(f"weights.{e.group}", layer_idx):
                    t = self._make(e, fid, shape, copies, std)
                key = _local_name(e.name)
                store = (L.mats if isinstance(t, Packed) else L.vecs) if L is not None else self.globals
                store[key] = t

    def _make(self, e: TensorEntry, fid: str, shape, copies: int, std: float):
        lead = (copies,) if copies > 1 else ()
        if e.kind == "vector":
            dtype = _VECTOR_DTYPES.get(get_format(fid).id)
            if dtype is None:
                raise Unsupported(f"vector format {fid!r} of {e.name} is not a float type verify can build")
            t = torch.empty((*lead, *shape), dtype=dtype, device=self.device)
            if e.role == "norm":
                return fill_normal(t, std, 1.0)
            return fill_normal(t, 0.5 if e.role == "sinks" else std)
        if e.kind == "embedding":
            dtype = float_dtype(fid)
            if dtype is None:
                raise Unsupported(f"a quantized embedding ({fid}) is not built by verify",
                                  hint="use a recipe that keeps the embedding in a float type")
            return fill_normal(torch.empty(shape, dtype=dtype, device=self.device), 1.0)
        rows, cols = shape
        return build_packed(fid, rows, cols, copies if copies > 1 else 0, self.device, std)

    # ---- KV cache -------------------------------------------------------------------------

    def alloc_kv(self, batch: int, context: int, kv_dtype: str | None, engine) -> None:
        """K and V per layer: [B, n_kv, C, d] on full layers, a ring of min(W, C) on sliding ones."""
        fmt = kv_format(self.arch, engine, kv_dtype)
        dtype = float_dtype(fmt.id)
        if dtype is None:
            raise Unsupported(f"KV dtype {fmt.id} is not a plain float type the stack can hold")
        self.kv_dtype = dtype
        self.batch, self.context = batch, context
        self.window = min(self.arch.sliding_window or context, context)
        for L in self.layers:
            slots = context if L.kind == "full_attention" else self.window
            tag = "kv.full" if L.kind == "full_attention" else "kv.sliding"
            with self._tag(tag, L.index):
                L.k_cache = torch.zeros(batch, self.n_kv, slots, self.d, dtype=dtype, device=self.device)
                L.v_cache = torch.zeros(batch, self.n_kv, slots, self.d, dtype=dtype, device=self.device)

    # ---- building blocks ------------------------------------------------------------------

    def _vec(self, L: Layer | None, name: str):
        store = L.vecs if L is not None else self.globals
        t = store.get(name)
        if t is not None and t.dtype != COMPUTE:
            t = t.to(COMPUTE)
        return t

    def _norm(self, L: Layer | None, name: str, x, out=None):
        """RMSNorm (or LayerNorm) in fp32 over row chunks, written in the compute dtype."""
        w = (L.vecs if L is not None else self.globals)[f"{name}.weight"]
        b = (L.vecs if L is not None else self.globals).get(f"{name}.bias")
        out = torch.empty_like(x) if out is None else out
        width = x.shape[-1]
        xr, orow = x.reshape(-1, width), out.view(-1, width)
        step = self._rows(width)
        for s in range(0, xr.shape[0], step):
            xs = xr[s:s + step].to(torch.float32)
            if self.arch.norm_kind == "layernorm":
                ys = F.layer_norm(xs, (width,), w.to(torch.float32), None if b is None else b.to(torch.float32),
                                  _NORM_EPS)
            else:
                ys = xs * torch.rsqrt(xs.pow(2).mean(-1, keepdim=True) + _NORM_EPS) * w.to(torch.float32)
            orow[s:s + step] = ys
        return out

    def _linear(self, L: Layer, name: str, x, row_parallel: bool = False):
        m = L.mats[f"{name}.weight"]
        bias = self._vec(L, f"{name}.bias") if (not row_parallel or self.shard.row_parallel_bias) else None
        if m.is_plain:
            return F.linear(x, m.matrix(), bias)
        with self._tag("act.dequant_scratch", L.index):
            w = m.matrix()
        y = F.linear(x, w, bias)
        del w
        return y

    def _rope_(self, x, pos: int, t: int, heads: int) -> None:
        """Rotary embedding in place (rotate-half form), fp32 per row chunk. Scaling variants
        (YaRN, llama3) change the frequencies, not the memory, and are left out."""
        d = self.d
        half = d // 2
        theta = self.arch.rope_theta or 10000.0
        inv = 1.0 / (theta ** (torch.arange(0, half, device=x.device, dtype=torch.float32) / half))
        ang = torch.arange(pos, pos + t, device=x.device, dtype=torch.float32).view(-1, 1) * inv.view(1, -1)
        cos, sin = ang.cos(), ang.sin()  # [t, half]
        xv = x.view(self.batch, t, heads, d)
        step = self._rows(heads * d * self.batch)
        for s in range(0, t, step):
            e = min(t, s + step)
            c, n = cos[s:e].view(1, -1, 1, half), sin[s:e].view(1, -1, 1, half)
            x1 = xv[:, s:e, :, :half].to(torch.float32)
            x2 = xv[:, s:e, :, half:].to(torch.float32)
            xv[:, s:e, :, :half] = x1 * c - x2 * n
            xv[:, s:e, :, half:] = x2 * c + x1 * n

    # ---- attention -------------------------------------------------------------------------

    def _attention(self, L: Layer, q, k, v, pos: int, t: int):
        """Attention of t new tokens per sequence (positions pos..pos+t-1), KV written to the cache.
        Returns [B*t, n_heads*d]."""
        B, nkv, G, d = self.batch, self.n_kv, self.groups, self.d
        scale = 1.0 / math.sqrt(d)
        kv = k.view(B, t, nkv, d).transpose(1, 2)
        vv = v.view(B, t, nkv, d).transpose(1, 2)
        sliding = L.kind == "sliding_attention"
        dev = q.device
        if not sliding:
            L.k_cache[:, :, pos:pos + t].copy_(kv)
            L.v_cache[:, :, pos:pos + t].copy_(vv)
            past_k, past_v = L.k_cache[:, :, :pos], L.v_cache[:, :, :pos]
            cur_k, cur_v = L.k_cache[:, :, pos:pos + t], L.v_cache[:, :, pos:pos + t]
            past_mask = past_rows = None
            cur_mask = None
        else:
            W = self.arch.sliding_window or self.context
            slots = L.k_cache.shape[2]
            past_k, past_v = L.k_cache, L.v_cache
            s = torch.arange(slots, device=dev)
            last = pos - 1
            slot_pos = torch.where(s <= last, s + slots * torch.div(last - s, slots, rounding_mode="floor"),
                                   torch.full_like(s, -1)) if pos > 0 else torch.full_like(s, -1)
            qpos = torch.arange(pos, pos + t, device=dev)
            past_mask, past_rows = band_mask(qpos, slot_pos, W, q.dtype, dev)
            cur_k, cur_v = kv, vv
            cur_mask = None if t <= W else band_mask(qpos, qpos, W, q.dtype, dev)[0]
        if past_k.dtype != q.dtype:  # a quantized KV cache is read back in the compute dtype
            past_k, past_v, cur_k, cur_v = (x.to(q.dtype) for x in (past_k, past_v, cur_k, cur_v))
        sinks = self._vec(L, "self_attn.sinks")
        sinks = sinks.view(nkv, G).to(torch.float32) if sinks is not None else None
        out = torch.empty(B * t, self.n_heads * d, dtype=q.dtype, device=dev)
        ov = out.view(B, t, nkv, G, d)
        qv = q.view(B, t, nkv, G, d)
        has_past = pos > 0
        for g in range(G):
            qg = qv[:, :, :, g, :].transpose(1, 2)  # [B, nkv, t, d]
            o_c, l_c = self.attention(qg, cur_k, cur_v, cur_mask, cur_mask is None and t > 1, scale)
            parts = [(o_c, l_c)]
            if has_past:
                o_p, l_p = self.attention(qg, past_k, past_v, past_mask, False, scale)
                if past_rows is not None:  # rows with no key in the window contribute nothing
                    l_p = l_p.masked_fill(~past_rows.view(1, 1, t), _NEG_INF)
                parts.append((o_p, l_p))
            lses = [lp for _, lp in parts]
            if sinks is not None:
                lses.append(sinks[:, g].view(1, nkv, 1).expand(B, nkv, t))
            m = torch.stack(lses).amax(dim=0)
            denom = sum(torch.exp(x - m) for x in lses)
            acc = None
            for o, lp in parts:
                w = (torch.exp(lp - m) / denom).unsqueeze(-1)
                term = o.to(torch.float32) * w
                acc = term if acc is None else acc.add_(term)
                del term
            ov[:, :, :, g, :] = acc.transpose(1, 2)
            del acc, parts
        if sliding:  # keep the last min(t, slots) tokens in the ring
            slots = L.k_cache.shape[2]
            n = min(t, slots)
            idx = torch.arange(pos + t - n, pos + t, device=dev) % slots
            L.k_cache.index_copy_(2, idx, kv[:, :, t - n:].to(L.k_cache.dtype))
            L.v_cache.index_copy_(2, idx, vv[:, :, t - n:].to(L.v_cache.dtype))
        return out

    def _attention_block(self, L: Layer, x, pos: int, t: int) -> None:
        a = self.arch
        h = self._norm(L, "input_layernorm", x)
        if "self_attn.qkv_proj.weight" in L.mats:  # fused (Phi-3 layout): rows [q | k | v] of this rank
            qkv = self._linear(L, "self_attn.qkv_proj", h)
            kv_w = self.n_kv * self.d
            q, k, v = (t.contiguous() for t in qkv.split([qkv.shape[1] - 2 * kv_w, kv_w, kv_w], dim=1))
            del qkv
        else:
            q = self._linear(L, "self_attn.q_proj", h)
            k = self._linear(L, "self_attn.k_proj", h)
            v = self._linear(L, "self_attn.v_proj", h)
        del h
        gate = None
        if a.attention_output_gate:  # q_proj emits [q | gate] per head (Qwen3-Next)
            qg = q.view(-1, self.n_heads, 2, self.d)
            gate = qg[:, :, 1].reshape(q.shape[0], -1)
            q = qg[:, :, 0].reshape(q.shape[0], -1)
            del qg
        if a.qk_norm:
            q = self._norm(L, "self_attn.q_norm", q.view(-1, self.d), out=q.view(-1, self.d)).view(q.shape[0], -1)
            k = self._norm(L, "self_attn.k_norm", k.view(-1, self.d), out=k.view(-1, self.d)).view(k.shape[0], -1)
        self._rope_(q, pos, t, self.n_heads)
        self._rope_(k, pos, t, self.n_kv)
        o = self._attention(L, q, k, v, pos, t)
        del q, k, v
        if gate is not None:
            o.mul_(torch.sigmoid(gate))
            del gate
        y = self._linear(L, "self_attn.o_proj", o, row_parallel=True)
        del o
        self._reduce(y, "attention", L.index)
        if a.norms_per_layer == 4:
            y = self._norm(L, "post_attention_layernorm", y, out=y)
        x.add_(y)

    # ---- MLP / MoE ------------------------------------------------------------------------

    def _activate(self, inter, act, stacked: bool) -> None:
        """act = f(gate) * up over row chunks. ``inter`` is [P, 2W] (gpt-oss interleaved gate/up)
        or [2, P, W] (separate gate and up), or [1, P, W] for an MLP without a gate."""
        a = self.arch
        gpt_oss = a.family == "gpt_oss"
        rows = act.shape[0]
        step = self._rows(2 * act.shape[1])
        for s in range(0, rows, step):
            e = min(rows, s + step)
            # in place on one fp32 copy of the chunk, so the temporaries are that copy and one more
            if stacked:
                blk = inter[s:e].to(torch.float32)
                gate, up = (blk[:, 0::2], blk[:, 1::2]) if gpt_oss else blk.chunk(2, dim=-1)
            else:
                blk = inter[:, s:e].to(torch.float32)
                gate, up = (blk[0], blk[1]) if inter.shape[0] == 2 else (blk[0], None)
            if gpt_oss:
                gate.clamp_(max=_GPT_OSS_LIMIT)
                up.clamp_(-_GPT_OSS_LIMIT, _GPT_OSS_LIMIT).add_(1.0)
                y = torch.mul(gate, _GPT_OSS_ALPHA).sigmoid_().mul_(gate).mul_(up)
            else:
                y = F.silu(gate) if a.hidden_act == "silu" else F.gelu(gate, approximate="tanh")
                if up is not None:
                    y.mul_(up)
            act[s:e] = y

    def _experts(self, L: Layer, h, prefix: str, pairs, count: int):
        """Run ``count`` experts (index i of stacked matrices) over routed (token, weight) pairs.

        pairs: None for a dense MLP (all tokens, weight 1), else (tok [P] int64 sorted by
        expert, wts [P] fp32, counts per expert [list]).
        """
        N = h.shape[0]
        stacked = f"{prefix}.gate_up_proj.weight" in L.mats
        if stacked:
            w_up = L.mats[f"{prefix}.gate_up_proj.weight"]
            width = w_up.rows // 2
        else:
            w_up = L.mats[f"{prefix}.up_proj.weight"]
            width = w_up.rows
        w_gate = L.mats.get(f"{prefix}.gate_proj.weight")
        w_down = L.mats[f"{prefix}.down_proj.weight"]
        gated = stacked or w_gate is not None
        total = N if pairs is None else int(pairs[0].shape[0])
        counts = [N] if pairs is None else pairs[2]
        idx = [None] if pairs is None else list(range(count))
        inter = (torch.empty(total, 2 * width, dtype=COMPUTE, device=h.device) if stacked else
                 torch.empty(2 if gated else 1, total, width, dtype=COMPUTE, device=h.device))
        offs = [0]
        for c in counts:
            offs.append(offs[-1] + c)
        # A: gate/up projections, one expert matrix dequantized at a time
        self._phase_up(L, h, prefix, pairs, idx, counts, offs, inter, stacked, w_up, w_gate)
        # B: activation
        act = torch.empty(total, width, dtype=COMPUTE, device=h.device)
        self._activate(inter, act, stacked)
        del inter
        # C: down projection, weighted, added per token
        return self._phase_down(L, prefix, pairs, idx, counts, offs, act, w_down, N)

    def _phase_up(self, L, h, prefix, pairs, idx, counts, offs, inter, stacked, w_up, w_gate) -> None:
        gated = w_gate is not None or stacked
        for j, e in enumerate(idx):
            if counts[j] == 0:
                continue
            rows = slice(offs[j], offs[j + 1])
            xe = h if pairs is None else h.index_select(0, pairs[0][rows])
            if stacked:
                self._mm_into(L, w_up, e, xe, self._expert_bias(L, f"{prefix}.gate_up_proj.bias", e), inter[rows])
            else:
                self._mm_into(L, w_up, e, xe, self._expert_bias(L, f"{prefix}.up_proj.bias", e),
                              inter[1 if gated else 0, rows])
                if w_gate is not None:
                    self._mm_into(L, w_gate, e, xe, self._expert_bias(L, f"{prefix}.gate_proj.bias", e),
                                  inter[0, rows])

    def _phase_down(self, L, prefix, pairs, idx, counts, offs, act, w_down, n_tokens: int):
        H = self.arch.hidden_size
        # A down projection split by its input (TP) adds its bias on rank 0 only; whole experts
        # (EP, or one process) add their own.
        down_bias = self.shard.row_parallel_bias or (pairs is not None and self.shard.ep[1] > 1)
        if pairs is None:
            out = torch.empty(n_tokens, H, dtype=COMPUTE, device=act.device)
            self._mm_into(L, w_down, None, act, self._vec(L, f"{prefix}.down_proj.bias") if down_bias else None, out)
            return out
        out = torch.zeros(n_tokens, H, dtype=COMPUTE, device=act.device)
        for j, e in enumerate(idx):
            n = counts[j]
            if n == 0:
                continue
            rows = slice(offs[j], offs[j + 1])
            y = torch.empty(n, H, dtype=COMPUTE, device=act.device)
            self._mm_into(L, w_down, e, act[rows],
                          self._expert_bias(L, f"{prefix}.down_proj.bias", e) if down_bias else None, y)
            y.mul_(pairs[1][rows].to(COMPUTE).unsqueeze(-1))
            out.index_add_(0, pairs[0][rows], y)
            del y
        return out

    def _expert_bias(self, L: Layer, name: str, e):
        b = L.vecs.get(name)
        if b is None:
            return None
        b = b[e] if e is not None and b.dim() == 2 else b
        return b.to(COMPUTE) if b.dtype != COMPUTE else b

    def _mm_into(self, L: Layer, m: Packed, e, x, bias, out) -> None:
        if m.is_plain:
            w = m.matrix(e)
            self._addmm(x, w, bias, out)
            return
        with self._tag("act.dequant_scratch", L.index):
            w = m.matrix(e)
        self._addmm(x, w, bias, out)
        del w

    @staticmethod
    def _addmm(x, w, bias, out) -> None:
        if bias is None:
            torch.mm(x, w.t(), out=out)
        else:
            torch.addmm(bias, x, w.t(), out=out)

    def _route(self, L: Layer, h):
        """Router logits in fp32, top-k, weights; pairs sorted by local expert."""
        m = self.arch.moe
        assert m is not None
        k = m.experts_per_token
        with self._tag("act.moe_routing", L.index):
            logits16 = self._linear(L, "mlp.router", h)
            logits = logits16.to(torch.float32)
            del logits16
            corr = L.vecs.get("mlp.gate.e_score_correction_bias")
            if corr is not None:
                logits.add_(corr.to(torch.float32))
            top_v, top_i = torch.topk(logits, k, dim=-1)
            del logits
            top_w = torch.softmax(top_v, dim=-1)
            del top_v
            flat = top_i.view(-1)
            order = torch.argsort(flat, stable=True)
            counts_all = torch.bincount(flat, minlength=m.num_experts).tolist()
            wts = top_w.view(-1).index_select(0, order)
            sorted_ids = flat.index_select(0, order)
            del top_w, top_i, flat
            lo, hi = self.experts.start, self.experts.stop
            keep = (sorted_ids >= lo) & (sorted_ids < hi)
            if not bool(keep.all()):  # an expert-parallel shard: other ranks take the rest
                order, wts = order[keep], wts[keep]
            del sorted_ids, keep
            tok = order.div_(k, rounding_mode="floor")
        return tok, wts, counts_all[lo:hi]

    def _mlp_block(self, L: Layer, x) -> None:
        a = self.arch
        name = "post_attention_layernorm" if a.norms_per_layer == 2 else "pre_feedforward_layernorm"
        h = self._norm(L, name, x)
        if L.dense:
            y = self._experts(L, h, "mlp", None, 1)
        else:
            pairs = self._route(L, h)
            y = self._experts(L, h, "mlp.experts", pairs, len(self.experts))
            del pairs
            if "mlp.shared_experts.up_proj.weight" in L.mats:
                s = self._experts(L, h, "mlp.shared_experts", None, 1)
                if "mlp.shared_expert_gate.weight" in L.mats:
                    s.mul_(torch.sigmoid(self._linear(L, "mlp.shared_expert_gate", h)))
                y.add_(s)
                del s
        del h
        self._reduce(y, "mlp", L.index)
        if a.norms_per_layer == 4:
            y = self._norm(L, "post_feedforward_layernorm", y, out=y)
        x.add_(y)

    def _reduce(self, y, where: str, layer: int | None = None) -> None:
        """Sum the partial results of the TP (and EP) ranks of this stage, in place."""
        if self.comm is not None and self.comm.group_size > 1:
            self.comm.all_reduce(y, where if layer is None else f"{where}, layer {layer}")

    # ---- forward ---------------------------------------------------------------------------

    def layer_forward(self, L: Layer, x, pos: int, t: int) -> None:
        """One decoder layer on x [B*t, H] in place."""
        self._attention_block(L, x, pos, t)
        self._mlp_block(L, x)

    def _embed(self, ids, gen):
        a = self.arch
        if self.include_embeddings:
            emb = self.globals["model.embed_tokens.weight"]
            flat = ids.view(-1)
            if self.shard.tp[1] == 1:
                x = emb.index_select(0, flat)
                return x if x.dtype == COMPUTE else x.to(COMPUTE)
            # vocabulary parallel: rows of this rank's range, zeros elsewhere, summed over the ranks
            # (vLLM VocabParallelEmbedding: masked lookup + all-reduce)
            rows = emb.shape[0]
            lo = self.shard.tp[0] * rows
            outside = (flat < lo) | (flat >= lo + rows)
            local = (flat - lo).clamp_(0, rows - 1)
            x = emb.index_select(0, local)
            del local
            x = x if x.dtype == COMPUTE else x.to(COMPUTE)
            x.masked_fill_(outside.view(-1, 1), 0)
            del outside
            self._reduce(x, "embedding")
            return x
        return torch.randn(ids.numel(), a.hidden_size, dtype=COMPUTE, device=self.device, generator=gen)

    def _logits(self, x, t: int):
        """fp32 logits of the last position of each sequence; returns the next token ids."""
        if not self.include_embeddings:
            return None
        with self._tag("act.logits"):
            last = x.view(self.batch, t, -1)[:, -1]
            hn = self._norm(None, "model.norm", last.contiguous())
            w = self.globals.get("lm_head.weight") or None
            mat = w.matrix() if isinstance(w, Packed) else self.globals["model.embed_tokens.weight"]
            logits16 = F.linear(hn, mat if mat.dtype == COMPUTE else mat.to(COMPUTE))
            del hn
            if self.shard.tp[1] > 1 and self.comm is not None:  # vocabulary parallel: gather every rank's rows
                # (vLLM LogitsProcessor._gather_logits); without collectives a shard picks from its own rows
                rows = logits16.shape[-1]
                parts = self.comm.all_gather(logits16, "logits")  # [tp, B, rows]
                del logits16
                logits = parts.to(torch.float32)
                del parts
                pad = self.shard.tp[1] * rows - self.arch.vocab_size
                if pad > 0:  # padded rows of the last rank hold no token
                    logits[-1, :, rows - pad:] = _NEG_INF
                best, idx = logits.max(dim=-1)  # per rank [tp, B]
                del logits
                owner = best.argmax(dim=0)  # [B]
                nxt = owner * rows + idx.gather(0, owner.view(1, -1)).view(-1)
                return nxt
            logits = logits16.to(torch.float32)
            del logits16
            nxt = logits.argmax(dim=-1)
            del logits
        return nxt

    def forward_tokens(self, ids, pos: int, gen=None):
        """Run ids [B, t] at positions pos..pos+t-1 through the stack; next token ids, or None
        (no logits, or a pipeline stage before the last)."""
        t = ids.shape[1]
        if self.shard.embedding or self.comm is None or self.comm.pp == 1:
            x = self._embed(ids, gen)
        else:  # a later pipeline stage: the hidden states come from the stage before
            x = self.comm.recv_prev((self.batch * t, self.arch.hidden_size), COMPUTE, self.device,
                                    f"hidden states, position {pos}")
        for L in self.layers:
            self.layer_forward(L, x, pos, t)
        if self.comm is not None and self.comm.pp > 1 and not self.comm.last:
            self.comm.send_next(x, f"hidden states, position {pos}")
            del x
            return None
        nxt = self._logits(x, t)
        del x
        return nxt

    def prefill(self, prompt: int, chunk: int, gen=None, act_tag: str = "act.prefill"):
        """Prompts of ``prompt`` random tokens per sequence, in forward passes of at most ``chunk``
        tokens (0 = all at once): B sequences x (chunk // B) tokens each pass."""
        per_seq = prompt if chunk == 0 else max(1, chunk // self.batch)
        starts = range(0, prompt, per_seq)
        nxt = None
        with self._tag(act_tag):
            for c, pos in enumerate(starts):
                t = min(per_seq, prompt - pos)
                with self._chunk_tracking(c, len(starts)):
                    ids = torch.randint(0, self.arch.vocab_size, (self.batch, t), device=self.device, generator=gen)
                    nxt = self.forward_tokens(ids, pos, gen)
                    del ids
                if self.on_progress is not None:
                    self.on_progress(f"prefill: {pos + t:,} of {prompt:,} tokens")
        return nxt

    def _chunk_tracking(self, c: int, n: int):
        """The storage tracker watches chunks 0, 1, n-2 and n-1 of n (n-2 only with a KV cache
        in another dtype than the compute dtype) and is paused for the rest.

        Why that keeps the measured peaks: a chunk allocates the same tensors at every position
        but three. The first has no past to attend to (fewer buffers); from the second on the
        buffers are the same sizes whatever the position, except the past K/V read back in the
        compute dtype when the cache holds another dtype (fp8 KV), which grows with the position,
        so among the full-length chunks the last (n-2) holds the most; and the last chunk is
        shorter but furthest in. What differs between the middle chunks is the routing: the
        tokens each expert gets, hence its gathered input [tokens of the expert, hidden], a few
        hundred KiB at most. Device counters (torch.cuda's peaks) still see every chunk. With
        ``track_every_chunk`` (tests) every chunk is watched."""
        last_full = n - 2 if self.kv_dtype not in (None, COMPUTE) else n - 1  # see above: fp8 KV
        if self.tracker is None or self.track_every_chunk or c < 2 or c >= last_full:
            return contextlib.nullcontext()
        return self.tracker.paused()

    def decode(self, pos: int, ids=None, gen=None, act_tag: str = "act.decode"):
        """One decode step at position ``pos`` for every sequence. Under pipeline parallelism the
        next token the last stage picked travels back to the first stage first."""
        with self._tag(act_tag):
            c = self.comm
            if c is not None and c.pp > 1 and self.include_embeddings:
                if c.last:
                    c.send_token(ids, "next token")
                    ids = None
                elif c.first:
                    ids = c.recv_token(self.batch, self.device, "next token")
            if ids is None:
                ids = torch.randint(0, self.arch.vocab_size, (self.batch,), device=self.device, generator=gen)
            return self.forward_tokens(ids.view(self.batch, 1), pos, gen)

    # ---- introspection ------------------------------------------------------------------------

    def weight_bytes(self) -> int:
        total = 0
        for store in [self.globals, *[L.mats for L in self.layers], *[L.vecs for L in self.layers]]:
            for t in store.values():
                total += t.nbytes if isinstance(t, Packed) else t.numel() * t.element_size()
        return total


__all__ = ["Stack", "Shard", "Layer", "layer_signature", "check_buildable", "band_mask", "Unsupported",
           "attend_math"]
