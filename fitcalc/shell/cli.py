"""The `fitcalc` command. SHELL: parse options, call one function of ``fitcalc.api``, render, exit.

No arithmetic and no unit conversion here. Errors go through ``_ERRORS`` (one line on stderr,
exit 1); ``FITCALC_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import sys
from typing import Annotated, Any, Callable, Optional

import typer

from fitcalc.core import exitcodes
from fitcalc.core.errors import FitcalcError

app = typer.Typer(
    name="fitcalc",
    help="Will this LLM fit my hardware? Exact, explained memory and disk footprints, fit plans, "
         "and measurements that check them.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    # help as wide as the terminal (click's default stops at 80 columns)
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 160},
)


def _plain_help() -> None:
    """Help that reads like a CLI's: ``--gpu GPU`` and ``MODEL`` where typer writes ``<list[str]>``,
    ``<str>`` and ``{MODEL}``; examples one per line where click would run them together. typer
    has no setting for either, so its two display methods and the epilog formatter are replaced
    for this process (the `fitcalc` command only; fitcalc.api never imports this module)."""
    import typer.core as tc

    def option_metavar(self, ctx):
        if self.metavar is not None:
            return self.metavar
        if self.is_flag or self.count:
            return None
        return max(self.opts, key=len).lstrip("-").replace("-", "_").upper()

    def argument_usage(self):
        return self.display_name_raw if self.required else f"[{self.display_name_raw}]"

    def examples_epilog(self, ctx, formatter):
        if not self.epilog:
            return
        head, _, rest = self.epilog.partition(":")
        formatter.write_paragraph()
        formatter.write_text(head + ":")
        with formatter.indentation():
            for example in rest.split("   |   "):
                formatter.write(" " * formatter.current_indent + example.strip() + "\n")

    tc.TyperOption.display_type_rich = option_metavar
    tc.TyperArgument.display_type_rich = lambda self, ctx: None
    tc.TyperArgument._usage_display_name = argument_usage
    tc.TyperCommand.format_epilog = examples_epilog


_plain_help()

# ---- shared options, declared once --------------------------------------------------------

ModelArg = Annotated[str, typer.Argument(
    metavar="MODEL", help="a checkpoint folder (config.json + *.safetensors), a .safetensors or .gguf file, a spec "
                          "YAML, a bundled id (gpt-oss-20b) or its Hub name, or a Hub repo id (org/name[@revision])")]
RecipeOpt = Annotated[Optional[str], typer.Option(
    "--recipe", "-r", help="storage recipe: native (default), bf16, fp8, int4-awq, nf4, q4_k_m, ... "
                           "(`fitcalc recipes` lists them)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout and nothing else")]
SourceOpt = Annotated[str, typer.Option(
    "--source", help="where MODEL comes from: auto (a local path, then a bundled spec, then the Hub), "
                     "local, catalog or hub", case_sensitive=False)]


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
            with _hub_progress(kwargs.get("json_out", False)):
                return fn(*args, **kwargs)
        except FitcalcError as e:
            if os.environ.get("FITCALC_DEBUG"):
                raise
            from fitcalc.shell.render import error_line

            error_line(e.one_line())
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(exitcodes.INTERRUPTED) from None
        except OSError as e:
            if e.errno not in _OUTPUT_ERRNOS:
                raise
            raise typer.Exit(_output_failed(e)) from None

    return wrapper


def _hub_progress(json_out: bool):
    """Hub reads say what they read, on stderr, once they have taken about a second, for a person
    watching (stdout a terminal, not --json); otherwise nothing (and the ingest module stays unloaded)."""
    from fitcalc.shell.render import shows_progress

    if not shows_progress(json_out):
        return contextlib.nullcontext()
    from fitcalc.edges.ingest.hub import reporting_progress
    from fitcalc.shell.render import LateProgress

    return reporting_progress(LateProgress("hub"))


# Errors of writing the output itself (stdout to a full disk, a closed pipe): one line, exit 1.
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EPIPE, errno.EIO, errno.EFBIG, errno.EDQUOT}


def _output_failed(e: OSError) -> int:
    """Say once that stdout could not be written (a closed pipe, as `| head` does, needs no words),
    and point stdout at /dev/null so the interpreter's last flush does not report it again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    if e.errno != errno.EPIPE:
        from fitcalc.shell.render import error_line

        error_line(f"cannot write the output: {e.strerror} (hint: free some space, or send the output elsewhere "
                   "with -o FILE or a redirection)")
    return exitcodes.ERROR


