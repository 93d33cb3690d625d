"""config.json -> ModelSpec, one small function per architecture family. EDGE (but pure: no I/O).

Each family function reads the fields transformers' own config class defines for it, with
that class's defaults where config.json may leave a field out (Gemma 3's ``text_config`` is
often partial), and returns the keyword arguments of an :class:`~fitcalc.core.spec.Architecture`.
``quantization_config`` gives the native recipe. :func:`spec_from_hf` puts these together with
the checkpoint's header-exact tensor table when there is one.

An unknown ``model_type`` is not guessed at: its weights still come header-exact from the
safetensors headers, and the spec carries a warning naming the fields the KV cache would need.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from pydantic import ValidationError

from fitcalc.core.checkpoint import CheckpointTable, QuantHints, classify_hf, hf_mtp_layout, summarize
from fitcalc.core.errors import ModelSourceError
from fitcalc.core.spec import (
    MLA, MTP, Architecture, ExtraGroup, LinearAttention, ModelSpec, MoE, RecipeSpec, RopeScaling, Source,
)


class ConfigError(ModelSourceError):
    """A config.json that lacks a field its family needs, or holds a value that cannot be used."""


# The fields the KV cache needs, named in the warning an unknown family gets.
KV_FIELDS = ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
             "layer_types (or sliding_window and its pattern)", "max_position_embeddings")


class _Cfg:
    """Field access that names the family and the field when something is missing."""

    def __init__(self, data: dict[str, Any], family: str, defaults: dict[str, Any] | None = None):
        self.data = data
        self.family = family
        self.defaults = defaults or {}

    def get(self, key: str, default: Any = None) -> Any:
        v = self.data.get(key)
        if v is None:
            v = self.defaults.get(key, default)
        return v

    def req(self, key: str, *alts: str) -> Any:
        for k in (key, *alts):
            v = self.get(k)
            if v is not None:
                return v
        names = " or ".join((key, *alts))
        raise ConfigError(f"config.json ({self.family}) has no {names}",
                          hint="is this the model's own config.json? fitcalc reads the fields transformers defines")

    def int(self, key: str, *alts: str) -> int:
        v = self.req(key, *alts)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v <= 0:
            raise ConfigError(f"config.json ({self.family}): {key} must be a positive integer, got {v!r}")
        return int(v)

    def opt_int(self, key: str, default: int | None = None) -> int | None:
        v = self.get(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
            raise ConfigError(f"config.json ({self.family}): {key} must be an integer, got {v!r}")
        return int(v)


# ---------------------------------------------------------------------------------------------
# Shared readers
# ---------------------------------------------------------------------------------------------


def _rope(c: _Cfg) -> dict[str, Any]:
    out: dict[str, Any] = {}
    params = c.get("rope_parameters") if isinstance(c.get("rope_parameters"), dict) else {}
    theta = c.get("rope_theta", params.get("rope_theta"))
    if isinstance(theta, (int, float)) and not isinstance(theta, bool):
        out["rope_theta"] = float(theta)
    rs = c.get("rope_scaling") if isinstance(c.get("rope_scaling"), dict) else params
    if isinstance(rs, dict):
        rtype = rs.get("rope_type") or rs.get("type")
        factor = rs.get("factor")
        if rtype and rtype != "default" and isinstance(factor, (int, float)) and factor > 0:
            orig = rs.get("original_max_position_embeddings")
            out["rope_scaling"] = RopeScaling(rope_type=str(rtype), factor=float(factor),
                                              original_max_position_embeddings=orig if isinstance(orig, int) else None)
    return out


def _kv_heads(c: _Cfg, heads: int) -> int:
    """num_key_value_heads as published; when absent (null or missing) transformers defaults it to
    num_attention_heads ("If it is not specified, will default to num_attention_heads": MHA). A
    published 0 or a negative count is an error, not "absent": it would price a model with no KV cache."""
    kv = c.opt_int("num_key_value_heads")
    if kv is None:
        return heads
    if kv <= 0:
        raise ConfigError(f"config.json ({c.family}): num_key_value_heads must be a positive integer, got {kv}",
                          hint="a model has at least one KV head; remove the key to mean one per attention head")
    return kv


def _base(c: _Cfg, *, tie_default: bool) -> dict[str, Any]:
    """Fields every decoder family shares, named as in config.json."""
    heads = c.int("num_attention_heads")
    out: dict[str, Any] = {
        "family": c.family,
        "num_hidden_layers": c.int("num_hidden_layers"),
        "hidden_size": c.int("hidden_size"),
        "vocab_size": c.int("vocab_size"),
        "num_attention_heads": heads,
        # transformers: "If it is not specified, will default to num_attention_heads" (MHA)
        "num_key_value_heads": _kv_heads(c, heads),
        "max_position_embeddings": c.int("max_position_embeddings"),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", tie_default)),
        "hidden_act": str(c.get("hidden_act") or c.get("hidden_activation") or "silu"),
        "torch_dtype": str(c.get("torch_dtype") or c.get("dtype") or "bfloat16"),
    }
    hd = c.opt_int("head_dim")
    if hd:
        out["head_dim"] = hd
    inter = c.opt_int("intermediate_size")
    if inter:
        out["intermediate_size"] = inter
    out.update(_rope(c))
    return out


def _explicit_layer_types(c: _Cfg, n: int) -> list[str] | None:
    lt = c.get("layer_types")
    if isinstance(lt, list) and len(lt) == n and all(x in ("full_attention", "sliding_attention",
                                                          "linear_attention") for x in lt):
        return list(lt)
    return None


def _sliding_all(c: _Cfg, out: dict[str, Any]) -> None:
    """Mistral/Mixtral/Phi-3: a non-null sliding_window applies to every layer (transformers
    passes it to every attention call). A window at least as long as the context is no window."""
    w = c.opt_int("sliding_window")
    if w and w < out["max_position_embeddings"]:
        out["sliding_window"] = w
        out["layer_types"] = ["sliding_attention"] * out["num_hidden_layers"]


def _qwen_sliding(c: _Cfg, out: dict[str, Any]) -> None:
    """Qwen2/Qwen3: sliding only with use_sliding_window, on layers >= max_window_layers
    (transformers Qwen2Config.layer_types)."""
    n = out["num_hidden_layers"]
    lt = _explicit_layer_types(c, n)
    w = c.opt_int("sliding_window")
    if lt is not None and "sliding_attention" in lt and w:
        out["layer_types"], out["sliding_window"] = lt, w
        return
    if c.get("use_sliding_window") and w:
        first = c.opt_int("max_window_layers", n) or 0
        kinds = ["sliding_attention" if i >= first else "full_attention" for i in range(n)]
        if "sliding_attention" in kinds:
            out["layer_types"], out["sliding_window"] = kinds, w


def _moe_dense_layers(c: _Cfg, n: int) -> list[int] | None:
    """Qwen-MoE: layer i is MoE unless listed in mlp_only_layers or off the decoder_sparse_step."""
    only = c.get("mlp_only_layers") or []
    step = c.opt_int("decoder_sparse_step", 1) or 1
    dense = sorted({int(i) for i in only if isinstance(i, int) and 0 <= i < n}
                   | {i for i in range(n) if (i + 1) % step != 0})
    return dense or None


# ---------------------------------------------------------------------------------------------
# Families
# ---------------------------------------------------------------------------------------------


def _llama(c: _Cfg) -> dict[str, Any]:
    out = _base(c, tie_default=False)
    bias = bool(c.get("attention_bias", False))
    out.update(attention_bias=bias, attention_out_bias=bias, mlp_bias=bool(c.get("mlp_bias", False)))
    return out


def _mistral(c: _Cfg) -> dict[str, Any]:
    out = _base(c, tie_default=False)
    _sliding_all(c, out)
    return out


def _mixtral(c: _Cfg) -> dict[str, Any]:
    out = _base(c, tie_default=False)
    width = out.pop("intermediate_size", None) or c.int("intermediate_size")
    out["moe"] = MoE(num_experts=c.int("num_local_experts"), experts_per_token=c.int("num_experts_per_tok"),
                     moe_intermediate_size=width)
    _sliding_all(c, out)
    return out


def _qwen2(c: _Cfg) -> dict[str, Any]:
    out = _base(c, tie_default=False)
    out.update(attention_bias=True)  # Qwen2Attention: q/k/v with bias, o_proj without
    _qwen_sliding(c, out)
    return out


def _qwen_moe(c: _Cfg, out: dict[str, Any]) -> dict[str, Any]:
    """The Qwen MoE block (qwen2_moe, qwen3_moe, qwen3_next): routed experts, an optional shared
    expert with its sigmoid gate, and dense layers where mlp_only_layers / decoder_sparse_step say."""
    shared = c.opt_int("shared_expert_intermediate_size")
    dense = _moe_dense_layers(c, out["num_hidden_layers"])
    out["moe"] = MoE(num_experts=c.int("num_experts"), experts_per_token=c.int("num_experts_per_tok"),
                     moe_intermediate_size=c.int("moe_intermediate_size"), shared_expert_intermediate_size=shared,
                     num_shared_experts=1 if shared else 0, shared_expert_gate=bool(shared), dense_layers=dense)
    if not dense:
        out.pop("intermediate_size", None)
    return out


def _qwen2_moe(c: _Cfg) -> dict[str, Any]:
    return _qwen_moe(c, _qwen2(c))


def _qwen3(c: _Cfg) -> dict[str, Any]:
    out = _base(c, tie_default=False)
    bias = bool(c.get("attention_bias", False))
    out.update(attention_bias=bias, attention_out_bias=bias, qk_norm=True)
    out.setdefault("head_dim", 128)  # Qwen3Config default
    _qwen_sliding(c, out)
    return out


def _qwen3_moe(c: _Cfg) -> dict[str, Any]:
    return _qwen_moe(c, _qwen3(c))


def _qwen3_next(c: _Cfg) -> dict[str, Any]:
    out = _base(c, tie_default=False)
    n = out["num_hidden_layers"]
    bias = bool(c.get("attention_bias", False))
    # Gated attention: q_proj emits the query and a sigmoid gate of the same width.
    out.update(attention_bias=bias, attention_out_bias=bias, qk_norm=True, attention_output_gate=True)
    lt = _explicit_layer_types(c, n)
    if lt is None:
        k = c.opt_int("full_attention_interval", 4) or 4
        lt = ["full_attention" if (i + 1) % k == 0 else "linear_attention" for i in range(n)]
    out["layer_types"] = lt
    out["linear_attention"] = LinearAttention(
        num_key_heads=c.int("linear_num_key_heads"), num_value_heads=c.int("linear_num_value_heads"),
        key_head_dim=c.int("linear_key_head_dim"), value_head_dim=c.int("linear_value_head_dim"),
        conv_kernel_size=c.int("linear_conv_kernel_dim"))
    return _qwen_moe(c, out)


def _deepseek_v3(c: _Cfg) -> dict[str, Any]:
    out = _base(c, tie_default=False)
    out.pop("head_dim", None)  # MLA: K/V shapes come from the ranks below
    q_lora = c.opt_int("q_lora_rank")
    out["mla"] = MLA(q_lora_rank=q_lora or None, kv_lora_rank=c.int("kv_lora_rank"),
                     qk_rope_head_dim=c.int("qk_rope_head_dim"), qk_nope_head_dim=c.int("qk_nope_head_dim"),
                     v_head_dim=c.int("v_head_dim"))
    out["attention_bias"] = bool(c.get("attention_bias", False))
    experts = c.opt_int("n_routed_experts")
    if experts:
        shared = c.opt_int("n_shared_experts", 0) or 0
        width = c.int("moe_intermediate_size")
        step = c.opt_int("moe_layer_freq", 1) or 1
        first = c.opt_int("first_k_dense_replace", 0) or 0
        n = out["num_hidden_layers"]
        dense = [i for i in range(n) if i < first or (i % step) != 0]
        out["moe"] = MoE(
            num_experts=experts, experts_per_token=c.int("num_experts_per_tok"), moe_intermediate_size=width,
            num_shared_experts=shared, first_k_dense_replace=first if step == 1 else 0,
            dense_layers=dense if step != 1 else None,
            # noaux_tc routing keeps a per-expert correction bias (e_score_correction_bias, fp32)
            score_correction_bias=c.get("topk_method") == "noaux_tc")
    mtp = c.opt_int("num_nextn_predict_layers", 0)
    if mtp:
        # DeepSeek-V3's checkpoint stores layer 61 with its own embed_tokens and shared_head.head
        out["mtp"] = MTP(num_layers=mtp, own_embedding=True, own_head=True)
    return out


def _glm4_moe(c: _Cfg) -> dict[str, Any]:
    out = _base(c, tie_default=False)
    out.update(attention_bias=bool(c.get("attention_bias", False)), qk_norm=bool(c.get("use_qk_norm", False)))
    first = c.opt_int("first_k_dense_replace", 1) or 0
    out["moe"] = MoE(num_experts=c.int("n_routed_experts"), experts_per_token=c.int("num_experts_per_tok"),
                     moe_intermediate_size=c.int("moe_intermediate_size"),
                     num_shared_experts=c.opt_int("n_shared_experts", 1) or 0, first_k_dense_replace=first,
                     score_correction_bias=True)  # Glm4MoeTopkRouter always has e_score_correction_bias
    mtp = c.opt_int("num_nextn_predict_layers", 0)
    if mtp:
        out["mtp"] = MTP(num_layers=mtp)
    return out


_GEMMA2_DEFAULTS = {"vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
                    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                    "max_position_embeddings": 8192, "sliding_window": 4096, "hidden_activation": "gelu_pytorch_tanh",
                    "rope_theta": 10000.0}
# transformers Gemma3TextConfig defaults (configuration_gemma3.py); released configs leave many out.
_GEMMA3_DEFAULTS = {"vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
                    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                    "max_position_embeddings": 131072, "sliding_window": 4096, "sliding_window_pattern": 6,
                    "hidden_activation": "gelu_pytorch_tanh", "rope_theta": 1_000_000.0}


def _gemma_common(c: _Cfg, pattern: int) -> dict[str, Any]:
    out = _base(c, tie_default=True)
    bias = bool(c.get("attention_bias", False))
    out.update(attention_bias=bias, attention_out_bias=bias, norms_per_layer=4)
    n = out["num_hidden_layers"]
    lt = _explicit_layer_types(c, n)
    if lt is None:
        # sliding unless (i + 1) is a multiple of the pattern (Gemma 2: every other layer)
        lt = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]
    out["layer_types"] = lt
    if "sliding_attention" in lt:
        out["sliding_window"] = c.int("sliding_window")
    return out


def _gemma2(c: _Cfg) -> dict[str, Any]:
    c.defaults = _GEMMA2_DEFAULTS
    return _gemma_common(c, 2)


def _gemma3(c: _Cfg) -> dict[str, Any]:
    c.defaults = _GEMMA3_DEFAULTS
    out = _gemma_common(c, c.opt_int("sliding_window_pattern", 6) or 6)
    out["qk_norm"] = True
    return out


def _phi3(c: _Cfg) -> dict[str, Any]:
    out = _base(c, tie_default=False)
    _sliding_all(c, out)
    # Phi-3 checkpoints store qkv_proj and gate_up_proj fused; where the spec can say so, it does
    # (the weights are the same, per-tensor formats see one tensor instead of three and two).
    if "fused_qkv" in Architecture.model_fields:
        out.update(fused_qkv=True, fused_gate_up=True)
    return out


def _gpt_oss(c: _Cfg) -> dict[str, Any]:
    out = _base(c, tie_default=False)
    n = out["num_hidden_layers"]
    width = out.pop("intermediate_size", None) or c.int("intermediate_size")
    out.update(attention_bias=True, attention_out_bias=True, attention_sinks=True)
    lt = _explicit_layer_types(c, n)
    if lt is None:  # GptOssConfig: sliding on even layers
        lt = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)]
    out["layer_types"] = lt
    if "sliding_attention" in lt:
        out["sliding_window"] = c.int("sliding_window")
    out["moe"] = MoE(num_experts=c.int("num_local_experts"),
                     experts_per_token=c.int("num_experts_per_tok", "experts_per_token"),
                     moe_intermediate_size=width, router_bias=True, expert_bias=True, stacked=True)
    return out


FAMILIES: dict[str, Callable[[_Cfg], dict[str, Any]]] = {
    "gpt_oss": _gpt_oss, "llama": _llama, "mistral": _mistral, "mixtral": _mixtral, "qwen2": _qwen2,
    "qwen2_moe": _qwen2_moe, "qwen3": _qwen3, "qwen3_moe": _qwen3_moe, "qwen3_next": _qwen3_next,
    "deepseek_v3": _deepseek_v3, "deepseek_v2": _deepseek_v3, "glm4_moe": _glm4_moe, "gemma2": _gemma2,
    "gemma3": _gemma3, "gemma3_text": _gemma3, "phi3": _phi3,
}


def text_config(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(model_type, the dict holding the text decoder's fields). Multimodal wrappers (Gemma 3,
    Mistral 3, LLaVA...) keep the decoder in ``text_config``; fields there win."""
    family = str(config.get("model_type") or "")
    tc = config.get("text_config")
    if isinstance(tc, dict):
        inner = str(tc.get("model_type") or "")
        merged = {**{k: v for k, v in config.items() if k not in ("text_config", "vision_config")}, **tc}
        if family in FAMILIES:  # gemma3: the wrapper's type names the family
            return family, merged
        if inner in FAMILIES:
            return inner, merged
        return family or inner, merged
    return family, config


