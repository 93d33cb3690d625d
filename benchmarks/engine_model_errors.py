"""Median and worst absolute error of fitcalc's engine models on real start-up logs, per engine and
kind of figure, with the logs a constant was fitted on apart from the held-out ones (issue #15).

    python benchmarks/engine_model_errors.py [LOG_FOLDER]     # default: benchmarks/reference_logs

LOG_FOLDER holds the logs and their index.yaml (source, device, settings per log). A benchmark: it
prints, it asserts nothing. FITTED names the logs each remaining constant was fitted on (their
sources are in engine_profiles/*.yaml); every other log is held out.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fitcalc import api  # noqa: E402
from fitcalc.core.spec import Device  # noqa: E402

# log file -> the constants fitted on it (engine_profiles/*.yaml sources)
FITTED = {
    "vllm-0.9.2-a100-40gb-qwen3-8b.log": "vllm overhead.cudagraph_bytes_per_hidden",
    "vllm-0.19.1-a100-40gb-qwen3-8b.log": "vllm overhead.cudagraph_bytes_per_hidden",
    "vllm-0.10-h100-gpt-oss-120b-defaults.log": "vllm weights.mxfp4_backend_factors.marlin",
    "vllm-0.14.1-h100-gpt-oss-120b.log": "vllm weights.mxfp4_backend_factors.triton",
    "vllm-v0-3090-llama-3.1-8b-20k.log": "vllm working.hidden_copies, mlp_copies",
    "vllm-v0-3090-llama-3.1-8b-29k.log": "vllm working.hidden_copies, mlp_copies",
    "llama-server-b6699-3070-gpt-oss-20b.log": "llama.cpp compute buffer band, HOST_COMPUTE_FACTOR",
    "ollama-0.5.4-4090-llama-3.1-8b-q4_k_m.log": "llama.cpp/ollama compute buffer band",
}
# settings a log's lines imply that reconcile's parser does not read yet
EXTRA = {
    "vllm-0.10-h100-gpt-oss-120b-defaults.log": {"mxfp4_backend": "marlin", "context": "131072"},
    "vllm-0.11-h100-gpt-oss-120b-u095-b1024.log": {"mxfp4_backend": "marlin"},
}
KIND = {"weights.*": "weights", "kv.*": "KV", "kv.full": "KV", "kv.sliding": "KV",
        "act.compute_buffer": "compute buffer", "act.host_compute": "host compute buffer", "act.*": "activations", "overhead.non_torch": "activations",
        "overhead.cuda_graphs": "graph memory", "kv_capacity_bytes": "KV left (derived)",
        "kv_capacity_tokens": "KV left (derived)"}


def rows(folder: Path):
    index = yaml.safe_load((folder / "index.yaml").read_text(encoding="utf-8"))
    for e in index["logs"]:
        device, gpu = None, e.get("gpu")
        if e.get("device"):
            d = dict(e["device"])
            d.pop("source", None)
            device = Device(**d)
        model = e["model"]
        model = str(folder / model) if model.endswith(".yaml") else model
        settings = {**(e.get("settings") or {}), **EXTRA.get(e["file"], {})}
        if e.get("engine") == "ollama-go":  # the index says Ollama's Go engine wrote the lines
            settings["new_engine"] = "true"
        try:
            r = api.reconcile(str(folder / e["file"]), model=model, gpu=gpu, device=device, overrides=settings)
        except Exception as ex:  # a log reconcile cannot read yet: say so and go on
            print(f"  skipped {e['file']}: {ex}", file=sys.stderr)
            continue
        group = "fit" if e["file"] in FITTED else "held out"
        for row in r.rows:
            kind = KIND.get(row.id or "")
            if kind is None or row.diff_pct is None:
                continue
            yield r.engine, kind, group, abs(row.diff_pct), e["file"]


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "benchmarks" / "reference_logs"
    table: dict[tuple[str, str, str], list[tuple[float, str]]] = {}
    for engine, kind, group, err, name in rows(folder):
        table.setdefault((engine, kind, group), []).append((err, name))
    print("| engine | figure | logs | n | median abs error | worst (log) |")
    print("|---|---|---|---|---|---|")
    for (engine, kind, group), v in sorted(table.items()):
        errs = [e for e, _ in v]
        worst = max(v)
        print(f"| {engine} | {kind} | {group} | {len(v)} | {statistics.median(errs):.1f} % | "
              f"{worst[0]:.1f} % ({worst[1]}) |")


if __name__ == "__main__":
    main()
