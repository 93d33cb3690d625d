"""`fitcalc fit` through the CLI: JSON shape, several GPUs, --check exit codes, bad input."""

import json

import pytest


def test_fit_json_one_gpu(runner, app):
    r = runner.invoke(app, ["fit", "gpt-oss-20b", "--gpu", "24GiB", "--engine", "llama.cpp", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    for key in ("fits", "required_bytes", "available_bytes", "max_context", "terms"):
        assert key in doc
    assert doc["available_bytes"] == 24 * 2**30
    assert all({"id", "bytes"} <= set(t) for t in doc["terms"])
    assert sum(t["bytes"] for t in doc["terms"]) == doc["required_bytes"]


def test_fit_json_several_gpus_is_a_list(runner, app):
    r = runner.invoke(app, ["fit", "gpt-oss-20b", "--gpu", "16GiB", "--gpu", "80000MB", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert isinstance(doc, list)
    answers = [d for d in doc if not d["alternative"]]
    assert len(answers) == 2 and answers[1]["available_bytes"] == 80 * 10**9
    # a raw budget is answered for vLLM; on 16 GiB vLLM does not fit and llama.cpp does, so llama.cpp's
    # row follows as the alternative (the engine changes the answer)
    alt = [d for d in doc if d["alternative"]]
    assert [(d["engine"], d["verdict"]) for d in alt] == [("llama.cpp", "fits")]
    assert answers[0]["engine"] == "vllm" and answers[0]["verdict"] == "does not fit"


def test_fit_check_exit_codes(runner, app):
    ok = runner.invoke(app, ["fit", "gpt-oss-20b", "--gpu", "80000MB", "--check"])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["fit", "gpt-oss-20b", "--gpu", "8GiB", "--check"])
    assert bad.exit_code == 3  # docs/cli.md: 3 = does not fit
    assert "DOES NOT FIT" in bad.stdout


def test_fit_context_accepts_k_suffix(runner, app):
    r = runner.invoke(app, ["fit", "gpt-oss-20b", "--gpu", "80000MB", "--context", "128k", "--json"])
    assert json.loads(r.stdout)["context"] == 131072


@pytest.mark.parametrize("args,needle", [
    (["--context", "0"], "--context"),
    (["--context", "-5"], "count"),
    (["--batch", "0"], "--batch"),
    (["--engine", "vlm"], "vllm"),
    (["--kv-dtype", "q3_k", "--engine", "vllm"], "kv"),
    (["--gpu", "rtx-9090"], "GPU"),
    (["--gpu", "24G"], "24GiB"),
])
def test_fit_bad_input_is_one_line(runner, app, args, needle):
    r = runner.invoke(app, ["fit", "gpt-oss-20b", *args])
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle.lower() in lines[0].lower(), r.stderr
    assert "Traceback" not in r.output


def test_fit_warns_beyond_model_maximum(runner, app):
    r = runner.invoke(app, ["fit", "gpt-oss-20b", "--gpu", "80000MB", "--context", "256k"])
    assert r.exit_code == 0
    assert "exceeds" in r.stdout and "131,072" in r.stdout


def test_fit_set_moves_the_verdict_and_unknown_keys_list_the_engines(runner, app):
    # gpt-oss-120b on one H100 under vLLM at --gpu-memory-utilization 0.95 --max-num-batched-tokens 1024
    # (vllm-project/vllm#27508): vLLM found 1.71 GiB for KV, under the 4.54 GiB a 131,072-token sequence needs.
    args = ["fit", "gpt-oss-120b", "--gpu", "h100-sxm", "--engine", "vllm", "--context", "131072", "--json"]
    r = runner.invoke(app, [*args, "--set", "gpu_memory_utilization=0.95", "--set", "max_num_batched_tokens=1024",
                            "--set", "mxfp4_backend=marlin"])
    assert r.exit_code == 0, r.output
    import json

    doc = json.loads(r.stdout)
    assert not doc["fits"] and 1.5 * 2**30 < doc["kv_capacity_bytes"] < 2.1 * 2**30
    bad = runner.invoke(app, [*args, "--set", "n_ubatch=512"])
    assert bad.exit_code == 1 and "gpu_memory_utilization" in bad.output and "Traceback" not in bad.output


def test_set_without_engine_answers_with_the_engine_that_takes_the_keys(runner, app):
    # gpu_memory_utilization is vLLM's (vllm/engine/arg_utils.py EngineArgs), not llama.cpp's: the
    # RTX 4090 (a consumer card, llama.cpp by default) is then answered for vLLM only, and a key no
    # suited engine takes is one line naming the engine's keys.
    from fitcalc import api

    rs = api.fit("gpt-oss-20b", ["rtx-4090", "h100-sxm"], settings={"gpu_memory_utilization": "0.95"})
    assert [(r.device_id, r.engine) for r in rs] == [("rtx-4090", "vllm"), ("h100-sxm", "vllm")]
    rs = api.fit("gpt-oss-20b", ["rtx-4090"], settings={"n_ubatch": "256"})
    assert [r.engine for r in rs] == ["llama.cpp"]
    r = runner.invoke(app, ["fit", "gpt-oss-20b", "--gpu", "h100-sxm", "--set", "bogus=1"])
    assert r.exit_code == 1 and "takes: gpu_memory_utilization" in r.output
