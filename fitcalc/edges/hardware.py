"""The hardware a plan runs on: ``--gpu`` values and the GPUs of this machine. EDGE.

Two ways in, one result type (``fitcalc.core.spec.GpuTarget``):

* ``parse_gpu_option("h100-sxm:8")`` reads what a user typed: a catalog id or alias, or a raw
  per-device memory budget (``24GiB``), each optionally followed by ``:COUNT``.
* ``detect_local()`` asks the drivers: NVIDIA through NVML (the ``nvidia-ml-py`` package,
  imported as ``pynvml``), Apple through ``sysctl``, AMD through ``amdsmi`` when it is
  importable, and system RAM through ``psutil``. Each detected GPU is matched to a catalog
  profile by its driver name and memory; otherwise it is reported as a raw budget.

Detection never raises for a missing driver, library or GPU: it returns an empty list and
says why. pynvml, amdsmi and psutil are imported inside the functions that use them, so
importing this module (and starting the CLI) stays cheap.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from fitcalc.edges import catalog
from fitcalc.core.errors import InputError, UnitError, UnknownIdError
from fitcalc.core.spec import MAX_GPU_COUNT, GpuProfile, GpuTarget
from fitcalc.core.units import GiB, MiB, format_bytes, parse_bytes

# ---------------------------------------------------------------------------------------------
# --gpu values
# ---------------------------------------------------------------------------------------------

# A leading number means the user meant a size: "24GiB", "80GB", "24G" (an error with a hint).
_SIZE_LIKE = re.compile(r"^\s*[0-9.][0-9_,.]*\s*[A-Za-z]*\s*$")
_BARE_NUMBER = re.compile(r"^\s*[0-9][0-9_,]*\s*$")

GPU_OPTION_HINT = "write an id or alias (h100-sxm, 4090), optionally :COUNT (h100-sxm:8), or a budget (24GiB, 75GiB:2)"


def parse_gpu_option(text: str) -> GpuTarget:
    """Read one ``--gpu`` value into a ``GpuTarget``.

    Accepted forms:
      ``rtx-4090``, ``4090``, ``"rtx 4090"``   a catalog id or alias (case, spaces, vendor words ignored)
      ``h100-sxm:8``                           the same, with a device count
      ``24GiB``, ``80GB``, ``24576MiB``        a raw per-device budget, strict units (``24G`` is an error)
      ``24GiB:2``                              a raw budget with a count

    The budget planned against (``GpuTarget.budget_bytes``, per device):
      * a catalog profile: ``GpuProfile.planning_budget_bytes``, i.e. the total the driver
        reports (nvidia-smi ``memory.total``, rocm-smi bytes). Part of it is not usable by
        the model: the driver/firmware reservation (``reserved_bytes``, e.g. 479 MiB on an
        H100), the CUDA context of every process (hundreds of MiB) and the engine's own
        reservations. Those are separate, named overhead terms of the estimate, not cuts to
        this number. Apple/unified memory: the GPU working set (Metal
        ``recommendedMaxWorkingSetSize``), not all of RAM.
      * a raw budget: exactly the bytes given; the same overhead terms still apply.

    Raises ``UnknownIdError`` (with close matches), ``UnitError`` or ``InputError``, each
    with a hint.
    """
    raw = (text or "").strip()
    if not raw:
        raise InputError("empty --gpu value", hint=GPU_OPTION_HINT)
    name, count = _split_count(raw)

    gid = catalog.resolve_gpu_id(name)
    if gid is not None:
        return target_from_profile(catalog.load_gpu(gid), count)

    times = _times_form(name)
    if times is not None:
        raise UnknownIdError("GPU", name, [], suggestions=[times],
                             hint=f"write --gpu {times} for {times.rpartition(':')[2]} devices")
    if _BARE_NUMBER.match(name):
        # "4070" is neither a known GPU nor a size with a unit; say both.
        raise catalog.unknown_gpu_error(
            name, hint="a memory budget needs a unit (24GiB = 24x2^30 bytes, 24GB = 24x10^9); "
                       "`fitcalc gpus` lists the known GPUs")
    if _SIZE_LIKE.match(name):
        _refuse_card_label(name, count)
        try:
            budget = parse_bytes(name)  # strict: "24G" raises UnitError with a hint
        except UnitError:
            # "4060ti" starts like a size but is part of a card's id (rtx-4060-ti-16gb)
            key = catalog.gpu_name_key(name)
            close = [g for g in catalog.close_gpu_ids(name) if len(key) >= 4 and key in catalog.gpu_name_key(g)]
            if not close:
                raise
            raise catalog.unknown_gpu_error(name, hint=f"write --gpu {close[0]}; `fitcalc gpus` lists them all") \
                from None
        if budget < MiB:
            raise UnitError(f"--gpu budget {name!r} is {budget} bytes, less than 1 MiB",
                            hint="a per-device budget such as 24GiB or 80000MB")
        return target_from_budget(budget, count, system="si" if _is_si(name) else "iec")

    close = catalog.close_gpu_ids(name)
    hint = f"write --gpu {close[0]}; `fitcalc gpus` lists them all" if close else None
    raise catalog.unknown_gpu_error(name, hint=hint)


def _times_form(name: str) -> str | None:
    """``4090x2``, ``2x4090``, ``2 × h100``: the ``NAME:COUNT`` that says it, when one side is a
    whole number and the other a known GPU; else None."""
    for i, ch in enumerate(name):
        if ch.lower() not in "x×*":
            continue
        left, right = name[:i].strip(), name[i + 1:].strip()
        for gpu, n in ((left, right), (right, left)):
            if n.isdigit() and int(n) > 0 and gpu and catalog.resolve_gpu_id(gpu):
                return f"{catalog.resolve_gpu_id(gpu)}:{int(n)}"
    return None


# "80GB", "24 gb": how a card's memory is printed on its box. Read as a raw budget it would be
# 80x10^9 bytes (74.51 GiB), which no 80 GB card offers (an H100 reports 79.65 GiB).
# ("24Gb" is bits: units.parse_bytes refuses it with its own hint.)
_CARD_LABEL = re.compile(r"^\s*([0-9]+)\s*(?:GB|gb)\s*$")


def _refuse_card_label(name: str, count: int) -> None:
    """Raise when ``name`` is a whole number of GB that some catalog card is sold with, naming
    those cards and the spellings of a raw budget."""
    m = _CARD_LABEL.match(name)
    if not m:
        return
    gb = int(m.group(1))
    cards = [g.id for g in catalog.load_all_gpus()
             if re.match(rf"^\s*{gb}\s*GB\b", g.marketed_memory or "", re.IGNORECASE)]
    if not cards:
        return
    suffix = f":{count}" if count > 1 else ""
    raise InputError(f"--gpu {name}{suffix} is a card's label; cards sold with {gb} GB: {', '.join(cards)}",
                     hint=f"write --gpu {cards[0]}{suffix} for the card, or a raw budget as --gpu {gb * 1000}MB{suffix} "
                          f"({gb}x10^9 bytes) or --gpu {gb}GiB{suffix} ({gb}x2^30 bytes)")


def target_from_profile(profile: GpuProfile, count: int = 1) -> GpuTarget:
    label = profile.display_name if count == 1 else f"{count} x {profile.display_name}"
    return GpuTarget(profile=profile, count=count, budget_bytes=profile.planning_budget_bytes,
                     label=label, budget_basis=profile.planning_budget_basis)


def target_from_budget(budget_bytes: int, count: int = 1, system: Literal["iec", "si"] = "iec",
                       basis: str = "given on the command line") -> GpuTarget:
    shown = format_bytes(budget_bytes, system)
    label = f"{shown} device" if count == 1 else f"{count} x {shown} devices"
    return GpuTarget(profile=None, count=count, budget_bytes=budget_bytes, label=label, budget_basis=basis)


def _split_count(raw: str) -> tuple[str, int]:
    if ":" not in raw:
        return raw, 1
    name, _, count_text = raw.rpartition(":")
    name, count_text = name.strip(), count_text.strip()
    if not name:
        raise InputError(f"--gpu {raw!r} has a count but no GPU", hint=GPU_OPTION_HINT)
    if not count_text.isdigit():
        raise InputError(f"--gpu {raw!r}: the part after ':' must be a whole number of devices",
                         hint=f"e.g. {name}:8")
    count = int(count_text)
    if count < 1:
        raise InputError(f"--gpu {raw!r}: the device count must be at least 1", hint=f"e.g. {name}:1")
    if count > MAX_GPU_COUNT:
        raise InputError(f"--gpu {raw!r}: {count:,} devices is over the limit of {MAX_GPU_COUNT:,} per configuration",
                         hint=f"e.g. {name}:8 (docs/cli.md, Limits)")
    return name, count


def _is_si(size_text: str) -> bool:
    unit = re.sub(r"[^A-Za-z]", "", size_text)
    return bool(unit) and "i" not in unit.lower()


# ---------------------------------------------------------------------------------------------
# Local detection: result models
# ---------------------------------------------------------------------------------------------

Backend = Literal["nvml", "sysctl", "amdsmi"]

# A detected GPU matches a catalog profile when the driver name matches and the reported
# total is within this fraction of the profile's. Wide enough for small differences between
# driver versions; narrow enough that memory variants sold under one name (RTX 4060 Ti 8 vs
# 16 GB, RTX 3060 8 vs 12 GB) and ECC on/off on GDDR cards (about 6%) do not match each other.
MATCH_TOLERANCE = 0.02


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class DetectedGpu(_Frozen):
    """One GPU as this machine's driver reports it."""

    index: int
    vendor: Literal["nvidia", "amd", "apple"]
    backend: Backend
    name: str  # as the driver reports it: "NVIDIA GeForce RTX 4090", "Apple M4 Max"
    memory_total_bytes: int  # NVML memory total (= nvidia-smi memory.total); Apple: hw.memsize
    memory_free_bytes: int | None = None
    memory_reserved_bytes: int | None = None  # NVML v2 "reserved", when the driver gives it
    driver_version: str | None = None
    compute_capability: str | None = None  # "8.9"; gfx target on AMD
    unified_memory: bool = False
    gpu_working_set_bytes: int | None = None  # Apple: the GPU's share of RAM
    working_set_basis: str | None = None
    matched_profile_id: str | None = None
    match_note: str
    budget_bytes: int  # what a plan would use for this device
    budget_basis: str


