"""The bundled GPU catalog: every profile validates, and its numbers agree with outside readings.

The expected values below are typed in from the cited captures and datasheets, not read from
the YAML files, so a slip in a data file (a wrong MiB count, GB written for GiB) fails here.
"""

from __future__ import annotations

import re

import pytest
import yaml

from fitcalc.edges import catalog
from fitcalc.core.spec import GpuProfile

MiB = 1 << 20
GiB = 1 << 30

ALL = catalog.load_all_gpus()
BY_ID = {g.id: g for g in ALL}


def test_catalog_has_at_least_30_profiles_and_file_names_are_ids():
    assert len(ALL) >= 30
    for gid in catalog.gpu_ids():
        assert BY_ID[gid].id == gid


@pytest.mark.parametrize("gid", sorted(BY_ID))
def test_every_profile_validates_again_from_its_raw_yaml(gid):
    path = catalog.data_dir("gpu_profiles") / f"{gid}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    g = GpuProfile.model_validate(data)
    assert g.schema_version == 1
    assert g.sources, "every profile cites sources"


# nvidia-smi memory.total in MiB, with the capture each figure comes from.
NVIDIA_REPORTED_MIB = [
    ("rtx-3060-12gb", 12288),   # geerlingguy/raspberry-pi-pcie-devices#790
    ("rtx-3090", 24576),        # noonghunna/club-3090#1128
    ("rtx-4060-ti-16gb", 16380),  # several nvidia-smi captures (repositories unnamed by the index)
    ("rtx-4070-ti-super", 16376),  # several nvidia-smi captures
    ("rtx-4080", 16376),        # several nvidia-smi captures
    ("rtx-4080-super", 16376),  # utkuozdemir/nvidia_gpu_exporter captures, driver 595.71.05
    ("rtx-4090", 24564),        # RLinf/RLinf#255
    ("rtx-5060-ti-16gb", 16311),  # akash-network/provider-configs#88
    ("rtx-5070-ti", 16303),     # several nvidia-smi captures
    ("rtx-5080", 16303),        # several nvidia-smi captures
    ("rtx-5090", 32607),        # ai-dynamo/aiconfigurator rtx_5090.yaml; noonghunna/club-3090#1261
    ("t4", 15360),              # modal-labs/modal-client#2797
    ("l4", 23034),              # modal-labs/modal-client#2797
    ("a10g", 23028),            # modal-labs/modal-client#2797 ("A10")
    ("l40s", 46068),            # modal-labs/modal-client#2797; exporter L40S capture
    ("a100-40gb", 40960),       # modal-labs/modal-client#2797; bottlerocket-core-kit#834
    ("a100-80gb", 81920),       # modal-labs/modal-client#2797
    ("h100-pcie", 81559),       # several nvidia-smi captures
    ("h100-sxm", 81559),        # exporter H100 80GB HBM3 capture; NVIDIA/nccl#1264
    ("h200", 143771),           # exporter H200 capture
    ("gh200-96gb", 97871),      # several nvidia-smi captures
    ("b200", 183359),           # NVIDIA/TensorRT-LLM#10278
    ("gb200", 189471),          # aiconfigurator gb200.yaml "189471MiB reported by nvidia-smi"
]


@pytest.mark.parametrize("gid,mib", NVIDIA_REPORTED_MIB, ids=[r[0] for r in NVIDIA_REPORTED_MIB])
def test_nvidia_memory_bytes_is_reported_mib_times_2_20(gid, mib):
    g = BY_ID[gid]
    assert g.vendor == "nvidia"
    assert g.memory_bytes == mib * 2**20
    assert f"{mib} MiB" in g.memory_reported


def test_every_nvidia_profile_is_in_the_mib_table():
    assert {g.id for g in ALL if g.vendor == "nvidia"} == {gid for gid, _ in NVIDIA_REPORTED_MIB}


