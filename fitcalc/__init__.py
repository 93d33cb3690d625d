"""fitcalc: hardware-fit planner and memory calculator for large language models."""

__version__ = "0.1.0"
