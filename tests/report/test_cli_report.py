"""`fitcalc report` and `fitcalc check` through the CLI: golden Markdown and JSON, formats, exit codes,
JUnit parsed back, baselines, and bad input (one line, exit 1, no output file)."""

import json
import os
import re
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL = "tests/golden/report-small.yaml"


@pytest.fixture(autouse=True)
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the report names its spec as given: a relative path keeps goldens stable


def one_error_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.output
    return lines[0]


# ---- golden files -------------------------------------------------------------------------------


def test_markdown_golden(runner, app, golden):
    r = runner.invoke(app, ["report", SMALL])
    assert r.exit_code == 0, r.output
    golden("report-small.md", r.stdout)


def test_json_golden(runner, app, golden, tmp_path):
    out = tmp_path / "r.json"
    r = runner.invoke(app, ["report", SMALL, "-o", str(out)])
    assert r.exit_code == 0, r.output
    golden("report-small.json", out.read_text())


def test_json_numbers_carry_their_ids_and_add_up(runner, app, tmp_path):
    out = tmp_path / "r.json"
    assert runner.invoke(app, ["report", SMALL, "-o", str(out)]).exit_code == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == "fitcalc-report" and doc["format_version"] == 1
    # 3 GPUs x 2 contexts x 2 engines + 2 named scenarios
    assert doc["summary"]["scenarios"] == len(doc["scenarios"]) == 14
    for s in doc["scenarios"]:
        assert sum(t["bytes"] for t in s["terms"]) == s["required_bytes"]
        assert s["headroom_bytes"] == s["available_bytes"] - s["required_bytes"]
        assert all(set(t) == {"id", "bytes", "kind", "band"} for t in s["terms"])
        assert set(s["plan"]) == {"decode_tokens_per_s", "decode_tokens_per_s_total", "prefill_s", "prompt_tokens",
                                  "max_batch", "max_batch_bound", "gpus_needed", "max_gpus", "layout",
                                  "speed_status", "speed_note"}
    first = doc["scenarios"][0]
    assert first["gpu"] == "16GiB" and first["available_bytes"] == 16 * 2**30
    by_name = {s["name"]: s for s in doc["scenarios"]}
    assert by_name["gpt-oss-20b @ 12GiB:2 ctx=8192 batch=1 engine=llama.cpp recipe=native kv=auto"]["count"] == 2
    assert {a["assertion"] for a in doc["assertions"]} == {"must_fit", "max_vram", "min_context", "min_headroom",
                                                            "min_decode_tokens_per_s"}


def test_yaml_has_the_same_document(runner, app, tmp_path):
    import yaml

    jy, yy = tmp_path / "r.json", tmp_path / "r.yaml"
    assert runner.invoke(app, ["report", SMALL, "-o", str(jy)]).exit_code == 0
    assert runner.invoke(app, ["report", SMALL, "-o", str(yy)]).exit_code == 0
    assert yaml.safe_load(yy.read_text()) == json.loads(jy.read_text())


