"""What a report holds: one result per scenario, assertion results, notes. CORE.

A ``ScenarioResult`` wraps the ``FitResult`` that ``fitcalc fit`` prints for the same inputs (so a
report and ``fit`` cannot disagree) with the scenario's name and the inputs as the spec wrote them.
``plan`` carries the planning figures `fitcalc plan` computes for the same configuration (decode
tokens/s, prefill time, max batch, GPUs needed). A figure that cannot be estimated is ``None`` with
the reason beside it, and an assertion on it fails ("not available" or "does not fit") rather than
passing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from fitcalc.core.estimate.training import TrainFit, TrainSetup
from fitcalc.core.plan import FitResult

Origin = Literal["matrix", "scenario"]
Status = Literal["pass", "fail", "unavailable"]


SpeedStatus = Literal["estimated", "unavailable", "no fit"]


class PlanFields(BaseModel):
    """What `fitcalc plan` adds to a scenario, for its GPUs without CPU offload (fitcalc.core.report.matrix).

    Speed and the largest batch are for the placement `plan` picks on the scenario's GPUs;
    ``speed_status`` says why there is no speed: ``unavailable`` (the GPU's bandwidth or tensor rate
    is unknown, as for a raw budget) or ``no fit`` (no placement holds the scenario on its GPUs)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    decode_tokens_per_s: float | None = None  # one sequence, at a KV depth of the prompt length
    decode_tokens_per_s_total: float | None = None  # all sequences of the batch
    prefill_s: float | None = None  # one prompt of prompt_tokens tokens
    prompt_tokens: int | None = None  # the prefill length, also the depth decode reads at
    max_batch: int | None = None  # largest batch at the scenario's context on this placement (≤ max_batch_bound)
    max_batch_bound: int | None = None
    gpus_needed: int | None = None  # of this GPU type, whole model on GPUs, at this context and batch
    max_gpus: int | None = None  # the most GPUs searched for gpus_needed (None there: more than this)
    layout: str | None = None  # the placement, in words
    speed_status: SpeedStatus = "unavailable"
    speed_note: str | None = None  # why there is no speed estimate


class ScenarioResult(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    name: str  # unique in a report; the key a baseline is matched on
    origin: Origin
    model: str  # as the spec wrote it (an id, a Hub name, a path)
    gpu: str  # as the spec wrote it, ``ID`` or ``ID:COUNT`` or a budget
    engine_requested: str  # as the spec wrote it ("auto" included)
    recipe_requested: str
    kv_dtype_requested: str
    fit: FitResult
    plan: PlanFields = PlanFields()


class TrainingResult(BaseModel):
    """A training scenario: `fitcalc train`'s answer for one GPU configuration, with the scenario's name."""

    model_config = ConfigDict(frozen=True)

    name: str
    model: str  # as the spec wrote it
    gpu: str  # as the spec wrote it
    display_name: str
    setup: TrainSetup
    recipe: str  # the weights as held
    params_total: int
    params_trainable: int
    fit: TrainFit
    notes: list[str] = []


class AssertionResult(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    scenario: str  # a scenario name, or the check's label for an `any` check over a group
    source: str  # where the assertion was written: "assert", "scenarios[NAME].assert", "checks[2]" or its name
    assertion: str  # must_fit, max_vram, min_context, min_headroom, min_decode_tokens_per_s, where
    status: Status
    expected: int | float | bool | None
    actual: int | float | bool | None
    message: str  # one line with the numbers

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    def line(self) -> str:
        word = {"pass": "PASS", "fail": "FAIL", "unavailable": "N/A "}[self.status]
        return f"{word} {self.scenario}: {self.assertion}: {self.message}"


class Report(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    title: str
    description: str | None
    spec_path: str | None
    scenarios: list[ScenarioResult]
    assertions: list[AssertionResult]
    notes: list[str]  # e.g. combinations left out because an engine does not take a KV dtype
    training: list[TrainingResult] = []  # the spec's training scenarios, after the serving ones

    @property
    def failed(self) -> list[AssertionResult]:
        return [a for a in self.assertions if not a.ok]


__all__ = ["PlanFields", "SpeedStatus", "ScenarioResult", "TrainingResult", "AssertionResult", "Report", "Status", "Origin"]
