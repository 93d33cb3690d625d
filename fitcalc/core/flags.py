"""Ready-to-paste engine settings for a plan, from each engine profile's ``flags:`` map. CORE.

One pure function serves every engine: a plan is turned into knob values (``context``,
``batch``, ``kv_dtype``, ``tensor_parallel``, ``gpu_layers``, ``cpu_moe``, ``tensor_split`` ...),
and each knob the engine spells in its profile becomes

* a command-line flag when the spelling starts with ``-`` (``--max-model-len 32768``),
* an environment variable when it is UPPER_CASE (``OLLAMA_KV_CACHE_TYPE=q8_0``),
* a model parameter otherwise (Ollama's Modelfile ``PARAMETER num_ctx 32768``).

What a user pastes is ``steps``: each a short title and shell lines that run as they stand. An
engine whose profile names a ``server`` command (Ollama) reads its environment variables there,
not on the client's line (ollama envconfig/config.go is read by ``ollama serve``); model
parameters go into the file the profile names (``parameters_file: Modelfile``), written by a
here-document, then the profile's ``create`` and ``launch`` lines (``ollama create``, ``ollama run``). Every flag, variable and parameter
spelled in engine_profiles/ is checked against the engine's own argument list by
tests/test_flags.py (tests/data/engine_args.yaml, which cites each engine's source).

The model a launch line names must hold the weights of the chosen recipe: the checkpoint's own
repository for the native recipe, the engine's library tag for the type it serves by default
(``recipes.serving_recipe``), otherwise a ``<placeholder>`` and a note saying what to find.

Knobs the engine has no spelling for are left out (and listed in ``unsupported``); values the
engine spells differently come from ``flag_values``. No branch here names an engine.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from fitcalc.core.engines import EngineProfile
from fitcalc.core.spec import ModelSpec

# Knobs whose flag takes no value: present means on.
_SWITCHES = ("expert_parallel",)


class RunStep(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    what: str  # one line saying what the step does, e.g. "start the server with these settings"
    lines: list[str]  # shell lines, pasted as they are


class ModelRef(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    ref: str  # what the launch line names
    model: str = ""  # the model's id (names what `ollama create` makes)
    found: bool  # False: ``ref`` is a <placeholder> the user must replace
    note: str | None = None  # what the user must find, when not found


class EngineFlags(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    engine: str
    command: str  # the launch line with its flags and environment, one shell line
    args: list[str]  # command-line flags and values, in order
    env: dict[str, str]  # environment variables
    parameters: dict[str, str]  # model parameters (Modelfile / API options)
    unsupported: list[str]  # knobs the plan set that this engine has no setting for
    steps: list[RunStep] = []  # what to paste, in order (the command, or server + Modelfile + run)
    model_ref: ModelRef | None = None


def model_reference(engine: EngineProfile, model: ModelSpec, recipe_id: str) -> ModelRef:
    """What the launch line names, by the engine's ``flags.model_ref`` (hf_repo | gguf_file | tag),
    and whether that names weights in ``recipe_id``: a repository holds one quantization, a library
    tag the engine's default type."""
    from fitcalc.core.recipes import GENERIC_RECIPES, serving_recipe

    how = engine.flags.get("model_ref", "hf_repo")
    native = recipe_id in ("native", model.native_recipe.id)
    recipe = model.native_recipe if native else GENERIC_RECIPES.get(recipe_id)
    quant_name = (recipe.display_name if recipe is not None else None) or recipe_id.upper()
    repo = model.hf_repo or model.id
    if how == "gguf_file":
        quant = recipe_id.upper() if not native else model.native_recipe.id.upper()
        name = f"{model.id}-{quant}.gguf"
        return ModelRef(ref=name, model=model.id, found=True,
                        note=f"{name} stands for a {quant_name} GGUF file of {repo}; llama-server -hf USER/REPO:{quant} "
                             f"downloads one from a Hub repository that holds it")
    if how == "tag":
        tag = next((a for a in model.aliases if ":" in a), None)
        served = serving_recipe(model, engine.gguf_native, engine.default_gguf_recipe)
        if tag is not None and served is not None and recipe_id == served:
            return ModelRef(ref=tag, model=model.id, found=True)
        return ModelRef(ref=f"hf.co/<user>/<{model.id}-GGUF>:{quant_name}", model=model.id, found=False,
                        note=(f"the library tag {tag} serves {served.upper() if served else 'another type'}, "
                              if tag else f"{engine.display_name}'s library has no tag for {model.id} here; ")
                        + f"for {quant_name} name a Hub repository holding a {quant_name} GGUF of {repo} "
                          "(https://huggingface.co/docs/hub/ollama)")
    if native:
        return ModelRef(ref=repo, model=model.id, found=True)
    return ModelRef(ref=f"<{quant_name} checkpoint of {repo}>", model=model.id, found=False,
                    note=f"{repo} holds {model.native_recipe.display_name or 'the release weights'}, not "
                         f"{quant_name}: replace <...> with a repository that holds {quant_name} weights of it")


def engine_flags(engine: EngineProfile, model_ref: ModelRef | str, knobs: dict[str, object]) -> EngineFlags:
    """The engine's settings for ``knobs`` (None values are skipped), in the profile's spellings."""
    if isinstance(model_ref, str):
        model_ref = ModelRef(ref=model_ref, found=True)
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
    launch = engine.flags.get("launch", "").replace("{model}", model_ref.ref)
    env_words = [f"{k}={v}" for k, v in env.items()]
    command = " ".join(env_words + ([launch] if launch else []) + args)
    return EngineFlags(engine=engine.id, command=command, args=args, env=env, parameters=params,
                       unsupported=unsupported, steps=_steps(engine, model_ref, env_words, params, command),
                       model_ref=model_ref)


def _steps(engine: EngineProfile, mref: ModelRef, env_words: list[str], params: dict[str, str],
           command: str) -> list[RunStep]:
    """The command as one step; or, for an engine with a server and a parameters file, the server
    started with its environment, the file written, the model created from it and run."""
    server = engine.flags.get("server")
    pfile = engine.flags.get("parameters_file")
    if server is None or pfile is None or "create" not in engine.flags:
        return [RunStep(what="run", lines=[command])]
    steps = []
    if env_words:
        steps.append(RunStep(what="start the server with these settings, after stopping a running one",
                             lines=[" ".join([*env_words, server])]))
    launch = engine.flags.get("launch", "")
    if params:
        name = re.sub(r"[^a-z0-9_.-]+", "-", (mref.model or mref.ref).lower()).strip("-") + "-fitcalc"
        body = [f"FROM {mref.ref}", *(f"PARAMETER {k} {v}" for k, v in params.items())]
        create = engine.flags.get("create", "").replace("{name}", name)
        steps.append(RunStep(what=f"then, in another shell, the model with its parameters in a {pfile}",
                             lines=[f"cat > {pfile} <<'EOF'", *body, "EOF", create,
                                    launch.replace("{model}", name)]))
    else:
        steps.append(RunStep(what="then, in another shell", lines=[launch.replace("{model}", mref.ref)]))
    return steps


__all__ = ["EngineFlags", "ModelRef", "RunStep", "engine_flags", "model_reference"]
