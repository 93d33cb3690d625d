"""`fitcalc verify` put together: the stack built and measured on one device, or as tp x pp ranks on
torch.distributed, and compared with the prediction term by term. EDGE: torch is imported only once a
measurement starts (``harness``, ``launch``, ``distributed``), never on import of this module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fitcalc.edges.ingest import SourceKind

VERIFY_DEFAULT_CONTEXT = 512  # verify's context when none is given: fast on a CPU (docs/verify.md)
VERIFY_DEFAULT_TIMEOUT = 600.0  # seconds a distributed run may take before its ranks are stopped


def _verify_layers(layers: int | str | None, sigs: list[str], model: str) -> int:
    from fitcalc.core.errors import InputError
    from fitcalc.core.measure.compare import default_layers

    n = len(sigs)
    if layers is None:
        return default_layers(sigs)
    if isinstance(layers, str):
        text = layers.strip().lower()
        if text == "all":
            return n
        if not text.lstrip("-").isdigit():
            raise InputError(f"--layers must be a number or 'all', got {layers!r}", hint=f"1..{n} for {model}")
        layers = int(text)
    if layers < 1 or layers > n:
        raise InputError(f"--layers {layers} is out of range: {model} has {n} decoder layers",
                         hint=f"give 1..{n}, or 'all'")
    return layers


def _check_formats(spec, recipe) -> None:
    from fitcalc.core.errors import InputError
    from fitcalc.core.estimate.weights import entry_format, tensor_inventory
    from fitcalc.core.formats import get_format
    from fitcalc.edges.measure import BUILDABLE_FORMATS

    a = spec.architecture
    bad = set()
    for e in tensor_inventory(a):
        for layer in (e.layers or [None]):
            fid = entry_format(e, recipe, layer, a.num_hidden_layers)
            if e.kind == "vector":
                continue
            if get_format(fid).id not in BUILDABLE_FORMATS:
                bad.add(fid)
    if bad:
        raise InputError(f"recipe {recipe.id!r} uses {', '.join(sorted(bad))}, which verify does not build",
                         hint="verify builds safetensors-style formats (bf16, fp8, fp8-block, mxfp4, nvfp4, int8, "
                              "int4-awq, int4-gptq, nf4); GGUF types run in llama.cpp")


def verify(model: str, device: str = "auto", layers: int | str | None = None, context: int | None = None,
           batch: int = 1, recipe: str | None = None, kv_dtype: str | None = None, include_embeddings: bool = True,
           tolerances: list[str] | None = None, record: str | None = None, force: bool = False, seed: int = 0,
           source: SourceKind = "auto", chunk: int | None = None, progress=None, tp: int = 1, pp: int = 1,
           ep: int = 1, launcher: str = "auto", timeout: float = VERIFY_DEFAULT_TIMEOUT):
    """``fitcalc.api.verify``: check the options, prepare the prediction, measure on one device or as ranks."""
    from fitcalc.core.errors import InputError
    from fitcalc.core.estimate import prepare
    from fitcalc.core.measure import compare as cmp
    from fitcalc.core.recipes import resolve_recipe
    from fitcalc.edges import catalog
    from fitcalc.edges.ingest import resolve_model
    from fitcalc.edges.measure import check_buildable

    if record:
        from fitcalc.edges.report.output import check_writable

        check_writable(record)  # before the measurement, whose results would be lost after it
    spec = resolve_model(model, source)
    check_buildable(spec)
    a = spec.architecture
    sigs = cmp.signatures(a.layer_kinds(), set(a.dense_layer_indices()))
    k = _verify_layers(layers, sigs, spec.id)
    distributed = (tp, pp, ep) != (1, 1, 1) or _under_torchrun(launcher)
    if distributed and layers is None:
        k = min(max(k, pp), len(sigs))  # a layer per pipeline stage at least
    ctx = VERIFY_DEFAULT_CONTEXT if context is None else context
    if ctx < 2:
        raise InputError(f"--context must be at least 2 (a prefill and one decode step), got {ctx}",
                         hint="e.g. --context 512")
    if batch < 1:
        raise InputError(f"--batch must be positive, got {batch}", hint="e.g. --batch 1")
    if chunk is not None and chunk < 0:
        raise InputError(f"chunk must be >= 0, got {chunk}")
    overrides = dict(cmp.parse_tolerance(t) for t in (tolerances or []))
    eng = catalog.load_engine("torch")
    r = resolve_recipe(spec, recipe)
    _check_formats(spec, r)
    chunk_tokens = eng.working.chunk_tokens if chunk is None else chunk
    prepared = prepare(spec, r, eng, kv_dtype, layers=k, include_embeddings=include_embeddings)
    if distributed:
        return _verify_distributed(spec, model, r, prepared, k, ctx, batch, chunk_tokens, kv_dtype, include_embeddings,
                                   tolerances or [], record, force, seed, device, tp, pp, ep, launcher, timeout,
                                   progress)
    job = _OneDevice(spec=spec, source=model, recipe=r, prepared=prepared, layers=k, sigs=sigs, context=ctx,
                     batch=batch, chunk_tokens=chunk_tokens, kv_dtype=kv_dtype, include_embeddings=include_embeddings,
                     seed=seed, overrides=overrides, force=force)
    result = _verify_one_device(job, device, progress)
    if record:
        from fitcalc.core.measure.result import record_line

        _append_record(record, lambda date: record_line(result, date))
    return result


@dataclass(frozen=True)
class _OneDevice:
    """What a single-device verify measures, as ``verify`` resolved it."""

    spec: Any
    source: str
    recipe: Any
    prepared: Any
    layers: int
    sigs: list[str]
    context: int
    batch: int
    chunk_tokens: int
    kv_dtype: str | None
    include_embeddings: bool
    seed: int
    overrides: dict
    force: bool


def _verify_one_device(job: _OneDevice, device: str, progress):
    """Measure the stack on ``device`` (torch from here on) and compare it with the prediction."""
    from fitcalc.core.estimate import estimate, prepare, truncated_model
    from fitcalc.core.spec import Workload
    from fitcalc.edges.measure import harness

    spec, r, eng, ctx = job.spec, job.recipe, job.prepared.engine, job.context
    workload = Workload(context=ctx, batch=job.batch, kv_dtype=job.kv_dtype, prompt_tokens=ctx - 1,
                        chunk_tokens=job.chunk_tokens)
    info = harness.resolve_device(device)
    dev = harness.prediction_device(info)
    predicted = estimate(job.prepared, dev, workload)
    need = harness.still_needed(predicted)
    if need > info.available_bytes and not job.force:
        from fitcalc.core.errors import InputError
        from fitcalc.core.units import format_bytes

        where = "free on " + info.name if info.kind != "cpu" else "of RAM available"
        raise InputError(f"the {job.layers}-layer stack of {spec.id} is predicted to need {format_bytes(need)} "
                         f"({need:,} B) but only {format_bytes(info.available_bytes)} is {where}",
                         hint="build fewer --layers, a smaller --context or --batch, or pass --force to try anyway")
    run = harness.run(truncated_model(spec, job.layers), r, eng, info, batch=job.batch, context=ctx,
                      kv_dtype=job.kv_dtype, include_embeddings=job.include_embeddings, chunk=job.chunk_tokens,
                      seed=job.seed, progress=progress)
    full = estimate(prepare(spec, r, eng, job.kv_dtype, include_embeddings=job.include_embeddings), dev, workload)
    return _one_device_result(job, info, run, predicted, full)


def _one_device_result(job: _OneDevice, info, run, predicted, full):
    """The ``VerifyResult`` of a measured run: per-term comparison, or the OOM as a result."""
    from fitcalc.core import exitcodes
    from fitcalc.core.measure import compare as cmp
    from fitcalc.core.measure.result import Settings, VerifyResult, oom_comparison

    spec, a, ctx = job.spec, job.spec.architecture, job.context
    eng = job.prepared.engine
    from fitcalc.edges.measure.harness import device_report
    settings = Settings(layers=job.layers, layers_total=a.num_hidden_layers, context=ctx, batch=job.batch,
                        prompt_tokens=ctx - 1, chunk_tokens=job.chunk_tokens,
                        kv_dtype=job.prepared.kv_fmt.id if job.prepared.kv_fmt else "?", recipe=job.recipe.id,
                        include_embeddings=job.include_embeddings, seed=job.seed, engine=f"{eng.id} ({eng.version})")
    notes = list(run.notes)
    if ctx > a.max_position_embeddings:
        notes.append(f"--context {ctx:,} exceeds {spec.id}'s maximum of {a.max_position_embeddings:,} tokens; "
                     "memory is measured all the same")
    common = dict(model=spec.id, source=job.source, display_name=spec.display_name, device=device_report(info),
                  settings=settings, phases=run.phases, readings=run.readings, timings=run.timings, notes=notes)
    if run.oom is not None:
        o = run.oom
        rows, peak, oom = oom_comparison(predicted, info.name, info.kind, o.phase, o.live_bytes, o.message, o.readings,
                                         job.overrides)
        return VerifyResult(**common, terms=rows, working=None, peak=peak, extrapolation=None, ok=False,
                            failures=["oom"], oom=oom, exit_code=exitcodes.VERIFY_OOM)
    comp = cmp.compare(predicted, run.measurement, job.overrides)
    ext = cmp.extrapolate(run.measurement, full, job.sigs)
    return VerifyResult(**common, terms=comp.terms, working=comp.working, peak=comp.peak, extrapolation=ext,
                        ok=comp.ok, failures=comp.failures, oom=None,
                        exit_code=exitcodes.OK if comp.ok else exitcodes.VERIFY_OUT_OF_TOLERANCE)


def _append_record(path: str, line) -> None:
    """Append ``line(date)`` (a dict, date in UTC) to the --record file as one JSON line."""
    import datetime
    import json

    from fitcalc.core.errors import InputError

    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line(date), ensure_ascii=False) + "\n")
    except OSError as e:
        raise InputError(f"cannot append to --record {path}: {e.strerror}", hint="check the path") from None


def _under_torchrun(launcher: str) -> bool:
    """Whether this process is one rank that torchrun (or a launcher like it) started."""
    import os

    from fitcalc.core.errors import InputError

    if launcher not in ("auto", "spawn", "torchrun"):
        raise InputError(f"unknown --launcher {launcher!r}", hint="auto, spawn or torchrun")
    present = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if launcher == "torchrun" and not present:
        raise InputError("--launcher torchrun: RANK and WORLD_SIZE are not set (this process was not started by "
                         "torchrun)", hint="run it as: torchrun --nproc-per-node N -m fitcalc verify ... "
                                           "--launcher torchrun")
    return launcher == "torchrun" or (launcher == "auto" and present)


def _verify_distributed(spec, source_text, recipe, prepared, layers, ctx, batch, chunk_tokens, kv_dtype,
                        include_embeddings, tolerances, record, force, seed, device, tp, pp, ep, launcher, timeout,
                        progress):
    """tp x pp ranks, each its share of the plan, on torch.distributed; one result for them all."""
    import os
    import time

    from fitcalc.core.errors import InputError
    from fitcalc.core.estimate import estimate
    from fitcalc.core.estimate.placement import Layout, assign
    from fitcalc.core.measure.job import RankJob
    from fitcalc.core.measure.result import LayoutReport, Settings, assemble, record_line_distributed
    from fitcalc.core.spec import Device, Workload

    if ep not in (1, tp):
        raise InputError(f"verify runs expert parallelism over the tensor-parallel ranks: --ep {ep} with --tp {tp}",
                         hint=f"use --ep {tp} (or 1); data-parallel attention (ep > tp) is planned, not yet built")
    if timeout <= 0:
        raise InputError(f"--timeout must be positive, got {timeout:g}", hint="e.g. --timeout 600")
    if pp > layers:
        raise InputError(f"--pp {pp} needs a layer per stage; the stack has {layers}",
                         hint=f"pass --layers {pp} or more")
    eng = prepared.engine
    world = tp * pp
    kind = _distributed_device(device)
    layout = Layout(tp=tp, pp=pp, ep=ep)
    workload = Workload(context=ctx, batch=batch, kv_dtype=kv_dtype, prompt_tokens=ctx - 1, chunk_tokens=chunk_tokens)
    torchrun = _under_torchrun(launcher)
    if not torchrun and kind == "cpu":
        # every rank's share, on one machine's RAM: the same placement the ranks will use
        import psutil

        ram = psutil.virtual_memory()
        host = Device.host(ram.total)
        asg = assign(prepared.arch, eng, layout, [host.memory_bytes] * world)
        need = sum(estimate(prepared, host, workload, share=sh).total_bytes for sh in asg.gpus)
        if need > ram.available and not force:
            from fitcalc.core.units import format_bytes

            raise InputError(f"the {world} ranks of the {layers}-layer stack of {spec.id} are predicted to need "
                             f"{format_bytes(need)} ({need:,} B) together but only {format_bytes(ram.available)} "
                             "of RAM is available", hint="build fewer --layers, a smaller --context, or pass --force")
    else:
        assign(prepared.arch, eng, layout, [1 << 40] * world)  # the layout errors, before any rank starts
    job = RankJob(model=spec, source=source_text, recipe=recipe, layers=layers, context=ctx, batch=batch,
                  chunk=chunk_tokens, kv_dtype=kv_dtype, include_embeddings=include_embeddings, seed=seed,
                  tolerances=tolerances, tp=tp, pp=pp, ep=ep, device=kind, backend="nccl" if kind == "cuda" else "gloo",
                  timeout_s=float(timeout), force=force)
    settings = Settings(layers=layers, layers_total=spec.architecture.num_hidden_layers, context=ctx, batch=batch,
                        prompt_tokens=ctx - 1, chunk_tokens=chunk_tokens,
                        kv_dtype=prepared.kv_fmt.id if prepared.kv_fmt else "?", recipe=recipe.id,
                        include_embeddings=include_embeddings, seed=seed, engine=f"{eng.id} ({eng.version})")
    t0 = time.monotonic()
    notes = [f"pipeline stage sizes, heads, KV heads and experts per rank: fitcalc plan's placement "
             f"(tp {tp}, pp {pp}, ep {ep} over the {layers}-layer stack)"]
    if torchrun:
        result = _torchrun_rank(job, settings, spec, progress, notes, t0)
    else:
        outcome = _spawn_ranks(job, progress, timeout)
        if outcome.oom is not None and len(outcome.reports) < world:
            stopped = [e.rank for e in outcome.ends if e.report is None]
            notes.append(f"rank(s) {', '.join(map(str, stopped))} stopped when rank {outcome.oom.rank} ran out of "
                         "memory: not measured")
        lay = LayoutReport(tp=tp, pp=pp, ep=ep, world_size=world, backend=job.backend, launcher="spawn", nodes=1)
        result = assemble(spec.id, source_text, spec.display_name, settings, lay, outcome.reports, outcome.wall_s,
                          notes)
    if record and (not torchrun or int(os.environ.get("RANK", "0")) == 0):
        _append_record(record, lambda date: record_line_distributed(result, date))
    return result


def _spawn_ranks(job, progress, timeout: float):
    """Start the ranks in a fresh ``fitcalc-verify-*`` folder and wait for them. The folder is removed
    when they finish and when the run is stopped (Ctrl-C, SIGTERM: ``fitcalc.shell.cli`` turns it into an
    exception); it is kept, and named in the hint, only when a rank failed and its logs explain why."""
    import shutil
    import tempfile

    from fitcalc.edges.measure.launch import RankFailed, launch

    run_dir = tempfile.mkdtemp(prefix="fitcalc-verify-")
    try:
        outcome = launch(job.model_copy(update={"run_dir": run_dir}), progress)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    why = outcome.failure(timeout)
    if why is not None:
        raise RankFailed(why, hint=f"rank logs in {run_dir}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return outcome


def _distributed_device(device: str) -> str:
    from fitcalc.core.errors import InputError

    want = (device or "auto").strip().lower()
    if want == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if want in ("cpu", "cuda"):
        return want
    if want.startswith("cuda:"):
        raise InputError(f"--device {device}: a distributed run gives rank r the GPU cuda:LOCAL_RANK",
                         hint="use --device cuda; choose the GPUs with CUDA_VISIBLE_DEVICES")
    raise InputError(f"--device {device}: distributed verify runs on cpu (gloo) or cuda (nccl)",
                     hint="use --device cpu or --device cuda")


def _torchrun_rank(job, settings, spec, progress, notes, t0):
    """This process is one rank that torchrun started: measure it, gather every rank's report on
    every rank (so all exit with the same code), return the assembled result."""
    import os
    import socket
    import time

    from fitcalc.edges.measure.distributed import dist, env_rank, is_collective_error, run_rank
    from fitcalc.edges.measure.launch import RankFailed, RankOutOfMemory
    from fitcalc.core.measure.result import LayoutReport, assemble

    rank, world, local, local_world = env_rank()
    phase = ["start"]

    def say(msg: str) -> None:
        phase[0] = msg.split(" ")[0]
        if progress is not None:
            progress(f"rank {rank}: {msg}")

    try:
        report = run_rank(job, rank, world, local, local_world, say, keep_group=True)
    except Exception as e:
        if not is_collective_error(e):
            raise
        raise RankFailed(f"rank {rank} ({socket.gethostname()}): its collective failed during {phase[0]}: a peer "
                         f"died, or hung past --timeout {job.timeout_s:g} s",
                         hint="torchrun's summary names the rank that failed first") from None
    if report.oom is not None:
        # its peers wait in a collective that will not come: end this rank now, torchrun ends the rest
        raise RankOutOfMemory(f"rank {rank} ({socket.gethostname()}): out of memory at {report.oom.phase}: "
                         f"{report.oom.message}", hint="does not fit, measured")
    reports: list = [None] * world
    dist.all_gather_object(reports, report)
    nodes = max(1, world // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    lay = LayoutReport(tp=job.tp, pp=job.pp, ep=job.ep, world_size=world, backend=job.backend, launcher="torchrun",
                       nodes=nodes)
    # Every rank's sends of the gather must be done before any rank tears its group down: a gloo
    # pair closed under a peer's pending send aborts that peer ("terminate called without an active
    # exception", seen in CI).
    dist.barrier()
    dist.destroy_process_group()
    return assemble(spec.id, job.source, spec.display_name, settings, lay, reports, time.monotonic() - t0, notes)
