"""The Hub path against a real HTTP server on loopback (tests/hubserver.py); no test touches the internet.

The server serves the routes huggingface_hub calls; HF_ENDPOINT points at it and HF_HOME at a
temporary folder. Expected totals are the published index figures (tests/checkpoints.py).
"""

import json
import time

import pytest

from tests import checkpoints as ck
from fitcalc import api
from fitcalc.core.errors import FitcalcError
from fitcalc.edges.ingest.hub import FIRST_RANGE
from tests.hubserver import HubServer, Repo, repo_from_folder, unused_port


@pytest.fixture(scope="module")
def gpt_oss_folder(tmp_path_factory):
    return ck.gpt_oss_20b(tmp_path_factory.mktemp("hubsrc") / "gpt-oss-20b")


@pytest.fixture(scope="module")
def qwen3_moe_folder(tmp_path_factory):
    return ck.qwen3_30b_a3b(tmp_path_factory.mktemp("hubsrc") / "Qwen3-30B-A3B")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.setenv("FITCALC_HUB_TIMEOUT", "2")
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE",
                    "HUGGINGFACE_HUB_CACHE", "FITCALC_CACHE_DIR"):
            monkeypatch.delenv(var, raising=False)
        yield server


def _safetensors_gets(server):
    return [x for x in server.log if x.method == "GET" and x.path.endswith(".safetensors")]


def test_gpt_oss_20b_from_the_hub_reads_headers_only(hub, gpt_oss_folder):
    hub.repos["openai/gpt-oss-20b"] = repo_from_folder(gpt_oss_folder)
    r = api.size("openai/gpt-oss-20b", source="hub", check=True)
    assert r.disk_bytes == ck.GPT_OSS_20B_TOTAL_SIZE == 13_761_264_768
    assert r.params_total == 20_914_757_184
    assert r.check.agree
    assert r.exact_source.startswith("safetensors headers of openai/gpt-oss-20b@")
    gets = _safetensors_gets(hub)
    assert gets and all(x.range is not None for x in gets)  # every weight-file request is a range
    assert sum(x.body_bytes for x in gets) <= 3 * FIRST_RANGE  # three shards, headers only


def test_a_second_run_works_offline_and_without_the_server(hub, gpt_oss_folder, monkeypatch):
    hub.repos["openai/gpt-oss-20b"] = repo_from_folder(gpt_oss_folder)
    first = api.size("openai/gpt-oss-20b", source="hub")
    n = hub.requests()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    second = api.size("openai/gpt-oss-20b", source="hub")
    assert hub.requests() == n  # nothing asked of the server
    assert second.disk_bytes == first.disk_bytes and second.groups == first.groups
    # Not offline, but the server is gone: the cache answers, with a warning.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{unused_port()}")
    third = api.size("openai/gpt-oss-20b", source="hub")
    assert third.disk_bytes == first.disk_bytes
    assert any("cache" in w for w in third.warnings)


def test_long_headers_take_a_second_range_request(hub, qwen3_moe_folder):
    # Qwen3-30B-A3B shards hold ~1,200 tensors each: headers of ~145 KB, past the first 100,000 bytes.
    hub.repos["Qwen/Qwen3-30B-A3B"] = repo_from_folder(qwen3_moe_folder)
    r = api.size("Qwen/Qwen3-30B-A3B", source="hub", check=True)
    assert r.disk_bytes == ck.QWEN3_30B_A3B_TOTAL_SIZE == 61_064_245_248
    assert r.check.agree
    gets = _safetensors_gets(hub)
    assert any(x.range and not x.range.startswith("bytes=0-") for x in gets)
    assert sum(x.body_bytes for x in gets) < 16 * 200_000


def test_revision_and_single_file_repo(hub, tmp_path):
    f = tmp_path / "model.safetensors"
    ck.write_safetensors(f, ck.llama_tensors(layers=2, hidden=256, inter=512, heads=4, kv=2, vocab=1000))
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(dict(ck.LLAMA_31_8B_CONFIG, num_hidden_layers=2, hidden_size=256,
                                                 intermediate_size=512, num_attention_heads=4,
                                                 num_key_value_heads=2, vocab_size=1000)))
    hub.repos["me/tiny"] = Repo(files={"config.json": cfg, "model.safetensors": f},
                                branches={"v1": "fedcba9876543210fedcba9876543210fedcba98"})
    per_layer = 256 * 256 * 2 + 2 * (128 * 256) + 3 * 256 * 512 + 2 * 256
    r = api.size("me/tiny@v1", check=True)
    assert r.disk_bytes == 2 * (2 * per_layer + 2 * 1000 * 256 + 256)
    assert r.check.agree
    assert "fedcba987654" in r.exact_source


