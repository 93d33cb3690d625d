import os

import pytest

# Rich renders to a pinned width in every CLI test, so tables do not depend on the terminal.
os.environ.setdefault("FITCALC_WIDTH", "120")
os.environ.setdefault("COLUMNS", "120")


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture
def app():
    from fitcalc.shell.cli import app

    return app


# Golden files (tests/golden/): compared byte for byte; `pytest --regen-golden` (or
# FITCALC_REGEN_GOLDEN=1) rewrites them from the current output instead, for a reviewed change.
def pytest_addoption(parser):
    parser.addoption("--regen-golden", action="store_true", default=False,
                     help="rewrite tests/golden/ files from the current output instead of comparing")


@pytest.fixture
def golden(request):
    from pathlib import Path

    regen = request.config.getoption("--regen-golden") or os.environ.get("FITCALC_REGEN_GOLDEN") == "1"
    folder = Path(__file__).parent / "golden"

    def check(name: str, text: str) -> None:
        path = folder / name
        if regen:
            path.write_text(text, encoding="utf-8")
            return
        assert path.exists(), f"{path} is missing: run pytest --regen-golden once and review it"
        expected = path.read_text(encoding="utf-8")
        assert text == expected, f"{name} differs from the golden file (pytest --regen-golden rewrites it)"

    return check
