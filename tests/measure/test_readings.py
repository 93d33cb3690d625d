"""Device memory outside torch's allocator: one base per reading, the driver's reservation apart.

The figures are the H200 readings of 2026-12-04 (docs/validation/h200-2026-12-04/README.md,
"Readings taken beside the script"), taken in a fresh process:
  NVML total 143,771 MiB = 150,754,820,096 B; nvidia-smi memory.reserved 616 MiB = 645,922,816 B
  NVML used before the context 648,347,648 B; right after 1,197,342,720 B
  cudaMemGetInfo total 150,109,880,320 B; used right after the context 552,402,944 B
  after one fp32 matmul: torch reserved 35,651,584 B, cudaMemGetInfo used 753,729,536 B
Both APIs report the same free bytes (1,197,342,720 - 552,402,944 = 644,939,776 = NVML total -
cudaMemGetInfo total), so NVML used after the matmul = 753,729,536 + 644,939,776 = 1,398,669,312.
"""

from __future__ import annotations

import os
import sys

import pytest

from fitcalc.core.measure.compare import device_need, driver_reserved, outside_torch
from tests.nvml_fake import fake_pynvml

MiB = 1 << 20
NVML_TOTAL = 143_771 * MiB
RESERVED = 616 * MiB
CUDA_TOTAL = 150_109_880_320
GAP = NVML_TOTAL - CUDA_TOTAL  # 644,939,776: what cudaMemGetInfo's total leaves out

H200 = {
    "nvml_total": NVML_TOTAL, "nvml_reserved": RESERVED,
    "nvml_used_before": 648_347_648, "nvml_used_context": 1_197_342_720, "nvml_used_end": 1_398_669_312,
    "cuda_total": CUDA_TOTAL, "cuda_used_context": 552_402_944, "cuda_used_end": 753_729_536,
    "torch_reserved_end": 35_651_584,
}


def test_gap_is_the_same_free_on_both_apis():
    assert GAP == 644_939_776
    assert H200["nvml_used_context"] - H200["cuda_used_context"] == GAP


def test_nvml_device_base_cancels_the_reservation():
    o = outside_torch({k: v for k, v in H200.items()})
    assert o.base == "nvml-device"
    assert o.context == 548_995_072  # 1,197,342,720 - 648,347,648 = 523.6 MiB
    # 1,398,669,312 - 648,347,648 - 35,651,584 = 714,670,080; less the context: 165,675,008 (158.0 MiB)
    assert o.end == 714_670_080 and o.libraries == 165_675_008


def test_mem_get_info_base_alone():
    r = {k: v for k, v in H200.items() if not k.startswith("nvml_")}
    o = outside_torch(r)
    assert o.base == "mem-get-info"
    assert o.context == 552_402_944  # 526.8 MiB: 3.25 MiB used before this process are in it
    assert o.end == 753_729_536 - 35_651_584 == 718_077_952
    assert o.libraries == 165_675_008  # the same libraries on either base


def test_the_mixed_base_bug_is_gone():
    # What verify read before: cudaMemGetInfo used - torch reserved - NVML used before, which
    # subtracts the 616 MiB reservation from a base that never had it: 69,730,304 B (66.5 MiB).
    mixed = H200["cuda_used_end"] - H200["torch_reserved_end"] - H200["nvml_used_before"]
    assert mixed == 69_730_304
    o = outside_torch(H200)
    assert o.end - mixed == GAP  # exactly the part of the reservation cudaMemGetInfo never counted


def test_driver_reservation_read_apart():
    assert driver_reserved(H200) == (RESERVED, "NVML memory.reserved")
    no_v2 = {k: v for k, v in H200.items() if k != "nvml_reserved"}
    assert driver_reserved(no_v2) == (GAP, "NVML total - cudaMemGetInfo total")  # 615.06 MiB
    assert driver_reserved({"cuda_total": CUDA_TOTAL}) is None


def test_other_processes_on_the_gpu():
    # Another process holds 10 GiB from before ours started to the end: the NVML device counter
    # carries it in every reading, so it cancels; cudaMemGetInfo alone cannot tell it apart.
    other = 10 << 30
    r = {k: (v + other if k.startswith(("nvml_used", "cuda_used")) else v) for k, v in H200.items()}
    o = outside_torch(r)
    assert (o.base, o.context, o.libraries) == ("nvml-device", 548_995_072, 165_675_008)
    alone = outside_torch({k: v for k, v in r.items() if not k.startswith("nvml_")})
    assert alone.context == 552_402_944 + other  # stated in BASES["mem-get-info"]
    # Per-process NVML wins where the process is listed: the other process does not count.
    r.update(nvml_process_context=548_995_072, nvml_process_end=714_670_080 + 35_651_584)
    o = outside_torch(r)
    assert (o.base, o.context, o.end) == ("nvml-process", 548_995_072, 714_670_080)


