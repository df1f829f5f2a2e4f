"""One writer actor per destination (logic in pipeline/writing.py).

An asyncio actor: while one set loads into the destination (on the `OrderedWorker`'s thread, in
the order each reader sent its sets), the next sets are received and their load payloads built
(`warm`), so the destination and the writer work at the same time rather than in turn.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

import ray

from ray_cdc.actors.process import arrow_without_pandas, release_arrow_memory
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.pipeline.ordered import OrderedWorker, Turn
from ray_cdc.pipeline.scaling import SegmentRouter
from ray_cdc.pipeline.writing import ApplyResult, DestinationWriter, RetryPolicy, warm

APPLY_SECONDS_KEPT = 10_000  # the latest sets' apply times a writer keeps


@ray.remote
class WriterActor:
    """`destination_factory` builds the destination inside the actor (connections never travel).
    `dead_letters`: a DLQ actor handle, or a factory of a store (built here, not shipped)."""

    def __init__(self, name: str, destination_factory: Callable, offsets, dead_letters=None,
                 policy: RetryPolicy | None = None, detach_after: float | None = None):
        arrow_without_pandas()
        destination = self._destination = destination_factory()
        destination.open()
        self._name = name
        dlq = dead_letters() if callable(dead_letters) and not hasattr(dead_letters, "add") else dead_letters
        if hasattr(dlq, "add") and hasattr(dlq.add, "remote"):
            from ray_cdc.actors.dlq import RemoteDeadLetters

            dlq = RemoteDeadLetters(dlq)
        self._writer = DestinationWriter(destination, dlq, policy or RetryPolicy(), detach_after=detach_after)
        self._offsets = offsets
        self._timings = CommitTimings()
        # recorded before the actor is ready: the coordinator's first scan reads them
        ray.get([self._offsets.record.remote(name, offset) for offset in self._writer.start().values()])
        self._loads = OrderedWorker(f"{name}-loads")

    def close(self) -> None:
        """Release the destination (chDB lets one process at a time open its directory)."""
        self._loads.close()
        self._destination.close()

    async def apply(self, node: str, change_set, start: CommitLogPosition | None = None, shared=None,
                    turn: Turn | None = None) -> ApplyResult:
        """`shared`: the transform stage's common set, whose batches `change_set` left out
        (`TransformActor.for_destinations`). `turn`: (caller, n), the caller's n-th set for this
        writer: sets load in that order (`OrderedWorker`); None: in the order they arrive.
        Answers once the set is committed and its offset recorded."""
        if shared is not None:
            change_set = change_set.with_batches_of(shared)
        warm(change_set)  # the load's own CPU work, while the set before it loads
        result, recorded = await asyncio.wrap_future(self._loads.submit(
            partial(self._load, node, change_set, start), turn))
        del change_set  # its buffers go back with the rest of the set's temporaries
        release_arrow_memory()
        if recorded is not None:
            await recorded
        return result

    def _load(self, node: str, change_set, start):
        """On the loads' thread: apply the set, then send its offset to the offset actor (in the
        order of the commits; `apply` answers once it is recorded)."""
        began = time.perf_counter()
        result = self._writer.apply(node, change_set, start)
        if result.offset is None:
            return result, None
        self._timings.committed(result.rows, time.perf_counter() - began)
        return result, self._offsets.record.remote(self._name, result.offset)

    def timings(self) -> dict:
        """When this writer committed its first and last set (wall clock) and how many rows."""
        return self._timings.as_dict()


@dataclass
class CommitTimings:
    first: float | None = None  # time.time() of the first committed set
    first_rows: int = 0  # rows of that set
    last: float | None = None
    rows: int = 0
    sets: int = 0
    # per committed set, seconds its load took (from its turn to its commit; its wait for the sets
    # before it not included), for benchmarks/harness.py's latency percentiles; bounded, as a writer of a
    # long run commits sets without end
    apply_seconds: deque = field(default_factory=lambda: deque(maxlen=APPLY_SECONDS_KEPT))

    def committed(self, rows: int, seconds: float | None = None) -> None:
        now = time.time()
        if self.first is None:
            self.first, self.first_rows = now, rows
        self.last = now
        self.rows += rows
        self.sets += 1
        if seconds is not None:
            self.apply_seconds.append(seconds)

    def as_dict(self) -> dict:
        return {**asdict(self), "apply_seconds": list(self.apply_seconds)}


@ray.remote(num_cpus=0)
class WriterPoolActor:
    """The writers in rotation per destination; readers ask it once per segment which to feed.
    The driver adds and retires writers as the backlog asks (`pipeline/scaling.WriterScaler`)."""

    def __init__(self, writers: dict):
        self._router = SegmentRouter(writers)

    def route(self, partition: str) -> dict:
        return self._router.route(partition)

    def add(self, name: str, writer) -> None:
        self._router.add(name, writer)

    def retire(self, name: str):
        return self._router.retire(name)
