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
# gpus
# ---------------------------------------------------------------------------------------------


def _mib(n: int) -> str:
    """MiB exactly when whole (driver totals usually are), else to one decimal."""
    whole, rest = divmod(n, 1 << 20)
    return f"{whole:,}" if rest == 0 else f"{n / (1 << 20):,.1f}"


def _tflops(rates: dict, key: str) -> str:
    v = rates.get(key)
    return "" if v is None else f"{v:g}"


def render_gpus(rows, out: Console | None = None) -> None:
    c = out or console()
    t = Table(title="GPU profiles (memory as the driver reports it; TFLOPS dense)", title_justify="left")
    for col, j in (("id", "left"), ("name", "left"), ("reported MiB", "right"), ("GiB", "right"),
                   ("label", "left"), ("GB/s", "right"), ("BF16", "right"), ("FP8", "right"),
                   ("native", "left")):
        t.add_column(col, justify=j)  # type: ignore[arg-type]
    for r in rows:
        gib_text = f"{to_unit(r.memory_bytes, 'GiB'):.2f}"
        if r.unified_memory:
            gib_text += f" (GPU {to_unit(r.budget_bytes, 'GiB'):.2f})"
        bf16 = _tflops(r.dense_tflops, "bf16") or (
            f"fp16 {_tflops(r.dense_tflops, 'fp16')}" if "fp16" in r.dense_tflops else "")
        t.add_row(r.id, r.display_name, _mib(r.memory_bytes), gib_text, r.marketed_memory,
                  f"{r.bandwidth_bytes_per_s / 1e9:g}", bf16, _tflops(r.dense_tflops, "fp8"),
                  ",".join(f for f in r.native_formats if f in ("fp8", "mxfp4", "nvfp4")) or "-")
    c.print(t)
    c.print(Text("reported = nvidia-smi memory.total, rocm-smi/SYCL bytes, or RAM for unified memory "
                 "(GPU working set in brackets); label = the vendor's, in GB. "
                 "`fitcalc gpus --json` has every field.", style="dim"), soft_wrap=True)


def render_local_hardware(hw, out: Console | None = None) -> None:
    c = out or console()
    if hw.gpus:
        t = Table(title="GPUs on this machine", title_justify="left")
        for col, j in (("#", "right"), ("name", "left"), ("total MiB", "right"), ("GiB", "right"),
                       ("free GiB", "right"), ("driver", "left"), ("CC", "left"), ("profile", "left"),
                       ("plan budget", "right")):
            t.add_column(col, justify=j)  # type: ignore[arg-type]
        for g in hw.gpus:
            free = "" if g.memory_free_bytes is None else f"{to_unit(g.memory_free_bytes, 'GiB'):.2f}"
            t.add_row(str(g.index), g.name, _mib(g.memory_total_bytes), f"{to_unit(g.memory_total_bytes, 'GiB'):.2f}",
                      free, g.driver_version or "", g.compute_capability or "",
                      g.matched_profile_id or "(raw budget)", gib(g.budget_bytes))
        c.print(t)
        for g in hw.gpus:
            c.print(Text(f"#{g.index}: {g.match_note}; plan budget = {g.budget_basis}", style="dim"), soft_wrap=True)
    if hw.system_memory is not None:
        m = hw.system_memory
        avail = "" if m.available_bytes is None else f", {gib(m.available_bytes)} available"
        c.print(f"system RAM: {gib(m.total_bytes)} ({gb(m.total_bytes)}){avail}")
    for n in hw.notes:
        c.print(Text(f"note: {n}", style="yellow"), soft_wrap=True)
