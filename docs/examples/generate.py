"""Regenerate the example pages in docs/examples/ from the commands they show.

Each page is a list of (prose, command) pairs; the command's output is captured through the
CLI at a pinned width, so the numbers on the page are exactly what fitcalc prints.
tests/test_examples.py fails when a page is out of date; run this to refresh:

    python docs/examples/generate.py
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIDTH = "100"

FIT_PAGE = ("fit.md", "# The seed's story with `fitcalc fit`", """\
The gpt-oss release (see `shared/seeds/`) said: gpt-oss-20b is about 12.8 GiB and runs on a 16 GB
card; gpt-oss-120b fits one 80 GB GPU; DeepSeek-R1 at 8 bits needs a multi-GPU node. Here is what
fitcalc says, term by term, per engine. Regenerate with `python docs/examples/generate.py`.
""", [
    ("gpt-oss-20b on a 16 GB RTX 4060 Ti with llama.cpp: it fits at 8,192 tokens, and the largest "
     "context that fits is printed under the bar.",
     "fitcalc fit gpt-oss-20b --gpu rtx-4060-ti-16gb --engine llama.cpp"),
    ("The same card with vLLM: its 0.9 memory fraction, the 201k-vocabulary logits of its profile "
     "run and the repacked MXFP4 experts (Ada has no native FP4) leave nothing for the KV cache.",
     "fitcalc fit gpt-oss-20b --gpu rtx-4060-ti-16gb --engine vllm"),
    ("An RTX 5080 (16 GB, native MXFP4) with Ollama:",
     "fitcalc fit gpt-oss-20b --gpu rtx-5080 --engine ollama"),
    ("gpt-oss-120b on one H100 80GB with vLLM's defaults at the full 131,072 context: the KV "
     "capacity vLLM would report, and the largest context that fits.",
     "fitcalc fit gpt-oss-120b --gpu h100-sxm --context 128k"),
    ("DeepSeek-R1 in its native FP8 on 8 × 80 GB, 8 × 96 GB and 8 × 141 GB (tensor parallel; the "
     "MLA latent cache is replicated on every rank):",
     "fitcalc fit deepseek-r1 --gpu h100-sxm:8 --gpu gh200-96gb:8 --gpu h200:8 --context 32k"),
])

PLAN_PAGE = ("plan.md", "# `fitcalc plan` — worked examples", """\
`fit` answers *does it fit*; `plan` answers *what should I run*: the placement of the model on each GPU
and in system RAM, the largest context and batch that placement leaves, how many GPUs a GPU-only run
needs, the recipe with most bits that fits, the expected speed and the engine's settings. Formulas and
constants: docs/formulas.md, "Plan". Every output below is what the command above it prints (regenerate
with `python docs/examples/generate.py`); RAM is given with `--ram` so the page does not depend on the
machine that wrote it. The same scenarios are tests with hand arithmetic: `tests/test_plan_seeds.py`.
""", [
    ("## 1. gpt-oss-120b on one 24 GB GPU with 64 GB of RAM, experts on the CPU\n\n"
     "The 60.8 GiB MXFP4 checkpoint cannot sit on a 24 GB card. llama.cpp keeps attention, routers, norms and "
     "the output layer of every layer on the GPU and moves the routed-expert tensors of the first N layers to "
     "RAM (`--n-cpu-moe N`); `plan` finds the smallest N that fits at the context asked for, checks that what "
     "moves fits in the RAM, and estimates decode speed from the GPU's and the RAM's bandwidth.",
     "fitcalc plan gpt-oss-120b --gpu rtx-4090 --ram 64GiB --engine llama.cpp --context 32k"),
    ("Every expert in RAM (`--cpu-moe all`, llama.cpp's `-cmoe`) frees the card for context and batch, at the "
     "cost of reading all active experts from RAM each token:",
     "fitcalc plan gpt-oss-120b --gpu rtx-4090 --ram 64GiB --engine llama.cpp --context 32k --cpu-moe all"),
    ("With 32 GB of RAM nothing fits, and `plan` says what came closest:",
     "fitcalc plan gpt-oss-120b --gpu rtx-4090 --ram 32GiB --engine llama.cpp --context 32k --max-gpus 2"),
    ("## 2. gpt-oss-20b on a 16 GB card at its largest context\n\n"
     "Without `--context` the plan reports the largest context. The default engine is vLLM; on a GPU without "
     "native FP4 vLLM repacks the MXFP4 experts and keeps 10 % of the card, so it needs two cards: `plan` says "
     "so and switches to llama.cpp.",
     "fitcalc plan gpt-oss-20b --gpu rtx-4060-ti-16gb --ram 32GiB"),
    ("## 3. DeepSeek-R1 on 8 × 80 GB, 8 × 96 GB and 8 × 141 GB (vLLM)\n\n"
     "The FP8 checkpoint's routed experts alone are 58 layers × 256 experts × 3 × (2048 × 7168 B + fp32 tile "
     "scales) = 654.1 GB: 76.1 GiB per GPU under TP 8, more than vLLM's 0.9 × the H100's usable memory. So "
     "on eight H100s `plan` reports how many GPUs FP8 needs and which recipe fits the eight:",
     "fitcalc plan deepseek-r1 --gpu h100-sxm:8 --ram 1TiB --engine vllm --context 32k"),
    ("On eight 96 GB GPUs FP8 fits with a shorter window:",
     "fitcalc plan deepseek-r1 --gpu gh200-96gb:8 --ram 1TiB --engine vllm --context 32k"),
    ("On eight H200s (141 GB) FP8 fits with room to spare:",
     "fitcalc plan deepseek-r1 --gpu h200:8 --ram 1TiB --engine vllm --context 32k"),
    ("## 4. Several GPUs of different sizes (llama.cpp layer split)\n\n"
     "llama.cpp gives each GPU whole layers in proportion to `-ts`; `plan` starts from llama.cpp's default "
     "(proportional to memory) and moves layers from the fullest card to the emptiest until all fit:",
     "fitcalc plan llama-3.1-70b --gpu rtx-3090:2 --gpu rtx-3060-12gb --ram 64GiB --engine llama.cpp "
     "--recipe q4_k_m --context 8k"),
])

TRAIN_PAGE = ("train.md", "# `fitcalc train` — fine-tuning memory, worked examples", """\
`fitcalc train` prices every term of one training step on each GPU: the weights as held (the frozen base as
stored for LoRA, NF4 for QLoRA, the training dtype for full fine-tuning), gradients, FP32 master weights,
optimizer states, the activations autograd keeps, the loss over the vocabulary, and the runtime overhead;
sharded by ZeRO or FSDP and offloaded to host RAM where asked. Formulas: docs/formulas.md, "Training";
how it compares with accelerate and DeepSpeed: docs/training.md. Every output below is what the command above
it prints (regenerate with `python docs/examples/generate.py`); the hand-checked figures behind them are
tests/estimate/test_training.py.
""", [
    ("## 1. gpt-oss-20b, LoRA on one 24 GB card\n\n"
     "LoRA r=16 on every nn.Linear (for gpt-oss that is q, k, v and o: its experts and router are parameters, "
     "not linear layers) trains 7.96M parameters; the frozen base stays in its MXFP4 checkpoint format. Without "
     "gradient checkpointing the saved activations of 24 layers at 2,048 tokens do not fit beside the 12.8 GiB "
     "of weights (`--explain` adds each term under the one-line answer):",
     "fitcalc train gpt-oss-20b --method lora --gpu rtx-4090 --explain"),
    ("With gradient checkpointing each layer keeps only its input; the 201,088-entry vocabulary's logits "
     "(bf16, their fp32 copy and the fp32 log-softmax) become the largest activation term:",
     "fitcalc train gpt-oss-20b --method lora --gpu rtx-4090 --grad-checkpointing --explain"),
    ("A chunked, fused cross-entropy (Liger-Kernel's) never holds the whole [tokens, vocabulary] matrix, which "
     "lets a sequence several times longer fit:",
     "fitcalc train gpt-oss-20b --method lora --gpu rtx-4090 --grad-checkpointing --loss chunked"),
    ("## 2. gpt-oss-120b, LoRA on one 80 GB GPU\n\n"
     "The 60.8 GiB MXFP4 base fits one H100 with room for activations when layers are checkpointed:",
     "fitcalc train gpt-oss-120b --method lora --gpu h100-sxm --grad-checkpointing"),
    ("## 3. Llama-3.1-8B, full fine-tuning on 8 × H100 with ZeRO-3\n\n"
     "16 bytes per parameter of model states (2 weights + 2 gradients + 4 FP32 master + 8 Adam) = 128.5 GB, "
     "split eight ways; each GPU also holds the all-gathered root unit (embedding and lm_head) and two layers, "
     "one layer's unsharded gradients and its own micro-batch's activations:",
     "fitcalc train llama-3.1-8b --method full --zero 3 --gpu h100-sxm:8 --seq 4096 --explain"),
    ("The same run on one GPU does not fit, and ZeRO-3 with one GPU is the same as no sharding (`train` says so "
     "and goes on); the GPUs column says how many H100s the step needs:",
     "fitcalc train llama-3.1-8b --method full --zero 3 --gpu h100-sxm --seq 4096"),
    ("With the optimizer offloaded to host RAM (DeepSpeed ZeRO-Offload), the GPUs keep BF16 weights and "
     "gradients and the host holds the FP32 master weights, Adam states and FP32 gradients of every GPU on "
     "the node:",
     "fitcalc train llama-3.1-8b --method full --zero 2 --offload optimizer --gpu h100-sxm:8 --seq 4096"),
])

PAGES = [FIT_PAGE, PLAN_PAGE, TRAIN_PAGE]


def run(command: str) -> str:
    from typer.testing import CliRunner

    from fitcalc.shell.cli import app

    args = shlex.split(command)
    assert args[0] == "fitcalc"
    os.environ["FITCALC_WIDTH"] = WIDTH
    result = CliRunner().invoke(app, args[1:])
    text = result.stdout.rstrip()
    if result.stderr.strip():
        text += "\n" + result.stderr.rstrip()
    if result.exit_code:
        text += f"\n(exit {result.exit_code})"
    return text + "\n"


def render(page) -> str:
    _name, title, intro, items = page
    parts = [title, "", intro]
    for prose, command in items:
        parts += [prose, "", "```console", f"$ {command}", run(command).rstrip(), "```", ""]
    return "\n".join(parts)


def main() -> None:
    sys.path.insert(0, str(HERE.parent.parent))
    for page in PAGES:
        (HERE / page[0]).write_text(render(page), encoding="utf-8")
        print(f"wrote docs/examples/{page[0]}")


if __name__ == "__main__":
    main()
