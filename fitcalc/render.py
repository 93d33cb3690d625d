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
        for w in r.warnings:
            c.print(Text(f"note: {w}", style="yellow"), soft_wrap=True)
        if explain:
            for term in r.terms:
                c.print(Text(term.explain, style="dim"), soft_wrap=True)
        c.print()


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------


def progress_line(message: str) -> None:
    """A phase of a long measurement, on stderr."""
    console(stderr=True).print(Text(f"verify: {message}", style="dim"), soft_wrap=True)


def _mib(n: int | None) -> str:
    return "—" if n is None else f"{to_unit(n, 'MiB'):,.2f}"


def _err(e: float | None) -> str:
    if e is None:
        return "—"
    if e == float("inf"):
        return "new"
    return f"{e:+.2%}"


def _mark(ok: bool | None) -> Text:
    if ok is None:
        return Text("·", style="dim")
    return Text("ok", style="green") if ok else Text("OUT", style="bold red")


def _tol(t) -> str:
    if t is None:
        return ""
    s = f"±{t.relative:.0%}"
    if t.absolute_bytes:
        s += f" or {format_bytes(t.absolute_bytes)}"
    return s


def render_verify(r, out: Console | None = None) -> None:
    c = out or console()
    s = r.settings
    head = Text(f"{r.display_name}: {s.layers} of {s.layers_total} layers"
                f"{'' if s.include_embeddings else ' (no embeddings)'} on {r.device.name}", style="bold")
    head.append(f" — recipe {s.recipe}, context {s.context:,} × batch {s.batch}, KV {s.kv_dtype}, "
                f"prefill {s.prompt_tokens:,} tokens in chunks of {s.chunk_tokens}, then 1 decode step",
                style="default")
    c.print(head, soft_wrap=True)
    t = Table(show_header=True, box=None, pad_edge=False)
    for col, j in (("term", "left"), ("predicted MiB", "right"), ("measured MiB", "right"), ("error", "right"),
                   ("tolerance", "right"), ("", "left")):
        t.add_column(col, justify=j, no_wrap=True)  # type: ignore[arg-type]
    hows: dict[str, list[str]] = {}
    for row in r.terms:
        t.add_row(row.id, _mib(row.predicted_bytes), _mib(row.measured_bytes), _err(row.error), _tol(row.tolerance),
                  _mark(row.ok))
        hows.setdefault(row.how, []).append(row.id)
    for name, chk in (("working (prefill)", r.working), ("peak", r.peak)):
        if chk is None:
            continue
        t.add_row(Text(name, style="bold"), _mib(chk.predicted_bytes), _mib(chk.measured_bytes), _err(chk.error),
                  _tol(chk.tolerance), _mark(chk.ok))
        hows.setdefault(chk.how, []).append(name)
    c.print(t)
    for how, ids in hows.items():
        kinds = sorted({i.split(".")[0] + (".*" if "." in i else "") for i in ids})
        c.print(Text(f"  {', '.join(kinds)}: {how}", style="dim"), soft_wrap=True)
    x = r.extrapolation
    if x is not None:
        rest = [e for e in x.terms if e.id.startswith(("weights.", "kv."))]
        line = Text(f"whole model ({x.layers} layers): predicted {gib(x.predicted_bytes)}, extrapolated from the "
                    f"measurement {gib(x.measured_bytes) if x.measured_bytes is not None else '—'} "
                    f"({_err(x.error)})", style="bold")
        c.print(line, soft_wrap=True)
        if rest:
            parts = [f"{e.id} {_err(e.error)}" for e in rest]
            c.print(Text("  " + ", ".join(parts), style="dim"), soft_wrap=True)
        if x.missing_signatures:
            c.print(Text(f"  note: {x.note}", style="yellow"), soft_wrap=True)
    rd = r.readings
    if r.device.kind == "cpu" and rd.get("rss_high_water"):
        c.print(Text(f"process RSS: {gib(rd['rss_before'])} before the stack, peak {gib(rd['rss_high_water'])} "
                     f"(+{gib(rd['rss_delta'])}); tracked tensor peak {gib(r.peak.measured_bytes or 0)}", style="dim"),
                soft_wrap=True)
    if r.device.kind == "cuda" and rd.get("max_reserved"):
        c.print(Text(f"torch.cuda: max allocated {gib(rd['max_allocated'])}, max reserved {gib(rd['max_reserved'])}",
                     style="dim"), soft_wrap=True)
    if r.timings:
        c.print(Text("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items()), style="dim"))
    for n in r.notes:
        c.print(Text(f"note: {n}", style="yellow"), soft_wrap=True)
    if r.oom is not None:
        c.print(Text(f"DOES NOT FIT, measured at {r.oom.phase}: out of memory with {gib(r.oom.live_bytes)} of tensors "
                     f"live (predicted stack {gib(r.oom.predicted_bytes)}): {r.oom.message}", style="bold red"),
                soft_wrap=True)
    elif r.ok:
        c.print(Text("VERIFIED: every measured term within its tolerance", style="bold green"))
    else:
        c.print(Text(f"OUT OF TOLERANCE: {', '.join(r.failures)}", style="bold red"))
