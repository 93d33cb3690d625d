"""Fine-tuning memory: full, LoRA and QLoRA over N GPUs, term by term. CORE.

One training step holds, per GPU:

    weights.*        the model as trained: full fine-tuning in the training dtype; LoRA the frozen
                     base as stored (QLoRA: NF4) plus weights.lora, the adapters
    grads.*          one gradient per trainable parameter (sharded by ZeRO-2/3, FSDP)
    master.fp32      FP32 master weights of BF16 mixed precision (sharded by ZeRO-1/2/3, FSDP)
    optimizer.*      optimizer states (sharded by ZeRO-1/2/3, FSDP; on the host with --offload)
    act.*            saved activations of the micro-batch, the loss over the vocabulary, and one
                     layer's backward transient
    overhead.*       CUDA context, driver reserve, cuBLAS workspace, DDP gradient buckets

Bytes per trainable parameter before activations (mixed-precision AdamW: 2 + 2 + 4 + 8 = 16, the
ZeRO paper's 2Ψ + 2Ψ + KΨ with K = 12, Rajbhandari et al. arXiv 1910.02054 sec. 3.1):

    precision     weights  grads  master  one optimizer state
    bf16-mixed    2        2      4       4 (fp32)
    bf16          2        2      0       2 (the state takes the parameter's dtype)
    fp32          4        4      0       4

Gradient accumulation adds no memory: the gradients of micro-batches sum into the same buffers.
The total is a conservative sum: activations drain during backward while gradients fill, so
they are not both at their maximum at the same moment. Formulas: docs/formulas.md, "Training";
peers compared in docs/training.md. Checked by tests/estimate/test_training.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fitcalc.core.engines import EngineProfile
from fitcalc.core.errors import InputError
from fitcalc.core.estimate.overhead import (
    cuda_context_draft,
    driver_reserved_draft,
    engine_constant_drafts,
)
from fitcalc.core.estimate.terms import Footprint, Term, make_term
from fitcalc.core.estimate.weights import (
    TensorEntry,
    WeightsBreakdown,
    layer_table,
    tensor_inventory,
    weights_breakdown,
)
from fitcalc.core.recipes import GENERIC_RECIPES, resolve_recipe
from fitcalc.core.spec import Architecture, Device, ModelSpec, RecipeSpec
from fitcalc.core.units import ceil_div, format_both
from fitcalc.core.verdict import Verdict, verdict_of

Method = Literal["full", "lora", "qlora"]
Precision = Literal["bf16-mixed", "bf16", "fp32"]
OptimizerName = Literal["adamw", "paged-adamw", "adamw-8bit", "paged-adamw-8bit", "adafactor", "lion", "sgd"]
Attention = Literal["flash", "eager"]
Loss = Literal["full", "chunked"]
Offload = Literal["none", "optimizer", "params"]

OPTIMIZERS: tuple[str, ...] = OptimizerName.__args__  # type: ignore[attr-defined]

# (weights, grads, master, one optimizer state, activations) bytes per element, by precision.
PRECISION_BYTES: dict[str, tuple[int, int, int, int, int]] = {
    "bf16-mixed": (2, 2, 4, 4, 2), "bf16": (2, 2, 0, 2, 2), "fp32": (4, 4, 0, 4, 4),
}

# bitsandbytes 8-bit optimizers: uint8 states with one fp32 absmax per block of 256 elements;
# tensors under min_8bit_size = 4096 elements keep fp32 states (bitsandbytes/optim/optimizer.py,
# Optimizer2State.init_state / Optimizer1State.init_state, at 95f9af3 = 0.50.2.dev0; the block was
# 2048 before PR #1586, released in 0.46.0). Paged buffers (cudaMallocManaged) are used for tensors
# of 1e5 elements or more (get_state_buffer).
BNB_STATE_BLOCK = 256
BNB_MIN_8BIT_SIZE = 4096
_BNB_SOURCE = ("bitsandbytes/optim/optimizer.py Optimizer2State.init_state @ 95f9af3 (0.50.2.dev0): uint8 "
               "state1/state2, fp32 absmax per 256 elements (since 0.46.0, PR #1586); min_8bit_size 4096")
_ZERO_SOURCE = "ZeRO (Rajbhandari et al., arXiv 1910.02054) sec. 3.1 and 5: 2Ψ + 2Ψ + 12Ψ, stages 1/2/3"
_ACT_SOURCE = ("derived from the tensors autograd saves in a transformers LlamaDecoderLayer-style layer "
               "(RMSNorm upcast to fp32, flash attention saving q, k, v, out and the fp32 logsumexp, SwiGLU); "
               "compare Korthikanti et al. arXiv 2205.05198 eq. 1, s·b·h·(34 + 5·a·s/h) for GPT with dropout")
_LOSS_SOURCE = ("transformers ForCausalLMLoss: logits.float() then cross_entropy, whose log_softmax output "
                "(fp32 [tokens, vocab]) is saved for backward; the bf16 logits stay referenced meanwhile")
_LIGER_SOURCE = ("Liger-Kernel ops/fused_linear_cross_entropy.py fused_linear_cross_entropy_forward: "
                 "chunk = next_pow2(ceil(BT / ceil(V / H))) rows of logits at a time; grad_input [BT, H]")


class TrainSetup(BaseModel):
    """What is trained and how: the options of `fitcalc train`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method = "lora"
    rank: int = 16
    targets: str = "all-linear"  # all-linear | attention | comma-separated role names (q_proj,v_proj)
    double_quant: bool = True  # QLoRA: NF4 with double quantization (the paper's setting)
    base_recipe: str | None = None  # LoRA: re-price the frozen base (None: as the checkpoint stores it)
    precision: Precision = "bf16-mixed"
    optimizer: OptimizerName = "adamw"
    micro_batch: int = Field(1, ge=1)
    seq: int = Field(2048, ge=1)
    grad_accum: int = Field(1, ge=1)
    checkpointing: bool = False
    checkpoint_every: int = Field(1, ge=1)  # checkpoint every k-th layer (1: every layer)
    attention: Attention = "flash"
    loss: Loss = "full"
    zero: int = Field(0, ge=0, le=3)
    fsdp: Literal["full", "hybrid"] | None = None
    gpus_per_node: int = Field(8, ge=1)
    offload: Offload = "none"


