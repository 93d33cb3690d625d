"""Rich tables and bars for the terminal. EDGE: the one place rich is used.

Renderers take finished result models and a Console; they do no arithmetic beyond turning
bytes into text through ``fitcalc.units``.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fitcalc.units import format_bytes, format_params, to_unit


def console(stderr: bool = False) -> Console:
    width = os.environ.get("FITCALC_WIDTH")
    return Console(stderr=stderr, width=int(width) if width else None, highlight=False,
                   soft_wrap=False, file=sys.stderr if stderr else sys.stdout)


def gib(n: int) -> str:
    return format_bytes(n, "iec")


def gb(n: int) -> str:
    return format_bytes(n, "si")


def error_line(message: str) -> None:
    c = console(stderr=True)
    c.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)


def warning_line(message: str) -> None:
    c = console(stderr=True)
    c.print(Text("warning: ", style="bold yellow") + Text(message), soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# size
# ---------------------------------------------------------------------------------------------


def render_size(result, explain: bool = False, out: Console | None = None) -> None:
    from fitcalc.sizing import format_label

    c = out or console()
    title = f"{result.display_name} — {result.recipe_name}" + (" (coarse)" if result.coarse else "")
    t = Table(title=title, title_justify="left", show_footer=True)
    t.add_column("group", footer="total")
    t.add_column("params", justify="right", footer=format_params(result.params_total))
    t.add_column("active", justify="right", footer=format_params(result.params_active))
    t.add_column("format")
    t.add_column("bits/w", justify="right",
                 footer=f"{result.disk_bytes * 8 / result.params_total:.3f}" if result.params_total else "")
    t.add_column("GiB", justify="right", footer=f"{to_unit(result.disk_bytes, 'GiB'):.3f}")
    t.add_column("GB", justify="right", footer=f"{to_unit(result.disk_bytes, 'GB'):.3f}")
    t.add_column("share", justify="right")
    for g in result.groups:
        share = g.bytes / result.disk_bytes if result.disk_bytes else 0.0
        name = g.name if g.resident else f"{g.name}*"
        t.add_row(name, format_params(g.params), format_params(g.active_params), format_label(g.format),
                  f"{g.bits_per_weight:.3f}", f"{to_unit(g.bytes, 'GiB'):.3f}", f"{to_unit(g.bytes, 'GB'):.3f}",
                  f"{share:.1%}")
    c.print(t)
    c.print(f"on disk: {result.disk_bytes:,} bytes = {gib(result.disk_bytes)} = {gb(result.disk_bytes)}")
    if result.resident_bytes != result.disk_bytes:
        c.print(f"* not loaded for text inference; loaded: {result.resident_bytes:,} bytes = "
                f"{gib(result.resident_bytes)} = {gb(result.resident_bytes)}")
    for p in result.published:
        shown = f"{p.published:,.0f}" if p.unit == "bytes" else f"{p.published:g}"
        got = f"{p.computed:,.0f}" if p.unit == "bytes" else (
            format_params(p.computed) if p.unit == "params" else f"{p.computed:.3f}")
        if p.unit == "params":
            shown = format_params(p.published)
        unit = "" if p.unit == "params" else f" {p.unit}"
        c.print(Text(f"published {p.what}: {shown}{unit}; computed {got}{unit} ({p.relative_error:+.2%}) "
                     f"[{p.source}]", style="dim"), soft_wrap=True)
    for n in result.notes:
        c.print(Text(f"note: {n}", style="yellow"), soft_wrap=True)
    if explain:
        c.print()
        c.print("[bold]derivation[/bold]")
        for line in result.explain:
            c.print(Text(line), soft_wrap=True)


def render_models(rows, out: Console | None = None) -> None:
    c = out or console()
    t = Table(title="bundled model specs", title_justify="left")
    for col, j in (("id", "left"), ("Hub repo", "left"), ("params", "right"), ("active", "right"),
                   ("native recipe", "left"), ("on disk", "right")):
        t.add_column(col, justify=j)  # type: ignore[arg-type]
    for r in rows:
        t.add_row(r.id, r.hf_repo or "", format_params(r.params_total), format_params(r.params_active),
                  r.recipe_name, f"{gib(r.disk_bytes)} ({gb(r.disk_bytes)})")
    c.print(t)


# ---------------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------------

_VERDICT_STYLE = {"fits": "bold green", "tight": "bold yellow", "does not fit": "bold red"}
_SEGMENTS = (("weights", "blue"), ("kv", "magenta"), ("act", "cyan"), ("overhead", "yellow"))


def capacity_bar(terms, available: int, width: int = 60) -> Text:
    """A stacked bar of the footprint against the device's capacity (one cell = available / width)."""
    bar = Text()
    used_cells = 0
    total = sum(t.bytes for t in terms)
    scale = max(available, total)
    for prefix, style in _SEGMENTS:
        n = sum(t.bytes for t in terms if t.id.split(".")[0] == prefix)
        cells = round(n / scale * width)
        bar.append("█" * cells, style=style)
        used_cells += cells
    cap_cell = round(available / scale * width)
    if used_cells < cap_cell:
        bar.append("░" * (cap_cell - used_cells), style="dim")
    elif used_cells > cap_cell:
        bar.append(f" ▲ over by {format_bytes(total - available)}", style="red")
    return bar


