"""The example pages in docs/examples/ show exactly what fitcalc prints today."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("examples_generate", ROOT / "docs/examples/generate.py")
generate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generate)


@pytest.mark.parametrize("page", generate.PAGES, ids=[p[0] for p in generate.PAGES])
def test_example_page_is_current(page):
    on_disk = (ROOT / "docs/examples" / page[0]).read_text(encoding="utf-8")
    assert on_disk == generate.render(page), f"run: python docs/examples/generate.py ({page[0]} is stale)"


def test_seed_claims_hold():
    # The seed's claims as fitcalc answers them (the page above shows the numbers):
    # 20b fits a 16 GB card with llama.cpp; 120b at 131,072 tokens is tight-to-over on one H100 under vLLM's
    # defaults; R1 FP8 does not fit 8 x 80 GB and fits 8 x 141 GB.
    from fitcalc import api

    (r,) = api.fit("gpt-oss-20b", ["rtx-4060-ti-16gb"], 8192, engine="llama.cpp")
    assert r.fits and r.max_context >= 32768
    r80, r96, r141 = [r for r in api.fit("deepseek-r1", ["h100-sxm:8", "gh200-96gb:8", "h200:8"], 32768)
                      if not r.alternative]  # vLLM on datacenter GPUs; llama.cpp rows only where it differs
    assert not r80.fits and r141.fits
    # On 8 x 80 GB the FP8 weights alone (676.9 GB without the MTP layer, 84.6 GB per GPU) exceed vLLM's
    # budget of 0.9 x (81,559 MiB - driver reserve) = 71.1 GiB = 76.3 GB per GPU, before any KV.
    weights = sum(t.bytes for t in r80.terms if t.id.startswith("weights."))
    reserve = next(t.bytes for t in r80.terms if t.id == "overhead.engine_reserve")
    driver = next(t.bytes for t in r80.terms if t.id == "overhead.driver_reserved")
    assert weights > r80.available_bytes - reserve - driver


def test_train_page_claims_hold():
    # docs/examples/train.md: 20b LoRA fits one 24 GB card only with gradient checkpointing; 120b LoRA fits one
    # 80 GB GPU; Llama-3.1-8B full fine-tuning fits 8 x H100 under ZeRO-3 and not one.
    from fitcalc import api

    assert not api.train("gpt-oss-20b", ["rtx-4090"], method="lora").fits[0].fits
    assert api.train("gpt-oss-20b", ["rtx-4090"], method="lora", checkpointing=True).fits[0].fits
    assert api.train("gpt-oss-120b", ["h100-sxm"], method="lora", checkpointing=True).fits[0].fits
    eight, one = api.train("llama-3.1-8b", ["h100-sxm:8", "h100-sxm"], method="full", zero=3, seq=4096).fits
    assert eight.fits and not one.fits and 1 < one.gpus_needed <= 8
