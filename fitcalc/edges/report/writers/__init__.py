"""Report writers: Markdown, self-contained HTML, JSON/YAML and JUnit XML. EDGE.

``render(report, fmt)`` returns the whole document as text; nothing is written until it is complete
(``fitcalc.edges.report.output.write_atomic`` then replaces the target in one step). matplotlib is imported
by the HTML writer only, and only when it runs.
"""

from __future__ import annotations

from fitcalc.core.report.result import Report

FORMATS = ("md", "html", "json", "yaml")


def render(report: Report, fmt: str) -> str:
    if fmt == "md":
        from fitcalc.edges.report.writers.markdown import render_markdown

        return render_markdown(report)
    if fmt == "html":
        from fitcalc.edges.report.writers.html import render_html

        return render_html(report)
    if fmt in ("json", "yaml"):
        from fitcalc.edges.report.writers.json import render_json, render_yaml

        return render_json(report) if fmt == "json" else render_yaml(report)
    raise ValueError(fmt)
