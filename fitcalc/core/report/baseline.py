"""What grew or shrank since a previous JSON report (``fitcalc check --baseline OLD.json``). CORE.

Scenarios are matched by name (a matrix row's name spells out every input, so the same row of
the same spec has the same name). For each matched scenario the required bytes per GPU, every term
by id, the largest context that fits and the verdict are compared; scenarios only in one of the
two are listed as new or gone. Nothing here fails a check: it is shown so a reviewer sees that a
model revision got bigger before the gate trips.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from fitcalc.core.errors import InputError
from fitcalc.core.report.result import ScenarioResult
from fitcalc.core.units import format_bytes


class TermDelta(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    old_bytes: int
    new_bytes: int


class ScenarioDelta(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    scenario: str
    old_required_bytes: int
    new_required_bytes: int
    old_max_context: int | None
    new_max_context: int | None
    old_verdict: str
    new_verdict: str
    terms: list[TermDelta]  # only the terms whose bytes changed (0 on the side that lacks the term)

    @property
    def delta_bytes(self) -> int:
        return self.new_required_bytes - self.old_required_bytes


class BaselineDiff(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    changed: list[ScenarioDelta]
    unchanged: int
    new: list[str]
    gone: list[str]

    @property
    def grew(self) -> list[ScenarioDelta]:
        return [d for d in self.changed if d.delta_bytes > 0]

    @property
    def shrank(self) -> list[ScenarioDelta]:
        return [d for d in self.changed if d.delta_bytes < 0]


def _old_scenarios(doc: object) -> dict[str, dict]:
    if not isinstance(doc, dict) or not isinstance(doc.get("scenarios"), list):
        raise InputError("the baseline is not a fitcalc JSON report (no 'scenarios' list)",
                         hint="write one with `fitcalc report SPEC.yaml -o OLD.json`")
    out: dict[str, dict] = {}
    for i, s in enumerate(doc["scenarios"]):
        if not (isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("required_bytes"), int)):
            raise InputError(f"the baseline's scenarios[{i}] has no name or required_bytes",
                             hint="write the baseline with `fitcalc report SPEC.yaml -o OLD.json`")
        out[s["name"]] = s
    return out


def compare(old_doc: object, results: list[ScenarioResult]) -> BaselineDiff:
    old = _old_scenarios(old_doc)
    changed: list[ScenarioDelta] = []
    unchanged = 0
    new: list[str] = []
    for r in results:
        o = old.get(r.name)
        if o is None:
            new.append(r.name)
            continue
        f = r.fit
        old_terms = {t["id"]: int(t["bytes"]) for t in o.get("terms", []) if isinstance(t, dict) and "id" in t}
        new_terms = {t.id: t.bytes for t in f.terms}
        ids = list(new_terms) + [i for i in old_terms if i not in new_terms]
        terms = [TermDelta(id=i, old_bytes=old_terms.get(i, 0), new_bytes=new_terms.get(i, 0)) for i in ids
                 if old_terms.get(i, 0) != new_terms.get(i, 0)]
        d = ScenarioDelta(scenario=r.name, old_required_bytes=o["required_bytes"], new_required_bytes=f.required_bytes,
                          old_max_context=o.get("max_context"), new_max_context=f.max_context,
                          old_verdict=str(o.get("verdict", "")), new_verdict=f.verdict, terms=terms)
        if (d.delta_bytes or terms or d.old_max_context != d.new_max_context or d.old_verdict != d.new_verdict):
            changed.append(d)
        else:
            unchanged += 1
    names = {r.name for r in results}
    gone = [n for n in old if n not in names]
    return BaselineDiff(changed=changed, unchanged=unchanged, new=new, gone=gone)


def _signed(n: int) -> str:
    return ("+" if n > 0 else "") + format_bytes(n)


def delta_line(d: ScenarioDelta) -> str:
    word = "grew  " if d.delta_bytes > 0 else "shrank" if d.delta_bytes < 0 else "same  "
    rel = f", {d.delta_bytes / d.old_required_bytes:+.2%}" if d.old_required_bytes else ""
    parts = [f"required {format_bytes(d.old_required_bytes)} -> {format_bytes(d.new_required_bytes)} "
             f"({_signed(d.delta_bytes)}{rel})"]
    parts += [f"{t.id} {_signed(t.new_bytes - t.old_bytes)}" for t in d.terms]
    if d.old_max_context != d.new_max_context:
        def ctx(v: int | None) -> str:
            return "none" if v is None else f"{v:,}"
        parts.append(f"max context {ctx(d.old_max_context)} -> {ctx(d.new_max_context)}")
    if d.old_verdict != d.new_verdict:
        parts.append(f"verdict {d.old_verdict} -> {d.new_verdict}")
    return f"{word} {d.scenario}: " + "; ".join(parts)


def diff_lines(diff: BaselineDiff, label: str) -> list[str]:
    lines = [f"baseline {label}: {len(diff.grew)} grew, {len(diff.shrank)} shrank, "
             f"{len(diff.changed) - len(diff.grew) - len(diff.shrank)} changed in context or verdict only, "
             f"{diff.unchanged} unchanged, {len(diff.new)} new, {len(diff.gone)} gone"]
    lines += [delta_line(d) for d in diff.changed]
    lines += [f"new    {n}" for n in diff.new]
    lines += [f"gone   {n}" for n in diff.gone]
    return lines


__all__ = ["BaselineDiff", "ScenarioDelta", "TermDelta", "compare", "diff_lines", "delta_line"]