# ---------------------------------------------------------------------------------------------
# What is trained
# ---------------------------------------------------------------------------------------------

_NOT_TRAINED = {"mtp"}  # MTP layers are not loaded by transformers for training
_ATTENTION_GROUPS = {"attention", "linear_attention"}


def _role(e: TensorEntry) -> str:
    return e.role.split(".")[-1]


def _is_adaptable(e: TensorEntry, arch: Architecture) -> bool:
    """A matrix inside the decoder layers that PEFT's ``all-linear`` matches: an nn.Linear, not the
    output layer (peft tuners_utils._maybe_include_all_linear_layers). gpt-oss's stacked experts are
    nn.Parameter, not nn.Linear (transformers GptOssExperts). MoE routers are left out although PEFT
    would adapt one that is an nn.Linear (Mixtral's ``gate``): with E outputs (8 for Mixtral) the usual
    ranks exceed the layer, and MoE recipes (axolotl, Unsloth) list the projections only; name
    ``router`` in --targets to adapt it."""
    if e.kind != "matrix" or e.group in ("lm_head", "embedding", "router", *_NOT_TRAINED):
        return False
    return not (arch.moe is not None and arch.moe.stacked and e.group == "experts")


def lora_targets(arch: Architecture, targets: str) -> list[TensorEntry]:
    """Inventory matrices LoRA adapts. Raises InputError for a role the model does not have."""
    matrices = [e for e in tensor_inventory(arch) if e.kind == "matrix" and e.group not in _NOT_TRAINED]
    if targets == "all-linear":
        return [e for e in matrices if _is_adaptable(e, arch)]
    if targets == "attention":
        return [e for e in matrices if e.group in _ATTENTION_GROUPS and _is_adaptable(e, arch)]
    names = [t.strip() for t in targets.split(",") if t.strip()]
    known = sorted({_role(e) for e in matrices if e.group not in ("lm_head", "embedding")})
    missing = [n for n in names if n not in known]
    if missing or not names:
        raise InputError(f"LoRA target {', '.join(missing) or repr(targets)} is not a linear layer of this model "
                         f"(it has {', '.join(known)})",
                         hint="--targets all-linear, --targets attention, or a comma-separated list of those names")
    return [e for e in matrices if _role(e) in names and e.group not in ("lm_head", "embedding")]


def check_rank(entries: list[TensorEntry], rank: int) -> None:
    if rank < 1:
        raise InputError(f"LoRA rank must be at least 1, got {rank}", hint="e.g. --rank 16")
    narrow = min(entries, key=lambda e: min(e.shape))
    if rank > min(narrow.shape):
        raise InputError(f"LoRA rank {rank} is larger than the layer {narrow.name.replace('{i}', 'N')} "
                         f"({narrow.shape[0]}×{narrow.shape[1]}): a rank above min(out, in) = {min(narrow.shape)} "
                         f"adds nothing", hint=f"--rank {min(narrow.shape)} or less, or leave that layer out of --targets")


def lora_tensors(entries: list[TensorEntry], rank: int) -> list[TensorEntry]:
    """A [r, in] and B [out, r] per adapted matrix (Hu et al. arXiv 2106.09685 sec. 4.1: r(d + k) per
    matrix); per expert for expert matrices (PEFT's ParamWrapper for 3-D expert parameters)."""
    out = []
    for e in entries:
        rows, cols = e.shape
        for part, shape in (("lora_A", (rank, cols)), ("lora_B", (rows, rank))):
            out.append(replace(e, name=e.name.replace(".weight", f".{part}"), role=f"{e.role}.{part}", shape=shape,
                               layers=list(e.layers)))
    return out


def full_tensors(arch: Architecture) -> list[TensorEntry]:
    return [e for e in tensor_inventory(arch) if e.group not in _NOT_TRAINED]


def is_prequantized(model: ModelSpec) -> list[str]:
    """Matrix formats of the checkpoint that are not 16/32-bit floats (MXFP4, FP8, a GGUF type ...)."""
    wb = weights_breakdown(model, model.native_recipe)
    floats = {"bf16", "fp16", "fp32", "f16", "f32"}
    return sorted({f for g in wb.groups for f in g.formats if f not in floats})


