"""Core modules import only the standard library and pydantic (DESIGN.md sec. 1): each module under
fitcalc/core/ is imported in a fresh interpreter and must load none of the forbidden packages."""

import subprocess
import sys
from pathlib import Path

import pytest

def _core_modules() -> list[str]:
    """Every module under fitcalc/core/, by location: a new core module is covered without a list."""
    root = Path(__file__).resolve().parents[1] / "fitcalc" / "core"
    out = []
    for f in sorted(root.rglob("*.py")):
        parts = f.relative_to(root.parents[1]).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


CORE = _core_modules()
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
    code = ("import sys\nfrom fitcalc.shell.cli import app\nfrom typer.testing import CliRunner\n"
            f"r = CliRunner().invoke(app, {args!r})\n"
            "assert r.exit_code == 0, r.output\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bundled_size_does_not_import_the_readers_of_real_files():
    # huggingface_hub, gguf and numpy are for Hub ids and GGUF files only (lazy imports).
    code = ("import sys\nfrom fitcalc.shell.cli import app\nfrom typer.testing import CliRunner\n"
            "r = CliRunner().invoke(app, ['size', 'gpt-oss-20b', '--json'])\n"
            "assert r.exit_code == 0, r.output\n"
            "print(','.join(m for m in ('huggingface_hub', 'gguf', 'numpy', 'httpx2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
