"""The report as GitHub-flavoured Markdown: for a step summary or a pull-request comment. EDGE.

Tables only (no HTML beyond ``<details>`` for the secondary breakdown, which GitHub folds), verdicts
with a symbol so a failing row stands out in a long table.
"""

from __future__ import annotations

from fitcalc.core.report.result import Report
from fitcalc.edges.report.writers.view import Section, Table, build_view

_VERDICT = {"fits": "✅ fits", "tight": "⚠️ tight", "does not fit": "❌ does not fit"}
_STATUS = {"pass": "✅ pass", "fail": "❌ fail", "unavailable": "❔ not available"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_md(t: Table) -> list[str]:
    out = []
    if t.caption:
        out += [f"**{_cell(t.caption)}**", ""]
    out.append("| " + " | ".join(_cell(c) for c in t.columns) + " |")
    out.append("|" + "|".join("---:" if a == "r" else ":---" for a in t.align) + "|")
    for row in t.rows:
        cells = []
        for kind, value in zip(t.kinds, row):
            if kind == "verdict":
                value = _VERDICT.get(value, value)
            elif kind == "status":
                value = _STATUS.get(value, value)
            cells.append(_cell(value))
        out.append("| " + " | ".join(cells) + " |")
    if t.cut:
        out += ["", f"_{t.cut:,} more rows are in the JSON report._"]
    return out


def section_md(s: Section) -> list[str]:
    out = [f"<details><summary><b>{s.title}</b></summary>", ""] if s.details else [f"## {s.title}", ""]
    if s.bullets:
        out += [f"- {line}" for line in s.lines] + [""]
    else:
        for line in s.lines:
            out += [line, ""]
    for t in s.tables:
        out += table_md(t) + [""]
    if s.details:
        out += ["</details>", ""]
    return out


def render_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    if report.description:
        lines += [report.description.strip(), ""]
    for s in build_view(report):
        lines += section_md(s)
    lines.append("_Sizes in GiB (2^30 bytes) per GPU. Made by fitcalc from "
                 f"{report.spec_path or 'a report spec'}; the JSON report has every term in bytes._")
    return "\n".join(lines).rstrip() + "\n"
