"""A stand-in for the nvidia-ml-py module (``pynvml``), for detection tests without a GPU.

Install it with ``monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([...]))``.
"""

from __future__ import annotations

import types

MiB = 1 << 20


class NVMLError(Exception):
    pass


def fake_pynvml(devices, driver="580.95.05", init_error=None, v2=True, bytes_names=False, processes=None):
    """A stand-in for nvidia-ml-py with the calls hardware.py and measure/harness.py make.

    devices: list of (name, total_bytes, free_bytes, reserved_bytes, (major, minor)); a test may
    replace ``m._devices[i]`` to move the readings on. As real drivers do, the v1 ``used`` counts
    the reserved memory (total - free) and v2's leaves it out.
    processes: {device index: [(pid, used_bytes), ...]} for nvmlDeviceGetComputeRunningProcesses.
    """
    m = types.ModuleType("pynvml")
    m.NVMLError = NVMLError
    devices = list(devices)
    m._devices = devices
    m._processes = processes if processes is not None else {}
    state = {"init": 0, "shutdown": 0}
    m._state = state

    def nvmlInit():
        if init_error:
            raise NVMLError(init_error)
        state["init"] += 1

    def nvmlShutdown():
        state["shutdown"] += 1

    m.nvmlInit = nvmlInit
    m.nvmlShutdown = nvmlShutdown
    m.nvmlSystemGetDriverVersion = lambda: driver.encode() if bytes_names else driver
    m.nvmlDeviceGetCount = lambda: len(devices)
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetName = lambda h: devices[h][0].encode() if bytes_names else devices[h][0]

    def mem(h, version=None):
        name, total, free, reserved, _ = devices[h]
        if version is not None:
            return types.SimpleNamespace(total=total, free=free, used=total - free - reserved, reserved=reserved)
        return types.SimpleNamespace(total=total, free=free, used=total - free)

    m.nvmlDeviceGetMemoryInfo = mem
    m.nvmlDeviceGetCudaComputeCapability = lambda h: devices[h][4]
    m.nvmlDeviceGetComputeRunningProcesses = lambda h: [
        types.SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in m._processes.get(h, [])]
    if v2:
        m.nvmlMemory_v2 = 0x02000028
    return m


RTX_4090 = ("NVIDIA GeForce RTX 4090", 24564 * MiB, 23000 * MiB, 330 * MiB, (8, 9))
