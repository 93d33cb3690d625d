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
    from fitcalc.cli import app

    return app
