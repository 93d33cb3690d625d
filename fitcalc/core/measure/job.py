"""What every rank of a distributed `fitcalc verify` is asked to do. CORE: pydantic only.

The process that starts the ranks (``fitcalc.edges.measure.launch``) writes one ``RankJob`` as JSON
into the run folder; each rank (``python -m fitcalc.edges.measure.rank JOB``) reads it, builds its
shard, measures, and writes ``rank-<R>.json`` (a ``RankReport``) next to it. While it runs, each
rank keeps ``rank-<R>.status`` current: the phase, and the collective it is waiting in, if any.
Under torchrun every rank builds the same job from its own command line instead.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fitcalc.core.errors import InputError
from fitcalc.core.spec import ModelSpec, RecipeSpec

FAULT_ENV = "FITCALC_VERIFY_FAULT"  # test hook: "RANK:PHASE:KIND" (docs/verify.md, "Failures")
FAULT_KINDS = ("exit", "kill", "hang", "oom")


class RankJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: ModelSpec  # resolved once by the launcher: every rank builds the same model
    source: str
    recipe: RecipeSpec
    layers: int
    context: int
    batch: int
    chunk: int
    kv_dtype: str | None
    include_embeddings: bool
    seed: int
    tolerances: list[str] = Field(default_factory=list)
    tp: int
    pp: int
    ep: int
    device: Literal["cpu", "cuda"]
    backend: Literal["gloo", "nccl"]
    timeout_s: float
    force: bool = False
    run_dir: str | None = None  # spawn: where status and results go; torchrun: None

    @property
    def world(self) -> int:
        return self.tp * self.pp


def status_path(run_dir: str, rank: int) -> str:
    return f"{run_dir}/rank-{rank}.status"


def report_path(run_dir: str, rank: int) -> str:
    return f"{run_dir}/rank-{rank}.json"


def error_path(run_dir: str, rank: int) -> str:
    return f"{run_dir}/rank-{rank}.error"


def log_path(run_dir: str, rank: int) -> str:
    return f"{run_dir}/rank-{rank}.log"


def parse_fault(text: str | None) -> tuple[int, str, str] | None:
    """``"1:prefill:kill"`` -> (1, "prefill", "kill"): rank 1 kills itself as prefill starts.

    Kinds: exit (os._exit(17)), kill (SIGKILL to itself), hang (sleeps until killed), oom (a
    MemoryError inside the phase, which the harness records as out of memory)."""
    if not text:
        return None
    parts = text.split(":")
    if len(parts) != 3 or not parts[0].isdigit() or parts[2] not in FAULT_KINDS:
        raise InputError(f"{FAULT_ENV}={text!r} is not RANK:PHASE:KIND",
                         hint=f"e.g. 1:prefill:kill; kinds: {', '.join(FAULT_KINDS)}")
    return int(parts[0]), parts[1], parts[2]


__all__ = ["RankJob", "FAULT_ENV", "FAULT_KINDS", "parse_fault", "status_path", "report_path", "error_path",
           "log_path"]
