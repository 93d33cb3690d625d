"""Wall time and peak RSS of the issue's CI case, run as a user runs it:

    fitcalc verify gpt-oss-20b --device cpu --layers 2 --context 512

Targets (issue #4): under 60 s and under 4 GiB RSS on 2 cores. Prints the figures, the phase
times, the verdict and the machine's load (other processes on the same cores slow every torch
op; the load average is printed so a slow run can be told from a slow stack).

    python benchmarks/verify_cpu.py [--runs 1] [--threads N] [-- extra verify args]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

CASE = ["gpt-oss-20b", "--device", "cpu", "--layers", "2", "--context", "512"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the run (default: torch's)")
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    for i in range(args.runs):
        load0 = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "fitcalc", "verify", *CASE, *args.extra, "--json"],
                             capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux, the largest child so far
        load1 = os.getloadavg()[0]
        if out.returncode not in (0, 4):
            print(out.stderr[-3000:])
            sys.exit(out.returncode)
        doc = json.loads(out.stdout)
        gib = rss * 1024 / 2**30
        print(f"run {i + 1}: wall {wall:.1f} s (target < 60 s), peak RSS {gib:.2f} GiB (target < 4 GiB)"
              f"{'' if rss > before else ' (an earlier run was larger)'}; load average {load0:.2f} -> {load1:.2f}")
        print("  phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in doc["timings"].items()))
        pk = doc["peak"]
        print(f"  peak: predicted {pk['predicted_bytes']:,} B, measured {pk['measured_bytes']:,} B "
              f"({pk['error']:+.2%}); verdict: {'ok' if doc['ok'] else 'OUT OF TOLERANCE ' + ','.join(doc['failures'])}")
        for t in doc["terms"]:
            print(f"    {t['id']:22s} {t['predicted_bytes']:>15,} {t['measured_bytes'] or 0:>15,} "
                  f"{(t['error'] or 0):+8.2%}")


if __name__ == "__main__":
    main()
