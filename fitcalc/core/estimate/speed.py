"""Speed from rooflines on the same byte accounting as the footprint. CORE.

Decode (one step makes one token for each of B sequences):

    t_device = max(bytes_read / (BW × e_bw), FLOPs / (R × e_c))        per GPU, per step
    bytes_read = Σ_groups resident bytes × active share (experts: 1 − (1 − k/E)^B of them)
               + KV bytes the step reads at depth D (full layers D tokens, sliding min(W, D))
    FLOPs      = 2 × active weights × B  (+ 4 × L × n_h × d_head × D × B for attention)
    t_host     = host bytes read / (RAM BW × e_host)       (layers and experts kept in RAM)
    t_step     = Σ_stages max_ranks t_device + t_host + L × t_layer
    decode tokens/s per sequence = 1 / t_step;  all sequences = B / t_step

Pipeline stages and llama.cpp's layer split run one after another for a token, tensor-parallel
ranks side by side; t_layer is a fixed cost per layer and step (kernel launches, syncs).

Prefill of one prompt of P tokens:

    FLOPs = 2 × active non-embedding weights × P + 2 × L_full × n_h × d_head × P²   (causal: mean
            context P/2, QK^T and AV 2 FLOPs per MAC each) + 4 × L_sliding × n_h × d_head × P × min(W, P)
    t     = FLOPs / (R × e_c) per device, summed over stages; weights held in RAM are streamed to
            the GPU once per chunk when the engine does that (llama.cpp op offload, batches ≥ 32):
            host weight bytes × ceil(P / chunk) / PCIe bandwidth

Efficiencies are named per engine and device family in ``engine_profiles/*.yaml`` (``speed:``)
with their sources. Communication between tensor-parallel ranks is not modelled (a stated gap).
Sources: JAX scaling book (inference), Kaplan et al. 2020 (arXiv 2001.08361) Table 1; checked
against published measurements in tests/test_speed.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from pydantic import BaseModel, ConfigDict

from fitcalc.core.engines import EngineProfile
from fitcalc.core.estimate.placement import Share
from fitcalc.core.spec import Device, Host
from fitcalc.core.units import ceil_div

# Defaults when the host is not described. Dual-channel DDR5-5600: 2 channels × 8 bytes × 5.6 GT/s
# = 89.6 GB/s (JEDEC DDR5 arithmetic); a common desktop.
DEFAULT_RAM_BANDWIDTH = 89_600_000_000
# PCIe x16 per direction: GT/s per lane × 16 lanes × 128/130 encoding / 8 bits (PCI-SIG base specs;
# gen 3 8 GT/s, gen 4 16 GT/s, gen 5 32 GT/s). Gen 4 when the GPU's link is unknown.
PCIE_GT_PER_S = {3: 8, 4: 16, 5: 32, 6: 64}
DEFAULT_PCIE_GEN = 4


def pcie_bytes_per_s(gen: int | None) -> int:
    g = gen if gen in PCIE_GT_PER_S else DEFAULT_PCIE_GEN
    return PCIE_GT_PER_S[g] * 10**9 * 16 * 128 // 130 // 8


def expert_union_share(k: int, e: int, batch: int) -> Fraction:
    """Expected share of a layer's E experts that a step of B tokens touches, with uniform routing:
    1 − (1 − k/E)^B. One token reads k/E; a large batch reads nearly all (scaling book, MoE)."""
    miss = Fraction(e - k, e) ** batch
    return 1 - miss


class SpeedPart(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    where: str  # device label or "host RAM"
    bytes_per_step: int
    flops_per_step: int
    time_s: float
    bound: str  # "memory", "compute", "RAM", "PCIe"
    efficiency: float
    efficiency_key: str  # which entry of the engine's table applied: default, apple, hopper ...


class SpeedEstimate(BaseModel):
    """Decode and prefill estimates, with the parts they are made of (JSON: decode_tokens_per_s)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    decode_tokens_per_s: float | None  # one sequence
    decode_tokens_per_s_total: float | None  # all sequences of the batch
    decode_depth_tokens: int  # KV depth the decode step reads
    decode_step_s: float | None
    bytes_per_step: int
    prefill_s: float | None
    prompt_tokens: int
    parts: list[SpeedPart]
    prefill_parts: list[SpeedPart]
    notes: list[str]


