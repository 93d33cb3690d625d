"""Rich tables and bars for the terminal. EDGE: the one place rich is used.

Renderers take finished result models and a Console; they do no arithmetic beyond turning
bytes into text through ``fitcalc.core.units``.
"""

from __future__ import annotations

import os
import re
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fitcalc.core.units import format_bytes, format_params, to_unit


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
    from fitcalc.core.sizing import format_label

    c = out or console()
    title = f"{result.display_name} — {result.recipe_name}" + (" (coarse)" if result.coarse else "")
    t = Table(title=title, title_justify="left", show_footer=True)
    t.add_column("group", footer="total")
    t.add_column("params", justify="right", footer=format_params(result.params_total))
    t.add_column("active", justify="right", footer=format_params(result.params_active))
    t.add_column("format")
    t.add_column("bits/w", justify="right",
                 footer=f"{result.bits_per_weight:.3f}" if result.params_total else "")
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
    if result.published:
        _print_published(c, result.published)
    for n in result.notes:  # prose and formulas: wrapped between words, never inside a number
        c.print(Text(f"note: {n}", style="yellow"))
    for w in result.warnings:
        c.print(Text(f"warning: {w}", style="bold yellow"))
    if result.check is not None:
        render_check(result.check, c)
    if explain:
        c.print()
        c.print("[bold]derivation[/bold]")
        for line in result.explain:
            c.print(Text(line))


def _print_published(c: Console, published) -> None:
    """Published figure, fitcalc's and the difference in a table whose numbers never wrap; each source
    once below it, numbered, wrapped between words."""
    t = Table(show_header=True, box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="dim", style="dim")
    for col, j in (("published", "left"), ("", "right"), ("computed", "right"), ("", "right"), ("", "left")):
        t.add_column(col, justify=j, no_wrap=True, style="dim")  # type: ignore[arg-type]
    sources: dict[str, int] = {}
    for p in published:
        if p.unit == "params":
            shown, got = format_params(p.published), format_params(p.computed)
        elif p.unit == "bytes":
            shown, got = f"{p.published:,.0f} B", f"{p.computed:,.0f} B"
        else:
            shown, got = f"{p.published:g} {p.unit}", f"{p.computed:.3f} {p.unit}"
        n = sources.setdefault(p.source, len(sources) + 1)
        t.add_row(p.what, shown, got, f"{p.relative_error:+.2%}", f"[{n}]")
    c.print(t)
    for source, n in sources.items():
        c.print(Text(f"[{n}] {source}", style="dim"))


