"""EDGES: each module turns one kind of effect into core models or back.

Reading files and the Hub (ingest, catalog, logfile, report.load), devices (hardware, measure),
the calibration store, and writing outputs (report.output, report.writers). Edges import the core;
the core never imports an edge. docs/architecture.md draws the layers.
"""
