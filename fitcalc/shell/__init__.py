"""SHELL: the terminal. ``cli`` parses options and picks exit codes; ``render`` draws results with rich.

The shell calls the facade ``fitcalc.api`` (one plain function per command) and nothing below it
does any printing. docs/architecture.md draws the layers.
"""
