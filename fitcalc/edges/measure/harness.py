"""Run the stack on a device and measure it phase by phase. EDGE (torch, psutil, NVML).

Phases: ``weights`` (build every tensor), ``kv`` (allocate the cache), ``prefill`` (the prompt in
chunks), ``decode`` (one step). What is read, per device:

  every device  live tensor storage by tag (``StorageTracker``): per-term bytes, per-phase peaks
  cuda          torch.cuda memory_allocated / max_memory_allocated / memory_reserved /
                max_memory_reserved per phase; raw device readings (NVML before and right after
                the CUDA context and at the end, per-process where NVML lists this process;
                cudaMemGetInfo after the context and at the end) from which
                ``compare.outside_torch`` derives the context and the libraries loaded since, each on
                one base, and ``compare.driver_reserved`` the driver's reservation (reported apart);
                cuBLAS workspace = allocator delta of the first matmul beyond its tensors
  cpu           RSS after each phase and the process's peak RSS (psutil, getrusage)
  mps           torch.mps current_allocated_memory / driver_allocated_memory

An out-of-memory error in any phase is caught and returned as ``OutOfMemory`` with the phase
and what was live: "does not fit, measured".
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, field

from fitcalc.core.errors import MeasureUnavailable
from fitcalc.edges.measure import require_torch
from fitcalc.core.measure.compare import (LayerBytes, MeasuredTerm, Measurement, device_need, driver_reserved,
                                          outside_torch)
from fitcalc.core.spec import Device

torch = require_torch()

from fitcalc.edges.measure.stack import Shard, Stack, layer_signature  # noqa: E402
from fitcalc.edges.measure.tracker import StorageTracker  # noqa: E402

PHASES = ("weights", "kv", "prefill", "decode")


@dataclass
class DeviceInfo:
    kind: str  # cpu | cuda | mps
    device: str  # torch device string
    name: str
    total_bytes: int
    available_bytes: int  # free device memory (cuda), available RAM (cpu), working-set limit (mps)
    driver: str | None = None
    cuda_version: str | None = None
    sm_count: int | None = None
    compute_capability: str | None = None
    torch_version: str = ""
    host: str = ""
    # raw device-memory readings (keys: fitcalc.core.measure.compare, "device memory outside torch")
    memory: dict = field(default_factory=dict)


def _host() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, {platform.system()}"


def _nvml_handle(index: int):
    """(pynvml, handle) of torch's device ``index`` (through CUDA_VISIBLE_DEVICES), or None."""
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        phys = index
        if visible:
            ids = [v.strip() for v in visible.split(",") if v.strip()]
            if index < len(ids) and ids[index].isdigit():
                phys = int(ids[index])
        return pynvml, pynvml.nvmlDeviceGetHandleByIndex(phys)
    except Exception:  # NVML missing, no permission: the cudaMemGetInfo base is used
        return None


def _nvml_process_used(nv, h) -> int | None:
    """This process's used memory as NVML lists it; None where it is not listed (a container's
    PID namespace, MIG, drivers that report no per-process figure)."""
    pid = os.getpid()
    for name in ("nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses"):
        fn = getattr(nv, name, None)
        if fn is None:
            continue
        try:
            procs = fn(h)
        except Exception:  # noqa: BLE001 - an older driver lacks the versioned call
            continue
        for p in procs or []:
            used = getattr(p, "usedGpuMemory", None)
            if getattr(p, "pid", None) == pid and isinstance(used, int) and used >= 0:
                return used
        return None
    return None


def nvml_reading(index: int, when: str) -> dict:
    """NVML's view of device ``index`` without creating a CUDA context: ``nvml_used_<when>``
    (v1 used, which counts the driver's reservation), ``nvml_process_<when>``, and once the total,
    the v2 reserved field and the driver version. {} without NVML."""
    got = _nvml_handle(index)
    if got is None:
        return {}
    nv, h = got
    out: dict = {}
    try:
        m = nv.nvmlDeviceGetMemoryInfo(h)
        out = {"nvml_total": int(m.total), f"nvml_used_{when}": int(m.used)}
        if hasattr(nv, "nvmlMemory_v2"):
            out["nvml_reserved"] = int(nv.nvmlDeviceGetMemoryInfo(h, version=nv.nvmlMemory_v2).reserved)
        drv = nv.nvmlSystemGetDriverVersion()
        out["driver"] = drv.decode() if isinstance(drv, bytes) else drv
    except Exception:  # noqa: BLE001 - what was read stays; the rest falls back to cudaMemGetInfo
        pass
    out[f"nvml_process_{when}"] = _nvml_process_used(nv, h)
    return out