def training_recipe(model: ModelSpec, setup: TrainSetup) -> RecipeSpec:
    """The recipe of the weights held on the GPUs: full fine-tuning in the training dtype; LoRA the
    frozen base as stored (or ``base_recipe``); QLoRA the base in NF4 (transformers BitsAndBytesConfig:
    every nn.Linear but lm_head; embeddings, norms and routers stay 16-bit: the nf4 recipes of
    fitcalc.core.recipes). Raises InputError for QLoRA on a checkpoint already quantized another way."""
    if setup.method == "full":
        return GENERIC_RECIPES["fp32" if setup.precision == "fp32" else "bf16"]
    if setup.method == "qlora":
        quantized = is_prequantized(model)
        if quantized:
            raise InputError(f"{model.id} is already quantized ({', '.join(quantized)}); QLoRA quantizes a 16-bit "
                             f"checkpoint to NF4", hint="use --method lora to train adapters on the checkpoint as "
                                                        "stored, or start from a BF16 checkpoint")
        return GENERIC_RECIPES["nf4-dq" if setup.double_quant else "nf4"]
    return resolve_recipe(model, setup.base_recipe)


# ---------------------------------------------------------------------------------------------
# Optimizer states
# ---------------------------------------------------------------------------------------------


def is_paged(setup: TrainSetup) -> bool:
    return setup.optimizer.startswith("paged-") and setup.offload == "none"


def state_element_bytes(setup: TrainSetup) -> int:
    """One optimizer-state element: torch optimizers keep states in the parameter's dtype (fp32 master
    under mixed precision); bitsandbytes' 32-bit optimizers (paged-adamw) keep fp32 states whatever the
    parameter's dtype (Optimizer2State.init_state, optim_bits=32)."""
    return 4 if setup.optimizer == "paged-adamw" else PRECISION_BYTES[setup.precision][3]


def optimizer_bytes(tensors: list[TensorEntry], optimizer: str, state: int) -> tuple[int, str, str]:
    """[term: optimizer.states] (bytes, formula, source) over the trainable tensors.

    adamw, paged-adamw      2 × n × s                         (exp_avg, exp_avg_sq; torch.optim.AdamW)
    adamw-8bit (+ paged)    2 × n × 1 + 2 × ceil(n/256) × 4   per tensor of n ≥ 4096; else 2 × n × 4
    adafactor               (rows + cols) × s per matrix, n × s per vector (factored second moment,
                            no first moment: transformers.optimization.Adafactor, beta1=None)
    lion, sgd               n × s                            (one state: exp_avg / momentum_buffer)
    where  s  bytes of one state element (PRECISION_BYTES)
    """
    total = 0
    for t in tensors:
        n = t.numel
        if optimizer in ("adamw", "paged-adamw"):
            one = 2 * n * state
        elif optimizer in ("adamw-8bit", "paged-adamw-8bit"):
            one = 2 * n + 2 * ceil_div(n, BNB_STATE_BLOCK) * 4 if n >= BNB_MIN_8BIT_SIZE else 2 * n * 4
        elif optimizer == "adafactor":
            one = (sum(t.shape[:-1]) + t.shape[-1]) * state if len(t.shape) >= 2 else n * state
        else:  # lion, sgd with momentum
            one = n * state
        total += one * t.instances
    formulas = {
        "adamw": ("2 × n × s", "torch.optim.AdamW: exp_avg and exp_avg_sq in the parameter's dtype"),
        "paged-adamw": ("2 × n × s (paged)", "bitsandbytes PagedAdamW: same states in cudaMallocManaged memory"),
        "adamw-8bit": ("Σ 2 × n + 2 × ceil(n / 256) × 4 (n ≥ 4096; else 2 × n × 4)", _BNB_SOURCE),
        "paged-adamw-8bit": ("Σ 2 × n + 2 × ceil(n / 256) × 4 (n ≥ 4096; else 2 × n × 4), paged", _BNB_SOURCE),
        "adafactor": ("Σ (rows + cols) × s per matrix + n × s per vector",
                      "transformers.optimization.Adafactor (exp_avg_sq_row, exp_avg_sq_col; beta1=None)"),
        "lion": ("n × s", "Lion (Chen et al. arXiv 2302.06675): one momentum state"),
        "sgd": ("n × s", "torch.optim.SGD(momentum>0): momentum_buffer"),
    }
    formula, source = formulas[optimizer]
    return total, formula, source


# ---------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SavesInput:
    """Which linear layers keep their input for backward: a trainable weight needs it for its
    gradient, a LoRA adapter's A needs it, and bitsandbytes' MatMul4Bit keeps it for every 4-bit
    layer (bitsandbytes autograd/_functions.py MatMul4Bit.forward: ctx.tensors = (A, B)). A frozen
    16-bit nn.Linear does not: autograd saves a matmul operand only when the other needs a gradient."""

    all_linear: bool
    roles: frozenset[str]

    def __call__(self, *roles: str) -> bool:
        return self.all_linear or any(r in self.roles for r in roles)