class SystemMemory(_Frozen):
    total_bytes: int
    available_bytes: int | None = None
    source: str = "psutil.virtual_memory"


class LocalHardware(_Frozen):
    """The result of ``detect_local``: GPUs found, system RAM, and why anything is missing."""

    gpus: list[DetectedGpu]
    system_memory: SystemMemory | None
    notes: list[str]  # one line per backend that found nothing, and other caveats


# ---------------------------------------------------------------------------------------------
# Matching detected devices to catalog profiles
# ---------------------------------------------------------------------------------------------


def match_profile(name: str, memory_bytes: int) -> tuple[GpuProfile | None, str]:
    """The catalog profile for a driver-reported name and total, and a one-line note why.

    A profile matches when one of its ``driver_names`` (or its id/aliases) equals ``name``
    after ``catalog.gpu_name_key`` and ``memory_bytes`` is within ``MATCH_TOLERANCE`` of the
    profile's ``memory_bytes``.
    """
    candidates = catalog.gpus_by_driver_name(name)
    if not candidates:
        gid = catalog.resolve_gpu_id(name)
        candidates = [catalog.load_gpu(gid)] if gid else []
    if not candidates:
        return None, f"no catalog profile is named {name!r}; planned as a raw {_gib(memory_bytes)} budget"
    best = min(candidates, key=lambda g: abs(g.memory_bytes - memory_bytes))
    off = abs(best.memory_bytes - memory_bytes) / best.memory_bytes
    if off <= MATCH_TOLERANCE:
        exact = "same total" if best.memory_bytes == memory_bytes else f"total within {off:.2%}"
        return best, f"matched {best.id} by name and memory ({exact})"
    return None, (f"name matches {best.id} but the total {_gib(memory_bytes)} differs from its "
                  f"{_gib(best.memory_bytes)} by {off:.1%}; planned as a raw budget")


