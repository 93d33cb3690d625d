"""Fit and plan questions as pure functions. CORE.

``fit_device`` answers for one device type (``count`` identical GPUs in tensor parallel);
``solve_max_context`` finds the largest context that fits at a batch. ``make_plan`` answers
"what should I run": it places the model over several GPUs and the host (``Layout`` ->
per-device ``Share``s, see fitcalc.core.estimate.placement), and solves for the largest context
(``solve_max_context_on``), the largest batch (``solve_max_batch``), the fewest GPUs
(``solve_gpu_count``), the recipe with most bits that fits, and the smallest CPU share
(``plan_offload``). Every solver uses the fast path ``required_bytes``; the explained terms are
built once, for the answer.

Verdict rule (docs/formulas.md, "Verdict"): headroom = available − required; uncertainty = Σ of
each term's band × bytes. ``fits`` is headroom ≥ 0. The verdict says "fits" when the headroom
covers the uncertainty, "tight" when 0 ≤ headroom < uncertainty, "does not fit" below 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from fitcalc.core.calibration import CalibrationInfo
from fitcalc.core.errors import FitcalcError, InputError
from fitcalc.core.estimate import Prepared, drafts, estimate, required_bytes
from fitcalc.core.estimate.footprint import (
    chunk_tokens,
    host_drafts,
    host_estimate,
    prepare,
    weight_drafts,
)
from fitcalc.core.estimate.kvcache import kv_format
from fitcalc.core.estimate.placement import (
    Assignment,
    Layout,
    Share,
    assign,
    check_layout,
    layer_slots,
    pipeline_stages,
    proportional_slots,
    tp_problem,
)
from fitcalc.core.estimate.speed import ModelFacts, Placed, SpeedEstimate, model_facts
from fitcalc.core.estimate.speed import decode as speed_decode
from fitcalc.core.estimate.speed import prefill as speed_prefill
from fitcalc.core.estimate.terms import Term
from fitcalc.core.flags import EngineFlags, engine_flags, model_reference
from fitcalc.core.recipes import (
    GENERIC_RECIPES,
    keeps_low_bit_groups,
    recipe_candidates,
    resolve_recipe,
)
from fitcalc.core.spec import Device, Host, ModelSpec, Workload
from fitcalc.core.units import format_bytes
from fitcalc.core.verdict import Verdict, verdict_of  # noqa: F401  (re-exported: plan.verdict_of)


class FitResult(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    model: str
    recipe: str
    engine: str
    engine_version: str
    device: str
    device_id: str | None
    count: int
    tp: int
    context: int
    batch: int
    kv_dtype: str | None
    fits: bool
    verdict: Verdict
    required_bytes: int  # per device
    available_bytes: int  # per device
    headroom_bytes: int
    uncertainty_bytes: int
    max_context: int | None  # largest context that fits at this batch (None: not even the smallest)
    max_context_limit: int | None  # the model's own maximum (max_position_embeddings)
    max_context_step: int
    kv_capacity_bytes: int  # what is left for KV after every other term (vLLM's "available KV cache")
    kv_capacity_tokens: int | None  # that capacity in tokens at full-attention cost
    terms: list[Term]
    warnings: list[str]
    calibration: CalibrationInfo | None = None  # set when terms were scaled by stored engine-log residuals
    # fit without --engine: another engine's answer for the same GPU, shown because its verdict differs
    alternative: bool = False


def context_step(p: Prepared) -> int:
    """Granularity of a context length for the engine: vLLM's block, llama.cpp's 256-cell padding."""
    k = p.engine.kv
    if k.full == "blocks":
        return k.block_tokens
    if k.full == "cells_padded":
        return k.cell_pad
    return 1


def model_context_limit(p: Prepared) -> int | None:
    a = p.model.architecture
    return a.max_position_embeddings if a is not None else None


def _with_context(w: Workload, context: int) -> Workload:
    return w.model_copy(update={"context": context, "prompt_tokens": min(w.prompt_tokens, context)
                                if w.prompt_tokens else None})


def largest(ok, step: int, cap: int, known: int | None = None) -> int | None:
    """Largest multiple of ``step`` in [step, cap] with ``ok`` true, for a monotone ``ok`` (true up
    to some point, false beyond); None if not even ``step``. Bisection: the result is ok and one
    step more is not (unless it is the cap). ``known``: a multiple of ``step`` in [step, cap]
    already known to be ok, where the search starts instead of at ``step``."""
    if known is None:
        if not ok(step):
            return None
        known = step
    cap = max(step, (cap // step) * step)
    if ok(cap):
        return cap
    lo, hi = known, cap  # invariant: ok(lo), not ok(hi), both multiples of step
    while hi - lo > step:
        mid = lo + ((hi - lo) // (2 * step)) * step
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


# Without a model limit, 2^40 tokens stands for "unbounded" (40-odd bisection steps).
UNBOUNDED_CONTEXT = 1 << 40


def solve_max_context(p: Prepared, device: Device, workload: Workload, tp: int = 1,
                      limit: int | None = None) -> int | None:
    """Largest context (a multiple of the engine's step, at most ``limit``) whose footprint fits.

    Footprints never shrink as the context grows, so a bisection finds it; the result fits and
    one step more does not (unless it is the limit).
    """
    avail = device.memory_bytes

    def ok(c: int) -> bool:
        return required_bytes(p, device, _with_context(workload, c), tp) <= avail

    return largest(ok, context_step(p), limit or UNBOUNDED_CONTEXT)


def context_warnings(p: Prepared, context: int) -> list[str]:
    a = p.model.architecture
    if a is None or context <= a.max_position_embeddings:
        return []
    rs = a.rope_scaling
    how = ""
    if rs is not None:
        orig = f" over {rs.original_max_position_embeddings}" if rs.original_max_position_embeddings else ""
        how = f"; rope_scaling {rs.rope_type} factor {rs.factor:g}{orig}"
    return [f"context {context:,} exceeds {p.model.id}'s maximum of {a.max_position_embeddings:,} tokens "
            f"(max_position_embeddings{how}); quality beyond it is not expected"]


_SOLVE = object()


def fit_device(p: Prepared, device: Device, workload: Workload, count: int = 1, *,
               max_context: int | None | object = _SOLVE) -> FitResult:
    """Does ``workload`` fit on ``count`` identical ``device``?

    Several GPUs are used the way the engine uses them (``ParallelRules.multi_gpu``): tensor
    parallel (vLLM, SGLang: every GPU holds 1/count of each matrix), whole layers split in
    proportion to memory (llama.cpp, Ollama, transformers' device_map: the GPU with the least
    headroom is the one shown, and the largest context is the one every GPU holds), or one GPU
    only (fitcalc's torch stack).

    ``max_context``: the answer of ``solve_max_context`` for this prepared model, device, count and
    workload, when the caller has it already. It does not depend on ``workload.context``, so a sweep
    over contexts solves it once (fitcalc.core.report.matrix) instead of bisecting for every row.
    """
    mode = p.engine.parallel.multi_gpu if count > 1 else "tensor"
    layer_split = mode == "layer"
    tp = count if mode == "tensor" else 1
    problem = tp_problem(p.arch, tp)
    if problem is not None:  # as `plan --tp` refuses it: no verdict for a layout the engine cannot start
        raise InputError(f"{count} GPUs: {p.engine.display_name} splits every matrix over all of them (tensor "
                         f"parallel {tp}), and {tp} {problem[0]}",
                         hint=problem[1].replace("e.g. ", "use a GPU count such as ")
                         + "; `fitcalc plan` also tries pipeline layouts")
    notes: list[str] = []
    if mode == "none":
        notes.append(f"{p.engine.display_name} runs on one GPU: {count - 1} of the {count} stay idle")
    if layer_split:
        hw = Hardware(devices=(device,) * count)
        asg = assignment(p, hw.devices, Layout())
        shares = {sh.key: sh for sh in asg.gpus}.values()
        fp = max((estimate(p, device, workload, share=sh) for sh in shares), key=lambda f: f.total_bytes)
        notes.append(f"{p.engine.display_name} splits whole layers over the {count} GPUs in proportion to their "
                     "memory; the fullest GPU is shown (`fitcalc plan` shows each)")
    else:
        fp = estimate(p, device, workload, tp)
    required = fp.total_bytes
    avail = device.memory_bytes
    headroom = avail - required
    unc = fp.uncertainty_bytes
    kv_now = fp.by_prefix("kv")
    capacity = max(0, avail - (required - kv_now))
    lay = p.kv
    per_token = 0
    if lay is not None and not layer_split:
        full = lay.full_token_bytes + lay.mla_token_bytes
        split = min(tp, 1 if lay.mla_layers else lay.n_kv) if tp > 1 else 1
        per_token = -(-full // split) if full else 0
    elif lay is not None:
        # the fullest GPU's full-attention and MLA cache per token: its share of those layers' bytes
        held = sum(t.bytes for t in fp.terms if t.id in ("kv.full", "kv.mla"))
        tokens = workload.context * workload.batch
        per_token = -(-held // tokens) if held else 0
    limit = model_context_limit(p)
    max_ctx = solve_fit_max_context(p, device, workload, count) if max_context is _SOLVE else max_context
    warnings = context_warnings(p, workload.context) + notes
    if device.is_budget:
        warnings.append(f"{device.label}: a raw budget is taken as usable memory as given "
                        "(no driver reserve subtracted)")
    emb = p.weights.group("embedding")
    if p.engine.weights.input_embedding_on_host and emb is not None and emb.resident:
        warnings.append(f"the input embedding ({format_bytes(emb.bytes)}) stays in system RAM with "
                        f"{p.engine.display_name}; it is not counted on the GPU (`fitcalc plan` shows the RAM side)")
    return FitResult(
        model=p.model.id, recipe=p.recipe.id, engine=p.engine.id, engine_version=p.engine.version,
        device=device.label, device_id=device.profile_id, count=count, tp=tp, context=workload.context,
        batch=workload.batch, kv_dtype=p.kv_fmt.id if p.kv_fmt else None, fits=headroom >= 0,
        verdict=verdict_of(headroom, unc), required_bytes=required, available_bytes=avail,
        headroom_bytes=headroom, uncertainty_bytes=unc, max_context=max_ctx, max_context_limit=limit,
        max_context_step=context_step(p), kv_capacity_bytes=capacity,
        kv_capacity_tokens=capacity // per_token if per_token else None, terms=list(fp.terms),
        warnings=warnings,
    )


def solve_fit_max_context(p: Prepared, device: Device, workload: Workload, count: int = 1) -> int | None:
    """The largest context ``fit_device`` reports for ``count`` of ``device``: tensor parallel, or
    whole layers split over the GPUs (every GPU must hold its share), as the engine spreads them."""
    limit = model_context_limit(p)
    mode = p.engine.parallel.multi_gpu if count > 1 else "tensor"
    if mode == "layer":
        devices = (device,) * count
        return solve_max_context_on(p, Hardware(devices=devices), assignment(p, devices, Layout()), workload, limit)
    return solve_max_context(p, device, workload, count if mode == "tensor" else 1, limit)


def fits_fast(p: Prepared, device: Device, workload: Workload, tp: int = 1) -> bool:
    """The fast yes/no (no terms built): for sweeps and solvers."""
    return required_bytes(p, device, workload, tp) <= device.memory_bytes






# =============================================================================================
# plan: placements over several devices and the host, and the solvers that choose them
# =============================================================================================

# Largest batch a plan searches: vLLM's max_num_seqs default on H100-class GPUs (PR #12369).
MAX_BATCH_BOUND = 1024
# The most GPUs of one type `plan` (and a report's "GPUs needed") searches when none is given:
# two 8-GPU nodes.
DEFAULT_MAX_GPUS = 16
# Tensor parallelism stays inside one NVLink domain of 8 GPUs (a DGX/HGX node); more GPUs add
# pipeline stages. An assumption of the layout search, not an engine limit.
MAX_TP = 8


class NoFitError(FitcalcError):
    """No configuration fits up to the stated bound; the message names the closest one."""


class DevicePlacement(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    index: int
    device: str
    device_id: str | None
    role: str  # what it holds, in words
    required_bytes: int
    available_bytes: int
    headroom_bytes: int
    fits: bool
    terms: list[Term]
    uncertainty_bytes: int = 0  # Σ band × bytes over the terms
    verdict: Verdict = "fits"  # verdict_of(headroom, uncertainty), the rule fit uses


class HostPlacement(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    required_bytes: int
    available_bytes: int | None  # None: RAM unknown (not checked)
    headroom_bytes: int | None  # available − required; None when the RAM is unknown
    fits: bool
    weights_bytes: int
    mapped: bool  # weights memory-mapped from the model file (page cache) rather than loaded
    holds: str  # what lives in RAM, in words
    terms: list[Term]
    uncertainty_bytes: int = 0


class LayoutChoice(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    tp: int
    pp: int
    ep: int
    gpus: int
    gpu_layers: int | None  # GPU layer slots (llama.cpp -ngl); None: all
    layer_slots: int  # all slots (layers, plus the output layer where the engine counts it)
    cpu_moe: int  # layers whose routed experts stay in RAM
    split: list[int] | None  # GPU layer slots per device
    stages: list[int] | None  # layers per pipeline stage
    description: str


@dataclass(frozen=True)
class Hardware:
    devices: tuple[Device, ...]
    host: Host | None = None


def assignment(p: Prepared, devices: tuple[Device, ...], layout: Layout) -> Assignment:
    """``assign`` for these devices, memoized on the prepared model: solvers and sweeps ask for the
    same layout on the same memories many times, and an assignment depends on nothing else."""
    mems = tuple(d.memory_bytes for d in devices)
    key = ("assign", layout, mems)
    hit = p._plan_cache.get(key)
    if hit is None:
        hit = p._plan_cache[key] = assign(p.arch, p.engine, layout, list(mems))
    return hit


def shortfall(p: Prepared, hw: Hardware, asg: Assignment, workload: Workload) -> tuple[int, str]:
    """The largest overflow over the GPUs and the RAM (≤ 0: everything fits), and where it is."""
    worst: tuple[int, str] | None = None
    seen: dict[tuple, int] = {}
    for d, sh in zip(hw.devices, asg.gpus):
        key = (id(d), sh.key)
        need = seen.get(key)
        if need is None:
            need = seen[key] = required_bytes(p, d, workload, share=sh)
        over = need - d.memory_bytes
        if worst is None or over > worst[0]:
            worst = (over, "on the fullest GPU")
    if hw.host is not None and asg.host_holds_anything:
        over = sum(x[1] for x in host_drafts(p, asg.host, workload)) - hw.host.ram_bytes
        if worst is None or over > worst[0]:
            worst = (over, "in RAM")
    return worst if worst is not None else (0, "")


def fits_on(p: Prepared, hw: Hardware, asg: Assignment, workload: Workload) -> bool:
    seen: set[tuple] = set()  # tensor-parallel ranks of one GPU type hold the same share: check one
    for d, sh in zip(hw.devices, asg.gpus):
        key = (id(d), sh.key)
        if key in seen:
            continue
        seen.add(key)
        if required_bytes(p, d, workload, share=sh) > d.memory_bytes:
            return False
    if hw.host is not None and asg.host_holds_anything:
        if sum(x[1] for x in host_drafts(p, asg.host, workload)) > hw.host.ram_bytes:
            return False
    return True


def solve_max_context_on(p: Prepared, hw: Hardware, asg: Assignment, workload: Workload,
                         limit: int | None) -> int | None:
    """Largest context that fits every device and the RAM of a placement (see solve_max_context)."""
    return largest(lambda c: fits_on(p, hw, asg, _with_context(workload, c)), context_step(p),
                   limit or UNBOUNDED_CONTEXT)


def solve_max_batch(p: Prepared, hw: Hardware, asg: Assignment, workload: Workload,
                    cap: int = MAX_BATCH_BOUND, known: int | None = None) -> int | None:
    """Largest number of concurrent sequences at ``workload.context`` (at most ``cap``).

    ``known``: a batch known to fit (e.g. ``workload.batch`` once the placement was found for it);
    ``cap`` may be lowered to the answer at a shorter context, which is never smaller."""
    return largest(lambda b: fits_on(p, hw, asg, workload.model_copy(update={"batch": b})), 1, cap, known)


def tensor_layouts(p: Prepared, n: int, ep: bool = False) -> list[Layout]:
    """(tp, pp) layouts of ``n`` GPUs the engine can run, most tensor-parallel first.

    tp must divide the attention heads (and suit the KV heads), tp ≤ MAX_TP, and pp ≤ layers.
    Memoized on the prepared model (it depends on nothing else): solvers ask for it per GPU count."""
    key = ("tensor_layouts", n, ep)
    hit = p._plan_cache.get(key)
    if hit is not None:
        return list(hit)
    out = []
    a = p.arch
    n_layers = a.num_hidden_layers if a is not None else 1
    for tp in range(min(n, MAX_TP), 0, -1):
        if n % tp:
            continue
        pp = n // tp
        if pp > 1 and (not p.engine.parallel.pipeline or pp > n_layers):
            continue
        lay = Layout(tp=tp, pp=pp, ep=tp if (ep and tp > 1) else 1)
        try:
            check_layout(a, p.engine, lay, n)
        except InputError:
            continue
        out.append(lay)
    p._plan_cache[key] = tuple(out)
    return out


def balanced_split(p: Prepared, hw: Hardware, workload: Workload, base: Layout) -> Layout:
    """A llama.cpp layer split that fits uneven GPUs: start from llama.cpp's default (slots in
    proportion to memory) and move one slot at a time from the device most over its memory to
    the one with most room, while that lowers the worst overflow."""
    a = p.arch
    if a is None or len(hw.devices) == 1:
        return base
    slots = layer_slots(a.num_hidden_layers, p.engine)
    gpu_slots = slots if base.gpu_layers is None else base.gpu_layers
    counts = list(base.split) if base.split else list(proportional_slots(gpu_slots, [d.memory_bytes for d in hw.devices]))

    def overs(c: list[int]) -> list[int]:
        asg = assignment(p, hw.devices, Layout(gpu_layers=base.gpu_layers, cpu_moe=base.cpu_moe, split=tuple(c)))
        return [required_bytes(p, d, workload, share=sh) - d.memory_bytes for d, sh in zip(hw.devices, asg.gpus)]

    cur = overs(counts)
    for _ in range(gpu_slots):
        worst = max(range(len(cur)), key=lambda i: cur[i])
        if cur[worst] <= 0 or counts[worst] == 0:
            break
        best = min(range(len(cur)), key=lambda i: cur[i])
        if best == worst:
            break
        trial = counts[:]
        trial[worst] -= 1
        trial[best] += 1
        new = overs(trial)
        if max(new) >= max(cur):
            break
        counts, cur = trial, new
    return Layout(gpu_layers=base.gpu_layers, cpu_moe=base.cpu_moe, split=tuple(counts))


def plan_offload(p: Prepared, hw: Hardware, workload: Workload) -> Layout | None:
    """The smallest CPU share that fits (llama.cpp): first routed experts of the first N layers in
    RAM (--n-cpu-moe N, smallest N), then, with every expert in RAM, whole layers (-ngl, most GPU
    layers). GPU memory only falls as more moves to the CPU, so each search is a bisection.
    None when nothing fits, including when the RAM is too small."""
    a = p.arch
    rules = p.engine.parallel
    if a is None or not (rules.cpu_layers or rules.cpu_experts):
        return None
    n = a.num_hidden_layers

    def gpu_ok(lay: Layout) -> bool:
        lay = balanced_split(p, hw, workload, lay)
        asg = assignment(p, hw.devices, lay)
        return all(required_bytes(p, d, workload, share=sh) <= d.memory_bytes
                   for d, sh in zip(hw.devices, asg.gpus))

    def ram_ok(lay: Layout) -> bool:
        asg = assignment(p, hw.devices, balanced_split(p, hw, workload, lay))
        return hw.host is None or sum(x[1] for x in host_drafts(p, asg.host, workload)) <= hw.host.ram_bytes

    choice: Layout | None = None
    if rules.cpu_experts and a.moe is not None:
        # smallest N with experts of layers 0..N-1 in RAM: bisection on "fits" (monotone in N)
        lo_fail = 0
        if gpu_ok(Layout(cpu_moe=n)):
            hi_ok = n
            while hi_ok - lo_fail > 1:
                mid = (lo_fail + hi_ok) // 2
                if gpu_ok(Layout(cpu_moe=mid)):
                    hi_ok = mid
                else:
                    lo_fail = mid
            choice = Layout(cpu_moe=hi_ok)
    if choice is None and rules.cpu_layers:
        slots = layer_slots(n, p.engine)
        moe_all = n if (rules.cpu_experts and a.moe is not None) else 0
        best = largest(lambda g: gpu_ok(Layout(gpu_layers=g, cpu_moe=moe_all)), 1, slots)
        if best is not None:
            choice = Layout(gpu_layers=best, cpu_moe=moe_all)
        elif gpu_ok(Layout(gpu_layers=0, cpu_moe=moe_all)):
            choice = Layout(gpu_layers=0, cpu_moe=moe_all)
    if choice is None:
        return None
    choice = balanced_split(p, hw, workload, choice)
    return choice if ram_ok(choice) else None


def find_layout(p: Prepared, hw: Hardware, workload: Workload, fixed: Layout | None = None,
                offload: bool = True) -> tuple[Layout, int] | None:
    """The cheapest placement that fits on the GPUs given: every GPU is used, as the engines do by
    default (vLLM's tensor-parallel size = the GPUs, llama.cpp splits over every visible GPU);
    among layouts the most tensor-parallel one, then the smallest CPU share. A fixed layout may use
    fewer GPUs than given. Returns (layout, GPUs used) or None. The fewest GPUs that would do is
    ``solve_gpu_count``'s answer."""
    rules = p.engine.parallel
    n_all = len(hw.devices)
    if fixed is not None:
        n = fixed.pp * fixed.world if rules.multi_gpu == "tensor" else n_all
        if n > n_all:
            raise InputError(f"the layout needs {n} GPUs, {n_all} given", hint=f"pass --gpu ID:{n}")
        sub = Hardware(hw.devices[:n], hw.host)
        lay = balanced_split(p, sub, workload, fixed) if rules.multi_gpu == "layer" else fixed
        if fits_on(p, sub, assignment(p, sub.devices, lay), workload):
            return lay, n
        if offload and rules.multi_gpu == "layer" and fixed.gpu_layers is None and not fixed.cpu_moe:
            off = plan_offload(p, sub, workload)
            return (off, n) if off is not None else None
        return None
    counts = [1] if rules.multi_gpu == "none" else [n_all]
    for n in counts:
        sub = Hardware(hw.devices[:n], hw.host)
        if rules.multi_gpu == "tensor":
            for lay in tensor_layouts(p, n):
                if fits_on(p, sub, assignment(p, sub.devices, lay), workload):
                    return lay, n
        else:
            lay = balanced_split(p, sub, workload, Layout())
            if fits_on(p, sub, assignment(p, sub.devices, lay), workload):
                return lay, n
    if offload and rules.multi_gpu != "tensor":
        sub = Hardware(hw.devices[: 1 if rules.multi_gpu == "none" else n_all], hw.host)
        off = plan_offload(p, sub, workload)
        if off is not None:
            return off, len(sub.devices)
    return None


def solve_gpu_count(p: Prepared, device: Device, workload: Workload, max_gpus: int,
                    fixed: Layout | None = None, start: int = 1) -> tuple[int, Layout] | None:
    """Smallest number of ``device`` that holds the whole model on GPUs (no CPU offload), up to
    ``max_gpus``; with its layout. ``start``: a count known not to be too many, e.g. the answer
    for a shorter context or a smaller batch (the answer never falls as either grows, since every
    layout's footprint grows with them), so a sweep need not try the smaller counts again."""
    rules = p.engine.parallel
    top = 1 if rules.multi_gpu == "none" else max_gpus
    for n in range(max(1, start), top + 1):
        hw = Hardware(tuple(device for _ in range(n)))
        if rules.multi_gpu == "tensor":
            lays = [fixed] if fixed is not None and fixed.pp * fixed.world == n else (
                [] if fixed is not None else tensor_layouts(p, n))
        else:
            lays = [Layout()]
        for lay in lays:
            if fits_on(p, hw, assignment(p, hw.devices, lay), workload):
                return n, lay
    return None


class RecipeTry(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    recipe: str
    kv_dtype: str
    bits_per_weight: float  # resident bytes × 8 / parameters
    cpu_offload: bool  # tried with layers or experts allowed in RAM
    fits: bool


class Plan(BaseModel):
    """What to run: the placement, the limits it leaves, the speed, and the engine settings."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    model: str
    engine: str
    engine_version: str
    recipe: str
    recipe_name: str
    bits_per_weight: float
    kv_dtype: str | None
    context: int
    batch: int
    prompt_tokens: int
    fits: bool
    layout: LayoutChoice | None
    placement: list[DevicePlacement]
    verdict: Verdict = "fits"  # the worst of the devices' (and a checked RAM's) verdicts, fit's rule
    headroom_bytes: int | None = None  # of the device (or RAM) that decides the verdict
    uncertainty_bytes: int = 0  # of that same device
    host: HostPlacement | None
    max_context: int | None  # at this batch, on this placement
    max_context_limit: int | None  # the model's own maximum
    max_batch: int | None  # at this context, on this placement
    max_batch_bound: int
    gpus_needed: int | None  # of the first GPU type, whole model on GPUs, in the requested recipe
    gpus_needed_device: str
    gpus_needed_recipe: str
    gpus_needed_context: int
    gpus_needed_layout: LayoutChoice | None
    max_gpus: int
    decode_tokens_per_s: float | None
    decode_tokens_per_s_total: float | None
    prefill_s: float | None
    speed: SpeedEstimate | None
    engine_flags: EngineFlags | None  # None when nothing fits the GPUs given
    recipes_tried: list[RecipeTry]
    notes: list[str]
    # Calibrations applied, one per GPU family that had stored residuals (plan --calibrated).
    calibration: list[CalibrationInfo] = []


# Recipes below this many bits per weight are tried only after CPU offload of the better ones: a
# 3- or 2-bit model loses more quality than a slower run costs (llama.cpp's own perplexity tables
# show the steep rise below ~4 bits). A documented preference, not a measured constant.
LOW_BITS = 4.0


def _phases(model: ModelSpec, recipes: list, prep, can_offload: bool, prepared: dict):
    """Search order: recipes of at least LOW_BITS on the GPUs alone, then with CPU offload, then the
    low-bit recipes the same two ways; within each, most bits first (``recipes`` is sorted)."""
    def bits(r) -> float:
        key = (r.id, None)
        if key not in prepared:
            prepared[key] = prep(r, None)
        return _bits(prepared[key])

    hi = [r for r in recipes if bits(r) >= LOW_BITS or _keeps_checkpoint(model, r)]
    lo = [r for r in recipes if r not in hi]
    out = [(hi, False)]
    if can_offload:
        out.append((hi, True))
    if lo:
        out.append((lo, False))
        if can_offload:
            out.append((lo, True))
    return out


def _keeps_checkpoint(model: ModelSpec, r) -> bool:
    """The recipe is the checkpoint's own, or keeps its 4-bit float groups (MXFP4_MOE for gpt-oss)."""
    if r.id == model.native_recipe.id:
        return True
    low = [f for f in model.native_recipe.rules.values() if f in ("mxfp4", "nvfp4")]
    return bool(low) and keeps_low_bit_groups(model, r)


def _bits(p: Prepared) -> float:
    w = p.weights
    return w.resident_bytes * 8 / w.params_total if w.params_total else 0.0


def kv_candidates(p_engine, arch, requested: str | None) -> list[str | None]:
    """KV dtypes to try, most bits first: the engine's default, its best 8-bit type, its smallest."""

    if requested is not None or arch is None:
        return [requested]
    default = kv_format(arch, p_engine, None)
    seen = {default.bits_per_weight}
    out: list[str | None] = [None]
    fmts = []
    for d in p_engine.kv.dtypes:
        try:
            f = kv_format(arch, p_engine, d)
        except FitcalcError:
            continue
        if f.bits_per_weight < default.bits_per_weight:
            fmts.append((f.bits_per_weight, d))
    fmts.sort(key=lambda x: -x[0])  # stable: among equal bits the engine's own order (q4_0 before iq4_nl)
    eight = [x for x in fmts if x[0] >= 8]
    smallest = [x for x in fmts if x[0] == fmts[-1][0]][:1] if fmts else []
    picks = ([eight[0]] if eight else []) + smallest
    for bits, d in picks:
        if bits not in seen:
            seen.add(bits)
            out.append(d)
    return out


def layout_choice(p: Prepared, lay: Layout, n: int) -> LayoutChoice:
    a = p.arch
    slots = layer_slots(a.num_hidden_layers, p.engine) if a is not None else 0
    words = []
    if p.engine.parallel.multi_gpu == "tensor":
        if lay.tp > 1:
            words.append(f"tensor parallel {lay.tp}")
        if lay.pp > 1:
            words.append(f"{lay.pp} pipeline stages")
        if lay.ep > 1:
            words.append(f"expert parallel {lay.ep}")
    elif n > 1:
        words.append(f"layers split over {n} GPUs")
    if lay.gpu_layers is not None and lay.gpu_layers < slots:
        words.append(f"{lay.gpu_layers} of {slots} layer slots on GPU")
    if lay.cpu_moe:
        words.append("all routed experts in RAM" if a is not None and lay.cpu_moe >= a.num_hidden_layers
                     else f"routed experts of the first {lay.cpu_moe} layers in RAM")
    stages = None
    if lay.pp > 1 and a is not None:
        stages = list(lay.stages or pipeline_stages(a.num_hidden_layers, lay.pp))
    return LayoutChoice(tp=lay.tp, pp=lay.pp, ep=lay.ep, gpus=n, gpu_layers=lay.gpu_layers, layer_slots=slots,
                        cpu_moe=lay.cpu_moe, split=list(lay.split) if lay.split else None, stages=stages,
                        description=", ".join(words) or "one GPU, whole model")


def place(p: Prepared, hw: Hardware, lay: Layout, workload: Workload) -> tuple[list[DevicePlacement],
                                                                                HostPlacement | None, Assignment]:
    """Per-device footprints (explained) of a layout, and the host's."""
    asg = assignment(p, hw.devices, lay)
    out = []
    for i, (d, sh, role) in enumerate(zip(hw.devices, asg.gpus, asg.roles)):
        fp = estimate(p, d, workload, share=sh)
        need = fp.total_bytes
        unc = fp.uncertainty_bytes
        out.append(DevicePlacement(index=i, device=d.label, device_id=d.profile_id, role=role, required_bytes=need,
                                   available_bytes=d.memory_bytes, headroom_bytes=d.memory_bytes - need,
                                   fits=need <= d.memory_bytes, terms=list(fp.terms), uncertainty_bytes=unc,
                                   verdict=verdict_of(d.memory_bytes - need, unc)))
    host = None
    if asg.host_holds_anything:
        fp = host_estimate(p, asg.host, workload)
        need = fp.total_bytes
        avail = hw.host.ram_bytes if hw.host is not None else None
        a = p.arch
        n = a.num_hidden_layers if a is not None else 0
        holds = []
        if asg.host.layers:
            holds.append(f"{len(asg.host.layers)} layers")
        ex = set(asg.host.expert_set(n)) - set(asg.host.layer_set(n))
        if ex:
            holds.append(f"routed experts of {len(ex)} layers")
        if asg.host.embedding:
            holds.append("the input embedding")
        if asg.host.head:
            holds.append("the output layer")
        host = HostPlacement(required_bytes=need, available_bytes=avail,
                             headroom_bytes=None if avail is None else avail - need, fits=avail is None or need <= avail,
                             weights_bytes=fp.by_prefix("weights"), mapped=p.engine.weights.mmap_weights,
                             holds=", ".join(holds) or "buffers only", terms=list(fp.terms),
                             uncertainty_bytes=fp.uncertainty_bytes)
    return out, host, asg


_SEVERITY = {"does not fit": 0, "tight": 1, "fits": 2}


def plan_verdict(devices: list[DevicePlacement], host: HostPlacement | None) -> dict:
    """The plan's verdict by fit's rule (``verdict_of``) on each device and on a checked RAM: the
    worst one, with the headroom and uncertainty behind it (Plan.verdict/headroom/uncertainty)."""
    rows = [(d.verdict, d.headroom_bytes, d.uncertainty_bytes) for d in devices]
    if host is not None and host.headroom_bytes is not None:
        rows.append((verdict_of(host.headroom_bytes, host.uncertainty_bytes), host.headroom_bytes,
                     host.uncertainty_bytes))
    if not rows:
        return {}
    v, head, unc = min(rows, key=lambda r: (_SEVERITY[r[0]], r[1] - r[2]))
    return {"verdict": v, "headroom_bytes": head, "uncertainty_bytes": unc}


@dataclass(frozen=True)
class SpeedSetup:
    """What the rooflines need from a placement that does not depend on the workload: the model's
    facts, each GPU's weight bytes per group, the host's. A sweep over contexts and batches builds
    it once per placement (``speed_setup``) and asks ``speed_at`` for each workload."""

    hw: Hardware
    facts: ModelFacts
    placed: tuple[Placed, ...]
    host_groups: dict[str, int]
    host_layers: Share | None  # the host's share when it holds layers (their KV is read from RAM)
    formats: frozenset[str]


def speed_setup(p: Prepared, hw: Hardware, asg: Assignment, lay: Layout) -> SpeedSetup:
    facts = p._plan_cache.get("facts")
    if facts is None:
        facts = p._plan_cache["facts"] = model_facts(p)
    placed = []
    world = lay.world if p.engine.parallel.multi_gpu == "tensor" else 1
    for i, (d, sh) in enumerate(zip(hw.devices, asg.gpus)):
        groups = {k.split(".", 1)[1]: b for k, b, _ in weight_drafts(p, d, sh)}
        placed.append(Placed(device=d, share=sh, group_bytes=groups, stage=i // world))
    host_groups = {}
    if asg.host_holds_anything:
        host_groups = {k.split(".", 1)[1]: b for k, b, _ in weight_drafts(p, None, asg.host)}
    return SpeedSetup(hw=hw, facts=facts, placed=tuple(placed), host_groups=host_groups,
                      host_layers=asg.host if asg.host.layers else None,
                      formats=frozenset(f for g in p.weights.groups for f in g.formats))


def speed_at(p: Prepared, s: SpeedSetup, workload: Workload, depth: int, prompt: int) -> SpeedEstimate:
    """Decode at KV depth ``depth`` for ``workload.batch`` sequences and prefill of ``prompt`` tokens,
    on the placement ``s`` describes (what `fitcalc plan` prints as "speed")."""
    hw, facts, placed, host_groups = s.hw, s.facts, list(s.placed), s.host_groups
    step, parts, notes, nbytes = speed_decode(facts, p.engine, placed, host_groups, hw.host, workload.batch, depth,
                                              s.host_layers)
    chunk = chunk_tokens(p, hw.devices[0] if hw.devices else None, workload)
    pre, pre_parts, pre_notes = speed_prefill(facts, p.engine, placed, host_groups, set(s.formats), prompt, chunk)
    return SpeedEstimate(
        decode_tokens_per_s=(1 / step) if step else None,
        decode_tokens_per_s_total=(workload.batch / step) if step else None, decode_depth_tokens=depth,
        decode_step_s=step, bytes_per_step=nbytes, prefill_s=pre, prompt_tokens=prompt, parts=parts,
        prefill_parts=pre_parts, notes=notes + pre_notes)


def _knobs(p: Prepared, lay: Layout, n: int, context: int, batch: int, kv: str | None) -> dict[str, object]:
    e = p.engine
    f = e.flags
    a = p.arch
    kv_id = p.kv_fmt.id if p.kv_fmt is not None else None
    default_kv = None
    if a is not None:
    
        default_kv = kv_format(a, e, None).id
    kv_value = kv_id if kv_id != default_kv else None
    ctx = context * batch if e.context_flag_scope == "total" else context
    knobs: dict[str, object] = {"context": ctx, "batch": batch}
    if "kv_dtype_k" in f:
        knobs.update(kv_dtype_k=kv_value, kv_dtype_v=kv_value)
        # a quantized V cache needs flash attention in llama.cpp (llama-context.cpp refuses it otherwise)
        if kv_value is not None and "flash_attention" in f:
            knobs["flash_attention"] = "on"
    else:
        knobs["kv_dtype"] = kv_value
        if kv_value is not None and "flash_attention" in f:
            knobs["flash_attention"] = "1"
    if e.overhead.memory_fraction is not None:
        knobs["memory_fraction"] = f"{e.overhead.memory_fraction:g}"
    if e.parallel.multi_gpu == "tensor":
        knobs["tensor_parallel"] = lay.tp if lay.tp > 1 else None
        knobs["pipeline_parallel"] = lay.pp if lay.pp > 1 else None
        knobs["expert_parallel"] = lay.ep if lay.ep > 1 else None
    else:
        slots = layer_slots(a.num_hidden_layers, e) if a is not None else 0
        knobs["gpu_layers"] = lay.gpu_layers if lay.gpu_layers is not None else slots
        knobs["cpu_moe"] = lay.cpu_moe or None
        if n > 1 and lay.split:
            knobs["tensor_split"] = ",".join(str(c) for c in lay.split)
    return knobs


def make_plan(model: ModelSpec, engine, hw: Hardware, *, context: int | None = None, batch: int = 1,
              kv_dtype: str | None = None, recipe: str | None = None, fixed: Layout | None = None,
              max_gpus: int = 8, prompt_tokens: int | None = None, offload: bool = True,
              default_context: int = 8192,
              family_scales: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()) -> Plan:
    """Plan ``model`` on ``hw`` with ``engine``: the recipe with most bits that fits (unless given),
    the cheapest placement, the largest context and batch it leaves, the GPUs a GPU-only run
    needs, the speed and the engine's settings. Raises NoFitError when nothing fits on the given
    hardware nor on up to ``max_gpus`` GPUs of its first type. ``family_scales``: calibration factors
    per GPU family (``fitcalc.core.calibration``), applied to the footprint of each GPU of that family."""
    _check_plan_options(hw, batch, context, max_gpus)
    limit = model.architecture.max_position_embeddings if model.architecture is not None else None
    ask = _PlanAsk(model=model, engine=engine, hw=hw, context=context, batch=batch, kv_dtype=kv_dtype,
                   fixed=fixed, prompt_tokens=prompt_tokens, limit=limit, family_scales=family_scales,
                   default_context=min(default_context, limit or default_context))
    recipes = [resolve_recipe(model, recipe)] if recipe is not None else _recipe_order(model, engine, hw)
    prepared: dict[tuple, Prepared] = {}
    chosen, tried = _first_fit(ask, recipes, offload, prepared)
    first = prepared.get((recipes[0].id, kv_dtype)) or ask.prep(recipes[0], kv_dtype)
    # The GPU count is for a stated context: the one asked for, else fit's default.
    target0 = context if context is not None else ask.default_context
    w0 = Workload(context=target0, batch=batch, kv_dtype=kv_dtype, prompt_tokens=prompt_tokens and min(
        prompt_tokens, target0))
    fixed_tensor = fixed if (fixed is not None and engine.parallel.multi_gpu == "tensor") else None
    bound = max(max_gpus, len(hw.devices))
    needed = solve_gpu_count(first, hw.devices[0], w0, bound, fixed_tensor)
    if chosen is None:
        if needed is None:
            cands = [prepared.get((r.id, None)) or ask.prep(r, None) for r in recipes]
            raise NoFitError(_closest(cands, hw, w0, bound),
                             hint="raise --max-gpus, add --ram, shorten --context, or pick a smaller --recipe")
        return _no_fit_plan(first, hw, w0, needed, bound, tried, fixed)
    return _plan_of_fit(ask, chosen, first, needed, target0, bound, tried,
                        preferred=recipes[0].id if recipe is None else None)


@dataclass(frozen=True)
class _PlanAsk:
    """What make_plan was asked, shared by its steps."""

    model: ModelSpec
    engine: object
    hw: Hardware
    context: int | None
    batch: int
    kv_dtype: str | None
    fixed: Layout | None
    prompt_tokens: int | None
    limit: int | None
    family_scales: tuple
    default_context: int  # fit's default context, capped by the model's maximum

    def prep(self, r, kv) -> Prepared:
        return prepare(self.model, r, self.engine, kv, family_scales=self.family_scales)


def _check_plan_options(hw: Hardware, batch: int, context: int | None, max_gpus: int) -> None:
    if not hw.devices:
        raise InputError("no GPU to plan for", hint="pass --gpu, e.g. --gpu rtx-4090 or --gpu 24GiB")
    if batch <= 0:
        raise InputError(f"--batch must be positive, got {batch}", hint="the number of concurrent sequences, e.g. 1")
    if context is not None and context <= 0:
        raise InputError(f"--context must be positive, got {context}", hint="e.g. --context 8192 or 128k")
    if max_gpus < 1:
        raise InputError(f"--max-gpus must be at least 1, got {max_gpus}", hint="e.g. --max-gpus 16")


def _recipe_order(model: ModelSpec, engine, hw: Hardware) -> list:
    """The recipes plan tries when none is given, in the order it tries them."""
    gguf = engine.gguf_native
    cands = recipe_candidates(model, gguf)
    nv = GENERIC_RECIPES["nvfp4"]
    if all("nvfp4" in d.native_formats for d in hw.devices) and not gguf and keeps_low_bit_groups(model, nv):
        cands.append(nv)  # NVFP4 checkpoints only where the GPUs compute in it
    scored = [(_bits(prepare(model, r, engine, None)), r) for r in cands]
    native_bits = _bits(prepare(model, None, engine, None))
    # The checkpoint's own recipe (or, on a GGUF engine, the mix that keeps its low-bit experts
    # as they are) comes first: re-quantizing already-quantized weights loses accuracy for a
    # few bits' difference. The rest follow by bits, none above the checkpoint's.
    scored = [x for x in scored if x[0] <= native_bits + 1e-9 or x[1].id == model.native_recipe.id]
    scored.sort(key=lambda x: (not _keeps_checkpoint(model, x[1]), -x[0]))
    return [r for _, r in scored]


def _first_fit(ask: _PlanAsk, recipes: list, offload: bool, prepared: dict[tuple, Prepared]):
    """The first (recipe, KV dtype, layout) that fits, GPU-only before offload: ``(chosen, tried)``,
    ``chosen`` = (Prepared, (Layout, GPUs used), Workload) or None."""
    engine = ask.engine
    kvs = kv_candidates(engine, ask.model.architecture, ask.kv_dtype)
    tried: list[RecipeTry] = []
    can_offload = offload and engine.parallel.multi_gpu != "tensor"
    for candidates, with_offload in _phases(ask.model, recipes, ask.prep, can_offload, prepared):
        for r in candidates:
            for kv in kvs:
                key = (r.id, kv)
                p = prepared.get(key) or prepared.setdefault(key, ask.prep(r, kv))
                target = ask.context if ask.context is not None else context_step(p)
                if with_offload and ask.context is None:
                    # offload trades speed for room: plan it for fit's default context, not the smallest
                    target = ask.default_context
                w = Workload(context=target, batch=ask.batch, kv_dtype=kv,
                             prompt_tokens=ask.prompt_tokens and min(ask.prompt_tokens, target))
                found = find_layout(p, ask.hw, w, ask.fixed, offload=with_offload)
                tried.append(RecipeTry(recipe=r.id, kv_dtype=p.kv_fmt.id if p.kv_fmt else "",
                                       bits_per_weight=round(_bits(p), 3), cpu_offload=with_offload,
                                       fits=found is not None))
                if found is not None:
                    return (p, found, w), tried
    return None, tried


def _plan_of_fit(ask: _PlanAsk, chosen, first: Prepared, needed, target0: int, bound: int,
                 tried: list[RecipeTry], preferred: str | None) -> Plan:
    """The plan for the configuration ``_first_fit`` chose: limits, placement, speed, flags, notes.
    ``preferred``: the recipe plan chose first by itself (None when the user gave one)."""
    p, (lay, n_used), w = chosen
    hw, model, limit, context = ask.hw, ask.model, ask.limit, ask.context
    sub = Hardware(hw.devices[:n_used], hw.host)
    asg = assignment(p, sub.devices, lay)
    max_ctx = solve_max_context_on(p, sub, asg, w.model_copy(update={"context": context_step(p)}), limit)
    if context is None:
        ctx = w.context if lay.gpu_layers is not None or lay.cpu_moe else (max_ctx or w.context)
        w = w.model_copy(update={"context": ctx})
    ctx = w.context
    notes: list[str] = []
    if limit and ctx > limit:
        notes.append(f"context {ctx:,} exceeds {model.id}'s maximum of {limit:,} tokens")
    max_batch = solve_max_batch(p, sub, asg, w)
    devices, host, asg = place(p, sub, lay, w)
    prompt = ask.prompt_tokens or ctx
    speed = speed_at(p, speed_setup(p, sub, asg, lay), w, depth=prompt, prompt=prompt)
    knobs = _knobs(p, lay, n_used, ctx, ask.batch, p.kv_fmt.id if p.kv_fmt else None)
    flags = engine_flags(ask.engine, model_reference(ask.engine, model, p.recipe.id), knobs)
    if flags.model_ref is not None and not flags.model_ref.found and flags.model_ref.note:
        notes.append(flags.model_ref.note)
    if n_used < len(hw.devices):
        notes.append(f"the layout uses {n_used} of the {len(hw.devices)} GPUs given")
    if any(d.is_budget for d in sub.devices):
        notes.append("a raw budget is taken as usable memory as given (no driver reserve subtracted)")
    if hw.host is None and host is not None:
        notes.append("system RAM not checked (unknown)")
    if preferred is not None and p.recipe.id != preferred:
        notes.append(f"{preferred} does not fit; {p.recipe.id} is the recipe with most bits that does")
    if lay.gpu_layers is not None or lay.cpu_moe:
        notes.append("part of the model runs from system RAM: decode slows to RAM speed for that part")
    d0 = hw.devices[0]
    return Plan(
        model=model.id, engine=ask.engine.id, engine_version=ask.engine.version, recipe=p.recipe.id,
        recipe_name=p.recipe.display_name or p.recipe.id, bits_per_weight=round(_bits(p), 3),
        kv_dtype=p.kv_fmt.id if p.kv_fmt else None, context=ctx, batch=ask.batch, prompt_tokens=prompt,
        fits=all(d.fits for d in devices) and (host is None or host.fits), layout=layout_choice(p, lay, n_used),
        placement=devices, host=host, **plan_verdict(devices, host), max_context=max_ctx, max_context_limit=limit,
        max_batch=max_batch,
        max_batch_bound=MAX_BATCH_BOUND, gpus_needed=needed[0] if needed else None, gpus_needed_device=d0.label,
        gpus_needed_recipe=first.recipe.id, gpus_needed_context=target0,
        gpus_needed_layout=layout_choice(first, needed[1], needed[0]) if needed else None,
        max_gpus=bound, decode_tokens_per_s=speed.decode_tokens_per_s,
        decode_tokens_per_s_total=speed.decode_tokens_per_s_total, prefill_s=speed.prefill_s, speed=speed,
        engine_flags=flags, recipes_tried=tried, notes=notes)


def _no_fit_plan(p: Prepared, hw: Hardware, w: Workload, needed: tuple[int, Layout], max_gpus: int,
                 tried: list[RecipeTry], fixed: Layout | None) -> Plan:
    """Nothing fits the GPUs given, but ``needed[0]`` of the first GPU type would: the plan shows the
    simplest placement on the given GPUs with its overflow, and the GPU count that works."""
    n = len(hw.devices)
    rules = p.engine.parallel
    if fixed is not None:
        lay = fixed
        n = min(n, fixed.pp * fixed.world) if rules.multi_gpu == "tensor" else n
    elif rules.multi_gpu == "tensor":
        lays = tensor_layouts(p, n)
        lay = lays[0] if lays else Layout()
        n = n if lays else 1
    else:
        n = 1 if rules.multi_gpu == "none" else n
        lay = Layout()
    sub = Hardware(hw.devices[:n], hw.host)
    devices, host, _ = place(p, sub, lay, w)
    short = max(d.required_bytes - d.available_bytes for d in devices)
    notes = [f"does not fit the GPUs given (short by {format_bytes(short)} on the fullest); "
             f"{needed[0]} × {hw.devices[0].label} hold it ({layout_choice(p, needed[1], needed[0]).description})"]
    return Plan(
        model=p.model.id, engine=p.engine.id, engine_version=p.engine.version, recipe=p.recipe.id,
        recipe_name=p.recipe.display_name or p.recipe.id, bits_per_weight=round(_bits(p), 3),
        kv_dtype=p.kv_fmt.id if p.kv_fmt else None, context=w.context, batch=w.batch,
        prompt_tokens=w.prompt_tokens or w.context, fits=False, layout=layout_choice(p, lay, n), placement=devices,
        host=host, **{**plan_verdict(devices, host), "verdict": "does not fit"}, max_context=None,
        max_context_limit=model_context_limit(p), max_batch=None,
        max_batch_bound=MAX_BATCH_BOUND, gpus_needed=needed[0], gpus_needed_device=hw.devices[0].label,
        gpus_needed_recipe=p.recipe.id, gpus_needed_context=w.context,
        gpus_needed_layout=layout_choice(p, needed[1], needed[0]),
        max_gpus=max_gpus, decode_tokens_per_s=None, decode_tokens_per_s_total=None, prefill_s=None, speed=None,
        engine_flags=None, recipes_tried=tried, notes=notes)


def _closest(cands: list[Prepared], hw: Hardware, w: Workload, max_gpus: int) -> str:
    """One line: nothing fits, the bound searched, and the configuration that comes closest."""
    d0 = hw.devices[0]
    best = None
    for p in cands:
        rules = p.engine.parallel
        n = max_gpus if rules.multi_gpu != "none" else 1
        big = Hardware(tuple(d0 for _ in range(n)), hw.host)
        lays = tensor_layouts(p, n) if rules.multi_gpu == "tensor" else [Layout()]
        a = p.arch
        if a is not None and (rules.cpu_layers or rules.cpu_experts):
            lays.append(Layout(cpu_moe=a.num_hidden_layers if (rules.cpu_experts and a.moe) else 0,
                               gpu_layers=None if (rules.cpu_experts and a.moe) else 0))
        for lay in lays:
            try:
                asg = assignment(p, big.devices, lay)
            except InputError:
                continue
            over, where = shortfall(p, big, asg, w)
            if best is None or over < best[0]:
                best = (over, where, p, lay, n)
    if best is None:
        return f"no configuration of {cands[0].model.id} fits on up to {max_gpus} × {d0.label}"
    over, where, p, lay, n = best
    lc = layout_choice(p, lay, n)
    tried = ", ".join(dict.fromkeys(c.recipe.id for c in cands))
    same = len({(d.label, d.memory_bytes) for d in hw.devices}) <= 1
    given = f"{len(hw.devices)} × {d0.label}" if same else f"the {len(hw.devices)} GPUs given"
    offload = p.engine.parallel.cpu_layers or p.engine.parallel.cpu_experts
    ram = f" and {format_bytes(hw.host.ram_bytes)} RAM" if (hw.host is not None and offload) else ""
    return (f"no configuration of {p.model.id} fits {given}{ram}"
            + (" (CPU offload included)" if offload else "")
            + f" nor up to {n} × {d0.label} on GPUs alone, at context {w.context:,} (recipes tried: {tried}): "
            f"closest is {p.recipe.id} on {n} × {d0.label} with {lc.description}, short by {format_bytes(over)} {where}")


__all__ = ["FitResult", "fit_device", "plan_verdict", "solve_max_context", "fits_fast", "verdict_of", "context_step", "drafts",
           "largest", "solve_max_context_on", "solve_max_batch", "solve_gpu_count", "plan_offload", "find_layout",
           "tensor_layouts", "balanced_split", "make_plan", "Plan", "Hardware", "DevicePlacement", "HostPlacement",
           "NoFitError", "shortfall", "fits_on", "place", "kv_candidates", "assignment", "layout_choice", "speed_setup",
           "speed_at", "SpeedSetup", "DEFAULT_MAX_GPUS", "MAX_BATCH_BOUND"]
