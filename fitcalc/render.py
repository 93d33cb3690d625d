"""Rich tables and bars for the terminal. EDGE: the one place rich is used.

Renderers take finished result models and a Console; they do no arithmetic beyond turning
bytes into text through ``fitcalc.units``.
"""

from __future__ import annotations

import os
import re
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
# plan
# ---------------------------------------------------------------------------------------------


def _rate(x: float | None, unit: str) -> str:
    if x is None:
        return "unknown"
    return f"{x:,.1f} {unit}" if x < 100 else f"{x:,.0f} {unit}"


_RANK = re.compile(r",? ?rank \d+ of \d+$")


def _same_rows(rows) -> list[tuple[int, int]]:
    """Runs of consecutive devices that differ only by their tensor-parallel rank: (first, last)."""
    out: list[tuple[int, int]] = []
    for i, d in enumerate(rows):
        if out:
            f, _ = out[-1]
            a = rows[f]
            if (a.device, a.required_bytes, a.available_bytes, _RANK.sub("", a.role)) == (
                    d.device, d.required_bytes, d.available_bytes, _RANK.sub("", d.role)):
                out[-1] = (f, i)
                continue
        out.append((i, i))
    return out


def render_plan(plan, explain: bool = False, out: Console | None = None) -> None:
    c = out or console()
    head = Text(f"{plan.model} — {plan.engine} — {plan.recipe_name} ({plan.bits_per_weight:.2f} bits/weight), "
                f"KV {plan.kv_dtype}", style="bold")
    c.print(head, soft_wrap=True)
    lay = plan.layout
    verdict = Text("FITS" if plan.fits else "DOES NOT FIT", style=_VERDICT_STYLE["fits" if plan.fits else "does not fit"])
    verdict.append(f"  context {plan.context:,} × batch {plan.batch}" + (f" — {lay.description}" if lay else ""),
                   style="default")
    c.print(verdict, soft_wrap=True)
    t = Table(show_header=True, box=None, pad_edge=False)
    for col, j in (("#", "right"), ("device", "left"), ("holds", "left"), ("needs", "right"), ("of", "right"),
                   ("headroom", "right")):
        t.add_column(col, justify=j)  # type: ignore[arg-type]
    groups = _same_rows(plan.placement)
    for first, last in groups:
        d = plan.placement[first]
        idx = str(d.index) if first == last else f"{d.index}-{plan.placement[last].index}"
        role = d.role if first == last else _RANK.sub("", d.role) + f" (each of {last - first + 1} ranks)"
        t.add_row(idx, d.device, role, gib(d.required_bytes), gib(d.available_bytes),
                  Text(format_bytes(d.headroom_bytes), style="green" if d.fits else "red"))
    if plan.host is not None:
        h = plan.host
        avail = gib(h.available_bytes) if h.available_bytes is not None else "?"
        head_txt = format_bytes(h.available_bytes - h.required_bytes) if h.available_bytes is not None else "unchecked"
        t.add_row("", "RAM", h.holds + (" (memory-mapped)" if h.mapped and h.weights_bytes else ""),
                  gib(h.required_bytes), avail, Text(head_txt, style="green" if h.fits else "red"))
    c.print(t)
    for first, last in groups:
        d = plan.placement[first]
        idx = str(d.index) if first == last else f"{d.index}-{plan.placement[last].index}"
        c.print(Text(f"  {idx:>3} ", style="dim") + capacity_bar(d.terms, d.available_bytes, width=50))
    if plan.max_context is not None:
        lim = " (the model's maximum)" if plan.max_context_limit and plan.max_context >= plan.max_context_limit else ""
        c.print(f"largest context at batch {plan.batch}: {plan.max_context:,} tokens{lim}")
    if plan.max_batch is not None:
        bound = f" (the search bound)" if plan.max_batch >= plan.max_batch_bound else ""
        noun = "sequence" if plan.max_batch == 1 else "sequences"
        c.print(f"largest batch at context {plan.context:,}: {plan.max_batch:,} {noun}{bound}")
    if plan.gpus_needed is not None:
        gl = plan.gpus_needed_layout.description if plan.gpus_needed_layout else ""
        c.print(f"GPUs needed (whole model on GPUs, {plan.gpus_needed_recipe}, context {plan.gpus_needed_context:,}): "
                f"{plan.gpus_needed} × {plan.gpus_needed_device} ({gl})")
    else:
        c.print(f"GPUs needed ({plan.gpus_needed_recipe}, context {plan.gpus_needed_context:,}): more than "
                f"{plan.max_gpus} × {plan.gpus_needed_device}")
    s = plan.speed
    if s is not None:
        c.print(f"speed: decode {_rate(s.decode_tokens_per_s, 'tok/s')} per sequence at depth "
                f"{s.decode_depth_tokens:,}" + (f", {_rate(s.decode_tokens_per_s_total, 'tok/s')} for all {plan.batch}"
                                                 if plan.batch > 1 and s.decode_tokens_per_s_total else "")
                + (f"; prefill {s.prefill_s:,.2f} s for {s.prompt_tokens:,} tokens" if s.prefill_s is not None else ""),
                soft_wrap=True)
        for part in s.parts:
            c.print(Text(f"  {part.where}: {format_bytes(part.bytes_per_step)} per step, {part.time_s * 1e3:.2f} ms "
                         f"({part.bound}-bound, efficiency {part.efficiency:g})", style="dim"), soft_wrap=True)
    if plan.engine_flags is not None:
        f = plan.engine_flags
        c.print("[bold]run:[/bold]")
        c.print(Text("  " + f.command), soft_wrap=True)
        for k, v in f.parameters.items():
            c.print(Text(f"  PARAMETER {k} {v}"), soft_wrap=True)
    for n in plan.notes + (plan.speed.notes if plan.speed else []):
        c.print(Text(f"note: {n}", style="yellow"), soft_wrap=True)
    if explain:
        for d in plan.placement:
            c.print(Text(f"device {d.index} ({d.device}):", style="bold"))
            for term in d.terms:
                c.print(Text("  " + term.explain, style="dim"), soft_wrap=True)
        if plan.host is not None:
            c.print(Text("RAM:", style="bold"))
            for term in plan.host.terms:
                c.print(Text("  " + term.explain, style="dim"), soft_wrap=True)
