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

PAGES = [FIT_PAGE]


def run(command: str) -> str:
    from typer.testing import CliRunner

    from fitcalc.cli import app

    args = shlex.split(command)
    assert args[0] == "fitcalc"
    os.environ["FITCALC_WIDTH"] = WIDTH
    result = CliRunner().invoke(app, args[1:])
    return result.stdout.rstrip() + "\n"


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