@dataclass(frozen=True)
class Placed:
    """One GPU's share and its weight bytes per group (as resident there)."""

    device: Device
    share: Share
    group_bytes: dict[str, int]  # weights.<group> bytes on this device
    stage: int  # devices with the same stage run side by side (TP ranks); stages run in sequence
    # The weights' share of a step depends on the batch (decode) or the prompt (prefill) only, not
    # on the context: kept here so a sweep reusing this placement computes it once per value.
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    def weights_step(self, facts: ModelFacts, batch: int) -> tuple[int, int]:
        """(bytes read, FLOPs) of the weights in one decode step of ``batch`` sequences."""
        key = ("decode", batch)
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = (_device_bytes_read(facts, self, batch),
                                    _device_flops(facts, self.group_bytes, batch))
        return hit

    def weights_prefill_flops(self, facts: ModelFacts, prompt: int) -> int:
        """FLOPs of the weights (the embedding is a lookup) over a prompt of ``prompt`` tokens."""
        key = ("prefill", prompt)
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = _device_flops(facts, {g: b for g, b in self.group_bytes.items()
                                                         if g != "embedding"}, prompt)
        return hit


@dataclass(frozen=True)
class ModelFacts:
    """What the rooflines need from the model, computed once per prepared model."""

    n_layers: int
    layer_kinds: tuple[str, ...]
    heads: int
    head_dim: int
    window: int
    experts: tuple[int, int] | None  # (k, E)
    group_params: dict[str, int]
    group_bytes: dict[str, int]  # whole model, as stored
    active: dict[str, Fraction]
    kv_token_bytes: dict[str, int]  # per layer and token, by layer kind (full, sliding, mla)
    kv_split_heads: int  # heads KV splits over under TP (1 for MLA)


def _rate(device: Device, engine: EngineProfile, matrix_formats: set[str]) -> tuple[float | None, str]:
    """Tensor rate (FLOP/s) prefill and decode matmuls run at, and which dtype's rate it is."""
    tf = device.dense_tflops
    want = engine.speed.prefill_dtype
    order: list[str]
    if want == "native":
        order = []
        if "fp8" in device.native_formats and matrix_formats & {"fp8", "fp8-channel", "fp8-block128", "fp8-e4m3"}:
            order.append("fp8")
        if matrix_formats & {"nvfp4"} and "nvfp4" in device.native_formats:
            order += ["nvfp4", "fp4"]
        if matrix_formats & {"mxfp4"} and "mxfp4" in device.native_formats:
            order.append("fp4")
        order += ["bf16", "fp16"]
    else:
        order = [want, "fp16", "bf16"]
    for key in order:
        if tf.get(key):
            return tf[key] * 1e12, key
    return None, "unknown"


# The products below are exact rationals floored to whole bytes and FLOPs; they are written as one
# integer division (num × ... // den ...) rather than with Fraction objects, which gives the same
# integers several times faster (a report sweep computes them for every row).
_ONE = Fraction(1)


def _device_bytes_read(facts: ModelFacts, placed: Placed, batch: int) -> int:
    total = 0
    for g, b in placed.group_bytes.items():
        if g == "experts" and facts.experts is not None:
            k, e = facts.experts
            frac = expert_union_share(k, e, batch)
        else:
            frac = facts.active.get(g, _ONE)
        total += b * frac.numerator // frac.denominator
    return total


