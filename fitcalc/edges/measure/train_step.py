"""One real training step, measured by tag. EDGE (torch).

Builds the first layers of a dense Llama-style model the way transformers + PEFT (+ bitsandbytes for
QLoRA) hold it: RMSNorm with its fp32 upcast, q/k/v/o with RoPE and flash attention (torch's SDPA,
whose CPU flash kernel keeps q, k, v, the output and the fp32 logsumexp, with GQA), a SwiGLU MLP,
LoRA adapters A [r, in] and B [out, r] beside frozen base weights (NF4 ones dequantized on the fly by
a MatMul4Bit-like function that keeps its input), the loss as transformers' ForCausalLMLoss computes
it (``logits.float()`` then cross-entropy), then backward and one AdamW or SGD step.

The StorageTracker (tracker.py) counts live tensor storage by tag: ``weights.<group>``,
``weights.lora``, ``master.fp32`` while building, ``act`` in forward, ``grads`` in backward,
``optimizer`` in the step. fitcalc.core.measure.train_compare compares the readings with the terms
of ``fitcalc train`` for the same truncated model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from fitcalc.core.errors import InputError
from fitcalc.core.estimate.training import TrainSetup, lora_targets
from fitcalc.core.estimate.weights import TensorEntry, entry_format, tensor_inventory
from fitcalc.core.formats import get_format
from fitcalc.core.spec import Architecture, RecipeSpec
from fitcalc.edges.measure import require_torch

torch = require_torch()
import torch.nn.functional as F  # noqa: E402
from torch.utils.checkpoint import checkpoint  # noqa: E402

from fitcalc.edges.measure.packed import COMPUTE, Packed, build_packed, fill_normal  # noqa: E402
from fitcalc.edges.measure.tracker import StorageTracker  # noqa: E402

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
_LORA_SCALE = 2.0  # alpha / r; a python scalar: the multiply keeps no tensor


def check_train_buildable(arch: Architecture, setup: TrainSetup) -> None:
    """Raise InputError (one line) for what the training stack does not build."""
    why = []
    if arch.moe is not None or arch.mla is not None or arch.linear_attention is not None:
        why.append("MoE, MLA or linear-attention layers")
    if arch.qk_norm or arch.attention_bias or arch.attention_out_bias or arch.mlp_bias or arch.attention_sinks:
        why.append("q/k norms, biases or attention sinks")
    if not arch.mlp_gated or arch.fused_qkv or arch.fused_gate_up or arch.norm_kind != "rmsnorm":
        why.append("a non-SwiGLU MLP, fused projections or LayerNorm")
    if setup.optimizer not in ("adamw", "sgd") or setup.attention != "flash" or setup.loss != "full":
        why.append(f"optimizer {setup.optimizer}, {setup.attention} attention or {setup.loss} loss")
    if setup.zero or setup.fsdp or setup.offload != "none":
        why.append("sharding or offload (one process)")
    if why:
        raise InputError(f"verify --train builds dense Llama-style layers with AdamW or SGD, flash attention and the "
                         f"full loss on one device; this run needs {'; '.join(why)}",
                         hint="fitcalc train prices it; measure a Llama-family model (llama-3.1-8b, mistral-small-24b)")


@dataclass
class TrainStack:
    arch: Architecture
    setup: TrainSetup
    dtype: object
    layers: list[dict] = field(default_factory=list)  # per layer: name -> tensor or Packed
    lora: list[dict] = field(default_factory=list)  # per layer: name -> (A, B)
    globals: dict = field(default_factory=dict)
    trainable: list = field(default_factory=list)
    masters: list = field(default_factory=list)
    tracker: StorageTracker | None = None


def _key(e: TensorEntry) -> str:
    return e.name.split(".")[-2]


def _tensor(e: TensorEntry, fid: str, dtype, trains: bool, device):
    fmt = get_format(fid)
    if fmt.id in ("nf4", "nf4-dq"):
        return build_packed(fmt.id, e.shape[0], e.shape[1], 0, device)
    t = torch.empty(e.shape, dtype=_DTYPES.get(fmt.id, dtype) if not trains else dtype, device=device)
    t = fill_normal(t, 1.0 if e.kind == "embedding" else 0.02, 1.0 if e.role == "norm" else 0.0)
    return t.requires_grad_(trains)


def build_train_stack(arch: Architecture, setup: TrainSetup, recipe: RecipeSpec, tracker: StorageTracker,
                      device="cpu") -> TrainStack:
    """Weights as ``fitcalc train`` prices them: the training dtype for full fine-tuning, ``recipe``
    (the frozen base, or NF4) for LoRA and QLoRA; adapters; FP32 masters under bf16-mixed."""
    dtype = torch.float32 if setup.precision == "fp32" else torch.bfloat16
    s = TrainStack(arch, setup, dtype, [{} for _ in range(arch.num_hidden_layers)],
                   [{} for _ in range(arch.num_hidden_layers)], tracker=tracker)
    full = setup.method == "full"
    for e in tensor_inventory(arch):
        fid = entry_format(e, recipe, e.layers[0] if e.layers else None, arch.num_hidden_layers)
        for i in e.layers or [None]:
            with tracker.tag(f"weights.{e.group}"):
                t = _tensor(e, fid, dtype, full, device)
            (s.globals if i is None else s.layers[i])[_key(e)] = t
            if full:
                s.trainable.append(t)
    if not full:
        for e in lora_targets(arch, setup.targets):
            for i in e.layers:
                with tracker.tag("weights.lora"):
                    a = fill_normal(torch.empty(setup.rank, e.shape[1], dtype=dtype, device=device), 0.02)
                    b = fill_normal(torch.empty(e.shape[0], setup.rank, dtype=dtype, device=device), 0.02)
                s.lora[i][_key(e)] = (a.requires_grad_(True), b.requires_grad_(True))
                s.trainable += [a, b]
    if setup.precision == "bf16-mixed":
        with tracker.tag("master.fp32"), torch.no_grad():
            s.masters = [p.detach().float() for p in s.trainable]
    return s


class _MatMul4Bit(torch.autograd.Function):
    """bitsandbytes MatMul4Bit: dequantize, matmul, keep the input for backward (autograd/_functions.py)."""

    @staticmethod
    def forward(ctx, x, holder):
        ctx.holder = holder
        ctx.save_for_backward(x)
        return x @ holder.dequantized().t()

    @staticmethod
    def backward(ctx, grad):
        return grad @ ctx.holder.dequantized(), None


@dataclass
class _Holder:
    packed: Packed
    tracker: StorageTracker | None

    def dequantized(self):
        """The bf16 matrix, counted where it is used; the CPU emulation's own temporaries are tagged apart
        (bitsandbytes' dequantize_4bit kernel writes straight into its output and has none)."""
        p = self.packed
        out = torch.empty(p.rows, p.cols, dtype=COMPUTE, device=next(iter(p.parts.values())).device)
        with self.tracker.tag("dequant.scratch") if self.tracker is not None else contextlib.nullcontext():
            p.matrix(out=out)
        return out


def _linear(s: TrainStack, x, w, lora):
    y = _MatMul4Bit.apply(x, _Holder(w, s.tracker)) if isinstance(w, Packed) else F.linear(x, w)
    if lora is not None:
        a, b = lora
        y = y + F.linear(F.linear(x, a), b) * _LORA_SCALE
    return y


def _rms(x, w, eps: float = 1e-5):
    """transformers LlamaRMSNorm.forward: the variance in fp32, the weight applied in the input dtype."""
    x32 = x.to(torch.float32)
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return w * x32.to(x.dtype)


def _rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _layer(s: TrainStack, i: int, h, cos, sin):
    a, L, lo = s.arch, s.layers[i], s.lora[i]
    b, t, _ = h.shape
    d, nh, nkv = a.head_dim_resolved, a.num_attention_heads, a.num_key_value_heads
    x = _rms(h, L["input_layernorm"])
    q = _rope(_linear(s, x, L["q_proj"], lo.get("q_proj")).view(b, t, nh, d).transpose(1, 2), cos, sin)
    k = _rope(_linear(s, x, L["k_proj"], lo.get("k_proj")).view(b, t, nkv, d).transpose(1, 2), cos, sin)
    v = _linear(s, x, L["v_proj"], lo.get("v_proj")).view(b, t, nkv, d).transpose(1, 2)
    o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=nkv != nh)
    h = h + _linear(s, o.transpose(1, 2).reshape(b, t, nh * d), L["o_proj"], lo.get("o_proj"))
    x = _rms(h, L["post_attention_layernorm"])
    gate = _linear(s, x, L["gate_proj"], lo.get("gate_proj"))
    up = _linear(s, x, L["up_proj"], lo.get("up_proj"))
    return h + _linear(s, F.silu(gate) * up, L["down_proj"], lo.get("down_proj"))


