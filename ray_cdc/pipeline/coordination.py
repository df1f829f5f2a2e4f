"""The coordinator's logic: which segment of which node each reader works on, and when a segment is done.

Plain and deterministic (the Ray actor is a thin shell around it). Segments are partitions: each
has its own offset per destination, so segments of one node may be read in parallel and in any
order — last-writer-wins by writetime makes the destinations' result independent of that order.
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ray_cdc.commitlog.cdc_index import index_path
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.segment import parse_segment_name
from ray_cdc.errors import ConfigError, SegmentNameError
from ray_cdc.offsets import Offset, partition_id


@dataclass(frozen=True, order=True)
class SegmentRef:
    node: str
    segment_id: int
    path: Path = field(compare=False)

    @property
    def partition_id(self) -> str:
        return partition_id(self.node, self.segment_id)


@dataclass(frozen=True)
class Assignment:
    segment: SegmentRef
    reader: str
    start: CommitLogPosition | None  # resume after this position (None: from the beginning)
    # the destinations to feed (those still owed the segment); None: every destination
    destinations: frozenset[str] | None = None


@dataclass(frozen=True)
class Wait:
    """No segment of the node is ready yet, but some are owed to a destination that deferred them:
    ask again in `seconds` (the pass is not over)."""

    seconds: float


@dataclass(frozen=True)
class Progress:
    """Where each segment (by partition id) stands for the coordinator: the health API's /status."""

    reading: dict[str, str]  # partition id -> the reader working on it
    queued: frozenset[str]  # waiting for a reader: new, parked until the next scan, or deferred
    done: frozenset[str]


@dataclass(frozen=True)
class _Task:
    segment: SegmentRef
    owed: frozenset[str] | None  # None: every destination
    not_before: float = 0.0


def discover_segments(node: str, directory: Path) -> list[SegmentRef]:
    """The segments in a node's commitlog directory (`cdc_raw`), in segment-id order."""
    if not directory.is_dir():
        raise ConfigError(f"commitlog directory of node {node!r} does not exist or is not a directory: {directory}")
    found = []
    for path in directory.glob("CommitLog-*.log"):
        try:
            _, segment_id = parse_segment_name(path)
        except SegmentNameError:
            continue  # not a segment (Cassandra never names one like this): not ours to judge
        found.append(SegmentRef(node, segment_id, path))
    return sorted(found)


Listing = frozenset  # of (node, file name, size, mtime_ns): what `directory_listing` saw