# ---- commands --------------------------------------------------------------------------------


@app.command(epilog="Examples:  fitcalc size gpt-oss-20b --explain   |   fitcalc size openai/gpt-oss-120b --json"
                    "   |   fitcalc size qwen3-8b --recipe q4_k_m   |   fitcalc size ./Qwen3-30B-A3B --check"
                    "   |   fitcalc size model-Q4_K_M.gguf")
@_handled
def size(model: ModelArg, recipe: RecipeOpt = None, json_out: JsonOpt = False,
         explain: Annotated[bool, typer.Option("--explain", help="print the derivation term by term")] = False,
         source: SourceOpt = "auto",
         check: Annotated[bool, typer.Option(
             "--check", help="for a model read from files: compare the header-exact bytes with the "
                             "architecture-derived prediction, group by group")] = False) -> None:
    """Parameters and on-disk bytes per tensor group (GiB and GB), for a recipe."""
    from fitcalc import api

    result = api.size(model, recipe, source=source.lower(), check=check)  # type: ignore[arg-type]
    if json_out:
        _emit_json(result)
        return
    from fitcalc.shell.render import render_size

    render_size(result, explain=explain)


ContextOpt = Annotated[Optional[str], typer.Option(
    "--context", "-c", metavar="TOKENS",
    help="tokens per sequence (prompt + output), e.g. 8192 or 128k; fit's default: 8192")]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", metavar="N", help="concurrent sequences")]
EngineOpt = Annotated[Optional[str], typer.Option(
    "--engine", "-e", help="auto (default: what the GPU usually runs: llama.cpp on consumer and Apple GPUs, "
                           "vllm on datacenter GPUs; llama.cpp for GGUF recipes), vllm, llama.cpp, ollama, "
                           "sglang, transformers, torch. GGUF engines default to the type their library serves "
                           "(Q4_K_M; gpt-oss: its MXFP4 experts)")]
KvDtypeOpt = Annotated[Optional[str], typer.Option(
    "--kv-dtype", metavar="DTYPE", help="KV cache dtype: bf16, fp16, fp8, q8_0, q4_0 ... (default: the engine's)")]
GpuOpt = Annotated[Optional[list[str]], typer.Option(
    "--gpu", "-g", help="GPU id or alias (rtx-4090, 4090), ID:COUNT (h100-sxm:8), or a budget (24GiB, "
                        "80000MB); repeat for several. Default: detected GPUs, else popular ones")]


CalibratedOpt = Annotated[Optional[bool], typer.Option(
    "--calibrated/--uncalibrated", help="scale terms by residuals stored from engine logs of the same engine, "
                                        "version family and GPU family (fitcalc reconcile --save); default: "
                                        "on when FITCALC_CALIBRATED=1")]
StoreOpt = Annotated[Optional[str], typer.Option(
    "--store", help="calibration store file (default: $FITCALC_CALIBRATION, else "
                    "$XDG_DATA_HOME/fitcalc/calibration.yaml)")]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", help="an engine setting, KEY=VALUE, as the engine spells it (gpu_memory_utilization=0.95, "
                  "max_num_batched_tokens=1024, max_num_seqs=256, enforce_eager=true, n_ubatch=512, parallel=4, "
                  "flash_attn=false, swa_full=true, attn_implementation=eager ...); repeat for several. An unknown "
                  "key lists the engine's keys")]


def _key_values(items: list[str] | None) -> dict[str, str]:
    """--set KEY=VALUE items as a dict; a malformed item is a one-line InputError."""
    from fitcalc.core.errors import InputError

    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r}: expected KEY=VALUE", hint="e.g. --set gpu_memory_utilization=0.95")
        out[key.strip()] = value.strip()
    return out