def layer_saved_bytes(arch: Architecture, e: int, saves: SavesInput, norm_weights: bool,
                      lora_per_token: int = 0) -> list[int]:
    """[term: act.layers] Bytes each decoder layer saves for backward, per token, with flash attention.

    per norm       4·H (the fp32 upcast that transformers' RMSNorm keeps) + e·H if the norm weight trains
    attention      e·H (normed input, if q/k/v keep it) + e·(a·d + 2·n_kv·d) (q, k, v) + e·a·d (output)
                   + 4·a (fp32 logsumexp of flash attention)
    dense MLP      e·H (input, if gate/up keep it) + 3·e·I (gate out, SiLU out, up out) + e·I (product,
                   if down keeps it); non-gated: e·I + e·I
    MoE MLP        4·E (fp32 router softmax) + k × (e·H gathered input + 3·e·I_moe + e·I_moe + e·H
                   weighted output) + the shared expert as a dense MLP
    LoRA           e·r per adapter a token passes (A's output, which B keeps): ``lora_per_token`` = Σ r
    where e bytes per activation element, H hidden, a heads, n_kv KV heads, d head_dim, I widths.
    """
    h, a, n_kv = arch.hidden_size, arch.num_attention_heads, arch.num_key_value_heads
    if arch.mla is not None:
        qk = arch.mla.qk_nope_head_dim + arch.mla.qk_rope_head_dim
        qkv, out_w = a * qk * 2 + a * arch.mla.v_head_dim, a * arch.mla.v_head_dim
    else:
        d = arch.head_dim_resolved
        qkv, out_w = (a + 2 * n_kv) * d, a * d
    norm = 4 * h + (e * h if norm_weights else 0)
    attn_in = saves("q_proj", "k_proj", "v_proj", "qkv_proj", "q_a_proj", "kv_a_proj", "in_proj_qkvz")
    attn = (e * h if attn_in else 0) + e * (qkv + out_w) + 4 * a
    dense_set = set(arch.dense_layer_indices())
    return [2 * norm + attn + _mlp_saved(arch, e, saves, dense=i in dense_set) + lora_per_token * e
            for i in range(arch.num_hidden_layers)]


def eager_saved_per_token(arch: Architecture, e: int, seq: int) -> int:
    """[term: act.attention_scores] Eager attention (transformers eager_attention_forward) keeps the
    fp32 softmax output and its cast to the activation dtype, [b, a, S, S] each, and key and value
    repeated to all a heads: per token per layer (4 + e)·a·S + 2·e·(a − n_kv)·d."""
    a, n_kv, d = arch.num_attention_heads, arch.num_key_value_heads, arch.head_dim_resolved
    return (4 + e) * a * seq + 2 * e * (a - n_kv) * d


def _dense_saved(e: int, h: int, width: int, gated: bool, saves: SavesInput) -> int:
    inp = e * h if saves("gate_proj", "up_proj", "gate_up_proj") else 0
    inner = 3 * e * width if gated else e * width
    return inp + inner + (e * width if saves("down_proj") else 0)


def _mlp_saved(arch: Architecture, e: int, saves: SavesInput, dense: bool) -> int:
    h = arch.hidden_size
    if dense or arch.moe is None:
        return _dense_saved(e, h, arch.intermediate_size or 0, arch.mlp_gated, saves)
    m = arch.moe
    per_route = e * h + _dense_saved(e, h, m.moe_intermediate_size, arch.mlp_gated, saves) + e * h
    shared = _dense_saved(e, h, m.shared_width, arch.mlp_gated, saves) if m.shared_width else 0
    return 4 * m.num_experts + m.experts_per_token * per_route + shared


def lora_rank_per_token(arch: Architecture, entries: list[TensorEntry], rank: int) -> int:
    """Σ r over the adapters one token passes in an average layer (routed experts: k of E)."""
    n = arch.num_hidden_layers
    k_over_e = (arch.moe.experts_per_token, arch.moe.num_experts) if arch.moe is not None else (1, 1)
    total = 0
    for ent in entries:
        per = len(ent.layers) * (k_over_e[0] if ent.group == "experts" else ent.copies)
        total += per
    return ceil_div(total * rank, n)


# ---------------------------------------------------------------------------------------------
# Sharding
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sharding:
    """How many ways each state is split over the GPUs of one data-parallel group."""

    label: str
    weights: int
    grads: int
    optimizer: int  # master weights and optimizer states
    gathers: bool  # ZeRO-3 / FSDP: layers are all-gathered before use
    replicas: int  # GPUs holding a full copy of the gradients (DDP buckets when > 1 and not sharded)


def sharding(setup: TrainSetup, n_gpus: int) -> tuple[Sharding, list[str]]:
    """ZeRO stages (DeepSpeed) and FSDP strategies mapped to split factors. FSDP FULL_SHARD = ZeRO-3;
    HYBRID_SHARD shards within a node (``gpus_per_node``) and replicates across nodes."""
    notes = []
    if setup.fsdp is not None:
        group = n_gpus if setup.fsdp == "full" else min(n_gpus, setup.gpus_per_node)
        label = f"FSDP {'FULL_SHARD' if setup.fsdp == 'full' else 'HYBRID_SHARD'} over {group}"
        return Sharding(label, group, group, group, True, n_gpus), notes
    z = setup.zero
    if z == 3 and n_gpus == 1 and setup.offload != "params":
        notes.append("ZeRO-3 on one GPU shards nothing: it is the same as ZeRO-0 (no sharding); priced as ZeRO-0")
        z = 0
    if z == 0:
        label = f"data parallel (DDP) over {n_gpus}" if n_gpus > 1 else "one GPU, no sharding"
        return Sharding(label, 1, 1, 1, False, n_gpus), notes
    return Sharding(f"ZeRO-{z} over {n_gpus}", n_gpus if z == 3 else 1, n_gpus if z >= 2 else 1, n_gpus, z == 3,
                    n_gpus), notes


