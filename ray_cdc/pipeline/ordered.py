"""One thread that runs a writer's loads one at a time, each caller's in the order it sent them.

Why: a writer's set has two halves, its own CPU work (deserializing the set, building the load's
payload) and the destination's (the COPY, the insert). Done one after the other, the destination
idles while the writer builds and the writer idles while the destination loads. With the loads on
this thread, the writer builds set N+1 while the destination loads set N: the destination's wait
releases the GIL.

Ray does not promise that a concurrent actor starts its tasks in the order a caller sent them (a
task whose arguments arrive first may start first), so each load carries its caller's *turn*
`(caller, n)`, n = 0, 1, 2, ... for each caller. A turn that never comes (its caller died before
sending it) is waited for at most `max_wait` seconds; the writer's gap check then defers what does
not follow its destination's offset, so order here is about speed, never about correctness. A
caller not seen before whose first load is not turn 0 (this worker's actor was restarted while
the caller went on counting) is waited for only `first_wait` seconds.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

Turn = tuple[Hashable, int]  # (caller, n): the caller's n-th load for this worker, from 0


class Turns:
    """A caller's side: its next turn at each writer. Each instance is a new caller (its id carries a
    random suffix), so a restarted actor numbers from 0 again and is not mistaken for its
    predecessor, whose turns the writer may already have passed."""

    def __init__(self, name: str):
        self.caller = f"{name}:{uuid.uuid4().hex[:8]}"
        self._next: Counter = Counter()

    def next(self, writer: Hashable) -> Turn:
        n = self._next[writer]
        self._next[writer] += 1
        return self.caller, n


@dataclass(order=True)
class _Load:
    arrived: float
    seq: int  # arrival order, for loads without a turn and equal arrival times
    turn: Turn | None = field(compare=False)
    call: Callable[[], Any] = field(compare=False)
    future: Future = field(compare=False)


class OrderedWorker:
    """`submit(call, turn)` -> a Future of `call()`, run on this worker's thread: loads without a
    turn in arrival order, a caller's loads in turn order (see the module doc)."""

    def __init__(self, name: str = "loads", max_wait: float = 10.0, first_wait: float = 0.5,
                 clock: Callable[[], float] = time.monotonic):
        self._max_wait, self._first_wait, self._clock = max_wait, first_wait, clock
        self._pending: list[_Load] = []
        self._next: dict[Hashable, int] = {}  # caller -> the turn it is at
        self._arrivals = 0
        self._closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], Any], turn: Turn | None = None) -> Future:
        future: Future = Future()
        with self._changed:
            if self._closed:
                raise RuntimeError("the ordered worker is closed")
            self._arrivals += 1
            self._pending.append(_Load(self._clock(), self._arrivals, turn, call, future))
            self._changed.notify()
        return future

    def close(self) -> None:
        """Run what was submitted, then stop the thread."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                load = self._take()
                while load is None:
                    if self._closed and not self._pending:
                        return
                    self._changed.wait(self._wait_for())
                    load = self._take()
            if load.future.set_running_or_notify_cancel():
                try:
                    load.future.set_result(load.call())
                except BaseException as e:  # noqa: BLE001 - handed to the caller, who raises it
                    load.future.set_exception(e)

    def _take(self) -> _Load | None:
        """The next load to run (its turn has come, or its predecessor waited for too long)."""
        if not self._pending:
            return None
        ready = [x for x in self._pending if self._due(x)]
        if not ready:
            overdue = [x for x in self._pending if self._clock() >= self._deadline(x)]
            if not overdue and not self._closed:
                return None
            ready = [min(overdue or self._pending)]
        load = min(ready)
        self._pending.remove(load)
        if load.turn is not None:
            caller, n = load.turn
            self._next[caller] = max(self._next.get(caller, 0), n + 1)
        return load

    def _due(self, load: _Load) -> bool:
        if load.turn is None:
            return True
        caller, n = load.turn
        return n <= self._next.get(caller, 0)  # below: its turn was skipped; it runs at once

    def _deadline(self, load: _Load) -> float:
        """When a load stops waiting for the turns before it."""
        known = load.turn is None or load.turn[0] in self._next
        return load.arrived + (self._max_wait if known else self._first_wait)

    def _wait_for(self) -> float | None:
        if not self._pending:
            return None
        return max(0.0, min(self._deadline(x) for x in self._pending) - self._clock()) + 0.001
