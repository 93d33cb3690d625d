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
    for w in result.warnings:
        c.print(Text(f"warning: {w}", style="bold yellow"), soft_wrap=True)
    if result.check is not None:
        render_check(result.check, c)
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


def render_check(check, out: Console | None = None) -> None:
    """Header-exact vs derived, group by group; differences highlighted."""
    c = out or console()
    t = Table(title=f"--check: headers of {check.source} vs the architecture ({check.recipe})", title_justify="left",
              show_footer=True)
    t.add_column("group", footer="total")
    t.add_column("header bytes", justify="right", footer=f"{check.header_bytes:,}")
    t.add_column("derived bytes", justify="right", footer=f"{check.derived_bytes:,}")
    t.add_column("Δ bytes", justify="right", footer=f"{check.header_bytes - check.derived_bytes:+,}")
    t.add_column("header params", justify="right", footer=f"{check.header_params:,}")
    t.add_column("Δ params", justify="right", footer=f"{check.header_params - check.derived_params:+,}")
    for r in check.rows:
        style = None if r.agrees else "bold red"
        t.add_row(r.group, f"{r.header_bytes:,}", f"{r.derived_bytes:,}", f"{r.bytes_diff:+,}",
                  f"{r.header_params:,}", f"{r.params_diff:+,}", style=style)
    c.print(t)
    if check.agree:
        c.print(Text("headers and architecture agree to the byte and the parameter in every group", style="green"))
    else:
        for r in check.rows:
            if not r.agrees and r.header_formats != r.derived_formats:
                c.print(Text(f"{r.group}: header formats {r.header_formats} vs derived {r.derived_formats}",
                             style="yellow"), soft_wrap=True)