def render_fit(results, explain: bool = False, out: Console | None = None) -> None:
    c = out or console()
    for r in results:
        count = f"{r.count} × " if r.count > 1 else ""
        head = Text(f"{r.model} on {count}{r.device}", style="bold")
        head.append(f" — {r.engine} — context {r.context:,} × batch {r.batch}, KV {r.kv_dtype}, recipe {r.recipe}")
        c.print(head, soft_wrap=True)
        v = Text(r.verdict.upper(), style=_VERDICT_STYLE[r.verdict])
        v.append(f"  needs {gib(r.required_bytes)} of {gib(r.available_bytes)} ({gb(r.available_bytes)})"
                 f"{' per GPU' if r.count > 1 else ''}; headroom {format_bytes(r.headroom_bytes)} "
                 f"± {format_bytes(r.uncertainty_bytes)}", style="default")
        c.print(v, soft_wrap=True)
        t = Table(show_header=True, box=None, pad_edge=False)
        t.add_column("term")
        t.add_column("GiB", justify="right")
        t.add_column("MB", justify="right")
        t.add_column("kind")
        t.add_column("±", justify="right")
        for term in r.terms:
            t.add_row(term.id, f"{to_unit(term.bytes, 'GiB'):.3f}", f"{to_unit(term.bytes, 'MB'):,.1f}", term.kind,
                      f"{term.band:.0%}" if term.band else "")
        c.print(t)
        c.print(capacity_bar(r.terms, r.available_bytes))
        if r.max_context is None:
            c.print("max context: does not fit even at the smallest context", style="red")
        else:
            lim = " (the model's maximum)" if r.max_context_limit and r.max_context >= r.max_context_limit else ""
            c.print(f"max context at batch {r.batch}: {r.max_context:,} tokens{lim}; KV capacity "
                    f"{gib(r.kv_capacity_bytes)}" + (f" ≈ {r.kv_capacity_tokens:,} tokens" if r.kv_capacity_tokens
                                                     else ""))
        if r.calibration is not None:
            c.print(Text(r.calibration.note, style="cyan"), soft_wrap=True)
        for w in r.warnings:
            c.print(Text(f"note: {w}", style="yellow"), soft_wrap=True)
        if explain:
            for term in r.terms:
                c.print(Text(term.explain, style="dim"), soft_wrap=True)
        c.print()


# ---------------------------------------------------------------------------------------------
# reconcile
# ---------------------------------------------------------------------------------------------


def _amount(row, which: str) -> str:
    if row.unit == "tokens":
        v = row.logged_tokens if which == "logged" else row.predicted_tokens
        return "" if v is None else f"{v:,} tok"
    v = row.logged_bytes if which == "logged" else row.predicted_bytes
    return "" if v is None else format_bytes(v, "iec", 2)


def _device(row, engine: str) -> str:
    if row.device is not None:
        return row.device
    if row.id and row.id.endswith("(file)"):
        return "file"
    return "per GPU" if engine == "vllm" else "all"


def render_reconcile(result, out: Console | None = None) -> None:
    c = out or console()
    version = result.version or "version not printed"
    if result.version_family and not result.version:
        version += f"; line formats of {result.version_family}"
    head = Text(f"{result.engine} ({version})", style="bold")
    head.append(f" — {result.model}, recipe {result.recipe}, on {result.device}")
    c.print(head, soft_wrap=True)
    used = ", ".join(f"{k} {v}" for k, v in result.settings.items() if v is not None)
    c.print(Text(f"settings: {used}; KV {result.kv_dtype}", style="dim"), soft_wrap=True)
    t = Table(show_header=True, box=None, pad_edge=False)
    t.add_column("figure")
    for col in ("device", "logged", "fitcalc", "diff", "%"):
        t.add_column(col, justify="left" if col == "device" else "right", no_wrap=True)
    t.add_column("fitcalc term", no_wrap=True)
    for r in result.rows:
        diff = ""
        if r.diff is not None:
            diff = f"{r.diff:+,} tok" if r.unit == "tokens" else ("+" if r.diff >= 0 else "-") + format_bytes(
                abs(r.diff), "iec", 2)
        pct = "" if r.diff_pct is None else f"{r.diff_pct:+.1f}%" + (" ≈" if r.within_rounding else "")
        label = r.label + (" *" if not r.calibratable and (r.predicted_bytes or r.predicted_tokens) else "")
        t.add_row(label, _device(r, result.engine), _amount(r, "logged"), _amount(r, "predicted"), diff, pct,
                  r.id or "— not modelled")
    c.print(t)
    c.print(Text("diff = fitcalc − logged; ≈ within the rounding of the printed figure; * not kept as "
                 "calibration", style="dim"), soft_wrap=True)
    for a in result.assumptions:
        c.print(Text(f"assumed: {a}", style="yellow"), soft_wrap=True)
    for w in result.warnings:
        c.print(Text(f"warning: {w}", style="bold yellow"), soft_wrap=True)
    for n in result.notes:
        c.print(Text(f"note: {n}", style="dim"), soft_wrap=True)
    for r in result.rows:
        if r.note:
            c.print(Text(f"line {r.line} ({r.label}): {r.note}", style="dim"), soft_wrap=True)
    if result.saved is not None:
        c.print(f"saved {result.saved} residual(s) to {result.store}")