def target_from_detected(gpu: DetectedGpu) -> GpuTarget:
    """A ``GpuTarget`` for one detected device (its profile when matched, else its own total)."""
    if gpu.matched_profile_id is not None:
        t = target_from_profile(catalog.load_gpu(gpu.matched_profile_id))
        if gpu.budget_bytes != t.budget_bytes:  # e.g. an Apple wired-limit override
            return t.model_copy(update={"budget_bytes": gpu.budget_bytes, "budget_basis": gpu.budget_basis})
        return t
    return target_from_budget(gpu.budget_bytes, basis=gpu.budget_basis)


def _gib(n: int) -> str:
    return format_bytes(n, "iec")


# ---------------------------------------------------------------------------------------------
# NVIDIA (NVML)
# ---------------------------------------------------------------------------------------------


def detect_nvidia() -> tuple[list[DetectedGpu], str | None]:
    """NVIDIA GPUs through NVML. Returns (gpus, reason) where reason says why the list is empty."""
    try:
        import pynvml  # nvidia-ml-py
    except Exception as e:  # ImportError, or a broken install
        return [], f"nvidia: NVML bindings not importable ({type(e).__name__}: {e}); install nvidia-ml-py"
    try:
        pynvml.nvmlInit()
    except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return [], f"nvidia: NVML could not start ({_nvml_error(e)}); no NVIDIA driver or GPU here"
    try:
        driver = _text(_call(pynvml, "nvmlSystemGetDriverVersion"))
        count = int(pynvml.nvmlDeviceGetCount())
        gpus = [_nvml_device(pynvml, i, driver) for i in range(count)]
    except Exception as e:
        return [], f"nvidia: NVML query failed ({_nvml_error(e)})"
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    if not gpus:
        return [], "nvidia: NVML started but lists no devices"
    return gpus, None


