"""One rank of a distributed `fitcalc verify`: its share of the plan, built, run and measured. EDGE (torch).

``run_rank`` is what every rank does, whoever started it (``fitcalc.edges.measure.launch`` or torchrun):

1. its share from the same placement `fitcalc plan` uses: ``assign(arch, torch engine,
   Layout(tp, pp, ep), ...)`` over the truncated stack, and the prediction for that share
   (``estimate(prepared, device, workload, share=...)``);
2. ``torch.distributed.init_process_group`` from the torchrun environment (``RANK``,
   ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), ``gloo`` on CPU and
   ``nccl`` on CUDA, with the run's timeout on every collective;
3. the stack's shard (``Shard``) and its collectives (``Collectives``), measured phase by phase
   by the single-device harness;
4. the comparison of its own measurement with its own prediction, as a ``RankReport``.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import time

from fitcalc.core.errors import InputError, MeasureUnavailable
from fitcalc.edges.measure import require_torch
from fitcalc.core.measure.job import FAULT_ENV, RankJob, parse_fault, status_path
from fitcalc.core.measure.result import Holds, RankReport, oom_comparison

torch = require_torch()
dist = torch.distributed

from fitcalc.edges.measure import harness  # noqa: E402
from fitcalc.edges.measure.collectives import Collectives  # noqa: E402
from fitcalc.edges.measure.stack import Shard  # noqa: E402


class Status:
    """``rank-R.status``: the phase and what the rank waits for, replaced atomically; nothing
    without a run folder (torchrun)."""

    def __init__(self, run_dir: str | None, rank: int):
        self.path = status_path(run_dir, rank) if run_dir else None
        self.phase_name = "start"
        self.detail_text = ""

    def _write(self) -> None:
        if self.path is None:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{self.phase_name}\t{self.detail_text}\n")
        os.replace(tmp, self.path)

    def phase(self, name: str) -> None:
        self.phase_name, self.detail_text = name, ""
        self._write()

    def detail(self, text: str) -> None:
        self.detail_text = text
        self._write()


def env_rank() -> tuple[int, int, int, int]:
    """(rank, world size, local rank, local world size) from the torchrun environment."""
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except (KeyError, ValueError):
        raise InputError("RANK and WORLD_SIZE are not set: this process was not started as a rank",
                         hint="run `fitcalc verify --tp N` (it starts the ranks) or start it with torchrun") from None
    local = int(os.environ.get("LOCAL_RANK", rank))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return rank, world, local, local_world


def is_collective_error(e: BaseException) -> bool:
    """A collective that failed because a peer went away or timed out (gloo, NCCL)."""
    names = {c.__name__ for c in type(e).__mro__}
    if names & {"DistError", "DistBackendError", "DistNetworkError", "DistStoreError"}:
        return True
    text = str(e).lower()
    return any(k in text for k in ("connection closed by peer", "connection reset", "broken pipe", "gloo",
                                   "nccl", "timed out", "timeout"))


def _fault(rank: int, phase: str) -> None:
    """The test hook: a rank that dies, hangs or runs out of memory at a phase."""
    f = parse_fault(os.environ.get(FAULT_ENV))
    if f is None or f[0] != rank or f[1] != phase:
        return
    kind = f[2]
    if kind == "exit":
        os._exit(17)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "hang":
        while True:
            time.sleep(3600)
    raise MemoryError(f"{FAULT_ENV}: simulated out of memory at {phase}")


def _device(job: RankJob, local_rank: int, local_world: int) -> harness.DeviceInfo:
    if job.device == "cpu":
        return harness.resolve_device("cpu")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if local_world > n:
        raise MeasureUnavailable(f"{local_world} ranks on this machine need a GPU each; {n} visible",
                                 hint="use fewer ranks per machine (--tp x --pp), or --device cpu")
    return harness.resolve_device(f"cuda:{local_rank}")


def _nccl_bytes(info: harness.DeviceInfo) -> int | None:
    """Device memory outside torch that the first collective adds (NCCL communicator buffers)."""
    if info.kind != "cuda":
        return None

    def outside() -> int:
        torch.cuda.synchronize()
        free, total = torch.cuda.mem_get_info()
        return int(total - free) - int(torch.cuda.memory_reserved())

    before = outside()
    x = torch.ones(1, device=info.device)
    dist.all_reduce(x)
    del x
    torch.cuda.empty_cache()
    return outside() - before


def run_rank(job: RankJob, rank: int, world: int, local_rank: int, local_world: int, progress=None,
             keep_group: bool = False) -> RankReport:
    """Build, run and measure this rank's shard; compare it with its predicted share.

    ``keep_group``: leave the process group up (torchrun: the reports are gathered over it)."""
    from fitcalc.edges import catalog
    from fitcalc.core.estimate import estimate, prepare, truncated_model
    from fitcalc.core.estimate.placement import Layout, assign
    from fitcalc.core.measure import compare as cmp
    from fitcalc.core.spec import Workload

    if world != job.world:
        raise InputError(f"{world} ranks were started but --tp {job.tp} --pp {job.pp} needs {job.world}",
                         hint=f"start {job.world} ranks (torchrun --nproc-per-node x --nnodes = {job.world})")
    status = Status(job.run_dir, rank)
    status.phase("start")
    info = _device(job, local_rank, local_world)
    eng = catalog.load_engine("torch")
    workload = Workload(context=job.context, batch=job.batch, kv_dtype=job.kv_dtype, prompt_tokens=job.context - 1,
                        chunk_tokens=job.chunk)
    prepared = prepare(job.model, job.recipe, eng, job.kv_dtype, layers=job.layers,
                       include_embeddings=job.include_embeddings)
    dev = harness.prediction_device(info)
    asg = assign(prepared.arch, eng, Layout(tp=job.tp, pp=job.pp, ep=job.ep), [dev.memory_bytes] * world)
    share = asg.gpus[rank]
    predicted = estimate(prepared, dev, workload, share=share)
    _check_room(job, info, predicted, rank, local_world)

    stage, tp_rank = divmod(rank, job.tp)
    n = prepared.arch.num_hidden_layers
    layers = tuple(sorted(share.layers)) if share.layers is not None else None
    shard = Shard(layers=layers, tp=(tp_rank, job.tp), ep=(tp_rank, job.ep) if job.ep > 1 else (0, 1),
                  embedding=share.embedding, head=share.head)

    status.phase("init")
    # An exception from here on ends the process (the launcher or torchrun reports it); the
    # process group goes with it: shutting it down in order could wait on a peer that is gone.
    dist.init_process_group(job.backend, timeout=datetime.timedelta(seconds=job.timeout_s))
    comm = Collectives(rank, world, job.tp, job.pp, status=status.detail)
    nccl = _nccl_bytes(info)

    def on_phase(phase: str) -> None:
        status.phase(phase)
        _fault(rank, phase)

    run = harness.run(truncated_model(job.model, job.layers), job.recipe, eng, info, batch=job.batch,
                      context=job.context, kv_dtype=job.kv_dtype, include_embeddings=job.include_embeddings,
                      chunk=job.chunk, seed=job.seed, progress=progress, shard=shard, comm=comm, on_phase=on_phase)
    status.phase("done" if run.oom is None else f"out of memory at {run.oom.phase}")
    if run.oom is None and not keep_group:  # peers of a rank out of memory may still wait in a collective
        dist.destroy_process_group()

    overrides = dict(cmp.parse_tolerance(t) for t in job.tolerances)
    notes = list(run.notes)
    readings = dict(run.readings)
    measurement = run.measurement
    if nccl is not None:
        readings["nccl_bytes"] = nccl
        notes.append(f"NCCL communicators hold {nccl / 2**20:,.0f} MiB outside torch (not predicted by the torch "
                     "profile; in the peak, not in overhead.non_torch)")
        measurement = _without_nccl(measurement, nccl)
    holds = Holds(layers=sorted(share.layer_set(n)), embedding=share.embedding and job.include_embeddings,
                  head=share.head, tp_rank=tp_rank, ep_rank=tp_rank if job.ep > 1 else None, stage=stage)
    common = dict(rank=rank, local_rank=local_rank, node=socket.gethostname(), role=asg.roles[rank], holds=holds,
                  device=harness.device_report(info), phases=run.phases, readings=readings, timings=run.timings)
    if run.oom is not None:
        o = run.oom
        rows, peak, oom = oom_comparison(predicted, info.name, info.kind, o.phase, o.live_bytes, o.message, o.readings,
                                         overrides)
        return RankReport(**common, terms=rows, working=None, peak=peak, ok=False, failures=["oom"], oom=oom,
                          notes=notes, exit_code=5)
    comp = cmp.compare(predicted, measurement, overrides)
    return RankReport(**common, terms=comp.terms, working=comp.working, peak=comp.peak, ok=comp.ok,
                      failures=comp.failures, oom=None, notes=notes, exit_code=0 if comp.ok else 4)


def _check_room(job: RankJob, info, predicted, rank: int, local_world: int) -> None:
    """Refuse (one line) a share predicted not to fit the memory this rank has, unless --force."""
    need = harness.still_needed(predicted)
    available = info.available_bytes // (local_world if info.kind == "cpu" else 1)  # CPU ranks share the RAM
    checked = info.kind == "cpu" and job.run_dir is not None  # fitcalc's launcher checked all ranks together
    if need > available and not job.force and not checked:
        from fitcalc.core.units import format_bytes

        where = f"free on {info.name}" if info.kind != "cpu" else f"of RAM per rank ({local_world} ranks here)"
        raise InputError(f"rank {rank}'s share of the {job.layers}-layer stack is predicted to need "
                         f"{format_bytes(need)} ({need:,} B) but only {format_bytes(available)} is {where}",
                         hint="build fewer --layers, a smaller --context or --batch, or pass --force to try anyway")


def _without_nccl(measurement, nccl: int):
    """The memory measured outside torch beyond the context (overhead.non_torch) less the NCCL
    communicators' memory, which the torch profile does not predict."""
    if measurement is None:
        return None
    return measurement.model_copy(update={"terms": [
        t.model_copy(update={"bytes": t.bytes - nccl, "how": t.how + " - NCCL communicators"})
        if t.id == "overhead.non_torch" else t for t in measurement.terms]})


__all__ = ["run_rank", "env_rank", "Status", "is_collective_error"]
