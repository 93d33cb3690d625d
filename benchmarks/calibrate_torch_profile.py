"""Fit the torch profile's working-memory constants from `fitcalc verify` runs, and check the
held-out run. Prints figures; changes nothing (the constants are edited by hand in
engine_profiles/torch.yaml with the runs cited).

act.prefill per token, in activation elements, is  c_h x H + max(c_m x I_eff, A)  (docs/formulas.md).
Every run here is MLP-bound (c_m x I_eff > A), so two runs with different H / I_eff ratios give
c_h and c_m exactly; the held-out run (another model) must be predicted by them.

    python benchmarks/calibrate_torch_profile.py [--device cpu] [--record docs/validation/cpu-runs.jsonl]
    python benchmarks/calibrate_torch_profile.py --from-records docs/validation/cpu-runs.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPECS = ROOT / "tests" / "data" / "specs"
# (role, model source, verify keyword arguments)
RUNS = [
    ("fit", "gpt-oss-20b", {"layers": 2, "context": 512}),
    ("fit", str(SPECS / "llama-3.1-8b.yaml"), {"layers": 1, "context": 512, "include_embeddings": False}),
    ("held-out", str(SPECS / "qwen3-8b.yaml"), {"layers": 1, "context": 512}),
    # further checks of the same constants: chunked prefill, batch, other storage formats
    ("check", "gpt-oss-20b", {"layers": 2, "context": 2048}),
    ("check", "gpt-oss-20b", {"layers": 2, "context": 1024, "batch": 2}),
    ("check", "gpt-oss-20b", {"layers": 2, "context": 512, "recipe": "nvfp4"}),
    ("check", str(SPECS / "llama-3.1-8b.yaml"), {"layers": 1, "context": 512, "include_embeddings": False,
                                                 "recipe": "fp8"}),
    ("check", str(SPECS / "llama-3.1-8b.yaml"), {"layers": 1, "context": 512, "include_embeddings": False,
                                                 "recipe": "int4-awq"}),
    ("check", str(SPECS / "qwen3-8b.yaml"), {"layers": 1, "context": 512, "include_embeddings": False,
                                             "recipe": "fp8-block"}),
]


def per_token(rec: dict) -> tuple[float, int, int, int]:
    """(measured act.prefill per token in elements, H, I_eff, A) for a record."""
    from fitcalc.core.estimate.activations import attention_width_per_token, forward_tokens, mlp_width_per_token
    from fitcalc.edges.ingest import resolve_model
    from fitcalc.edges.catalog import load_engine

    spec = resolve_model(rec["source"])
    a = spec.architecture
    s = rec["settings"]
    tokens = forward_tokens(load_engine("torch"), s["chunk_tokens"], s["prompt_tokens"], s["batch"])
    measured = next(t["measured_bytes"] for t in rec["terms"] if t["id"] == "act.prefill")
    return measured / tokens / 2, a.hidden_size, mlp_width_per_token(a)[0], attention_width_per_token(a)


def fit(records: list[dict]) -> tuple[float, float]:
    (y1, h1, i1, _), (y2, h2, i2, _) = (per_token(r) for r in records)
    det = h1 * i2 - h2 * i1
    c_h = (y1 * i2 - y2 * i1) / det
    c_m = (h1 * y2 - h2 * y1) / det
    return c_h, c_m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--record", default=None, help="append each run to this JSONL file")
    ap.add_argument("--from-records", default=None, help="fit from recorded runs instead of running")
    args = ap.parse_args()
    if args.from_records:
        recs = [json.loads(x) for x in Path(args.from_records).read_text().splitlines() if x.strip()]
        for r in recs:
            r.setdefault("role", "check")
    else:
        from fitcalc import api
        from fitcalc.core.measure.result import record_line

        recs = []
        for role, source, kw in RUNS:
            r = api.verify(source, device=args.device, record=None, **kw)
            line = record_line(r, date=_now())
            line.update(role=role, source=str(Path(source).relative_to(ROOT)) if "/" in source else source)
            line["host_load"] = os.getloadavg()[0]
            recs.append(line)
            print(f"{role:9s} {r.model:14s} act.prefill measured "
                  f"{next(t.measured_bytes for t in r.terms if t.id == 'act.prefill'):,} B in {r.timings['total']} s")
            if args.record:
                with open(args.record, "a", encoding="utf-8") as f:
                    f.write(json.dumps(line) + "\n")
    _gpu_overheads(recs)
    fits = [r for r in recs if r["role"] == "fit"][-2:]
    if len(fits) < 2:
        return
    c_h, c_m = fit(fits)
    print(f"fitted: hidden_copies {c_h:.3f}, mlp_copies {c_m:.3f}")
    for r in recs:
        y, h, i, a = per_token(r)
        pred = c_h * h + max(c_m * i, a)
        print(f"  {r['role']:9s} {r['model']:14s} per token: measured {y:,.0f} elements, predicted {pred:,.0f} "
              f"({(pred - y) / y:+.2%})")


def _gpu_overheads(recs: list[dict]) -> None:
    """For GPU records (scripts/gpu-validate.sh): the overhead terms the CPU cannot calibrate
    (CUDA context per GPU, cuBLAS workspace, allocator slack), measured vs predicted."""
    gpu = [r for r in recs if r.get("device_kind") == "cuda"]
    for r in gpu:
        rows = {t["id"]: t for t in r["terms"]}
        parts = []
        for tid in ("overhead.cuda_context", "overhead.cublas_workspace", "overhead.allocator"):
            t = rows.get(tid)
            if t is not None and t["measured_bytes"] is not None:
                parts.append(f"{tid.split('.')[1]} {t['measured_bytes'] / 2**20:,.0f} MiB "
                             f"(predicted {t['predicted_bytes'] / 2**20:,.0f})")
        s = r["settings"]
        print(f"  {r['device']} {r['model']} L{s['layers']} C{s['context']}: " + ", ".join(parts))


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


if __name__ == "__main__":
    main()
