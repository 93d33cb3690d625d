"""The report as one self-contained HTML file with charts. EDGE.

Self-contained: styles inline, charts drawn by matplotlib (Agg backend, imported here only, when
this writer runs) and inlined as SVG with text as paths, so the file needs no network, no fonts and
no script. Three kinds of chart:

* memory per scenario: a horizontal stacked bar per scenario (weights, KV cache, activations,
  overhead, per GPU) with a black tick at the GPU's memory, one chart per model (long lists split);
* largest context that fits, per GPU: bars per configuration on a log2 axis of tokens;
* decode speed per GPU (tokens/s of one sequence at the report's shortest context), when any
  scenario runs on a catalog GPU (a raw budget has no bandwidth, so no speed).

Readable on a phone (the page never scrolls sideways: wide tables scroll inside their box, charts
scale to the width) and in print (no page break inside a chart, tables unfolded).
"""

from __future__ import annotations

import warnings

import html
import io
import re

from fitcalc import __version__
from fitcalc.core.report.result import Report, ScenarioResult
from fitcalc.edges.report.writers.view import (
    FAMILIES, Section, Table, build_view, config_label, family_bytes, models_in_order, speed_text, varying_columns,
    varying_parts,
)
from fitcalc.core.units import GiB

MAX_BARS = 40  # bars in one memory chart; a longer list is split over several charts
MAX_CHARTS = 12  # memory charts in one report; past that the tables carry the rest
MAX_SERIES = 8  # configurations in one max-context chart

# Okabe & Ito's colour-blind-safe palette (Okabe, Ito 2008, "Color Universal Design").
COLORS = {"weights": "#0072B2", "kv": "#CC79A7", "act": "#009E73", "overhead": "#E69F00"}
SERIES_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")

