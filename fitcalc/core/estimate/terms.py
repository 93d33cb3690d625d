"""Terms and footprints: every number of an estimate, with its formula, inputs, kind and source. CORE.

A ``Term`` is one addend of a footprint (``weights.experts``, ``kv.full``, ``overhead.cuda_context``).
Its ``id`` is stable: it appears in JSON, reports, ``docs/formulas.md`` and in the comparison with
measurements. ``kind`` says how much to trust it, and ``band`` is its relative uncertainty (±).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TermKind = Literal["exact", "derived", "engine_constant", "heuristic", "measured", "calibrated", "coarse"]
Placement = Literal["gpu", "cpu", "disk"]

# Default relative uncertainty by kind, used when a term does not set its own band.
# exact: arithmetic on published shapes and formats; derived: arithmetic on an engine rule we
# mirror; engine_constant: a constant read from engine code/logs; heuristic: a fitted or rule-of-thumb
# figure; coarse: totals-only arithmetic (shares rounded by whoever published them).
DEFAULT_BAND: dict[str, float] = {
    "exact": 0.0, "derived": 0.01, "engine_constant": 0.10, "heuristic": 0.30, "measured": 0.05,
    "calibrated": 0.10, "coarse": 0.05,
}


class Term(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    label: str
    bytes: int
    placement: Placement = "gpu"
    kind: TermKind = "exact"
    band: float = 0.0
    formula: str = ""
    inputs: dict[str, int | float | str] = Field(default_factory=dict)
    explain: str = ""  # the formula with the numbers put in: a worked example
    sources: tuple[str, ...] = ()

    @property
    def uncertainty_bytes(self) -> int:
        return int(abs(self.bytes) * self.band)


def make_term(id: str, label: str, bytes: int, *, kind: TermKind = "exact", band: float | None = None,
              formula: str = "", inputs: dict | None = None, explain: str = "", sources: tuple[str, ...] = (),
              placement: Placement = "gpu") -> Term:
    """Build a Term without re-validating (the arithmetic that made it is typed already); fast path."""
    return Term.model_construct(
        id=id, label=label, bytes=int(bytes), placement=placement, kind=kind,
        band=DEFAULT_BAND[kind] if band is None else band, formula=formula, inputs=inputs or {},
        explain=explain, sources=tuple(sources),
    )


class Footprint(BaseModel):
    """A list of terms and their sum, per placement."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    terms: list[Term]

    @property
    def total_bytes(self) -> int:
        return sum(t.bytes for t in self.terms)

    def on(self, placement: Placement) -> int:
        return sum(t.bytes for t in self.terms if t.placement == placement)

    def term(self, term_id: str) -> Term | None:
        for t in self.terms:
            if t.id == term_id:
                return t
        return None

    def by_prefix(self, prefix: str) -> int:
        return sum(t.bytes for t in self.terms if t.id == prefix or t.id.startswith(prefix + "."))

    @property
    def uncertainty_bytes(self) -> int:
        return sum(t.uncertainty_bytes for t in self.terms)
