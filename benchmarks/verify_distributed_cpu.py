"""Wall time and per-rank figures of the issue's distributed CI case, run as a user runs it:

    fitcalc verify gpt-oss-20b --device cpu --tp 2 --layers 1 --context 256

Target (issue #8): under 90 s with 2 gloo ranks, each rank's weights and KV within 2 % of its
predicted share. Prints the wall time, each rank's phase times, predicted and measured bytes per
term, and the machine's load average (other processes on the same cores slow every rank).

    python benchmarks/verify_distributed_cpu.py [--runs 1] [-- extra verify args, e.g. --pp 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

CASE = ["gpt-oss-20b", "--device", "cpu", "--tp", "2", "--layers", "1", "--context", "256"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python "
          f"{sys.version.split()[0]}")
    for i in range(args.runs):
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "fitcalc", "verify", *CASE, *args.extra, "--json"],
                             capture_output=True, text=True)
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()[0]
        if out.returncode not in (0, 4):
            print(out.stderr[-3000:])
            sys.exit(out.returncode)
        doc = json.loads(out.stdout)
        worst = 0.0
        for k in doc["ranks"]:
            for t in k["terms"]:
                if t["id"].startswith(("weights.", "kv.")) and t["predicted_bytes"]:
                    worst = max(worst, abs(t["measured_bytes"] - t["predicted_bytes"]) / t["predicted_bytes"])
        print(f"run {i + 1}: wall {wall:.1f} s (target < 90 s), {doc['world_size']} ranks "
              f"({doc['layout']['backend']}); worst weights/KV error {worst:.3%} (target <= 2 %); "
              f"load average {load0:.2f} -> {load1:.2f}; verdict {'ok' if doc['ok'] else ','.join(doc['failures'])}")
        for k in doc["ranks"]:
            rd = k["readings"]
            print(f"  rank {k['rank']} ({k['role']}): " + ", ".join(f"{n} {v:.1f} s" for n, v in k["timings"].items())
                  + (f"; RSS peak {rd['rss_high_water'] / 2**30:.2f} GiB" if rd.get("rss_high_water") else ""))
            for t in k["terms"]:
                err = "" if t["error"] is None else f"{t['error']:+8.2%}"
                print(f"    {t['id']:22s} {t['predicted_bytes']:>15,} {t['measured_bytes'] or 0:>15,} {err}")
            pk = k["peak"]
            print(f"    {'peak':22s} {pk['predicted_bytes']:>15,} {pk['measured_bytes'] or 0:>15,} {pk['error']:+8.2%}")


if __name__ == "__main__":
    main()
