"""The HTML report in a real headless Chromium (Debian's `chromium`; `.ci/run` installs it).

Loaded from a file:// URL with the network unused: the charts are found and have a size, nothing
is logged as an error (console errors, uncaught exceptions, failed loads), the page does not scroll
sideways on a phone-sized screen, and it prints to PDF. Screenshots (desktop full page, phone) and
the PDF are kept in test-artifacts/ (gitignored). tests/browser.py explains the DevTools pipe.

Skips, saying why, only where no Chromium is installed.
"""

from pathlib import Path

import pytest

from tests.browser import Browser, find_chromium

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SMALL = ROOT / "tests" / "golden" / "report-small.yaml"

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium found: install Debian's `chromium` package (apt-get install chromium; "
                             ".ci/run does) or set FITCALC_CHROMIUM to a Chromium binary")


@pytest.fixture(scope="module")
def html_file(tmp_path_factory) -> Path:
    from fitcalc import api
    from fitcalc.edges.report.writers import render

    out = tmp_path_factory.mktemp("html") / "report.html"
    out.write_text(render(api.report(str(SMALL)), "html"), encoding="utf-8")
    return out


def test_report_in_chromium(html_file):
    with Browser(CHROMIUM) as b:  # type: ignore[arg-type]
        b.viewport(1280, 900)
        b.open(html_file.as_uri())
        assert b.js("document.title") == "gpt-oss-20b on two budgets"
        charts = b.js("""Array.from(document.querySelectorAll('figure.chart')).map(f => {
            const s = f.querySelector('svg'); const r = s ? s.getBoundingClientRect() : null;
            return {kind: f.dataset.chart, w: r ? r.width : 0, h: r ? r.height : 0,
                    paths: s ? s.querySelectorAll('path').length : 0}; })""")
        assert [c["kind"] for c in charts] == ["max-context", "memory", "memory"]
        for c in charts:
            assert c["w"] > 600 and c["h"] > 100, c  # drawn, at the width of the page
            assert c["paths"] > 20, c  # bars, ticks and glyphs are there, not an empty frame
        rows = b.js("document.querySelectorAll('table tbody tr').length")
        assert rows >= 3 * 14  # every scenario in the model tables, the speed table and the breakdown
        b.screenshot(ARTIFACTS / "report-desktop.png")
        # the answer leads: the best-GPU table is on the first screen, the first chart starts within the
        # second, and the checks are a closed fold below the charts
        best_top, chart_top, checks_top, checks_open = b.js("""[
            document.querySelector('table.best').getBoundingClientRect().top + scrollY,
            document.querySelector('figure.chart').getBoundingClientRect().top + scrollY,
            document.querySelector('#checks').getBoundingClientRect().top + scrollY,
            document.querySelector('#checks').open]""")
        assert best_top < 900 and chart_top < 2 * 900 and chart_top < checks_top and checks_open is False

        b.viewport(1600, 1000)  # a wide screen: tables use its width, none scrolls inside its box
        b.open(html_file.as_uri())
        cut = b.js("""Array.from(document.querySelectorAll('div.scroll')).filter(
            d => d.scrollWidth > d.clientWidth + 1).map(d => d.querySelector('caption, th').textContent)""")
        assert cut == [], f"tables cut at 1600 px: {cut}"
        b.screenshot(ARTIFACTS / "report-wide.png")

        b.viewport(390, 844, mobile=True, scale=2)  # a phone: 390 CSS px wide
        b.open(html_file.as_uri())
        width, inner = b.js("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width <= inner, f"the page scrolls sideways on a phone: {width} > {inner}"
        chart_w = b.js("document.querySelector('figure.chart svg').getBoundingClientRect().width")
        assert 300 <= chart_w <= inner
        b.screenshot(ARTIFACTS / "report-phone.png", full_page=False)

        pdf = b.pdf()
        assert pdf.startswith(b"%PDF-") and len(pdf) > 10_000
        (ARTIFACTS / "report-print.pdf").write_bytes(pdf)

        assert b.problems() == []
    png = (ARTIFACTS / "report-desktop.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 50_000


def test_the_harness_sees_console_errors(tmp_path):
    """The check above could not pass by missing errors: a page with three kinds of error shows all three."""
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><title>broken</title><script>console.error('boom')</script>"
                    "<img src='missing.png'><script>throw new Error('thrown')</script>")
    with Browser(CHROMIUM) as b:  # type: ignore[arg-type]
        b.open(page.as_uri())
        problems = b.problems()
    assert any("console.error: boom" in p for p in problems), problems
    assert any("exception" in p and "thrown" in p for p in problems), problems
    assert any("missing.png" in p for p in problems), problems
