"""A loopback Hub that misbehaves (issue #17): it drips, lies in its index and serves a config.json
over the cap. Each answer is one line, in bounded time, and nothing is written outside the cache."""

from __future__ import annotations

import json
import time

from tests.checkpoints import write_safetensors
from tests.hostile.conftest import cli
from tests.hostile.makers import LLAMA_CONFIG
from tests.hubserver import Repo


def _repo(tmp_path, config: dict | None = None, index: dict | None = None, config_bytes: int | None = None) -> Repo:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    files = {}
    cfg = src / "config.json"
    if config_bytes is not None:
        with open(cfg, "wb") as f:
            f.truncate(config_bytes)  # sparse: the size is reported, nothing is written
    else:
        cfg.write_text(json.dumps(config or LLAMA_CONFIG))
    files["config.json"] = cfg
    if index is not None:
        (src / "model.safetensors.index.json").write_text(json.dumps(index))
        files["model.safetensors.index.json"] = src / "model.safetensors.index.json"
    else:
        write_safetensors(src / "model.safetensors", [("model.layers.0.self_attn.q_proj.weight", "BF16", (64, 64))])
        files["model.safetensors"] = src / "model.safetensors"
    return Repo(files=files)


def test_a_hub_that_drips_meets_the_deadline(hub, tmp_path, monkeypatch):
    # One byte every 0.1 s never trips a per-read timeout (2 s); before, killed after 300 s.
    hub.repos["org/drip"] = _repo(tmp_path)
    hub.drip["config.json"] = 0.1
    monkeypatch.setenv("FITCALC_HUB_DEADLINE", "0.5")
    t = time.monotonic()
    r = cli("size", "org/drip")
    assert r.code == 1 and "took over 0.5 s" in r.one_line() and "FITCALC_HUB_DEADLINE" in r.one_line()
    assert time.monotonic() - t < 2.0


def test_shard_names_that_climb_out_are_refused(hub, tmp_path):
    evil = "../../../../evil.safetensors"
    hub.repos["org/climb"] = _repo(tmp_path, index={"metadata": {"total_size": 8192},
                                                    "weight_map": {"model.embed_tokens.weight": evil}})
    r = cli("size", "org/climb")
    assert r.code == 1 and "is not a plain file name" in r.one_line()
    assert not [x for x in hub.log if "evil" in x.path]  # nothing asked for it
    assert not list(tmp_path.rglob("evil.safetensors*"))  # and nothing written for it


def test_a_config_over_the_cap_is_not_downloaded(hub, tmp_path):
    # A 1 GiB config.json was downloaded whole before the 64 MiB cap refused it.
    hub.repos["org/huge"] = _repo(tmp_path, config_bytes=1 << 30)
    r = cli("size", "org/huge")
    assert r.code == 1 and "config.json is 1,073,741,824 bytes, over the" in r.one_line()
    assert hub.body_bytes("config.json") == 0