def resolve_device(text: str) -> DeviceInfo:
    """``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda``, ``cuda:N``, ``mps``."""
    import psutil

    want = (text or "auto").strip().lower()
    cuda_ok = torch.cuda.is_available()
    mps_ok = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if want == "auto":
        want = "cuda" if cuda_ok else ("mps" if mps_ok else "cpu")
    common = {"torch_version": torch.__version__, "host": _host()}
    if want == "cpu":
        vm = psutil.virtual_memory()
        return DeviceInfo(kind="cpu", device="cpu", name=f"CPU ({platform.machine()})", total_bytes=vm.total,
                          available_bytes=vm.available, **common)
    if want.startswith("cuda"):
        if not cuda_ok:
            why = "this PyTorch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise MeasureUnavailable(f"--device {text}: {why}",
                                     hint="use --device cpu, or install a CUDA build of PyTorch on a machine with a GPU")
        idx = 0
        if ":" in want:
            tail = want.split(":", 1)[1]
            if not tail.isdigit():
                raise MeasureUnavailable(f"--device {text}: expected cuda:N", hint="e.g. --device cuda:0")
            idx = int(tail)
        n = torch.cuda.device_count()
        if idx >= n:
            raise MeasureUnavailable(f"--device {text}: only {n} CUDA device(s) visible", hint=f"use cuda:0..cuda:{n - 1}")
        memory = nvml_reading(idx, "before")  # before torch creates a context on the device
        torch.cuda.set_device(idx)
        props = torch.cuda.get_device_properties(idx)
        free, total = torch.cuda.mem_get_info(idx)  # creates the context
        after = nvml_reading(idx, "context")
        memory.update({k: v for k, v in after.items() if k not in memory})
        memory.update(cuda_total=int(total), cuda_used_context=int(total - free))
        driver = memory.pop("driver", None)
        return DeviceInfo(kind="cuda", device=f"cuda:{idx}", name=props.name, total_bytes=int(total),
                          available_bytes=int(free), driver=driver, cuda_version=torch.version.cuda,
                          sm_count=props.multi_processor_count, compute_capability=f"{props.major}.{props.minor}",
                          memory=memory, **common)
    if want == "mps":
        if not mps_ok:
            raise MeasureUnavailable("--device mps: Metal (MPS) is not available here", hint="use --device cpu")
        limit = int(torch.mps.recommended_max_memory()) if hasattr(torch.mps, "recommended_max_memory") else \
            psutil.virtual_memory().total
        return DeviceInfo(kind="mps", device="mps", name="Apple GPU (MPS)", total_bytes=limit,
                          available_bytes=limit, **common)
    raise MeasureUnavailable(f"unknown --device {text!r}", hint="auto, cpu, cuda, cuda:N or mps")


def prediction_device(info: DeviceInfo) -> Device:
    """The Device the prediction is made for, through the same overhead code as ``fit``. CUDA:
    the driver's total (NVML, else cudaMemGetInfo's total + the reservation) with the driver's
    reservation read here, the SM count and compute capability that size the context and the
    cuBLAS workspace. CPU: host RAM, where no CUDA context or cuBLAS workspace exists. MPS:
    unified memory."""
    if info.kind == "cuda":
        from fitcalc.core.measure.compare import driver_reserved

        reserved = driver_reserved(info.memory)
        r = reserved[0] if reserved else None
        total = info.memory.get("nvml_total") or info.total_bytes + (r or 0)
        return Device(label=info.name, memory_bytes=total, reserved_bytes=r, vendor="nvidia", sm_count=info.sm_count,
                      compute_capability=info.compute_capability)
    if info.kind == "mps":
        return Device(label=info.name, memory_bytes=info.total_bytes, vendor="apple", unified_memory=True,
                      is_budget=True)
    return Device.host(info.total_bytes, info.name)


def still_needed(predicted) -> int:
    """What the predicted footprint still needs from the device's free memory: less the CUDA
    context (created already) and the driver's reservation (never in cudaMemGetInfo's free)."""
    return (predicted.total_bytes - predicted.by_prefix("overhead.cuda_context")
            - predicted.by_prefix("overhead.driver_reserved"))


