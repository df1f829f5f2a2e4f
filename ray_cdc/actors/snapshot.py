"""Snapshot reader actors: each reads one token range at a time and feeds every writer (logic in
ray_cdc/snapshot/reader.py; the driver loop is ray_cdc/pipeline/snapshot.py).

Threaded (`max_concurrency=2`) so that `progress()` answers while `read_range` runs. Sets go to the
writers through the same bounded windows as the commitlog readers' (`pipeline/fanout.Lanes`); the
writers commit each set's offset after its data and report it to the offset actor, so a range's
progress is recorded only once a destination holds the rows.
"""

from __future__ import annotations

from collections.abc import Callable

import ray

from ray_cdc.actors.process import arrow_without_pandas
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.pipeline.fanout import Lanes
from ray_cdc.pipeline.ordered import Turns
from ray_cdc.snapshot.progress import snapshot_node
from ray_cdc.snapshot.reader import RangeTask


@ray.remote(max_concurrency=2)
class SnapshotReaderActor:
    def __init__(self, reader_id: str, reader_factory: Callable, writers: dict, *, max_in_flight: int = 4,
                 batch_rows: int = 65536, transformer: Callable | None = None):
        arrow_without_pandas()
        self._id = reader_id
        self._reader = reader_factory()  # connects here: a session never travels
        # masking (a TransformerFactory): each destination gets only what it may see, DLQ included
        self._transformer = transformer() if transformer is not None else None
        self._writers = writers
        self._max_in_flight = max(1, max_in_flight)
        self._batch_rows = batch_rows
        # a range's sets follow each other (each starts where the last ended): without turns, an
        # asyncio writer may start a later one first, and its gap check defers the rest of the range
        self._turns = Turns(reader_id)
        self._task: RangeTask | None = None
        self._rows_before = 0

    def read_range(self, task: RangeTask) -> dict:
        self._rows_before = self._reader.rows_read
        self._task = task
        node = snapshot_node(task.table)
        names = sorted(task.destinations if task.destinations is not None else self._writers)

        def submit(name, item):
            ref, start = item
            if self._transformer is not None:
                ref = self._transformer.for_destination(ref, name)
            return self._writers[name].apply.remote(node, ref, start, turn=self._turns.next(name))

        lanes = Lanes(names, self._max_in_flight, submit, ray.get)
        # no gap check for a range's first set: the partition id may be new to a destination
        start = CommitLogPosition(task.range.start, task.resume) if task.resume else None
        rows_before = self._reader.rows_read
        sets = change_rows = 0
        for change_set in self._reader.read(task, batch_rows=self._batch_rows):
            if not lanes.attached():
                break  # every destination of this range is down: the driver queues it again
            common = self._transformer.common(change_set) if self._transformer is not None else None
            lanes.send((ray.put(change_set) if common is None else common, start))
            start = change_set.end
            sets += 1
            change_rows += change_set.rows
        deferred = lanes.drain()
        self._task = None
        return {"reader": self._id, "table": task.table, "start": task.range.start, "end": task.range.end,
                "resume": task.resume, "rows": self._reader.rows_read - rows_before, "change_rows": change_rows,
                "sets": sets, "deferred": deferred}

    def progress(self) -> dict:
        task = self._task
        if task is None:
            return {"rows": 0, "tokens": 0, "range": None}
        return {"rows": self._reader.rows_read - self._rows_before, "tokens": self._reader.tokens_done - task.resume,
                "range": task.partition_id}