# ---------------------------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainPrep:
    """Everything about a setup that does not depend on the GPUs, micro-batch or sequence."""

    model: ModelSpec
    setup: TrainSetup
    arch: Architecture
    base: WeightsBreakdown
    trainable: tuple[TensorEntry, ...]  # full: the inventory; LoRA: the A and B matrices
    params_trainable: int
    optimizer: tuple[int, str, str]
    layer_weight_bytes: int  # the largest decoder layer as held (ZeRO-3 / FSDP gather unit)
    root_weight_bytes: int  # embedding, final norm, lm_head (FSDP's root unit)
    layer_trainable: int
    root_trainable: int
    saved_per_token: tuple[int, ...]
    dequant_elements: int  # QLoRA: the largest NF4 matrix, dequantized to bf16 for its matmul
    engine: EngineProfile
    notes: tuple[str, ...]


def prepare_training(model: ModelSpec, setup: TrainSetup, engine: EngineProfile) -> TrainPrep:
    """Validate the setup against the model and count what it trains. Raises InputError."""
    arch = model.architecture
    if arch is None:
        raise InputError(f"{model.id}: training memory needs the model's architecture (layers, widths)",
                         hint="use a model spec with an architecture block, or a checkpoint with its config.json")
    if setup.offload == "params" and not (setup.zero == 3 or setup.fsdp):
        raise InputError("--offload params needs parameter sharding", hint="add --zero 3 or --fsdp full")
    notes: list[str] = []
    recipe = training_recipe(model, setup)
    base = weights_breakdown(model, recipe)
    wbytes, _g, _m, _s, e = PRECISION_BYTES[setup.precision]
    if setup.method == "full":
        tensors = full_tensors(arch)
        saves, norm_w, lora_tok, adapted = SavesInput(True, frozenset()), True, 0, []
    else:
        adapted = lora_targets(arch, setup.targets)
        if not adapted:
            raise InputError(f"--targets {setup.targets} matches no linear layer of {model.id}",
                             hint="name the layers with --targets q_proj,v_proj,...")
        check_rank(adapted, setup.rank)
        tensors = lora_tensors(adapted, setup.rank)
        roles = frozenset(_role(x) for x in adapted)
        saves, norm_w = SavesInput(setup.method == "qlora", roles), False
        lora_tok = lora_rank_per_token(arch, adapted, setup.rank)
        quantized = is_prequantized(model)
        if setup.method == "lora" and quantized and setup.base_recipe is None:
            notes.append(f"the frozen base is priced as stored ({', '.join(quantized)}); where the training stack "
                         f"has no kernels for it, transformers dequantizes it to BF16 (Mxfp4Config(dequantize=True)"
                         f" for gpt-oss): price that with --base-recipe bf16")
    table = layer_table(model, recipe)
    per_layer = [0] * arch.num_hidden_layers
    for rows in (table.per_layer.values() if table else []):
        for i, fmts in enumerate(rows):
            per_layer[i] += sum(fmts.values())
    outside = sum(sum(f.values()) for g, f in (table.outside.items() if table else []) if g not in _NOT_TRAINED)
    in_layers = sum(t.params for t in tensors if "{i}" in t.name)
    trainable = sum(t.params for t in tensors)
    lora_layer = ceil_div(in_layers, arch.num_hidden_layers) * wbytes if setup.method != "full" else 0
    return TrainPrep(
        model=model, setup=setup, arch=arch, base=base, trainable=tuple(tensors), params_trainable=trainable,
        optimizer=optimizer_bytes(tensors, setup.optimizer, state_element_bytes(setup)),
        layer_weight_bytes=max(per_layer, default=0) + lora_layer, root_weight_bytes=outside,
        layer_trainable=ceil_div(in_layers, arch.num_hidden_layers), root_trainable=trainable - in_layers,
        saved_per_token=tuple(layer_saved_bytes(arch, e, saves, norm_w, lora_tok)),
        dequant_elements=max((x.numel for x in adapted), default=0) if setup.method == "qlora" else 0,
        engine=engine, notes=tuple(notes))


def _mk(term_id: str, label: str, n: int, formula: str, inputs: dict, source: str, *, kind="exact",
        band: float | None = None, placement="gpu") -> Term:
    explain = f"{term_id}: {formula} = {n:,} B = {format_both(n)}"
    return make_term(term_id, label, n, kind=kind, band=band, formula=formula, inputs=inputs, explain=explain,
                     sources=(source,), placement=placement)