def _device_flops(facts: ModelFacts, group_bytes: dict[str, int], tokens: int) -> int:
    """2 × active weights × tokens, with a group's weights on the device in proportion to its bytes."""
    total = 0
    for g, b in group_bytes.items():
        whole = facts.group_bytes.get(g)
        if not whole:
            continue
        frac = facts.active.get(g, _ONE)
        if g == "embedding" and frac == 0:
            continue
        # 2 × params × (min(b, whole) / whole) × frac × tokens, floored
        total += (2 * facts.group_params.get(g, 0) * min(b, whole) * frac.numerator * tokens
                  // (whole * frac.denominator))
    return total


def _layers_of(share: Share, n: int) -> list[int]:
    return list(share.layer_set(n))


def _kv_read(facts: ModelFacts, share: Share, depth: int, batch: int) -> int:
    """KV bytes one decode step reads on this device: each of its layers reads the sequence's depth
    (sliding layers at most W tokens), for every sequence; split by TP like the cache."""
    n = 0
    for i in _layers_of(share, facts.n_layers):
        kind = facts.layer_kinds[i]
        per = facts.kv_token_bytes.get(kind, 0)
        tokens = min(facts.window, depth) if kind == "sliding_attention" else depth
        n += per * tokens
    split = min(share.tp, facts.kv_split_heads) if share.tp > 1 else 1
    return ceil_div(n, split) * batch


def _attn_flops(facts: ModelFacts, share: Share, depth: int, tokens: int) -> int:
    """4 × n_h × d_head × (keys attended) per layer and token (QK^T and AV)."""
    d_attn = facts.heads * facts.head_dim
    n = 0
    for i in _layers_of(share, facts.n_layers):
        keys = min(facts.window, depth) if facts.layer_kinds[i] == "sliding_attention" else depth
        n += 4 * d_attn * keys
    return n * tokens // max(1, share.tp)


def decode(facts: ModelFacts, engine: EngineProfile, placed: list[Placed], host_bytes: dict[str, int],
           host: Host | None, batch: int, depth: int, host_layers: Share | None) -> tuple[
               float | None, list[SpeedPart], list[str], int]:
    """Step time of one decode step (None if a device's bandwidth is unknown), its parts, notes, bytes."""
    parts: list[SpeedPart] = []
    notes: list[str] = []
    stage_time: dict[int, float] = {}
    total_bytes = 0
    unknown = False
    for pl in placed:
        d = pl.device
        w_read, w_flops = pl.weights_step(facts, batch)
        read = w_read + _kv_read(facts, pl.share, depth, batch)
        flops = w_flops + _attn_flops(facts, pl.share, depth, batch)
        total_bytes += read
        if not d.bandwidth_bytes_per_s:
            unknown = True
            continue
        e_bw, key = engine.speed.pick(engine.speed.bandwidth_efficiency, d.family, d.vendor)
        t_mem = read / (d.bandwidth_bytes_per_s * e_bw)
        rate, _ = _rate(d, engine, set())
        e_c, _ = engine.speed.pick(engine.speed.compute_efficiency, d.family, d.vendor)
        t_cmp = flops / (rate * e_c) if rate else 0.0
        t = max(t_mem, t_cmp)
        parts.append(SpeedPart(where=d.label, bytes_per_step=read, flops_per_step=flops, time_s=t,
                               bound="memory" if t_mem >= t_cmp else "compute", efficiency=e_bw, efficiency_key=key))
        stage_time[pl.stage] = max(stage_time.get(pl.stage, 0.0), t)
    host_read = 0
    if host_bytes:
        for g, b in host_bytes.items():
            if g == "embedding":
                continue  # the host's copy is only looked up (a tied output copy lives on a GPU)
            if g == "experts" and facts.experts is not None:
                k, e = facts.experts
                host_read += int(b * expert_union_share(k, e, batch))
            else:
                host_read += int(b * facts.active.get(g, Fraction(1)))
        if host_layers is not None:
            host_read += _kv_read(facts, host_layers, depth, batch)
    t_host = 0.0
    if host_read:
        bw = host.ram_bandwidth_bytes_per_s if host and host.ram_bandwidth_bytes_per_s else None
        if bw is None:
            bw = DEFAULT_RAM_BANDWIDTH
            notes.append(f"RAM bandwidth unknown: {bw / 1e9:.1f} GB/s assumed (dual-channel DDR5-5600); "
                         "pass --ram-bandwidth")
        e_h = engine.speed.host_bandwidth_efficiency
        t_host = host_read / (bw * e_h)
        parts.append(SpeedPart(where="host RAM", bytes_per_step=host_read, flops_per_step=0, time_s=t_host,
                               bound="RAM", efficiency=e_h, efficiency_key="host"))
        total_bytes += host_read
    if unknown:
        notes.append("a GPU's memory bandwidth is unknown (a raw budget): no speed estimate; pass a catalog GPU id")
        return None, parts, notes, total_bytes
    t_layers = facts.n_layers * engine.speed.layer_latency_us * 1e-6
    step = sum(stage_time.values()) + t_host + t_layers
    if engine.speed.layer_latency_us:
        notes.append(f"{facts.n_layers} layers × {engine.speed.layer_latency_us:g} µs fixed per-layer time "
                     f"({engine.display_name})")
    if len({pl.stage for pl in placed}) < len(placed) and any(pl.share.tp > 1 for pl in placed):
        notes.append("tensor-parallel all-reduce time is not modelled")
    return step, parts, notes, total_bytes


def prefill(facts: ModelFacts, engine: EngineProfile, placed: list[Placed], host_bytes: dict[str, int],
            matrix_formats: set[str], prompt: int, chunk: int) -> tuple[float | None, list[SpeedPart], list[str]]:
    """Seconds to prefill one prompt of ``prompt`` tokens, and its parts."""
    parts: list[SpeedPart] = []
    notes: list[str] = []
    stage_time: dict[int, float] = {}
    for pl in placed:
        d = pl.device
        flops = pl.weights_prefill_flops(facts, prompt)
        flops += _prefill_attn_flops(facts, pl.share, prompt)
        rate, key = _rate(d, engine, matrix_formats)
        if not rate:
            notes.append(f"{d.label}: tensor rate unknown: no prefill estimate")
            return None, parts, notes
        e_c, ekey = engine.speed.pick(engine.speed.compute_efficiency, d.family, d.vendor)
        t = flops / (rate * e_c)
        parts.append(SpeedPart(where=f"{d.label} ({key})", bytes_per_step=sum(pl.group_bytes.values()),
                               flops_per_step=flops, time_s=t, bound="compute", efficiency=e_c,
                               efficiency_key=ekey))
        stage_time[pl.stage] = max(stage_time.get(pl.stage, 0.0), t)
    total = sum(stage_time.values())
    if parts:
        notes.append(f"prefill at {parts[0].efficiency:g} of the tensor rate ({engine.display_name}); no held-out "
                     "prefill measurement checks it yet")
    hb = sum(b for g, b in host_bytes.items() if g != "embedding")
    if hb and placed:
        sp = engine.speed
        if sp.streams_host_weights and prompt >= sp.stream_min_batch:
            link = pcie_bytes_per_s(placed[0].device.pcie_gen)
            n_chunks = ceil_div(prompt, max(1, chunk))
            t = hb * n_chunks / link
            parts.append(SpeedPart(where="host → GPU (PCIe)", bytes_per_step=hb * n_chunks, flops_per_step=0,
                                   time_s=t, bound="PCIe", efficiency=1.0, efficiency_key="pcie"))
            # the streamed weights are multiplied on the GPU too
            d = placed[0].device
            rate, _ = _rate(d, engine, matrix_formats)
            e_c, _ = sp.pick(sp.compute_efficiency, d.family, d.vendor)
            total += t + _device_flops(facts, host_bytes, prompt) / (rate * e_c)
            if placed[0].device.pcie_gen is None:
                notes.append(f"PCIe link unknown: gen {DEFAULT_PCIE_GEN} x16 assumed")
        else:
            notes.append("prefill of CPU-held weights at CPU speed is not modelled")
    return total, parts, notes


def _prefill_attn_flops(facts: ModelFacts, share: Share, prompt: int) -> int:
    d_attn = facts.heads * facts.head_dim
    n = 0
    for i in _layers_of(share, facts.n_layers):
        if facts.layer_kinds[i] == "sliding_attention":
            n += 4 * d_attn * prompt * min(facts.window, prompt)
        else:
            n += 2 * d_attn * prompt * prompt
    return n // max(1, share.tp)


def model_facts(p) -> ModelFacts:  # p: fitcalc.core.estimate.footprint.Prepared
    """The model's numbers the rooflines use, from the prepared model (same bytes as the footprint)."""
    a = p.arch
    groups = {g.name: g for g in p.weights.groups}
    active = dict(p.table.active) if p.table is not None else {
        g.name: (Fraction(g.active_params, g.params) if g.params else Fraction(1)) for g in p.weights.groups}
    if a is None:
        return ModelFacts(n_layers=0, layer_kinds=(), heads=0, head_dim=0, window=0, experts=None,
                          group_params={k: g.params for k, g in groups.items()},
                          group_bytes={k: g.bytes for k, g in groups.items()}, active=active, kv_token_bytes={},
                          kv_split_heads=1)
    lay = p.kv
    per_full = lay.per_layer_full if lay else 0
    kv = {"full_attention": (lay.per_layer_mla if (lay and lay.mla_layers) else per_full),
          "sliding_attention": (lay.per_layer_mla if (lay and lay.mla_layers) else per_full),
          "linear_attention": 0}
    heads = a.num_attention_heads
    hd = a.head_dim_resolved if a.mla is None else (a.mla.qk_nope_head_dim + a.mla.qk_rope_head_dim)
    return ModelFacts(
        n_layers=a.num_hidden_layers, layer_kinds=tuple(a.layer_kinds()), heads=heads, head_dim=hd,
        window=(a.sliding_window or 0) if a.mla is None else 0,
        experts=(a.moe.experts_per_token, a.moe.num_experts) if a.moe else None,
        group_params={k: g.params for k, g in groups.items()}, group_bytes={k: g.bytes for k, g in groups.items()},
        active=active, kv_token_bytes=kv, kv_split_heads=1 if a.mla is not None else a.num_key_value_heads)


__all__ = ["SpeedEstimate", "SpeedPart", "Placed", "ModelFacts", "decode", "prefill", "expert_union_share",
           "pcie_bytes_per_s", "DEFAULT_RAM_BANDWIDTH", "model_facts"]