def architecture_from_config(config: dict[str, Any]) -> Architecture | None:
    """The Architecture of a config.json, or None for a family fitcalc does not know."""
    family, data = text_config(config)
    fn = FAMILIES.get(family)
    if fn is None:
        return None
    kwargs = fn(_Cfg(data, family))
    try:
        return Architecture(**kwargs)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"config.json ({family}): {first['msg'].replace('Value error, ', '')}"
                          + (f" ({loc})" if loc else ""), hint="check the config against its model card") from None


# ---------------------------------------------------------------------------------------------
# quantization_config -> native recipe
# ---------------------------------------------------------------------------------------------

_DTYPE_IDS = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32"}


def dtype_format(config: dict[str, Any]) -> str:
    _family, data = text_config(config)
    dt = str(data.get("torch_dtype") or data.get("dtype") or config.get("torch_dtype") or "bfloat16")
    return _DTYPE_IDS.get(dt.replace("torch.", ""), "bf16")


def _quantized(rid_fmt: str, dt: str, name: str, source: str, keep_router: bool = True) -> RecipeSpec:
    rules = {"default": rid_fmt, "embedding": dt, "lm_head": dt}
    if keep_router:
        rules["router"] = dt
    return RecipeSpec(id="native", display_name=name, rules=rules, vector_format=dt,
                      description=f"linear layers {rid_fmt}; embeddings, lm_head, norms and biases {dt}",
                      source=source)