EngineVersionOpt = Annotated[Optional[str], typer.Option(
    "--engine-version", help="with --calibrated: the engine version family to use (0.15, b6xxx); default: the "
                             "newest stored")]


@app.command(epilog="Examples:  fitcalc fit gpt-oss-20b --gpu rtx-4060-ti-16gb --engine llama.cpp   |   "
                    "fitcalc fit gpt-oss-120b --gpu h100-sxm --context 131072 --json   |   "
                    "fitcalc fit deepseek-r1 --gpu h200:8 --check")
@_handled
def fit(model: ModelArg, gpu: GpuOpt = None, context: ContextOpt = None, batch: BatchOpt = 1,
        engine: EngineOpt = None, kv_dtype: KvDtypeOpt = None, recipe: RecipeOpt = None, json_out: JsonOpt = False,
        check: Annotated[bool, typer.Option("--check", help="exit 3 unless every configuration fits")] = False,
        explain: Annotated[bool, typer.Option(
            "--explain", help="add each GPU's terms, capacity bar and every term's derivation")] = False,
        source: SourceOpt = "auto", calibrated: CalibratedOpt = None, store: StoreOpt = None,
        engine_version: EngineVersionOpt = None, set_: SetOpt = None) -> None:
    """Does MODEL fit these GPUs? One line per GPU: verdict, needs/of, headroom, largest context."""
    from fitcalc import api
    from fitcalc.core.units import parse_count

    ctx = parse_count(context) if context is not None else None
    results = api.fit(model, gpu, ctx, batch, engine, kv_dtype, recipe, source=source.lower(),  # type: ignore[arg-type]
                      calibrated=calibrated, store=store, engine_version=engine_version, settings=_key_values(set_))
    if json_out:
        _emit_json(results[0] if len(results) == 1 else results)
    else:
        from fitcalc.shell.render import render_fit

        render_fit(results, explain=explain)
    if check and not all(r.fits for r in results if not r.alternative):  # an alternative engine's row is advice
        raise typer.Exit(exitcodes.DOES_NOT_FIT)


MethodOpt = Annotated[str, typer.Option("--method", help="full, lora or qlora (NF4 base, BF16 adapters)",
                                         case_sensitive=False)]
SeqOpt = Annotated[str, typer.Option("--seq", help="tokens per sequence (4096, 8k)")]
RankOpt = Annotated[int, typer.Option("--rank", help="LoRA rank r")]
TargetsOpt = Annotated[str, typer.Option(
    "--targets", help="LoRA targets: all-linear, attention, or layer names (q_proj,v_proj,...)")]
OptimizerOpt = Annotated[str, typer.Option(
    "--optimizer", help="adamw, adamw-8bit, paged-adamw, paged-adamw-8bit, adafactor, lion, sgd")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="bf16-mixed (FP32 master weights), bf16 or fp32")]
GradCkptOpt = Annotated[bool, typer.Option(
    "--grad-checkpointing", help="recompute activations in backward, keeping each layer's input")]


@app.command(epilog="Examples:  fitcalc train llama-3.1-8b --method lora --gpu rtx-4090   |   "
                    "fitcalc train llama-3.1-8b --method full --zero 3 --gpu h100-sxm:8 --seq 4096   |   "
                    "fitcalc train qwen3-32b --method qlora --rank 64 --optimizer paged-adamw-8bit "
                    "--grad-checkpointing --gpu 24GiB --json")
