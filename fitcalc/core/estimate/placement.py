"""Where each part of a model lives: layers, routed experts, embedding and head per device. CORE.

A ``Share`` is what one device holds. The footprint of a device is the same sum of terms as
``fit``'s, taken over its share: weights of its layers (the routed experts of the layers in
``expert_layers``), the embedding and the head when it holds them, the KV cache of its layers,
and its own working memory and overheads. The whole model on one device is ``Share()`` with the
engine's rule for the input embedding, so ``fit`` and ``plan`` use one code path.

A ``Layout`` is how a plan spreads the model (the knobs an engine exposes):

    tp        tensor parallel: every weight matrix of a stage split over tp GPUs (heads split;
              KV heads split over min(tp, n_kv) ranks and replicated beyond)
    pp        pipeline stages of consecutive layers; the embedding on the first stage, the final
              norm, lm_head and logits on the last (vLLM get_pp_indices)
    ep        expert parallel: routed experts split whole over ep ranks (ep = tp × dp; with
              dp > 1 attention is replicated dp times and the batch splits dp ways)
    split     llama.cpp layer split: GPU layer slots per device (-ts proportions)
    gpu_layers  llama.cpp -ngl: GPU layer slots, counting the output layer as slot n_layer
    cpu_moe   routed experts of the first N layers in system RAM (--n-cpu-moe N; N = all: --cpu-moe)

``assign`` turns a layout into one ``Share`` per GPU plus the host's share, following the
engine's rules (``ParallelRules``) and the sources cited there.
"""

from __future__ import annotations

from dataclasses import dataclass

from fitcalc.core.engines import EngineProfile
from fitcalc.core.errors import InputError
from fitcalc.core.spec import Architecture


@dataclass(frozen=True)
class Share:
    """The part of a model one device (or the host) holds.

    layers         decoder layers whose non-expert tensors and KV cache live here (None: all)
    expert_layers  layers whose routed-expert tensors live here (None: the same as ``layers``)
    embedding      the input embedding (and any vision tower) lives here
    head           the final norm, lm_head, MTP layers and the logits live here
    tp, ep, dp     the divisors of tensor, expert and data parallelism applied to what it holds
    """

    layers: frozenset[int] | None = None
    expert_layers: frozenset[int] | None = None
    embedding: bool = True
    head: bool = True
    tp: int = 1
    ep: int = 1
    dp: int = 1

    def layer_set(self, n: int) -> range | frozenset[int]:
        return range(n) if self.layers is None else self.layers

    def expert_set(self, n: int) -> range | frozenset[int]:
        return self.layer_set(n) if self.expert_layers is None else self.expert_layers

    @property
    def all_layers(self) -> bool:
        return self.layers is None and self.expert_layers is None

    def holds_layers(self, n: int) -> bool:
        return len(self.layer_set(n)) > 0

    def holds_anything(self, n: int) -> bool:
        return self.holds_layers(n) or len(self.expert_set(n)) > 0 or self.embedding or self.head

    @property
    def key(self) -> tuple:
        return (self.layers, self.expert_layers, self.embedding, self.head, self.tp, self.ep, self.dp)


def canonical(share: Share, n: int) -> Share:
    """The same share with full layer sets written as None, so that a device holding the whole
    model takes the same path (and the same term explanations) as ``fit``."""
    layers = None if share.layers is not None and len(share.layers) == n else share.layers
    experts = share.expert_layers
    if experts is not None and len(experts) == n:
        experts = None
    if layers is None and experts is not None and len(experts) == n:
        experts = None
    if layers is not None and experts is not None and experts == layers:
        experts = None
    if (layers, experts) == (share.layers, share.expert_layers):
        return share
    return Share(layers=layers, expert_layers=experts, embedding=share.embedding, head=share.head, tp=share.tp,
                 ep=share.ep, dp=share.dp)


def whole_share(engine: EngineProfile, tp: int = 1) -> Share:
    """The whole model on one device (per rank under TP), with the engine's embedding rule."""
    return Share(tp=tp, embedding=not engine.weights.input_embedding_on_host)


def nothing() -> Share:
    return Share(layers=frozenset(), expert_layers=frozenset(), embedding=False, head=False)