# Byte totals from other drivers, with their sources.
OTHER_REPORTED_BYTES = [
    ("mi300x", 206_141_652_992),   # rocm-smi, ROCm/legacy-rocm-build#4750 (= 192 GiB exactly)
    ("mi250x", 68_702_699_520),    # KFD size_in_bytes per GCD (= 64 GiB - 16 MiB)
    ("rx-7900-xtx", 24560 * MiB),  # amdgpu VRAM size, ilya-zlobintsev/LACT#533
    ("arc-a770-16gb", 16_225_243_136),  # SYCL global mem size, ggml-org/llama.cpp#6036
    ("m2-ultra-192gb", 192 * GiB),  # hw.memsize; Apple GB labels are binary (Rapid-MLX#2512: 32 GB = 34359738368)
    ("m3-max-128gb", 128 * GiB),
    ("m4-max-128gb", 128 * GiB),    # ds4#201: "Metal device Apple M4 Max, 128.00 GiB RAM"
    ("m4-pro-48gb", 48 * GiB),
]


@pytest.mark.parametrize("gid,nbytes", OTHER_REPORTED_BYTES, ids=[r[0] for r in OTHER_REPORTED_BYTES])
def test_non_nvidia_memory_bytes(gid, nbytes):
    assert BY_ID[gid].memory_bytes == nbytes


# nvidia-smi memory.reserved (MiB) in the utkuozdemir/nvidia_gpu_exporter captures.
RESERVED_MIB = [("rtx-4080-super", 434), ("h100-sxm", 479), ("h200", 614), ("l40s", 609)]


@pytest.mark.parametrize("gid,mib", RESERVED_MIB, ids=[r[0] for r in RESERVED_MIB])
def test_reserved_bytes_from_captures(gid, mib):
    assert BY_ID[gid].reserved_bytes == mib * MiB


def test_usable_bytes_where_measured():
    # deviceQuery on an A100-SXM4-40GB: "40339 MBytes (42298834944 bytes)" (bottlerocket#3873)
    assert BY_ID["a100-40gb"].usable_bytes == 42_298_834_944
    for g in ALL:
        if g.usable_bytes is not None:
            assert g.usable_bytes <= g.memory_bytes


def test_labels_are_not_the_driver_totals():
    # The reason the catalog stores readings: an "80GB" H100 reports 79.65 GiB, a "141GB" H200 140.40 GiB.
    assert BY_ID["h100-sxm"].memory_bytes < 80 * GiB
    assert BY_ID["h200"].memory_bytes < 141 * GiB
    assert BY_ID["a100-80gb"].memory_bytes == 80 * GiB  # exactly 81920 MiB


# Peak memory bandwidth (bytes/s) from vendor datasheets.
BANDWIDTH = [
    ("rtx-4090", 1008e9), ("rtx-5090", 1792e9), ("rtx-3090", 936e9), ("t4", 320e9), ("l4", 300e9),
    ("l40s", 864e9), ("a100-40gb", 1555e9), ("a100-80gb", 2039e9), ("h100-pcie", 2000e9),
    ("h100-sxm", 3350e9), ("h200", 4800e9), ("b200", 8000e9), ("mi300x", 5300e9), ("mi325x", 6000e9),
    ("m2-ultra-192gb", 800e9), ("m4-max-128gb", 546e9), ("m4-pro-48gb", 273e9),
]


@pytest.mark.parametrize("gid,bw", BANDWIDTH, ids=[r[0] for r in BANDWIDTH])
def test_bandwidth(gid, bw):
    assert BY_ID[gid].bandwidth_bytes_per_s == int(bw)


# Dense BF16 tensor TFLOPS as published (no sparsity), relative tolerance 1%.
BF16_DENSE = [
    ("rtx-4090", 165.2),   # NVIDIA Ada whitepaper, FP32 accumulate
    ("rtx-5090", 209.5),   # NVIDIA RTX Blackwell whitepaper, FP32 accumulate
    ("a100-80gb", 312), ("h100-sxm", 989), ("h100-pcie", 756), ("h200", 989),  # NVIDIA datasheets
    ("b200", 2250), ("gb200", 2500),  # DGX B200 datasheet; GB200 NVL72 per GPU
    ("l40s", 362), ("l4", 121), ("mi300x", 1307.4),  # NVIDIA / AMD spec pages
]


@pytest.mark.parametrize("gid,tf", BF16_DENSE, ids=[r[0] for r in BF16_DENSE])
def test_bf16_dense_rate(gid, tf):
    assert BY_ID[gid].dense_tflops["bf16"] == pytest.approx(tf, rel=0.01)


