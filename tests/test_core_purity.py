"""Core modules import only the standard library and pydantic (DESIGN.md sec. 1)."""

import subprocess
import sys

import pytest

CORE = ["fitcalc.units", "fitcalc.errors", "fitcalc.formats", "fitcalc.spec", "fitcalc.recipes",
        "fitcalc.estimate", "fitcalc.estimate.terms", "fitcalc.estimate.weights", "fitcalc.sizing",
        "fitcalc.exitcodes", "fitcalc.checkpoint", "fitcalc.report.spec", "fitcalc.report.result",
        "fitcalc.report.matrix", "fitcalc.report.checks", "fitcalc.report.baseline", "fitcalc.plan",
        "fitcalc.calibration", "fitcalc.reconcile.model", "fitcalc.reconcile.parsers", "fitcalc.reconcile.compare",
        "fitcalc.estimate.footprint", "fitcalc.estimate.kvcache", "fitcalc.estimate.activations",
        "fitcalc.estimate.overhead", "fitcalc.engines", "fitcalc.flags", "fitcalc.estimate.placement",
        "fitcalc.estimate.speed", "fitcalc.measure", "fitcalc.measure.compare", "fitcalc.measure.result",
        "fitcalc.measure.job"]
FORBIDDEN = ["torch", "typer", "rich", "yaml", "click", "numpy", "huggingface_hub", "matplotlib", "psutil"]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_nothing_forbidden(module):
    code = (f"import sys, {module}\n"
            f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} pulled in {out.stdout.strip()}"


@pytest.mark.parametrize("args", [["size", "gpt-oss-20b", "--json"], ["fit", "gpt-oss-20b", "--gpu", "4090"],
                                  ["plan", "gpt-oss-20b", "--gpu", "24GiB", "--ram", "64GiB", "--json"]])
def test_calculator_commands_do_not_import_torch(args):
    code = ("import sys\nfrom fitcalc.cli import app\nfrom typer.testing import CliRunner\n"
            f"r = CliRunner().invoke(app, {args!r})\n"
            "assert r.exit_code == 0, r.output\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bundled_size_does_not_import_the_readers_of_real_files():
    # huggingface_hub, gguf and numpy are for Hub ids and GGUF files only (lazy imports).
    code = ("import sys\nfrom fitcalc.cli import app\nfrom typer.testing import CliRunner\n"
            "r = CliRunner().invoke(app, ['size', 'gpt-oss-20b', '--json'])\n"
            "assert r.exit_code == 0, r.output\n"
            "print(','.join(m for m in ('huggingface_hub', 'gguf', 'numpy', 'httpx2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
