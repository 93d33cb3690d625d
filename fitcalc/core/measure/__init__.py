"""`fitcalc verify`, the pure half: the job a rank is given, prediction vs measurement, the result models.

The stack itself, the devices and the ranks live in ``fitcalc.edges.measure`` (the only place
torch is imported, lazily).
"""
