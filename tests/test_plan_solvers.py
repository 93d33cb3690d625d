"""Plan solvers: invariants over grids (max context, max batch, placements within every device and
the RAM, monotone in memory, speed never rising as more moves to the CPU), GPU count, offload."""

import pytest

from fitcalc.edges.catalog import load_engine, load_model
from fitcalc.core.estimate import prepare, required_bytes
from fitcalc.core.estimate.footprint import host_drafts
from fitcalc.core.estimate.placement import Layout, assign
from fitcalc.core.plan import (Hardware, context_step, fits_on, make_plan, plan_offload, solve_gpu_count,
                          solve_max_batch, solve_max_context_on)
from fitcalc.core.spec import Device, Workload
from fitcalc.core.units import GiB
from tests import devices as dev
from tests.archs import llama_3_1_8b


def _asg(p, hw, lay):
    return assign(p.arch, p.engine, lay, [d.memory_bytes for d in hw.devices])


def _setup(model, engine, gibs, layout, ram=256):
    """(prepared model, hardware of raw budgets, assignment of the layout)."""
    p = prepare(load_model(model), _recipe(model, engine), load_engine(engine))
    hw = Hardware(tuple(Device.from_budget(g * GiB) for g in gibs), dev.host(ram))
    return p, hw, _asg(p, hw, layout)


def _recipe(model, engine):
    if engine != "llama.cpp":
        return None
    return "q4_k_m" if model.startswith("llama") else "mxfp4_moe"


CASES = [  # (model, engine, GPUs (GiB each), layout)
    ("gpt-oss-20b", "vllm", [24], Layout()),
    ("gpt-oss-20b", "vllm", [16, 16], Layout(tp=2)),
    ("gpt-oss-20b", "llama.cpp", [12], Layout(cpu_moe=12)),
    ("gpt-oss-20b", "llama.cpp", [10, 6], Layout()),
    ("gpt-oss-120b", "llama.cpp", [24], Layout(cpu_moe=30)),
    ("gpt-oss-120b", "llama.cpp", [24, 24, 24], Layout()),
    ("llama-3.1-8b", "llama.cpp", [5], Layout(gpu_layers=20)),
    ("llama-3.1-8b", "vllm", [24, 24], Layout(pp=2)),
    ("qwen3-30b-a3b", "sglang", [40, 40], Layout(tp=2)),
]


@pytest.mark.parametrize("model,engine,gibs,layout", CASES)
def test_max_context_fits_and_one_step_more_does_not(model, engine, gibs, layout):
    p, hw, asg = _setup(model, engine, gibs, layout)
    limit = p.arch.max_position_embeddings
    w = Workload(context=1)
    c = solve_max_context_on(p, hw, asg, w, limit)
    step = context_step(p)
    if c is None:
        assert not fits_on(p, hw, asg, Workload(context=step))
        return
    assert c % step == 0
    assert fits_on(p, hw, asg, Workload(context=c))
    if c < limit:
        assert not fits_on(p, hw, asg, Workload(context=c + step))


@pytest.mark.parametrize("model,engine,gibs,layout", CASES)
def test_max_batch_fits_and_one_more_does_not(model, engine, gibs, layout):
    p, hw, asg = _setup(model, engine, gibs, layout)
    w = Workload(context=4096)
    b = solve_max_batch(p, hw, asg, w, cap=256)
    if b is None:
        assert not fits_on(p, hw, asg, w)
        return
    assert fits_on(p, hw, asg, w.model_copy(update={"batch": b}))
    if b < 256:
        assert not fits_on(p, hw, asg, w.model_copy(update={"batch": b + 1}))


@pytest.mark.parametrize("model,engine,gibs,layout", CASES)
def test_every_device_footprint_grows_with_context_and_batch(model, engine, gibs, layout):
    """What the solvers' bisections and a report sweep's narrowed searches (a shorter context's max
    batch caps a longer one's; a shorter context's GPU count is a floor) rest on: on every device of
    a placement, the footprint never falls as the context or the batch grows."""
    p, hw, asg = _setup(model, engine, gibs, layout)
    contexts = (1, 255, 256, 257, 2047, 2048, 2049, 8192, 8193, 32768, 131072)
    batches = (1, 2, 3, 8, 33)
    for d, sh in zip(hw.devices, asg.gpus):
        need = {(c, b): required_bytes(p, d, Workload(context=c, batch=b), share=sh)
                for c in contexts for b in batches}
        for b in batches:
            row = [need[(c, b)] for c in contexts]
            assert row == sorted(row), (b, row)
        for c in contexts:
            col = [need[(c, b)] for b in batches]
            assert col == sorted(col), (c, col)


