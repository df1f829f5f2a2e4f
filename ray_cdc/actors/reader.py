"""Reader actors: one per Cassandra node's directory, on the Ray node that has it.

A reader asks the coordinator for a segment, decodes it into ChangeSets, puts each in the object
store once, has its node's transform actor transform it (when there is one) and hands the reference
to every destination still owed the segment — to its one writer, or to the one the writer pool
routes the segment to when writers scale (`pipeline/scaling.SegmentRouter`) — each destination with its own
bounded window (`pipeline/fanout.py`): a slow destination slows the reader down, a destination that
is down is detached for the segment, and memory does not grow with the backlog. Segments overlap:
the next one is read while the writers apply the previous one's sets (the windows are shared), and
a segment is reported finished to the coordinator only once every destination answered all of it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from functools import partial

import ray

from ray_cdc.actors.process import arrow_without_pandas, release_arrow_memory
from ray_cdc.pipeline.coordination import Assignment, Wait
from ray_cdc.pipeline.fanout import Lanes
from ray_cdc.pipeline.ordered import Turns

#: the longest a reader sleeps before asking the coordinator again (it may get new work sooner)
MAX_WAIT = 1.0
#: how often a reader asks whether a graceful stop was requested
STOP_POLL = 0.2


@ray.remote
class ReaderActor:
    def __init__(self, reader_id: str, node: str, reader_factory: Callable, coordinator, writer_pool,
                 *, max_in_flight: int = 4, batch_rows: int = 32768, batch_bytes: int = 8 << 20,
                 tables=None, transformer=None):
        arrow_without_pandas()
        self._id, self._node = reader_id, node
        self._reader = reader_factory(node)
        self._coordinator = coordinator
        # which writer of each destination applies a segment: a WriterPoolActor, or (one writer per
        # destination for the whole pass) the writers themselves, by destination
        self._pool = writer_pool
        self._transformer = transformer  # TransformActor handle, or None
        self._max_in_flight = max(1, max_in_flight)
        self._batch = {"max_rows": batch_rows, "max_bytes": batch_bytes}
        self._tables = tables  # `matches(keyspace, table)`: the replicated tables (None: all)
        self._stop_checked, self._stopping = 0.0, False
        # each writer loads this reader's sets in the order they were sent (`OrderedWorker` turns)
        self._turns = Turns(reader_id)

    def run_available(self) -> dict:
        """Read every segment the coordinator has for this node; returns counts.

        Segments overlap: once a segment is read, the reader asks for the next one while the
        writers still apply the first one's sets (each destination's window of `max_in_flight`
        sets is shared by every open segment). A segment is reported `finished` only when every
        destination answered all of its sets (committed, or deferred); before the reader sleeps
        or ends, every open segment is settled and reported."""
        counts = {"reader": self._id, "segments": 0, "change_sets": 0, "rows": 0, "deferrals": 0,
                  "ray_node_id": ray.get_runtime_context().get_node_id()}  # where it ran: placement checks
        open_segments: deque[tuple[Assignment, Lanes, bool]] = deque()
        while True:
            step = ray.get(self._coordinator.next_assignment.remote(self._id, self._node))
            if step is None or isinstance(step, Wait):
                if open_segments:  # a deferral among them may be what the coordinator has next
                    self._finish(open_segments, counts, wait=True)
                    continue
                if step is None:
                    return counts
                time.sleep(min(MAX_WAIT, step.seconds))
                continue
            lanes, completed = self._feed(step, counts, open_segments)
            open_segments.append((step, lanes, completed))
            self._finish(open_segments, counts, wait=False)

    def _finish(self, open_segments: deque, counts: dict, *, wait: bool) -> None:
        """Report to the coordinator the open segments (oldest first) whose sets every destination
        answered; with `wait`, wait for all of them."""
        while open_segments:
            step, lanes, completed = open_segments[0]
            if not wait and not lanes.poll(_done):
                return
            deferred = lanes.drain()  # the segment is finished once every attached writer answered
            counts["deferrals"] += len(deferred)
            ray.get(self._coordinator.finished.remote(step.segment, completed, sorted(deferred)))
            counts["segments"] += 1
            open_segments.popleft()

    def _feed(self, assignment: Assignment, counts: dict, older: deque) -> tuple[Lanes, bool]:
        writers = self._pool if isinstance(self._pool, dict) else \
            ray.get(self._pool.route.remote(assignment.segment.partition_id))
        names = writers.keys() if assignment.destinations is None else assignment.destinations
        lanes = Lanes(sorted(names), self._max_in_flight, partial(self._submit, writers), ray.get)
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
            if older:
                self._make_room(lanes, older, counts)
            ref, parts = ray.put(change_set), None
            if self._transformer is not None:  # once per set: the steps every destination shares
                ref = self._transformer.common.remote(ref)
                parts = self._parts(ref, lanes.attached())
            lanes.send((ref, start, parts))
            counts["change_sets"] += 1
            counts["rows"] += change_set.rows
            completed, start = change_set.completed, change_set.end
            del change_set  # in the object store now: the decoder's buffers go back
            release_arrow_memory()
        return lanes, completed

    def _make_room(self, lanes: Lanes, older: deque, counts: dict) -> None:
        """Keep each destination's window bounded across segments: wait for the older segments'
        oldest sets while the destination has `max_in_flight` in flight in all; then report the
        older segments that are all answered."""
        for name in lanes.attached():
            while lanes.in_flight(name) + sum(o.in_flight(name) for _, o, _ in older) >= self._max_in_flight:
                oldest = next((o for _, o, _ in older if o.in_flight(name)), None)
                if oldest is None:
                    break  # the rest is this segment's own: `send` waits for it
                oldest.settle_oldest(name)
        self._finish(older, counts, wait=False)

    def _stop_requested(self) -> bool:
        """Asks the coordinator at most every STOP_POLL seconds (not once per set)."""
        now = time.monotonic()
        if now - self._stop_checked >= STOP_POLL:
            self._stop_checked = now
            self._stopping = ray.get(self._coordinator.stopping.remote())
        return self._stopping

    def _parts(self, common, destinations: list[str]) -> dict:
        """Each destination's own part of a transformed set (one transform task for all of them)."""
        refs = self._transformer.for_destinations.options(num_returns=len(destinations)).remote(
            common, destinations)
        return dict(zip(destinations, refs if len(destinations) > 1 else [refs], strict=True))

    def _submit(self, writers: dict, name: str, item):
        ref, start, parts = item
        writer = writers[name]
        # counted per writer actor: a pool routes segments to several
        turn = self._turns.next(getattr(writer, "_actor_id", name))
        if parts is None:
            return writer.apply.remote(self._node, ref, start, turn=turn)
        # refs are handed on, the data goes actor to actor; the common set travels beside the
        # destination's own part, so each batch is stored once however many destinations there are
        return writer.apply.remote(self._node, parts[name], start, ref, turn=turn)


def _done(refs: list) -> list:
    """The refs among `refs` whose results are in (no waiting)."""
    return ray.wait(refs, num_returns=len(refs), timeout=0)[0]
