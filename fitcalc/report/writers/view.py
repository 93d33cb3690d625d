"""A report laid out as sections of tables, once, for the Markdown and HTML writers. EDGE (pure).

Both writers show the same tables; only the markup differs. Sizes are GiB (2^30 bytes) with two
decimals, labelled in the column head; the JSON report carries the exact bytes.

Columns that hold one value in every row of the report (batch 1 everywhere, one engine) are not
repeated per row: they are said once above the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fitcalc.report.checks import summary_line
from fitcalc.report.result import Report, ScenarioResult
from fitcalc.units import to_unit

FAMILIES = (("weights", "weights"), ("kv", "KV cache"), ("act", "activations"), ("overhead", "overhead"))
VERDICTS = ("fits", "tight", "does not fit")
MAX_ROWS = 1000  # per table: a longer table is cut (the JSON report has every row)


@dataclass
class Table:
    columns: list[str]
    align: list[str]  # "l" or "r" per column
    rows: list[list[str]]
    kinds: list[str] = field(default_factory=list)  # per column: "text", "long" (may wrap), "verdict", "status"
    caption: str | None = None
    cut: int = 0  # rows left out past MAX_ROWS


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)  # paragraphs before the tables
    tables: list[Table] = field(default_factory=list)
    details: bool = False  # secondary: folded in Markdown (<details>), a plain section in HTML
    bullets: bool = False  # lines are a list (notes), not paragraphs
    anchor: str = ""


def gib(n: int) -> str:
    return f"{to_unit(n, 'GiB'):,.2f}"


def family_bytes(r: ScenarioResult) -> dict[str, int]:
    out = {k: 0 for k, _ in FAMILIES}
    for t in r.fit.terms:
        fam = t.id.split(".", 1)[0]
        out[fam] = out.get(fam, 0) + t.bytes
    return out


def max_context_text(r: ScenarioResult) -> str:
    f = r.fit
    if f.max_context is None:
        return "none"
    if f.max_context_limit and f.max_context >= f.max_context_limit:
        return f"{f.max_context:,} (model max)"
    return f"{f.max_context:,}"


def varying_parts(r: ScenarioResult, varying: set[str]) -> list[str]:
    """Whichever of engine, recipe, KV dtype and batch vary across the report, for a label."""
    f = r.fit
    shown = {"engine": f.engine, "recipe": f.recipe, "kv": f"KV {f.kv_dtype}", "batch": f"batch {f.batch}"}
    return [text for key, text in shown.items() if key in varying]


def config_label(r: ScenarioResult, varying: set[str]) -> str:
    """The model plus what varies: one configuration of the max-context table and chart."""
    return ", ".join([r.model, *varying_parts(r, varying)])


def varying_columns(results: list[ScenarioResult]) -> set[str]:
    values: dict[str, set] = {"engine": set(), "recipe": set(), "kv": set(), "batch": set()}
    for r in results:
        values["engine"].add(r.fit.engine)
        values["recipe"].add(r.fit.recipe)
        values["kv"].add(r.fit.kv_dtype)
        values["batch"].add(r.fit.batch)
    return {k for k, v in values.items() if len(v) > 1}


def constants_line(results: list[ScenarioResult], varying: set[str]) -> str | None:
    if not results:
        return None
    f = results[0].fit
    parts = []
    if "engine" not in varying:
        parts.append(f"engine {f.engine} ({f.engine_version})")
    if "recipe" not in varying:
        parts.append(f"recipe {f.recipe}")
    if "kv" not in varying:
        parts.append(f"KV cache {f.kv_dtype}")
    if "batch" not in varying:
        parts.append(f"batch {f.batch}")
    return "In every row: " + ", ".join(parts) + "." if parts else None


def _cut(rows: list[list[str]]) -> tuple[list[list[str]], int]:
    return (rows[:MAX_ROWS], len(rows) - MAX_ROWS) if len(rows) > MAX_ROWS else (rows, 0)


def scenario_table(results: list[ScenarioResult], varying: set[str], named: bool = False) -> Table:
    cols = (["scenario", "model"] if named else []) + ["GPU", "context"]
    align = (["l", "l"] if named else []) + ["l", "r"]
    extra = [("batch", "batch", "r"), ("engine", "engine", "l"), ("recipe", "recipe", "l"), ("kv", "KV", "l")]
    shown = [e for e in extra if named or e[0] in varying]
    cols += [e[1] for e in shown] + ["verdict", "needs GiB", "of GiB", "headroom GiB", "max context"]
    align += [e[2] for e in shown] + ["l", "r", "r", "r", "r"]
    kinds = ["text"] * (len(cols) - 5) + ["verdict"] + ["text"] * 4
    rows = []
    for r in results:
        f = r.fit
        vals = {"batch": str(f.batch), "engine": f.engine, "recipe": f.recipe, "kv": str(f.kv_dtype)}
        row = ([r.name, r.model] if named else []) + [r.gpu, f"{f.context:,}"]
        row += [vals[e[0]] for e in shown]
        per = " ×" + str(f.count) if f.count > 1 else ""
        row += [f.verdict, gib(f.required_bytes), gib(f.available_bytes) + per, gib(f.headroom_bytes),
                max_context_text(r)]
        rows.append(row)
    rows, cut = _cut(rows)
    return Table(cols, align, rows, kinds, cut=cut)


def family_table(results: list[ScenarioResult], varying: set[str], named: bool = False) -> Table:
    lead = ["scenario"] if named else ["GPU", "context"] + [c for k, c in (("batch", "batch"), ("engine", "engine"),
                                                                          ("recipe", "recipe"), ("kv", "KV"))
                                                            if k in varying]
    cols = lead + [f"{label} GiB" for _, label in FAMILIES] + ["total GiB", "± GiB"]
    rows = []
    for r in results:
        f = r.fit
        if named:
            head = [r.name]
        else:
            vals = {"batch": str(f.batch), "engine": f.engine, "recipe": f.recipe, "KV": str(f.kv_dtype)}
            head = [r.gpu, f"{f.context:,}"] + [vals[c] for c in lead[2:]]
        fam = family_bytes(r)
        rows.append(head + [gib(fam[k]) for k, _ in FAMILIES] + [gib(f.required_bytes), gib(f.uncertainty_bytes)])
    rows, cut = _cut(rows)
    align = ["r" if c in ("context", "batch") else "l" for c in lead] + ["r"] * (len(cols) - len(lead))
    return Table(cols, align, rows, ["text"] * len(cols), cut=cut)


def max_context_table(results: list[ScenarioResult], varying: set[str]) -> Table:
    """Largest context that fits: one row per configuration, one column per GPU entry."""
    gpus: list[str] = []
    configs: dict[str, dict[str, str]] = {}
    for r in results:
        if r.gpu not in gpus:
            gpus.append(r.gpu)
        configs.setdefault(config_label(r, varying), {})[r.gpu] = max_context_text(r)
    rows = [[label] + [cells.get(g, "") for g in gpus] for label, cells in configs.items()]
    rows, cut = _cut(rows)
    return Table(["configuration"] + gpus, ["l"] + ["r"] * len(gpus), rows, ["text"] * (len(gpus) + 1), cut=cut)


def assertion_table(report: Report, failed_only: bool) -> Table:
    items = report.failed if failed_only else report.assertions
    rows = [[a.status, a.scenario, a.assertion, a.source, a.message] for a in items]
    rows, cut = _cut(rows)
    return Table(["status", "scenario", "assertion", "from", "numbers"], ["l"] * 5, rows,
                 ["status", "long", "text", "text", "long"], cut=cut)


def counts_line(results: list[ScenarioResult]) -> str:
    n = {v: sum(r.fit.verdict == v for r in results) for v in VERDICTS}
    return (f"{len(results):,} scenarios: {n['fits']:,} fit, {n['tight']:,} tight (headroom within the estimate's "
            f"uncertainty), {n['does not fit']:,} {'does' if n['does not fit'] == 1 else 'do'} not fit.")


def unique_notes(report: Report) -> list[str]:
    seen: dict[str, None] = {}
    for note in report.notes:
        seen.setdefault(note, None)
    for r in report.scenarios:
        for w in r.fit.warnings:
            seen.setdefault(w, None)
    return list(seen)


def models_in_order(results: list[ScenarioResult]) -> list[str]:
    out: list[str] = []
    for r in results:
        if r.model not in out:
            out.append(r.model)
    return out


def build_view(report: Report) -> list[Section]:
    results = report.scenarios
    matrix = [r for r in results if r.origin == "matrix"]
    named = [r for r in results if r.origin == "scenario"]
    varying = varying_columns(matrix)
    sections: list[Section] = []

    summary = Section("Summary", anchor="summary", lines=[counts_line(results)])
    if report.assertions:
        summary.lines.append(summary_line(report.assertions, len(results)) + ".")
    sections.append(summary)

    if report.assertions:
        s = Section("Checks", anchor="checks")
        if report.failed:
            s.lines.append(f"{len(report.failed):,} assertion{'s' if len(report.failed) > 1 else ''} "
                           "did not hold:")
            s.tables.append(assertion_table(report, failed_only=True))
        else:
            s.lines.append("Every assertion holds.")
        sections.append(s)

    if matrix:
        s = Section("Largest context that fits", anchor="max-context",
                    lines=["Tokens per sequence at each configuration's batch; 'none' means it does not fit even "
                           "at the smallest context."])
        const = constants_line(matrix, varying)
        if const:
            s.lines.append(const)
        s.tables.append(max_context_table(matrix, varying))
        sections.append(s)
        for model in models_in_order(matrix):
            rows = [r for r in matrix if r.model == model]
            first = rows[0].fit
            s = Section(f"{model}", anchor=f"model-{len(sections)}")
            lim = f", up to {first.max_context_limit:,} tokens of context" if first.max_context_limit else ""
            s.lines.append(f"{first.model}{lim}. Sizes per GPU; 'needs' is the whole footprint, "
                           "'of' the memory it is planned against.")
            s.tables.append(scenario_table(rows, varying))
            sections.append(s)

    if named:
        s = Section("Named scenarios", anchor="scenarios")
        s.tables.append(scenario_table(named, varying, named=True))
        sections.append(s)

    s = Section("Memory by term family", anchor="breakdown", details=True,
                lines=["Each scenario's footprint per GPU split into weights, KV cache, activations and runtime "
                       "overhead (the JSON report has every term by id); ± is the estimate's uncertainty."])
    for model in models_in_order(matrix):
        t = family_table([r for r in matrix if r.model == model], varying)
        t.caption = model
        s.tables.append(t)
    if named:
        t = family_table(named, varying, named=True)
        t.caption = "named scenarios"
        s.tables.append(t)
    sections.append(s)

    notes = unique_notes(report)
    if notes:
        sections.append(Section("Notes", anchor="notes", lines=notes, bullets=True))
    return sections


__all__ = ["build_view", "Section", "Table", "FAMILIES", "family_bytes", "gib", "max_context_text",
           "config_label", "varying_columns", "varying_parts", "models_in_order"]
