"""How many `fit` evaluations per second, in process, for a bundled model.

A fit evaluation is the fast path every solver and sweep calls: the footprint's terms summed
for one model, engine, device and workload, compared with the device's memory
(``fitcalc.core.plan.fits_fast``; the same drafts as the explained footprint, without building the
explanations). Prepared once per model/engine, as a sweep does. Target: >= 50,000 per second.
Also prints the rate of the full explained answer (``fit_device``, with the max-context solve).

    python benchmarks/fit_rate.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rate(fn, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            fn()
        n += 100
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()

    from fitcalc.edges.catalog import load_engine, load_gpu, load_model
    from fitcalc.core.estimate import prepare
    from fitcalc.core.plan import fit_device, fits_fast
    from fitcalc.core.spec import Device, Workload

    device = Device.from_profile(load_gpu("rtx-4090"))
    for model_id, engine_id in (("gpt-oss-20b", "vllm"), ("gpt-oss-20b", "llama.cpp"), ("deepseek-r1", "vllm"),
                                ("llama-3.1-8b", "vllm")):
        p = prepare(load_model(model_id), None, load_engine(engine_id))
        contexts = [4096, 8192, 32768, 131072]
        i = [0]

        def one_fit() -> bool:
            i[0] += 1
            return fits_fast(p, device, Workload(context=contexts[i[0] & 3]))

        w = Workload(context=8192)
        fast = rate(one_fit, args.seconds)
        full = rate(lambda: fit_device(p, device, w), args.seconds / 3)
        print(f"{model_id:<14} {engine_id:<10} fits_fast {fast:>9,.0f}/s   fit_device (explained + max context) "
              f"{full:>7,.0f}/s")


if __name__ == "__main__":
    main()