@dataclass
class OutOfMemory:
    phase: str
    live_bytes: int  # tensor storage live when it failed
    message: str
    readings: dict = field(default_factory=dict)


@dataclass
class RunResult:
    measurement: Measurement | None
    phases: list[dict]
    readings: dict
    timings: dict
    oom: OutOfMemory | None = None
    notes: list[str] = field(default_factory=list)


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _peak_rss() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024  # bytes on macOS, KiB on Linux


class _Counters:
    """Device counters read at phase boundaries."""

    def __init__(self, info: DeviceInfo):
        self.info = info
        self.kind = info.kind
        self.max_reserved = 0
        self.max_allocated = 0

    def sync(self) -> None:
        if self.kind == "cuda":
            torch.cuda.synchronize()
        elif self.kind == "mps":
            torch.mps.synchronize()

    def start(self) -> dict:
        self.sync()
        out: dict = {}
        if self.kind == "cuda":
            torch.cuda.reset_peak_memory_stats()
            out["allocated_start"] = int(torch.cuda.memory_allocated())
        elif self.kind == "cpu":
            out["rss_start"] = _rss()
        elif self.kind == "mps":
            out["mps_allocated_start"] = int(torch.mps.current_allocated_memory())
        return out

    def end(self) -> dict:
        self.sync()
        out: dict = {}
        if self.kind == "cuda":
            out.update(allocated=int(torch.cuda.memory_allocated()), max_allocated=int(torch.cuda.max_memory_allocated()),
                       reserved=int(torch.cuda.memory_reserved()), max_reserved=int(torch.cuda.max_memory_reserved()))
            free, total = torch.cuda.mem_get_info()
            out["device_used"] = int(total - free)
            self.max_reserved = max(self.max_reserved, out["max_reserved"])
            self.max_allocated = max(self.max_allocated, out["max_allocated"])
        elif self.kind == "cpu":
            out["rss"] = _rss()
        elif self.kind == "mps":
            out.update(mps_allocated=int(torch.mps.current_allocated_memory()),
                       mps_driver_allocated=int(torch.mps.driver_allocated_memory()))
        return out

    def memory_end(self) -> dict:
        """The end-of-run readings on every base, with torch's reserved bytes at that moment."""
        if self.kind != "cuda":
            return {}
        self.sync()
        free, total = torch.cuda.mem_get_info()
        out = {k: v for k, v in self.info.memory.items()}
        out.update(cuda_used_end=int(total - free), torch_reserved_end=int(torch.cuda.memory_reserved()))
        index = torch.cuda.current_device()
        end = nvml_reading(index, "end")
        out.update(nvml_used_end=end.get("nvml_used_end"), nvml_process_end=end.get("nvml_process_end"))
        return out


def _cublas_workspace(info: DeviceInfo) -> int | None:
    """Allocator bytes the first cuBLAS matmul leaves behind beyond its own tensors."""
    if info.kind != "cuda":
        return None
    torch.cuda.synchronize()
    a0 = torch.cuda.memory_allocated()
    x = torch.ones(64, 64, device=info.device, dtype=torch.bfloat16)
    y = x @ x
    torch.cuda.synchronize()
    a1 = torch.cuda.memory_allocated()
    own = x.untyped_storage().nbytes() + y.untyped_storage().nbytes()
    del x, y
    return int(a1 - a0 - own) if a1 - a0 >= own else 0


def device_report(info: DeviceInfo):
    """The device as a result reports it (``fitcalc.core.measure.result.DeviceReport``)."""
    from fitcalc.core.measure.result import DeviceReport

    return DeviceReport(kind=info.kind, name=info.name, total_bytes=info.total_bytes,
                        available_bytes=info.available_bytes, driver=info.driver, cuda_version=info.cuda_version,
                        torch_version=info.torch_version, sm_count=info.sm_count,
                        compute_capability=info.compute_capability, host=info.host)