def test_fp8_is_twice_bf16_on_datacenter_hopper_and_blackwell():
    for gid in ("h100-sxm", "h100-pcie", "h200", "gh200-96gb", "b200", "gb200", "l40s", "l4"):
        t = BY_ID[gid].dense_tflops
        # 2% rather than exact: NVIDIA's own L40S pair is 362.05 and 733.
        assert t["fp8"] == pytest.approx(2 * t["bf16"], rel=0.02), gid


def test_no_tensor_rate_is_stated_where_the_facts_say_unknown():
    assert "bf16" not in BY_ID["t4"].dense_tflops  # Turing has no BF16
    assert BY_ID["arc-a770-16gb"].dense_tflops == {}  # XMX throughput unknown
    for gid in ("m2-ultra-192gb", "m3-max-128gb", "m4-max-128gb", "m4-pro-48gb"):
        assert set(BY_ID[gid].dense_tflops) == {"fp32"}  # shader rate only, no matrix units


def _cc(g: GpuProfile) -> tuple[int, int] | None:
    if g.vendor != "nvidia" or not g.compute_capability:
        return None
    major, minor = g.compute_capability.split(".")
    return int(major), int(minor)


@pytest.mark.parametrize("g", [g for g in ALL if g.vendor == "nvidia"], ids=lambda g: g.id)
def test_nvidia_native_formats_follow_compute_capability(g):
    cc = _cc(g)
    assert cc is not None
    # FP8 GEMM from CC 8.9 (Ada, Hopper, Blackwell); FP4 only on Blackwell (10.x, 12.x).
    assert ("fp8" in g.native_formats) == (cc >= (8, 9))
    blackwell = cc[0] in (10, 12)
    assert ("mxfp4" in g.native_formats) == blackwell
    assert ("nvfp4" in g.native_formats) == blackwell
    assert ("bf16" in g.native_formats) == (cc >= (8, 0))


def test_apple_profiles_are_unified_with_a_working_set():
    apple = [g for g in ALL if g.vendor == "apple"]
    assert len(apple) >= 4
    for g in apple:
        assert g.unified_memory
        assert g.gpu_working_set_bytes is not None
        assert g.planning_budget_bytes == g.gpu_working_set_bytes < g.memory_bytes
    # Rapid-MLX#183's table: M2 Ultra 192 GB -> 144, M3 Max 128 GB -> 96 (recommendedMaxWorkingSetSize)
    assert BY_ID["m2-ultra-192gb"].gpu_working_set_bytes == 144 * GiB
    assert BY_ID["m3-max-128gb"].gpu_working_set_bytes == 96 * GiB


def test_discrete_gpus_plan_against_the_driver_total():
    for g in ALL:
        if not g.unified_memory:
            assert g.planning_budget_bytes == g.memory_bytes
            assert g.gpu_working_set_bytes is None


def test_multi_device_packages():
    assert BY_ID["mi250x"].devices_per_package == 2  # two GCDs, each its own device
    assert BY_ID["gb200"].devices_per_package == 2   # two Blackwell GPUs per superchip
    assert BY_ID["h100-sxm"].devices_per_package == 1


# ---- sources cover every number --------------------------------------------------------------

_NUMERIC = ("memory_bytes", "reserved_bytes", "usable_bytes", "gpu_working_set_bytes", "bandwidth_bytes_per_s",
            "dense_tflops", "sm_count", "power_w", "pcie_gen", "compute_capability", "native_formats")


@pytest.mark.parametrize("g", ALL, ids=lambda g: g.id)
def test_sources_cover_every_number(g):
    cited = {f.split(".", 1)[0] for s in g.sources for f in s.fields}
    for field in _NUMERIC:
        value = getattr(g, field)
        if value in (None, {}, []):
            continue
        assert field in cited, f"{g.id}: {field} has no source"
    if g.interconnect is not None and g.interconnect.bandwidth_bytes_per_s is not None:
        assert "interconnect" in cited, f"{g.id}: interconnect bandwidth has no source"


@pytest.mark.parametrize("g", [g for g in ALL if "not captured" in g.memory_reported], ids=lambda g: g.id)
def test_totals_that_are_not_readings_say_so(g):
    # MI325X (no rocm-smi total found) and Arc Pro B60 (no driver reading found).
    assert re.search(r"derived|no driver reading", g.notes or "", re.I), g.id


def test_the_totals_that_are_not_readings_are_the_known_gaps():
    assert {g.id for g in ALL if "not captured" in g.memory_reported} == {"mi325x", "arc-pro-b60"}


