"""`fitcalc train` through the CLI: JSON shape, --check exit codes, bad input as one line."""

import json

import pytest


def test_train_json(runner, app):
    r = runner.invoke(app, ["train", "llama-3.1-8b", "--method", "lora", "--gpu", "80000MB", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    # LoRA r=16 on every linear layer of Llama-3.1-8B: 32 × 1,310,720 (tests/estimate/test_training.py)
    assert doc["params_trainable"] == 41_943_040
    (one,) = doc["fits"]
    assert one["memory_bytes"] == 80 * 10**9 and one["fits"]
    ids = [t["id"] for t in one["terms"]]
    for prefix in ("weights.", "grads.", "master.", "optimizer.", "act.", "overhead."):
        assert any(i.startswith(prefix) for i in ids), prefix
    assert all(t["formula"] and t["sources"] for t in one["terms"])
    assert sum(t["bytes"] for t in one["terms"]) == one["gpu_bytes"]


def test_train_check_exit_codes(runner, app):
    ok = runner.invoke(app, ["train", "llama-3.1-8b", "--gpu", "80000MB", "--check"])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["train", "llama-3.1-8b", "--method", "full", "--gpu", "24GiB", "--check"])
    assert bad.exit_code == 3 and "DOES NOT FIT" in bad.stdout  # docs/cli.md: 3 = does not fit


def test_train_zero3_on_one_gpu_goes_on(runner, app):
    r = runner.invoke(app, ["train", "llama-3.1-8b", "--method", "full", "--zero", "3", "--gpu", "h100-sxm"])
    assert r.exit_code == 0, r.output
    assert "same as ZeRO-0" in r.stdout


def test_train_offload_reports_host_ram(runner, app):
    r = runner.invoke(app, ["train", "llama-3.1-8b", "--method", "full", "--zero", "2", "--offload", "optimizer",
                            "--gpu", "h100-sxm:8"])
    assert r.exit_code == 0, r.output
    assert "host RAM per node (8 GPUs)" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (["--targets", "foo"], "LoRA target foo is not a linear layer"),
    (["--rank", "0"], "rank must be at least 1"),
    (["--rank", "5000"], "larger than the layer"),
    (["--optimizer", "adam"], "--optimizer"),
    (["--micro-batch", "0"], "--micro-batch"),
], ids=["target", "rank-0", "rank-big", "optimizer", "micro-batch"])
def test_train_bad_input_one_line(runner, app, args, needle):
    r = runner.invoke(app, ["train", "llama-3.1-8b", "--gpu", "24GiB", *args])
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "hint" in lines[0]


def test_train_qlora_on_mxfp4_checkpoint(runner, app):
    r = runner.invoke(app, ["train", "gpt-oss-20b", "--method", "qlora", "--gpu", "24GiB"])
    assert r.exit_code == 1 and "already quantized" in r.stderr and "--method lora" in r.stderr


def test_train_zero_and_fsdp_together_is_usage(runner, app):
    r = runner.invoke(app, ["train", "llama-3.1-8b", "--gpu", "24GiB", "--zero", "3", "--fsdp", "full"])
    assert r.exit_code == 2


def test_plan_with_a_method_answers_the_training_plan(runner, app):
    # `plan --method` is `train` with --context as the sequence and --batch as the micro-batch: the same JSON
    a = runner.invoke(app, ["plan", "llama-3.1-8b", "--method", "qlora", "--gpu", "rtx-4090", "--context", "4k",
                            "--batch", "2", "--json"])
    b = runner.invoke(app, ["train", "llama-3.1-8b", "--method", "qlora", "--gpu", "rtx-4090", "--seq", "4096",
                            "--micro-batch", "2", "--json"])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    doc = json.loads(a.stdout)
    assert doc == json.loads(b.stdout)
    assert {"max_micro_batch", "max_seq", "gpus_needed", "verdict"} <= set(doc["fits"][0])
    bad = runner.invoke(app, ["plan", "llama-3.1-8b", "--method", "lora", "--engine", "vllm"])
    assert bad.exit_code == 2 and "fitcalc train llama-3.1-8b --method lora" in bad.output