def directory_listing(directories: Mapping[str, Path]) -> Listing | None:
    """Every segment and CDC index file of the nodes' directories with its size and modification
    time; None when a directory cannot be seen from here (a Cassandra host's, on a cluster).

    Equal listings mean nothing was added, written or completed in between: a following run need
    not start a pass (its actors) to find that out."""
    seen = set()
    for node, directory in directories.items():
        if not directory.is_dir():
            return None
        for path in directory.glob("CommitLog-*"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # retired meanwhile
            seen.add((node, path.name, stat.st_size, stat.st_mtime_ns))
    return frozenset(seen)


def resume_position(segment: SegmentRef, committed: Mapping[str, Mapping[str, Offset]],
                    destinations: Iterable[str] | None = None) -> CommitLogPosition | None:
    """Where a reader resumes a segment: after the *lowest* offset any of `destinations` (default:
    every destination in `committed`) committed for it (one with none starts from the beginning);
    each writer skips what it already has."""
    names = committed.keys() if destinations is None else destinations
    positions = []
    for name in names:
        offset = committed.get(name, {}).get(segment.partition_id)
        if offset is None:
            return None
        positions.append(offset.commitlog_position)
    return min(positions) if positions else None


def fully_committed(segment: SegmentRef, committed: Mapping[str, Mapping[str, Offset]],
                    destinations: Iterable[str] | None = None) -> bool:
    """Every destination has applied the whole (completed) segment. With `destinations`, each of
    them must have: one that never reported an offset has not (it is absent from `committed`)."""
    names = list(committed.keys() if destinations is None else destinations)
    return bool(names) and all(
        (o := committed.get(name, {}).get(segment.partition_id)) is not None and o.completed for name in names)


class Coordinator:
    """Hands out segments per node in id order, takes them back from lost readers, and tracks, per
    destination, which segments are still owed.

    Destinations progress independently: a writer that cannot apply a segment (its destination is
    down) *defers* it; the reader carries on feeding the others, and the segment is queued again for
    the deferring destinations only, after a backoff, resumed from their own offsets."""

    def __init__(self, directories: Mapping[str, Path], destinations: Iterable[str] | None = None, *,
                 backoff: Callable[[], Iterator[float]] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._directories = {node: Path(d) for node, d in directories.items()}
        self._destinations = frozenset(destinations) if destinations is not None else None
        self._pending: dict[str, deque[_Task]] = {node: deque() for node in self._directories}
        self._known: set[SegmentRef] = set()
        self._assigned: dict[SegmentRef, tuple[str, _Task]] = {}
        self._done: set[SegmentRef] = set()
        self._parked: list[SegmentRef] = []  # live segments read up to their durable end, this pass
        self._backoff = backoff or (lambda: _doubling(1.0, 30.0))
        self._delays: dict[SegmentRef, Iterator[float]] = {}  # per segment with deferrals
        self._clock = clock

    # --- discovery ---------------------------------------------------------------------------------

    def refresh(self, committed: Mapping[str, Mapping[str, Offset]]) -> list[SegmentRef]:
        """Scan every node's directory; queue new segments not yet fully committed everywhere.
        Returns the newly queued ones."""
        queued = []
        for segment in self._parked:
            self._pending[segment.node].append(_Task(segment, None))
        self._parked.clear()
        for node, directory in self._directories.items():
            for segment in discover_segments(node, directory):
                if segment in self._known:
                    continue
                self._known.add(segment)
                if fully_committed(segment, committed, self._destinations):
                    self._done.add(segment)
                    continue
                self._pending[node].append(_Task(segment, None))
                queued.append(segment)
        return queued

    # --- assignment --------------------------------------------------------------------------------

    def next_assignment(self, reader: str, node: str, committed: Mapping[str, Mapping[str, Offset]]
                        ) -> Assignment | Wait | None:
        """The next segment of `node` for `reader` (readers run on the node that has the files);
        `Wait` when the only ones left wait for a deferring destination's backoff; None: done."""
        queue = self._pending.get(node)
        if not queue:
            return None
        now = self._clock()
        for i, task in enumerate(queue):
            if task.not_before <= now:
                del queue[i]
                self._assigned[task.segment] = (reader, task)
                owed = task.owed if task.owed is not None else self._destinations
                return Assignment(task.segment, reader, resume_position(task.segment, committed, owed), owed)
        return Wait(max(0.0, min(t.not_before for t in queue) - now))

    def finished(self, segment: SegmentRef, *, completed: bool, deferred: Iterable[str] = ()) -> bool:
        """A reader got to the end of what is durable. Destinations in `deferred` could not take it
        (down, or a gap after a crash): it is queued again for them alone, after a growing delay.
        A segment still being written (no COMPLETED in its `_cdc.idx` yet) is parked until the
        next `refresh`, then resumed from its offsets: taking it again at once would spin on a
        segment that has nothing new yet. Returns True when the segment is done everywhere."""
        self._assigned.pop(segment, None)
        deferred = frozenset(deferred)
        if deferred:
            delays = self._delays.setdefault(segment, self._backoff())
            self._pending[segment.node].append(_Task(segment, deferred, self._clock() + next(delays)))
            return False
        self._delays.pop(segment, None)
        if completed:
            self._done.add(segment)
            return True
        self._parked.append(segment)
        return False

    def reader_lost(self, reader: str) -> list[SegmentRef]:
        """Give a dead reader's segments back to the queue (front: they were next in line)."""
        lost = sorted(((s, task) for s, (r, task) in self._assigned.items() if r == reader), key=lambda x: x[0])
        for segment, task in reversed(lost):
            del self._assigned[segment]
            self._pending[segment.node].appendleft(task)
        return [s for s, _ in lost]

    # --- state ------------------------------------------------------------------------------------

    def idle(self) -> bool:
        return not self._assigned and not any(self._pending.values())

    def assigned(self) -> dict[SegmentRef, str]:
        return {s: r for s, (r, _) in self._assigned.items()}

    def done(self) -> list[SegmentRef]:
        return sorted(self._done)

    def progress(self) -> Progress:
        queued = {t.segment for q in self._pending.values() for t in q} | set(self._parked)
        return Progress({s.partition_id: r for s, r in self.assigned().items()},
                        frozenset(s.partition_id for s in queued), frozenset(s.partition_id for s in self._done))


def _doubling(initial: float, maximum: float) -> Iterator[float]:
    delay = initial
    while True:
        yield delay
        delay = min(maximum, delay * 2)


Retention = Literal["delete", "archive", "keep"]


def retire_segment(segment: SegmentRef, policy: Retention, archive_dir: Path | None = None) -> None:
    """After every destination committed a completed segment: delete it (with its `_cdc.idx`, which
    frees Cassandra's cdc space), move both to `archive_dir/<node>/`, or keep them."""
    if policy == "keep":
        return
    files: Iterable[Path] = [p for p in (segment.path, index_path(segment.path)) if p.exists()]
    if policy == "archive":
        if archive_dir is None:
            raise ConfigError("segment_retention is 'archive' but no archive_dir is configured")
        target = archive_dir / segment.node  # nodes name their segments alike: one folder each
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.move(str(path), target / path.name)
        return
    for path in files:
        path.unlink()