def test_device_need_adds_all_three():
    o = outside_torch(H200)
    n, how = device_need(3_420_454_912, o, driver_reserved(H200))
    assert n == 3_420_454_912 + 714_670_080 + RESERVED
    assert "driver reservation" in how and "nvml-device" in how


def _fake(monkeypatch, used_total, processes):
    free = NVML_TOTAL - used_total
    m = fake_pynvml([("NVIDIA H200", NVML_TOTAL, free, RESERVED, (9, 0))], driver="580.159.04", processes=processes)
    monkeypatch.setitem(sys.modules, "pynvml", m)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return m


def test_nvml_reading_with_fake_nvml(monkeypatch):
    harness = pytest.importorskip("fitcalc.edges.measure.harness")
    _fake(monkeypatch, 648_347_648, {0: [(os.getpid(), 548_995_072), (1, 10 << 30)]})
    r = harness.nvml_reading(0, "context")
    assert r["nvml_total"] == NVML_TOTAL and r["nvml_reserved"] == RESERVED
    assert r["nvml_used_context"] == 648_347_648  # v1 used: total - free, the reservation in it
    assert r["nvml_process_context"] == 548_995_072  # this process only, not PID 1's 10 GiB
    assert r["driver"] == "580.159.04"


def test_nvml_reading_in_a_container(monkeypatch):
    # A container's PID namespace: NVML lists host PIDs, this process is not among them.
    harness = pytest.importorskip("fitcalc.edges.measure.harness")
    _fake(monkeypatch, 648_347_648, {0: [(os.getpid() + 100_000, 548_995_072)]})
    r = harness.nvml_reading(0, "before")
    assert r["nvml_process_before"] is None and r["nvml_used_before"] == 648_347_648


def test_nvml_reading_without_nvml(monkeypatch):
    harness = pytest.importorskip("fitcalc.edges.measure.harness")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert harness.nvml_reading(0, "before") == {}


def test_resolve_device_and_end_reading_with_fake_cuda(monkeypatch):
    """The harness's own path, CUDA and NVML both faked: NVML is read before the context exists,
    cudaMemGetInfo creates it, and every quantity comes out on one base (the H200 figures)."""
    harness = pytest.importorskip("fitcalc.edges.measure.harness")
    import types

    torch = harness.torch
    m = _fake(monkeypatch, 648_347_648, {})  # before: 616 MiB reserved + 3.25 MiB of others
    state = {"used": 648_347_648 - GAP, "reserved": 0}  # cudaMemGetInfo's view: the gap is not in it

    def mem_get_info(*_a):
        if state["reserved"] == 0 and state["used"] < 552_402_944:  # first call creates the context
            state["used"] = 552_402_944
        nv_used = state["used"] + GAP
        m._devices[0] = ("NVIDIA H200", NVML_TOTAL, NVML_TOTAL - nv_used, RESERVED, (9, 0))
        return CUDA_TOTAL - state["used"], CUDA_TOTAL

    props = types.SimpleNamespace(name="NVIDIA H200", multi_processor_count=132, major=9, minor=0)
    for name, fn in {"is_available": lambda: True, "device_count": lambda: 1, "set_device": lambda i: None,
                     "get_device_properties": lambda i: props, "mem_get_info": mem_get_info,
                     "synchronize": lambda *a: None, "current_device": lambda: 0,
                     "memory_reserved": lambda *a: state["reserved"]}.items():
        monkeypatch.setattr(torch.cuda, name, fn)
    info = harness.resolve_device("cuda")
    assert info.memory["nvml_used_before"] == 648_347_648 and info.memory["nvml_used_context"] == 1_197_342_720
    assert info.memory["cuda_used_context"] == 552_402_944 and info.driver == "580.159.04"
    state.update(used=753_729_536, reserved=35_651_584)  # after the first matmul
    memory = harness._Counters(info).memory_end()
    terms = {t.id: t.bytes for t in harness._outside_torch_terms(memory)}
    assert terms == {"overhead.cuda_context": 548_995_072, "overhead.non_torch": 165_675_008,
                     "overhead.driver_reserved": RESERVED}
    dev = harness.prediction_device(info)
    assert (dev.memory_bytes, dev.reserved_bytes, dev.sm_count, dev.compute_capability) == (
        NVML_TOTAL, RESERVED, 132, "9.0")
