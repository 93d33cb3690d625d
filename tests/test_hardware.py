"""`--gpu` values and local detection, with fake driver modules (no GPU needed)."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from fitcalc.edges import hardware
from fitcalc.core.errors import InputError, UnitError, UnknownIdError
from fitcalc.edges.hardware import parse_gpu_option
from tests.nvml_fake import RTX_4090, NVMLError, fake_pynvml

MiB = 1 << 20
GiB = 1 << 30


# ---- parse_gpu_option -----------------------------------------------------------------------

PARSE_OK = [
    # text,            profile id,   count, per-device budget (bytes)
    ("rtx-4090", "rtx-4090", 1, 24564 * MiB),           # nvidia-smi memory.total 24564 MiB
    ("4090", "rtx-4090", 1, 24564 * MiB),
    ("rtx 4090", "rtx-4090", 1, 24564 * MiB),
    ("GeForce RTX 4090:2", "rtx-4090", 2, 24564 * MiB),
    ("h100-sxm:8", "h100-sxm", 8, 81559 * MiB),         # 81559 MiB, not 80 GiB
    ("h100", "h100-sxm", 1, 81559 * MiB),               # "h100" means the SXM part
    ("H100 PCIe : 4", "h100-pcie", 4, 81559 * MiB),
    ("a100-80gb:8", "a100-80gb", 8, 80 * GiB),
    ("mi300x:8", "mi300x", 8, 206_141_652_992),
    ("m4-max-128gb", "m4-max-128gb", 1, 96 * GiB),       # Apple: the GPU working set, not all 128 GiB
    ("24GiB", None, 1, 24 * GiB),
    ("80000MB", None, 1, 80 * 10**9),
    ("75gb", None, 1, 75 * 10**9),                       # lower-case gb is bytes (units.py); no 75 GB card
    ("24576MiB", None, 1, 24 * GiB),
    ("24GiB:2", None, 2, 24 * GiB),
    ("1.5TiB", None, 1, 3 * (1 << 39)),
]


@pytest.mark.parametrize("text,gid,count,budget", PARSE_OK, ids=[r[0] for r in PARSE_OK])
def test_parse_gpu_option(text, gid, count, budget):
    t = parse_gpu_option(text)
    assert (t.profile.id if t.profile else None) == gid
    assert t.count == count
    assert t.budget_bytes == budget
    assert t.total_budget_bytes == budget * count
    assert t.label and t.budget_basis


def test_profile_target_label_and_basis():
    t = parse_gpu_option("h100-sxm:8")
    assert t.label == "8 x NVIDIA H100 SXM5 80GB"
    assert "81559 MiB" in t.budget_basis
    assert parse_gpu_option("h100").label == "NVIDIA H100 SXM5 80GB"


def test_budget_target_label_keeps_the_unit_system_typed():
    assert parse_gpu_option("24GiB:2").label == "2 x 24.00 GiB devices"
    assert parse_gpu_option("80000MB").label == "80.00 GB device"


PARSE_ERRORS = [
    # text,          error,           must appear in message + hint
    ("24G", UnitError, ["24GiB", "24GB"]),               # ambiguous unit
    ("24Gb", UnitError, ["bits", "24GB"]),               # gigabits?
    ("24 bananas", UnitError, ["unknown unit"]),
    ("h100-sxm:0", InputError, ["at least 1"]),
    ("h100-sxm:x", InputError, ["whole number"]),
    (":8", InputError, ["no GPU"]),
    ("", InputError, ["empty"]),
    ("0.5KiB", UnitError, ["less than 1 MiB"]),
    ("h10", UnknownIdError, ["h100-sxm", "h100-pcie"]),  # close matches
    ("rtx 4009", UnknownIdError, ["rtx-4090"]),
    ("a100", UnknownIdError, ["a100-40gb", "a100-80gb"]),  # two sizes: say which
    ("4070", UnknownIdError, ["needs a unit"]),          # bare number: neither id nor size
    ("8xh100", UnknownIdError, ["--gpu h100-sxm:8"]),    # count-first spelling
    ("4090x2", UnknownIdError, ["--gpu rtx-4090:2"]),    # count-last spelling (issue #16)
    ("4060ti", UnknownIdError, ["--gpu rtx-4060-ti-16gb"]),  # starts like a size, names a card
    # a card's label: the 80 GB cards, and both spellings of a raw budget
    ("80GB", InputError, ["a100-80gb, h100-pcie, h100-sxm", "--gpu 80000MB", "--gpu 80GiB"]),
    ("24GB:2", InputError, ["rtx-4090", "--gpu 24000MB:2"]),
    ("gtx 1080", UnknownIdError, ["fitcalc gpus"]),
]


@pytest.mark.parametrize("text,err,needles", PARSE_ERRORS, ids=[r[0] or "empty" for r in PARSE_ERRORS])
def test_parse_gpu_option_errors_have_hints(text, err, needles):
    with pytest.raises(err) as e:
        parse_gpu_option(text)
    line = e.value.one_line()
    assert e.value.hint
    for n in needles:
        assert n in line, line


# ---- NVIDIA through a fake NVML (tests/nvml_fake.py) ------------------------------------------


def test_nvml_rtx_4090_matches_its_profile(monkeypatch):
    fake = fake_pynvml([RTX_4090])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpus, reason = hardware.detect_nvidia()
    assert reason is None
    (g,) = gpus
    assert g.name == "NVIDIA GeForce RTX 4090"
    assert g.memory_total_bytes == 24564 * MiB
    assert g.memory_free_bytes == 23000 * MiB
    assert g.memory_reserved_bytes == 330 * MiB
    assert g.compute_capability == "8.9"
    assert g.driver_version == "580.95.05"
    assert g.matched_profile_id == "rtx-4090"
    assert g.budget_bytes == 24564 * MiB
    assert "same total" in g.match_note
    assert fake._state == {"init": 1, "shutdown": 1}


def test_nvml_old_bindings_bytes_names_and_no_v2(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([RTX_4090], v2=False, bytes_names=True))
    (g,), _ = hardware.detect_nvidia()
    assert g.name == "NVIDIA GeForce RTX 4090" and g.driver_version == "580.95.05"
    assert g.memory_reserved_bytes is None
    assert g.matched_profile_id == "rtx-4090"


def test_nvml_several_devices_and_a_memory_variant(monkeypatch):
    devices = [
        ("NVIDIA H100 80GB HBM3", 81559 * MiB, 81000 * MiB, 479 * MiB, (9, 0)),
        ("NVIDIA GeForce RTX 4060 Ti", 8188 * MiB, 8000 * MiB, 0, (8, 9)),  # the 8 GB card
        ("NVIDIA GeForce GTX 1080", 8192 * MiB, 8000 * MiB, 0, (6, 1)),      # not in the catalog
    ]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(devices))
    gpus, reason = hardware.detect_nvidia()
    assert reason is None
    assert [g.matched_profile_id for g in gpus] == ["h100-sxm", None, None]
    assert "rtx-4060-ti-16gb" in gpus[1].match_note and "differs" in gpus[1].match_note
    assert "no catalog profile" in gpus[2].match_note
    assert gpus[2].budget_bytes == 8192 * MiB  # planned as a raw budget
    assert [g.index for g in gpus] == [0, 1, 2]


def test_no_nvml_bindings_gives_empty_list_and_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    gpus, reason = hardware.detect_nvidia()
    assert gpus == []
    assert "nvidia-ml-py" in reason


def test_no_driver_gives_empty_list_and_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([], init_error="NVML Shared Library Not Found"))
    gpus, reason = hardware.detect_nvidia()
    assert gpus == []
    assert "NVML could not start" in reason and "Shared Library Not Found" in reason


def test_nvml_failure_mid_query_is_reported_not_raised(monkeypatch):
    fake = fake_pynvml([RTX_4090])

    def boom(h):
        raise NVMLError("GPU is lost")

    fake.nvmlDeviceGetMemoryInfo = boom
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpus, reason = hardware.detect_nvidia()
    assert gpus == [] and "GPU is lost" in reason
    assert fake._state["shutdown"] == 1


def test_detect_local_without_any_gpu_never_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    hw = hardware.detect_local(platform="linux")
    assert hw.gpus == []
    text = " ".join(hw.notes)
    assert "nvidia" in text and "amd" in text and "no GPU detected" in text
    assert hw.system_memory is not None and hw.system_memory.total_bytes > 0


def test_detect_local_without_psutil(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([RTX_4090]))
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    monkeypatch.setitem(sys.modules, "psutil", None)
    hw = hardware.detect_local(platform="linux")
    assert [g.matched_profile_id for g in hw.gpus] == ["rtx-4090"]
    assert hw.system_memory is None
    assert any("psutil" in n for n in hw.notes)


def test_detect_local_mentions_cuda_visible_devices(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([RTX_4090]))
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    hw = hardware.detect_local(platform="linux")
    assert any("CUDA_VISIBLE_DEVICES" in n for n in hw.notes)


def test_target_from_detected():
    monkey_gpu = hardware.DetectedGpu(
        index=0, vendor="nvidia", backend="nvml", name="NVIDIA GeForce RTX 4090", memory_total_bytes=24564 * MiB,
        matched_profile_id="rtx-4090", match_note="", budget_bytes=24564 * MiB, budget_basis="x")
    t = hardware.target_from_detected(monkey_gpu)
    assert t.profile is not None and t.profile.id == "rtx-4090" and t.budget_bytes == 24564 * MiB
    raw = monkey_gpu.model_copy(update={"matched_profile_id": None, "budget_bytes": 8 * GiB})
    t = hardware.target_from_detected(raw)
    assert t.profile is None and t.budget_bytes == 8 * GiB


# ---- Apple --------------------------------------------------------------------------------------


def fake_sysctl(values):
    return lambda key: values.get(key)


def test_apple_m4_max_128gb_matches_with_the_catalog_working_set():
    run = fake_sysctl({"machdep.cpu.brand_string": "Apple M4 Max", "hw.memsize": str(128 * GiB),
                       "iogpu.wired_limit_mb": "0"})
    (g,), reason = hardware.detect_apple(run=run, platform="darwin")
    assert reason is None
    assert g.unified_memory and g.vendor == "apple"
    assert g.matched_profile_id == "m4-max-128gb"
    assert g.memory_total_bytes == 137_438_953_472
    assert g.gpu_working_set_bytes == g.budget_bytes == 96 * GiB


def test_apple_wired_limit_override_is_the_budget():
    # ds4#893: with iogpu.wired_limit_mb=114688 Metal reports 112.00 GiB.
    run = fake_sysctl({"machdep.cpu.brand_string": "Apple M4 Max", "hw.memsize": str(128 * GiB),
                       "iogpu.wired_limit_mb": "114688"})
    (g,), _ = hardware.detect_apple(run=run, platform="darwin")
    assert g.budget_bytes == 112 * GiB
    assert "iogpu.wired_limit_mb" in g.budget_basis


def test_apple_configuration_not_in_catalog_uses_the_rule():
    run = fake_sysctl({"machdep.cpu.brand_string": "Apple M4 Max", "hw.memsize": str(64 * GiB)})
    (g,), _ = hardware.detect_apple(run=run, platform="darwin")
    assert g.matched_profile_id is None and "differs" in g.match_note
    assert g.budget_bytes == 48 * GiB  # 3/4 of 64 GiB = 49152 MiB, as llama.cpp#1870 logged


def test_apple_not_a_mac_or_not_apple_silicon():
    assert hardware.detect_apple(run=fake_sysctl({}), platform="linux") == ([], None)
    gpus, reason = hardware.detect_apple(
        run=fake_sysctl({"machdep.cpu.brand_string": "Intel(R) Core(TM) i9-9980HK", "hw.memsize": "34359738368"}),
        platform="darwin")
    assert gpus == [] and "not Apple silicon" in reason
    gpus, reason = hardware.detect_apple(
        run=fake_sysctl({"machdep.cpu.brand_string": "Apple M2", "hw.memsize": "lots"}), platform="darwin")
    assert gpus == [] and "hw.memsize" in reason


# recommendedMaxWorkingSetSize as logged by llama.cpp's Metal backend (MB there means MiB).
WORKING_SET = [
    (16 * GiB, 10922.67),  # abetlen/llama-cpp-python#687 (2/3)
    (32 * GiB, 21845.34),  # ollama/ollama#434 (2/3)
    (64 * GiB, 49152.00),  # ggml-org/llama.cpp#1870 (3/4)
    (96 * GiB, 73728.00),  # ggml-org/llama.cpp#3213 (3/4)
]


@pytest.mark.parametrize("ram,logged_mib", WORKING_SET, ids=[f"{r // GiB}GiB" for r, _ in WORKING_SET])
def test_apple_working_set_rule(ram, logged_mib):
    assert hardware.apple_working_set_estimate(ram) / MiB == pytest.approx(logged_mib, abs=0.01)


# ---- AMD ------------------------------------------------------------------------------------------


def fake_amdsmi(devices):
    m = types.ModuleType("amdsmi")
    m.AmdSmiMemoryType = types.SimpleNamespace(VRAM="vram")
    m.amdsmi_init = lambda: None
    m.amdsmi_shut_down = lambda: None
    m.amdsmi_get_processor_handles = lambda: list(range(len(devices)))
    m.amdsmi_get_gpu_asic_info = lambda h: {"market_name": devices[h][0], "target_graphics_version": devices[h][3]}
    m.amdsmi_get_gpu_memory_total = lambda h, kind: devices[h][1]
    m.amdsmi_get_gpu_memory_usage = lambda h, kind: devices[h][2]
    m.amdsmi_get_gpu_driver_info = lambda h: {"driver_version": "6.10.5"}
    return m


def test_amd_mi300x_matches(monkeypatch):
    # rocm-smi VRAM Total Memory 206141652992 B (ROCm/legacy-rocm-build#4750)
    monkeypatch.setitem(sys.modules, "amdsmi", fake_amdsmi([("AMD Instinct MI300X", 206141652992, 297771008, "gfx942")]))
    (g,), reason = hardware.detect_amd()
    assert reason is None
    assert g.matched_profile_id == "mi300x"
    assert g.memory_free_bytes == 206141652992 - 297771008
    assert g.compute_capability == "gfx942" and g.driver_version == "6.10.5"


def test_no_amdsmi(monkeypatch):
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    assert hardware.detect_amd()[0] == []


# ---- import cost ----------------------------------------------------------------------------------


def test_importing_hardware_loads_no_driver_library():
    code = ("import sys, fitcalc.edges.hardware\n"
            "print(','.join(m for m in ('pynvml', 'psutil', 'amdsmi', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
