"""`fitcalc reconcile`, the pure half: an engine's start-up log lines -> figures -> predictions.

``parsers`` reads lines into a ``ParsedLog``; ``compare`` predicts the same figures with fitcalc.
``fitcalc.edges.logfile`` streams a log file within fixed bounds; ``fitcalc.api.reconcile`` puts
them together. docs/reconcile.md describes the formats and the calibration store.
"""
