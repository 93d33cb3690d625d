"""Wall time of `fitcalc plan` from a cold interpreter (target: under 0.5 s, without torch).

Prints the median and the spread of N runs of each command, each in a fresh interpreter:
  plan:          fitcalc plan gpt-oss-20b --gpu 24GiB
  plan offload:  fitcalc plan gpt-oss-120b --gpu 24GiB --ram 64GiB --engine llama.cpp --context 32k
  plan R1:       fitcalc plan deepseek-r1 --gpu 80GB:8 --ram 512GiB
and whether torch was imported by the first (it must not be).

    python benchmarks/plan_speed.py [--runs 11]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "plan": ["plan", "gpt-oss-20b", "--gpu", "24GiB"],
    "plan offload": ["plan", "gpt-oss-120b", "--gpu", "24GiB", "--ram", "64GiB", "--engine", "llama.cpp",
                     "--context", "32k"],
    "plan R1": ["plan", "deepseek-r1", "--gpu", "80GB:8", "--ram", "512GiB"],
}


def wall(args: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "fitcalc", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if r.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(args)} failed: {r.stderr.decode().strip()}")
    return dt


def torch_imported(args: list[str]) -> bool:
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom fitcalc.shell.cli import app\n"
            f"CliRunner().invoke(app, {args!r})\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    runs = ap.parse_args().runs
    for name, args in CASES.items():
        times = sorted(wall(args) for _ in range(runs))
        med = statistics.median(times)
        print(f"{name:14s} median {med * 1000:7.1f} ms  (min {times[0] * 1000:.1f}, max {times[-1] * 1000:.1f}, "
              f"{runs} runs)  {'OK' if med < 0.5 else 'OVER 0.5 s'}")
    print(f"torch imported by `fitcalc {' '.join(CASES['plan'])}`: {torch_imported(CASES['plan'])}")


if __name__ == "__main__":
    main()
