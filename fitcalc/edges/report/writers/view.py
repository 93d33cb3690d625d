"""A report laid out as sections of tables, once, for the Markdown and HTML writers. EDGE (pure).

Both writers show the same tables; only the markup differs. Sizes are GiB (2^30 bytes) with two
decimals, labelled in the column head; the JSON report carries the exact bytes.

Columns that hold one value in every row of the report (batch 1 everywhere, one engine) are not
repeated per row: they are said once above the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fitcalc.core.report.checks import summary_line
from fitcalc.core.report.result import Report, ScenarioResult, TrainingResult
from fitcalc.core.units import to_unit

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


def speed_text(r: ScenarioResult) -> str:
    """Decode tokens/s per sequence; 'n/a' where it cannot be estimated (a raw budget), '—' where
    the scenario does not fit."""
    pl = r.plan
    if pl.decode_tokens_per_s is not None:
        v = pl.decode_tokens_per_s
        return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"
    return "—" if pl.speed_status == "no fit" else "n/a"


def speed_lines(results: list[ScenarioResult]) -> list[str]:
    """What the tok/s column means, and why a cell is empty, said once above a table."""
    out = ["'tok/s' is the estimated decode speed of one sequence at the full context (the KV cache "
           "read at that depth), on the placement `fitcalc plan` picks for these GPUs without CPU offload."]
    if any(r.plan.decode_tokens_per_s is None and r.plan.speed_status == "unavailable" for r in results):
        out.append("n/a: decode speed not available for a raw budget, which has no memory bandwidth; name a "
                   "catalog GPU (rtx-4090, h100-sxm ...) for an estimate.")
    return out


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
    cols += [e[1] for e in shown] + ["verdict", "needs GiB", "of GiB", "headroom GiB", "max context", "tok/s"]
    align += [e[2] for e in shown] + ["l", "r", "r", "r", "r", "r"]
    kinds = ["text"] * (len(cols) - 6) + ["verdict"] + ["text"] * 5
    rows = []
    for r in results:
        f = r.fit
        vals = {"batch": str(f.batch), "engine": f.engine, "recipe": f.recipe, "kv": str(f.kv_dtype)}
        row = ([r.name, r.model] if named else []) + [r.gpu, f"{f.context:,}"]
        row += [vals[e[0]] for e in shown]
        per = " ×" + str(f.count) if f.count > 1 else ""
        row += [f.verdict, gib(f.required_bytes), gib(f.available_bytes) + per, gib(f.headroom_bytes),
                max_context_text(r), speed_text(r)]
        rows.append(row)
    rows, cut = _cut(rows)
    return Table(cols, align, rows, kinds, cut=cut)


def _lead(varying: set[str], named: bool) -> list[str]:
    """The columns that name a row of a secondary table: the scenario, or GPU, context and what varies."""
    if named:
        return ["scenario"]
    return ["GPU", "context"] + [c for k, c in (("batch", "batch"), ("engine", "engine"), ("recipe", "recipe"),
                                                ("kv", "KV")) if k in varying]


def _head(r: ScenarioResult, lead: list[str], named: bool) -> list[str]:
    if named:
        return [r.name]
    f = r.fit
    vals = {"batch": str(f.batch), "engine": f.engine, "recipe": f.recipe, "KV": str(f.kv_dtype)}
    return [r.gpu, f"{f.context:,}"] + [vals[c] for c in lead[2:]]


def family_table(results: list[ScenarioResult], varying: set[str], named: bool = False) -> Table:
    lead = _lead(varying, named)
    cols = lead + [f"{label} GiB" for _, label in FAMILIES] + ["total GiB", "± GiB"]
    rows = []
    for r in results:
        f = r.fit
        fam = family_bytes(r)
        rows.append(_head(r, lead, named) + [gib(fam[k]) for k, _ in FAMILIES]
                    + [gib(f.required_bytes), gib(f.uncertainty_bytes)])
    rows, cut = _cut(rows)
    align = ["r" if c in ("context", "batch") else "l" for c in lead] + ["r"] * (len(cols) - len(lead))
    return Table(cols, align, rows, ["text"] * len(cols), cut=cut)


def _batch_text(r: ScenarioResult) -> str:
    pl = r.plan
    if pl.max_batch is None:
        return "—"
    bound = " (search bound)" if pl.max_batch_bound and pl.max_batch >= pl.max_batch_bound else ""
    return f"{pl.max_batch:,}{bound}"


def _gpus_text(r: ScenarioResult) -> str:
    pl = r.plan
    if pl.gpus_needed is not None:
        return str(pl.gpus_needed)
    return f"more than {pl.max_gpus}" if pl.max_gpus else "—"


def plan_table(results: list[ScenarioResult], varying: set[str], named: bool = False) -> Table:
    """What `fitcalc plan` adds per scenario: placement, decode and prefill speed, largest batch at
    the scenario's context, GPUs of its type needed."""
    lead = _lead(varying, named)
    batched = any(r.fit.batch > 1 for r in results)  # all sequences' speed differs from one's only then
    cols = lead + ["placement", "tok/s"] + (["all seqs tok/s"] if batched else []) + ["prefill s", "max batch",
                                                                                     "GPUs needed"]
    rows = []
    for r in results:
        pl = r.plan
        head = _head(r, lead, named)
        total = pl.decode_tokens_per_s_total
        prefill = f"{pl.prefill_s:,.2f} ({pl.prompt_tokens:,} tok)" if pl.prefill_s is not None and pl.prompt_tokens \
            else ("—" if pl.speed_status == "no fit" else "n/a")
        all_seqs = [f"{total:,.0f}" if total is not None else speed_text(r)] if batched else []
        rows.append(head + [pl.layout or "—", speed_text(r), *all_seqs, prefill, _batch_text(r), _gpus_text(r)])
    rows, cut = _cut(rows)
    n_num = len(cols) - len(lead) - 1
    align = ["r" if c in ("context", "batch") else "l" for c in lead] + ["l"] + ["r"] * n_num
    kinds = ["text"] * len(lead) + ["long"] + ["text"] * n_num
    return Table(cols, align, rows, kinds, cut=cut)


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


