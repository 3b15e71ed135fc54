"""A patient's record and the runs over it: case model, results store, batch runner, command line.

Uses :mod:`imaging` (and later :mod:`clinical`); never imported by them.
"""
