"""Reader actors: one per Cassandra node's directory, on the Ray node that has it.

A reader asks the coordinator for a segment, decodes it into ChangeSets, puts each in the object
store once, has its node's transform actor transform it (when there is one) and hands the reference
to every writer still owed the segment, each with its own
bounded window (`pipeline/fanout.py`): a slow destination slows the reader down, a destination that
is down is detached for the segment, and memory does not grow with the backlog.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import ray

from ray_cdc.pipeline.coordination import Assignment, Wait
from ray_cdc.pipeline.fanout import Lanes

#: the longest a reader sleeps before asking the coordinator again (it may get new work sooner)
MAX_WAIT = 1.0
#: how often a reader asks whether a graceful stop was requested
STOP_POLL = 0.2


@ray.remote
class ReaderActor:
    def __init__(self, reader_id: str, node: str, reader_factory: Callable, coordinator, writers: dict,
                 *, max_in_flight: int = 4, batch_rows: int = 65536, batch_bytes: int = 16 << 20,
                 tables=None, transformer=None):
        self._id, self._node = reader_id, node
        self._reader = reader_factory(node)
        self._coordinator = coordinator
        self._writers = writers
        self._transformer = transformer  # TransformActor handle, or None
        self._max_in_flight = max(1, max_in_flight)
        self._batch = {"max_rows": batch_rows, "max_bytes": batch_bytes}
        self._tables = tables  # `matches(keyspace, table)`: the replicated tables (None: all)
        self._stop_checked, self._stopping = 0.0, False

    def run_available(self) -> dict:
        """Read every segment the coordinator has for this node; returns counts."""
        counts = {"reader": self._id, "segments": 0, "change_sets": 0, "rows": 0, "deferrals": 0}
        while (step := ray.get(self._coordinator.next_assignment.remote(self._id, self._node))) is not None:
            if isinstance(step, Wait):
                time.sleep(min(MAX_WAIT, step.seconds))
                continue
            lanes, completed = self._feed(step, counts)
            deferred = lanes.drain()  # the segment is finished once every attached writer answered
            counts["deferrals"] += len(deferred)
            ray.get(self._coordinator.finished.remote(step.segment, completed, sorted(deferred)))
            counts["segments"] += 1
        return counts

    def _feed(self, assignment: Assignment, counts: dict) -> tuple[Lanes, bool]:
        names = self._writers.keys() if assignment.destinations is None else assignment.destinations
        lanes = Lanes(sorted(names), self._max_in_flight, self._submit, ray.get)
        completed, start = False, assignment.start
        for change_set in self._reader.change_sets(assignment.segment.path, start=assignment.start,
                                                   **self._batch):
            if self._tables is not None:
                change_set.batches = [(t, b) for t, b in change_set.batches
                                      if self._tables.matches(t.keyspace, t.name)]
            if not lanes.attached():
                break  # every destination owed this segment is down: nothing to read it for
            if self._stop_requested():
                completed = False  # parked: the next run resumes it from the committed offsets
                break
            ref = ray.put(change_set)
            if self._transformer is not None:  # once per set: the steps every destination shares
                ref = self._transformer.common.remote(ref)
            lanes.send((ref, start))
            counts["change_sets"] += 1
            counts["rows"] += change_set.rows
            completed, start = change_set.completed, change_set.end
        return lanes, completed

    def _stop_requested(self) -> bool:
        """Asks the coordinator at most every STOP_POLL seconds (not once per set)."""
        now = time.monotonic()
        if now - self._stop_checked >= STOP_POLL:
            self._stop_checked = now
            self._stopping = ray.get(self._coordinator.stopping.remote())
        return self._stopping

    def _submit(self, name: str, item):
        ref, start = item
        if self._transformer is not None:  # refs are handed on: the data goes actor to actor
            ref = self._transformer.for_destination.remote(ref, name)
        return self._writers[name].apply.remote(self._node, ref, start)
