"""Recipes: which storage format each tensor group uses. CORE.

A model's *native* recipe comes from its spec (gpt-oss: experts MXFP4, everything else BF16).
The generic recipes here re-quantize the same tensors the way common tools do; each says which
tool's convention it follows. Selectors are ``default``, a group (``experts``) or
``group.role`` (``attention.v_proj``); the most specific one wins (see ``RecipeSpec``).
"""

from __future__ import annotations

from fitcalc.core.errors import UnknownIdError
from fitcalc.core.formats import get_format
from fitcalc.core.spec import ModelSpec, RecipeSpec

# Routers are tiny and precision-sensitive; every quantizer below leaves them alone
# (transformers' gpt-oss modules_to_not_convert lists mlp.router; llama.cpp never quantizes
# ffn_gate_inp: src/llama-quant.cpp "quantize &= name.find(\"ffn_gate_inp.weight\") == npos").
_KEEP_HIGH = {"router": "bf16", "embedding": "bf16", "lm_head": "bf16"}

# llama.cpp stores 1-D tensors (norms, biases) as F32 in GGUF files (convert_hf_to_gguf.py:
# "if n_dims <= 1 ... data_qtype = F32").
_GGUF_VECTORS = "f32"
_LLAMA_QUANT = "llama.cpp src/llama-quant.cpp llama_tensor_get_type (simplified: per-group rules)"


def _generic(rid: str, name: str, matrices: str, desc: str, source: str, keep: dict[str, str] | None = None,
             vector: str = "bf16") -> RecipeSpec:
    rules = {"default": matrices, **(_KEEP_HIGH if keep is None else keep)}
    return RecipeSpec(id=rid, display_name=name, description=desc, rules=rules, vector_format=vector, source=source)


def _gguf(rid: str, name: str, base: str, output: str, more_bits: dict[str, str] | None = None,
          extra: dict[str, str] | None = None) -> RecipeSpec:
    rules = {"default": base, "embedding": base, "lm_head": output, "router": "f32", **(extra or {})}
    return RecipeSpec(id=rid, display_name=name, rules=rules, more_bits=more_bits or {}, vector_format=_GGUF_VECTORS,
                      description=f"GGUF {name}: base {base}, output {output}", source=_LLAMA_QUANT)


GENERIC_RECIPES: dict[str, RecipeSpec] = {r.id: r for r in [
    _generic("bf16", "BF16", "bf16", "every tensor in BF16", "the usual release dtype", keep={}),
    _generic("fp16", "FP16", "fp16", "every tensor in FP16", "IEEE half", keep={}, vector="fp16"),
    _generic("fp32", "FP32", "fp32", "every tensor in FP32", "IEEE single", keep={}, vector="fp32"),
    _generic("fp8", "FP8 (per-channel)", "fp8-channel", "linear layers FP8 E4M3 with per-channel scales",
             "compressed-tensors FP8_DYNAMIC (llm-compressor): lm_head and routers ignored"),
    _generic("fp8-block", "FP8 (128x128 blocks)", "fp8-block128", "linear layers FP8 with 128x128 block scales",
             "DeepSeek-V3 / Qwen3-FP8 fine-grained FP8 (weight_block_size [128, 128])"),
    _generic("int8", "INT8 W8A16", "int8", "linear layers INT8 with per-channel scales",
             "compressed-tensors W8A16"),
    _generic("int4-awq", "INT4 AWQ g128", "int4-awq", "linear layers INT4 AWQ, group 128",
             "AutoAWQ defaults (w_bit 4, q_group_size 128, zero_point true); lm_head kept"),
    _generic("int4-gptq", "INT4 GPTQ g128", "int4-gptq", "linear layers INT4 GPTQ, group 128, act-order",
             "GPTQModel defaults (bits 4, group_size 128, desc_act true); lm_head kept"),
    _generic("nf4", "bitsandbytes NF4", "nf4", "linear layers NF4 (QLoRA storage), no double quantization",
             "transformers BitsAndBytesConfig(load_in_4bit, bnb_4bit_quant_type='nf4'); lm_head skipped"),
    _generic("nf4-dq", "bitsandbytes NF4 + double quant", "nf4-dq", "linear layers NF4 with double quantization",
             "BitsAndBytesConfig(bnb_4bit_use_double_quant=True)"),
    _generic("nvfp4", "NVFP4", "nvfp4", "linear layers NVFP4; lm_head and routers kept in BF16",
             "TensorRT Model Optimizer NVFP4 (default excludes lm_head and MoE gates)"),
    _generic("mxfp4", "MXFP4 experts", "bf16", "MoE expert weights in MXFP4, everything else BF16 (gpt-oss style)",
             "gpt-oss model card sec. 2.1", keep={"experts": "mxfp4"}),
    # GGUF mixes. More-bits layers follow llama.cpp's use_more_bits(i, n).
    _gguf("q8_0", "Q8_0", "q8_0", "q8_0"),
    _gguf("q6_k", "Q6_K", "q6_k", "q6_k"),
    _gguf("q5_k_m", "Q5_K_M", "q5_k", "q6_k", more_bits={"attention.v_proj": "q6_k", "mlp.down_proj": "q6_k",
                                                        "experts.down_proj": "q6_k"}),
    _gguf("q4_k_m", "Q4_K_M", "q4_k", "q6_k", more_bits={"attention.v_proj": "q6_k", "mlp.down_proj": "q6_k",
                                                        "experts.down_proj": "q6_k"}),
    _gguf("q4_0", "Q4_0", "q4_0", "q6_k"),
    _gguf("q3_k_m", "Q3_K_M", "q3_k", "q6_k", extra={"attention.v_proj": "q4_k", "attention.o_proj": "q4_k"},
          more_bits={"mlp.down_proj": "q5_k", "experts.down_proj": "q5_k"}),
    _gguf("q2_k", "Q2_K", "q2_k", "q6_k", extra={"attention.v_proj": "q3_k", "mlp.down_proj": "q3_k",
                                                "experts.down_proj": "q3_k"}),
    _gguf("iq4_xs", "IQ4_XS", "iq4_xs", "q6_k"),
    _gguf("mxfp4_moe", "MXFP4_MOE", "q8_0", "q8_0", extra={"experts": "mxfp4-gguf"}),
]}