def _memory_of(r: ScenarioResult) -> int:
    return r.fit.available_bytes * r.fit.count


def _where(r: ScenarioResult, varying: set[str]) -> str:
    return " · ".join([r.gpu, *varying_parts(r, varying)])


def best_gpu_table(matrix: list[ScenarioResult], varying: set[str]) -> Table:
    """The answer per model, first: on how many GPU entries it fits at some asked context, the one
    with the least memory that fits (and at what context), the longest context and the fastest
    decode any configuration reaches. 'Fits' counts tight rows too (headroom ≥ 0)."""
    rows = []
    for model in models_in_order(matrix):
        mine = [r for r in matrix if r.model == model]
        gpus = list(dict.fromkeys(r.gpu for r in mine))
        ok = [r for r in mine if r.fit.verdict != "does not fit"]
        fit_gpus = list(dict.fromkeys(r.gpu for r in ok))
        if not ok:
            rows.append([model, f"0 of {len(gpus)}", "none", "—", "—"])
            continue
        least = min(ok, key=lambda r: (_memory_of(r), -r.fit.context))
        longest = max(ok, key=lambda r: (r.fit.max_context or 0, -_memory_of(r)))
        timed = [r for r in ok if r.plan.decode_tokens_per_s is not None]
        fastest = max(timed, key=lambda r: r.plan.decode_tokens_per_s) if timed else None
        rows.append([model, f"{len(fit_gpus)} of {len(gpus)}",
                     f"{_where(least, varying)} (up to {max_context_text(least)} tokens)",
                     f"{max_context_text(longest)} on {_where(longest, varying)}",
                     f"{speed_text(fastest)} on {_where(fastest, varying)}" if fastest else "n/a"])
    rows, cut = _cut(rows)
    return Table(["model", "GPU entries it fits", "least memory that fits", "longest context",
                  "fastest decode (tok/s)"], ["l", "r", "l", "l", "l"], rows,
                 ["text", "text", "long", "long", "long"], cut=cut)


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


def _per_model(make, matrix: list[ScenarioResult], named: list[ScenarioResult], varying: set[str]) -> list[Table]:
    """One table per model of the matrix, then one of the named scenarios, each captioned."""
    tables = []
    for model in models_in_order(matrix):
        t = make([r for r in matrix if r.model == model], varying)
        t.caption = model
        tables.append(t)
    if named:
        t = make(named, varying, named=True)
        t.caption = "named scenarios"
        tables.append(t)
    return tables


def training_counts_line(training: list[TrainingResult]) -> str:
    n = {v: sum(t.fit.verdict == v for t in training) for v in VERDICTS}
    return (f"{len(training):,} training scenario{'s' if len(training) > 1 else ''}: {n['fits']:,} fit, "
            f"{n['tight']:,} tight, {n['does not fit']:,} {'does' if n['does not fit'] == 1 else 'do'} not fit.")


