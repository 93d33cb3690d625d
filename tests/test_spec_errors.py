"""Bad model-spec files through the CLI: one line on stderr naming the file and the field, exit 1.

Each case starts from a small valid spec (``GOOD``), breaks one thing, writes it under tmp_path and
runs ``fitcalc size <file>`` through typer's CliRunner.
"""

from __future__ import annotations

import json

import pytest

GOOD = """\
schema_version: 1
id: tiny-test
display_name: tiny test model
architecture:
  family: llama
  num_hidden_layers: 2
  hidden_size: 64
  intermediate_size: 128
  vocab_size: 1000
  num_attention_heads: 4
  num_key_value_heads: 2
  max_position_embeddings: 2048
native_recipe:
  id: native
  rules: {default: bf16}
sources:
  - kind: derived
    citation: written for this test
"""


def _run(runner, app, tmp_path, text: str | None = None, name: str = "spec.yaml", sparse: int | None = None):
    path = tmp_path / name
    if sparse is not None:
        with open(path, "wb") as f:
            f.truncate(sparse)  # a sparse file: the size is reported, no blocks are written
    else:
        path.write_text(text if text is not None else GOOD, encoding="utf-8")
    return path, runner.invoke(app, ["size", str(path)])


def _assert_one_line_error(result, path, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert str(path) in line
    for needle in needles:
        assert needle in line, line
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    return line


def test_the_good_spec_is_good(runner, app, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD, encoding="utf-8")
    r = runner.invoke(app, ["size", str(path), "--json"])
    assert r.exit_code == 0, r.output
    assert r.stderr == ""
    # head_dim 64/4 = 16, so k and v are 2*16 = 32 wide. 2 layers x (q, o 64x64 + k, v 32x64
    # + gate, up, down 128x64 + 2 norms of 64) + embedding and lm_head 1000x64 + final norm 64
    assert json.loads(r.stdout)["params_total"] == 2 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 128 * 64 + 2 * 64) \
        + 2 * 1000 * 64 + 64


@pytest.mark.parametrize(
    ("old", "new", "field", "what"),
    [
        pytest.param("  family: llama\n", "  family: llama\n  qk_normm: true\n", "architecture.qk_normm",
                     "unknown field", id="unknown-field"),
        pytest.param("display_name: tiny test model\n", "display_name: tiny test model\nhf_repoo: a/b\n",
                     "hf_repoo", "unknown field", id="unknown-top-level-field"),
        pytest.param("  num_hidden_layers: 2\n", "", "architecture.num_hidden_layers", "missing",
                     id="missing-field"),
        pytest.param("native_recipe:\n  id: native\n  rules: {default: bf16}\n", "", "native_recipe", "missing",
                     id="missing-block"),
        pytest.param("  hidden_size: 64\n", "  hidden_size: 0\n", "architecture.hidden_size",
                     "greater than 0", id="zero-size"),
        pytest.param("  vocab_size: 1000\n", "  vocab_size: -1000\n", "architecture.vocab_size",
                     "greater than 0", id="negative-size"),
        pytest.param("  num_key_value_heads: 2\n", "  num_key_value_heads: 3\n", "architecture.num_key_value_heads",
                     "not divisible", id="heads-not-divisible-by-kv-heads"),
        pytest.param("  vocab_size: 1000\n", "  vocab_size: 1000\n  vocab_size: 2000\n", "architecture.vocab_size",
                     "duplicate key", id="duplicate-key"),
        pytest.param("id: tiny-test\n", "id: tiny-test\nid: tiny-test-2\n", "id", "duplicate key",
                     id="duplicate-top-level-key"),
        pytest.param("  hidden_size: 64\n", "  hidden_size: sixty-four\n", "architecture.hidden_size",
                     "integer", id="not-a-number"),
    ],
)
def test_bad_field(runner, app, tmp_path, old, new, field, what):
    assert old in GOOD
    path, r = _run(runner, app, tmp_path, GOOD.replace(old, new))
    line = _assert_one_line_error(r, path, what)
    assert f": {field}: " in line, line


def test_duplicate_key_names_both_lines(runner, app, tmp_path):
    path, r = _run(runner, app, tmp_path, GOOD.replace("  vocab_size: 1000\n", "  vocab_size: 1000\n  vocab_size: 1000\n"))
    # vocab_size is on line 9 of GOOD; the copy on line 10
    _assert_one_line_error(r, path, "architecture.vocab_size", "lines 9 and 10")


def test_a_100_mb_file_is_refused_before_reading(runner, app, tmp_path):
    path, r = _run(runner, app, tmp_path, sparse=100 * 2**20)
    _assert_one_line_error(r, path, "104,857,600 bytes", "limit")


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        pytest.param("id: [unclosed\n  ::: {\n", ("not valid YAML", "line "), id="broken-yaml"),
        pytest.param("just a sentence, not a mapping\n", ("expected a mapping",), id="scalar"),
        pytest.param("- a\n- list\n", ("expected a mapping",), id="list"),
        pytest.param("", ("expected a mapping",), id="empty"),
    ],
)
def test_not_a_spec(runner, app, tmp_path, text, needles):
    path, r = _run(runner, app, tmp_path, text)
    _assert_one_line_error(r, path, *needles)


def test_binary_file(runner, app, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"\xff\xfe\x00binary")
    r = runner.invoke(app, ["size", str(path)])
    _assert_one_line_error(r, path, "not UTF-8")


def test_the_example_in_the_docs_is_a_valid_spec(runner, app, tmp_path):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-files.md").read_text(encoding="utf-8")
    example = doc.split("### Example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example, encoding="utf-8")
    r = runner.invoke(app, ["size", str(path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["disk_bytes"] == 16_381_470_720  # the Qwen3-8B index total_size


def test_yaml_aliases_are_walked_once(runner, app, tmp_path):
    # A self-referencing alias and a fan-out of aliases: the duplicate-key walk must neither
    # recurse forever nor expand the aliases. Since issue #17 the file is refused for the aliases
    # themselves (an alias of its own parent; 9^9 values once expanded), before anything is built.
    text = "notes: &n [*n]\n" + "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi"))
    path, r = _run(runner, app, tmp_path, GOOD + text)
    _assert_one_line_error(r, path, "expands to more than 100,000 values")