@pytest.mark.parametrize("model,engine,gibs,layout", CASES)
def test_more_memory_never_gives_a_smaller_max_context(model, engine, gibs, layout):
    # Same layout, every device grown step by step. (vLLM switches its prefill budget and profiled
    # sequences at 70 GiB, PR #12369; the grid stays below that switch, where the rule is one.)
    p = prepare(load_model(model), _recipe(model, engine), load_engine(engine))
    prev = 0
    for extra in range(0, 24, 3):
        hw = Hardware(tuple(Device.from_budget((g + extra) * GiB) for g in gibs), dev.host(256))
        c = solve_max_context_on(p, hw, _asg(p, hw, layout), Workload(context=1), None) or 0
        assert c >= prev, (extra, c, prev)
        prev = c


GRID = [
    ("gpt-oss-20b", "llama.cpp", [16], 64, 8192),
    ("gpt-oss-20b", "llama.cpp", [8], 32, 32768),
    ("gpt-oss-120b", "llama.cpp", [24], 64, 16384),
    ("gpt-oss-120b", "llama.cpp", [16, 8], 96, 8192),
    ("llama-3.1-8b", "llama.cpp", [4], 16, 8192),
    ("llama-3.1-70b", "llama.cpp", [24, 24], 64, 8192),
    ("qwen3-30b-a3b", "llama.cpp", [12], 32, 16384),
    ("gpt-oss-20b", "vllm", [24], 64, 65536),
    ("qwen3-32b", "vllm", [24, 24], 64, 16384),
    ("deepseek-r1", "vllm", [80] * 8, 512, 32768),
]


@pytest.mark.parametrize("model,engine,gibs,ram,context", GRID)
def test_a_placement_never_exceeds_a_device_or_the_ram(model, engine, gibs, ram, context):
    hw = Hardware(tuple(Device.from_budget(g * GiB) for g in gibs), dev.host(ram))
    plan = make_plan(load_model(model), load_engine(engine), hw, context=context, max_gpus=16)
    if not plan.fits:
        assert plan.gpus_needed is not None
        return
    for d in plan.placement:
        assert d.required_bytes == sum(t.bytes for t in d.terms)
        assert d.required_bytes <= d.available_bytes
    if plan.host is not None:
        assert plan.host.required_bytes == sum(t.bytes for t in plan.host.terms)
        assert plan.host.required_bytes <= ram * GiB
    assert plan.max_context is None or plan.max_context >= min(context, plan.max_context_limit)
    assert plan.max_batch is not None and plan.max_batch >= 1


def test_offload_takes_the_smallest_expert_share_that_fits():
    # gpt-oss-120b on 24 GiB: N experts-on-CPU layers fit, N - 1 do not (the search is a bisection).
    e = load_engine("llama.cpp")
    p = prepare(load_model("gpt-oss-120b"), "mxfp4_moe", e)
    hw = Hardware((Device.from_budget(24 * GiB),), dev.host(128))
    w = Workload(context=16384)
    lay = plan_offload(p, hw, w)
    assert lay is not None and lay.gpu_layers is None and 0 < lay.cpu_moe < 36
    assert fits_on(p, hw, _asg(p, hw, lay), w)
    assert not fits_on(p, hw, _asg(p, hw, Layout(cpu_moe=lay.cpu_moe - 1)), w)


def test_offload_moves_layers_when_experts_are_not_enough():
    # A dense model has no experts: whole layers go (-ngl), the most GPU layers that fit.
    e = load_engine("llama.cpp")
    p = prepare(llama_3_1_8b(), "q4_k_m", e)
    hw = Hardware((Device.from_budget(3 * GiB),), dev.host(32))
    w = Workload(context=8192)
    lay = plan_offload(p, hw, w)
    assert lay is not None and lay.cpu_moe == 0 and 0 < lay.gpu_layers < 33
    assert fits_on(p, hw, _asg(p, hw, lay), w)
    assert not fits_on(p, hw, _asg(p, hw, Layout(gpu_layers=lay.gpu_layers + 1)), w)


def test_offload_refused_when_ram_is_too_small():
    e = load_engine("llama.cpp")
    p = prepare(load_model("gpt-oss-120b"), "mxfp4_moe", e)
    # 24 GiB GPU + 16 GiB RAM: the experts that must leave the GPU (tens of GiB) do not fit in RAM.
    assert plan_offload(p, Hardware((Device.from_budget(24 * GiB),), dev.host(16)), Workload(context=8192)) is None


