"""The `fitcalc` command. SHELL: parse options, call one function of ``fitcalc.api``, render, exit.

No arithmetic and no unit conversion here. Errors go through ``_ERRORS`` (one line on stderr,
exit 1); ``FITCALC_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Annotated, Any, Callable, Optional

import typer

from fitcalc import exitcodes
from fitcalc.errors import FitcalcError

app = typer.Typer(
    name="fitcalc",
    help="Will this LLM fit my hardware? Exact, explained memory and disk footprints, fit plans, "
         "and measurements that check them.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ---- shared options, declared once --------------------------------------------------------

ModelArg = Annotated[str, typer.Argument(
    metavar="MODEL", help="bundled id (gpt-oss-20b), Hub name (openai/gpt-oss-20b), or a path to a spec YAML")]
RecipeOpt = Annotated[Optional[str], typer.Option(
    "--recipe", "-r", help="storage recipe: native (default), bf16, fp8, int4-awq, nf4, q4_k_m, ... "
                           "(`fitcalc recipes` lists them)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout and nothing else")]
SourceOpt = Annotated[str, typer.Option(
    "--source", help="where MODEL comes from: auto, catalog, local, hub", case_sensitive=False)]


def _emit_json(obj: Any) -> None:
    if hasattr(obj, "model_dump"):
        data = obj.model_dump(mode="json")
    elif isinstance(obj, list):
        data = [o.model_dump(mode="json") if hasattr(o, "model_dump") else o for o in obj]
    else:
        data = obj
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _handled(fn: Callable) -> Callable:
    """Turn FitcalcError into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FitcalcError as e:
            if os.environ.get("FITCALC_DEBUG"):
                raise
            from fitcalc.render import error_line

            error_line(e.one_line())
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(exitcodes.INTERRUPTED) from None

    return wrapper


# ---- commands --------------------------------------------------------------------------------


@app.command(epilog="Examples:  fitcalc size gpt-oss-20b --explain   |   fitcalc size openai/gpt-oss-120b --json"
                    "   |   fitcalc size qwen3-8b --recipe q4_k_m")
@_handled
def size(model: ModelArg, recipe: RecipeOpt = None, json_out: JsonOpt = False,
         explain: Annotated[bool, typer.Option("--explain", help="print the derivation term by term")] = False,
         source: SourceOpt = "auto") -> None:
    """Parameters and on-disk bytes per tensor group (GiB and GB), for a recipe."""
    from fitcalc import api

    result = api.size(model, recipe, source=source.lower())  # type: ignore[arg-type]
    if json_out:
        _emit_json(result)
        return
    from fitcalc.render import render_size

    render_size(result, explain=explain)


ContextOpt = Annotated[Optional[str], typer.Option(
    "--context", "-c", help="tokens per sequence (prompt + output), e.g. 8192 or 128k; fit's default: 8192")]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", help="concurrent sequences")]
EngineOpt = Annotated[Optional[str], typer.Option(
    "--engine", "-e", help="auto (default: llama.cpp for GGUF recipes, else vllm), vllm, llama.cpp, ollama, "
                           "sglang, transformers, torch")]
KvDtypeOpt = Annotated[Optional[str], typer.Option(
    "--kv-dtype", help="KV cache dtype: bf16, fp16, fp8, q8_0, q4_0 ... (default: the engine's)")]
GpuOpt = Annotated[Optional[list[str]], typer.Option(
    "--gpu", "-g", help="GPU id or alias (rtx-4090, 4090, 'rtx 4090'), ID:COUNT (h100-sxm:8), or a budget "
                        "(24GiB, 80GB); repeat for several. Default: detected GPUs, else popular ones")]


@app.command(epilog="Examples:  fitcalc fit gpt-oss-20b --gpu rtx-4060-ti-16gb --engine llama.cpp   |   "
                    "fitcalc fit gpt-oss-120b --gpu h100-sxm --context 131072 --json   |   "
                    "fitcalc fit deepseek-r1 --gpu h200:8 --check")
@_handled
def fit(model: ModelArg, gpu: GpuOpt = None, context: ContextOpt = None, batch: BatchOpt = 1,
        engine: EngineOpt = None, kv_dtype: KvDtypeOpt = None, recipe: RecipeOpt = None, json_out: JsonOpt = False,
        check: Annotated[bool, typer.Option("--check", help="exit 3 unless every configuration fits")] = False,
        explain: Annotated[bool, typer.Option("--explain", help="print every term's derivation")] = False,
        source: SourceOpt = "auto") -> None:
    """Does MODEL fit these GPUs? Verdict, headroom, terms and the largest context, per GPU."""
    from fitcalc import api
    from fitcalc.units import parse_count

    ctx = parse_count(context) if context is not None else None
    results = api.fit(model, gpu, ctx, batch, engine, kv_dtype, recipe, source=source.lower())  # type: ignore[arg-type]
    if json_out:
        _emit_json(results[0] if len(results) == 1 else results)
    else:
        from fitcalc.render import render_fit

        render_fit(results, explain=explain)
    if check and not all(r.fits for r in results):
        raise typer.Exit(exitcodes.DOES_NOT_FIT)