@pytest.mark.parametrize("setup,words", [
    ("missing_repo", "no such model repo"),
    ("missing_revision", "revision 'nope' not found"),
    ("gated", "gated"),
    ("no_config", "no config.json"),
])
def test_hub_errors_are_one_line(setup, words, hub, runner, app, tmp_path, gpt_oss_folder):
    ref = "org/model"
    if setup == "missing_revision":
        hub.repos["org/model"] = repo_from_folder(gpt_oss_folder)
        ref = "org/model@nope"
    elif setup == "gated":
        hub.repos["org/model"] = repo_from_folder(gpt_oss_folder, gated_token="hf_right")
    elif setup == "no_config":
        hub.repos["org/model"] = Repo(files={"README.md": gpt_oss_folder / "config.json"})
    r = runner.invoke(app, ["size", ref, "--source", "hub"])
    assert r.exit_code == 1, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert words in err and "hint:" in err and "Traceback" not in r.output


def test_gated_repo_opens_with_hf_token(hub, gpt_oss_folder, monkeypatch):
    hub.repos["org/gated"] = repo_from_folder(gpt_oss_folder, gated_token="hf_right")
    monkeypatch.setenv("HF_TOKEN", "hf_right")
    assert api.size("org/gated").disk_bytes == 13_761_264_768


