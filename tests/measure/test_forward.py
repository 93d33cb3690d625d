"""One layer of the stack against a plain fp32 reference computed from the dequantized weights.

The reference below is written independently of fitcalc.edges.measure.stack: the whole sequence at
once (no chunks, no ring buffer, no per-group flash calls, no log-sum-exp merging), explicit
causal/window masks, sinks as an extra softmax column, and the MoE as a loop over tokens and their
experts. The stack runs the same layer in chunks with its KV cache, in bf16.

The attention block and the MLP block are compared separately, each on a small residual input
so that the block's own contribution dominates its bf16 output. Stated tolerance: the largest
absolute difference is within 2 % of the block's largest contribution and the mean absolute
difference within 0.5 % of it (bf16 activations carry ~0.4 % rounding per op). Tokens whose k-th and (k+1)-th router logits are within 2 % of each other are
left out of the MoE comparison: a bf16 rounding can swap which expert they pick.
"""

import math

import pytest

torch = pytest.importorskip("torch", reason="the measure extra (PyTorch) is not installed")

from fitcalc.edges import catalog
from fitcalc.edges.measure.stack import Stack, attend_math, band_mask
from fitcalc.core.recipes import resolve_recipe
from tests.measure.tiny import tiny_gpt_oss, tiny_llama, tiny_qwen_moe

ENGINE = catalog.load_engine("torch")


