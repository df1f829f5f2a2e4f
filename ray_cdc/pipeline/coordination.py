"""The coordinator's logic: which segment of which node each reader works on, and when a segment is done.

Plain and deterministic (the Ray actor is a thin shell around it). Segments are partitions: each
has its own offset per destination, so segments of one node may be read in parallel and in any
order — last-writer-wins by writetime makes the destinations' result independent of that order.
"""

from __future__ import annotations

import shutil
from collections import deque
from collections.abc import Iterable, Mapping
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


def resume_position(segment: SegmentRef, committed: Mapping[str, Mapping[str, Offset]]) -> CommitLogPosition | None:
    """Where a reader resumes a segment: after the *lowest* offset any destination committed for it
    (a destination with none starts from the beginning); each writer skips what it already has."""
    positions = []
    for offsets in committed.values():
        offset = offsets.get(segment.partition_id)
        if offset is None:
            return None
        positions.append(offset.commitlog_position)
    return min(positions) if positions else None


def fully_committed(segment: SegmentRef, committed: Mapping[str, Mapping[str, Offset]]) -> bool:
    """Every destination has applied the whole (completed) segment."""
    return bool(committed) and all(
        (o := offsets.get(segment.partition_id)) is not None and o.completed for offsets in committed.values())


class Coordinator:
    """Hands out segments per node in id order, takes them back from lost readers, and tracks
    which segments every destination has fully committed."""

    def __init__(self, directories: Mapping[str, Path]):
        self._directories = {node: Path(d) for node, d in directories.items()}
        self._pending: dict[str, deque[SegmentRef]] = {node: deque() for node in self._directories}
        self._known: set[SegmentRef] = set()
        self._assigned: dict[SegmentRef, str] = {}
        self._done: set[SegmentRef] = set()
        self._parked: list[SegmentRef] = []  # live segments read up to their durable end, this pass

    # --- discovery ---------------------------------------------------------------------------------

    def refresh(self, committed: Mapping[str, Mapping[str, Offset]]) -> list[SegmentRef]:
        """Scan every node's directory; queue new segments not yet fully committed everywhere.
        Returns the newly queued ones."""
        queued = []
        for segment in self._parked:
            self._pending[segment.node].append(segment)
        self._parked.clear()
        for node, directory in self._directories.items():
            for segment in discover_segments(node, directory):
                if segment in self._known:
                    continue
                self._known.add(segment)
                if fully_committed(segment, committed):
                    self._done.add(segment)
                    continue
                self._pending[node].append(segment)
                queued.append(segment)
        return queued

    # --- assignment --------------------------------------------------------------------------------

    def next_assignment(self, reader: str, node: str, committed: Mapping[str, Mapping[str, Offset]]
                        ) -> Assignment | None:
        """The next segment of `node` for `reader` (readers run on the node that has the files)."""
        queue = self._pending.get(node)
        if not queue:
            return None
        segment = queue.popleft()
        self._assigned[segment] = reader
        return Assignment(segment, reader, resume_position(segment, committed))

    def finished(self, segment: SegmentRef, *, completed: bool) -> None:
        """A reader got to the end of what is durable. A segment still being written (no COMPLETED
        in its `_cdc.idx` yet) is parked until the next `refresh`, then resumed from its offsets:
        taking it again at once would spin on a segment that has nothing new yet."""
        self._assigned.pop(segment, None)
        if completed:
            self._done.add(segment)
        else:
            self._parked.append(segment)

    def reader_lost(self, reader: str) -> list[SegmentRef]:
        """Give a dead reader's segments back to the queue (front: they were next in line)."""
        lost = sorted(s for s, r in self._assigned.items() if r == reader)
        for segment in reversed(lost):
            del self._assigned[segment]
            self._pending[segment.node].appendleft(segment)
        return lost

    # --- state ------------------------------------------------------------------------------------

    def idle(self) -> bool:
        return not self._assigned and not any(self._pending.values())

    def assigned(self) -> dict[SegmentRef, str]:
        return dict(self._assigned)

    def done(self) -> list[SegmentRef]:
        return sorted(self._done)


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
