"""Assertions of a report spec, answered for each scenario. CORE.

Where assertions come from, in the order they are reported:
  ``assert:``                  every scenario of the spec
  ``scenarios[i].assert:``     that scenario
  ``checks[i]``                the scenarios its ``where`` selects; with ``require: any`` the check
                               holds when at least one of them satisfies it (one result for the group)

Each assertion is ``pass``, ``fail`` or ``unavailable``. ``unavailable`` (a figure that cannot be
estimated, such as decode tokens/s on a raw budget, which has no memory bandwidth) counts as a
failure: a CI gate that cannot be evaluated must not read as green. A scenario that does not fit has
no decode speed, and ``min_decode_tokens_per_s`` fails on it. A ``where`` that selects no scenario fails too,
since it is most often a typo.
"""

from __future__ import annotations

from fitcalc.core.report.matrix import Case
from fitcalc.core.report.result import AssertionResult, ScenarioResult, Status
from fitcalc.core.report.spec import Assertions, Check, ReportSpec, Where
from fitcalc.core.units import format_bytes

ASSERTION_ORDER = ("must_fit", "max_vram", "min_context", "min_headroom", "min_decode_tokens_per_s")


def _gib(n: int) -> str:
    return format_bytes(n, "iec")


def _one(name: str, source: str, key: str, want, r: ScenarioResult) -> AssertionResult:
    """One assertion against one scenario's result."""
    f = r.fit
    per = " per GPU" if f.count > 1 else ""
    status: Status
    if key == "must_fit":
        actual = f.fits
        status = "pass" if f.fits else "fail"
        msg = (f"{f.verdict}: needs {_gib(f.required_bytes)} of {_gib(f.available_bytes)}{per} "
               f"(headroom {format_bytes(f.headroom_bytes)})")
    elif key == "max_vram":
        actual = f.required_bytes
        status = "pass" if actual <= want else "fail"
        rel = "within" if status == "pass" else f"{_gib(actual - want)} over"
        msg = f"needs {_gib(actual)}{per}, {rel} the limit of {_gib(want)}"
    elif key == "min_context":
        actual = f.max_context
        if actual is None:
            status = "fail"
            msg = f"does not fit at any context (needs {_gib(f.required_bytes)} of {_gib(f.available_bytes)}{per} " \
                  f"at {f.context:,}); at least {want:,} tokens wanted"
        else:
            status = "pass" if actual >= want else "fail"
            cmp = ">=" if status == "pass" else "<"
            lim = " (the model's maximum)" if f.max_context_limit and actual >= f.max_context_limit else ""
            msg = f"max context {actual:,} tokens{lim} at batch {f.batch} {cmp} {want:,} wanted"
    elif key == "min_headroom":
        actual = f.headroom_bytes
        status = "pass" if actual >= want else "fail"
        cmp = ">=" if status == "pass" else "<"
        msg = f"headroom {format_bytes(actual)} {cmp} {_gib(want)} wanted ({_gib(f.required_bytes)} of " \
              f"{_gib(f.available_bytes)}{per})"
    elif key == "min_decode_tokens_per_s":
        pl = r.plan
        actual = pl.decode_tokens_per_s
        if actual is None:
            # A scenario that does not fit has no speed: that is a failure, not a missing estimate.
            status = "fail" if pl.speed_status == "no fit" else "unavailable"
            why = pl.speed_note or "decode tokens/s is not available for this scenario"
            msg = f"{why}; cannot check >= {want:g} tokens/s"
        else:
            status = "pass" if actual >= want else "fail"
            cmp = ">=" if status == "pass" else "<"
            depth = f" at a depth of {pl.prompt_tokens:,} tokens" if pl.prompt_tokens else ""
            total = (f"; {pl.decode_tokens_per_s_total:,.1f} for all {f.batch}"
                     if f.batch > 1 and pl.decode_tokens_per_s_total else "")
            msg = f"decode {actual:,.1f} tokens/s per sequence{depth} {cmp} {want:g} wanted{total}"
    else:  # pragma: no cover - ASSERTION_ORDER lists every key above
        raise KeyError(key)
    return AssertionResult(scenario=name, source=source, assertion=key, status=status, expected=want,
                           actual=actual, message=msg)