def _rms(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _rope(x, theta):  # x [B, T, heads, d]
    d = x.shape[-1]
    half = d // 2
    inv = 1.0 / (theta ** (torch.arange(half, dtype=torch.float64) / half))
    ang = torch.arange(x.shape[1], dtype=torch.float64)[:, None] * inv[None]
    cos, sin = ang.cos().float()[None, :, None], ang.sin().float()[None, :, None]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Ref:
    def __init__(self, stack, L):
        self.s, self.L, self.a = stack, L, stack.arch

    def w(self, name, e=None):
        return self.L.mats[name].matrix(e).float()

    def b(self, name, e=None):
        t = self.L.vecs.get(name)
        if t is None:
            return 0.0
        return (t[e] if e is not None and t.dim() == 2 else t).float()

    def lin(self, x, name, e=None):
        return x @ self.w(f"{name}.weight", e).T + self.b(f"{name}.bias", e)

    def attention(self, x):
        a, s = self.a, self.s
        B, T, _ = x.shape
        d, nh, nkv = s.d, s.n_heads, s.n_kv
        h = _rms(x, self.L.vecs["input_layernorm.weight"].float())
        q = self.lin(h, "self_attn.q_proj").view(B, T, nh, d)
        k = self.lin(h, "self_attn.k_proj").view(B, T, nkv, d)
        v = self.lin(h, "self_attn.v_proj").view(B, T, nkv, d)
        if a.qk_norm:
            q = _rms(q, self.L.vecs["self_attn.q_norm.weight"].float())
            k = _rms(k, self.L.vecs["self_attn.k_norm.weight"].float())
        theta = a.rope_theta or 10000.0
        q, k = _rope(q, theta), _rope(k, theta)
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        allowed = j <= i
        if self.L.kind == "sliding_attention":
            allowed &= j > i - a.sliding_window
        out = torch.empty(B, T, nh, d)
        sinks = self.L.vecs.get("self_attn.sinks")
        for hd in range(nh):
            kh = k[:, :, hd // (nh // nkv)]
            vh = v[:, :, hd // (nh // nkv)]
            sc = q[:, :, hd] @ kh.transpose(1, 2) / math.sqrt(d)
            sc = sc.masked_fill(~allowed, float("-inf"))
            if sinks is not None:
                sc = torch.cat([sc, sinks[hd].float().expand(B, T, 1)], dim=-1)
            p = torch.softmax(sc, dim=-1)[..., :T]
            out[:, :, hd] = p @ vh
        return x + self.lin(out.reshape(B, T, nh * d), "self_attn.o_proj")

    def _swiglu(self, gu, gpt_oss, separate=None):
        if gpt_oss:
            gate, up = gu[..., 0::2].clamp(max=7.0), gu[..., 1::2].clamp(-7.0, 7.0)
            return (up + 1) * (gate * torch.sigmoid(1.702 * gate))
        gate, up = separate
        return torch.nn.functional.silu(gate) * up

    def expert(self, x, prefix, e=None):
        gpt_oss = self.a.family == "gpt_oss"
        if f"{prefix}.gate_up_proj.weight" in self.L.mats:
            y = self._swiglu(self.lin(x, f"{prefix}.gate_up_proj", e), gpt_oss)
        else:
            y = self._swiglu(None, False, (self.lin(x, f"{prefix}.gate_proj", e), self.lin(x, f"{prefix}.up_proj", e)))
        return self.lin(y, f"{prefix}.down_proj", e)

    def mlp(self, x):
        """Returns (output, tokens whose routing is unambiguous)."""
        B, T, H = x.shape
        h = _rms(x, self.L.vecs["post_attention_layernorm.weight"].float()).view(B * T, H)
        if self.L.dense:
            return x + self.expert(h, "mlp").view(B, T, H), torch.ones(B * T, dtype=torch.bool)
        m = self.a.moe
        logits = self.lin(h, "mlp.router")
        srt = logits.sort(dim=-1, descending=True).values
        clear = (srt[:, m.experts_per_token - 1] - srt[:, m.experts_per_token]) > 0.02 * srt.abs().max(-1).values
        top_v, top_i = logits.topk(m.experts_per_token, dim=-1)
        wts = torch.softmax(top_v, dim=-1)
        out = torch.zeros(B * T, H)
        for t in range(B * T):
            for slot in range(m.experts_per_token):
                e = int(top_i[t, slot])
                out[t] += wts[t, slot] * self.expert(h[t:t + 1], "mlp.experts", e)[0]
        if "mlp.shared_experts.up_proj.weight" in self.L.mats:
            sh = self.expert(h, "mlp.shared_experts")
            if "mlp.shared_expert_gate.weight" in self.L.mats:
                sh = sh * torch.sigmoid(self.lin(h, "mlp.shared_expert_gate"))
            out += sh
        return x + out.view(B, T, H), clear


def _close(got, ref, base, keep=None):
    """Largest and mean |got - ref| relative to the block's largest contribution |ref - base|."""
    if keep is not None:
        got, ref, base = (t.reshape(-1, t.shape[-1])[keep] for t in (got, ref, base))
    scale = (ref - base).abs().max()
    diff = (got - ref).abs()
    return float(diff.max() / scale), float(diff.mean() / scale)


CASES = [
    (tiny_gpt_oss, None, 0, "sliding layer, sinks, MXFP4 experts"),
    (tiny_gpt_oss, None, 1, "full layer, sinks, MXFP4 experts"),
    (tiny_llama, "int4-awq", 0, "dense, AWQ"),
    (tiny_llama, "int4-gptq", 1, "dense, GPTQ"),
    (tiny_llama, "nvfp4", 0, "dense, NVFP4"),
    (tiny_llama, "fp8-block", 0, "dense, FP8 128x128 blocks"),
    (tiny_llama, "nf4", 0, "dense, NF4"),
    (tiny_qwen_moe, None, 1, "qk-norm, per-expert tensors, shared expert with gate"),
]


def _block_chunked(fn, x, chunk, start=0):
    """A block of the stack (x [B*t, H] in place) over x [B, T, H] in chunks of ``chunk`` tokens."""
    B, T, H = x.shape
    outs = []
    for pos in range(0, T, chunk):
        t = min(chunk, T - pos)
        xc = x[:, pos:pos + t].to(torch.bfloat16).reshape(B * t, H).contiguous()
        fn(xc, start + pos, t)
        outs.append(xc.view(B, t, H).float())
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("make,recipe,layer,what", CASES, ids=[c[3] for c in CASES])
def test_layer_matches_fp32_reference(make, recipe, layer, what):
    torch.manual_seed(0)
    model = make(2)
    H = model.architecture.hidden_size
    stack = Stack(model, resolve_recipe(model, recipe), "cpu")
    with torch.inference_mode():
        stack.build_weights()
        B, T = 2, 21  # 20 prefill tokens in chunks of 7 (the sliding window is 8), then one decode step
        stack.alloc_kv(B, T, None, ENGINE)
        L = stack.layers[layer]
        ref = Ref(stack, L)
        # A small residual input keeps each block's own contribution visible in bf16.
        x = (0.01 * torch.randn(B, T, H)).to(torch.bfloat16).float()

        def attn(xc, pos, t):
            stack._attention_block(L, xc, pos, t)

        got_a = torch.cat([_block_chunked(attn, x[:, :T - 1], 7), _block_chunked(attn, x[:, T - 1:], 1, T - 1)], 1)
        want_a = ref.attention(x)
        y = (0.01 * torch.randn(B, T, H)).to(torch.bfloat16).float()
        got_m = _block_chunked(lambda xc, pos, t: stack._mlp_block(L, xc), y, 7)
        want_m, clear = ref.mlp(y)
    a_worst, a_mean = _close(got_a, want_a, x)
    m_worst, m_mean = _close(got_m, want_m, y, clear)
    assert a_worst <= 0.02 and a_mean <= 0.005, (what, "attention", a_worst, a_mean)
    assert m_worst <= 0.02 and m_mean <= 0.005, (what, "mlp", m_worst, m_mean)
    assert int(clear.sum()) >= 0.8 * clear.numel()  # the comparison covers most tokens


def test_chunked_attention_kernel_agrees_with_math_path():
    """The fused CPU flash kernel with masks and empty rows against the fp32 math path."""
    torch.manual_seed(1)
    q = torch.randn(2, 3, 9, 32).to(torch.bfloat16)
    k = torch.randn(2, 3, 12, 32).to(torch.bfloat16)
    v = torch.randn(2, 3, 12, 32).to(torch.bfloat16)
    mask, rows = band_mask(torch.arange(20, 29), torch.arange(8, 20), 6, torch.bfloat16, "cpu")
    stack = Stack(tiny_llama(1), resolve_recipe(tiny_llama(1), None), "cpu")
    o1, l1 = stack.attention(q, k, v, mask, False, 0.2)
    o2, l2 = attend_math(q, k, v, mask, False, 0.2)
    keep = rows.view(1, 1, -1).expand_as(l1)
    assert rows.tolist() == [True] * 5 + [False] * 4  # queries 25..28 see no key of 8..19 within 6
    assert torch.allclose(l1[keep], l2[keep], atol=2e-2)
    assert (o1.float() - o2.float())[keep.unsqueeze(-1).expand_as(o1)].abs().max() < 3e-2
    o3, l3 = stack.attention(q, k[:, :, :9], v[:, :, :9], None, True, 0.2)
    o4, l4 = attend_math(q, k[:, :, :9], v[:, :, :9], None, True, 0.2)
    assert torch.allclose(l3, l4, atol=2e-2) and (o3.float() - o4.float()).abs().max() < 3e-2
