"""Device/runtime overheads: the CUDA context per GPU, PyTorch's cuBLAS workspace per compute
capability, one figure whatever the command."""

from __future__ import annotations

import pytest

from fitcalc.edges import catalog
from fitcalc.core.estimate import overhead as ovh
from fitcalc.core.spec import Device

MiB = 1 << 20


@pytest.mark.parametrize("sm, cc, measured, source", [
    # fit points: the H200 of 2026-12-04 (NVML used after - before context creation) and llama.cpp PR #23604
    (132, "9.0", 548_995_072, "fitcalc H200 run, 523.6 MiB"),
    (34, "8.9", 107 * MiB, "llama.cpp PR #23604, RTX 4060 Ti"),
])
def test_context_fit_points(sm, cc, measured, source):
    n, _, _ = ovh.cuda_context_bytes(sm, cc)
    assert abs(n - measured) <= 1024, source  # a line through two points passes through both


def test_context_held_out():
    # llama.cpp PR #23604: 555 MiB on an RTX PRO 6000 Blackwell (188 SMs, cc 12.0 -> 1536 threads/SM),
    # not used in the fit. 7,612,283 + 2,002.6 x 188 x 1536 = 585.9 MB = 558.8 MiB: +0.7 %.
    n, _, inputs = ovh.cuda_context_bytes(188, "12.0")
    assert inputs["threads_per_SM"] == 1536
    assert abs(n - 555 * MiB) / (555 * MiB) < 0.01


def test_context_without_sm_count_falls_back():
    assert ovh.cuda_context_bytes(None, "9.0")[0] == 287_047_680  # PyTorch PR #86509


@pytest.mark.parametrize("cc, expected", [
    ("9.0", 33_554_432),  # 4096 * 8 * 1024; the H200 records: 33,554,432 B
    ("8.9", 8_519_680),  # 4096 * 1024 * 2 + 16 * 1024 * 8
    ("10.0", 8_519_680),  # only sm 9.0 is special-cased in CublasHandlePool.cpp at 26a39059
    (None, 8_519_680),
])
def test_cublas_workspace_per_capability(cc, expected):
    assert ovh.cublas_workspace_bytes(cc)[0] == expected


def _overheads(device: Device) -> dict[str, int]:
    eng = catalog.load_engine("torch")
    out = [ovh.cuda_context_draft(device, eng), ovh.driver_reserved_draft(device)]
    out += ovh.engine_constant_drafts(eng, 1, device)
    return {d[0]: d[1] for d in out if d is not None}


def test_fit_and_verify_give_the_same_overheads_on_an_h200():
    """fit/plan/report build the Device from gpu_profiles/h200.yaml; verify from what it reads on
    the card. Both go through the same overhead functions and must agree term by term."""
    harness = pytest.importorskip("fitcalc.edges.measure.harness")
    from_profile = _overheads(Device.from_profile(catalog.load_gpu("h200")))
    memory = {"nvml_total": 143_771 * MiB, "nvml_reserved": 616 * MiB, "cuda_total": 150_109_880_320}
    info = harness.DeviceInfo(kind="cuda", device="cuda:0", name="NVIDIA H200", total_bytes=150_109_880_320,
                              available_bytes=149_557_477_376, sm_count=132, compute_capability="9.0", memory=memory)
    from_device = _overheads(harness.prediction_device(info))
    # The driver's reservation is a reading of the driver at hand: the profile's capture says
    # 614 MiB (driver 590.48.01), the card of 2026-12-04 said 616 MiB (580.159.04).
    assert from_profile.pop("overhead.driver_reserved") == 614 * MiB
    assert from_device.pop("overhead.driver_reserved") == 616 * MiB
    assert from_profile == from_device
    assert from_profile["overhead.cublas_workspace"] == 33_554_432
    assert abs(from_profile["overhead.cuda_context"] - 548_995_072) <= 1024


def test_cpu_run_has_no_gpu_overheads():
    assert _overheads(Device.host(64 << 30)) == {}
