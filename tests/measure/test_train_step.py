"""`fitcalc verify --train`: one real training step on the CPU, measured by tag, against `fitcalc train`."""

import pytest

pytest.importorskip("torch")

from fitcalc.core.errors import InputError  # noqa: E402
from fitcalc.core.estimate.training import TrainSetup  # noqa: E402
from fitcalc.edges import catalog  # noqa: E402
from fitcalc.edges.measure.train_step import verify_train  # noqa: E402
from tests.measure.tiny import tiny_gpt_oss, tiny_llama  # noqa: E402

ENGINE = catalog.load_engine("torch")


@pytest.mark.parametrize("kw", [
    dict(method="full", precision="bf16"),
    dict(method="lora"),
    dict(method="qlora"),
    dict(method="full", precision="fp32", checkpointing=True),
    dict(method="lora", optimizer="sgd", precision="bf16", checkpointing=True, checkpoint_every=2),
], ids=["full-bf16", "lora-mixed", "qlora", "full-fp32-ckpt", "lora-sgd-ckpt2"])
def test_measured_step_matches_the_terms(kw):
    r = verify_train(tiny_llama(2), TrainSetup(micro_batch=2, seq=64, **kw), 2, ENGINE)
    rows = {row.term.split(" ")[0]: row for row in r.rows}
    # weights, adapters, master weights and gradients are exact to the byte
    for tid, row in rows.items():
        if tid.startswith(("weights.", "master.", "grads.")):
            assert row.measured == row.predicted, tid
    assert r.ok, [(x.term, x.predicted, x.measured) for x in r.rows if not x.ok]
    # the activations alive at the loss, derived from the saved tensors, land within 5 % (their band is 20 %)
    assert abs(r.rows[-1].error) < 0.05, r.rows[-1]


def test_lora_adapter_bytes_by_hand():
    # tiny llama (H 256, 4 heads of 64, 2 KV heads, I 384), r 16, 2 layers, bf16 adapters:
    # q, o 16·(256+256) + k, v 16·(128+256) + gate, up, down 16·(384+256) = 16,384 + 12,288 + 30,720 = 59,392
    # params per layer; × 2 layers × 2 B = 237,568 B
    r = verify_train(tiny_llama(2), TrainSetup(method="lora", precision="bf16", micro_batch=1, seq=32), 2, ENGINE)
    row = next(x for x in r.rows if x.term == "weights.lora")
    assert row.measured == row.predicted == 237_568


def test_moe_is_refused_in_one_line():
    with pytest.raises(InputError, match="dense Llama-style") as e:
        verify_train(tiny_gpt_oss(2), TrainSetup(method="lora", seq=32), 1, ENGINE)
    assert "\n" not in str(e.value)


def test_cli_verify_train_json(tmp_path, runner, app):
    import json

    import yaml

    spec = tmp_path / "tiny-llama.yaml"
    spec.write_text(yaml.safe_dump(tiny_llama(2).model_dump(mode="json", exclude_none=True)))
    r = runner.invoke(app, ["verify", str(spec), "--train", "--method", "qlora", "--layers", "2", "--context", "32",
                            "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["layers"] == 2
    assert {row["term"] for row in doc["rows"]} >= {"weights.lora", "grads.trainable", "optimizer.states"}
