"""SQL string literals (offsets are selected by destination name).

Keys never travel as SQL text: a batch's keys are inserted into Memory tables and selected with
`IN (SELECT ...)` (`store.py`).
"""

from __future__ import annotations

_ESCAPES = {ord("\\"): "\\\\", ord("'"): "\\'"}


def _string(value: str) -> str:
    return "'" + value.translate(_ESCAPES) + "'"
