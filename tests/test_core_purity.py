"""Core modules import only the standard library and pydantic (DESIGN.md sec. 1)."""

import subprocess
import sys

import pytest

CORE = ["fitcalc.units", "fitcalc.errors", "fitcalc.formats", "fitcalc.spec", "fitcalc.recipes",
        "fitcalc.estimate", "fitcalc.estimate.terms", "fitcalc.estimate.weights", "fitcalc.sizing",
        "fitcalc.exitcodes", "fitcalc.measure", "fitcalc.measure.compare", "fitcalc.measure.result"]
FORBIDDEN = ["torch", "typer", "rich", "yaml", "click", "numpy", "huggingface_hub", "matplotlib"]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_nothing_forbidden(module):
    code = (f"import sys, {module}\n"
            f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} pulled in {out.stdout.strip()}"


def test_size_command_does_not_import_torch():
    code = ("import sys\nfrom fitcalc.cli import app\nfrom typer.testing import CliRunner\n"
            "r = CliRunner().invoke(app, ['size', 'gpt-oss-20b', '--json'])\n"
            "assert r.exit_code == 0, r.output\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