CSS = """
:root { color-scheme: light; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg-alt: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); background: #fff; }
header, main, footer { max-width: 110rem; margin: 0 auto; padding: 0 1.5rem; }
header { padding-top: 1rem; }
h1 { font-size: 1.6rem; margin: .5rem 0; } h2 { font-size: 1.25rem; margin: 1.8rem 0 .6rem;
     border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
p { margin: .4rem 0; } .muted { color: var(--muted); }
nav { display: flex; flex-wrap: wrap; gap: .3rem 1rem; font-size: .9rem; }
nav a { color: #0969da; text-decoration: none; }
.scroll { overflow-x: auto; max-width: 100%; -webkit-overflow-scrolling: touch; margin: .5rem 0 1rem; }
table { border-collapse: collapse; font-size: .85rem; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .55rem; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
td.long { white-space: normal; min-width: 14rem; overflow-wrap: anywhere; }
th { background: var(--bg-alt); position: sticky; top: 0; }
td.r, th.r { text-align: right; }
td.r { white-space: normal; }  /* "131,072 (model max)" breaks between words, never inside a number */
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
.v { display: inline-block; padding: 0 .45rem; border-radius: .7rem; font-weight: 600; font-size: .8rem; }
.v-fits, .s-pass { background: #dafbe1; color: #116329; }
.v-tight { background: #fff8c5; color: #7d4e00; }
.v-does-not-fit, .s-fail { background: #ffebe9; color: #a40e26; }
.s-unavailable { background: #eaeef2; color: #424a53; }
figure.chart { margin: 1rem 0 1.5rem; max-width: 64rem; break-inside: avoid; page-break-inside: avoid; }
details.more { margin: 1.8rem 0 .6rem; }
details.more > summary { cursor: pointer; font-size: 1.25rem; font-weight: 600; border-bottom: 1px solid var(--line);
                         padding-bottom: .2rem; }
details.more > summary .muted { font-size: .95rem; font-weight: 400; }
table.best td.long { min-width: 18rem; }
figure.chart svg { width: 100%; height: auto; display: block; }
figcaption { font-size: .85rem; color: var(--muted); }
footer { margin: 2rem auto 1rem; font-size: .8rem; color: var(--muted); }
ul.notes { padding-left: 1.2rem; font-size: .9rem; }
@media (max-width: 40rem) { body { font-size: 14px; } th, td { padding: .25rem .4rem; } }
@media print {
  body { font-size: 10pt; } nav { display: none; }
  .scroll { overflow: visible; } th { position: static; } details.more { display: block; }
  table { page-break-inside: auto; } tr { page-break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


# ---------------------------------------------------------------------------------------------
# charts
# ---------------------------------------------------------------------------------------------


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        from fitcalc.core.errors import FitcalcError

        raise FitcalcError("HTML reports draw their charts with matplotlib, which is not installed",
                           hint="pip install 'fitcalc[html]', or write .md or .json") from None

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "font.family": "DejaVu Sans"})
    return plt


_ID_RE = re.compile(r'\bid="([^"]+)"')


def _svg(fig, plt, prefix: str) -> str:
    """The figure as an inline <svg> element, its ids prefixed so several charts share a page safely."""
    plt.rcParams["svg.hashsalt"] = prefix  # stable ids: the same report renders the same bytes
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    for old in set(_ID_RE.findall(text)):
        new = f"{prefix}-{old}"
        text = text.replace(f'id="{old}"', f'id="{new}"').replace(f'"#{old}"', f'"#{new}"').replace(
            f"url(#{old})", f"url(#{new})")
    return text.replace("<svg ", '<svg role="img" ', 1)


def _row_label(r: ScenarioResult, named: bool, varying: set[str]) -> str:
    if named:
        return r.name
    return " · ".join([r.gpu, f"{r.fit.context:,} ctx", *varying_parts(r, varying)])


def _finish(plt, fig, ax, title: str, xlabel: str, legend_columns: int, prefix: str) -> str:
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left", fontsize=10)
    ax.grid(axis="x", color="#d0d7de", linewidth=0.6)
    ax.set_axisbelow(True)
    # above the bars: a tall chart's legend below them is off screen when the chart is read
    fig.legend(loc="outside upper center", ncol=legend_columns, frameon=False, fontsize=8)
    return _svg(fig, plt, prefix)


def memory_chart(plt, rows: list[ScenarioResult], labels: list[str], title: str, prefix: str) -> str:
    n = len(rows)
    fig, ax = plt.subplots(figsize=(8.0, 1.3 + 0.3 * n), layout="constrained")
    ys = list(range(n))[::-1]  # first scenario on top
    left = [0.0] * n
    for fam, label in FAMILIES:
        vals = [family_bytes(r)[fam] / GiB for r in rows]
        ax.barh(ys, vals, left=left, height=0.62, color=COLORS[fam], label=label, edgecolor="white", linewidth=0.4)
        left = [a + b for a, b in zip(left, vals)]
    caps = [r.fit.available_bytes / GiB for r in rows]
    ax.vlines(caps, [y - 0.42 for y in ys], [y + 0.42 for y in ys], colors="black", linewidth=2.2,
              label="GPU memory")
    right = max(max(left), max(caps))
    for y, r, total, cap in zip(ys, rows, left, caps):
        # Only what needs attention is written: a bar inside its tick says "fits" by itself. The
        # label starts clear of the tick and of the bar's end, whichever is further right.
        if r.fit.verdict != "fits":
            ax.text(max(total, cap) + right * 0.02, y, r.fit.verdict, va="center", fontsize=7,
                    color="#a40e26" if r.fit.verdict == "does not fit" else "#7d4e00")
    ax.set_yticks(ys, labels)
    ax.set_xlim(0, right * 1.16)
    return _finish(plt, fig, ax, title, "GiB per GPU (2^30 bytes)", 5, prefix)


def _tokens(n: float) -> str:
    return f"{int(n) // 1024}k" if n >= 1024 else str(int(n))


def _bars_by_gpu(plt, rows: list[ScenarioResult], varying: set[str], value, text, text_x, text_color):
    """Grouped horizontal bars: a group per GPU entry, one bar per configuration (a series, in the
    legend), each with its figure written beside it. The first row of each (configuration, GPU) is
    drawn. Returns (fig, ax)."""
    gpus: list[str] = []
    series: dict[str, dict[str, ScenarioResult]] = {}
    for r in rows:
        if r.gpu not in gpus:
            gpus.append(r.gpu)
        series.setdefault(config_label(r, varying), {}).setdefault(r.gpu, r)
    k = len(series)
    height = 0.8 / k
    fig, ax = plt.subplots(figsize=(8.0, 1.3 + 0.22 * ((k + 1) // 2) + len(gpus) * (0.2 * k + 0.2)),
                           layout="constrained")
    for j, (label, by_gpu) in enumerate(series.items()):
        ys, xs, texts = [], [], []
        for i, g in enumerate(gpus):
            r = by_gpu.get(g)
            if r is None:
                continue
            ys.append((len(gpus) - 1 - i) + 0.4 - height * (j + 0.5))
            xs.append(value(r) or 0)
            texts.append(text(r))
        ax.barh(ys, xs, height=height * 0.9, color=SERIES_COLORS[j % len(SERIES_COLORS)], label=label, left=0)
        for y, x, t in zip(ys, xs, texts):
            ax.text(text_x(x), y, t, va="center", fontsize=7, color=text_color(x))
    ax.set_yticks(range(len(gpus))[::-1], gpus)
    return fig, ax


def context_chart(plt, results: list[ScenarioResult], varying: set[str], title: str, prefix: str) -> str:
    values = [r.fit.max_context for r in results if r.fit.max_context]
    top = max(values) if values else 1024
    low = 512

    def text(r: ScenarioResult) -> str:
        v, lim = r.fit.max_context, r.fit.max_context_limit
        return "does not fit" if not v else f"{v:,}" + (" (model max)" if lim and v >= lim else "")

    fig, ax = _bars_by_gpu(plt, results, varying, lambda r: r.fit.max_context, text,
                           lambda x: (x if x else low) * 1.04, lambda x: "#a40e26" if not x else "#24292f")
    with warnings.catch_warnings():
        # Nothing fits: every bar is 0 wide and matplotlib warns that it cannot log-scale them
        # before the limits below apply; the chart is still right (each bar says "does not fit").
        warnings.filterwarnings("ignore", message="Data has no positive values", category=UserWarning)
        ax.set_xscale("log", base=2)
        ax.set_xlim(low, top * 6)
    ticks = [2**p for p in range(9, 30) if low <= 2**p <= top * 6]
    ax.set_xticks(ticks, [_tokens(t) for t in ticks])
    return _finish(plt, fig, ax, title, "largest context that fits (tokens per sequence, log scale)", 2, prefix)


def speed_chart(plt, rows: list[ScenarioResult], varying: set[str], title: str, prefix: str) -> str:
    """Decode tokens/s of one sequence, per configuration and GPU."""
    top = max((r.plan.decode_tokens_per_s or 0.0) for r in rows) or 1.0

    def text(r: ScenarioResult) -> str:
        if r.plan.decode_tokens_per_s is not None:
            return speed_text(r)
        return "does not fit" if r.plan.speed_status == "no fit" else "n/a (no bandwidth)"

    fig, ax = _bars_by_gpu(plt, rows, varying, lambda r: r.plan.decode_tokens_per_s, text,
                           lambda x: x + top * 0.01, lambda x: "#24292f" if x else "#57606a")
    ax.set_xlim(0, top * 1.18)
    return _finish(plt, fig, ax, title, "decode tokens/s of one sequence (roofline estimate)", 2, prefix)


def _by_model_if_many(rows: list[ScenarioResult], varying: set[str], title: str) -> list[tuple[str, list]]:
    """One chart for all rows, or one per model when there are more configurations than colours."""
    if len(dict.fromkeys(config_label(r, varying) for r in rows)) <= MAX_SERIES:
        return [(title, rows)]
    return [(f"{title}: {m}", [r for r in rows if r.model == m]) for m in models_in_order(rows)]


def speed_figures(plt, report: Report, start: int) -> list[str]:
    """Decode speed per GPU at the report's shortest context, when any row has a speed estimate."""
    matrix = [r for r in report.scenarios if r.origin == "matrix"]
    if not any(r.plan.decode_tokens_per_s is not None for r in matrix):
        return []
    varying = varying_columns(matrix)
    ctx = min(r.fit.context for r in matrix)
    rows = [r for r in matrix if r.fit.context == ctx]
    figs = []
    for title, part in _by_model_if_many(rows, varying, f"Decode speed per GPU at context {ctx:,}")[:MAX_CHARTS]:
        n = start + len(figs)
        svg = speed_chart(plt, part, varying, title, f"c{n}")
        figs.append(_figure(svg, "decode-speed", f"{title}: tokens per second of one sequence, the KV cache read at "
                                                 "that depth, on each configuration's GPUs without CPU offload.", n))
    return figs