def test_format_option_beats_the_suffix_and_stdout_is_markdown(runner, app, tmp_path):
    out = tmp_path / "report.txt"
    r = runner.invoke(app, ["report", SMALL, "-o", str(out), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["title"] == "gpt-oss-20b on two budgets"
    r = runner.invoke(app, ["report", SMALL, "-o", "-", "--format", "json"])
    assert json.loads(r.stdout)["summary"]["scenarios"] == 14


def test_report_does_not_import_matplotlib_or_torch_for_text_formats(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom fitcalc.shell.cli import app\nfrom typer.testing import CliRunner\n"
            f"r = CliRunner().invoke(app, ['report', {SMALL!r}, '-o', {str(tmp_path / 'r.json')!r}])\n"
            "assert r.exit_code == 0, r.output\n"
            "print('matplotlib' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False False"


# ---- check: exit codes, lines, JUnit ---------------------------------------------------------------


def test_check_fails_with_exit_3_and_one_line_per_failure(runner, app):
    r = runner.invoke(app, ["check", SMALL])
    assert r.exit_code == 3, r.output  # docs/cli.md: 3 = an assertion failed
    lines = r.stdout.strip().splitlines()
    fails = [x for x in lines if x.startswith("FAIL ")]
    assert fails and all(": " in x for x in fails)
    # vLLM needs more than 16 GiB for gpt-oss-20b (its 0.9 memory fraction keeps 10% back)
    assert any(x.startswith("FAIL gpt-oss-20b @ 16GiB ctx=8192 batch=1 engine=vllm") and "must_fit" in x
               and "GiB" in x for x in fails)
    assert any(x.startswith("FAIL laptop-8g: must_fit: does not fit: needs ") for x in fails)
    assert lines[-1].endswith(f"{len(fails)} fail")


def test_check_passes_with_exit_0(runner, app, tmp_path):
    spec = tmp_path / "ok.yaml"
    spec.write_text("models: [gpt-oss-20b]\ngpus: [24GiB, 80000MB]\ncontexts: [8192, 32k]\nengines: [llama.cpp]\n"
                    "assert: {must_fit: true, min_context: 64k, max_vram: 20GiB}\n")
    r = runner.invoke(app, ["check", str(spec)])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "12 assertions over 4 scenarios: 12 hold, 0 fail"


def test_check_bad_spec_is_exit_1(runner, app, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\nasert: {must_fit: true}\n")
    r = runner.invoke(app, ["check", str(spec)])
    assert r.exit_code == 1
    assert "did you mean 'assert'" in one_error_line(r)


def test_check_without_assertions_is_exit_1(runner, app, tmp_path):
    spec = tmp_path / "none.yaml"
    spec.write_text("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\n")
    r = runner.invoke(app, ["check", str(spec)])
    assert r.exit_code == 1 and "no assertions" in one_error_line(r)


def test_junit_parses_back(runner, app, tmp_path):
    out = tmp_path / "junit.xml"
    r = runner.invoke(app, ["check", SMALL, "--junit", str(out)])
    assert r.exit_code == 3
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    failures = root.findall("./testsuite/testcase/failure")
    fail_lines = [x for x in r.stdout.splitlines() if x.startswith("FAIL ")]
    assert int(root.get("tests")) == len(cases) and int(root.get("failures")) == len(failures) == len(fail_lines)
    suites = {s.get("name") for s in root.findall("testsuite")}
    assert suites == {"assert", "scenarios[laptop-8g].assert", "scenarios[desk-4090].assert", "long-context-on-24g"}
    names = {c.get("name") for c in cases}
    assert "laptop-8g: max_vram" in names
    f = next(c for c in cases if c.get("name") == "laptop-8g: max_vram").find("failure")
    assert f is not None and "over the limit of 12.00 GiB" in f.get("message")


def test_junit_marks_unavailable_as_error(runner, app, tmp_path):
    spec = tmp_path / "speed.yaml"
    spec.write_text("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\n"
                    "assert: {min_decode_tokens_per_s: 30}\n")
    out = tmp_path / "junit.xml"
    r = runner.invoke(app, ["check", str(spec), "--junit", str(out)])
    assert r.exit_code == 3  # not available is not a pass
    assert "N/A " in r.stdout and "not available" in r.stdout
    root = ET.parse(out).getroot()
    assert root.get("errors") == "1" and root.get("failures") == "0"


# ---- baseline --------------------------------------------------------------------------------------


def test_baseline_shows_what_grew(runner, app, tmp_path):
    old = tmp_path / "old.json"
    assert runner.invoke(app, ["report", SMALL, "-o", str(old)]).exit_code == 0
    doc = json.loads(old.read_text())
    # Pretend the previous revision's experts were 1 GiB smaller in one scenario, and one row is gone.
    s = doc["scenarios"][0]
    for t in s["terms"]:
        if t["id"] == "weights.experts":
            t["bytes"] -= 2**30
    s["required_bytes"] -= 2**30
    doc["scenarios"].append(dict(doc["scenarios"][1], name="retired scenario"))
    old.write_text(json.dumps(doc))
    junit = tmp_path / "junit.xml"
    r = runner.invoke(app, ["check", SMALL, "--baseline", str(old), "--junit", str(junit)])
    assert r.exit_code == 3
    out = r.stdout
    assert "1 grew, 0 shrank" in out and "1 gone" in out
    grew = next(x for x in out.splitlines() if x.startswith("grew"))
    assert s["name"] in grew and "weights.experts +1.00 GiB" in grew and "(+1.00 GiB," in grew
    assert "gone   retired scenario" in out
    logged = ET.parse(junit).getroot().find("./testsuite/system-out")
    assert logged is not None and grew in logged.text


def test_baseline_that_is_not_a_report(runner, app, tmp_path):
    bad = tmp_path / "old.json"
    bad.write_text('{"hello": 1}')
    r = runner.invoke(app, ["check", SMALL, "--baseline", str(bad)])
    assert r.exit_code == 1 and "not a fitcalc JSON report" in one_error_line(r)


# ---- bad input: one line, exit 1, nothing written ------------------------------------------------


@pytest.mark.parametrize("spec_text,needle", [
    ("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [8192]\nengnes: [vllm]\n", "did you mean 'engines'"),
    ("models: [gpt-oss-20bb]\ngpus: [24GiB]\ncontexts: [8192]\n", "did you mean: gpt-oss-20b"),
    ("models: [gpt-oss-20b]\ngpus: []\ncontexts: [8192]\n", "empty matrix: gpus"),
    ("models: [gpt-oss-20b]\ngpus: [8GiB, 16GiB, 24GiB]\ncontexts: [1k, 2k, 4k, 8k]\nmax_scenarios: 10\n",
     "over the cap of 10"),
    ("models: [gpt-oss-20b\n", "not valid YAML"),
])
def test_bad_spec_one_line_no_output(runner, app, tmp_path, spec_text, needle):
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text)
    out = tmp_path / "report.html"
    r = runner.invoke(app, ["report", str(spec), "-o", str(out)])
    assert r.exit_code == 1, r.output
    line = one_error_line(r)
    assert needle in line and str(spec) in line, line
    assert list(tmp_path.iterdir()) == [spec]  # no output, no temporary file left behind


def test_cap_is_lifted_by_yes(runner, app, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("models: [gpt-oss-20b]\ngpus: [8GiB, 16GiB, 24GiB]\ncontexts: [1k, 2k, 4k, 8k]\n"
                    "max_scenarios: 10\n")
    r = runner.invoke(app, ["report", str(spec), "--yes", "-o", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    assert len(json.loads((tmp_path / "r.json").read_text())["scenarios"]) == 12


def test_unwritable_output_is_one_line(runner, app, tmp_path):
    (tmp_path / "afile").write_text("x")
    cases = [tmp_path / "afile" / "report.md"]  # under a regular file: nobody can create it
    if os.geteuid() != 0:  # root writes through permission bits; everyone else is refused here
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        cases.append(locked / "report.md")
    for target in cases:
        r = runner.invoke(app, ["report", SMALL, "-o", str(target)])
        assert r.exit_code == 1
        assert one_error_line(r).startswith(f"error: cannot write {target}")
        assert not target.exists()


def test_write_that_fails_late_is_one_line(runner, app):
    """A folder that passes the early check but refuses the file (procfs): the error comes at write time."""
    target = Path("/proc/fitcalc-report.md")
    if not Path("/proc").is_dir():
        pytest.skip("no /proc on this system")
    r = runner.invoke(app, ["report", SMALL, "-o", str(target)])
    assert r.exit_code == 1
    assert one_error_line(r).startswith(f"error: cannot write {target}")


def test_missing_output_folder_and_unknown_suffix(runner, app, tmp_path):
    r = runner.invoke(app, ["report", SMALL, "-o", str(tmp_path / "nope" / "r.md")])
    assert r.exit_code == 1 and "does not exist" in one_error_line(r)
    r = runner.invoke(app, ["report", SMALL, "-o", str(tmp_path / "r.docx")])
    assert r.exit_code == 1 and "cannot tell the format" in one_error_line(r)
    assert list(tmp_path.iterdir()) == []


def test_failed_render_keeps_the_previous_file(runner, app, tmp_path, monkeypatch):
    out = tmp_path / "r.md"
    out.write_text("previous report\n")
    import fitcalc.edges.report.writers.markdown as md

    def boom(report):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(md, "render_markdown", boom)
    r = runner.invoke(app, ["report", SMALL, "-o", str(out)])
    assert r.exit_code != 0
    assert out.read_text() == "previous report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]


def test_write_atomic_removes_its_temporary_file_on_failure(tmp_path, monkeypatch):
    from fitcalc.core.errors import InputError
    from fitcalc.edges.report import output

    target = tmp_path / "r.json"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(output.os, "replace", broken_replace)
    with pytest.raises(InputError, match="cannot write"):
        output.write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_written_file_has_ordinary_permissions(tmp_path):
    from fitcalc.edges.report import output

    target = tmp_path / "r.md"
    old = os.umask(0o022)
    try:
        output.write_atomic(target, "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_long_sweep_reports_progress_on_stderr_only(runner, app, tmp_path, monkeypatch):
    # 25 budgets x 20 contexts = 500 scenarios: a sweep that shows progress from its start
    spec = tmp_path / "sweep.yaml"
    gpus = ", ".join(f"{8 + i}GiB" for i in range(25))
    contexts = ", ".join(str(1024 * (i + 1)) for i in range(20))
    spec.write_text(f"models: [gpt-oss-20b]\ngpus: [{gpus}]\ncontexts: [{contexts}]\nengines: [llama.cpp]\n")
    # stdout not a terminal (CliRunner's is a buffer): silent, stdout is the document alone
    r = runner.invoke(app, ["report", str(spec), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["summary"]["scenarios"] == 500
    assert r.stderr == ""
    # a person watching (stdout a terminal): the closing line on stderr, stdout unchanged
    monkeypatch.setattr("fitcalc.shell.render.shows_progress", lambda json_out=False: not json_out)
    r = runner.invoke(app, ["report", str(spec), "--format", "json"])
    assert json.loads(r.stdout)["summary"]["scenarios"] == 500
    assert r.stderr.startswith("evaluated 500 scenarios in ")


def test_a_sweep_over_a_second_shows_progress_and_the_chart_phase(runner, app, tmp_path, monkeypatch):
    # issue #16: the 243-scenario seed sweep ran ~10 s in silence. Any sweep past PROGRESS_AFTER_S says
    # so (here the threshold is 0 s, so a 2-scenario sweep stands in for a slow one).
    spec = tmp_path / "small.yaml"
    spec.write_text("models: [gpt-oss-20b]\ngpus: [24GiB]\ncontexts: [4096, 8192]\nengines: [llama.cpp]\n")
    monkeypatch.setattr("fitcalc.shell.render.shows_progress", lambda json_out=False: not json_out)
    monkeypatch.setattr("fitcalc.shell.render.PROGRESS_AFTER_S", 0.0)
    r = runner.invoke(app, ["report", str(spec), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    assert lines[0].startswith("evaluated 2 scenarios in ")
    assert re.match(r"report \[ *\d+\.\d s\] drawing the charts of 2 scenarios", lines[1]), lines
