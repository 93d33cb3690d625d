"""The choices `fit`, `plan` and reports make before any arithmetic: which engine, which context,
which layout the user fixed. CORE: pure functions of the model spec and the options given."""

from __future__ import annotations

from fitcalc.core.errors import InputError
from fitcalc.core.estimate.placement import Layout
from fitcalc.core.spec import ModelSpec

# fit's context when none is given (docs/cli.md): a common serving length, capped by the model's window
DEFAULT_CONTEXT = 8192

# `plan` without --engine: vLLM keeps every layer on the GPUs; when that does not fit, llama.cpp can
# leave layers and experts in RAM (docs/cli.md, "Engines").
OFFLOAD_ENGINE = "llama.cpp"


def is_gguf_recipe(model: ModelSpec, recipe) -> bool:
    """Whether ``recipe`` (an id, a RecipeSpec or None for the checkpoint's own) stores GGUF block types."""
    from fitcalc.core.formats import get_format
    from fitcalc.core.recipes import resolve_recipe

    r = resolve_recipe(model, recipe)
    return any(get_format(f).gguf_type is not None for f in r.rules.values())


def pick_engine(engine: str | None, recipe_formats_gguf: bool) -> str:
    """``auto``: llama.cpp for GGUF recipes and files, vLLM otherwise (docs/cli.md, "Engines")."""
    if engine and engine.lower() != "auto":
        return engine
    return "llama.cpp" if recipe_formats_gguf else "vllm"


def engine_for(model: ModelSpec, engine: str | None, recipe) -> str:
    """The engine id a command runs ``model`` in ``recipe`` with (``pick_engine`` on the recipe's formats)."""
    return pick_engine(engine, is_gguf_recipe(model, recipe))


def is_auto(engine: str | None) -> bool:
    return engine is None or engine.lower() == "auto"


def serving_context(model: ModelSpec, context: int | None) -> int:
    """The context a fit is asked for: the user's, else DEFAULT_CONTEXT capped by the model's maximum."""
    if context is not None and context <= 0:
        raise InputError(f"--context must be positive, got {context}", hint="e.g. --context 8192 or 128k")
    limit = model.architecture.max_position_embeddings if model.architecture else None
    return context if context is not None else min(DEFAULT_CONTEXT, limit or DEFAULT_CONTEXT)


def cpu_moe_layers(model: ModelSpec, cpu_moe: int | str | None) -> int:
    """--cpu-moe as a layer count: a number, or ``all`` for every layer of the model."""
    if cpu_moe is None:
        return 0
    if str(cpu_moe).lower() == "all":
        return model.architecture.num_hidden_layers if model.architecture is not None else 0
    try:
        layers = int(cpu_moe)
    except ValueError:
        raise InputError(f"--cpu-moe takes a layer count or 'all', got {cpu_moe!r}",
                         hint="e.g. --cpu-moe 12 or --cpu-moe all") from None
    if layers < 0:
        raise InputError(f"--cpu-moe must not be negative, got {layers}", hint="e.g. --cpu-moe 12")
    return layers


def fixed_layout(model: ModelSpec, tp: int | None, pp: int | None, ep: int | None, gpu_layers: int | None,
                 cpu_moe: int | str | None) -> Layout | None:
    """The layout the user pinned with --tp/--pp/--ep/--gpu-layers/--cpu-moe, or None to let plan search."""
    if gpu_layers is not None and gpu_layers < 0:
        raise InputError(f"--gpu-layers must not be negative, got {gpu_layers}", hint="e.g. --gpu-layers 20")
    moe_layers = cpu_moe_layers(model, cpu_moe)
    if all(x is None for x in (tp, pp, ep, gpu_layers, cpu_moe)):
        return None
    return Layout(tp=tp or 1, pp=pp or 1, ep=ep or 1, gpu_layers=gpu_layers, cpu_moe=moe_layers)


def tries_offload_engine(engine: str | None, engine_id: str, fixed: Layout | None, recipe) -> bool:
    """Whether plan, having found no fit with ``engine_id``, may try OFFLOAD_ENGINE: only when the
    user chose neither the engine, nor a layout, nor a recipe."""
    return is_auto(engine) and engine_id != OFFLOAD_ENGINE and fixed is None and recipe is None


# What each kind of GPU usually runs (the engine `fit` answers for when none is named): desktops
# and Macs run GGUF files with llama.cpp (or Ollama on top of it); datacenter cards serve
# checkpoints with vLLM (or SGLang). The other engine of the pair is the alternative whose answer
# `fit` also shows where it differs.
DESKTOP_ENGINE = "llama.cpp"
SERVER_ENGINE = "vllm"


def suited_engines(segment: str | None) -> tuple[str, str]:
    """(the engine a GPU of this segment usually runs, the alternative). A raw budget (no segment)
    is answered as a server GPU, as before segments existed, with llama.cpp as the alternative."""
    if segment in ("consumer", "workstation", "apple"):
        return DESKTOP_ENGINE, SERVER_ENGINE
    return SERVER_ENGINE, DESKTOP_ENGINE


def fit_choices(model: ModelSpec, segment: str | None, engine: str | None, recipe: str | None,
                gguf_defaults: dict[str, str | None]) -> list[tuple[str, str | None]]:
    """(engine id, recipe id or None for the checkpoint's own) pairs `fit` answers for one GPU, the
    first being the answer: the named engine, or the one suited to the GPU and its alternative.
    Without --recipe a GGUF engine runs the type its library serves (``gguf_defaults``: engine id ->
    recipes.serving_recipe for it), a checkpoint engine the checkpoint. With --recipe and no engine,
    the recipe decides the engine as before (GGUF types: llama.cpp)."""
    if recipe is not None:
        return [(engine_for(model, engine, recipe), recipe)]
    if not is_auto(engine):
        assert engine is not None
        return [(engine, gguf_defaults.get(engine))]
    return [(e, gguf_defaults.get(e)) for e in suited_engines(segment)]


def prepared_with_settings(spec, recipe, eng, workload, settings, named: bool):
    """(prepared model, workload) as ``eng`` runs with ``settings``, or None when ``eng`` was not named
    and does not take one of the keys (fit's own choice then skips it)."""
    from fitcalc.core.engines import apply_settings
    from fitcalc.core.estimate import prepare

    if settings and not named and any(k not in eng.settings for k in settings):
        return None
    applied = apply_settings(eng, workload, settings)
    if applied.gpu_layers is not None or applied.cpu_moe is not None:
        raise InputError("--set n_gpu_layers / n_cpu_moe place layers and experts: fit prices the whole model on "
                         "each GPU", hint="use `fitcalc plan MODEL --set n_gpu_layers=N` (or --gpu-layers/--cpu-moe)")
    return prepare(spec, recipe, applied.engine, applied.workload.kv_dtype), applied.workload