def quant_hints(config: dict[str, Any]) -> QuantHints:
    q = config.get("quantization_config")
    if not isinstance(q, dict):
        return QuantHints()
    method = str(q.get("quant_method") or "")
    bits = q.get("bits") if isinstance(q.get("bits"), int) else 4
    group = q.get("group_size") if isinstance(q.get("group_size"), int) and q.get("group_size") > 0 else None
    if method == "compressed-tensors":
        w = _ct_weights(q)
        if w:
            bits = int(w.get("num_bits") or bits)
            group = w.get("group_size") if isinstance(w.get("group_size"), int) else group
    if bits not in (2, 3, 4, 8) or 32 % bits:
        bits = 4
    return QuantHints(bits=bits, group_size=group, method=method or None)


def _ct_weights(q: dict[str, Any]) -> dict[str, Any] | None:
    groups = q.get("config_groups")
    if isinstance(groups, dict):
        for g in groups.values():
            if isinstance(g, dict) and isinstance(g.get("weights"), dict):
                return g["weights"]
    return None


def recipe_from_config(config: dict[str, Any]) -> tuple[RecipeSpec, list[str]]:
    """The checkpoint's own recipe from quantization_config (or its dtype), and any warnings."""
    dt = dtype_format(config)
    q = config.get("quantization_config")
    src = "config.json quantization_config"
    if not isinstance(q, dict):
        name = {"bf16": "BF16", "fp16": "FP16", "fp32": "FP32"}[dt]
        return RecipeSpec(id="native", display_name=name, rules={"default": dt}, vector_format=dt,
                          description=f"every tensor in {name} (config.json torch_dtype)",
                          source="config.json torch_dtype"), []
    method = str(q.get("quant_method") or "").lower()
    warnings: list[str] = []
    if method == "mxfp4":
        return RecipeSpec(id="native", display_name=f"MXFP4 experts + {dt.upper()}",
                          rules={"default": dt, "experts": "mxfp4"}, vector_format=dt, source=src,
                          description="routed-expert weights MXFP4, everything else " + dt.upper()), []
    if method == "fp8":
        block = q.get("weight_block_size")
        if isinstance(block, list) and len(block) == 2 and block[0] == block[1] and isinstance(block[0], int):
            fmt = f"fp8-block{block[0]}"
        else:
            fmt = "fp8"
            if block:
                warnings.append(f"fp8 weight_block_size {block} is not square; derived sizes use per-tensor FP8")
        return _quantized(fmt, dt, f"FP8 ({fmt})", src), warnings
    if method in ("gptq", "awq"):
        h = quant_hints(config)
        group = h.group_size or 128
        if q.get("group_size") == -1:
            warnings.append("group_size -1 (per-channel) is priced as group 128 in the derived sizes")
        fmt = f"int{h.bits}-{method}" if (h.bits, group) == (4, 128) else f"int{h.bits}-{method}-g{group}"
        keep_head = not q.get("lm_head", False)
        r = _quantized(fmt, dt, f"{method.upper()} {h.bits}-bit g{group}", src)
        if not keep_head:
            r = r.model_copy(update={"rules": {k: v for k, v in r.rules.items() if k != "lm_head"}})
        return r, warnings
    if method == "compressed-tensors":
        w = _ct_weights(q) or {}
        bits, typ, strat = w.get("num_bits"), w.get("type"), w.get("strategy")
        if typ == "float" and bits == 8:
            bs = w.get("block_structure")
            fmt = {"channel": "fp8-channel", "tensor": "fp8"}.get(str(strat), "fp8-channel")
            if strat == "block" and isinstance(bs, list) and len(bs) == 2 and bs[0] == bs[1]:
                fmt = f"fp8-block{bs[0]}"
        elif typ == "float" and bits == 4:
            fmt = "nvfp4"
        elif typ == "int" and bits in (4, 8) and strat == "group":
            fmt = f"int{bits}-ct-g{w.get('group_size') or 128}"
        elif typ == "int" and bits == 8:
            fmt = "int8"
        else:
            fmt = dt
            warnings.append(f"compressed-tensors scheme {w!r} is not modelled; derived sizes use {dt}")
        return _quantized(fmt, dt, f"compressed-tensors ({fmt})", src), warnings
    if method == "bitsandbytes":
        if q.get("load_in_4bit"):
            fmt = "nf4-dq" if q.get("bnb_4bit_use_double_quant") else "nf4"
        elif q.get("load_in_8bit"):
            fmt = "int8"
        else:
            fmt = dt
        # bitsandbytes replaces every nn.Linear but the skipped modules (lm_head by default),
        # routers included.
        return _quantized(fmt, dt, f"bitsandbytes ({fmt})", src, keep_router=False), warnings
    if method == "modelopt":
        algo = str(q.get("quant_algo") or "").upper()
        fmt = {"NVFP4": "nvfp4", "FP8": "fp8"}.get(algo)
        if fmt:
            return _quantized(fmt, dt, f"ModelOpt {algo}", src), warnings
    warnings.append(f"quantization method {method or '?'!r} is not modelled; derived sizes use {dt} "
                    "(the header-exact sizes are unaffected)")
    return RecipeSpec(id="native", display_name=f"{method or 'quantized'} (as {dt})", rules={"default": dt},
                      vector_format=dt, source=src), warnings


