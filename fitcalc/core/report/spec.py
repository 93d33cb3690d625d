"""The report spec: a YAML file of the models and hardware a team cares about. CORE.

pydantic with ``extra="forbid"`` everywhere, so a misspelt key is an error, not a silent default.
The simplest spec is three lists that expand to a matrix::

    models: [gpt-oss-20b]
    gpus: [rtx-4090, "h100-sxm:2", 24GiB]
    contexts: [8192, 32k]
    assert: {must_fit: true}

Optional lists ``batches``, ``engines``, ``recipes``, ``kv_dtypes`` widen the matrix; ``defaults``
fills what a list or a named scenario leaves out; ``scenarios`` are single named cases; ``assert``
applies to every scenario and ``checks`` to the scenarios a ``where`` selects. The JSON Schema of
this model is ``docs/report-spec.schema.json`` (``scripts/export_report_schema.py`` writes it; a test
checks that it is current). Sizes take units (``70GiB``, ``80GB``) and contexts take ``k``
(``128k`` = 131,072 tokens), parsed by ``fitcalc.core.units``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from fitcalc.core.estimate.training import TrainSetup
from fitcalc.core.errors import FitcalcError
from fitcalc.core.spec import MAX_GPU_COUNT, GpuCount

# A matrix past this many scenarios needs `--yes` (or a larger `max_scenarios` in the spec):
# 5,000 rows is already more than a person reads, and a typo in a list can multiply it tenfold.
DEFAULT_MAX_SCENARIOS = 5000
# No spec runs more than this, even with `--yes`: each answered scenario holds its terms (about
# 20 KB: a 330,000-scenario sweep reached 6.7 GB, issue #17), so 20,000 stay under half a GiB.
HARD_MAX_SCENARIOS = 20_000


def _bytes(value: Any) -> int:
    from fitcalc.core.units import parse_bytes

    try:
        return parse_bytes(value)
    except FitcalcError as e:  # pydantic reports ValueError with the field's location
        raise ValueError(e.one_line()) from None


def _count(value: Any) -> int:
    from fitcalc.core.units import parse_count

    if isinstance(value, bool):
        raise ValueError("expected a token count such as 8192 or 32k")
    try:
        n = parse_count(value)
    except FitcalcError as e:
        raise ValueError(e.one_line()) from None
    if n <= 0:
        raise ValueError(f"must be positive, got {n}")
    return n


# In the JSON Schema a size or a count is a positive integer or the text fitcalc.core.units parses
# (an editor then accepts "70GiB"; whether "24G" is ambiguous is for fitcalc to say).
Bytes = Annotated[int, BeforeValidator(_bytes), WithJsonSchema({
    "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^\s*[0-9][0-9_,.]*\s*[A-Za-z]*\s*$"}],
    "examples": ["70GiB", "80GB", 1073741824]})]
Tokens = Annotated[int, BeforeValidator(_count), WithJsonSchema({
    "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^\s*[0-9][0-9_,]*\s*[kKmM]?\s*$"}],
    "examples": [8192, "32k", "128k"]})]
PositiveInt = Annotated[int, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class Assertions(_Strict):
    """What must hold for a scenario. Every size is per GPU; each unset field asserts nothing."""

    must_fit: bool | None = Field(None, description="true: the footprint fits (headroom >= 0; 'tight' fits)")
    max_vram: Bytes | None = Field(None, description="required bytes per GPU at most this (e.g. 70GiB)")
    min_context: Tokens | None = Field(None, description="the largest context that fits is at least this")
    min_headroom: Bytes | None = Field(None, description="available minus required is at least this")
    min_decode_tokens_per_s: float | None = Field(
        None, gt=0, description="estimated decode tokens/s of one sequence at the full context at least this; "
                                "fails where the scenario does not fit, and as 'not available' on a raw "
                                "budget (no memory bandwidth)")

    def is_empty(self) -> bool:
        return all(getattr(self, k) in (None, False) for k in type(self).model_fields)


class ModelRef(_Strict):
    """A model with how to find it, when a plain string is not enough."""

    model: str = Field(description="bundled id, Hub name, or a path to a model spec (relative to this file)")
    source: Literal["auto", "catalog", "local", "hub"] = "auto"


class GpuRef(_Strict):
    """A GPU type and how many of it (tensor parallel), as a mapping."""

    gpu: str = Field(description="GPU id or alias (rtx-4090, h100-sxm) or a raw budget (24GiB)")
    count: GpuCount = Field(1, description=f"GPUs of this type, 1 to {MAX_GPU_COUNT:,}")


ModelEntry = Union[str, ModelRef]
GpuEntry = Union[str, GpuRef]


def model_text(m: ModelEntry) -> str:
    return m if isinstance(m, str) else m.model


def model_source(m: ModelEntry) -> str:
    return "auto" if isinstance(m, str) else m.source


def gpu_text(g: GpuEntry) -> str:
    """One spelling for both forms: ``h100-sxm:8`` (what ``--gpu`` takes)."""
    if isinstance(g, str):
        return g.strip()
    return g.gpu.strip() if g.count == 1 else f"{g.gpu.strip()}:{g.count}"


class Defaults(_Strict):
    """Values for whatever the matrix lists or a scenario leave out."""

    context: Tokens | None = None
    batch: PositiveInt = 1
    engine: str = Field("auto", description="auto: llama.cpp for GGUF recipes, else vllm")
    recipe: str = Field("native", description="storage recipe; native is the checkpoint's own")
    kv_dtype: str = Field("auto", description="KV cache dtype; auto is the engine's default")
    prompt_tokens: Tokens | None = Field(None, description="prefill length; default the whole context")
    engine_settings: dict[str, dict[str, Union[bool, int, float, str]]] = Field(
        default_factory=dict, description="per engine id, the engine's own settings (the --set keys of fit: "
                                          "gpu_memory_utilization, max_num_batched_tokens, n_ubatch, ...)")


class Scenario(_Strict):
    """One named case. Fields left out come from ``defaults``."""

    name: str = Field(min_length=1)
    model: ModelEntry
    gpu: GpuEntry
    context: Tokens | None = None
    batch: PositiveInt | None = None
    engine: str | None = None
    recipe: str | None = None
    kv_dtype: str | None = None
    prompt_tokens: Tokens | None = None
    settings: dict[str, Union[bool, int, float, str]] = Field(
        default_factory=dict, description="the engine's own settings for this scenario (the --set keys of fit); "
                                          "they win over defaults.engine_settings")
    assert_: Assertions | None = Field(None, alias="assert")


class TrainAssertions(_Strict):
    """What must hold for a training scenario: per GPU, as `fitcalc train` prints it."""

    must_fit: bool | None = Field(None, description="true: one training step fits each GPU ('tight' fits)")
    max_vram: Bytes | None = Field(None, description="one GPU's bytes at most this (e.g. 70GiB)")
    min_headroom: Bytes | None = Field(None, description="memory minus one GPU's bytes is at least this")
    min_micro_batch: PositiveInt | None = Field(None, description="the largest micro-batch at the sequence is at least this")
    min_seq: Tokens | None = Field(None, description="the longest sequence at the micro-batch is at least this")
    max_gpus_needed: PositiveInt | None = Field(
        None, description="GPUs of the scenario's kind the step needs with its sharding, at most this")


class TrainingScenario(_Strict):
    """A fine-tuning step, priced as `fitcalc train MODEL --gpu GPU` with the options under ``train``."""

    name: str = Field(min_length=1)
    model: ModelEntry
    gpu: GpuEntry
    train: TrainSetup = Field(default_factory=TrainSetup, description=(
        "the options of `fitcalc train`: method, rank, targets, optimizer, precision, micro_batch, seq, "
        "grad_accum, checkpointing, checkpoint_every, attention, loss, zero, fsdp, offload, double_quant, "
        "base_recipe, gpus_per_node"))
    assert_: TrainAssertions | None = Field(None, alias="assert")


class Where(_Strict):
    """Selects scenarios: each given field matches one value or any of a list, as written in the spec."""

    scenario: str | list[str] | None = Field(None, description="scenario name(s)")
    model: str | list[str] | None = None
    gpu: str | list[str] | None = None
    engine: str | list[str] | None = None
    recipe: str | list[str] | None = None
    kv_dtype: str | list[str] | None = None
    context: Tokens | list[Tokens] | None = None
    batch: PositiveInt | list[PositiveInt] | None = None


class Check(_Strict):
    """Assertions for the scenarios ``where`` selects (all of them when ``where`` is absent)."""

    name: str | None = None
    where: Where = Field(default_factory=Where)
    require: Literal["all", "any"] = Field(
        "all", description="all: every selected scenario must satisfy it; any: at least one must")
    assert_: Assertions = Field(alias="assert")


class ReportSpec(_Strict):
    """A report: matrix lists, named scenarios, and assertions. See docs/report-spec.md."""

    schema_version: Literal[1] = 1
    title: str = "fitcalc report"
    description: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    models: list[ModelEntry] | None = Field(None, description="matrix: models (with gpus and contexts)")
    gpus: list[GpuEntry] | None = Field(None, description="matrix: GPUs, ID or ID:COUNT or {gpu, count}")
    contexts: list[Tokens] | None = Field(None, description="matrix: tokens per sequence")
    batches: list[PositiveInt] | None = None
    engines: list[str] | None = None
    recipes: list[str] | None = None
    kv_dtypes: list[str] | None = None
    scenarios: list[Scenario] = Field(default_factory=list)
    training: list[TrainingScenario] = Field(default_factory=list, description="named fine-tuning steps")
    assert_: Assertions | None = Field(None, alias="assert", description="applies to every scenario")
    checks: list[Check] = Field(default_factory=list)
    max_scenarios: Annotated[int, Field(gt=0, le=HARD_MAX_SCENARIOS)] = Field(
        DEFAULT_MAX_SCENARIOS, description=f"a larger matrix needs --yes; at most {HARD_MAX_SCENARIOS:,}")

    @model_validator(mode="after")
    def _consistent(self) -> ReportSpec:
        matrix_keys = ("gpus", "contexts", "batches", "engines", "recipes", "kv_dtypes")
        if self.models is None:
            given = [k for k in matrix_keys if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{given[0]} is given but models is not: the matrix needs models, gpus and contexts")
        else:
            if self.gpus is None:
                raise ValueError("models is given but gpus is not: the matrix needs both")
            if self.contexts is None and self.defaults.context is None:
                raise ValueError("the matrix needs contexts (or defaults.context)")
        names = [s.name for s in self.scenarios] + [t.name for t in self.training]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"scenario name {dup[0]!r} is used twice; names must be unique")
        for s in self.scenarios:
            if s.context is None and self.defaults.context is None:
                raise ValueError(f"scenario {s.name!r} has no context and defaults.context is not set")
        return self


def report_spec_schema() -> dict:
    """The JSON Schema of a report spec, as published in docs/report-spec.schema.json."""
    schema = ReportSpec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


__all__ = ["ReportSpec", "Scenario", "Assertions", "TrainingScenario", "TrainAssertions", "TrainSetup", "Check", "Where", "Defaults", "ModelRef", "GpuRef",
           "DEFAULT_MAX_SCENARIOS", "HARD_MAX_SCENARIOS", "gpu_text", "model_text", "model_source", "report_spec_schema"]