def state_terms(p: TrainPrep, sh: Sharding) -> list[Term]:
    """weights.*, grads.*, master.fp32, optimizer.states for one GPU (placement cpu when offloaded)."""
    s = p.setup
    w, g, m, st, _e = PRECISION_BYTES[s.precision]
    P = p.params_trainable
    off_opt = s.offload != "none"
    off_params = s.offload == "params"
    terms = []
    for t in p.base.terms:
        group = t.id.split(".", 1)[1]
        if group in _NOT_TRAINED:
            continue
        n = ceil_div(t.bytes, sh.weights)
        terms.append(t.model_copy(update={"bytes": n, "placement": "cpu" if off_params else "gpu",
                                          "explain": t.explain + (f"\n    / {sh.weights} shards = {n:,} B"
                                                                  if sh.weights > 1 else "")}))
    if s.method != "full":
        n = ceil_div(P * w, sh.weights)
        terms.append(_mk("weights.lora", f"weights: LoRA adapters r={s.rank}", n, f"P_trainable {P:,} × {w} B"
                         + (f" / {sh.weights}" if sh.weights > 1 else ""), {"P_trainable": P, "bytes": w, "r": s.rank},
                         "Hu et al. arXiv 2106.09685 sec. 4.1: A [r, in] and B [out, r] per adapted matrix",
                         placement="cpu" if off_params else "gpu"))
    terms.append(_mk("grads.trainable", "gradients", ceil_div(P * g, sh.grads),
                     f"P_trainable {P:,} × {g} B" + (f" / {sh.grads}" if sh.grads > 1 else ""),
                     {"P_trainable": P, "bytes": g, "shards": sh.grads}, _ZERO_SOURCE,
                     placement="cpu" if off_params else "gpu"))
    if m:
        terms.append(_mk("master.fp32", "FP32 master weights", ceil_div(P * m, sh.optimizer),
                         f"P_trainable {P:,} × 4 B" + (f" / {sh.optimizer}" if sh.optimizer > 1 else ""),
                         {"P_trainable": P, "shards": sh.optimizer}, _ZERO_SOURCE,
                         placement="cpu" if off_opt else "gpu"))
    ob, formula, source = p.optimizer
    paged = " — paged: bitsandbytes pages them to host RAM under memory pressure" if is_paged(s) else ""
    terms.append(_mk("optimizer.states", f"optimizer states ({s.optimizer}){paged}", ceil_div(ob, sh.optimizer),
                     formula + (f" / {sh.optimizer}" if sh.optimizer > 1 else ""),
                     {"n": P, "s": st, "shards": sh.optimizer, "total": ob}, source,
                     placement="cpu" if off_opt else "gpu"))
    if off_opt and not off_params:
        terms.append(_mk("grads.host", "FP32 gradients on the host (CPU Adam)", ceil_div(P * 4, sh.optimizer),
                         f"P_trainable {P:,} × 4 B / {sh.optimizer}", {"P_trainable": P},
                         "DeepSpeed ZeRO-Offload (Ren et al. arXiv 2101.06840 sec. 4): fp32 gradients, master "
                         "weights and Adam states live in CPU memory; the step runs on the CPU", placement="cpu"))
    return terms + _gather_terms(p, sh)


def _gather_terms(p: TrainPrep, sh: Sharding) -> list[Term]:
    g = PRECISION_BYTES[p.setup.precision][1]
    out = []
    if sh.gathers:
        n = p.root_weight_bytes + 2 * p.layer_weight_bytes
        out.append(_mk("weights.gathered", "all-gathered units (ZeRO-3 / FSDP)", n,
                       f"root (embedding + norm + lm_head) {p.root_weight_bytes:,} + 2 × largest layer "
                       f"{p.layer_weight_bytes:,}", {"root": p.root_weight_bytes, "layer": p.layer_weight_bytes},
                       "torch FSDP: the root unit stays unsharded through forward; the current unit and the one "
                       "prefetched next are gathered (BackwardPrefetch.BACKWARD_PRE, FSDP2 implicit prefetch)",
                       kind="derived", band=0.15))
    if sh.grads > 1:
        n = max(p.layer_trainable, p.root_trainable) * g
        out.append(_mk("grads.unsharded", "one unit's full gradients before reduce-scatter", n,
                       f"max(layer {p.layer_trainable:,}, root {p.root_trainable:,}) params × {g} B",
                       {"layer": p.layer_trainable, "root": p.root_trainable}, _ZERO_SOURCE, kind="derived",
                       band=0.25))
    if sh.replicas > 1 and not sh.gathers and sh.grads == 1 and p.setup.zero == 0:
        n = p.params_trainable * g
        out.append(_mk("overhead.ddp_buckets", "DDP gradient buckets", n, f"P_trainable {p.params_trainable:,} × {g} B",
                       {"P_trainable": p.params_trainable},
                       "torch DistributedDataParallel(gradient_as_bucket_view=False), the default: the all-reduce "
                       "buckets are a second copy of the gradients (torch docs, DistributedDataParallel)",
                       kind="derived", band=0.1))
    return out


def checkpointed_layers(n_layers: int, setup: TrainSetup) -> list[int]:
    """Layers whose activations are recomputed: every k-th layer, i + 1 ≡ 0 (mod k) (torchtitan's
    selective layer checkpointing, activation_checkpoint.selective_ac_option = k; k = 1: all layers,
    as transformers' gradient_checkpointing_enable())."""
    if not setup.checkpointing:
        return []
    k = setup.checkpoint_every
    return [i for i in range(n_layers) if (i + 1) % k == 0]