def resolve_recipe(model: ModelSpec, recipe: str | RecipeSpec | None) -> RecipeSpec:
    """The recipe for ``model``: ``None`` or ``native`` gives the checkpoint's own."""
    if isinstance(recipe, RecipeSpec):
        return recipe
    if recipe is None or recipe in ("native", model.native_recipe.id):
        return model.native_recipe
    key = recipe.strip().lower().replace("-", "_") if recipe.strip().lower().replace("-", "_") in GENERIC_RECIPES \
        else recipe.strip().lower()
    if key in GENERIC_RECIPES:
        return GENERIC_RECIPES[key]
    raise UnknownIdError("recipe", recipe, ["native", *GENERIC_RECIPES],
                         hint="`fitcalc recipes` lists them; 'native' is the checkpoint's own")


def validate_recipe_formats(recipe: RecipeSpec) -> None:
    """Raise UnknownIdError if a rule names a format that does not exist."""
    for fid in [*recipe.rules.values(), *recipe.more_bits.values(), recipe.vector_format]:
        get_format(fid)


def pick_format(recipe: RecipeSpec, group: str, role: str, more_bits: bool = False) -> str:
    """Format id for a matrix of ``group.role``: the most specific selector wins."""
    if more_bits and recipe.more_bits:
        for sel in (f"{group}.{role}", group):
            if sel in recipe.more_bits:
                return recipe.more_bits[sel]
    for sel in (f"{group}.{role}", group, "default"):
        if sel in recipe.rules:
            return recipe.rules[sel]
    return recipe.rules["default"]  # unreachable: RecipeSpec requires 'default'


def use_more_bits(layer: int, n_layers: int) -> bool:
    """llama.cpp's use_more_bits(i_layer, n_layers) (src/llama-quant.cpp):
    i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2, in integer arithmetic."""
    return layer < n_layers // 8 or layer >= 7 * n_layers // 8 or (layer - n_layers // 8) % 3 == 2


# Candidates a plan tries when no --recipe is given, most bits first (the plan keeps the first that
# fits, among those with no more bits than the checkpoint itself: re-quantizing never adds bits).
# Engines that load checkpoints (vLLM, SGLang): FP8 and 4-bit checkpoint formats; GGUF engines:
# the common llama.cpp mixes.
CHECKPOINT_CANDIDATES = ("fp8", "int8", "int4-awq", "int4-gptq")
GGUF_CANDIDATES = ("q8_0", "q6_k", "q5_k_m", "q4_k_m", "iq4_xs", "q3_k_m", "q2_k")


# A checkpoint format and its GGUF twin hold the same numbers (gpt-oss MXFP4 experts load into
# llama.cpp's MXFP4 type unchanged).
_SAME_NUMBERS = {"mxfp4": ("mxfp4", "mxfp4-gguf"), "nvfp4": ("nvfp4",)}


def keeps_low_bit_groups(model: ModelSpec, recipe: RecipeSpec) -> bool:
    """The recipe stores every group the checkpoint already holds in a 4-bit float format (MXFP4,
    NVFP4: trained or calibrated for it) in that same format. Re-quantizing those to another
    4-bit format loses accuracy and saves almost nothing, and llama.cpp's quantizer keeps gpt-oss's
    MXFP4 experts as they are."""
    for group, fid in model.native_recipe.rules.items():
        same = _SAME_NUMBERS.get(fid)
        if same is not None and recipe.rules.get(group, recipe.rules["default"]) not in same:
            return False
    return True


def serving_recipe(model: ModelSpec, gguf_native: bool, default_gguf: str | None) -> str | None:
    """The recipe an engine runs ``model`` in when the user names none: for a GGUF engine with a
    ``default_gguf`` type (Ollama's library, llama-server -hf: Q4_K_M), that type, unless the
    checkpoint holds 4-bit float groups, which those engines keep as they are (gpt-oss: MXFP4_MOE);
    None (the checkpoint's own) for every other engine."""
    if not gguf_native or default_gguf is None:
        return None
    mxfp4_moe = GENERIC_RECIPES["mxfp4_moe"]
    low = [f for f in model.native_recipe.rules.values() if f in _SAME_NUMBERS]
    if low:
        return mxfp4_moe.id if keeps_low_bit_groups(model, mxfp4_moe) else None
    return default_gguf


def recipe_candidates(model: ModelSpec, gguf: bool) -> list[RecipeSpec]:
    """Recipes a plan may choose for ``model`` on a GGUF or a checkpoint engine, unsorted: the
    checkpoint's own (checkpoint engines), the common alternatives, and for a model with MXFP4
    experts llama.cpp's MXFP4_MOE mix; none that re-quantizes a 4-bit float group."""
    native = model.native_recipe
    if gguf:
        pool = [GENERIC_RECIPES["mxfp4_moe"]] + [GENERIC_RECIPES[r] for r in GGUF_CANDIDATES]
    else:
        pool = [native] + [GENERIC_RECIPES[r] for r in CHECKPOINT_CANDIDATES]
    return [r for r in pool if r.id == native.id or keeps_low_bit_groups(model, r)]
