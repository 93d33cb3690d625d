"""Estimates: one module per family of terms, each term a small pure function. CORE.

The composition lives in ``fitcalc.core.estimate.footprint`` (``prepare``, ``drafts``,
``required_bytes``, ``estimate``); it is re-exported here lazily so that importing one term
module (``fitcalc.core.estimate.weights`` for `fitcalc size`) does not load the others.
"""

from __future__ import annotations

_EXPORTS = ("Prepared", "prepare", "drafts", "required_bytes", "estimate", "truncated_model", "Draft")


def __getattr__(name: str):
    if name in _EXPORTS:
        from fitcalc.core.estimate import footprint

        return getattr(footprint, name)
    raise AttributeError(f"module 'fitcalc.core.estimate' has no attribute {name!r}")


__all__ = list(_EXPORTS)