@_handled
def train(model: ModelArg, gpu: GpuOpt = None, method: MethodOpt = "lora",
          rank: RankOpt = 16, targets: TargetsOpt = "all-linear", optimizer: OptimizerOpt = "adamw",
          precision: PrecisionOpt = "bf16-mixed",
          micro_batch: Annotated[int, typer.Option("--micro-batch", help="sequences per GPU per step")] = 1,
          seq: SeqOpt = "2048",
          grad_accum: Annotated[int, typer.Option(
              "--grad-accum", help="micro-batches per optimizer step (no memory cost)")] = 1,
          grad_checkpointing: GradCkptOpt = False,
          checkpoint_every: Annotated[int, typer.Option(
              "--checkpoint-every", help="with --grad-checkpointing: only every k-th layer")] = 1,
          attention: Annotated[str, typer.Option(
              "--attention", help="flash (no score matrix) or eager (keeps batch × heads × seq² scores)")] = "flash",
          loss: Annotated[str, typer.Option(
              "--loss", help="full (FP32 logits over the vocabulary) or chunked (fused, Liger-style)")] = "full",
          zero: Annotated[Optional[int], typer.Option("--zero", help="DeepSpeed ZeRO stage 0, 1, 2 or 3")] = None,
          fsdp: Annotated[Optional[str], typer.Option("--fsdp", help="FSDP sharding: full or hybrid")] = None,
          offload: Annotated[str, typer.Option(
              "--offload", help="none, optimizer (states and master weights to host RAM) or params")] = "none",
          no_double_quant: Annotated[bool, typer.Option(
              "--no-double-quant", help="QLoRA without double quantization of the NF4 scales")] = False,
          base_recipe: Annotated[Optional[str], typer.Option(
              "--base-recipe", help="LoRA: price the frozen base in this recipe (bf16, ...), not as stored")] = None,
          gpus_per_node: Annotated[int, typer.Option(
              "--gpus-per-node", help="GPUs per node (FSDP hybrid, host RAM per node)")] = 8,
          json_out: JsonOpt = False,
          check: Annotated[bool, typer.Option("--check", help="exit 3 unless every configuration fits")] = False,
          explain: Annotated[bool, typer.Option("--explain", help="print every term's derivation")] = False,
          source: SourceOpt = "auto") -> None:
    """Can MODEL be fine-tuned on these GPUs? Every term of a training step, per GPU and host RAM."""
    from fitcalc import api
    from fitcalc.core.units import parse_count

    if zero is not None and fsdp is not None:
        raise typer.BadParameter("give --zero or --fsdp, not both", param_hint="--zero/--fsdp")
    result = api.train(model, gpu, source=source.lower(), method=method.lower(), rank=rank,  # type: ignore[arg-type]
                       targets=targets, optimizer=optimizer.lower(), precision=precision.lower(),
                       micro_batch=micro_batch, seq=parse_count(seq), grad_accum=grad_accum,
                       checkpointing=grad_checkpointing, checkpoint_every=checkpoint_every,
                       attention=attention.lower(), loss=loss.lower(), zero=zero or 0,
                       fsdp=fsdp.lower() if fsdp else None, offload=offload.lower(),
                       double_quant=not no_double_quant, base_recipe=base_recipe, gpus_per_node=gpus_per_node)
    if json_out:
        _emit_json(result)
    else:
        from fitcalc.shell.render import render_train

        render_train(result, explain=explain)
    if check and not all(r.fits for r in result.fits):
        raise typer.Exit(exitcodes.DOES_NOT_FIT)


@app.command(epilog="Examples:  fitcalc reconcile vllm.log --gpu a100-40gb   |   "
                    "fitcalc reconcile server.log --model gpt-oss-20b --set n_cpu_moe=99 --json   |   "
                    "fitcalc reconcile ollama.log --save")
@_handled
def reconcile(
    logfile: Annotated[str, typer.Argument(metavar="LOGFILE", help="an engine's start-up log (vLLM V0/V1, "
                                                                   "llama.cpp/llama-server, Ollama); - reads "
                                                                   "standard input")],
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help="the model, when the log's name for it is not in the catalog: an id, a Hub "
                              "name or a spec YAML")] = None,
    gpu: Annotated[Optional[str], typer.Option(
        "--gpu", "-g", help="the GPU, when the log does not state its memory: an id (a100-40gb) or a total "
                            "(40960MiB)")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="a setting the log does not state, KEY=VALUE (n_cpu_moe=99, context=8192, tp=2, "
                      "gpu_memory_utilization=0.95, recipe=q4_k_m); repeat for several")] = None,
    json_out: JsonOpt = False,
    save: Annotated[bool, typer.Option("--save", help="append the residuals to the calibration store")] = False,
    store: StoreOpt = None,
    source: SourceOpt = "auto",
) -> None:
    """Compare every memory figure an engine's log prints with fitcalc's prediction for the same settings."""
    from fitcalc import api

    overrides = _key_values(set_)
    result = api.reconcile(logfile, model=model, gpu=gpu, overrides=overrides, save=save, store=store,
                           source=source.lower())  # type: ignore[arg-type]
    if json_out:
        _emit_json(result)
        return
    from fitcalc.shell.render import render_reconcile

    render_reconcile(result)
