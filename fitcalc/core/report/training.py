"""Training scenarios of a report spec: `fitcalc train`'s answer per scenario, and their assertions. CORE.

Each scenario is priced by the same functions `fitcalc train` calls (prepare_training, train_result),
so a report and `train` cannot disagree. The engine profile is the torch one (PyTorch's own
allocations: context, cuBLAS workspace, driver reserve), as `fitcalc train` uses.
"""

from __future__ import annotations

from fitcalc.core.estimate.training import prepare_training, train_result
from fitcalc.core.report.matrix import Resolver
from fitcalc.core.report.result import AssertionResult, Status, TrainingResult
from fitcalc.core.report.spec import TrainAssertions, TrainingScenario, gpu_text, model_source, model_text
from fitcalc.core.units import format_bytes

TRAIN_ASSERTION_ORDER = ("must_fit", "max_vram", "min_headroom", "min_micro_batch", "min_seq", "max_gpus_needed")


def evaluate_training(scenarios: list[TrainingScenario], resolver: Resolver) -> list[TrainingResult]:
    out = []
    for t in scenarios:
        spec = resolver.model(model_text(t.model), model_source(t.model))
        dev, count = resolver.device(gpu_text(t.gpu))
        prepared = prepare_training(spec, t.train, resolver.engine(spec, "native", "torch"))
        r = train_result(prepared, [(dev, count, dev.label)])
        out.append(TrainingResult(name=t.name, model=model_text(t.model), gpu=gpu_text(t.gpu),
                                  display_name=r.display_name, setup=r.setup, recipe=r.recipe,
                                  params_total=r.params_total, params_trainable=r.params_trainable, fit=r.fits[0],
                                  notes=[*r.notes, *spec.warnings]))
    return out


def _gib(n: int) -> str:
    return format_bytes(n, "iec")


def _check(key: str, want, r: TrainingResult) -> tuple[Status, int | bool | None, str]:
    f = r.fit
    per = " per GPU" if f.count > 1 else ""
    if key == "must_fit":
        return ("pass" if f.fits else "fail", f.fits,
                f"{f.verdict}: needs {_gib(f.gpu_bytes)} of {_gib(f.memory_bytes)}{per} "
                f"(headroom {format_bytes(f.headroom_bytes)})")
    if key == "max_vram":
        ok = f.gpu_bytes <= want
        return ("pass" if ok else "fail", f.gpu_bytes,
                f"needs {_gib(f.gpu_bytes)}{per}, {'within' if ok else f'{_gib(f.gpu_bytes - want)} over'} "
                f"the limit of {_gib(want)}")
    if key == "min_headroom":
        ok = f.headroom_bytes >= want
        return ("pass" if ok else "fail", f.headroom_bytes,
                f"headroom {format_bytes(f.headroom_bytes)} {'>=' if ok else '<'} {_gib(want)} wanted")
    if key in ("min_micro_batch", "min_seq"):
        actual = f.max_micro_batch if key == "min_micro_batch" else f.max_seq
        what = (f"largest micro-batch at {r.setup.seq:,} tokens" if key == "min_micro_batch"
                else f"longest sequence at micro-batch {r.setup.micro_batch}")
        ok = actual is not None and actual >= want
        return ("pass" if ok else "fail", actual,
                f"{what}: {f'{actual:,}' if actual else 'none fits'} {'>=' if ok else '<'} {want:,} wanted")
    if key == "max_gpus_needed":
        n = f.gpus_needed
        ok = n is not None and n <= want
        shown = f"{n:,}" if n is not None else "more than 1,024, or sharding off"
        return ("pass" if ok else "fail", n, f"GPUs needed: {shown} {'<=' if ok else '>'} {want:,} allowed")
    raise KeyError(key)  # pragma: no cover - TRAIN_ASSERTION_ORDER lists every key above


def training_assertions(scenarios: list[TrainingScenario], results: list[TrainingResult]) -> list[AssertionResult]:
    """Each training scenario's own ``assert`` block, in TRAIN_ASSERTION_ORDER."""
    out = []
    for t, r in zip(scenarios, results, strict=True):
        a: TrainAssertions | None = t.assert_
        if a is None:
            continue
        for key in TRAIN_ASSERTION_ORDER:
            want = getattr(a, key)
            if want is None:
                continue
            status, actual, msg = _check(key, want, r)
            out.append(AssertionResult(scenario=t.name, source=f"training[{t.name}].assert", assertion=key,
                                       status=status, expected=want, actual=actual, message=msg))
    return out


__all__ = ["evaluate_training", "training_assertions", "TRAIN_ASSERTION_ORDER"]
