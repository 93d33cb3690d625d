"""Wall time of a 10,000-scenario report sweep, and of writing it out.

The spec: gpt-oss-20b x 25 GPU budgets x 20 contexts x 5 batches x 4 engines = 10,000 matrix rows,
with `assert: {must_fit: true}` on every one. Prints, each the median of --runs runs:
  sweep:   load + expand + evaluate + assertions (fitcalc.api.report)
  catalog: the same matrix on 25 catalog GPUs instead of budgets, so every row also gets a decode
           speed and prefill time (a budget has no bandwidth, so the first sweep has none), with
           `min_decode_tokens_per_s` asserted too
  json/md: rendering the finished report
  check:   the whole `fitcalc check` command in a fresh interpreter (start-up included)
Target (issue #7): each sweep within seconds on one core.

    python benchmarks/report_sweep.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's fitcalc, not an installed one

SPEC = """\
title: 10,000-scenario sweep
models: [gpt-oss-20b]
gpus: [{gpus}]
contexts: [{contexts}]
batches: [1, 2, 4, 8, 16]
engines: [vllm, llama.cpp, sglang, transformers]
assert: {{must_fit: true}}
max_scenarios: 10000
"""


# 25 catalog GPUs from 12 GB to 192 GB: consumer, datacenter and Apple parts.
CATALOG_GPUS = ("rtx-3060-12gb", "rtx-3090", "rtx-4060-ti-16gb", "rtx-4070-ti-super", "rtx-4080", "rtx-4080-super",
                "rtx-4090", "rtx-5060-ti-16gb", "rtx-5070-ti", "rtx-5080", "rtx-5090", "a10g", "l4", "t4", "l40s",
                "a100-40gb", "a100-80gb", "h100-pcie", "h100-sxm", "h200", "b200", "mi300x", "m4-max-128gb",
                "m2-ultra-192gb", "rx-7900-xtx")


def spec_text(gpus: list[str] | None = None) -> str:
    gpus_text = ", ".join(gpus or [f"{8 + 4 * i}GiB" for i in range(25)])
    contexts = ", ".join(str(2048 * (i + 1)) for i in range(20))
    return SPEC.format(gpus=gpus_text, contexts=contexts)


def timed(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from fitcalc import api
    from fitcalc.edges.report.writers import render

    with tempfile.TemporaryDirectory() as d:
        spec = Path(d) / "sweep.yaml"
        spec.write_text(spec_text())
        t_sweep, rep = timed(lambda: api.report(str(spec)), args.runs)
        n = len(rep.scenarios)  # type: ignore[union-attr]
        print(f"sweep      {n:,} scenarios, median {t_sweep:6.2f} s  ({t_sweep / n * 1e6:5.0f} us per scenario)")
        cat = Path(d) / "catalog.yaml"
        cat.write_text(spec_text(list(CATALOG_GPUS)).replace("must_fit: true",
                                                             "must_fit: true, min_decode_tokens_per_s: 20"))
        t_cat, rep_cat = timed(lambda: api.report(str(cat)), args.runs)
        n_cat = len(rep_cat.scenarios)  # type: ignore[union-attr]
        print(f"catalog    {n_cat:,} scenarios, median {t_cat:6.2f} s  ({t_cat / n_cat * 1e6:5.0f} us per scenario)")
        for fmt in ("json", "md"):
            t, text = timed(lambda: render(rep, fmt), args.runs)  # type: ignore[arg-type]
            print(f"render {fmt:<4}{len(text):>12,} chars, median {t:6.2f} s")  # type: ignore[arg-type]
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "fitcalc", "check", str(spec)], capture_output=True, text=True,
                               cwd=ROOT)
            times.append(time.perf_counter() - t)
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip()
        print(f"check CLI  exit {r.returncode}, median {statistics.median(times):6.2f} s  ({last})")


if __name__ == "__main__":
    main()