def test_no_network_is_one_line_and_fast(hub, runner, app, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{unused_port()}")
    t = time.perf_counter()
    r = runner.invoke(app, ["size", "org/model"])
    assert r.exit_code == 1
    assert "cannot reach" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert time.perf_counter() - t < 5  # no retry back-off before the answer


def test_timeout_is_one_line(hub, gpt_oss_folder, runner, app, monkeypatch):
    hub.repos["org/slow"] = repo_from_folder(gpt_oss_folder)
    monkeypatch.setenv("FITCALC_HUB_TIMEOUT", "0.5")
    hub.delay["config.json"] = 2.0
    r = runner.invoke(app, ["size", "org/slow"])
    assert r.exit_code == 1
    assert "did not answer within 0.5 s" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_offline_and_not_cached(hub, runner, app, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = runner.invoke(app, ["size", "org/model"])
    assert r.exit_code == 1 and "offline" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert hub.requests() == 0


def test_a_server_that_ignores_ranges_still_sends_only_headers_to_us(hub, gpt_oss_folder):
    hub.repos["org/norange"] = repo_from_folder(gpt_oss_folder)
    hub.ignore_range = True
    r = api.size("org/norange")
    assert r.disk_bytes == 13_761_264_768


def test_a_lying_header_on_the_hub_is_refused_after_the_first_range(hub, tmp_path, runner, app):
    import os
    import struct

    f = tmp_path / "model.safetensors"
    f.write_bytes(struct.pack("<Q", 1 << 40))
    os.truncate(f, 1 << 20)
    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "llama"}')
    hub.repos["org/liar"] = Repo(files={"config.json": cfg, "model.safetensors": f})
    r = runner.invoke(app, ["size", "org/liar"])
    assert r.exit_code == 1 and "cap" in r.stderr
    assert sum(x.body_bytes for x in _safetensors_gets(hub)) <= FIRST_RANGE


# ---- GGUF repos (issue #16): the chosen file's header by range requests, like safetensors -----------


def _gguf_repo(tmp_path, names):
    """A GGUF repo: the same gpt-oss-20b-shaped GGUF (sparse: a header, then holes) under each file name,
    as hard links, so no data is ever written."""
    import os

    from tests.test_ingest_gguf import gpt_oss_20b_gguf

    src = gpt_oss_20b_gguf(tmp_path / "src.gguf")
    files = {}
    for n in names:
        p = tmp_path / n
        if n.endswith(".gguf"):
            os.link(src, p)
        else:
            p.write_text("a model card\n")
        files[n] = p
    return Repo(files=files), src


def test_a_gguf_repo_is_read_by_ranges_with_the_quant_llama_server_would_pick(hub, tmp_path):
    names = ["gpt-oss-20b-Q8_0.gguf", "gpt-oss-20b-Q4_K_M.gguf", "gpt-oss-20b-mxfp4.gguf", "README.md"]
    hub.repos["someone/gpt-oss-20b-GGUF"], src = _gguf_repo(tmp_path, names)
    local = api.size(str(src))
    # no :QUANT: Q4_K_M, llama-server -hf's default; the numbers are the local file's, byte for byte
    r = api.size("someone/gpt-oss-20b-GGUF")
    assert r.disk_bytes == local.disk_bytes and r.params_total == local.params_total == 20_914_757_184
    gets = [x for x in hub.log if x.method == "GET" and x.path.endswith(".gguf") and x.status == 206]
    assert {x.path.rsplit("/", 1)[1] for x in gets} == {"gpt-oss-20b-Q4_K_M.gguf"}
    assert all(x.range is not None for x in gets)  # ranges only
    # one range request of the first block (2 MiB): this header is 28,736 bytes, the file 12,096,587,072
    assert len(gets) == 1 and sum(x.body_bytes for x in gets) <= 2 << 20
    # :QUANT picks the file whose name holds it, case ignored (the server logs a request when its body
    # is sent or abandoned, so the first run's request may be logged late: count over the whole log)
    api.size("someone/gpt-oss-20b-GGUF:MXFP4")
    time.sleep(0.2)
    got = [x.path.rsplit("/", 1)[1] for x in hub.log if x.method == "GET" and x.path.endswith(".gguf") and x.status == 206]
    assert sorted(set(got)) == ["gpt-oss-20b-Q4_K_M.gguf", "gpt-oss-20b-mxfp4.gguf"]


def test_a_gguf_quant_the_repo_lacks_names_the_files_it_has(hub, tmp_path):
    hub.repos["someone/gpt-oss-20b-GGUF"], _ = _gguf_repo(tmp_path, ["gpt-oss-20b-Q8_0.gguf"])
    with pytest.raises(FitcalcError) as e:
        api.size("someone/gpt-oss-20b-GGUF:Q2_K")
    assert "no .gguf file named like 'Q2_K'" in e.value.one_line() and "gpt-oss-20b-Q8_0.gguf" in e.value.one_line()
    # the hint's form works: the quant a listed name holds
    assert api.size("someone/gpt-oss-20b-GGUF:Q8_0").params_total == 20_914_757_184


def test_a_hub_read_says_what_it_reads_to_a_watcher(hub, gpt_oss_folder, tmp_path):
    # issue #16 point 5: Hub reads report each request to the shell's progress line (the shell shows it
    # after about a second, for a person watching); without a watcher they stay silent
    from fitcalc.edges.ingest.hub import reporting_progress

    hub.repos["openai/gpt-oss-20b"] = repo_from_folder(gpt_oss_folder)
    said: list[str] = []
    with reporting_progress(said.append):
        api.size("openai/gpt-oss-20b", source="hub")
    assert said[0] == "openai/gpt-oss-20b: config.json"
    # the published index lists three shards (tests/checkpoints.py): one message per header read
    assert said[-1] == "openai/gpt-oss-20b: safetensors headers by range requests, 3 of 3 files"
    names = ["gpt-oss-20b-Q4_K_M.gguf", "README.md"]
    hub.repos["someone/gpt-oss-20b-GGUF"], _ = _gguf_repo(tmp_path, names)
    said.clear()
    with reporting_progress(said.append):
        api.size("someone/gpt-oss-20b-GGUF")
    # a repo id is first tried as a safetensors checkpoint (config.json), then as a GGUF repo
    assert said == ["someone/gpt-oss-20b-GGUF: config.json", "someone/gpt-oss-20b-GGUF: the file list",
                    "someone/gpt-oss-20b-GGUF: the GGUF header of gpt-oss-20b-Q4_K_M.gguf by range requests (1 of 1)"]


def test_progress_is_silent_when_piped(hub, gpt_oss_folder, runner, app):
    hub.repos["openai/gpt-oss-20b"] = repo_from_folder(gpt_oss_folder)
    r = runner.invoke(app, ["size", "openai/gpt-oss-20b", "--source", "hub"])
    assert r.exit_code == 0 and "hub [" not in r.stderr, r.output
