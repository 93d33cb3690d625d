"""`fitcalc report` and `check`, the edge half: reading spec files (``load``) and writing outputs
(``output``, ``writers``). The spec, matrix and assertions are pure: ``fitcalc.core.report``.
"""