@app.command(epilog="Examples:  fitcalc plan gpt-oss-20b --gpu rtx-4060-ti-16gb   |   "
                    "fitcalc plan gpt-oss-120b --gpu 24GiB --ram 64GiB --engine llama.cpp --context 32k   |   "
                    "fitcalc plan deepseek-r1 --gpu h100-sxm:8 --json")
@_handled
def plan(model: ModelArg, gpu: GpuOpt = None, context: ContextOpt = None, batch: BatchOpt = 1,
         engine: EngineOpt = None, kv_dtype: KvDtypeOpt = None, recipe: RecipeOpt = None,
         ram: Annotated[Optional[str], typer.Option(
             "--ram", help="system RAM for layers and experts kept on the CPU, e.g. 64GiB (default: detected)")] = None,
         ram_bandwidth: Annotated[Optional[str], typer.Option(
             "--ram-bandwidth", help="RAM bandwidth per second for the speed estimate, e.g. 89.6GB "
                                     "(default: dual-channel DDR5-5600)")] = None,
         tp: Annotated[Optional[int], typer.Option("--tp", help="fix the tensor-parallel size")] = None,
         pp: Annotated[Optional[int], typer.Option("--pp", help="fix the number of pipeline stages")] = None,
         ep: Annotated[Optional[int], typer.Option("--ep", help="fix the expert-parallel size (a multiple of --tp)")] = None,
         gpu_layers: Annotated[Optional[int], typer.Option(
             "--gpu-layers", "-ngl", help="fix the GPU layer slots (llama.cpp -ngl; the output layer counts)")] = None,
         cpu_moe: Annotated[Optional[str], typer.Option(
             "--cpu-moe", help="keep the routed experts of the first N layers in RAM, or 'all' (llama.cpp)")] = None,
         max_gpus: Annotated[int, typer.Option(
             "--max-gpus", help="the most GPUs of the first --gpu type to search when counting GPUs needed")] = 16,
         prompt: Annotated[Optional[str], typer.Option(
             "--prompt", help="prompt tokens for the prefill time and the decode depth (default: the context)")] = None,
         json_out: JsonOpt = False,
         check: Annotated[bool, typer.Option("--check", help="exit 3 unless the plan fits the GPUs given")] = False,
         explain: Annotated[bool, typer.Option("--explain", help="print every term's derivation")] = False,
         source: SourceOpt = "auto", calibrated: CalibratedOpt = None, store: StoreOpt = None,
         engine_version: EngineVersionOpt = None, set_: SetOpt = None,
         method: Annotated[Optional[str], typer.Option(
             "--method", help="plan a fine-tuning step instead: full, lora or qlora, answered as `fitcalc train` "
                              "answers it (largest micro-batch and sequence, GPUs needed), --context as the sequence "
                              "and --batch as the micro-batch; train takes the other training options")] = None,
         ) -> None:
    """What should I run? Placement per GPU, largest context and batch, GPUs needed, best recipe,
    CPU offload, expected speed and ready-to-paste engine flags."""
    from fitcalc import api
    from fitcalc.core.units import parse_count

    if method is not None:
        serving = {"--engine": engine, "--kv-dtype": kv_dtype, "--recipe": recipe, "--tp": tp, "--pp": pp, "--ep": ep,
                   "--gpu-layers": gpu_layers, "--cpu-moe": cpu_moe, "--set": set_, "--prompt": prompt, "--ram": ram}
        given = [k for k, v in serving.items() if v]
        if given:
            raise typer.BadParameter(f"{', '.join(given)}: serving options; a training plan takes "
                                     f"`fitcalc train {model} --method {method}` options (see `fitcalc train -h`)",
                                     param_hint="--method")
        train(model, gpu, method=method, micro_batch=batch, seq=context or "2048", json_out=json_out, check=check,
              explain=explain, source=source)
        return
    ctx = parse_count(context) if context is not None else None
    prompt_tokens = parse_count(prompt) if prompt is not None else None
    result = api.plan(model, gpu, ram, ram_bandwidth, engine, ctx, batch, kv_dtype, recipe, tp, pp, ep, gpu_layers,
                      cpu_moe, max_gpus, prompt_tokens, source=source.lower(),  # type: ignore[arg-type]
                      calibrated=calibrated, store=store, engine_version=engine_version, settings=_key_values(set_))
    if json_out:
        _emit_json(result)
    else:
        from fitcalc.shell.render import render_plan

        render_plan(result, explain=explain)
    if check and not result.fits:
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
                    "fitcalc verify llama-3.1-8b --recipe fp8 --record runs.jsonl   |   "
                    "fitcalc verify gpt-oss-20b --device cpu --tp 2 --layers 1 --context 256   |   "
                    "torchrun --nproc-per-node 4 -m fitcalc verify gpt-oss-20b --tp 2 --pp 2 --launcher torchrun   |   "
                    "fitcalc verify llama-3.1-8b --train --method qlora --layers 1 --context 256")
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
           json_out: JsonOpt = False, source: SourceOpt = "auto",
           tp: Annotated[int, typer.Option("--tp", help="tensor-parallel ranks: heads, widths and vocabulary split "
                                                        "as fitcalc plan places them")] = 1,
           pp: Annotated[int, typer.Option("--pp", help="pipeline stages (layers per stage as fitcalc plan "
                                                        "splits them)")] = 1,
           ep: Annotated[int, typer.Option("--ep", help="expert-parallel ranks: routed experts split whole "
                                                        "(1 or --tp)")] = 1,
           launcher: Annotated[str, typer.Option(
               "--launcher", help="auto: torchrun's ranks when RANK/WORLD_SIZE are set, else start tp x pp ranks "
                                  "here (spawn); spawn; torchrun")] = "auto",
           timeout: Annotated[float, typer.Option(
               "--timeout", help="seconds a distributed run may take before its ranks are stopped (a hung rank "
                                 "is named)")] = 600.0,
           train: Annotated[bool, typer.Option(
               "--train", help="measure one training step (forward, backward, optimizer step) on the CPU instead; "
                               "--context is the sequence, --batch the micro-batch")] = False,
           method: MethodOpt = "lora", rank: RankOpt = 16, targets: TargetsOpt = "all-linear",
           optimizer: OptimizerOpt = "adamw", precision: PrecisionOpt = "bf16-mixed",
           grad_checkpointing: GradCkptOpt = False) -> None:
    """Build MODEL's layer stack in PyTorch with the recipe's real storage formats, run a prefill and a decode
    step, measure memory phase by phase and compare with the prediction term by term. With --tp/--pp/--ep the
    stack runs as tp x pp ranks on torch.distributed (gloo on CPU, nccl on CUDA), each rank measured against
    its share of the plan.

    Exit codes: 0 every term within tolerance; 4 a term outside its tolerance; 5 out of memory (does not fit,
    measured); 1 bad input, PyTorch/device missing, or a rank that died, hung or crashed (the message names it)."""
    from fitcalc import api
    from fitcalc.core.units import parse_count
    from fitcalc.shell.render import PhaseProgress, render_verify, shows_progress

    ctx = parse_count(context) if context is not None else None
    if train:
        _verify_train(json_out, model, layers=layers, source=source.lower(), method=method.lower(), rank=rank,
                      targets=targets, optimizer=optimizer.lower(), precision=precision.lower(), micro_batch=batch,
                      seq=ctx or 256, checkpointing=grad_checkpointing)
        return
    result = api.verify(model, device=device, layers=layers, context=ctx, batch=batch, recipe=recipe,
                        kv_dtype=kv_dtype, include_embeddings=not no_embeddings, tolerances=tolerance, record=record,
                        force=force, seed=seed, source=source.lower(),  # type: ignore[arg-type]
                        progress=PhaseProgress(shows_progress(json_out)), tp=tp, pp=pp, ep=ep, launcher=launcher.lower(), timeout=timeout)
    under_torchrun = getattr(result, "layout", None) is not None and result.layout.launcher == "torchrun"
    if under_torchrun and os.environ.get("RANK", "0") != "0":
        pass  # every rank holds the result; rank 0 prints it
    elif json_out:
        _emit_json(result)
    else:
        render_verify(result)
    if under_torchrun:
        # A torchrun rank ends here without the interpreter's teardown: gloo's C++ threads torn down
        # at exit have aborted a rank ("terminate called without an active exception") after its
        # work was done and reported. The process group is already destroyed (api.verify).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(result.exit_code)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _verify_train(json_out: bool, model: str, **options) -> None:
    from fitcalc import api
    from fitcalc.shell.render import render_verify_train

    result = api.verify_train(model, **options)
    if json_out:
        _emit_json(result.model_dump(mode="json") | {"ok": result.ok, "exit_code": result.exit_code})
    else:
        render_verify_train(result)
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
    from fitcalc.shell.render import render_models

    render_models(rows)