def _figure(svg: str, kind: str, caption: str, n: int) -> str:
    return (f'<figure class="chart" data-chart="{kind}" id="chart-{n}">{svg}'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def memory_figures(plt, report: Report, start: int) -> tuple[list[str], list[str]]:
    """Memory charts (one per model, long lists split), and notes on what was left out."""
    matrix = [r for r in report.scenarios if r.origin == "matrix"]
    named = [r for r in report.scenarios if r.origin == "scenario"]
    varying = varying_columns(matrix)
    groups: list[tuple[str, list[ScenarioResult], bool]] = [
        (m, [r for r in matrix if r.model == m], False) for m in models_in_order(matrix)]
    if named:
        groups.append(("named scenarios", named, True))
    figs: list[str] = []
    shown = 0
    for title, rows, is_named in groups:
        size = -(-len(rows) // -(-len(rows) // MAX_BARS))  # even parts of at most MAX_BARS bars
        parts = [rows[i:i + size] for i in range(0, len(rows), size)]
        for k, part in enumerate(parts):
            if len(figs) >= MAX_CHARTS:
                break
            t = title if len(parts) == 1 else f"{title} ({k + 1} of {len(parts)})"
            labels = [_row_label(r, is_named, varying) for r in part]
            svg = memory_chart(plt, part, labels, t, f"c{start + len(figs)}")
            figs.append(_figure(svg, "memory", f"{t}: memory per GPU by term family against the GPU's memory "
                                               "(black tick).", start + len(figs)))
            shown += len(part)
    notes = []
    if shown < len(report.scenarios):
        notes.append(f"The charts show {shown:,} of {len(report.scenarios):,} scenarios; the tables below list all.")
    return figs, notes


def context_figures(plt, report: Report, start: int) -> list[str]:
    matrix = [r for r in report.scenarios if r.origin == "matrix"]
    if not matrix:
        return []
    varying = varying_columns(matrix)
    figs = []
    for title, rows in _by_model_if_many(matrix, varying, "Largest context that fits, per GPU")[:MAX_CHARTS]:
        n = start + len(figs)
        # One bar per configuration and GPU: the context asked for does not change the answer.
        svg = context_chart(plt, rows, varying, title, f"c{n}")
        figs.append(_figure(svg, "max-context", f"{title}: tokens per sequence at each configuration's batch.", n))
    return figs


# ---------------------------------------------------------------------------------------------
# page
# ---------------------------------------------------------------------------------------------


def _class(kind: str, value: str) -> str:
    if kind == "verdict":
        return f'<span class="v v-{value.replace(" ", "-")}">{_e(value)}</span>'
    if kind == "status":
        return f'<span class="v s-{value}">{_e("not available" if value == "unavailable" else value)}</span>'
    return _e(value)


def table_html(t: Table) -> str:
    head = "".join(f'<th class="{a}" scope="col">{_e(c)}</th>' for c, a in zip(t.columns, t.align))
    body = []
    for row in t.rows:
        body.append("<tr>" + "".join(f'<td class="{a}{" long" if k == "long" else ""}">{_class(k, v)}</td>'
                                     for v, a, k in zip(row, t.align, t.kinds)) + "</tr>")
    cap = f"<caption>{_e(t.caption)}</caption>" if t.caption else ""
    more = f'<p class="muted">{t.cut:,} more rows are in the JSON report.</p>' if t.cut else ""
    return (f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            f"</table></div>{more}")


def section_html(s: Section, figures: list[str], folded: str | None = None) -> str:
    """A section; ``folded``: inside a closed <details> whose summary line is that text."""
    if folded is not None:
        out = [f'<details class="more" id="{_e(s.anchor)}"><summary>{_e(s.title)} '
               f'<span class="muted">{_e(folded)}</span></summary>']
    else:
        out = [f'<section id="{_e(s.anchor)}"><h2>{_e(s.title)}</h2>']
    if s.bullets:
        out.append('<ul class="notes">' + "".join(f"<li>{_e(x)}</li>" for x in s.lines) + "</ul>")
    else:
        out += [f"<p>{_e(x)}</p>" for x in s.lines]
    out += figures
    out += [table_html(t).replace("<table>", '<table class="best">', 1) if s.anchor == "summary" else table_html(t)
            for t in s.tables]
    out.append("</details>" if folded is not None else "</section>")
    return "\n".join(out)


def _page_order(sections: list[Section], memory: Section | None) -> list[Section]:
    """The answer first: the summary, the largest-context chart and the memory charts, then the
    tables per model; the checks and the secondary tables after them, folded."""
    first = [s for s in sections if s.anchor in ("summary", "max-context")]
    main = [s for s in sections if s not in first and not s.details and s.anchor not in ("checks", "notes")]
    checks = [s for s in sections if s.anchor == "checks"]
    rest = [s for s in sections if s.details or s.anchor == "notes"]
    return [*first, *([memory] if memory else []), *main, *checks, *rest]


def _fold_line(s: Section, report: Report) -> str | None:
    if s.anchor == "checks":
        n = len(report.failed)
        return (f"({n:,} of {len(report.assertions):,} assertions did not hold; open for the list)" if n
                else f"(all {len(report.assertions):,} assertions hold)")
    return "(open for the table)" if s.details else None


def render_html(report: Report) -> str:
    plt = _pyplot()
    sections = build_view(report)
    mem, mem_notes = memory_figures(plt, report, 0)
    ctx = context_figures(plt, report, len(mem))
    speed = speed_figures(plt, report, len(mem) + len(ctx))
    memory = Section("Memory per scenario", anchor="memory", lines=[
        "Each bar is one scenario's footprint per GPU, stacked by term family; the black tick is the "
        "memory it is planned against. A bar past its tick does not fit.", *mem_notes])
    figures = {"max-context": ctx, "speed": speed, "memory": mem}
    body = []
    nav = []
    # a report of training scenarios only has no serving footprints to chart
    for s in _page_order(sections, memory if report.scenarios else None):
        body.append(section_html(s, figures.get(s.anchor, []), _fold_line(s, report)))
        nav.append(f'<a href="#{_e(s.anchor)}">{_e(s.title)}</a>')
    desc = f'<p>{_e(report.description.strip())}</p>' if report.description else ""
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(report.title)}</title>\n"
        '<link rel="icon" href="data:,">\n'
        f"<style>{CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{_e(report.title)}</h1>{desc}<nav>{''.join(nav)}</nav></header>\n<main>\n"
        + "\n".join(body)
        + f'\n</main>\n<footer>Sizes in GiB (2<sup>30</sup> bytes) per GPU. Made by fitcalc {_e(__version__)} '
          f"from {_e(report.spec_path or 'a report spec')}; the JSON report has every term in bytes.</footer>\n"
          "</body>\n</html>\n"
    )


__all__ = ["render_html", "memory_chart", "context_chart", "speed_chart"]
