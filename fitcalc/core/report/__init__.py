"""Report specs, the scenario matrix, assertions and baselines: the pure half of `report` and `check`.

``fitcalc.edges.report`` reads spec files and writes the outputs.
"""