@app.command(epilog="Example:  fitcalc recipes")
@_handled
def recipes(json_out: JsonOpt = False) -> None:
    """List the storage recipes --recipe accepts."""
    from fitcalc.core.recipes import GENERIC_RECIPES

    rows = [{"id": "native", "description": "the checkpoint's own recipe, from the model spec"}] + [
        {"id": r.id, "description": r.description, "rules": r.rules, "source": r.source}
        for r in GENERIC_RECIPES.values()]
    if json_out:
        _emit_json(rows)
        return
    from fitcalc.shell.render import console

    c = console()
    for r in rows:
        c.print(f"[bold]{r['id']:<10}[/bold] {r['description']}")


@app.command(epilog="Examples:  fitcalc gpus   |   fitcalc gpus --json   |   fitcalc gpus --detect   |   "
                    "fitcalc gpus --detect --json")
@_handled
def gpus(json_out: JsonOpt = False,
         detect: Annotated[bool, typer.Option(
             "--detect", "-d", help="list this machine's GPUs and RAM instead, each matched to a profile")] = False) -> None:
    """List the GPU profiles (memory as the driver reports it), or detect this machine's GPUs."""
    from fitcalc import api

    if detect:
        hw = api.detect_gpus()
        if json_out:
            _emit_json(hw)
            return
        from fitcalc.shell.render import render_local_hardware

        render_local_hardware(hw)
        return
    rows = api.gpus()
    if json_out:
        _emit_json(rows)
        return
    from fitcalc.shell.render import render_gpus

    render_gpus(rows)