def run(model, recipe, engine, info: DeviceInfo, *, batch: int, context: int, kv_dtype: str | None,
        include_embeddings: bool, chunk: int, seed: int = 0, progress=None, attention_math: bool = False,
        shard: Shard | None = None, comm=None, on_phase=None) -> RunResult:
    """Build the stack of ``model`` (already truncated) on the device, run prefill and decode,
    return the measurement (or where it ran out of memory).

    ``shard`` and ``comm``: one rank of a distributed run (``fitcalc.edges.measure.distributed``);
    ``on_phase(name)`` is called as each phase starts."""
    say = progress or (lambda _msg: None)
    torch.manual_seed(seed)
    # Token ids (and random hidden states without embeddings) from their own generator: every
    # rank of a distributed run draws the same ones, whatever it built before.
    gen = torch.Generator(device=info.device).manual_seed(seed + 1) if comm is not None else None
    counters = _Counters(info)
    readings: dict = {}
    timings: dict = {}
    phases: list[dict] = []
    notes: list[str] = []
    workspace = _cublas_workspace(info)
    if info.kind == "cpu":
        readings["rss_before"] = _rss()
    tracker = StorageTracker()
    stack = Stack(model, recipe, info.device, include_embeddings=include_embeddings, tracker=tracker,
                  attention_math=attention_math, shard=shard or Shard(), comm=comm, seed=seed)
    stack.on_progress = _every(say, seconds=1.0)
    prompt = context - 1
    current = "weights"
    t_all = time.perf_counter()
    try:
        with torch.inference_mode(), tracker:
            for current in PHASES:
                say(f"{current} …")
                if on_phase is not None:
                    on_phase(current)
                c0 = counters.start()
                t0 = time.perf_counter()
                with tracker.phase(current) as ph:
                    if current == "weights":
                        stack.build_weights()
                    elif current == "kv":
                        stack.alloc_kv(batch, context, kv_dtype, engine)
                    elif current == "prefill":
                        nxt = stack.prefill(prompt, chunk, gen)
                    else:
                        stack.decode(prompt, nxt, gen)
                    counters.sync()
                timings[current] = round(time.perf_counter() - t0, 3)
                phases.append({"name": current, "tracked_start_bytes": ph.start_live, "tracked_peak_bytes": ph.peak,
                               "tracked_end_bytes": ph.end_live, "seconds": timings[current], **c0, **counters.end()})
            memory = counters.memory_end()
            m = _measurement(stack, tracker, info, counters, workspace, memory, phases)
    except Exception as e:  # noqa: BLE001 - OOM is a result; anything else propagates
        if not _is_oom(e):
            raise
        oom = _out_of_memory(e, current, tracker, info)
        del stack
        if info.kind == "cuda":
            torch.cuda.empty_cache()
        timings["total"] = round(time.perf_counter() - t_all, 3)
        return RunResult(measurement=None, phases=phases, readings=readings, timings=timings, oom=oom)
    timings["total"] = round(time.perf_counter() - t_all, 3)
    if stack.attention.fallback_reason:
        notes.append(f"attention ran on the math path: {stack.attention.fallback_reason}")
    readings["attention_kernel"] = stack.attention.kernel
    _final_readings(readings, info, counters, phases, memory)
    del stack
    if info.kind == "cuda":
        torch.cuda.empty_cache()
    return RunResult(measurement=m, phases=phases, readings=readings, timings=timings, notes=notes)


def _every(say, seconds: float):
    """``say``, passed on at most once per ``seconds`` (progress inside a phase, not a line per tensor)."""
    last = [time.monotonic()]

    def tick(msg: str) -> None:
        now = time.monotonic()
        if now - last[0] >= seconds:
            last[0] = now
            say(msg)
    return tick


def _out_of_memory(e: Exception, phase: str, tracker: StorageTracker, info: DeviceInfo) -> OutOfMemory:
    """Where the run ran out of memory, and what was live then."""
    live = tracker.live
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    oom_readings = {"tracked_live_bytes": live, "tracked_peak_bytes": tracker.peak}
    if info.kind == "cuda":
        oom_readings.update(allocated=int(torch.cuda.memory_allocated()), reserved=int(torch.cuda.memory_reserved()))
    return OutOfMemory(phase=phase, live_bytes=live, message=msg, readings=oom_readings)


def _final_readings(readings: dict, info: DeviceInfo, counters: _Counters, phases: list[dict],
                    memory: dict) -> None:
    """The readings taken once the run is over: RSS high-water marks on CPU, torch's maxima on CUDA."""
    if info.kind == "cpu":
        # getrusage's high-water mark is the process's: in a process that built other stacks
        # before (a test session, the calibration script) it may belong to them; the largest RSS
        # sampled at this run's phase ends is this run's.
        readings["rss_high_water"] = _peak_rss()
        readings["rss_phase_max"] = max(p["rss"] for p in phases)
        if readings["rss_high_water"] is not None:
            readings["rss_delta"] = readings["rss_high_water"] - readings["rss_before"]
    if info.kind == "cuda":
        readings["max_reserved"] = counters.max_reserved
        readings["max_allocated"] = counters.max_allocated
        readings["device_memory"] = memory


