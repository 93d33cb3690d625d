"""CORE: the arithmetic. pydantic models and pure functions over them.

Every module under fitcalc/core/ imports only the standard library, pydantic and other core
modules: no torch, typer, rich or yaml, no file or network I/O, no printing, no clock
(tests/test_core_purity.py walks this folder and keeps it so). docs/architecture.md draws the layers.
"""