def training_table(training: list[TrainingResult]) -> Table:
    """One row per training scenario: what is trained, the verdict, one GPU's need of its memory, host RAM
    per node, and the limits `fitcalc train` prints."""
    rows = []
    for t in training:
        f, s = t.fit, t.setup
        what = "full" if s.method == "full" else f"{s.method} r={s.rank}"
        shard = f"ZeRO-{s.zero}" if s.zero else (f"FSDP {s.fsdp}" if s.fsdp else "")
        ckpt = "checkpointing" if s.checkpointing else ""
        rows.append([t.name, t.model, t.gpu, ", ".join(x for x in (what, s.optimizer, shard, ckpt) if x),
                     f"{s.micro_batch} × {s.seq:,}", f.verdict, f"{gib(f.gpu_bytes)} / {gib(f.memory_bytes)}",
                     f"{gib(f.headroom_bytes)} ± {gib(f.uncertainty_bytes)}", gib(f.host_bytes) if f.host_bytes else "—",
                     f"{f.max_micro_batch:,}" if f.max_micro_batch else "none",
                     f"{f.max_seq:,}" if f.max_seq else "none",
                     f"{f.gpus_needed:,}" if f.gpus_needed is not None else "—"])
    return Table(columns=["scenario", "model", "GPU", "training", "batch × seq", "verdict", "needs / of GiB",
                          "headroom ± GiB", "host RAM GiB", "max micro-batch", "max seq", "GPUs needed"],
                 align=["l", "l", "l", "l", "r", "l", "r", "r", "r", "r", "r", "r"], rows=rows,
                 kinds=["text", "text", "text", "long", "text", "verdict", "text", "text", "text", "text", "text",
                        "text"])


def build_view(report: Report) -> list[Section]:
    results = report.scenarios
    matrix = [r for r in results if r.origin == "matrix"]
    named = [r for r in results if r.origin == "scenario"]
    varying = varying_columns(matrix)
    sections: list[Section] = []

    summary = Section("Summary", anchor="summary", lines=[counts_line(results)] if results else [])
    if report.training:
        summary.lines.append(training_counts_line(report.training))
    if report.assertions:
        summary.lines.append(summary_line(report.assertions, len(results) + len(report.training)) + ".")
    if matrix:
        summary.tables.append(best_gpu_table(matrix, varying))
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
            s.lines += speed_lines(rows)
            s.tables.append(scenario_table(rows, varying))
            sections.append(s)

    if named:
        s = Section("Named scenarios", anchor="scenarios", lines=speed_lines(named))
        s.tables.append(scenario_table(named, varying, named=True))
        sections.append(s)

    if report.training:
        sections.append(Section("Training", anchor="training", lines=[
            "One training step per scenario, as `fitcalc train` prices it: one GPU's bytes against its memory, "
            "the largest micro-batch at the scenario's sequence, the longest sequence at its micro-batch, and "
            "the GPUs of its kind the step needs with its sharding (— : none up to 1,024, or sharding off)."],
            tables=[training_table(report.training)]))
    if not results:
        notes = unique_notes(report)
        return [*sections, *([Section("Notes", anchor="notes", lines=notes, bullets=True)] if notes else [])]

    s = Section("Speed, batch and GPUs needed", anchor="speed", details=True,
                lines=["What `fitcalc plan` adds for each scenario's GPUs, without CPU offload: the placement, the "
                       "decode speed of one sequence and of all the batch's sequences at the full context, the "
                       "time to prefill one prompt, the largest batch that fits at the scenario's context, and "
                       "the GPUs of its type the whole model needs at its context and batch. Rooflines, not "
                       "measurements: see docs/formulas.md."])
    s.tables = _per_model(plan_table, matrix, named, varying)
    sections.append(s)

    s = Section("Memory by term family", anchor="breakdown", details=True,
                lines=["Each scenario's footprint per GPU split into weights, KV cache, activations and runtime "
                       "overhead (the JSON report has every term by id); ± is the estimate's uncertainty."])
    s.tables = _per_model(family_table, matrix, named, varying)
    sections.append(s)

    notes = unique_notes(report)
    if notes:
        sections.append(Section("Notes", anchor="notes", lines=notes, bullets=True))
    return sections


__all__ = ["build_view", "best_gpu_table", "Section", "Table", "FAMILIES", "family_bytes", "gib", "max_context_text", "speed_text",
           "config_label", "varying_columns", "varying_parts", "models_in_order"]
