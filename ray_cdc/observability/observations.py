"""What the writers' destinations report while the pipeline runs, accumulated across passes.

The pipeline's actors live for one pass; the health API must answer between passes too and its
counters must only grow, so the writers' destinations report every commit here (`observed.py`,
through the long-lived `ObserverActor`): rows per destination and table, the time each batch took
to commit, and the offsets committed.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ray_cdc.offsets import Offset
from ray_cdc.snapshot.progress import is_snapshot_offset

#: upper bounds (seconds) of the batch commit latency histogram's buckets
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: rows/s is measured over this many seconds of commits
RATE_WINDOW = 60.0


@dataclass
class Histogram:
    """Counts per bucket (not cumulative), the last one for values above every bound."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds


@dataclass(frozen=True)
class Snapshot:
    """A copy of the observations at one moment (picklable: it leaves the actor)."""

    rows: dict[tuple[str, str], int]  # (destination, keyspace.table) -> rows applied
    commits: dict[str, int]  # destination -> table batches committed
    latency: dict[str, Histogram]  # destination -> batch commit seconds
    rows_per_second: dict[str, float]
    segments_completed: dict[str, int]  # destination -> segments it finished since the start (not snapshot ranges)
    committed: dict[str, dict[str, Offset]]  # destination -> partition id -> offset


class Observations:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._started = clock()
        self._rows: dict[tuple[str, str], int] = {}
        self._commits: dict[str, int] = {}
        self._latency: dict[str, Histogram] = {}
        self._recent: dict[str, deque[tuple[float, int]]] = {}
        self._completed: dict[str, int] = {}
        self._committed: dict[str, dict[str, Offset]] = {}

    def written(self, destination: str, table: str, rows: int, seconds: float) -> None:
        """One table batch committed (`rows` applied, `seconds` from the call to the commit)."""
        key = (destination, table)
        self._rows[key] = self._rows.get(key, 0) + rows
        self._commits[destination] = self._commits.get(destination, 0) + 1
        self._latency.setdefault(destination, Histogram()).observe(seconds)
        now = self._clock()
        self._recent.setdefault(destination, deque()).append((now, rows))
        self._forget_before(destination, now)  # bounded even when nobody asks for the rate

    def committed(self, destination: str, offsets: Iterable[Offset], *, at_start: bool = False) -> None:
        """Offsets the destination just committed, or (`at_start`) found when its writer started: those
        are not counted as segments completed now. Reports from successive writers of a destination
        may arrive out of order: the furthest offset is kept."""
        book = self._committed.setdefault(destination, {})
        for offset in offsets:
            current = book.get(offset.partition_id)
            if current is not None and _order(current) >= _order(offset):
                continue
            if offset.completed and not at_start and not is_snapshot_offset(offset):
                self._completed[destination] = self._completed.get(destination, 0) + 1
            book[offset.partition_id] = offset

    def snapshot(self) -> Snapshot:
        now = self._clock()
        return Snapshot(dict(self._rows), dict(self._commits),
                        {d: Histogram(list(h.counts), h.total) for d, h in self._latency.items()},
                        {d: self._rate(d, now) for d in self._recent}, dict(self._completed),
                        {d: dict(book) for d, book in self._committed.items()})

    def _forget_before(self, destination: str, now: float) -> None:
        recent = self._recent[destination]
        while recent and recent[0][0] < now - RATE_WINDOW:
            recent.popleft()

    def _rate(self, destination: str, now: float) -> float:
        self._forget_before(destination, now)
        recent = self._recent[destination]
        span = max(1.0, min(RATE_WINDOW, now - self._started))  # a young pipeline: since its start
        return sum(rows for _, rows in recent) / span


def _order(offset: Offset) -> tuple[bool, int]:
    return offset.completed, offset.position
