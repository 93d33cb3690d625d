"""The report for machines: JSON or YAML, every number with its name or term id. EDGE.

Sizes are integers of bytes (``*_bytes``), contexts integers of tokens. Each scenario carries the
footprint's terms by their stable ids (``weights.experts``, ``kv.full`` ...; docs/formulas.md) with
their kind and relative uncertainty band, so a consumer can re-add them or diff them (``fitcalc check
--baseline`` does). The explained derivations stay out (``fitcalc fit --explain`` prints them): for a
sweep of thousands of rows they would outweigh the numbers.
"""

from __future__ import annotations

import json

from fitcalc import __version__
from fitcalc.core.report.result import AssertionResult, Report, ScenarioResult, TrainingResult

FORMAT = "fitcalc-report"
FORMAT_VERSION = 1

_FIT_FIELDS = ("model", "recipe", "engine", "engine_version", "device", "device_id", "count", "tp", "context",
               "batch", "kv_dtype", "fits", "verdict", "required_bytes", "available_bytes", "headroom_bytes",
               "uncertainty_bytes", "max_context", "max_context_limit", "max_context_step", "kv_capacity_bytes",
               "kv_capacity_tokens")


def scenario_doc(r: ScenarioResult) -> dict:
    f = r.fit
    doc: dict = {"name": r.name, "origin": r.origin, "model_source": r.model, "gpu": r.gpu,
                 "requested": {"engine": r.engine_requested, "recipe": r.recipe_requested,
                               "kv_dtype": r.kv_dtype_requested}}
    for k in _FIT_FIELDS:
        doc[k] = getattr(f, k)
    doc["model_id"] = doc.pop("model")
    doc["terms"] = [{"id": t.id, "bytes": t.bytes, "kind": t.kind, "band": t.band} for t in f.terms]
    doc["plan"] = r.plan.model_dump()
    doc["warnings"] = list(f.warnings)
    return doc


def training_doc(t: TrainingResult) -> dict:
    """A training scenario as `fitcalc train --json` prints one GPU configuration, with its name."""
    doc = t.model_dump(exclude={"fit"})
    doc["model_source"] = doc.pop("model")
    f = t.fit
    doc.update(f.model_dump(exclude={"terms", "host_terms", "notes"}))
    doc["notes"] = list(dict.fromkeys([*f.notes, *t.notes]))
    doc["terms"] = [{"id": x.id, "bytes": x.bytes, "kind": x.kind, "band": x.band} for x in f.terms]
    doc["host_terms"] = [{"id": x.id, "bytes": x.bytes, "kind": x.kind, "band": x.band} for x in f.host_terms]
    return doc


def assertion_doc(a: AssertionResult) -> dict:
    return a.model_dump()


def report_doc(report: Report) -> dict:
    from fitcalc.edges.report.writers.view import VERDICTS

    verdicts = {v: sum(r.fit.verdict == v for r in report.scenarios) for v in VERDICTS}
    status = {s: sum(a.status == s for a in report.assertions) for s in ("pass", "fail", "unavailable")}
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "fitcalc_version": __version__,
        "title": report.title, "description": report.description, "spec": report.spec_path,
        "units": {"*_bytes": "bytes (int)", "context, max_context, *_tokens": "tokens (int)",
                  "band": "relative uncertainty of a term (0.3 = ±30%)"},
        "summary": {"scenarios": len(report.scenarios), "verdicts": verdicts, "assertions": status,
                    "training": {v: sum(t.fit.verdict == v for t in report.training) for v in VERDICTS}},
        "scenarios": [scenario_doc(r) for r in report.scenarios],
        "training": [training_doc(t) for t in report.training],
        "assertions": [assertion_doc(a) for a in report.assertions],
        "notes": list(report.notes),
    }


def render_json(report: Report) -> str:
    return json.dumps(report_doc(report), indent=2, ensure_ascii=False) + "\n"


def render_yaml(report: Report) -> str:
    import yaml

    return yaml.safe_dump(report_doc(report), sort_keys=False, allow_unicode=True, width=120)
