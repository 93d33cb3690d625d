"""No memory blow-ups or hangs from small inputs (issue #17): limits (docs/cli.md, "Limits") are
enforced before any work that grows with them. Each case runs as a child process under a 300 MiB
address-space limit and a CPU budget (conftest.py); before, these took gigabytes or never returned."""

from __future__ import annotations

import pytest

from tests.hostile.conftest import fitcalc
from tests.hostile.makers import alias_bomb, llama_gguf, nested_safetensors


def _spec(tmp_path, text: str):
    p = tmp_path / "spec.yaml"
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_yaml_alias_bomb_in_a_report_spec(tmp_path):
    # 1 KB; reached 6.9 GB and was still growing at 120 s (values were turned into text first).
    spec = _spec(tmp_path, "models: [gpt-oss-20b]\ngpus: [h100-sxm]\n" + alias_bomb())
    r = fitcalc("report", spec)
    assert r.code == 1 and "expands to more than 100,000 values" in r.one_line()


@pytest.mark.parametrize("text", [
    "contexts: " + "[" * 100_000 + "]" * 100_000 + "\n",  # crashed libyaml's composer (segfault)
    "contexts:\n" + "  " + "- " * 50_000 + "8192\n",
], ids=["flow", "block"])
def test_yaml_nested_too_deep(tmp_path, text):
    r = fitcalc("report", _spec(tmp_path, "models: [gpt-oss-20b]\ngpus: [h100-sxm]\n" + text))
    # fitcalc's limit (64), or libyaml's own (1,000 levels, 0.2.5+) when the parser meets it first
    assert r.code == 1 and ("nests deeper than 64 levels" in r.one_line() or "maximum nesting depth" in r.one_line())


@pytest.mark.parametrize("cmd", ["plan", "fit"])
@pytest.mark.parametrize("count", ["1000000", "100000000"])
def test_huge_gpu_counts(cmd, count):
    # plan :1000000 took 9.2 GB and 118 s; :100000000 a traceback after 289 s.
    r = fitcalc(cmd, "gpt-oss-20b", "--gpu", f"h100-sxm:{count}")
    assert r.code == 1 and "over the limit of 1,024 per configuration" in r.one_line()


def test_report_spec_gpu_count(tmp_path):
    # count: 1000000000 reached 8.6 GB.
    spec = _spec(tmp_path, "models: [gpt-oss-20b]\ngpus: [{gpu: h100-sxm, count: 1000000000}]\ncontexts: [8192]\n")
    r = fitcalc("report", spec)
    assert r.code == 1 and "gpus[0].count" in r.one_line() and "1024" in r.one_line()


def test_confirmed_huge_sweep(tmp_path):
    # 200 contexts x 33 batches x 50 GPU budgets = 330,000 scenarios: 6.7 GB with --yes before.
    contexts = ", ".join(str(1024 + i) for i in range(200))
    batches = ", ".join(str(1 + i) for i in range(33))
    gpus = ", ".join(f"{16 + i}GiB" for i in range(50))
    spec = _spec(tmp_path, f"models: [gpt-oss-20b]\ngpus: [{gpus}]\ncontexts: [{contexts}]\nbatches: [{batches}]\n")
    r = fitcalc("report", spec, "--yes")
    assert r.code == 1 and "330,000 scenarios, over the limit of 20,000 per report" in r.one_line()


@pytest.mark.parametrize("blocks", [2**32 - 1, 1_000_000])
def test_gguf_block_count_is_bounded_before_any_loop(tmp_path, blocks):
    # 2^32-1: `size` never returned (CPU-bound in the per-layer loop).
    r = fitcalc("size", str(llama_gguf(tmp_path / "m.gguf", blocks)))
    assert r.code == 1 and f"block_count is {blocks:,}, over the limit of 1,024 layers" in r.one_line()


def test_safetensors_header_nested_100000_deep(tmp_path):
    r = fitcalc("size", str(nested_safetensors(tmp_path / "deep.safetensors", 100_000)))
    assert r.code == 1 and "nests too deep" in r.one_line()
