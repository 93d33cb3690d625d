"""Local hardware and the --gpu option. EDGE. (Placeholder until the GPU-catalog branch lands.)"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from fitcalc.spec import GpuProfile


class GpuTarget(BaseModel):
    model_config = ConfigDict(frozen=True)

    profile: GpuProfile | None
    count: int
    budget_bytes: int
    label: str


def parse_gpu_option(text: str) -> GpuTarget:
    from fitcalc import catalog
    from fitcalc.errors import InputError
    from fitcalc.units import parse_bytes

    name, count = text, 1
    m = re.match(r"^(.*?):(\d+)$", text.strip())
    if m:
        name, count = m.group(1), int(m.group(2))
    if count <= 0:
        raise InputError(f"GPU count must be positive in {text!r}", hint="e.g. h100-sxm:8")
    if re.match(r"^\s*[0-9.]+\s*[A-Za-z]*\s*$", name) and catalog.resolve_gpu_id(name) is None:
        b = parse_bytes(name)
        return GpuTarget(profile=None, count=count, budget_bytes=b, label=f"{name} budget")
    p = catalog.load_gpu(name)
    return GpuTarget(profile=p, count=count, budget_bytes=p.memory_bytes, label=p.display_name)


def detect_gpus():
    return [], "detection not available yet"
