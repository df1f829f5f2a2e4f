"""Thin Ray actors around the plain pipeline logic (coordination, reading, writing, offsets, DLQ).

Each actor holds one plain object and forwards to it: the logic is tested without Ray, the actors
on a real local Ray. Fault-tolerance options are set in one place (`options.py`).
"""
