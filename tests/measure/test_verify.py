"""`fitcalc verify` end to end on tiny models (CPU): JSON shape, exact weights and KV per recipe,
exit codes, bad input, OOM as a result, records, and the lazy torch import."""

import json
import re
import subprocess
import sys

import pytest
import yaml

torch = pytest.importorskip("torch", reason="the measure extra (PyTorch) is not installed")

from fitcalc import api
from fitcalc.core.estimate.weights import weights_breakdown
from fitcalc.core.formats import get_format
from fitcalc.core.recipes import resolve_recipe
from fitcalc.edges.measure.stack import Stack
from tests.measure.tiny import tiny_gpt_oss, tiny_llama, tiny_qwen_moe


def _spec_file(tmp_path, model):
    p = tmp_path / f"{model.id}.yaml"
    p.write_text(yaml.safe_dump(model.model_dump(mode="json", exclude_none=True), sort_keys=False))
    return str(p)


@pytest.fixture
def gpt_oss_file(tmp_path):
    return _spec_file(tmp_path, tiny_gpt_oss(4))


def test_verify_json_shape(runner, app, gpt_oss_file):
    r = runner.invoke(app, ["verify", gpt_oss_file, "--device", "cpu", "--context", "48", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert {"device", "terms", "peak"} <= set(doc)
    assert doc["device"]["kind"] == "cpu"
    for t in doc["terms"]:
        assert {"id", "predicted_bytes", "measured_bytes"} <= set(t)
    assert {"predicted_bytes", "measured_bytes"} <= set(doc["peak"])
    assert doc["settings"]["layers"] == 2  # default: one sliding + one full layer
    ids = [t["id"] for t in doc["terms"]]
    for needed in ("weights.experts", "weights.attention", "kv.full", "kv.sliding", "act.prefill", "act.logits",
                   "act.moe_routing", "act.dequant_scratch"):
        assert needed in ids
    assert "overhead.cuda_context" not in ids  # a CPU run has no CUDA context, predicted or measured


def test_verify_weights_and_kv_are_the_predicted_bytes(gpt_oss_file):
    r = api.verify(gpt_oss_file, device="cpu", layers=2, context=40, batch=2)
    rows = {t.id: t for t in r.terms}
    for tid, row in rows.items():
        if tid.startswith(("weights.", "kv.")):
            assert row.measured_bytes == row.predicted_bytes, tid
    # kv.sliding by hand: B 2 x min(W 8, C 40) x 1 sliding layer x 2 (K,V) x 2 KV heads x 32 x 2 B
    assert rows["kv.sliding"].measured_bytes == 2 * 8 * 2 * 2 * 32 * 2
    # kv.full: B 2 x C 40 x 1 full layer x 2 x 2 x 32 x 2 B
    assert rows["kv.full"].measured_bytes == 2 * 40 * 2 * 2 * 32 * 2
    # experts by hand: 2 layers x 8 experts x (256x128 + 128x128) weights x 4.25 bits + biases
    assert rows["weights.experts"].measured_bytes == 2 * 8 * (256 * 128 + 128 * 128) * 17 // 32 + 2 * 8 * (256 + 128) * 2
    assert r.ok and r.exit_code == 0


@pytest.mark.parametrize("recipe", ["bf16", "fp8", "fp8-block", "int8", "int4-awq", "int4-gptq", "nvfp4", "nf4"])
def test_stack_storage_equals_exact_weights_per_recipe(recipe):
    """Every tensor the stack builds, summed per group, equals weights_breakdown for the recipe."""
    model = tiny_llama(2)
    rec = resolve_recipe(model, recipe)
    from fitcalc.edges.measure.tracker import StorageTracker

    tr = StorageTracker()
    with torch.inference_mode(), tr:
        stack = Stack(model, rec, "cpu", tracker=tr)
        stack.build_weights()
    want = {f"weights.{g.name}": g.bytes for g in weights_breakdown(model, rec).groups}
    got = {k: v for k, v in tr.by_tag.items() if v}
    assert got == want
    assert stack.weight_bytes() == sum(want.values())


def test_moe_with_dense_layers_and_shared_experts_verifies(tmp_path):
    r = api.verify(_spec_file(tmp_path, tiny_qwen_moe(3)), device="cpu", context=32)
    assert r.settings.layers == 2  # layer 0 dense, layer 1 MoE: both signatures
    assert r.extrapolation is not None and r.extrapolation.missing_signatures == []
    assert all(t.measured_bytes == t.predicted_bytes for t in r.terms if t.id.startswith(("weights.", "kv.")))


def test_extrapolation_reports_the_whole_model(gpt_oss_file):
    r = api.verify(gpt_oss_file, device="cpu", layers=2, context=32)
    x = r.extrapolation
    assert x.layers == 4
    rows = {t.id: t for t in x.terms}
    assert rows["weights.experts"].measured_bytes == rows["weights.experts"].predicted_bytes  # 2 layers x 2


def test_no_embeddings_drops_embedding_lm_head_and_logits(gpt_oss_file):
    r = api.verify(gpt_oss_file, device="cpu", layers=2, context=32, include_embeddings=False)
    ids = {t.id for t in r.terms}
    assert not ids & {"weights.embedding", "weights.lm_head", "act.logits"}
    assert r.ok, r.failures


def test_out_of_tolerance_exits_4(runner, app, gpt_oss_file):
    r = runner.invoke(app, ["verify", gpt_oss_file, "--device", "cpu", "--context", "32", "--tolerance", "act=0:0"])
    assert r.exit_code == 4, r.output
    assert "OUT OF TOLERANCE" in r.stdout


def test_progress_names_phases_with_elapsed_time_and_work_done(runner, app, gpt_oss_file, monkeypatch):
    """Issue #16: verify's phases, the seconds since the start and the work done inside a phase, on
    stderr for a person watching; nothing when stdout is not a terminal (CliRunner's is a buffer)."""
    import fitcalc.edges.measure.harness as harness

    quiet = runner.invoke(app, ["verify", gpt_oss_file, "--device", "cpu", "--context", "32"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    monkeypatch.setattr("fitcalc.shell.render.shows_progress", lambda json_out=False: not json_out)
    monkeypatch.setattr(harness, "_every", lambda say, seconds: say)  # every tick, not one a second
    r = runner.invoke(app, ["verify", gpt_oss_file, "--device", "cpu", "--context", "32"])
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    assert all(re.match(r"verify \[ *\d+\.\d s\] ", line) for line in lines), lines
    said = "\n".join(lines)
    for phase in ("weights …", "kv …", "prefill …", "decode …"):
        assert phase in said
    assert re.search(r"weights: \d+ of \d+ tensor entries built", said)
    assert "prefill: 31 of 31 tokens" in said  # context 32: a 31-token prompt, then one decode step
    assert "verify [" not in r.stdout


def test_oom_is_a_result_with_its_own_exit_code(runner, app, gpt_oss_file, monkeypatch):
    def boom(self, *a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Stack, "prefill", boom)
    r = runner.invoke(app, ["verify", gpt_oss_file, "--device", "cpu", "--context", "32"])
    assert r.exit_code == 5, r.output
    assert "DOES NOT FIT, measured at prefill" in r.stdout and "Traceback" not in r.output
    j = runner.invoke(app, ["verify", gpt_oss_file, "--device", "cpu", "--context", "32", "--json"])
    doc = json.loads(j.stdout)
    assert j.exit_code == 5 and doc["oom"]["phase"] == "prefill" and doc["peak"]["measured_bytes"] is None


def test_record_appends_one_line_per_run(tmp_path, gpt_oss_file):
    rec = tmp_path / "runs.jsonl"
    api.verify(gpt_oss_file, device="cpu", context=32, record=str(rec))
    api.verify(gpt_oss_file, device="cpu", context=32, batch=2, record=str(rec))
    lines = [json.loads(x) for x in rec.read_text().splitlines()]
    assert len(lines) == 2
    for key in ("date", "device", "driver", "torch", "cuda", "model", "settings", "terms", "peak"):
        assert key in lines[0]
    assert lines[1]["settings"]["batch"] == 2
    assert all({"id", "predicted_bytes", "measured_bytes"} <= set(t) for t in lines[0]["terms"])


@pytest.mark.parametrize("args,needle", [
    (["--layers", "0"], "--layers"),
    (["--layers", "5"], "4 decoder layers"),
    (["--layers", "two"], "--layers"),
    (["--context", "1"], "--context"),
    (["--batch", "0"], "--batch"),
    (["--recipe", "q4_k_m"], "does not build"),
    (["--kv-dtype", "q8_0"], "kv"),
    (["--device", "tpu"], "--device"),
    (["--tolerance", "act"], "tolerance"),
])
def test_bad_input_is_one_line(runner, app, gpt_oss_file, args, needle):
    r = runner.invoke(app, ["verify", gpt_oss_file, *args])
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle.lower() in lines[0].lower(), r.stderr
    assert "Traceback" not in r.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_one_line(runner, app, gpt_oss_file):
    r = runner.invoke(app, ["verify", gpt_oss_file, "--device", "cuda"])
    assert r.exit_code == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "cuda" in r.stderr.lower()


def test_stack_larger_than_ram_is_refused_up_front(runner, app):
    # gpt-oss-20b, all 24 layers, 128k context x 64 sequences: KV alone is ~3 TB, far beyond RAM
    r = runner.invoke(app, ["verify", "gpt-oss-20b", "--device", "cpu", "--layers", "all", "--context", "128k",
                            "--batch", "64"])
    assert r.exit_code == 1
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "predicted to need" in line and "--force" in line


def test_unbuildable_architectures_are_refused():
    from tests.archs import deepseek_v3

    r = subprocess.run([sys.executable, "-c", "from fitcalc.edges.measure import check_buildable\n"
                        "from tests.archs import deepseek_v3\ncheck_buildable(deepseek_v3())"],
                       capture_output=True, text=True)
    assert "multi-head latent attention" in r.stderr
    assert deepseek_v3().architecture.mla is not None


def test_without_torch_verify_says_how_to_install(tmp_path):
    code = ("import sys\nsys.modules['torch'] = None\n"  # an import of torch now fails as if absent
            "from typer.testing import CliRunner\nfrom fitcalc.shell.cli import app\n"
            "r = CliRunner().invoke(app, ['verify', 'gpt-oss-20b', '--device', 'cpu'])\n"
            "print(r.exit_code)\nprint(r.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rc, msg = out.stdout.split("\n", 1)
    assert rc == "1" and "pip install 'fitcalc[measure]'" in msg and "Traceback" not in msg


@pytest.mark.parametrize("argv", [["--help"], ["verify", "--help"], ["fit", "gpt-oss-20b", "--gpu", "24GiB"]])
def test_only_verify_runs_import_torch(argv):
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom fitcalc.shell.cli import app\n"
            f"r = CliRunner().invoke(app, {argv!r})\nassert r.exit_code == 0, r.output\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_format_layouts_are_the_checkpoint_dtypes():
    """The tensors of a packed matrix are the dtypes checkpoints store (not bf16 stand-ins)."""
    from fitcalc.edges.measure.packed import build_packed

    dtypes = {fid: {k: v.dtype for k, v in build_packed(fid, 128, 256, 0, "cpu").parts.items()}
              for fid in ("mxfp4", "nvfp4", "int4-awq", "int4-gptq", "fp8-block128")}
    assert dtypes["mxfp4"] == {"blocks": torch.uint8, "scales": torch.uint8}
    assert dtypes["nvfp4"] == {"weight": torch.uint8, "weight_scale": torch.float8_e4m3fn,
                               "weight_scale_2": torch.float32, "input_scale": torch.float32}
    assert dtypes["int4-awq"] == {"qweight": torch.int32, "qzeros": torch.int32, "scales": torch.float16}
    assert dtypes["int4-gptq"]["g_idx"] == torch.int32
    assert dtypes["fp8-block128"] == {"weight": torch.float8_e4m3fn, "weight_scale_inv": torch.float32}
    assert get_format("mxfp4").matrix_bytes(128, 256) == 128 * 256 // 2 + 128 * 256 // 32