def activation_terms(p: TrainPrep, micro_batch: int, seq: int) -> list[Term]:
    """act.layers, act.attention_scores, act.recompute, act.backward, act.head, act.logits, act.dequant."""
    s, a = p.setup, p.arch
    e = PRECISION_BYTES[s.precision][4]
    T, h, V = micro_batch * seq, a.hidden_size, a.vocab_size
    ck = set(checkpointed_layers(a.num_hidden_layers, s))
    kept = [b for i, b in enumerate(p.saved_per_token) if i not in ck]
    eager = eager_saved_per_token(a, e, seq) if s.attention == "eager" else 0
    n_full, n_ck = len(kept), len(ck)
    layers = T * (sum(kept) + n_ck * e * h)
    terms = [_mk("act.layers", "activations saved for backward", layers,
                 f"T {T:,} × (Σ saved bytes of {n_full} stored layers {sum(kept):,}"
                 + (f" + {n_ck} checkpointed layers × e {e} × H {h}" if n_ck else "") + ")",
                 {"T": T, "stored_layers": n_full, "checkpointed_layers": n_ck, "e": e, "H": h},
                 _ACT_SOURCE, kind="derived", band=0.2)]
    if eager:
        terms.append(_mk("act.attention_scores", "eager attention: scores kept", T * n_full * eager,
                         f"T {T:,} × {n_full} layers × ((4 + e {e}) × a {a.num_attention_heads} × S {seq:,} "
                         f"+ repeated K, V)", {"T": T, "a": a.num_attention_heads, "S": seq},
                         "transformers eager_attention_forward: softmax in fp32, cast back, repeat_kv; flash and "
                         "memory-efficient kernels keep no [S, S] matrix (Dao et al. arXiv 2205.14135)",
                         kind="derived", band=0.2))
    biggest = max(p.saved_per_token) + eager
    if n_ck:
        terms.append(_mk("act.recompute", "one checkpointed layer recomputed in backward", T * biggest,
                         f"T {T:,} × {biggest:,} B", {"T": T, "per_token": biggest}, _ACT_SOURCE, kind="derived",
                         band=0.2))
    terms.append(_mk("act.backward", "gradients of one layer's intermediates during its backward", T * biggest,
                     f"T {T:,} × {biggest:,} B (about what the layer saved)", {"T": T, "per_token": biggest},
                     "heuristic: a layer's backward holds gradients shaped like its saved tensors", kind="heuristic",
                     band=0.5))
    full = s.method == "full"
    head = T * (4 * h + (2 * e * h if full else 0))
    terms.append(_mk("act.head", "final norm and lm_head input", head,
                     f"T {T:,} × (4 × H {h}" + (f" + 2 × e {e} × H" if full else "") + ")", {"T": T, "H": h},
                     _ACT_SOURCE, kind="derived", band=0.2))
    terms.append(logits_term(T, V, h, e, s.loss))
    if p.dequant_elements:
        n = p.dequant_elements * 2
        terms.append(_mk("act.dequant", "NF4 matrix dequantized to BF16 for its matmul", n,
                         f"largest adapted matrix {p.dequant_elements:,} × 2 B",
                         {"elements": p.dequant_elements}, "bitsandbytes MatMul4Bit: dequantize_4bit(B) then "
                         "torch.matmul, in forward and again in backward", kind="derived", band=0.1))
    return terms


def logits_term(tokens: int, vocab: int, hidden: int, e: int, loss: str) -> Term:
    """[term: act.logits] The loss over the whole vocabulary.

    full      T × V × (e + 4 + 4): bf16 logits, their fp32 copy and the fp32 log-softmax output kept for
              backward (fp32 training: the copy is the logits themselves, T × V × 8)
    chunked   C × V × e + T × H × e + 4 × T, C = next_pow2(ceil(T / ceil(V / H))): one chunk of logits
              at a time, the input gradient computed in forward, fp32 per-token losses (Liger-Kernel)
    """
    if loss == "full":
        per = e + 4 + (4 if e != 4 else 0)
        return _mk("act.logits", "logits and loss over the vocabulary", tokens * vocab * per,
                   f"T {tokens:,} × V {vocab:,} × {per} B", {"T": tokens, "V": vocab, "bytes": per}, _LOSS_SOURCE,
                   kind="derived", band=0.1)
    inc = ceil_div(vocab, hidden)
    chunk = min(tokens, 1 << max(0, (ceil_div(tokens, inc) - 1).bit_length()))
    n = chunk * vocab * e + tokens * hidden * e + 4 * tokens
    return _mk("act.logits", "chunked fused cross-entropy", n,
               f"chunk {chunk:,} × V {vocab:,} × {e} + T {tokens:,} × H {hidden} × {e} + 4 × T",
               {"chunk": chunk, "V": vocab, "T": tokens, "H": hidden}, _LIGER_SOURCE, kind="derived", band=0.1)


def overhead_terms(p: TrainPrep, device: Device) -> list[Term]:
    drafts = [driver_reserved_draft(device), cuda_context_draft(device, p.engine),
              *engine_constant_drafts(p.engine, device=device)]
    return [d[2]() for d in drafts if d is not None and d[0] in ("overhead.driver_reserved", "overhead.cuda_context",
                                                                  "overhead.cublas_workspace")]


def train_footprint(p: TrainPrep, device: Device, n_gpus: int, micro_batch: int | None = None,
                    seq: int | None = None) -> tuple[Footprint, list[str]]:
    """Every term of one GPU's step (host-resident terms carry placement 'cpu', per GPU)."""
    sh, notes = sharding(p.setup, n_gpus)
    terms = [*state_terms(p, sh), *activation_terms(p, micro_batch or p.setup.micro_batch, seq or p.setup.seq),
             *overhead_terms(p, device)]
    return Footprint(terms=terms), [sh.label, *notes]


# ---------------------------------------------------------------------------------------------
# Verdicts and solvers
# ---------------------------------------------------------------------------------------------


