"""Ready-to-paste engine settings for a plan, from each engine profile's ``flags:`` map. CORE.

One pure function serves every engine: a plan is turned into knob values (``context``,
``batch``, ``kv_dtype``, ``tensor_parallel``, ``gpu_layers``, ``cpu_moe``, ``tensor_split`` ...),
and each knob the engine spells in its profile becomes

* a command-line flag when the spelling starts with ``-`` (``--max-model-len 32768``),
* an environment variable when it is UPPER_CASE (``OLLAMA_KV_CACHE_TYPE=q8_0``),
* a model parameter otherwise (Ollama's Modelfile ``PARAMETER num_ctx 32768``).

Knobs the engine has no spelling for are left out (and listed in ``unsupported``); values the
engine spells differently come from ``flag_values``. No branch here names an engine.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from fitcalc.core.engines import EngineProfile
from fitcalc.core.spec import ModelSpec

# Knobs whose flag takes no value: present means on.
_SWITCHES = ("expert_parallel",)


class EngineFlags(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    engine: str
    command: str  # the launch line with its flags, ready to paste
    args: list[str]  # command-line flags and values, in order
    env: dict[str, str]  # environment variables
    parameters: dict[str, str]  # model parameters (Modelfile / API options)
    unsupported: list[str]  # knobs the plan set that this engine has no setting for


def model_reference(engine: EngineProfile, model: ModelSpec, recipe_id: str) -> str:
    """What the launch line names: a Hub repo, a GGUF file, or a registry tag, by the engine's
    ``flags.model_ref`` (hf_repo | gguf_file | tag)."""
    how = engine.flags.get("model_ref", "hf_repo")
    if how == "gguf_file":
        quant = recipe_id.upper() if recipe_id != "native" else model.native_recipe.id.upper()
        return f"{model.id}-{quant}.gguf"
    if how == "tag":
        return next((a for a in model.aliases if ":" in a), model.id)
    return model.hf_repo or model.id


def engine_flags(engine: EngineProfile, model_ref: str, knobs: dict[str, object]) -> EngineFlags:
    """The engine's settings for ``knobs`` (None values are skipped), in the profile's spellings."""
    args: list[str] = []
    env: dict[str, str] = {}
    params: dict[str, str] = {}
    unsupported: list[str] = []
    for knob, value in knobs.items():
        if value is None or value is False:
            continue
        spelled = engine.flags.get(knob)
        if spelled is None:
            unsupported.append(knob)
            continue
        text = engine.flag_values.get(knob, {}).get(str(value), str(value))
        if spelled.startswith("-"):
            args.append(spelled)
            if knob not in _SWITCHES:
                args.append(text)
        elif spelled.isupper():
            env[spelled] = text
        else:
            params[spelled] = text
    launch = engine.flags.get("launch", "").replace("{model}", model_ref)
    parts = [f"{k}={v}" for k, v in env.items()] + ([launch] if launch else []) + args
    command = " ".join(parts)
    return EngineFlags(engine=engine.id, command=command, args=args, env=env, parameters=params,
                       unsupported=unsupported)


__all__ = ["EngineFlags", "engine_flags", "model_reference"]