def _loss(logits, labels):
    """transformers ForCausalLMLoss: upcast to fp32, then cross-entropy over the vocabulary."""
    upcast = logits.float()
    return F.cross_entropy(upcast.view(-1, upcast.shape[-1]), labels.view(-1))


def hidden_states(s: TrainStack, ids):
    """Embedding and decoder layers (every k-th one checkpointed, as torchtitan's selective layer AC)."""
    a = s.arch
    t, d = ids.shape[1], a.head_dim_resolved
    pos = torch.arange(t, dtype=torch.float32)
    inv = 1.0 / (a.rope_theta or 10000.0) ** (torch.arange(0, d, 2) / d)
    ang = torch.cat((pos[:, None] * inv, pos[:, None] * inv), dim=-1)
    cos, sin = ang.cos().to(s.dtype), ang.sin().to(s.dtype)
    h = F.embedding(ids, s.globals["embed_tokens"])
    ck = {i for i in range(a.num_hidden_layers) if s.setup.checkpointing and (i + 1) % s.setup.checkpoint_every == 0}
    for i in range(a.num_hidden_layers):
        h = checkpoint(_layer, s, i, h, cos, sin, use_reentrant=False) if i in ck else _layer(s, i, h, cos, sin)
    return h


def head_loss(s: TrainStack, h, ids):
    """Final norm, lm_head and the loss over the vocabulary."""
    h = _rms(h, s.globals["norm"])
    logits = F.linear(h, s.globals.get("lm_head", s.globals["embed_tokens"]))
    return _loss(logits, ids)


