"""Time to read the safetensors headers of a checkpoint with ~19,000 tensors.

Builds a Qwen3-30B-A3B-shaped folder (48 layers x 128 experts, one tensor per expert projection:
18,867 tensors over 16 shards, real header layout, sparse payload) in a temporary folder, then
times, as the median of N runs:
  headers:  reading and validating every shard's header (fitcalc.edges.ingest.safetensors.read_folder)
  resolve:  the whole local path of `fitcalc size FOLDER`: headers, config.json, classification
            into groups, honest parameter counts, the ModelSpec (fitcalc.edges.ingest.resolve_model)
  size:     resolve + size_model with --check (header groups vs the architecture's derivation)
Target (issue #5): under 1 s.

    python benchmarks/header_read.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import checkpoints  # noqa: E402  (the folder builders the tests use)

from fitcalc.edges.ingest import resolve_model  # noqa: E402
from fitcalc.edges.ingest.safetensors import read_folder  # noqa: E402
from fitcalc.core.sizing import size_model  # noqa: E402


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = checkpoints.qwen3_30b_a3b(Path(tmp) / "Qwen3-30B-A3B")
        table = read_folder(folder)
        assert table is not None
        print(f"checkpoint: {len(table.tensors):,} tensors in {len(table.files)} shards, "
              f"{table.total_bytes:,} bytes of weights (sparse), {table.header_bytes_read:,} header bytes")
        cases = {
            "headers": lambda: read_folder(folder),
            "resolve": lambda: resolve_model(str(folder)),
            "size --check": lambda: size_model(resolve_model(str(folder)), check=True),
        }
        for name, fn in cases.items():
            fn()  # warm the page cache
            m = median_time(fn, args.runs)
            verdict = "ok" if m < 1.0 else "OVER the 1 s target"
            print(f"{name:<13} median {m * 1000:7.1f} ms   ({verdict})")


if __name__ == "__main__":
    main()
