"""The sharded forward computes what the whole model computes: tp ranks, each given the slices of
the whole model's weights that vLLM's parallel layers give it, run prefill and decode with their
collectives and end with the hidden states and next tokens of the unsharded stack.

Routers are made decisive first (weights zero, the bias picking experts 3 and 4, one on each
expert-parallel rank): bf16 partial sums added in another order move the hidden states by ~1 %,
enough to flip a near tie in a random router's top-k, after which the two runs are different
computations. Everything else is random.

The collectives are played by threads over shared slots (a barrier per call), so the test checks
where the stack reduces and gathers, which bias only rank 0 adds, the vocabulary-parallel lookup
and logits, and the KV head each rank uses when KV heads are replicated; gloo itself is exercised
by tests/measure/test_distributed.py. Slices by rank r of tp (vLLM):
  column parallel (q, k, v, gate, up, gate_up, sinks, and their biases): rows chunk r
  k, v when tp > n_kv: the rows of KV head r // (tp / n_kv)
  row parallel (o_proj, down_proj): columns chunk r, the bias whole
  vocabulary parallel (embedding, lm_head): rows chunk r
  experts under EP: experts chunk r, whole
  norms, router, shared-expert gate: whole
"""

import threading

import pytest

torch = pytest.importorskip("torch", reason="the measure extra (PyTorch) is not installed")

from fitcalc.edges import catalog  # noqa: E402
from fitcalc.edges.measure.stack import Shard, Stack  # noqa: E402
from fitcalc.core.recipes import resolve_recipe  # noqa: E402
from tests.measure.tiny import tiny_gpt_oss, tiny_llama, tiny_qwen_moe  # noqa: E402

ENGINE = catalog.load_engine("torch")


class ThreadComm:
    """The Collectives interface over threads: every rank's tensor into a slot, summed or stacked
    in rank order (so every rank gets the same bits)."""

    def __init__(self, rank: int, tp: int, shared: dict):
        self.rank, self.tp, self.shared = rank, tp, shared
        self.pp, self.first, self.last = 1, True, True

    @property
    def group_size(self) -> int:
        return self.tp

    def _exchange(self, x):
        slots, barrier = self.shared["slots"], self.shared["barrier"]
        slots[self.rank] = x
        barrier.wait()
        parts = list(slots)
        barrier.wait()
        return parts

    def all_reduce(self, x, where):
        parts = self._exchange(x.clone())
        total = parts[0].clone()
        for p in parts[1:]:
            total += p
        x.copy_(total)

    def all_gather(self, x, where):
        return torch.stack(self._exchange(x.clone()))


def _chunk(t, dim, r, n):
    return t.chunk(n, dim=dim)[r]


def _slice(name: str, full, r: int, tp: int, ep: int, arch):
    """Rank r's part of one of the whole stack's tensors (see the module docstring)."""
    expert = ".experts." in name and ep > 1
    stacked = full.dim() == 3 or (full.dim() == 2 and ".experts." in name and "bias" in name)
    if expert:
        return _chunk(full, 0, r, ep)
    role = name.split(".")[-2]
    bias = name.endswith(".bias")
    n_kv, d = arch.num_key_value_heads, arch.head_dim_resolved
    if role in ("k_proj", "v_proj") and tp > n_kv:
        h = r // (tp // n_kv)
        return full[..., h * d:(h + 1) * d] if bias else full[h * d:(h + 1) * d]
    if role in ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "gate_up_proj") or name.endswith("sinks"):
        dim = -1 if bias else (1 if stacked else 0)
        return _chunk(full, dim, r, tp)
    if role in ("o_proj", "down_proj"):
        return full if bias else _chunk(full, -1, r, tp)
    if role in ("embed_tokens", "lm_head"):
        return _chunk(full, 0, r, tp)
    return full  # norms, router, shared-expert gate


def _copy_slices(whole: Stack, shard: Stack, r: int, tp: int, ep: int) -> None:
    a = whole.arch
    for name, t in shard.globals.items():
        src = whole.globals[name]
        if hasattr(t, "parts"):
            t.parts["weight"].copy_(_slice(name, src.parts["weight"], r, tp, ep, a))
        else:
            t.copy_(_slice(name, src, r, tp, ep, a))
    for Lw, Ls in zip(whole.layers, shard.layers):
        for name, m in Ls.mats.items():
            m.parts["weight"].copy_(_slice(name, Lw.mats[name].parts["weight"], r, tp, ep, a))
        for name, v in Ls.vecs.items():
            v.copy_(_slice(name, Lw.vecs[name], r, tp, ep, a))