def _outside_torch_terms(memory: dict) -> list[MeasuredTerm]:
    """overhead.cuda_context, overhead.non_torch (libraries loaded since) and the driver's
    reservation, from the raw readings; the readings behind each ride along."""
    out: list[MeasuredTerm] = []
    o = outside_torch(memory)
    raw = {k: int(v) for k, v in memory.items() if isinstance(v, int)}
    if o is not None:
        out.append(MeasuredTerm(id="overhead.cuda_context", bytes=o.context,
                                how=f"{o.how}, right after the context was created", readings=raw))
        out.append(MeasuredTerm(id="overhead.non_torch", bytes=o.libraries,
                                how=f"{o.how}, at the end less torch reserved, less the context"))
    r = driver_reserved(memory)
    if r is not None:
        out.append(MeasuredTerm(id="overhead.driver_reserved", bytes=r[0], how=r[1]))
    return out


def _measurement(stack: Stack, tracker: StorageTracker, info: DeviceInfo, counters: _Counters,
                 workspace: int | None, memory: dict, phases: list[dict]) -> Measurement:
    w = tracker.phase_stats("weights")
    kv = tracker.phase_stats("kv")
    pre = tracker.phase_stats("prefill")
    dec = tracker.phase_stats("decode")
    assert w and kv and pre and dec
    by_phase = {p["name"]: p for p in phases}
    terms: list[MeasuredTerm] = []
    resident = 0
    for tag, n in sorted(tracker.by_tag.items()):
        if (tag.startswith("weights.") or tag.startswith("kv.")) and n:
            readings = {}
            if info.kind == "cuda":
                ph = by_phase["weights" if tag.startswith("weights.") else "kv"]
                readings["phase_allocator_delta"] = ph["allocated"] - ph["allocated_start"]
            terms.append(MeasuredTerm(id=tag, bytes=n, how="tensor storage", readings=readings))
            resident += n
    for tag in ("act.prefill", "act.moe_routing", "act.dequant_scratch", "act.logits"):
        n = pre.tag_peak.get(tag, 0) if tag == "act.prefill" else max(pre.tag_peak.get(tag, 0), dec.tag_peak.get(tag, 0))
        if n:
            terms.append(MeasuredTerm(id=tag, bytes=n, how="peak of live tensor storage (tracked)",
                                      readings={"decode_peak": dec.tag_peak.get(tag, 0)}))
    if workspace is not None:
        terms.append(MeasuredTerm(id="overhead.cublas_workspace", bytes=workspace,
                                  how="allocator delta of the first matmul beyond its tensors"))
    terms += _outside_torch_terms(memory) if info.kind == "cuda" else []
    if info.kind == "cuda":
        slack = counters.max_reserved - counters.max_allocated
        terms.append(MeasuredTerm(id="overhead.allocator", bytes=slack,
                                  how="max_memory_reserved - max_memory_allocated"))
    working = pre.peak - pre.start_live
    layers = []
    for L in stack.layers:
        per = {tag: n for (tag, layer), n in tracker.by_tag_layer.items()
               if layer == L.index and n and (tag.startswith("weights.") or tag.startswith("kv."))}
        layers.append(LayerBytes(layer=L.index, signature=layer_signature(stack.arch, L.index), terms=per))
    glob = {tag: n for (tag, layer), n in tracker.by_tag_layer.items()
            if layer is None and n and tag.startswith("weights.")}
    if info.kind == "cuda":
        peak, how = device_need(counters.max_reserved, outside_torch(memory), driver_reserved(memory))
    else:
        peak = tracker.peak
        how = "peak of live tensor storage (tracked)" + ("" if info.kind == "cpu" else "; MPS has no peak counter")
    return Measurement(device=info.name, device_kind=info.kind, terms=terms, peak_bytes=peak, peak_how=how,
                       working_bytes=working, layers=layers, global_terms=glob)


__all__ = ["DeviceInfo", "nvml_reading", "resolve_device", "still_needed", "prediction_device", "run", "RunResult", "OutOfMemory", "PHASES"]
