"""A measured training step against `fitcalc train`'s terms. CORE.

`fitcalc verify MODEL --train` builds the first layers of MODEL, runs one forward, backward and
optimizer step, and reads the live tensor bytes by tag at four moments (fitcalc.edges.measure.train_step):

    after build      weights.<group>, weights.lora, master.fp32
    at the loss      the activations alive then (saved tensors, the head, logits, loss buffers)
    after backward   grads.trainable (activations freed)
    after the step   optimizer.states

Each is compared with the same terms of the prediction for the same truncated model; exact terms
must match to the byte (up to the optimizer's per-tensor step counters), activations within the
band their terms carry.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fitcalc.core.estimate.terms import Footprint

# torch.optim keeps state["step"] as a float32 scalar tensor per parameter tensor (4 bytes each):
# not an optimizer state of the formula, allowed as slack on optimizer.states.
STEP_COUNTER_BYTES = 4
_FORWARD_ACT = ("act.layers", "act.attention_scores", "act.head", "act.logits")


class TrainRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    term: str  # a term id, or a sum of them ("act.layers + act.head + act.logits")
    predicted: int
    measured: int
    tolerance: float  # relative
    slack_bytes: int = 0  # absolute allowance on top (step counters)

    @property
    def error(self) -> float:
        return (self.measured - self.predicted) / self.predicted if self.predicted else 0.0

    @property
    def ok(self) -> bool:
        return abs(self.measured - self.predicted) <= self.tolerance * self.predicted + self.slack_bytes


class TrainVerifyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    layers: int
    device: str
    setup_text: str
    rows: list[TrainRow]
    peak_measured: int  # highest live tensor bytes over the whole step
    predicted_total: int  # the prediction's sum, overhead terms left out (none on a CPU)
    notes: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 4  # docs/cli.md: 4 = a measured term outside its tolerance


def compare_train(predicted: Footprint, measured: dict[str, int], tensors: int) -> list[TrainRow]:
    """Rows for every term the measurement reads. ``measured`` maps term ids (and "act.forward") to bytes;
    ``tensors`` is the number of trainable tensors (one step counter each)."""
    rows = []
    weights = [t for t in predicted.terms if t.id.startswith("weights.") and t.id not in ("weights.gathered",)]
    for t in weights:
        rows.append(TrainRow(term=t.id, predicted=t.bytes, measured=measured.get(t.id, 0), tolerance=0.0))
    for tid, slack in (("master.fp32", 0), ("grads.trainable", 0), ("optimizer.states", tensors * STEP_COUNTER_BYTES)):
        t = predicted.term(tid)
        if t is not None:
            rows.append(TrainRow(term=tid, predicted=t.bytes, measured=measured.get(tid, 0), tolerance=t.band,
                                 slack_bytes=slack))
    rows.append(forward_row(predicted, measured.get("act.forward", 0)))
    return rows


def forward_row(predicted: Footprint, measured: int) -> TrainRow:
    """The activations alive at the loss: what the layers saved, the head, and the loss over the vocabulary.
    The transients inside a layer (act.recompute, act.dequant) are gone by then and are not compared."""
    act = [t for t in predicted.terms if t.id in _FORWARD_ACT]
    return TrainRow(term=" + ".join(t.id for t in act), predicted=sum(t.bytes for t in act), measured=measured,
                    tolerance=max(t.band for t in act))