class TrainFit(BaseModel):
    """One GPU configuration: the terms of one GPU, its verdict, and what would fit."""

    model_config = ConfigDict(frozen=True)

    label: str
    count: int
    memory_bytes: int  # per GPU
    sharding: str
    gpu_bytes: int
    pageable_bytes: int  # paged optimizer states: may move to host RAM when the GPU runs out
    fits: bool  # gpu_bytes − pageable_bytes fits (a step that pages runs slower; see notes)
    headroom_bytes: int
    uncertainty_bytes: int
    # fit's rule (fitcalc.core.verdict) on the bytes that must stay on the GPU: "tight" also when the
    # step fits only by paging optimizer states to host RAM
    verdict: Verdict = "fits"
    device_id: str | None = None  # the profile id a user types (rtx-4090), None for a raw budget
    terms: list[Term]  # per GPU, placement 'gpu'
    host_terms: list[Term]  # per node: the host-resident terms of its GPUs
    host_bytes: int
    max_micro_batch: int | None  # at the sequence asked for (None: not even 1)
    max_seq: int | None  # at the micro-batch asked for
    gpus_needed: int | None  # with the same sharding (None: more GPUs do not help, or over 1024)
    notes: list[str] = Field(default_factory=list)


def _gpu_bytes(p: TrainPrep, device: Device, n_gpus: int, b: int, s: int) -> int:
    """One GPU's bytes that must stay on it (paged optimizer states can leave)."""
    fp, _ = train_footprint(p, device, n_gpus, b, s)
    paged = fp.term("optimizer.states").bytes if is_paged(p.setup) else 0
    return fp.on("gpu") - paged


def _largest(fits, hi: int) -> int | None:
    """Largest x in [1, hi] with fits(x), for fits monotone decreasing (None if fits(1) is false)."""
    if not fits(1):
        return None
    lo, top = 1, 2
    while top <= hi and fits(top):
        lo, top = top, top * 2
    top = min(top, hi + 1)
    while top - lo > 1:
        mid = (lo + top) // 2
        lo, top = (mid, top) if fits(mid) else (lo, mid)
    return lo


def fit_training(p: TrainPrep, device: Device, n_gpus: int, label: str) -> TrainFit:
    s = p.setup
    fp, notes = train_footprint(p, device, n_gpus)
    gpu_terms = [t for t in fp.terms if t.placement == "gpu"]
    used = sum(t.bytes for t in gpu_terms)
    local = min(n_gpus, s.gpus_per_node)
    host = [t.model_copy(update={"bytes": t.bytes * local}) for t in fp.terms if t.placement == "cpu"]
    cap = device.memory_bytes
    pageable = fp.term("optimizer.states").bytes if is_paged(s) else 0
    if used > cap >= used - pageable:
        notes.append(f"fits only by paging {used - cap:,} B of optimizer states to host RAM: slower steps")
    limit = p.arch.max_position_embeddings or (1 << 20)
    max_b = _largest(lambda b: _gpu_bytes(p, device, n_gpus, b, s.seq) <= cap, 1 << 14)
    max_s = _largest(lambda q: _gpu_bytes(p, device, n_gpus, s.micro_batch, q) <= cap, limit)
    unc = sum(t.uncertainty_bytes for t in gpu_terms)
    verdict = verdict_of(cap - used, unc)
    if used > cap >= used - pageable:
        verdict = "tight"
    return TrainFit(label=label, count=n_gpus, memory_bytes=cap, sharding=notes[0], gpu_bytes=used, pageable_bytes=pageable,
                    fits=used - pageable <= cap, verdict=verdict, device_id=device.profile_id,
                    headroom_bytes=cap - used, uncertainty_bytes=unc,
                    terms=gpu_terms, host_terms=host, host_bytes=sum(t.bytes for t in host), max_micro_batch=max_b,
                    max_seq=max_s, gpus_needed=gpus_needed(p, device), notes=[*notes[1:], *p.notes])


def gpus_needed(p: TrainPrep, device: Device, most: int = 1024) -> int | None:
    """Fewest GPUs of this kind that hold the step with the setup's sharding (None when sharding is off:
    data parallelism replicates everything, so more GPUs never lower one GPU's share)."""
    s = p.setup

    def fits(n: int) -> bool:
        return _gpu_bytes(p, device, n, s.micro_batch, s.seq) <= device.memory_bytes

    if fits(1):
        return 1
    if (s.zero == 0 and s.fsdp is None) or not fits(most):
        return None
    lo, hi = 1, most  # fits(hi), not fits(lo); one GPU's share only shrinks as GPUs are added
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


class TrainResult(BaseModel):
    """`fitcalc train`: one setup on one or more GPU configurations."""

    model_config = ConfigDict(frozen=True)

    model: str
    display_name: str
    setup: TrainSetup
    recipe: str  # the recipe of the weights held (training dtype, base as stored, or NF4)
    params_total: int
    params_trainable: int
    fits: list[TrainFit]
    notes: list[str] = Field(default_factory=list)


def train_result(p: TrainPrep, targets: list[tuple[Device, int, str]]) -> TrainResult:
    """Verdicts for each (device, count, label) with the prepared setup."""
    notes = []
    if p.setup.grad_accum > 1:
        notes.append(f"gradient accumulation over {p.setup.grad_accum} micro-batches adds no memory: their gradients "
                     f"sum into the same buffers (effective batch {p.setup.grad_accum * p.setup.micro_batch} per GPU)")
    return TrainResult(model=p.model.id, display_name=p.model.display_name, setup=p.setup, recipe=p.base.recipe,
                       params_total=p.base.params_total, params_trainable=p.params_trainable,
                       fits=[fit_training(p, dev, n, label) for dev, n, label in targets], notes=notes)
