"""Lag per node and segment, from the segment files and every destination's committed offsets.

Definitions (also in the README and the OpenAPI document):
- a segment's *end* is its durable end: the offset in its `_cdc.idx`, else its size on disk;
- a destination's *position* in a segment is the offset it committed there (0 without one; the end
  once it committed the segment as completed);
- a segment's **lag in bytes** is its end minus the lowest position of any destination (what is not
  yet committed by every destination), and a destination's lag the sum of end minus its position;
- a segment's **lag in seconds** is the age of the file's last write (now minus its mtime) while any
  destination lags on it, else 0; a node's is that of its oldest lagging segment. Cassandra appends
  in time order, so the oldest uncommitted change is at least that old: a lower bound, exact for a
  segment that stopped growing.
Positions are logical offsets: for a compressed segment without an index they are compared with
the compressed size, so its lag in bytes is an estimate (clamped to [0, end]).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ray_cdc.observability.models import CommittedPosition, NodeStatus, SegmentStatus
from ray_cdc.observability.segments import SegmentFile
from ray_cdc.offsets import Offset
from ray_cdc.pipeline.coordination import Progress
from ray_cdc.pipeline.scaling import backlog

Committed = Mapping[str, Mapping[str, Offset]]  # destination -> partition id -> offset

NO_PROGRESS = Progress({}, frozenset(), frozenset())


def position_in(segment: SegmentFile, offset: Offset | None) -> int:
    """How many of the segment's bytes a destination holding `offset` has (see the module doc)."""
    if offset is None:
        return 0
    return segment.end if offset.completed else min(offset.position, segment.end)


def is_done(segment: SegmentFile, committed: Committed, destinations: Iterable[str]) -> bool:
    offsets = [committed.get(d, {}).get(segment.partition_id) for d in destinations]
    return bool(offsets) and all(o is not None and o.completed for o in offsets)


def segment_status(segment: SegmentFile, committed: Committed, destinations: list[str],
                   progress: Progress, now: float) -> SegmentStatus:
    offsets = {d: committed.get(d, {}).get(segment.partition_id) for d in destinations}
    lowest = min((position_in(segment, o) for o in offsets.values()), default=segment.end)
    lag = max(0, segment.end - lowest)
    reader = progress.reading.get(segment.partition_id)
    state = "reading" if reader else "queued" if segment.partition_id in progress.queued else "waiting"
    return SegmentStatus(
        segment_id=segment.segment_id, file=segment.name, size_bytes=segment.size, end_bytes=segment.end,
        state=state, reader=reader, lag_bytes=lag, lag_seconds=max(0.0, now - segment.mtime) if lag else 0.0,
        committed={d: CommittedPosition(position=o.position if o else None, completed=bool(o and o.completed))
                   for d, o in offsets.items()})


def node_statuses(files: list[SegmentFile], committed: Committed, destinations: list[str],
                  progress: Progress, now: float, nodes: Iterable[str] = ()) -> dict[str, NodeStatus]:
    """Every node of `nodes` (configured: listed even with an empty directory) and of `files`."""
    by_node: dict[str, list[SegmentFile]] = {node: [] for node in nodes}
    for segment in files:
        by_node.setdefault(segment.node, []).append(segment)
    return {node: _node_status(segments, committed, destinations, progress, now)
            for node, segments in by_node.items()}


def _node_status(segments: list[SegmentFile], committed: Committed, destinations: list[str],
                 progress: Progress, now: float) -> NodeStatus:
    open_segments = [segment_status(s, committed, destinations, progress, now)
                     for s in segments if not is_done(s, committed, destinations)]
    return NodeStatus(segments_total=len(segments), segments_done=len(segments) - len(open_segments),
                      lag_bytes=sum(s.lag_bytes for s in open_segments),
                      lag_seconds=max((s.lag_seconds for s in open_segments), default=0.0),
                      segments=open_segments)


def destination_lag(files: list[SegmentFile], committed: Committed, destination: str) -> int:
    """Durable bytes of the segments on disk that `destination` has not committed (the writers'
    autoscaler measures its backlog the same way)."""
    owed_bytes, _ = backlog(files, committed.get(destination, {}), lambda segment: segment.end)
    return owed_bytes