SpecArg = Annotated[str, typer.Argument(metavar="SPEC.yaml", help="report spec (docs/report-spec.md)")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="run a matrix larger than the spec's max_scenarios")]


@app.command(epilog="Examples:  fitcalc report fleet.yaml -o report.html   |   fitcalc report fleet.yaml "
                    ">> \"$GITHUB_STEP_SUMMARY\"   |   fitcalc report fleet.yaml -o sizes.json")
@_handled
def report(spec: SpecArg,
           output: Annotated[Optional[str], typer.Option(
               "--output", "-o", metavar="OUT", help="file to write (replaced whole, never half-written); "
                                                     "default or '-': stdout")] = None,
           fmt: Annotated[Optional[str], typer.Option(
               "--format", "-f", help="md, html, json or yaml; default: from OUT's suffix, md on stdout")] = None,
           yes: YesOpt = False) -> None:
    """Render a report of every scenario in SPEC: Markdown tables, HTML with charts, or JSON/YAML."""
    from fitcalc import api
    from fitcalc.shell.render import PhaseProgress, SweepProgress, shows_progress
    from fitcalc.edges.report.output import check_writable, pick_format, write_atomic
    from fitcalc.edges.report.writers import FORMATS, render

    kind = pick_format(output, fmt, FORMATS)
    to_file = output is not None and output != "-"
    if to_file:
        check_writable(output)  # fail before the sweep, not after it
    watched = shows_progress()
    progress = SweepProgress(enabled=watched)
    try:
        rep = api.report(spec, yes=yes, progress=progress)
    finally:
        progress.close()
    if watched and kind == "html":  # the charts take seconds for a few hundred scenarios
        PhaseProgress(True, "report")(f"drawing the charts of {len(rep.scenarios):,} scenarios …")
    text = render(rep, kind)
    if to_file:
        write_atomic(output, text)
        from fitcalc.shell.render import console

        console(stderr=True).print(f"wrote {output} ({kind}, {len(rep.scenarios):,} scenarios"
                                    + (f", {len(rep.training):,} training" if rep.training else "") + ")",
                                    highlight=False)
    else:
        sys.stdout.write(text)


