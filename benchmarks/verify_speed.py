"""How fast `fitcalc verify`'s layer stack prefills, against the same work done directly in PyTorch.

    python benchmarks/verify_speed.py                       # every device here (cpu, and cuda if present)
    python benchmarks/verify_speed.py --device cuda --layers 4 --context 16384
    python benchmarks/verify_speed.py --device cpu --layers 1 --context 256 --formats bf16,mxfp4

Per storage format, one row: the stack's ``timings.prefill`` (``fitcalc.edges.measure.harness.run``:
storage tracking, the format's real layout dequantized matrix by matrix, the 512-token chunks of
the torch engine profile, one decode step excluded) and a direct PyTorch prefill of the same
shapes on the same device: bf16 weights already dequantized, the same chunks, the same q/k/v/o,
MLP or per-expert MoE matmuls (routed top-k, a loop over the experts that got tokens, as
transformers' eager MoE does), attention by ``F.scaled_dot_product_attention`` over the KV cache
(causal from the lower right, GQA; no sliding window and no sinks, which only make the stack's
attention cheaper or dearer by a little). The ratio is stack / direct: issue #19 asks for <= 3 on
an H100/H200-class GPU.

Dense formats run on Llama-3.1-8B's shapes (tests/data/specs/llama-3.1-8b.yaml), MXFP4 on
gpt-oss-20b's; embeddings are left out of both (random hidden states in, no logits), so the rows
compare the decoder layers. Formats the device cannot build are skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fitcalc.edges import catalog  # noqa: E402
from fitcalc.core.estimate import truncated_model  # noqa: E402
from fitcalc.edges.ingest import resolve_model  # noqa: E402
from fitcalc.core.recipes import resolve_recipe  # noqa: E402

LLAMA = str(ROOT / "tests" / "data" / "specs" / "llama-3.1-8b.yaml")
CASES = {  # format -> (model, recipe)
    "bf16": (LLAMA, "bf16"),
    "fp8-block": (LLAMA, "fp8-block"),
    "int4-gptq": (LLAMA, "int4-gptq"),
    "int4-awq": (LLAMA, "int4-awq"),
    "nf4": (LLAMA, "nf4"),
    "mxfp4": ("gpt-oss-20b", "native"),
}


def stack_prefill(spec, recipe, layers: int, context: int, device: str) -> tuple[float, dict]:
    from fitcalc.edges.measure import harness, packed

    info = harness.resolve_device(device)
    eng = catalog.load_engine("torch")
    run = harness.run(truncated_model(spec, layers), recipe, eng, info, batch=1, context=context, kv_dtype=None,
                      include_embeddings=False, chunk=eng.working.chunk_tokens)
    extra = {"attention": run.readings.get("attention_kernel"), "mxfp4": dict(packed.MXFP4_KERNEL)}
    return run.timings["prefill"], extra


def _sdpa(q, k, v, pos: int, t: int):
    import torch
    from torch.nn.attention.bias import causal_lower_right

    mask = causal_lower_right(t, pos + t) if t > 1 else None
    try:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    except (RuntimeError, TypeError, ValueError):  # a kernel without GQA: repeat the KV heads
        g = q.shape[1] // k.shape[1]
        return torch.nn.functional.scaled_dot_product_attention(
            q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), attn_mask=mask)


def direct_prefill(spec, layers: int, context: int, chunk: int, device: str) -> float:
    """The same matmuls and attention as the stack, in plain bf16 PyTorch."""
    import torch

    a = spec.architecture
    H, nh, nkv, d = a.hidden_size, a.num_attention_heads, a.num_key_value_heads, a.head_dim_resolved
    bf = dict(dtype=torch.bfloat16, device=device)
    moe = a.moe
    W = moe.moe_intermediate_size if moe else a.intermediate_size
    E = moe.num_experts if moe else 1
    k_top = moe.experts_per_token if moe else 1

    def mat(*shape):
        return torch.empty(*shape, **bf).normal_(0, 0.02)

    L = [{"q": mat(nh * d, H), "k": mat(nkv * d, H), "v": mat(nkv * d, H), "o": mat(H, nh * d),
          "up": mat(E, 2 * W, H), "down": mat(E, H, W), "router": mat(E, H) if moe else None,
          "kc": torch.zeros(1, nkv, context, d, **bf), "vc": torch.zeros(1, nkv, context, d, **bf)}
         for _ in range(layers)]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    prompt = context - 1
    sync()
    t0 = time.perf_counter()
    with torch.inference_mode():
        for pos in range(0, prompt, chunk):
            t = min(chunk, prompt - pos)
            x = torch.randn(t, H, **bf)
            for w in L:
                h = torch.nn.functional.rms_norm(x, (H,))
                q = (h @ w["q"].t()).view(1, t, nh, d).transpose(1, 2)
                w["kc"][:, :, pos:pos + t] = (h @ w["k"].t()).view(1, t, nkv, d).transpose(1, 2)
                w["vc"][:, :, pos:pos + t] = (h @ w["v"].t()).view(1, t, nkv, d).transpose(1, 2)
                o = _sdpa(q, w["kc"][:, :, :pos + t], w["vc"][:, :, :pos + t], pos, t)
                x = x + o.transpose(1, 2).reshape(t, nh * d) @ w["o"].t()
                h = torch.nn.functional.rms_norm(x, (H,))
                x = x + _mlp(h, w, moe, k_top, W)
    sync()
    return time.perf_counter() - t0


def _mlp(h, w, moe, k_top: int, W: int):
    import torch

    F = torch.nn.functional
    if not moe:
        g, u = (h @ w["up"][0].t()).split(W, dim=-1)
        return (F.silu(g) * u) @ w["down"][0].t()
    top_w, top_i = torch.topk(h @ w["router"].t(), k_top, dim=-1)
    top_w = torch.softmax(top_w.float(), dim=-1).to(h.dtype)
    out = torch.zeros_like(h)
    for e in torch.unique(top_i).tolist():  # the experts that got tokens, as transformers' eager MoE
        tok, slot = torch.where(top_i == e)
        g, u = (h[tok] @ w["up"][e].t()).split(W, dim=-1)
        y = (F.silu(g) * u) @ w["down"][e].t()
        out.index_add_(0, tok, y * top_w[tok, slot].unsqueeze(-1))
    return out


def bench(device: str, formats: list[str], layers: int, context: int) -> list[dict]:
    rows = []
    for fmt in formats:
        model, recipe_id = CASES[fmt]
        spec = resolve_model(model)
        row = {"device": device, "format": fmt, "model": spec.id, "layers": layers, "context": context}
        try:
            recipe = resolve_recipe(spec, recipe_id)
            row["stack_s"], row["kernels"] = stack_prefill(spec, recipe, layers, context, device)
            chunk = catalog.load_engine("torch").working.chunk_tokens
            row["direct_s"] = direct_prefill(spec, layers, context, chunk, device)
            row["ratio"] = row["stack_s"] / row["direct_s"] if row["direct_s"] > 0 else None
        except Exception as e:  # noqa: BLE001 - a format this device cannot run: say so, go on
            row["skipped"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        rows.append(row)
        _print_row(row)
    return rows


def _print_row(r: dict) -> None:
    if "skipped" in r:
        print(f"{r['device']:<6} {r['format']:<10} {r['model']:<14} {'-':>9} {'-':>9} {'-':>6}  skipped: {r['skipped']}")
        return
    k = r["kernels"]
    path = f"attention {k['attention']}" + (f", mxfp4 {k['mxfp4']['path']}" if r["format"] == "mxfp4" else "")
    print(f"{r['device']:<6} {r['format']:<10} {r['model']:<14} {r['stack_s']:>9.3f} {r['direct_s']:>9.3f} "
          f"{r['ratio']:>6.2f}  {path}", flush=True)


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="all", help="cpu, cuda, cuda:N or all (cpu, and cuda when present)")
    ap.add_argument("--formats", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    ap.add_argument("--layers", type=int, default=None, help="decoder layers (default: 4 on CUDA, 1 on CPU)")
    ap.add_argument("--context", type=int, default=None, help="tokens (default: 16384 on CUDA, 1024 on CPU)")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in CASES]
    if unknown:
        print(f"verify_speed: unknown format(s) {', '.join(unknown)}; known: {', '.join(CASES)}", file=sys.stderr)
        return 1
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.device == "all" else [args.device]
    print(f"{'device':<6} {'format':<10} {'model':<14} {'stack s':>9} {'direct s':>9} {'ratio':>6}  kernels")
    rows = []
    for dev in devices:
        gpu = dev.startswith("cuda")
        rows += bench(dev, formats, args.layers or (4 if gpu else 1), args.context or (16384 if gpu else 1024))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
