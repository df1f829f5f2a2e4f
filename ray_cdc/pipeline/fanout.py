"""Fan-out of a reader's sets to the destinations: a bounded window per destination, and detaching.

Plain logic (the reader actor supplies `submit`/`collect` on Ray object refs; tests supply plain
functions). Each destination has at most `limit` sets in flight: a destination that is slow but
healthy fills its window and the reader waits for it (backpressure: memory holds at most
`limit` sets per destination, whatever the backlog). A destination whose writer *defers* a set (it
is down) is detached for the rest of the segment: the reader no longer waits for it, the others
keep going, and the coordinator queues the segment again for it alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

#: share of an object store the windows may fill: Ray spills objects to disk above 80% of it (slow,
#: and each spill worker is another process of ~250 MB), and the sets being read and transformed
#: need room beside the windows
STORE_SHARE = 0.7
#: a destination's own part of a set (its prepared form) next to the set's Arrow batches, at most
#: (measured on the wide workload, for a set of 16 MiB: PostgreSQL 15 MiB, ClickHouse 27 MiB)
PREPARED_FACTOR = 1.5


def fitted_window(requested: int, destinations: int, batch_bytes: int, store_bytes: float | None,
                  readers: int = 1) -> int:
    """Sets in flight per destination: `requested`, or fewer when that many sets of every
    destination would not fit the object store (`store_bytes`; None: unknown, `requested`).

    A set in flight holds its batches once (shared by the destinations) and each destination's
    prepared part; the writers' store receives the sets of all `readers`. At least one."""
    if store_bytes is None:
        return max(1, requested)
    per_set = batch_bytes * (1 + PREPARED_FACTOR * max(1, destinations)) * max(1, readers)
    return max(1, min(requested, int(store_bytes * STORE_SHARE // per_set)))


H = TypeVar("H")  # a handle on a set in flight (a Ray ObjectRef in the reader actor)


@dataclass
class LaneTotals:
    sets: int = 0
    rows: int = 0
    skipped_rows: int = 0
    dead_letters: int = 0


@dataclass
class Lanes(Generic[H]):
    destinations: Iterable[str]
    limit: int
    submit: Callable[[str, Any], H]  # (destination, set) -> handle
    collect: Callable[[H], Any]  # handle -> ApplyResult (blocks until the writer answered)
    deferred: dict[str, str] = field(default_factory=dict)  # destination -> why it was detached
    totals: dict[str, LaneTotals] = field(default_factory=dict)

    def __post_init__(self):
        self.limit = max(1, self.limit)
        self._windows: dict[str, deque[H]] = {name: deque() for name in self.destinations}
        self.totals = {name: LaneTotals() for name in self._windows}

    def attached(self) -> list[str]:
        return [name for name in self._windows if name not in self.deferred]

    def in_flight(self, name: str) -> int:
        return len(self._windows.get(name, ()))

    def idle(self) -> bool:
        """No set of these lanes is in flight any more (every answer is in)."""
        return not any(self._windows.values())

    def settle_oldest(self, name: str) -> None:
        """Wait for the oldest set in flight to `name` (when there is one): a reader's next segment
        makes room in the destination's window this way, the window being shared across segments."""
        window = self._windows.get(name)
        if window:
            self._settle(name, window.popleft())

    def poll(self, ready: Callable[[list[H]], Iterable[H]]) -> bool:
        """Settle, without waiting, the sets already answered (`ready`: those of the given handles
        that are done); each window in order. True when nothing is in flight any more."""
        for name, window in self._windows.items():
            if not window:
                continue
            done = set(ready(list(window)))
            while window and window[0] in done:
                self._settle(name, window.popleft())
        return self.idle()

    def send(self, item: Any) -> None:
        """Hand `item` to every attached destination, first waiting for room in its window."""
        for name, window in self._windows.items():
            while len(window) >= self.limit and name not in self.deferred:
                self._settle(name, window.popleft())
            if name not in self.deferred:
                window.append(self.submit(name, item))

    def drain(self) -> dict[str, str]:
        """Wait for every set in flight (a detached destination's answer at once: they are deferred
        by its writer's gap check); returns the detached destinations and why."""
        for name, window in self._windows.items():
            while window:
                self._settle(name, window.popleft())
        return dict(self.deferred)

    def _settle(self, name: str, handle: H) -> None:
        result = self.collect(handle)
        if result.status == "deferred":
            self.deferred.setdefault(name, result.reason)
            return
        totals = self.totals[name]
        totals.sets += 1
        totals.rows += result.rows
        totals.skipped_rows += result.skipped_rows
        totals.dead_letters += result.dead_letters
