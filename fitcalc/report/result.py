"""What a report holds: one result per scenario, assertion results, notes. CORE.

A ``ScenarioResult`` wraps the ``FitResult`` that ``fitcalc fit`` prints for the same inputs (so a
report and ``fit`` cannot disagree) with the scenario's name and the inputs as the spec wrote them.
``plan`` carries the planning figures (decode tokens/s, max batch, GPUs needed): each is ``None``
until the estimate that produces it exists, and an assertion on a ``None`` figure reports
"not available" and fails, rather than passing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from fitcalc.plan import FitResult

Origin = Literal["matrix", "scenario"]
Status = Literal["pass", "fail", "unavailable"]


class PlanFields(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    decode_tokens_per_s: float | None = None
    max_batch: int | None = None
    gpus_needed: int | None = None


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

    @property
    def failed(self) -> list[AssertionResult]:
        return [a for a in self.assertions if not a.ok]


__all__ = ["PlanFields", "ScenarioResult", "AssertionResult", "Report", "Status", "Origin"]