def step(s: TrainStack, tracker: StorageTracker) -> None:
    """One optimizer step (torch.optim, for-loop implementation: no foreach temporaries)."""
    params = s.masters or s.trainable
    if s.masters:
        with tracker.tag("grads.fp32_copy"):
            for m, p in zip(s.masters, s.trainable):
                m.grad = p.grad.float()
    with tracker.tag("optimizer"):
        if s.setup.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9, foreach=False)
        else:
            opt = torch.optim.AdamW(params, lr=1e-4, foreach=False, fused=False)
        opt.step()
    with torch.no_grad():
        for m, p in zip(s.masters, s.trainable):
            p.copy_(m)
            m.grad = None
    s.optimizer = opt  # keep the states alive for the reading


def measure(arch: Architecture, setup: TrainSetup, recipe: RecipeSpec, seed: int = 0) -> tuple[dict[str, int], int]:
    """Run one step on the CPU; return the readings by term id and the peak of live tensor bytes."""
    check_train_buildable(arch, setup)
    torch.manual_seed(seed)
    tracker = StorageTracker()
    with tracker:
        s = build_train_stack(arch, setup, recipe, tracker)
        readings = {k: v for k, v in tracker.by_tag.items() if k.startswith(("weights.", "master."))}
        ids = torch.randint(0, arch.vocab_size, (setup.micro_batch, setup.seq))
        with tracker.tag("act"):
            h = hidden_states(s, ids)
            with tracker.phase("loss") as at_loss:
                loss = head_loss(s, h, ids)
            del h
        # the activations alive at the loss: everything saved, the head, the logits (layer transients and
        # dequantized NF4 matrices are gone by then)
        readings["act.forward"] = at_loss.tag_peak.get("act", 0)
        with tracker.tag("grads"):
            loss.backward()
        del loss
        readings["grads.trainable"] = tracker.by_tag.get("grads", 0)
        step(s, tracker)
        readings["optimizer.states"] = tracker.by_tag.get("optimizer", 0)
    return readings, tracker.peak


def verify_train(spec, setup: TrainSetup, layers: int, engine, seed: int = 0):
    """Measure the first ``layers`` layers of ``spec`` training with ``setup`` on the CPU and compare with
    `fitcalc train`'s terms for the same truncated model. Returns a TrainVerifyResult."""
    from fitcalc.core.estimate.footprint import truncated_model
    from fitcalc.core.estimate.training import (
        prepare_training,
        train_footprint,
        training_recipe,
    )
    from fitcalc.core.measure.train_compare import TrainVerifyResult, compare_train
    from fitcalc.core.spec import Device

    arch = spec.architecture
    if arch is None or not 1 <= layers <= arch.num_hidden_layers:
        raise InputError(f"--layers must be between 1 and the model's layers, got {layers}",
                         hint="a small count (1 or 2) keeps a CPU run short")
    small = truncated_model(spec, layers)
    prep = prepare_training(small, setup, engine)
    predicted, _ = train_footprint(prep, Device.host(1 << 50), 1)
    readings, peak = measure(small.architecture, setup, training_recipe(small, setup), seed)
    rows = compare_train(predicted, readings, sum(e.instances for e in prep.trainable))
    return TrainVerifyResult(model=spec.id, layers=layers, device="cpu",
                             setup_text=f"{setup.method}, {setup.precision}, {setup.optimizer}, micro-batch "
                                        f"{setup.micro_batch} × {setup.seq} tokens",
                             rows=rows, peak_measured=peak,
                             predicted_total=sum(t.bytes for t in predicted.terms if not t.id.startswith("overhead.")),
                             notes=["measured: live tensor storage by tag (the CPU has no allocator counters)"])