DeviceOpt = Annotated[str, typer.Option(
    "--device", "-d", help="where to build and measure: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")]
LayersOpt = Annotated[Optional[str], typer.Option(
    "--layers", "-l", help="decoder layers to build: a number or 'all' (default: the fewest that hold every kind "
                           "of layer once, e.g. 2 for gpt-oss)")]
ToleranceOpt = Annotated[Optional[list[str]], typer.Option(
    "--tolerance", "-t", help="override a tolerance: KIND=FRACTION or KIND=PERCENT%[:ABSOLUTE], KIND a term kind "
                              "(weights, kv, act, overhead, working, peak) or a term id; repeat. e.g. act=0.3, "
                              "peak=5%")]


@app.command(epilog="Examples:  fitcalc verify gpt-oss-20b --device cpu --layers 2 --context 512   |   "
                    "fitcalc verify gpt-oss-20b --device cuda --layers all --context 8192 --json   |   "
                    "fitcalc verify llama-3.1-8b --recipe fp8 --record runs.jsonl")
@_handled
def verify(model: ModelArg, device: DeviceOpt = "auto", layers: LayersOpt = None,
           context: Annotated[Optional[str], typer.Option(
               "--context", "-c", help="KV tokens per sequence: a prefill of context-1 tokens and one decode step "
                                       "(default 512)")] = None,
           batch: BatchOpt = 1, recipe: RecipeOpt = None, kv_dtype: KvDtypeOpt = None,
           no_embeddings: Annotated[bool, typer.Option(
               "--no-embeddings", help="leave out the embedding and lm_head (random hidden states in, no logits)")]
           = False,
           tolerance: ToleranceOpt = None,
           record: Annotated[Optional[str], typer.Option(
               "--record", help="append one JSON line with this run (date, device, driver, versions, settings, "
                                "predicted and measured per term) to FILE")] = None,
           force: Annotated[bool, typer.Option(
               "--force", help="run even when the predicted stack exceeds the free device memory or RAM")] = False,
           seed: Annotated[int, typer.Option("--seed", help="random seed for the weights and tokens")] = 0,
           json_out: JsonOpt = False, source: SourceOpt = "auto") -> None:
    """Build MODEL's layer stack in PyTorch with the recipe's real storage formats, run a prefill and a decode
    step, measure memory phase by phase and compare with the prediction term by term.

    Exit codes: 0 every term within tolerance; 4 a term outside its tolerance; 5 out of memory (does not fit,
    measured); 1 bad input or PyTorch/device missing."""
    from fitcalc import api
    from fitcalc.render import progress_line, render_verify
    from fitcalc.units import parse_count

    ctx = parse_count(context) if context is not None else None
    result = api.verify(model, device=device, layers=layers, context=ctx, batch=batch, recipe=recipe,
                        kv_dtype=kv_dtype, include_embeddings=not no_embeddings, tolerances=tolerance, record=record,
                        force=force, seed=seed, source=source.lower(),  # type: ignore[arg-type]
                        progress=progress_line)
    if json_out:
        _emit_json(result)
    else:
        render_verify(result)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@app.command(epilog="Examples:  fitcalc models   |   fitcalc models --json")
@_handled
def models(json_out: JsonOpt = False) -> None:
    """List the bundled model specs with their native sizes."""
    from fitcalc import api

    rows = api.models()
    if json_out:
        _emit_json(rows)
        return
    from fitcalc.render import render_models

    render_models(rows)


@app.command(epilog="Example:  fitcalc recipes")
@_handled
def recipes(json_out: JsonOpt = False) -> None:
    """List the storage recipes --recipe accepts."""
    from fitcalc.recipes import GENERIC_RECIPES

    rows = [{"id": "native", "description": "the checkpoint's own recipe, from the model spec"}] + [
        {"id": r.id, "description": r.description, "rules": r.rules, "source": r.source}
        for r in GENERIC_RECIPES.values()]
    if json_out:
        _emit_json(rows)
        return
    from fitcalc.render import console

    c = console()
    for r in rows:
        c.print(f"[bold]{r['id']:<10}[/bold] {r['description']}")


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="print the version and exit")] = False) -> None:
    if version:
        from fitcalc import __version__

        sys.stdout.write(f"fitcalc {__version__}\n")
        raise typer.Exit(0)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