def test_gpu_count_is_the_smallest_that_fits():
    e = load_engine("vllm")
    p = prepare(load_model("llama-3.1-70b"), None, e)
    d = Device.from_budget(24 * GiB)
    w = Workload(context=8192)
    n, lay = solve_gpu_count(p, d, w, 16)
    assert fits_on(p, Hardware((d,) * n), _asg(p, Hardware((d,) * n), lay), w)
    # 70.6B params x 2 B = 141 GB of weights: fewer than 141e9 / (24 GiB x 0.9) = 6.1 GPUs cannot hold them
    assert n >= 7
    for k in range(1, n):
        from fitcalc.core.plan import tensor_layouts

        for lay_k in tensor_layouts(p, k):
            hw = Hardware((d,) * k)
            assert not fits_on(p, hw, _asg(p, hw, lay_k), w)


@pytest.mark.parametrize("model,recipe,gib", [("gpt-oss-120b", "mxfp4_moe", 24), ("qwen3-30b-a3b", "q4_k_m", 12)])
def test_decode_never_rises_as_experts_move_to_the_cpu(model, recipe, gib):
    e = load_engine("llama.cpp")
    m = load_model(model)
    n = m.architecture.num_hidden_layers
    gpu = dev.rtx_4090()
    prev = None
    for k in range(0, n + 1, max(1, n // 12)):
        plan = make_plan(m, e, Hardware((gpu.model_copy(update={"memory_bytes": 200 * GiB}),), dev.host(256)),
                         context=4096, recipe=recipe, fixed=Layout(cpu_moe=k))
        s = plan.decode_tokens_per_s
        assert s is not None
        if prev is not None:
            assert s <= prev + 1e-9, (k, s, prev)
        prev = s


def test_decode_never_rises_as_layers_move_to_the_cpu():
    e = load_engine("llama.cpp")
    m = load_model("llama-3.1-8b")
    gpu = dev.rtx_4090()
    prev = None
    for g in range(33, -1, -4):
        plan = make_plan(m, e, Hardware((gpu,), dev.host(64)), context=4096, recipe="q4_k_m",
                         fixed=Layout(gpu_layers=g))
        s = plan.decode_tokens_per_s
        if prev is not None:
            assert s <= prev + 1e-9, (g, s, prev)
        prev = s


def test_host_ram_sum_is_the_host_terms():
    e = load_engine("llama.cpp")
    p = prepare(load_model("gpt-oss-120b"), "mxfp4_moe", e)
    asg = assign(p.arch, e, Layout(cpu_moe=36), [24 * GiB])
    w = Workload(context=8192)
    host = sum(d[1] for d in host_drafts(p, asg.host, w))
    experts = p.weights.group("experts").bytes
    embedding = p.weights.group("embedding").bytes
    assert host > experts + embedding  # plus the host compute and output buffers
    assert required_bytes(p, Device.from_budget(24 * GiB), w, share=asg.gpus[0]) < 24 * GiB


@pytest.mark.parametrize("limit,step,cap,known,want", [
    (37, 1, 100, None, 37),
    (37, 1, 100, 10, 37),  # a known-good start gives the same answer
    (37, 1, 100, 37, 37),
    (100, 16, 1000, 32, 96),  # multiples of 16 up to 100
    (5000, 16, 1000, 64, 992),  # the cap, rounded down to the step
    (0, 1, 100, None, None),  # not even one
])
def test_largest_with_a_known_start(limit, step, cap, known, want):
    from fitcalc.core.plan import largest

    asked = []

    def ok(x):
        asked.append(x)
        return x <= limit

    assert largest(ok, step, cap, known) == want
    if known is not None:
        assert step not in asked or step == known  # the search did not start again from the bottom


def test_gpu_count_from_a_known_floor_is_the_same():
    """solve_gpu_count(start=k) for any k up to the answer gives the answer (what a sweep relies on
    when it starts from a shorter context's count)."""
    p = prepare(load_model("gpt-oss-120b"), None, load_engine("vllm"))
    d = Device.from_budget(24 * GiB)
    w = Workload(context=32768)
    n, lay = solve_gpu_count(p, d, w, 16)
    assert n > 2  # 60 GiB of weights: several 24 GiB GPUs
    for k in range(1, n + 1):
        assert solve_gpu_count(p, d, w, 16, start=k) == (n, lay)
