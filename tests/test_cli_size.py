"""`fitcalc size` through the CLI: JSON shape, both unit systems, explain, and errors."""

import json


def test_size_json_shape(runner, app):
    r = runner.invoke(app, ["size", "gpt-oss-20b", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    for key in ("model", "params_total", "params_active", "disk_bytes", "groups"):
        assert key in doc
    assert doc["disk_bytes"] == 13_761_264_768  # model.safetensors.index.json total_size
    g = {x["name"]: x for x in doc["groups"]}
    assert set(g["experts"]) >= {"name", "params", "format", "bytes"}
    assert g["experts"]["format"] == "mxfp4"


def test_size_hub_name_resolves_to_the_same_spec(runner, app):
    a = json.loads(runner.invoke(app, ["size", "openai/gpt-oss-20b", "--json"]).stdout)
    b = json.loads(runner.invoke(app, ["size", "gpt-oss-20b", "--json"]).stdout)
    assert a == b


def test_size_table_shows_gib_and_gb(runner, app):
    r = runner.invoke(app, ["size", "gpt-oss-20b"])
    assert r.exit_code == 0
    # 13761264768 B = 12.816 GiB = 13.761 GB
    assert "12.816" in r.stdout and "13.761" in r.stdout
    assert "GiB" in r.stdout and "GB" in r.stdout


def test_size_explain_is_a_worked_example(runner, app):
    r = runner.invoke(app, ["size", "gpt-oss-20b", "--explain"])
    assert r.exit_code == 0
    assert "experts: 24 layers × 32 experts × (5760×2880 + 2880×2880) weights × 4.25 bits" in r.stdout


def test_unknown_model_one_line_with_close_match(runner, app):
    r = runner.invoke(app, ["size", "gpt-oss-2b"])
    assert r.exit_code == 1
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1
    assert "gpt-oss-20b" in err
    assert "Traceback" not in r.output


def test_unknown_recipe(runner, app):
    r = runner.invoke(app, ["size", "gpt-oss-20b", "--recipe", "q4_k_x"])
    assert r.exit_code == 1
    assert "q4_k_m" in r.stderr
