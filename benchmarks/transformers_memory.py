"""What transformers really allocates for a prefill, measured on a CUDA device (issue #15).

Builds a model from its published config.json (tests/checkpoints.py holds them, with their source)
with random BF16 weights (no download), runs one prefill forward as ``generate`` does it
(``use_cache=True``, ``logits_to_keep=1``) under each attention implementation, and prints JSON lines:
weights, KV cache and peak bytes as torch's allocator saw them, or the out-of-memory it hit.

    python benchmarks/transformers_memory.py --model gpt-oss-20b --attn eager,sdpa --context 4096,16384

Needs torch with CUDA and transformers; prints one line saying why and exits 0 where either is missing.
fitcalc's predictions for the same cases (engine ``transformers``) are compared in docs/validation.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.checkpoints import GPT_OSS_20B_CONFIG, LLAMA_31_8B_CONFIG, QWEN3_30B_A3B_CONFIG  # noqa: E402

CONFIGS = {"gpt-oss-20b": GPT_OSS_20B_CONFIG, "llama-3.1-8b": LLAMA_31_8B_CONFIG, "qwen3-30b-a3b": QWEN3_30B_A3B_CONFIG}


def build(name: str, layers: int | None, attn: str, torch, transformers, device: str = "cuda"):
    """The model from its config with random BF16 weights on the GPU (the checkpoint's quantization,
    MXFP4 for gpt-oss, is dropped: transformers dequantizes it to BF16 without the Hub's kernels)."""
    cfg = dict(CONFIGS[name])
    cfg.pop("quantization_config", None)
    if layers:
        cfg["num_hidden_layers"] = layers
        if isinstance(cfg.get("layer_types"), list):
            cfg["layer_types"] = cfg["layer_types"][:layers]
    config = transformers.AutoConfig.for_model(**cfg)
    config._attn_implementation = attn
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16,
                                                              attn_implementation=attn)
    return model.eval()


def kv_bytes(cache) -> int:
    total = 0
    for layer in getattr(cache, "layers", []) or []:
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if t is not None and hasattr(t, "untyped_storage"):
                total += t.untyped_storage().nbytes()
    return total


class _NoStats:
    """torch.cuda's allocator statistics, read as 0: the CPU smoke run (--device cpu) checks the code path only."""

    def __getattr__(self, name):
        return lambda *a, **k: 0


def cases(name: str, attn: str, contexts: list[int], layers: int | None, torch, transformers,
          device: str = "cuda"):
    """One record per context: the model is built once per (model, attention) and kept between them."""
    cuda = torch.cuda if device == "cuda" else _NoStats()
    cuda.empty_cache()
    base = cuda.memory_allocated()
    head = {"model": name, "attn": attn, "layers": layers or CONFIGS[name]["num_hidden_layers"],
            "transformers": transformers.__version__, "torch": torch.__version__}
    t0 = time.perf_counter()
    try:
        model = build(name, layers, attn, torch, transformers, device)
    except Exception as e:  # noqa: BLE001 - recorded, the next case goes on
        yield {**head, "error": f"build: {type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        return
    cuda.synchronize()
    weights = cuda.memory_allocated() - base
    head.update(weights_bytes=weights, build_s=round(time.perf_counter() - t0, 2))
    for context in contexts:
        rec = {**head, "context": context}
        cuda.empty_cache()
        cuda.reset_peak_memory_stats()
        ids = torch.randint(0, model.config.vocab_size, (1, context), device=device)
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            cuda.synchronize()
            rec["prefill_s"] = round(time.perf_counter() - t0, 3)
            rec["kv_bytes"] = kv_bytes(getattr(out, "cache", None) or out.past_key_values)
            rec["after_bytes"] = cuda.memory_allocated() - base - weights
            del out
        except torch.OutOfMemoryError as e:
            rec["oom"] = str(e).splitlines()[0][:300]
        except Exception as e:  # noqa: BLE001
            rec["error"] = f"forward: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
        rec["peak_allocated_bytes"] = cuda.max_memory_allocated() - base
        rec["peak_reserved_bytes"] = cuda.max_memory_reserved()
        rec["peak_over_weights_bytes"] = rec["peak_allocated_bytes"] - weights
        del ids
        yield rec
    del model
    cuda.empty_cache()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gpt-oss-20b", help="comma-separated: " + ", ".join(CONFIGS))
    ap.add_argument("--attn", default="eager,sdpa", help="comma-separated attention implementations")
    ap.add_argument("--context", default="4096", help="comma-separated prompt lengths")
    ap.add_argument("--layers", type=int, default=None, help="build only the first N decoder layers")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run of the code path (no readings)")
    args = ap.parse_args()
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"skipped: {e.name} is not installed here")
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return 0
    for name in args.model.split(","):
        for attn in args.attn.split(","):
            contexts = [int(c) for c in args.context.split(",")]
            for rec in cases(name, attn, contexts, args.layers, torch, transformers, args.device):
                print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
