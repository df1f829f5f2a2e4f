"""A destination that reports its commits to the observer, built inside the writer actors.

It wraps what the destination factory builds, so the writers (not ours to change) report without
knowing: every table batch written (rows, seconds until committed) and every offset committed.
Reports are fire-and-forget actor calls (one per table batch): the write path never waits for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: the destination methods that write one table batch in one transaction
_TIMED = ("write", "write_prepared")


@dataclass(frozen=True)
class ObservedFactory:
    """A destination factory whose destinations report to `observer` (an ObserverActor handle)."""

    factory: Callable[[], Any]
    observer: Any

    def __call__(self):
        return ObservedDestination(self.factory(), self.observer)


class ObservedDestination:
    """Forwards everything to `inner`; `write`/`write_prepared` exist exactly when `inner` has them
    (the writer and transform stage test for `write_prepared`/`prepare`)."""

    def __init__(self, inner, observer):
        self._inner = inner
        self._observer = observer

    def __getattr__(self, name: str):
        value = getattr(self._inner, name)
        return _timed(self, name, value) if name in _TIMED else value

    def committed_offsets(self):
        offsets = self._inner.committed_offsets()
        self._observer.committed.remote(self._inner.name, list(offsets.values()), at_start=True)
        return offsets

    def commit_offsets(self, offsets) -> None:
        self._inner.commit_offsets(offsets)
        self._report_offsets(offsets)

    def _report_offsets(self, offsets) -> None:
        if offsets:
            self._observer.committed.remote(self._inner.name, list(offsets))

    def _report_write(self, table: str, rows: int, seconds: float) -> None:
        self._observer.written.remote(self._inner.name, table, rows, seconds)


def _timed(observed: ObservedDestination, name: str, method: Callable) -> Callable:
    # write(table, batch, offsets) and write_prepared(prepared, offsets): the offsets come last
    def call(first, *args, **kwargs):
        started = time.perf_counter()
        result = method(first, *args, **kwargs)
        observed._report_write(table_name(first), result.rows, time.perf_counter() - started)
        observed._report_offsets(kwargs["offsets"] if "offsets" in kwargs else args[-1])
        return result

    call.__name__ = name
    return call


def table_name(table_or_prepared) -> str:
    """`keyspace.table` of what `write` (a TableSchema) or `write_prepared` (a destination's prepared
    batch: ClickHouse's has `.table`, PostgreSQL's `.names.table`) was given."""
    names = getattr(table_or_prepared, "names", None)
    for candidate in (table_or_prepared, getattr(table_or_prepared, "table", None), getattr(names, "table", None)):
        qualified = getattr(candidate, "qualified_name", None)
        if isinstance(qualified, str):
            return qualified
    return "unknown"
