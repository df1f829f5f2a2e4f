"""Reader actors: one per Cassandra node's directory, on the Ray node that has it.

A reader asks the coordinator for a segment, decodes it into ChangeSets, puts each in the object
store once and hands the reference to every writer. At most `max_in_flight` sets wait for
writers: a slow destination slows the reader down, and memory does not grow with the backlog.
"""

from __future__ import annotations

from collections.abc import Callable

import ray


@ray.remote
class ReaderActor:
    def __init__(self, reader_id: str, node: str, reader_factory: Callable, coordinator, writers: dict,
                 *, max_in_flight: int = 4, batch_rows: int = 65536, batch_bytes: int = 16 << 20,
                 tables=None):
        self._id, self._node = reader_id, node
        self._reader = reader_factory(node)
        self._coordinator = coordinator
        self._writers = writers
        self._max_in_flight = max(1, max_in_flight)
        self._batch = {"max_rows": batch_rows, "max_bytes": batch_bytes}
        self._tables = tables  # `matches(keyspace, table)`: the replicated tables (None: all)

    def run_available(self) -> dict:
        """Read every segment the coordinator has for this node; returns counts."""
        sets = rows = segments = 0
        while (assignment := ray.get(self._coordinator.next_assignment.remote(self._id, self._node))) is not None:
            in_flight: list = []
            completed = False
            for change_set in self._reader.change_sets(assignment.segment.path, start=assignment.start,
                                                       **self._batch):
                if self._tables is not None:
                    change_set.batches = [(t, b) for t, b in change_set.batches
                                          if self._tables.matches(t.keyspace, t.name)]
                ref = ray.put(change_set)
                in_flight += [w.apply.remote(self._node, ref) for w in self._writers.values()]
                in_flight = self._wait(in_flight, self._max_in_flight * len(self._writers))
                sets, rows, completed = sets + 1, rows + change_set.rows, change_set.completed
            ray.get(in_flight)  # the segment is finished only once every writer has committed it
            ray.get(self._coordinator.finished.remote(assignment.segment, completed))
            segments += 1
        return {"reader": self._id, "segments": segments, "change_sets": sets, "rows": rows}

    @staticmethod
    def _wait(in_flight: list, limit: int) -> list:
        while len(in_flight) > limit:
            done, in_flight = ray.wait(in_flight, num_returns=1)
            ray.get(done)  # a writer's failure surfaces here, stopping this reader
        return in_flight