@dataclass(frozen=True)
class Layout:
    tp: int = 1
    pp: int = 1
    ep: int = 1
    gpu_layers: int | None = None  # GPU layer slots (llama.cpp -ngl); None: all
    cpu_moe: int = 0  # routed experts of the first N layers on the CPU
    split: tuple[int, ...] | None = None  # GPU layer slots per device (llama.cpp -ts); None: by memory
    stages: tuple[int, ...] | None = None  # layers per pipeline stage; None: the engine's rule

    @property
    def world(self) -> int:
        """GPUs of one pipeline stage."""
        return max(self.tp, self.ep)

    @property
    def dp(self) -> int:
        return self.ep // self.tp if self.ep > self.tp else 1


@dataclass(frozen=True)
class Assignment:
    """One ``Share`` per GPU, in device order, and the host's share of system RAM."""

    gpus: tuple[Share, ...]
    host: Share
    roles: tuple[str, ...]  # per GPU, in words: "stage 0, TP rank 1", "layers 0-11 + output"

    @property
    def host_holds_anything(self) -> bool:
        h = self.host
        return bool(h.layers) or bool(h.expert_layers) or h.embedding or h.head


# ---------------------------------------------------------------------------------------------
# layer partitions (engine rules)
# ---------------------------------------------------------------------------------------------


