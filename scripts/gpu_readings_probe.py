#!/usr/bin/env python3
"""Raw device-memory readings for fitcalc's overhead model, as one JSON document on stdout.

    python scripts/gpu_readings_probe.py [--device N]

Run it in a fresh process (nothing else of this process may touch the GPU first): it reads NVML
before the CUDA context exists, creates the context, and then reads, step by step,
  * NVML total / reserved (v2) / device used / this process's used memory, and cudaMemGetInfo,
    before and right after the context (the context on each base, the driver's reservation);
  * torch allocated / reserved and the memory outside torch after a first fp32 matmul (the cuBLAS
    workspace and the cuBLAS modules it loads), then after matmuls of other dtypes and sizes;
  * the caching allocator's slack (reserved - allocated) for a few allocation patterns;
  * fitcalc's predictions for the same device (context, cuBLAS workspace, libraries), beside them.
Every byte count is an int. It stops itself after 60 s (exit 124, with what it had read), and
exits 0 with a note where there is no CUDA device or no PyTorch. Needs only torch and fitcalc
(nvidia-ml-py is used when installed).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's fitcalc first

TIMEOUT_S = 60
MATMUL_SIZES = (64, 1024, 4096)
DOC: dict = {"probe": "fitcalc gpu_readings_probe 1", "steps": []}


def _emit(code: int) -> None:
    print(json.dumps(DOC, indent=1, default=str))
    sys.stdout.flush()
    raise SystemExit(code)


def _on_alarm(_sig, _frame) -> None:
    DOC["timed_out"] = f"stopped itself after {TIMEOUT_S} s; the readings above were taken"
    _emit(124)


def _torch_or_exit():
    try:
        import torch
    except ImportError:
        DOC["note"] = "PyTorch is not installed: nothing to read"
        _emit(0)
    if not torch.cuda.is_available():
        DOC.update(torch=torch.__version__, cuda=torch.version.cuda,
                   note="no CUDA device visible (or a CPU-only PyTorch): nothing to read")
        _emit(0)
    return torch


def _state(torch, harness, index: int, when: str) -> dict:
    """One reading on every base: NVML (device and this process), cudaMemGetInfo, torch."""
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info(index)
    out = {"when": when, "cuda_total": int(total), "cuda_used": int(total - free),
           "torch_allocated": int(torch.cuda.memory_allocated(index)),
           "torch_reserved": int(torch.cuda.memory_reserved(index))}
    nv = harness.nvml_reading(index, "now")
    out.update(nvml_used=nv.get("nvml_used_now"), nvml_process=nv.get("nvml_process_now"))
    out["outside_torch_mem_get_info"] = out["cuda_used"] - out["torch_reserved"]
    return out


def _block(n: int) -> int:
    """The caching allocator's block for a request of n bytes (rounded up to 512 B)."""
    return max(512, (n + 511) // 512 * 512)


def _context(torch, harness, index: int) -> dict:
    before = harness.nvml_reading(index, "before")  # no CUDA context in this process yet
    t0 = time.perf_counter()
    torch.cuda.set_device(index)
    props = torch.cuda.get_device_properties(index)
    free, total = torch.cuda.mem_get_info(index)  # creates the primary context
    seconds = time.perf_counter() - t0
    after = harness.nvml_reading(index, "context")
    raw = {**before, **{k: v for k, v in after.items() if k not in before},
           "cuda_total": int(total), "cuda_used_context": int(total - free)}
    DOC["device"] = {"name": props.name, "sm_count": props.multi_processor_count,
                     "compute_capability": f"{props.major}.{props.minor}",
                     "max_threads_per_sm": getattr(props, "max_threads_per_multi_processor", None),
                     "total_memory": int(props.total_memory), "driver": raw.pop("driver", None),
                     "torch": torch.__version__, "cuda": torch.version.cuda}
    DOC["context_seconds"] = round(seconds, 3)
    return raw


def _matmuls(torch, harness, index: int) -> int:
    """The first matmul (fp32, 1 element) and then others; returns the cuBLAS workspace bytes."""
    dev = f"cuda:{index}"
    x = torch.ones(1, 1, device=dev)
    y = x @ x
    s = _state(torch, harness, index, "first matmul fp32 1x1 (inputs and result alive)")
    workspace = s["torch_allocated"] - _block(x.nbytes) - _block(y.nbytes)
    s["cublas_workspace"] = workspace
    DOC["steps"].append(s)
    del x, y
    for dtype in ("float32", "bfloat16", "float16"):
        for n in MATMUL_SIZES:
            a = torch.ones(n, n, device=dev, dtype=getattr(torch, dtype))
            b = a @ a
            s = _state(torch, harness, index, f"matmul {dtype} {n}x{n}")
            s["live_tensor_bytes"] = a.nbytes + b.nbytes
            DOC["steps"].append(s)
            del a, b
    if hasattr(torch, "float8_e4m3fn") and hasattr(torch, "_scaled_mm"):
        try:  # fp8 GEMM where the GPU has it (sm 8.9+): loads cuBLASLt's fp8 kernels
            a = torch.ones(256, 256, device=dev).to(torch.float8_e4m3fn)
            one = torch.ones((), device=dev)
            torch._scaled_mm(a, a.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
            DOC["steps"].append(_state(torch, harness, index, "scaled_mm fp8 256x256"))
        except Exception as e:  # noqa: BLE001 - not every GPU/torch pair has fp8 GEMM
            DOC["steps"].append({"when": "scaled_mm fp8 256x256", "skipped": str(e).splitlines()[0][:200]})
    return workspace


def _pattern(torch, index: int, name: str, sizes: list[int], free_every: int = 0, then: int = 0) -> dict:
    """Allocate ``sizes`` (bytes), free every ``free_every``-th, allocate ``then`` bytes; read slack."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(index)
    a0, r0 = torch.cuda.memory_allocated(index), torch.cuda.memory_reserved(index)
    live = [torch.empty(n, dtype=torch.uint8, device=f"cuda:{index}") for n in sizes]
    if free_every:
        live = [t for i, t in enumerate(live) if i % free_every]
    if then:
        live.append(torch.empty(then, dtype=torch.uint8, device=f"cuda:{index}"))
    torch.cuda.synchronize()
    out = {"pattern": name, "requested": sum(t.nbytes for t in live),
           "allocated": int(torch.cuda.memory_allocated(index) - a0),
           "reserved": int(torch.cuda.memory_reserved(index) - r0),
           "max_allocated": int(torch.cuda.max_memory_allocated(index) - a0),
           "max_reserved": int(torch.cuda.max_memory_reserved(index) - r0)}
    out["slack"] = out["reserved"] - out["allocated"]
    out["peak_slack"] = out["max_reserved"] - out["max_allocated"]
    del live
    torch.cuda.empty_cache()
    return out


def _allocator(torch, index: int) -> list[dict]:
    MiB = 1 << 20
    return [
        _pattern(torch, index, "1000 x 1000 B (small pool, 2 MiB segments)", [1000] * 1000),
        _pattern(torch, index, "7 x 3 MiB (1-10 MiB: 20 MiB segments)", [3 * MiB] * 7),
        _pattern(torch, index, "5 x 11 MiB + 1 B (large: rounded to 2 MiB)", [11 * MiB + 1] * 5),
        _pattern(torch, index, "16 x (64 MiB, 1 MiB + 512 B), free the 64 MiB, then 96 MiB (fragmentation)",
                 [64 * MiB, MiB + 512] * 16, free_every=2, then=96 * MiB),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    args = ap.parse_args()
    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(TIMEOUT_S)
    torch = _torch_or_exit()
    from fitcalc.core.estimate import overhead as ovh
    from fitcalc.core.measure import compare
    from fitcalc.edges.measure import harness

    i = args.device
    raw = _context(torch, harness, i)
    workspace = _matmuls(torch, harness, i)
    DOC["allocator"] = _allocator(torch, i)
    end = _state(torch, harness, i, "end")
    raw.update(cuda_used_end=end["cuda_used"], torch_reserved_end=end["torch_reserved"],
               nvml_used_end=end["nvml_used"], nvml_process_end=end["nvml_process"])
    DOC["raw"] = raw
    o = compare.outside_torch(raw)
    r = compare.driver_reserved(raw)
    d = DOC["device"]
    DOC["derived"] = {"base": o.base if o else None, "context": o.context if o else None,
                      "libraries": o.libraries if o else None, "cublas_workspace": workspace,
                      "driver_reserved": r[0] if r else None, "driver_reserved_how": r[1] if r else None,
                      "nvml_total_minus_cuda_total": (raw["nvml_total"] - raw["cuda_total"])
                      if raw.get("nvml_total") else None}
    DOC["predicted"] = {"context": ovh.cuda_context_bytes(d["sm_count"], d["compute_capability"])[0],
                        "cublas_workspace": ovh.cublas_workspace_bytes(d["compute_capability"])[0]}
    _emit(0)


if __name__ == "__main__":
    main()
