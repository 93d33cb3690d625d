"""Cold-start wall time of the calculator path, beside the imports it cannot avoid.

Prints the median of N runs of each command (a fresh interpreter each time):
  baseline:  python -c "import typer, rich, pydantic, yaml"
  floor:     the same plus pydantic.BaseModel and rich's console/table (what any command loads)
  help:      fitcalc --help
  size:      fitcalc size gpt-oss-20b (and --json)
  fit:       fitcalc fit gpt-oss-20b --gpu rtx-4090
  plan:      fitcalc plan gpt-oss-20b --gpu rtx-4090
and the ratio to the baseline (target: size within 1.5x). Also checks that torch was not imported.
A command that fails prints "(command not available or failed)" instead of a time.

    python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CASES = {
    "baseline": [sys.executable, "-c", "import typer, rich, pydantic, yaml"],
    # `import pydantic` is lazy: the baseline never loads pydantic's model machinery or rich's
    # console and tables, which any command that validates a spec and prints a table needs.
    "floor": [sys.executable, "-c", "import typer, rich, pydantic, yaml; from pydantic import BaseModel, "
              "TypeAdapter; import rich.console, rich.table"],
    # what typer itself does before any command runs: its click adapter, and (typer >= 0.25) a
    # pydantic TypeAdapter per parameter of the command invoked: a cost fitcalc cannot remove
    "typer floor": [sys.executable, "-c", "import typer\napp = typer.Typer()\n@app.command()\n"
                    "def size(model: str, recipe: str = None, json_out: bool = False, explain: bool = False, "
                    "source: str = 'auto', check: bool = False):\n    pass\napp(['m'], standalone_mode=False)"],
    "help": [sys.executable, "-m", "fitcalc", "--help"],
    "size": [sys.executable, "-m", "fitcalc", "size", "gpt-oss-20b"],
    "size --json": [sys.executable, "-m", "fitcalc", "size", "gpt-oss-20b", "--json"],
    "fit": [sys.executable, "-m", "fitcalc", "fit", "gpt-oss-20b", "--gpu", "rtx-4090"],
    "plan": [sys.executable, "-m", "fitcalc", "plan", "gpt-oss-20b", "--gpu", "rtx-4090"],
}


# Users run with bytecode caching on; a sandbox's PYTHONDONTWRITEBYTECODE would make every run
# recompile fitcalc's sources (tens of ms) and measure something nobody sees.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(cmd: list[str]) -> float | None:
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    dt = time.perf_counter() - t
    return dt if r.returncode in (0, 3) else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    for cmd in CASES.values():  # warm the page cache and the .pyc files
        wall(cmd)
    medians: dict[str, float] = {}
    for name, cmd in CASES.items():
        times = [wall(cmd) for _ in range(args.runs)]
        if any(t is None for t in times):
            print(f"{name:<12} (command not available or failed)")
            continue
        medians[name] = statistics.median(times)  # type: ignore[arg-type]
    base = medians["baseline"]
    for name, m in medians.items():
        print(f"{name:<12} median {m * 1000:7.1f} ms   {m / base:4.2f}x baseline")
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys, runpy; sys.argv=['fitcalc','size','gpt-oss-20b','--json'];\n"
         "from fitcalc.shell import cli\ntry:\n cli.main()\nexcept SystemExit: pass\n"
         "print('torch imported' if 'torch' in sys.modules else 'torch not imported', file=sys.stderr)"],
        capture_output=True, text=True, env=ENV)
    print(probe.stderr.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