def pipeline_stages(n_layers: int, pp: int) -> tuple[int, ...]:
    """Layers per stage, vLLM's rule (vllm/distributed/utils.py get_pp_indices): n // pp each, the
    remainder added one by one from the second-to-last stage backwards (the last stage also runs
    the norm and lm_head). 61 layers over 4 stages: (15, 15, 16, 15)."""
    if pp > n_layers:
        raise InputError(f"--pp {pp} exceeds the model's {n_layers} layers",
                         hint=f"use at most {n_layers} pipeline stages")
    parts = [n_layers // pp] * pp
    for i in range(2, n_layers % pp + 2):
        parts[-i] += 1
    return tuple(parts)


def proportional_slots(slots: int, weights: list[int]) -> tuple[int, ...]:
    """Slots per device when llama.cpp splits ``slots`` layer slots by proportions ``weights``.

    llama.cpp sends slot j to the first device whose cumulative share exceeds j / slots
    (``std::upper_bound`` over the normalised cumulative split). Exact rational arithmetic here;
    llama.cpp uses float32, which can move a slot across a boundary that falls exactly on it.
    """
    total = sum(weights)
    if total <= 0:
        raise InputError("tensor split proportions must be positive", hint="e.g. -ts 3,1")
    cum = []
    acc = 0
    for w in weights:
        acc += w
        cum.append(acc)
    counts = [0] * len(weights)
    for j in range(slots):
        for d, c in enumerate(cum):
            if c * slots > j * total:  # c / total > j / slots, compared as integers
                counts[d] += 1
                break
    return tuple(counts)


def _ranges_text(layers: list[int]) -> str:
    if not layers:
        return "no layers"
    parts = []
    start = prev = layers[0]
    for i in layers[1:] + [None]:  # type: ignore[list-item]
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return "layers " + ", ".join(parts)


def tp_problem(arch: Architecture | None, tp: int) -> tuple[str, str] | None:
    """Why tensor parallelism of ``tp`` cannot split ``arch`` (what, hint), or None: vLLM's
    divisibility rules (QKVParallelLinear and ``divide``)."""
    if tp <= 1 or arch is None:
        return None
    h = arch.num_attention_heads
    if h % tp:
        return (f"does not divide the {h} attention heads",
                "tensor parallelism needs num_attention_heads % tp == 0, e.g. "
                + str(max(d for d in range(1, min(tp, h + 1)) if h % d == 0)))
    kv = arch.num_key_value_heads
    if arch.mla is None and ((kv >= tp and kv % tp) or (kv < tp and tp % kv)):
        return (f"and the {kv} KV heads do not divide each other",
                "KV heads split when num_key_value_heads % tp == 0 and are replicated when tp % "
                "num_key_value_heads == 0")
    return None


def _check_tp(arch: Architecture | None, tp: int) -> None:
    problem = tp_problem(arch, tp)
    if problem is not None:
        raise InputError(f"--tp {tp} {problem[0]}", hint=problem[1].replace("e.g. ", "e.g. --tp "))


def check_layout(arch: Architecture | None, engine: EngineProfile, layout: Layout, n_gpus: int) -> None:
    """Raise InputError (one line) for a layout the engine cannot run on ``n_gpus`` GPUs."""
    p = engine.parallel
    if layout.tp < 1 or layout.pp < 1 or layout.ep < 1:
        raise InputError("--tp, --pp and --ep must be at least 1", hint="e.g. --tp 2")
    if p.multi_gpu != "tensor" and layout.tp > 1:
        raise InputError(f"{engine.display_name} has no tensor parallelism modelled (--tp {layout.tp})",
                         hint="it splits layers across GPUs; drop --tp or use --engine vllm or sglang")
    if layout.pp > 1 and not p.pipeline:
        raise InputError(f"{engine.display_name} has no pipeline parallelism (--pp {layout.pp})",
                         hint="drop --pp, or use --engine vllm or sglang")
    if layout.ep > 1:
        if not p.expert_parallel:
            raise InputError(f"{engine.display_name} has no expert parallelism (--ep {layout.ep})",
                             hint="drop --ep, or use --engine vllm or sglang")
        if arch is None or arch.moe is None:
            raise InputError("--ep needs a mixture-of-experts model", hint="drop --ep")
        if layout.ep % layout.tp:
            raise InputError(f"--ep {layout.ep} must be a multiple of --tp {layout.tp}",
                             hint="expert parallelism spans the tensor-parallel ranks times the data-parallel "
                                  "attention replicas: ep = tp × dp")
        if arch.moe.num_experts % layout.ep:
            raise InputError(f"--ep {layout.ep} does not divide the {arch.moe.num_experts} routed experts",
                             hint="each rank holds num_experts / ep whole experts")
    _check_tp(arch, layout.tp)
    if arch is not None and arch.moe is None and layout.cpu_moe:
        raise InputError("--cpu-moe needs a mixture-of-experts model", hint="drop it, or offload layers instead")
    if (layout.cpu_moe or layout.gpu_layers is not None) and not (p.cpu_layers or p.cpu_experts):
        raise InputError(f"{engine.display_name} keeps every layer on the GPU in this model",
                         hint="CPU offload is modelled for llama.cpp and Ollama")
    if layout.cpu_moe and not p.cpu_experts:
        raise InputError(f"{engine.display_name} cannot keep expert tensors on the CPU",
                         hint="use --engine llama.cpp (--n-cpu-moe), or offload whole layers")
    need = layout.pp * layout.world if p.multi_gpu == "tensor" else None
    if need is not None and need != n_gpus:
        raise InputError(f"the layout needs {need} GPUs (pp {layout.pp} × {layout.world}), "
                         f"{n_gpus} given", hint=f"pass --gpu ID:{need}, or change --tp/--pp/--ep")
    if p.multi_gpu == "none" and n_gpus > 1:
        raise InputError(f"{engine.display_name} runs on one GPU here; {n_gpus} given",
                         hint="use --engine vllm, sglang or llama.cpp for several GPUs")
    if layout.split is not None and len(layout.split) != n_gpus:
        raise InputError(f"the tensor split names {len(layout.split)} devices, {n_gpus} given",
                         hint="give one proportion per GPU")


def assign(arch: Architecture | None, engine: EngineProfile, layout: Layout, memories: list[int]) -> Assignment:
    """Shares of ``len(memories)`` GPUs (in order) and of the host for ``layout``.

    ``memories`` are the devices' sizes; llama.cpp's default split follows them.
    """
    n_gpus = len(memories)
    check_layout(arch, engine, layout, n_gpus)
    host_emb = engine.weights.input_embedding_on_host
    if arch is None:
        if layout.pp > 1 or layout.gpu_layers is not None or layout.cpu_moe or n_gpus > layout.world:
            raise InputError("a coarse model spec has no layers to place",
                             hint="give the architecture form (config.json fields) for pipeline or CPU offload plans")
        share = Share(tp=layout.tp, embedding=not host_emb)
        return Assignment(gpus=tuple(share for _ in range(n_gpus)), host=_host(set(), set(), host_emb, False),
                          roles=tuple(f"TP rank {r}" for r in range(n_gpus)))
    n = arch.num_hidden_layers
    cpu_experts = set(range(min(layout.cpu_moe, n)))
    if engine.parallel.multi_gpu == "layer" or engine.parallel.multi_gpu == "none":
        return _layer_split(n, engine, layout, memories, cpu_experts, host_emb)
    stages = layout.stages or pipeline_stages(n, layout.pp)
    if len(stages) != layout.pp or sum(stages) != n:
        raise InputError(f"stage layer counts {list(stages)} must be {layout.pp} numbers summing to {n}",
                         hint="e.g. --pp 2 with the default split")
    gpus, roles = [], []
    start = 0
    for s, count in enumerate(stages):
        layers = frozenset(range(start, start + count))
        start += count
        experts = frozenset(layers - cpu_experts) if cpu_experts else None
        sh = canonical(Share(layers=layers, expert_layers=experts, embedding=(s == 0 and not host_emb),
                             head=(s == layout.pp - 1), tp=layout.tp, ep=layout.ep, dp=layout.dp), n)
        for r in range(layout.world):
            gpus.append(sh)
            what = f"stage {s} ({_ranges_text(sorted(layers))})" if layout.pp > 1 else "all layers"
            par = f", rank {r} of {layout.world}" if layout.world > 1 else ""
            roles.append(what + par)
    return Assignment(gpus=tuple(gpus), host=_host(set(), cpu_experts, host_emb, False), roles=tuple(roles))


def _host(layers: set[int], experts: set[int], embedding: bool, head: bool) -> Share:
    return Share(layers=frozenset(layers), expert_layers=frozenset(layers | experts), embedding=embedding,
                 head=head)


def layer_slots(n_layers: int, engine: EngineProfile) -> int:
    """GPU layer slots of a model for the engine: llama.cpp counts the output layer as one."""
    return n_layers + (1 if engine.parallel.output_is_layer else 0)


def _layer_split(n: int, engine: EngineProfile, layout: Layout, memories: list[int], cpu_experts: set[int],
                 host_emb: bool) -> Assignment:
    slots = layer_slots(n, engine)
    gpu_slots = slots if layout.gpu_layers is None else max(0, min(layout.gpu_layers, slots))
    if not engine.parallel.cpu_layers and gpu_slots < slots:
        raise InputError(f"{engine.display_name} keeps every layer on the GPU",
                         hint="drop --gpu-layers, or use --engine llama.cpp")
    # llama.cpp's i_gpu_start: the GPU slots are [first_gpu, first_gpu + gpu_slots) of 0..n_layer,
    # slot n_layer being the output layer (see ParallelRules.output_offloaded_first for the versions).
    if engine.parallel.output_offloaded_first:
        first_gpu = slots - gpu_slots
    else:
        first_gpu = max(n - gpu_slots, 0)
    counts = proportional_slots(gpu_slots, list(layout.split or memories)) if gpu_slots else (0,) * len(memories)
    gpus, roles = [], []
    slot = first_gpu
    out_slot = n if engine.parallel.output_is_layer else None
    for d, c in enumerate(counts):
        mine = list(range(slot, slot + c))
        slot += c
        layers = frozenset(i for i in mine if i < n)
        head = (out_slot in mine) if out_slot is not None else (d == len(counts) - 1 and gpu_slots > 0)
        gpus.append(canonical(Share(layers=layers, expert_layers=frozenset(layers - cpu_experts),
                                    embedding=(d == 0 and not host_emb), head=head), n))
        roles.append(_ranges_text(sorted(layers)) + (" + output" if head else "")
                     + (f" (experts of {len(layers & cpu_experts)} on CPU)" if layers & cpu_experts else ""))
    cpu_layers = set(range(min(first_gpu, n)))
    head_on_cpu = not any(sh.head for sh in gpus)
    host = _host(cpu_layers, cpu_experts, host_emb or gpu_slots == 0, head_on_cpu)
    return Assignment(gpus=tuple(gpus), host=host, roles=tuple(roles))


__all__ = ["Share", "Layout", "Assignment", "assign", "check_layout", "whole_share", "nothing", "pipeline_stages",
           "proportional_slots", "layer_slots", "canonical"]
