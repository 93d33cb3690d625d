"""The HTML report, read as text: self-contained, charts inline, tables, stable output.

tests/report/test_html_browser.py loads the same file in a real browser.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "golden" / "report-small.yaml"


@pytest.fixture(scope="module")
def page() -> str:
    from fitcalc import api
    from fitcalc.edges.report.writers import render

    return render(api.report(str(SMALL)), "html")


def test_self_contained(page):
    # No reference to anything outside the file: no scripts, stylesheets, images or fonts to fetch.
    assert "<script" not in page.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!#|data:)""", page), "a src/href leaves the file"
    assert "@import" not in page and "url(http" not in page
    assert "@font-face" not in page  # matplotlib draws text as paths
    # The only http(s) strings are XML namespace names inside the SVGs (never fetched).
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink", "http://purl.org/dc/elements/1.1/",
                    "http://creativecommons.org/ns#", "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
                    "http://purl.org/dc/dcmitype/StillImage"}, urls


def test_charts_are_inline_svg(page):
    figures = re.findall(r'<figure class="chart" data-chart="([a-z-]+)" id="chart-\d+"><svg ', page)
    # the max-context chart first (the answer per GPU), then one memory chart for the model's 12 matrix
    # rows and one for the named scenarios
    assert figures == ["max-context", "memory", "memory"]
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "every id on the page is unique (the SVGs' ids are prefixed)"


def test_tables_and_phone_and_print_styles(page):
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "@media print" in page and "break-inside: avoid" in page
    assert page.count('<div class="scroll"><table>') >= 4
    assert '<span class="v v-does-not-fit">does not fit</span>' in page
    assert "laptop-8g" in page


def test_same_report_renders_the_same_bytes():
    from fitcalc import api
    from fitcalc.edges.report.writers import render

    rep = api.report(str(SMALL))
    assert render(rep, "html") == render(rep, "html")


def test_without_matplotlib_html_is_one_clear_error(runner, app, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(SMALL), "-o", str(out)])
    assert r.exit_code == 1
    assert "matplotlib" in r.stderr and "fitcalc[html]" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_decode_speed_chart_and_column(tmp_path):
    """With catalog GPUs the page charts decode speed per GPU and lists it per scenario; a raw budget's
    bar says why it has none."""
    from fitcalc import api
    from fitcalc.edges.report.writers import render

    spec = tmp_path / "speed.yaml"
    spec.write_text("models: [gpt-oss-20b]\ngpus: [rtx-4090, h100-sxm, 16GiB]\ncontexts: [8192, 32k]\n"
                    "engines: [llama.cpp, vllm]\n")
    rep = api.report(str(spec))
    page = render(rep, "html")
    figures = re.findall(r'<figure class="chart" data-chart="([a-z-]+)" id="chart-\d+"><svg ', page)
    assert figures == ["max-context", "memory", "decode-speed"]
    assert "Decode speed per GPU at context 8,192" in page
    card = next(r for r in rep.scenarios if r.gpu == "rtx-4090" and r.fit.engine == "llama.cpp")
    v = card.plan.decode_tokens_per_s
    assert v is not None and v >= 100
    assert f'<td class="r">{v:,.0f}</td>' in page  # the tok/s column
    assert '<td class="r">n/a</td>' in page and "no memory bandwidth" in page  # the 16GiB budget


def test_the_page_leads_with_the_answer(page):
    """Issue #16: the summary (counts and the best GPU per model) and the charts come first; the
    assertions, even failed ones, are folded below them."""
    summary = page.index('<section id="summary">')
    best = page.index('<table class="best">')
    first_chart = page.index('<figure class="chart"')
    checks = page.index('<details class="more" id="checks">')
    assert summary < best < first_chart < checks
    # report-small.yaml has failing assertions: the fold says how many, the table is inside it
    fold = page[checks:page.index("</details>", checks)]
    assert re.search(r"<summary>Checks <span class=\"muted\">\(\d+ of \d+ assertions did not hold", fold)
    assert '<span class="v s-fail">fail</span>' in fold
    # the best-GPU table names the smallest budget that holds gpt-oss-20b (16GiB of 8GiB, 16GiB, 24GiB...)
    # and its largest context there (the figure the max-context table shows in its 16GiB column)
    row = page[best:page.index("</table>", best)]
    assert "gpt-oss-20b" in row and "16GiB" in row and "108,544" in row