def _wanted(a: Assertions) -> list[tuple[str, object]]:
    return [(k, getattr(a, k)) for k in ASSERTION_ORDER if getattr(a, k) not in (None, False)]


def _listed(value) -> list | None:
    if value is None:
        return None
    return value if isinstance(value, list) else [value]


def selects(where: Where, c: Case) -> bool:
    """Does ``where`` select the scenario ``c``? Fields compare with the values as the spec wrote them."""
    pairs = (("scenario", c.name), ("model", c.model), ("gpu", c.gpu), ("engine", c.engine), ("recipe", c.recipe),
             ("kv_dtype", c.kv_dtype), ("context", c.context), ("batch", c.batch))
    for key, value in pairs:
        allowed = _listed(getattr(where, key))
        if allowed is None:
            continue
        if isinstance(value, str):
            if value.lower() not in {str(v).strip().lower() for v in allowed}:
                return False
        elif value not in allowed:
            return False
    return True


def _check_label(i: int, ch: Check) -> str:
    return ch.name or f"checks[{i}]"


def _any_of(label: str, key: str, want, group: list[ScenarioResult]) -> AssertionResult:
    """``require: any``: the best scenario of the group decides."""
    each = [_one(r.name, label, key, want, r) for r in group]
    passing = [a for a in each if a.ok]
    if passing:
        a = passing[0]
        return AssertionResult(scenario=label, source=label, assertion=key, status="pass", expected=want,
                               actual=a.actual, message=f"{len(passing)} of {len(each)} hold; first: {a.scenario}: "
                                                        f"{a.message}")
    status: Status = "unavailable" if all(a.status == "unavailable" for a in each) else "fail"
    return AssertionResult(scenario=label, source=label, assertion=key, status=status, expected=want, actual=None,
                           message=f"none of {len(each)} scenarios holds; e.g. {each[0].scenario}: {each[0].message}")


def evaluate_assertions(spec: ReportSpec, cases: list[Case], results: list[ScenarioResult]) -> list[AssertionResult]:
    """Every assertion of ``spec`` against ``results`` (matched to ``cases`` by name)."""
    by_name = {r.name: r for r in results}
    present = [c for c in cases if c.name in by_name]
    out: list[AssertionResult] = []
    if spec.assert_ is not None:
        wanted = _wanted(spec.assert_)
        for c in present:
            out += [_one(c.name, "assert", k, v, by_name[c.name]) for k, v in wanted]
    for s in spec.scenarios:
        if s.assert_ is not None and s.name in by_name:
            out += [_one(s.name, f"scenarios[{s.name}].assert", k, v, by_name[s.name]) for k, v in _wanted(s.assert_)]
    for i, ch in enumerate(spec.checks):
        label = _check_label(i, ch)
        group = [by_name[c.name] for c in present if selects(ch.where, c)]
        if not group:
            out.append(AssertionResult(scenario=label, source=label, assertion="where", status="fail", expected=None,
                                       actual=0, message="selects no scenario; check the values under where: "
                                                         "against the spec's lists"))
            continue
        if ch.require == "any":
            out += [_any_of(label, k, v, group) for k, v in _wanted(ch.assert_)]
        else:
            for r in group:
                out += [_one(r.name, label, k, v, r) for k, v in _wanted(ch.assert_)]
    return out


def has_assertions(spec: ReportSpec) -> bool:
    return (spec.assert_ is not None and not spec.assert_.is_empty()) or bool(spec.checks) or any(
        s.assert_ is not None and not s.assert_.is_empty() for s in spec.scenarios) or any(
        t.assert_ is not None and t.assert_.model_dump(exclude_none=True) for t in spec.training)


def summary_line(assertions: list[AssertionResult], scenarios: int) -> str:
    ok = sum(a.status == "pass" for a in assertions)
    bad = sum(a.status == "fail" for a in assertions)
    na = sum(a.status == "unavailable" for a in assertions)
    text = f"{len(assertions):,} assertions over {scenarios:,} scenarios: {ok:,} hold, {bad:,} fail"
    if na:
        text += f", {na:,} not available"
    return text


__all__ = ["evaluate_assertions", "has_assertions", "selects", "summary_line", "ASSERTION_ORDER"]