def _nvml_device(nvml: Any, i: int, driver: str | None) -> DetectedGpu:
    h = nvml.nvmlDeviceGetHandleByIndex(i)
    name = _text(nvml.nvmlDeviceGetName(h)) or f"NVIDIA GPU {i}"
    mem = nvml.nvmlDeviceGetMemoryInfo(h)  # v1: total = nvidia-smi memory.total
    total, free = int(mem.total), int(mem.free)
    reserved = None
    v2 = getattr(nvml, "nvmlMemory_v2", None)
    if v2 is not None:
        try:
            reserved = int(nvml.nvmlDeviceGetMemoryInfo(h, version=v2).reserved)
        except Exception:
            reserved = None  # older drivers have no v2 memory info
    cc = None
    try:
        major, minor = nvml.nvmlDeviceGetCudaComputeCapability(h)
        cc = f"{int(major)}.{int(minor)}"
    except Exception:
        cc = None
    profile, note = match_profile(name, total)
    return DetectedGpu(
        index=i, vendor="nvidia", backend="nvml", name=name, memory_total_bytes=total,
        memory_free_bytes=free, memory_reserved_bytes=reserved, driver_version=driver,
        compute_capability=cc, matched_profile_id=profile.id if profile else None, match_note=note,
        budget_bytes=total, budget_basis="driver-reported total (NVML memory total)",
    )


def _call(mod: Any, fn: str) -> Any:
    f = getattr(mod, fn, None)
    if f is None:
        return None
    try:
        return f()
    except Exception:
        return None


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):  # nvidia-ml-py before 11.515 returned bytes
        return v.decode("utf-8", "replace")
    return str(v)


