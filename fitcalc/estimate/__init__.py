"""Estimates: one module per family of terms, each term a small pure function. CORE."""
