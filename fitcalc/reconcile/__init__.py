"""`fitcalc reconcile`: read an engine's start-up log, predict every figure it prints, keep the residuals.

``parsers`` (core) reads lines into a ``ParsedLog``; ``compare`` (core) predicts the same figures
with fitcalc; ``read`` (edge) streams a log file within fixed bounds. ``fitcalc.api.reconcile``
puts them together. docs/reconcile.md describes the formats and the calibration store.
"""
