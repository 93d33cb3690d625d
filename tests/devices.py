"""GPUs written out from published numbers, independent of the GPU catalog (gpu_profiles/), so plan
and speed tests do not depend on the data they would be checking. Memory is what the driver
reports (nvidia-smi memory.total MiB); bandwidth and dense tensor rates as published.

When the catalog lands, each can become ``Device.from_profile(load_gpu(<catalog id>))``.
"""

from fitcalc.core.spec import Device, Host
from fitcalc.core.units import GiB, MiB

GB_S = 10**9


def _nvidia(label: str, mib: int, bw_gb_s: int, bf16: float, fp8: float | None, family: str, sms: int,
            pcie: int, reserved_mib: int | None = None) -> Device:
    rates = {"bf16": bf16, "fp16": bf16} | ({"fp8": fp8} if fp8 else {})
    return Device(label=label, memory_bytes=mib * MiB, reserved_bytes=reserved_mib * MiB if reserved_mib else None,
                  native_formats=["fp8"] if fp8 else [], family=family, vendor="nvidia", sm_count=sms,
                  bandwidth_bytes_per_s=bw_gb_s * GB_S, dense_tflops=rates, pcie_gen=pcie)


def rtx_4090() -> Device:
    # 24564 MiB (nvidia-smi, RLinf/RLinf#255); 1008 GB/s; BF16 165.2, FP8 330.3 dense TFLOPS
    # (hmc-tech RTX 4090 table); 128 SMs. Catalog id later: rtx-4090.
    return _nvidia("RTX 4090", 24564, 1008, 165.2, 330.3, "ada", 128, 4)


def rtx_4060_ti_16gb() -> Device:
    # 16380 MiB; 288 GB/s; BF16 44.1, FP8 88.2 (derived, facts sec. 1.1); 34 SMs (llama.cpp PR #23604).
    # Catalog id later: rtx-4060-ti-16gb.
    return _nvidia("RTX 4060 Ti 16GB", 16380, 288, 44.1, 88.2, "ada", 34, 4)


def h100_sxm() -> Device:
    # 81559 MiB total, 479 MiB reserved (nvidia_gpu_exporter captures); 3350 GB/s; BF16 989, FP8 1979
    # (ml-engineering accelerator table); 132 SMs. Catalog id later: h100-sxm.
    return _nvidia("H100 SXM", 81559, 3350, 989.0, 1979.0, "hopper", 132, 5, reserved_mib=479)


def gh200_96gb() -> Device:
    # The 96 GB Hopper: 97871 MiB in nvidia-smi, 4000 GB/s, H100 rates (facts sec. 1.1). Catalog id later: gh200-96gb.
    return _nvidia("GH200 96GB", 97871, 4000, 989.0, 1979.0, "hopper", 132, 5)


def h200() -> Device:
    # 143771 MiB total, 614 MiB reserved (nvidia_gpu_exporter); 4800 GB/s; BF16 989, FP8 1979. Catalog id later: h200.
    return _nvidia("H200", 143771, 4800, 989.0, 1979.0, "hopper", 132, 5, reserved_mib=614)


def budget(gib: float) -> Device:
    return Device.from_budget(int(gib * GiB))


def host(ram_gib: float, bandwidth_gb_s: float | None = None) -> Host:
    return Host(ram_bytes=int(ram_gib * GiB),
                ram_bandwidth_bytes_per_s=int(bandwidth_gb_s * GB_S) if bandwidth_gb_s else None)