@app.command(epilog="Examples:  fitcalc check fleet.yaml   |   fitcalc check fleet.yaml --junit sizing.xml   |   "
                    "fitcalc check fleet.yaml --baseline main-report.json")
@_handled
def check(spec: SpecArg,
          junit: Annotated[Optional[str], typer.Option(
              "--junit", metavar="OUT.xml", help="also write the assertions as JUnit XML")] = None,
          baseline: Annotated[Optional[str], typer.Option(
              "--baseline", metavar="OLD.json", help="a previous `fitcalc report -o OLD.json`: "
                                                     "show what grew or shrank")] = None,
          verbose: Annotated[bool, typer.Option("--verbose", "-v", help="print passing assertions too")] = False,
          yes: YesOpt = False) -> None:
    """Check SPEC's assertions: exit 0 when all hold, 3 when any fails (one line each), 1 for a bad spec."""
    from fitcalc import api
    from fitcalc.shell.render import SweepProgress, shows_progress
    from fitcalc.core.report.baseline import diff_lines
    from fitcalc.core.report.checks import summary_line
    from fitcalc.edges.report.output import check_writable, write_atomic

    if junit:
        check_writable(junit)
    progress = SweepProgress(enabled=shows_progress())
    try:
        rep, diff = api.check(spec, yes=yes, baseline=baseline, progress=progress)
    finally:
        progress.close()
    lines = [a.line() for a in rep.assertions if verbose or not a.ok]
    lines.append(summary_line(rep.assertions, len(rep.scenarios) + len(rep.training)))
    extra = diff_lines(diff, baseline) if diff is not None and baseline else []
    sys.stdout.write("\n".join(lines + extra) + "\n")
    if junit:
        from fitcalc.edges.report.writers.junit import render_junit

        write_atomic(junit, render_junit(rep, extra))
    if rep.failed:
        raise typer.Exit(exitcodes.DOES_NOT_FIT)


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="print the version and exit")] = False) -> None:
    if version:
        from fitcalc import __version__

        sys.stdout.write(f"fitcalc {__version__}\n")
        raise typer.Exit(0)


def _stop_on_signal(signum: int, _frame: Any) -> None:
    """SIGTERM and SIGHUP end fitcalc the way Ctrl-C does: as an exception, so every ``finally`` and
    ``except BaseException`` runs (temporary report files, ``fitcalc-verify-*`` folders are removed)."""
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    import signal

    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, _stop_on_signal)
    try:
        app()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else exitcodes.ERROR)
    else:
        code = 0
    try:
        sys.stdout.flush()  # stdout to a file or /dev/full is buffered: its error shows only here
    except OSError as e:
        code = _output_failed(e) if e.errno in _OUTPUT_ERRNOS else exitcodes.ERROR
    sys.exit(code)


if __name__ == "__main__":
    main()
