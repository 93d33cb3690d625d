"""`fitcalc reconcile` through the CLI: JSON shape, table, and one line + exit 1 for bad input."""

import json

import pytest

from tests.reconcile import logs


def test_json_has_engine_and_rows(runner, app, write_log):
    r = runner.invoke(app, ["reconcile", write_log(logs.LLAMA_GPT_OSS), "--set", "n_cpu_moe=99", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["engine"] == "llama.cpp" and doc["model"] == "gpt-oss-20b"
    assert doc["rows"] and all({"id", "device", "logged_bytes", "predicted_bytes"} <= set(row) for row in doc["rows"])
    kv = next(row for row in doc["rows"] if row["id"] == "kv.full")
    assert (kv["device"], kv["logged_bytes"], kv["predicted_bytes"]) == ("CUDA0", 3 * 2**30, 3 * 2**30)


def test_table(runner, app, write_log, llama_spec):
    r = runner.invoke(app, ["reconcile", write_log(logs.OLLAMA_RUNNER), "--model", llama_spec])
    assert r.exit_code == 0, r.output
    assert "ollama (0.5.4" in r.stdout and "act.compute_buffer" in r.stdout and "not modelled" in r.stdout


def test_vllm_needs_a_gpu_when_the_log_has_no_total(runner, app, write_log, llama_spec):
    path = write_log(logs.VLLM_V1)
    r = runner.invoke(app, ["reconcile", path, "--model", llama_spec])
    assert r.exit_code == 1 and "--gpu" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    ok = runner.invoke(app, ["reconcile", path, "--model", llama_spec, "--gpu", "80000MB", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["version_family"] == "0.11"


def _sparse(tmp_path, head: bytes = b"") -> str:
    p = tmp_path / "huge.log"
    with p.open("wb") as f:
        f.write(head)
        f.truncate(1 << 30)  # 1 GiB, sparse: no disk used
    return str(p)


@pytest.mark.parametrize("case,needle", [
    ("unknown", "no vLLM, llama.cpp or Ollama lines"),
    ("no_memory", "without memory lines"),
    ("truncated", "no newline"),
    ("binary", "not a text log"),
    ("sparse_1gib", "not a text log"),
    ("text_then_1gib_of_nothing", "read the first"),
    ("empty", "empty"),
    ("missing", "no such file"),
    ("unknown_model", "--model"),
    ("bad_set", "--set"),
    ("bad_set_value", "--set"),
])
def test_bad_input_is_one_line_and_exit_1(runner, app, write_log, tmp_path, case, needle):
    args: list[str] = []
    if case == "unknown":
        path = write_log(logs.NOT_AN_ENGINE)
    elif case == "no_memory":
        path = write_log(logs.VLLM_NO_MEMORY)
    elif case == "truncated":
        # a copy of a llama.cpp log cut off in the middle of its first memory line
        cut = logs.LLAMA_GPT_OSS.index("load_tensors:        CUDA0 model buffer size") + 30
        path = write_log(logs.LLAMA_GPT_OSS[:cut])
    elif case == "binary":
        p = tmp_path / "model.gguf"
        p.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 40)
        path = str(p)
    elif case == "sparse_1gib":
        path = _sparse(tmp_path)
    elif case == "text_then_1gib_of_nothing":
        path = _sparse(tmp_path, b"INFO 10:00:00 service starting\n" * 400)
    elif case == "empty":
        path = write_log("")
    elif case == "missing":
        path = str(tmp_path / "nope.log")
    elif case == "unknown_model":
        # a model name that is neither bundled nor an alias (Llama-3.1-8B itself is in the catalog)
        path = write_log(logs.VLLM_V1.replace("meta-llama/Llama-3.1-8B-Instruct", "acme-labs/Unreleased-8B"))
        args = ["--gpu", "80000MB"]
    elif case == "bad_set":
        path = write_log(logs.LLAMA_GPT_OSS)
        args = ["--set", "n_cpu_moes=99"]
    else:
        path = write_log(logs.LLAMA_GPT_OSS)
        args = ["--set", "n_cpu_moe=many"]
    r = runner.invoke(app, ["reconcile", path, *args])
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.output
