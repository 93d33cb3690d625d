"""Training scenarios in report specs (issue #18): `report` prices them as `fitcalc train` does,
`check` gates on their assertions, a bad setup fails before anything is evaluated."""

import json

import pytest

from fitcalc import api

SPEC = """\
title: fine-tuning fleet
training:
  - name: 8b-lora-4090
    model: llama-3.1-8b
    gpu: rtx-4090
    train: {method: lora, rank: 16, targets: all-linear, checkpointing: true}
    assert: {must_fit: true, min_micro_batch: 1}
  - name: 8b-full-zero3
    model: llama-3.1-8b
    gpu: h100-sxm:8
    train: {method: full, zero: 3, seq: 4096}
    assert: {must_fit: true, max_gpus_needed: 8}
"""


def _spec(tmp_path, text=SPEC):
    p = tmp_path / "train.yaml"
    p.write_text(text)
    return str(p)


def test_report_prices_training_as_train_does(runner, app, tmp_path):
    out = tmp_path / "r.json"
    r = runner.invoke(app, ["report", _spec(tmp_path), "-o", str(out)])
    assert r.exit_code == 0, r.output
    rows = {t["name"]: t for t in json.loads(out.read_text())["training"]}
    lora = rows["8b-lora-4090"]
    # LoRA r=16 on every linear layer of Llama-3.1-8B: 32 layers × 16 × (q 4096+4096, k 4096+1024,
    # v 4096+1024, o 4096+4096, gate 4096+14336, up 4096+14336, down 14336+4096) = 32 × 16 × 81,920
    # = 41,943,040 trainable parameters (the figure issue #18 gives)
    assert lora["params_trainable"] == 41_943_040
    same = api.train("llama-3.1-8b", ["rtx-4090"], method="lora", rank=16, targets="all-linear",
                     checkpointing=True).fits[0]
    assert (lora["gpu_bytes"], lora["verdict"], lora["max_seq"]) == (same.gpu_bytes, same.verdict, same.max_seq)
    full = rows["8b-full-zero3"]
    assert full["count"] == 8 and full["setup"]["zero"] == 3
    md = runner.invoke(app, ["report", _spec(tmp_path)]).stdout
    assert "## Training" in md and "| 8b-full-zero3 | llama-3.1-8b | h100-sxm:8 | full, adamw, ZeRO-3 |" in md


def test_check_gates_on_training_assertions(runner, app, tmp_path):
    ok = runner.invoke(app, ["check", _spec(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert "4 assertions over 2 scenarios: 4 hold, 0 fail" in ok.stdout
    # one GPU cannot hold full fine-tuning of 8B parameters: 16 B per parameter of model states alone
    # is 16 × 8.03e9 B ≈ 119.7 GiB > 80 GiB
    bad = SPEC.replace("gpu: h100-sxm:8", "gpu: h100-sxm")
    r = runner.invoke(app, ["check", _spec(tmp_path, bad)])
    assert r.exit_code == 3, r.output
    assert "FAIL 8b-full-zero3: must_fit: does not fit" in r.stdout


@pytest.mark.parametrize("change,field", [
    ("targets: all-linear", "training[8b-lora-4090].train"),     # a target the model lacks
    ("rank: 16", "training[8b-lora-4090].train"),                # rank 0
])
def test_a_bad_setup_is_one_line_naming_the_scenario(runner, app, tmp_path, change, field):
    text = SPEC.replace("targets: all-linear", "targets: wqkv") if "targets" in change else \
        SPEC.replace("rank: 16", "rank: 0")
    r = runner.invoke(app, ["check", _spec(tmp_path, text)])
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    assert "8b-lora-4090" in lines[0]


def test_unknown_training_key_names_the_closest(runner, app, tmp_path):
    r = runner.invoke(app, ["check", _spec(tmp_path, SPEC.replace("zero: 3", "zer0: 3"))])
    assert r.exit_code == 1 and "zer0" in r.stderr and "zero" in r.stderr, r.output


def test_html_has_the_training_table(runner, app, tmp_path):
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", _spec(tmp_path), "-o", str(out)])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert 'id="training"' in html and "8b-full-zero3" in html