def _decisive_routers(stack: Stack) -> None:
    for L in stack.layers:
        w = L.mats.get("mlp.router.weight")
        if w is None:
            continue
        w.parts["weight"].zero_()
        b = L.vecs.get("mlp.router.bias")
        if b is not None:
            b.zero_()
            b[3], b[4] = 2.0, 1.0
        # without a bias every logit is 0: top-k breaks the tie the same way in every run


def _forward(stack: Stack, first, steps: int, inputs=None):
    """A prefill of ``first``, then ``steps`` decode steps fed with ``inputs`` (the whole model's
    tokens, so that a flipped near tie does not change what the next pass computes) or with its own
    next tokens. Returns the hidden states after the layers, the next tokens, and the inputs."""
    hidden, tokens, fed = [], [], []
    pos, cur = 0, first
    for i in range(steps + 1):
        t = cur.shape[1]
        fed.append(cur)
        x = stack._embed(cur, None)
        for L in stack.layers:
            stack.layer_forward(L, x, pos, t)
        hidden.append(x.float().clone())
        nxt = stack._logits(x, t)
        tokens.append(int(nxt[0]))
        pos += t
        cur = nxt.view(stack.batch, 1) if inputs is None or i + 1 >= len(inputs) else inputs[i + 1]
    return hidden, tokens, fed


def _margins(stack: Stack, hidden: list) -> list[float]:
    """Top-1 minus top-2 logit of the last position, relative to the top-1, in fp32 (the whole model)."""
    w = stack.globals["lm_head.weight"].matrix().float()
    out = []
    for x in hidden:
        hn = stack._norm(None, "model.norm", x[-1:].to(torch.bfloat16)).float()
        top = (hn @ w.t()).topk(2, dim=-1).values[0]
        out.append(float((top[0] - top[1]) / top[0].abs()))
    return out


def _check(model, recipe: str, tp: int, ep: int = 1, context: int = 24, steps: int = 2):
    rec = resolve_recipe(model, recipe)
    torch.manual_seed(0)
    ids = torch.randint(0, model.architecture.vocab_size, (1, context - steps - 1))
    with torch.inference_mode():
        whole = Stack(model, rec, "cpu")
        whole.build_weights(std=0.2)
        _decisive_routers(whole)
        whole.alloc_kv(1, context, None, ENGINE)
        want_hidden, want_tokens, fed = _forward(whole, ids, steps)
        margins = _margins(whole, want_hidden)
        shared = {"slots": [None] * tp, "barrier": threading.Barrier(tp, timeout=60)}
        results: dict = {}
        errors: list = []

        def rank(r: int) -> None:
            try:
                with torch.inference_mode():
                    s = Stack(model, rec, "cpu", shard=Shard(tp=(r, tp), ep=(r, ep) if ep > 1 else (0, 1)),
                              comm=ThreadComm(r, tp, shared))
                    s.build_weights()
                    _copy_slices(whole, s, r, tp, ep)
                    s.alloc_kv(1, context, None, ENGINE)
                    results[r] = _forward(s, ids, steps, fed)
            except Exception as e:  # noqa: BLE001 - re-raised in the test thread
                errors.append(e)
                shared["barrier"].abort()

        threads = [threading.Thread(target=rank, args=(r,)) for r in range(tp)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    if errors:
        raise errors[0]
    decided = 0
    for r in range(tp):
        hidden, tokens, _ = results[r]
        for got, want in zip(hidden, want_hidden):
            # bf16 partial sums added in another order than one matmul's fp32 accumulation: ~1 %
            assert (got - want).abs().max() <= 0.03 * want.abs().max(), r
        for got, want, margin in zip(tokens, want_tokens, margins):
            if margin > 0.03:  # a clear winner: the vocabulary-parallel logits must pick it too
                assert got == want, (r, margin)
                decided += 1
    assert decided > 0  # at least one pass had a clear winner to compare


def test_tensor_parallel_gpt_oss_equals_the_whole_model():
    """Biases on q/k/v (split), o_proj and the expert down projection (rank 0 only), sinks per
    head, interleaved gate/up, a sliding window and a full layer."""
    _check(tiny_gpt_oss(2), "bf16", tp=2)


def test_expert_parallel_gpt_oss_equals_the_whole_model():
    _check(tiny_gpt_oss(2), "bf16", tp=2, ep=2)


def test_replicated_kv_heads_equal_the_whole_model():
    """tp 4 over 2 KV heads: ranks 0, 1 use KV head 0, ranks 2, 3 KV head 1."""
    _check(tiny_llama(2), "bf16", tp=4)


def test_tensor_parallel_moe_with_shared_expert_equals_the_whole_model():
    _check(tiny_qwen_moe(2), "bf16", tp=2)