# ---- names ---------------------------------------------------------------------------------

ALIASES = [
    ("4090", "rtx-4090"), ("rtx 4090", "rtx-4090"), ("geforce rtx 4090", "rtx-4090"),
    ("NVIDIA GeForce RTX 4090", "rtx-4090"), ("RTX-4090", "rtx-4090"), ("rtx4090", "rtx-4090"),
    ("h100", "h100-sxm"), ("H100 SXM", "h100-sxm"), ("h100-sxm5", "h100-sxm"), ("h100 pcie", "h100-pcie"),
    ("a100 80gb", "a100-80gb"), ("A100-SXM4-40GB", "a100-40gb"), ("h200", "h200"), ("gh200", "gh200-96gb"),
    ("b200", "b200"), ("gb200", "gb200"), ("l40s", "l40s"), ("tesla t4", "t4"), ("a10g", "a10g"),
    ("3090", "rtx-3090"), ("4080", "rtx-4080"), ("4080 super", "rtx-4080-super"), ("5090", "rtx-5090"),
    ("5070 ti", "rtx-5070-ti"), ("4070 ti super", "rtx-4070-ti-super"), ("4060 ti 16gb", "rtx-4060-ti-16gb"),
    ("3060 12gb", "rtx-3060-12gb"), ("5060 ti 16gb", "rtx-5060-ti-16gb"),
    ("mi300x", "mi300x"), ("AMD Instinct MI325X", "mi325x"), ("7900 xtx", "rx-7900-xtx"),
    ("m4 max 128gb", "m4-max-128gb"), ("m2 ultra 192gb", "m2-ultra-192gb"), ("m4 pro 48gb", "m4-pro-48gb"),
    ("arc a770", "arc-a770-16gb"), ("arc pro b60", "arc-pro-b60"),
]


@pytest.mark.parametrize("typed,gid", ALIASES, ids=[a[0] for a in ALIASES])
def test_aliases_resolve(typed, gid):
    assert catalog.resolve_gpu_id(typed) == gid
    assert catalog.load_gpu(typed).id == gid


@pytest.mark.parametrize("typed,variants", [
    ("a100", {"a100-40gb", "a100-80gb"}),     # two memory sizes: the user must say which
    ("4060 ti", {"rtx-4060-ti-16gb"}),        # the 8 GB card shares the name
    ("3060", {"rtx-3060-12gb"}),
    ("m4 max", {"m4-max-128gb"}),             # M4 Max is sold with 36 to 128 GB
])
def test_names_shared_by_memory_variants_do_not_resolve_but_are_suggested(typed, variants):
    assert catalog.resolve_gpu_id(typed) is None
    assert variants <= set(catalog.close_gpu_ids(typed))


def test_no_two_profiles_claim_the_same_name():
    assert catalog.gpu_name_collisions() == {}


@pytest.mark.parametrize("g", ALL, ids=lambda g: g.id)
def test_alias_lines_read_as_text_match_the_parsed_aliases(g):
    # resolve_gpu_id scans `aliases: [...]` lines as text; a multi-line list would be missed.
    text = (catalog.data_dir("gpu_profiles") / f"{g.id}.yaml").read_text(encoding="utf-8")
    lines = re.findall(r"^aliases:\s*\[(.*)\]\s*$", text, re.M)
    if g.aliases:
        assert len(lines) == 1
        for a in g.aliases:
            assert catalog.resolve_gpu_id(a) == g.id


def test_driver_names_find_their_profiles():
    assert [g.id for g in catalog.gpus_by_driver_name("NVIDIA H100 80GB HBM3")] == ["h100-sxm"]
    assert [g.id for g in catalog.gpus_by_driver_name("NVIDIA GeForce RTX 4090")] == ["rtx-4090"]
    assert [g.id for g in catalog.gpus_by_driver_name("Apple M4 Max")] == ["m4-max-128gb"]
    assert catalog.gpus_by_driver_name("NVIDIA GeForce GTX 1080") == []


def test_unknown_gpu_error_names_close_matches():
    from fitcalc.core.errors import UnknownIdError

    with pytest.raises(UnknownIdError) as e:
        catalog.load_gpu("rtx 4009")
    assert "rtx-4090" in str(e.value)
    assert "fitcalc gpus" in (e.value.hint or "")