def render_models(rows, out: Console | None = None) -> None:
    """One line per model with its id whole, then every other name MODEL takes (the Hub repo first):
    names are never cut, a long list wraps between names."""
    c = out or console()
    c.print(Text("bundled models, in the checkpoint's own recipe (--json has every field)", style="bold"))
    t = Table(show_header=True, box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for col, j in (("id", "left"), ("params", "right"), ("active", "right"), ("on disk GiB", "right"),
                   ("native recipe", "left")):
        t.add_column(col, justify=j, no_wrap=col != "native recipe")  # type: ignore[arg-type]
    for r in rows:
        t.add_row(r.id, format_params(r.params_total), format_params(r.params_active),
                  f"{to_unit(r.disk_bytes, 'GiB'):,.2f}", r.recipe_name)
    c.print(t)
    c.print(Text("other names MODEL takes (the Hub repo first):", style="bold"))
    for r in rows:
        names = [n for n in [r.hf_repo, *r.aliases] if n]
        if names:
            c.print(Text(f"  {r.id}: " + ", ".join(names), style="dim"))


# ---------------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------------

_VERDICT_STYLE = {"fits": "bold green", "tight": "bold yellow", "does not fit": "bold red"}
_SEGMENTS = (("weights", "blue"), ("grads", "green"), ("master", "bright_blue"), ("optimizer", "red"),
             ("kv", "magenta"), ("act", "cyan"), ("overhead", "yellow"))


def capacity_bar(terms, available: int, width: int = 60) -> Text:
    """A stacked bar of the footprint against the device's capacity (one cell = max(available,
    footprint) / width). "over by" is said only when the bytes are over, never from cell rounding."""
    total = sum(t.bytes for t in terms)
    scale = max(available, total)
    cells = [(round(sum(t.bytes for t in terms if t.id.split(".")[0] == prefix) / scale * width), style)
             for prefix, style in _SEGMENTS]
    cap_cell = round(available / scale * width)
    extra = sum(n for n, _ in cells) - cap_cell
    if total <= available and extra > 0:
        # rounded up past the capacity line: take the surplus cells off the largest segments
        for i in sorted(range(len(cells)), key=lambda k: -cells[k][0]):
            cut = min(extra, cells[i][0])
            cells[i] = (cells[i][0] - cut, cells[i][1])
            extra -= cut
    bar = Text()
    for n, style in cells:
        bar.append("█" * n, style=style)
    used_cells = sum(n for n, _ in cells)
    if used_cells < cap_cell:
        bar.append("░" * (cap_cell - used_cells), style="dim")
    if total > available:
        bar.append(f" ▲ over by {format_bytes(total - available)}", style="red")
    return bar


def terms_table(terms) -> Table:
    """Term id, GiB, MB, kind and band, one row per term."""
    t = Table(show_header=True, box=None, pad_edge=False)
    t.add_column("term")
    t.add_column("GiB", justify="right")
    t.add_column("MB", justify="right")
    t.add_column("kind")
    t.add_column("±", justify="right")
    for term in terms:
        t.add_row(term.id, f"{to_unit(term.bytes, 'GiB'):.3f}", f"{to_unit(term.bytes, 'MB'):,.1f}", term.kind,
                  f"{term.band:.0%}" if term.band else "")
    return t


def _gpu_name(r) -> str:
    """The id a user types (rtx-4060-ti-16gb, h100-sxm:8), whole; a raw budget by its size."""
    name = r.device_id or r.device.removesuffix(" budget")
    return f"{name}:{r.count}" if r.count > 1 else name


def _num_gib(n: int) -> str:
    return f"{to_unit(n, 'GiB'):,.2f}"


def _context_cell(r) -> str:
    if r.max_context is None:
        return "—"
    return f"{r.max_context:,}" + (" max" if r.max_context_limit and r.max_context >= r.max_context_limit else "")


def fit_table(results) -> Table:
    """One row per GPU (and per engine where the engine changes the answer): every cell a whole value."""
    t = Table(show_header=True, box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for col, j in (("GPU", "left"), ("engine", "left"), ("verdict", "left"), ("needs/of GiB", "right"),
                   ("headroom ± GiB", "right"), ("max context", "right")):
        t.add_column(col, justify=j, no_wrap=col != "GPU")  # type: ignore[arg-type]
    for r in results:
        t.add_row(_gpu_name(r), r.engine, Text(r.verdict.upper(), style=_VERDICT_STYLE[r.verdict]),
                  f"{_num_gib(r.required_bytes)}/{_num_gib(r.available_bytes)}",
                  f"{_num_gib(r.headroom_bytes)} ± {_num_gib(r.uncertainty_bytes)}", _context_cell(r))
    return t


def _fit_footer(results) -> list[str]:
    """What the table's rows assume, said once: recipes per engine, how engines were chosen, the
    model's limit, where the terms are, and each distinct note."""
    r0 = results[0]
    recipes = dict.fromkeys(f"{r.engine} {r.recipe}" for r in results)
    lines = [f"recipe: {', '.join(recipes)}; KV cache: {', '.join(dict.fromkeys(str(r.kv_dtype) for r in results))}"]
    engines = list(dict.fromkeys(r.engine for r in results))
    if any(r.alternative for r in results):
        lines.append("engine: llama.cpp on consumer and Apple GPUs, vLLM on datacenter GPUs; a second row where "
                     "the other engine's verdict differs (--engine picks one)")
    elif len(engines) > 1:
        lines.append("engine: llama.cpp on consumer and Apple GPUs, vLLM on datacenter GPUs (--engine picks one)")
    if any(r.max_context_limit and r.max_context and r.max_context >= r.max_context_limit for r in results):
        lines.append(f"max: {r0.model}'s own maximum context, {r0.max_context_limit:,} tokens")
    if any(r.verdict == "does not fit" and not r.alternative for r in results):
        gpu = next(_gpu_name(r) for r in results if r.verdict == "does not fit" and not r.alternative)
        lines.append(f"does not fit: `fitcalc plan {r0.model} --gpu {gpu}` tries smaller recipes, CPU offload "
                     "and more GPUs")
    lines.append("every term of each footprint: --explain; every number in bytes: --json")
    return lines


def render_fit(results, explain: bool = False, out: Console | None = None) -> None:
    """The answer first: one line per GPU; ``explain`` adds each GPU's terms, bar and derivations."""
    c = out or console()
    if not results:
        return
    r0 = results[0]
    c.print(Text(f"{r0.model} at context {r0.context:,} × batch {r0.batch}", style="bold"))
    c.print(fit_table(results))
    for line in _fit_footer(results):
        c.print(Text(line, style="dim"))
    notes = dict.fromkeys(w for r in results for w in r.warnings)
    for r in results:
        if r.calibration is not None:
            notes.setdefault(r.calibration.note)
    for n in notes:
        c.print(Text(f"note: {n}", style="yellow"))
    if explain:
        c.print()
        render_fit_terms(results, out=c)


def render_fit_terms(results, out: Console | None = None) -> None:
    """Per GPU: the head line, the verdict, every term, the capacity bar, the context and KV capacity."""
    c = out or console()
    for r in results:
        count = f"{r.count} × " if r.count > 1 else ""
        # short lines, each value whole: no line here is longer than 80 columns for any catalog GPU
        c.print(Text(f"{r.model} on {count}{r.device}", style="bold"))
        c.print(f"{r.engine} — context {r.context:,} × batch {r.batch}, KV {r.kv_dtype}, recipe {r.recipe}")
        _print_terms_block(c, r.verdict, r.required_bytes, r.available_bytes, r.count, r.headroom_bytes,
                           r.uncertainty_bytes, r.terms)
        if r.max_context is None:
            c.print("max context: does not fit even at the smallest context", style="red")
        else:
            lim = " (the model's maximum)" if r.max_context_limit and r.max_context >= r.max_context_limit else ""
            c.print(f"max context at batch {r.batch}: {r.max_context:,} tokens{lim}; KV capacity "
                    f"{gib(r.kv_capacity_bytes)}" + (f" ≈ {r.kv_capacity_tokens:,} tokens" if r.kv_capacity_tokens
                                                     else ""))
        for term in r.terms:
            c.print(Text(term.explain, style="dim"))
        c.print()


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------


def _train_setup_lines(s) -> list[str]:
    """The method on one line, the step's shape on the next: each short enough for 80 columns."""
    if s.method == "full":
        what = "full fine-tuning"
    else:
        quant = f" on NF4{' + double quant' if s.double_quant else ''}" if s.method == "qlora" else ""
        what = f"{'QLoRA' if s.method == 'qlora' else 'LoRA'} r={s.rank} on {s.targets}{quant}"
    ckpt = ""
    if s.checkpointing:
        ckpt = ", gradient checkpointing" + (f" every {s.checkpoint_every} layers" if s.checkpoint_every > 1 else "")
    return [f"{what}, {s.precision}, {s.optimizer}",
            f"micro-batch {s.micro_batch} × {s.seq:,} tokens, {s.attention} attention, {s.loss} loss{ckpt}"]


def _train_name(r) -> str:
    name = r.device_id or r.label.removesuffix(" budget")
    return f"{name}:{r.count}" if r.count > 1 else name


def train_table(result) -> Table:
    """One row per GPU configuration: verdict, one GPU's need/of, headroom ± uncertainty, and what
    would fit (largest micro-batch at the sequence, largest sequence at the micro-batch, GPUs needed)."""
    t = Table(show_header=True, box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for col, j in (("GPU", "left"), ("verdict", "left"), ("needs/of GiB", "right"), ("headroom ± GiB", "right"),
                   ("max batch", "right"), ("max seq", "right"), ("GPUs", "right")):
        t.add_column(col, justify=j, no_wrap=col != "GPU")  # type: ignore[arg-type]
    for r in result.fits:
        t.add_row(_train_name(r), Text(r.verdict.upper(), style=_VERDICT_STYLE[r.verdict]),
                  f"{_num_gib(r.gpu_bytes)}/{_num_gib(r.memory_bytes)}",
                  f"{_num_gib(r.headroom_bytes)} ± {_num_gib(r.uncertainty_bytes)}",
                  f"{r.max_micro_batch:,}" if r.max_micro_batch else "—", f"{r.max_seq:,}" if r.max_seq else "—",
                  f"{r.gpus_needed:,}" if r.gpus_needed is not None else "—")
    return t


def _train_footer(result) -> list[str]:
    """What the table's columns mean and assume, each said once."""
    s = result.setup
    lines = [f"max batch: micro-batch at {s.seq:,} tokens; max seq: tokens at micro-batch {s.micro_batch}; "
             "GPUs: of that kind, same sharding"]
    if any(r.gpus_needed is None for r in result.fits):
        lines.append("GPUs —: more GPUs do not help without sharding (--zero 3 or --fsdp full)"
                     if s.zero == 0 and s.fsdp is None else
                     "GPUs —: none up to 1,024, what each GPU holds beyond its shard does not fit")
    for sharding in dict.fromkeys(r.sharding for r in result.fits):
        lines.append(f"sharding: {sharding}")
    for r in result.fits:
        if r.host_terms:
            lines.append(f"host RAM per node ({min(r.count, s.gpus_per_node)} GPUs), {_train_name(r)}: "
                         f"{gib(r.host_bytes)}")
    lines.append("every term per GPU: --explain; every number in bytes: --json")
    return lines


def render_train(result, explain: bool = False, out: Console | None = None) -> None:
    """The answer first, as fit gives it: one line per GPU configuration; ``explain`` adds each one's
    terms, capacity bar, host RAM terms and derivations."""
    c = out or console()
    setup = _train_setup_lines(result.setup)
    c.print(Text(f"{result.display_name} — {setup[0]}", style="bold"))
    c.print(setup[1])
    c.print(f"trains {format_params(result.params_trainable)} of {format_params(result.params_total)} parameters "
            f"({result.params_trainable:,}); weights held as {result.recipe}")
    c.print(train_table(result))
    for line in _train_footer(result):
        c.print(Text(line, style="dim"))
    notes = dict.fromkeys([*(n for r in result.fits for n in r.notes), *result.notes])
    for n in notes:
        c.print(Text(f"note: {n}", style="yellow"))
    if explain:
        for r in result.fits:
            c.print()
            _render_train_terms(c, r)


def _print_terms_block(c: Console, verdict: str, needed: int, available: int, count: int, headroom: int,
                       uncertainty: int, terms) -> None:
    """The verdict, needs/of, headroom ± uncertainty, the terms and the capacity bar: short lines, each
    value whole (fit's and train's --explain)."""
    v = Text(verdict.upper(), style=_VERDICT_STYLE[verdict])
    v.append(f"  needs {gib(needed)} of {gib(available)} ({gb(available)}){' per GPU' if count > 1 else ''}",
             style="default")
    c.print(v)
    c.print(f"headroom {format_bytes(headroom)} ± {format_bytes(uncertainty)}")
    c.print(terms_table(terms))
    # room for " ▲ over by 1,023.99 MiB" beside the bar, so it never wraps
    c.print(capacity_bar(terms, available, width=max(10, min(60, c.width - 24))))


def _render_train_terms(c: Console, r) -> None:
    count = f"{r.count} × " if r.count > 1 else ""
    c.print(Text(f"on {count}{r.label}", style="bold"))
    c.print(Text(r.sharding, style="dim"))
    _print_terms_block(c, r.verdict, r.gpu_bytes, r.memory_bytes, r.count, r.headroom_bytes, r.uncertainty_bytes,
                       r.terms)
    if r.host_terms:
        c.print(f"host RAM per node: {gib(r.host_bytes)}")
        c.print(terms_table(r.host_terms))
    for term in [*r.terms, *r.host_terms]:
        c.print(Text(term.explain, style="dim"))


def render_verify_train(r, out: Console | None = None) -> None:
    """One row per measured term: predicted, measured, error, tolerance, verdict."""
    c = out or console()
    c.print(Text(f"{r.model}, first {r.layers} layer{'s' if r.layers > 1 else ''} — {r.setup_text} — {r.device}",
                 style="bold"))
    t = Table(show_header=True, box=None, pad_edge=False)
    for col, just in (("term", "left"), ("predicted", "right"), ("measured", "right"), ("error", "right"),
                      ("tolerance", "right"), ("", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for row in r.rows:
        t.add_row(row.term, f"{row.predicted:,}", f"{row.measured:,}", f"{row.error:+.2%}", f"±{row.tolerance:.0%}",
                  Text("ok", style="green") if row.ok else Text("OUT", style="bold red"))
    c.print(t)
    c.print(f"peak of live tensors over the step: {gib(r.peak_measured)}; predicted total {gib(r.predicted_total)}")
    for n in r.notes:
        c.print(Text(f"note: {n}", style="yellow"))


# ---------------------------------------------------------------------------------------------
# gpus
# ---------------------------------------------------------------------------------------------


def _driver_mib(n: int) -> str:
    """MiB exactly when whole (driver totals usually are), else to one decimal."""
    whole, rest = divmod(n, 1 << 20)
    return f"{whole:,}" if rest == 0 else f"{n / (1 << 20):,.1f}"


def _tflops(rates: dict, key: str) -> str:
    v = rates.get(key)
    return "" if v is None else f"{v:g}"


def _typeable(aliases: list[str]) -> list[str]:
    """The aliases a shell takes unquoted (``4090``, ``h100-sxm5``); spaced spellings are the same
    names with spaces (--gpu ignores spacing and vendor words), so listing them adds nothing."""
    return [a for a in aliases if " " not in a]


def render_gpus(rows, out: Console | None = None) -> None:
    """One line per profile with its id whole and the aliases --gpu also takes; --json has the rest."""
    c = out or console()
    c.print(Text("GPU profiles (memory as the driver reports it; dense TFLOPS)", style="bold"))
    wide = c.width >= 110  # room for the driver's MiB and the vendor's label beside the GiB
    t = Table(show_header=True, box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    cols = [("id", "left"), *([("reported MiB", "right")] if wide else []), ("GiB", "right"),
            *([("label", "left")] if wide else []), ("GB/s", "right"), ("BF16", "right"), ("FP8", "right"),
            *([("FP4", "left")] if wide else []), ("also --gpu", "left")]
    for col, j in cols:
        t.add_column(col, justify=j, no_wrap=col not in ("also --gpu", "label"))  # type: ignore[arg-type]
    for r in rows:
        gib_text = f"{to_unit(r.memory_bytes, 'GiB'):.2f}"
        if r.unified_memory:
            gib_text = f"{to_unit(r.budget_bytes, 'GiB'):.2f}*"
        bf16 = _tflops(r.dense_tflops, "bf16") or _tflops(r.dense_tflops, "fp16")
        t.add_row(r.id, *([_driver_mib(r.memory_bytes)] if wide else []), gib_text,
                  *([r.marketed_memory] if wide else []), f"{to_unit(r.bandwidth_bytes_per_s, 'GB'):g}", bf16,
                  _tflops(r.dense_tflops, "fp8"),
                  *([",".join(f for f in r.native_formats if f in ("mxfp4", "nvfp4"))] if wide else []),
                  Text(", ".join(_typeable(r.aliases)), style="dim"))
    c.print(t)
    c.print(Text("GiB: nvidia-smi memory.total, rocm-smi/SYCL bytes; * unified memory: the GPU working set. "
                 "`fitcalc gpus --json` has every field (name, MiB as reported, the vendor's label, formats).",
                 style="dim"))


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
            t.add_row(str(g.index), g.name, _driver_mib(g.memory_total_bytes), f"{to_unit(g.memory_total_bytes, 'GiB'):.2f}",
                      free, g.driver_version or "", g.compute_capability or "",
                      g.matched_profile_id or "(raw budget)", gib(g.budget_bytes))
        c.print(t)
        for g in hw.gpus:
            c.print(Text(f"#{g.index}: {g.match_note}; plan budget = {g.budget_basis}", style="dim"))
    if hw.system_memory is not None:
        m = hw.system_memory
        avail = "" if m.available_bytes is None else f", {gib(m.available_bytes)} available"
        c.print(f"system RAM: {gib(m.total_bytes)} ({gb(m.total_bytes)}){avail}")
    for n in hw.notes:
        c.print(Text(f"note: {n}", style="yellow"))
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
                             style="yellow"))


# ---------------------------------------------------------------------------------------------
# report sweeps
# ---------------------------------------------------------------------------------------------

PROGRESS_MIN_SCENARIOS = 500  # a sweep this long gets a bar from the start
PROGRESS_AFTER_S = 1.0  # any shorter sweep gets one once it has run this long (about a second: issue #16)


class SweepProgress:
    """A rich progress bar on stderr for a long sweep, then one line with the count and the time.

    Call it as ``progress(done, total)``; it starts the bar on the first call of a sweep of at least
    ``PROGRESS_MIN_SCENARIOS`` and stops it at ``done == total``. The bar is transient (it leaves no
    trace in a terminal) and only drawn where stderr is a terminal; the closing line is always printed.
    """

    def __init__(self, label: str = "evaluating scenarios", enabled: bool = True):
        self.label = label
        self.enabled = enabled
        self._bar = None
        self._task = None
        self._t0 = 0.0

    def __call__(self, done: int, total: int) -> None:
        import time

        if not self.enabled:
            return
        if not self._t0:
            self._t0 = time.perf_counter()
        slow = time.perf_counter() - self._t0 >= PROGRESS_AFTER_S or total >= PROGRESS_MIN_SCENARIOS
        if self._bar is None and slow and done < total:
            c = console(stderr=True)
            if c.is_terminal:  # elsewhere (CI logs, pipes) a bar is noise: only the closing line
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                self._bar = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     console=c, transient=True)
                self._bar.start()
                self._task = self._bar.add_task(self.label, total=total)
        if self._bar is not None:
            self._bar.update(self._task, completed=done)
        if done >= total:
            self.close()
            dt = time.perf_counter() - self._t0
            if dt >= PROGRESS_AFTER_S or total >= PROGRESS_MIN_SCENARIOS:
                console(stderr=True).print(Text(f"evaluated {total:,} scenarios in {dt:.2f} s", style="dim"))

    def close(self) -> None:
        """Stop the bar (also when the sweep ends in an error)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


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
    c.print(head)
    used = ", ".join(f"{k} {v}" for k, v in result.settings.items() if v is not None)
    c.print(Text(f"settings: {used}; KV {result.kv_dtype}", style="dim"))
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
                 "calibration", style="dim"))
    for a in result.assumptions:
        c.print(Text(f"assumed: {a}", style="yellow"))
    for w in result.warnings:
        c.print(Text(f"warning: {w}", style="bold yellow"))
    for n in result.notes:
        c.print(Text(f"note: {n}", style="dim"))
    for r in result.rows:
        if r.note:
            c.print(Text(f"line {r.line} ({r.label}): {r.note}", style="dim"))
    if result.saved is not None:
        c.print(f"saved {result.saved} residual(s) to {result.store}")


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


def _print_run_steps(c: Console, flags) -> None:
    """What to paste, step by step: a command longer than the screen is continued with `` \\``
    between arguments (the shell reads it as one line), never wrapped inside an argument."""
    for step in flags.steps or [None]:
        c.print(Text("run:" if step is None or step.what == "run" else f"run ({step.what}):", style="bold"))
        for line in shell_continued(step.lines if step is not None else [flags.command], c.width - 2):
            c.print(Text("  " + line), soft_wrap=True)


def shell_continued(lines: list[str], width: int) -> list[str]:
    """``lines`` with each shell command wider than ``width`` split before its options, continued with
    a trailing backslash; here-document bodies (after ``<<'EOF'`` up to ``EOF``) are left whole, as
    the shell reads them verbatim."""
    out: list[str] = []
    in_heredoc = False
    for line in lines:
        if in_heredoc or len(line) <= width or " -" not in line:
            out.append(line)
        else:
            out.extend(_continued(line, width))
        if "<<'EOF'" in line or "<<EOF" in line:
            in_heredoc = True
        elif line == "EOF":
            in_heredoc = False
    return out


def _continued(line: str, width: int) -> list[str]:
    """One command as continued lines: breaks only before `` -`` (an option), so no argument is split."""
    parts = line.split(" -")
    rows: list[str] = [parts[0]]
    for part in parts[1:]:
        piece = "-" + part
        if len(rows[-1]) + 1 + len(piece) + 2 <= width:
            rows[-1] += " " + piece
        else:
            rows.append("    " + piece)
    return [r + " \\" for r in rows[:-1]] + [rows[-1]]


def _print_gpus_needed(c: Console, plan) -> None:
    if plan.gpus_needed is not None:
        gl = plan.gpus_needed_layout.description if plan.gpus_needed_layout else ""
        c.print(f"GPUs needed: {plan.gpus_needed} × {plan.gpus_needed_device} ({gl})")
        c.print(Text(f"  for the whole model on GPUs, {plan.gpus_needed_recipe}, context "
                     f"{plan.gpus_needed_context:,}", style="dim"))
    else:
        c.print(f"GPUs needed: more than {plan.max_gpus} × {plan.gpus_needed_device}")
        c.print(Text(f"  {plan.gpus_needed_recipe}, context {plan.gpus_needed_context:,}", style="dim"))


def _print_speed(c: Console, plan) -> None:
    """Decode and prefill on lines of their own; one table row per kind of device part."""
    s = plan.speed
    total = (f", {_rate(s.decode_tokens_per_s_total, 'tok/s')} for all {plan.batch}"
             if plan.batch > 1 and s.decode_tokens_per_s_total else "")
    c.print(f"speed: decode {_rate(s.decode_tokens_per_s, 'tok/s')} per sequence at depth "
            f"{s.decode_depth_tokens:,}{total}")
    if s.prefill_s is not None:
        c.print(f"       prefill {s.prefill_s:,.2f} s for {s.prompt_tokens:,} tokens")
    # Ranks of one tensor-parallel group read the same bytes in the same time: one row each kind.
    rows: dict[tuple, int] = {}
    for part in s.parts:
        key = (part.where, format_bytes(part.bytes_per_step), f"{part.time_s * 1e3:.2f} ms",
               f"{part.bound}-bound, efficiency {part.efficiency:g}")
        rows[key] = rows.get(key, 0) + 1
    t = Table(show_header=False, box=None, pad_edge=False, padding=(0, 1, 0, 0), style="dim")
    for _col, wraps in (("where", True), ("per step", False), ("time", False), ("bound", True)):
        t.add_column(no_wrap=not wraps)
    for (where, per_step, ms, bound), n in rows.items():
        t.add_row(f"  {f'{n} × ' if n > 1 else ''}{where}:", f"{per_step}/step", ms, bound)
    c.print(t)


def render_plan(plan, explain: bool = False, out: Console | None = None) -> None:
    c = out or console()
    head = Text(f"{plan.model} — {plan.engine} — {plan.recipe_name} ({plan.bits_per_weight:.2f} bits/weight), "
                f"KV {plan.kv_dtype}", style="bold")
    c.print(head)
    lay = plan.layout
    verdict = Text(plan.verdict.upper(), style=_VERDICT_STYLE[plan.verdict])
    verdict.append(f"  context {plan.context:,} × batch {plan.batch}" + (f" — {lay.description}" if lay else ""),
                   style="default")
    c.print(verdict)
    if plan.headroom_bytes is not None:  # a line of its own: never broken inside "± 1.01 GiB"
        c.print(f"headroom {format_bytes(plan.headroom_bytes)} ± {format_bytes(plan.uncertainty_bytes)}")
    t = Table(show_header=True, box=None, pad_edge=False)
    for col, j in (("#", "right"), ("device", "left"), ("holds", "left"), ("needs", "right"), ("of", "right"),
                   ("headroom", "right")):
        t.add_column(col, justify=j, no_wrap=col != "holds")  # type: ignore[arg-type]
    groups = _same_rows(plan.placement)
    for first, last in groups:
        d = plan.placement[first]
        idx = str(d.index) if first == last else f"{d.index}-{plan.placement[last].index}"
        role = d.role if first == last else _RANK.sub("", d.role) + f" (each of {last - first + 1} ranks)"
        t.add_row(idx, d.device_id or d.device, role, gib(d.required_bytes), gib(d.available_bytes),
                  Text(format_bytes(d.headroom_bytes), style="green" if d.fits else "red"))
    if plan.host is not None:
        h = plan.host
        avail = gib(h.available_bytes) if h.available_bytes is not None else "?"
        head_txt = format_bytes(h.headroom_bytes) if h.headroom_bytes is not None else "unchecked"
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
        bound = " (the search bound)" if plan.max_batch >= plan.max_batch_bound else ""
        noun = "sequence" if plan.max_batch == 1 else "sequences"
        c.print(f"largest batch at context {plan.context:,}: {plan.max_batch:,} {noun}{bound}")
    _print_gpus_needed(c, plan)
    if plan.speed is not None:
        _print_speed(c, plan)
    if plan.engine_flags is not None:
        _print_run_steps(c, plan.engine_flags)
    for info in plan.calibration:  # prose: wrapped between words
        c.print(Text(info.note, style="cyan"))
    for n in plan.notes + (plan.speed.notes if plan.speed else []):
        c.print(Text(f"note: {n}", style="yellow"))
    if explain:
        for d in plan.placement:
            c.print(Text(f"device {d.index} ({d.device}):", style="bold"))
            for term in d.terms:
                c.print(Text("  " + term.explain, style="dim"))
        if plan.host is not None:
            c.print(Text("RAM:", style="bold"))
            for term in plan.host.terms:
                c.print(Text("  " + term.explain, style="dim"))


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------


def _verify_table(*lead: tuple[str, str]) -> Table:
    t = Table(show_header=True, box=None, pad_edge=False)
    for col, j in (*lead, ("term", "left"), ("predicted MiB", "right"), ("measured MiB", "right"), ("error", "right"),
                   ("tolerance", "right"), ("", "left")):
        t.add_column(col, justify=j, no_wrap=True)  # type: ignore[arg-type]
    return t


def _verify_rows(t: Table, hows: dict[str, list[str]], r, lead: list[str]) -> None:
    """The term rows of one run (or one rank), then its working set and peak; ``hows`` collects
    how each row was measured."""
    for row in r.terms:
        t.add_row(*lead, row.id, _mib(row.predicted_bytes), _mib(row.measured_bytes), _err(row.error),
                  _tol(row.tolerance), _mark(row.ok))
        hows.setdefault(row.how, []).append(row.id)
    for name, chk in (("working (prefill)", r.working), ("peak", r.peak)):
        if chk is None:
            continue
        t.add_row(*lead, Text(name, style="bold"), _mib(chk.predicted_bytes), _mib(chk.measured_bytes),
                  _err(chk.error), _tol(chk.tolerance), _mark(chk.ok))
        hows.setdefault(chk.how, []).append(name)


def _print_hows(c: Console, hows: dict[str, list[str]]) -> None:
    for how, ids in hows.items():
        kinds = sorted({i.split(".")[0] + (".*" if "." in i else "") for i in ids})
        c.print(Text(f"  {', '.join(kinds)}: {how}", style="dim"))


def _render_verify_ranks(r, c: Console) -> None:
    """A distributed verify: one table, every rank's terms with its rank, then each rank's working
    set and peak against its share of the plan."""
    s, lay = r.settings, r.layout
    head = Text(f"{r.display_name}: {s.layers} of {s.layers_total} layers"
                f"{'' if s.include_embeddings else ' (no embeddings)'} on {lay.world_size} ranks "
                f"(tp {lay.tp}, pp {lay.pp}, ep {lay.ep}; {lay.backend}, {lay.launcher}"
                f"{f', {lay.nodes} machines' if lay.nodes > 1 else ''})", style="bold")
    head.append(f" — {r.device.name}, recipe {s.recipe}, context {s.context:,} × batch {s.batch}, KV {s.kv_dtype}, "
                f"prefill {s.prompt_tokens:,} tokens in chunks of {s.chunk_tokens}, then 1 decode step",
                style="default")
    c.print(head)
    t = _verify_table(("#", "right"))
    hows: dict[str, list[str]] = {}
    for k in r.ranks:
        _verify_rows(t, hows, k, [str(k.rank)])
        t.add_row(*[""] * 7)
    c.print(t)
    _print_hows(c, hows)
    for k in r.ranks:
        line = f"rank {k.rank} ({k.node}, {k.device.name}): {k.role}"
        rd = k.readings
        if k.device.kind == "cpu" and rd.get("rss_high_water"):
            line += f"; RSS peak {gib(rd['rss_high_water'])} (+{gib(rd['rss_delta'])})"
        if k.device.kind == "cuda" and rd.get("max_reserved"):
            line += f"; max reserved {gib(rd['max_reserved'])}"
        if k.timings:
            line += "; " + ", ".join(f"{n} {v:.1f} s" for n, v in k.timings.items())
        c.print(Text(line, style="dim"))
    c.print(Text(f"wall time {r.timings.get('wall', 0):.1f} s for the run (start-up included)", style="dim"))
    for n in r.notes:
        c.print(Text(f"note: {n}", style="yellow"))
    if r.oom is not None:
        c.print(Text(f"DOES NOT FIT, measured: rank {r.oom.rank} ran out of memory at {r.oom.phase} with "
                     f"{gib(r.oom.live_bytes)} of tensors live (its predicted share {gib(r.oom.predicted_bytes)}): "
                     f"{r.oom.message}", style="bold red"))
    elif r.ok:
        c.print(Text("VERIFIED: every measured term of every rank within its tolerance", style="bold green"))
    else:
        c.print(Text(f"OUT OF TOLERANCE: {', '.join(r.failures)}", style="bold red"))


def shows_progress(json_out: bool = False) -> bool:
    """Progress goes to stderr only for a person watching: stdout a terminal, not --json."""
    return not json_out and sys.stdout.isatty()


class PhaseProgress:
    """``progress(message)`` for a long measurement: each phase and the work done inside it
    (layers, tokens), with the seconds since the start, on stderr; silent when ``enabled`` is False."""

    def __init__(self, enabled: bool, label: str = "verify"):
        import time

        self.enabled = enabled
        self.label = label
        self._t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        import time

        if self.enabled:
            dt = time.monotonic() - self._t0
            console(stderr=True).print(Text(f"{self.label} [{dt:6.1f} s] {message}", style="dim"))


class LateProgress(PhaseProgress):
    """PhaseProgress that stays silent for the first PROGRESS_AFTER_S seconds: a quick read shows nothing."""

    def __call__(self, message: str) -> None:
        import time

        if time.monotonic() - self._t0 >= PROGRESS_AFTER_S:
            super().__call__(message)


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
    if getattr(r, "ranks", None) is not None:
        _render_verify_ranks(r, c)
        return
    s = r.settings
    head = Text(f"{r.display_name}: {s.layers} of {s.layers_total} layers"
                f"{'' if s.include_embeddings else ' (no embeddings)'} on {r.device.name}", style="bold")
    head.append(f" — recipe {s.recipe}, context {s.context:,} × batch {s.batch}, KV {s.kv_dtype}, "
                f"prefill {s.prompt_tokens:,} tokens in chunks of {s.chunk_tokens}, then 1 decode step",
                style="default")
    c.print(head)
    t = _verify_table()
    hows: dict[str, list[str]] = {}
    _verify_rows(t, hows, r, [])
    c.print(t)
    _print_hows(c, hows)
    x = r.extrapolation
    if x is not None:
        rest = [e for e in x.terms if e.id.startswith(("weights.", "kv."))]
        line = Text(f"whole model ({x.layers} layers): predicted {gib(x.predicted_bytes)}, extrapolated from the "
                    f"measurement {gib(x.measured_bytes) if x.measured_bytes is not None else '—'} "
                    f"({_err(x.error)})", style="bold")
        c.print(line)
        if rest:
            parts = [f"{e.id} {_err(e.error)}" for e in rest]
            c.print(Text("  " + ", ".join(parts), style="dim"))
        if x.missing_signatures:
            c.print(Text(f"  note: {x.note}", style="yellow"))
    rd = r.readings
    if r.device.kind == "cpu" and rd.get("rss_high_water"):
        c.print(Text(f"process RSS: {gib(rd['rss_before'])} before the stack, peak {gib(rd['rss_high_water'])} "
                     f"(+{gib(rd['rss_delta'])}); tracked tensor peak {gib(r.peak.measured_bytes or 0)}", style="dim"))
    if r.device.kind == "cuda" and rd.get("max_reserved"):
        c.print(Text(f"torch.cuda: max allocated {gib(rd['max_allocated'])}, max reserved {gib(rd['max_reserved'])}",
                     style="dim"))
    if r.timings:
        c.print(Text("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items()), style="dim"))
    for n in r.notes:
        c.print(Text(f"note: {n}", style="yellow"))
    if r.oom is not None:
        c.print(Text(f"DOES NOT FIT, measured at {r.oom.phase}: out of memory with {gib(r.oom.live_bytes)} of tensors "
                     f"live (predicted stack {gib(r.oom.predicted_bytes)}): {r.oom.message}", style="bold red"))
    elif r.ok:
        c.print(Text("VERIFIED: every measured term within its tolerance", style="bold green"))
    else:
        c.print(Text(f"OUT OF TOLERANCE: {', '.join(r.failures)}", style="bold red"))