# ---------------------------------------------------------------------------------------------
# Putting it together
# ---------------------------------------------------------------------------------------------

_SLUG_RE = re.compile(r"[^a-z0-9.]+")


def slug(name: str) -> str:
    """A spec id from a repo or folder name: lowercase kebab-case (Qwen/Qwen3-8B -> qwen3-8b)."""
    base = name.rstrip("/").split("/")[-1].split("@")[0].lower()
    parts = [p.strip(".") for p in _SLUG_RE.split(base)]
    parts = [re.sub(r"\.{2,}", ".", p) for p in parts if p.strip(".")]
    return "-".join(parts) or "model"


def spec_from_hf(config: dict[str, Any], table: CheckpointTable | None, *, name: str, source: str,
                 hf_repo: str | None = None, config_url: str | None = None) -> ModelSpec:
    """A ModelSpec from config.json and, when there are weights, their header-exact table."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: config.json is not a JSON object")
    family, data = text_config(config)
    warnings: list[str] = []
    arch = architecture_from_config(config)
    recipe, qwarn = recipe_from_config(config)
    warnings += qwarn
    n_layers = arch.num_hidden_layers if arch else _int_or_none(data.get("num_hidden_layers"))
    checkpoint = None
    extra: list[ExtraGroup] = []
    if table is not None:
        roles = classify_hf(table, n_layers, quant_hints(config))
        checkpoint = summarize(table, roles)
        if arch is not None:
            arch = _with_stored_mtp(arch, table, warnings)
            for g in checkpoint.groups:
                # Groups the architecture does not derive (vision towers, unrecognised tensors)
                # are carried from the header so both paths account for them.
                if g.name in ("vision", "other") and g.params > 0:
                    fmt = max(g.formats, key=lambda f: g.formats[f])
                    extra.append(ExtraGroup(name=g.name, params=g.params, format=_priceable(fmt, recipe),
                                            resident=True, source=f"safetensors headers of {source}"))
    if arch is None:
        missing = [f for f in ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim")
                   if data.get(f) is None]
        what = (f"model_type {family!r} is not a family fitcalc reads" if family
                else "config.json has no model_type" if config else "there is no config.json")
        msg = (f"{what}, so the architecture is unknown; the KV cache needs {', '.join(KV_FIELDS)}"
               + (f" (absent here: {', '.join(missing)})" if missing else "")
               + f"; known families: {', '.join(sorted(FAMILIES))}")
        if checkpoint is None:
            raise ConfigError(msg, hint="point at a folder with the weights for header-exact sizes, or write a spec YAML")
        warnings.append(msg + "; weights below are header-exact")
    sources = [Source(kind="hf_config", url=config_url, citation=None if config_url else f"{source}/config.json",
                      fields=["architecture", "native_recipe"])]
    if checkpoint is not None:
        sources.append(Source(kind="safetensors_header", citation=f"safetensors headers of {source}",
                              fields=["checkpoint"]))
    return ModelSpec(id=slug(name), display_name=name, hf_repo=hf_repo, architecture=arch, native_recipe=recipe,
                     extra_groups=extra, checkpoint=checkpoint, warnings=warnings, sources=sources)


def _priceable(fmt: str, recipe: RecipeSpec) -> str:
    from fitcalc.core.formats import is_format

    return fmt if is_format(fmt) else recipe.vector_format


def _int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _with_stored_mtp(arch: Architecture, table: CheckpointTable, warnings: list[str]) -> Architecture:
    """Make the architecture's MTP layers those the checkpoint stores."""
    layout = hf_mtp_layout(table, arch.num_hidden_layers)
    if layout is None:
        if arch.mtp is not None:
            warnings.append(f"config.json names {arch.mtp.num_layers} MTP layer(s) but the checkpoint stores none")
            return arch.model_copy(update={"mtp": None})
        return arch
    if not layout.looks_like_mtp and arch.mtp is None:
        warnings.append(f"the headers hold {layout.num_layers} decoder layer(s) past num_hidden_layers = "
                        f"{arch.num_hidden_layers} without MTP tensors (eh_proj, enorm): config.json and the "
                        "weights disagree; they are counted as MTP layers")
    mtp = MTP(num_layers=layout.num_layers, own_embedding=layout.own_embedding, own_head=layout.own_head)
    if arch.mtp != mtp:
        return arch.model_copy(update={"mtp": mtp})
    return arch