def _nvml_error(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


# ---------------------------------------------------------------------------------------------
# Apple (sysctl)
# ---------------------------------------------------------------------------------------------

SysctlRunner = Callable[[str], "str | None"]


def _sysctl(key: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def apple_working_set_estimate(total_bytes: int) -> int:
    """Metal's default GPU working set for a Mac with ``total_bytes`` of RAM, when it cannot be read.

    ws = total * 2/3   if total <= 36 GiB
         total * 3/4   otherwise
    where total is ``sysctl hw.memsize`` (bytes). Observed as recommendedMaxWorkingSetSize:
    16 GB -> 10922.67 MiB and 32 GB -> 21845.34 MiB (2/3; abetlen/llama-cpp-python#687,
    ollama/ollama#434), 64 GB -> 49152 MiB and 96 GB -> 73728 MiB (3/4; ggml-org/llama.cpp#1870,
    #3213). macOS 26 reports more (107.52 GiB of 128 GiB, antirez/ds4#893), so this is a floor
    there. Checked by tests/test_hardware.py::test_apple_working_set_rule.
    """
    if total_bytes <= 36 * GiB:
        return total_bytes * 2 // 3
    return total_bytes * 3 // 4


def detect_apple(run: SysctlRunner = _sysctl, platform: str | None = None) -> tuple[list[DetectedGpu], str | None]:
    """The Apple-silicon GPU through sysctl: chip name, RAM, and any wired-memory override."""
    platform = platform or sys.platform
    if platform != "darwin":
        return [], None  # not a Mac: nothing to say
    brand = run("machdep.cpu.brand_string")
    memsize = run("hw.memsize")
    if not brand or not brand.startswith("Apple"):
        return [], f"apple: not Apple silicon ({brand or 'no chip name from sysctl'})"
    try:
        total = int(memsize or "")
    except ValueError:
        return [], f"apple: sysctl hw.memsize gave {memsize!r}, not a byte count"
    profile, note = match_profile(brand, total)

    override_mb = _int_or_none(run("iogpu.wired_limit_mb"))
    if override_mb:  # 0 means "macOS default"
        ws, basis = override_mb * MiB, f"iogpu.wired_limit_mb override ({override_mb} MiB)"
    elif profile is not None and profile.gpu_working_set_bytes is not None:
        ws, basis = profile.gpu_working_set_bytes, f"catalog profile {profile.id} (Metal working set)"
    else:
        ws = apple_working_set_estimate(total)
        basis = "estimated Metal working set (2/3 of RAM up to 36 GiB, 3/4 above; macOS 26 allows more)"
    gpu = DetectedGpu(
        index=0, vendor="apple", backend="sysctl", name=brand, memory_total_bytes=total,
        unified_memory=True, gpu_working_set_bytes=ws, working_set_basis=basis,
        matched_profile_id=profile.id if profile else None, match_note=note,
        budget_bytes=ws, budget_basis=basis,
    )
    return [gpu], None


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# AMD (amdsmi)
# ---------------------------------------------------------------------------------------------


def detect_amd() -> tuple[list[DetectedGpu], str | None]:
    """AMD GPUs through the ``amdsmi`` Python package (ROCm), when it is importable."""
    try:
        import amdsmi
    except Exception:
        return [], "amd: amdsmi not importable; AMD GPUs are not detected (install ROCm's amdsmi)"
    try:
        amdsmi.amdsmi_init()
    except Exception as e:
        return [], f"amd: amdsmi could not start ({e})"
    gpus: list[DetectedGpu] = []
    try:
        vram = amdsmi.AmdSmiMemoryType.VRAM
        for i, h in enumerate(amdsmi.amdsmi_get_processor_handles()):
            asic = _safe(lambda: amdsmi.amdsmi_get_gpu_asic_info(h)) or {}
            name = str(asic.get("market_name") or f"AMD GPU {i}")
            total = int(amdsmi.amdsmi_get_gpu_memory_total(h, vram))
            used = _safe(lambda: int(amdsmi.amdsmi_get_gpu_memory_usage(h, vram)))
            drv = _safe(lambda: amdsmi.amdsmi_get_gpu_driver_info(h)) or {}
            gfx = asic.get("target_graphics_version")
            profile, note = match_profile(name, total)
            gpus.append(DetectedGpu(
                index=i, vendor="amd", backend="amdsmi", name=name, memory_total_bytes=total,
                memory_free_bytes=total - used if used is not None else None,
                driver_version=str(drv.get("driver_version")) if drv.get("driver_version") else None,
                compute_capability=str(gfx) if gfx else None,
                matched_profile_id=profile.id if profile else None, match_note=note,
                budget_bytes=total, budget_basis="driver-reported total (amdsmi VRAM total)",
            ))
    except Exception as e:
        return [], f"amd: amdsmi query failed ({e})"
    finally:
        try:
            amdsmi.amdsmi_shut_down()
        except Exception:
            pass
    if not gpus:
        return [], "amd: amdsmi lists no GPUs"
    return gpus, None


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------
# System RAM and the whole picture
# ---------------------------------------------------------------------------------------------


def detect_system_memory() -> tuple[SystemMemory | None, str | None]:
    try:
        import psutil
    except Exception:
        return None, "system memory: psutil not importable"
    try:
        vm = psutil.virtual_memory()
    except Exception as e:
        return None, f"system memory: psutil failed ({e})"
    return SystemMemory(total_bytes=int(vm.total), available_bytes=int(vm.available)), None


def detect_local(platform: str | None = None) -> LocalHardware:
    """Every GPU this machine's drivers report, system RAM, and a note for each gap."""
    gpus: list[DetectedGpu] = []
    notes: list[str] = []
    for detect in (detect_nvidia, detect_amd):
        found, reason = detect()
        gpus.extend(found)
        if reason:
            notes.append(reason)
    found, reason = detect_apple(platform=platform)
    gpus.extend(found)
    if reason:
        notes.append(reason)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and any(g.vendor == "nvidia" for g in gpus):
        notes.append(f"CUDA_VISIBLE_DEVICES={visible!r} is set: NVML lists every device, CUDA programs see only those")
    mem, reason = detect_system_memory()
    if reason:
        notes.append(reason)
    if not gpus:
        notes.append("no GPU detected; plan with --gpu ID or a budget such as --gpu 24GiB")
    return LocalHardware(gpus=gpus, system_memory=mem, notes=notes)
