"""Each node's segments on disk and how far the destinations have applied them: for `segments list`,
`status` (offline) and `offsets reset`. Plain functions over paths and offsets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from ray_cdc.observability.segments import SegmentFile, segment_files
from ray_cdc.offsets import Offset

State = Literal["committed", "partial", "pending"]


def node_segments(node: str, directory: Path) -> list[SegmentFile]:
    """The node's segments with size and durable end, in id order."""
    return segment_files({node: directory})


def segment_state(partition: str, committed: Mapping[str, Mapping[str, Offset]]) -> tuple[State, list[str]]:
    """committed: every destination applied the whole segment; partial: some applied some of it;
    pending: none applied anything. Also the destinations still owed (part of) it."""
    offsets = {name: book.get(partition) for name, book in committed.items()}
    owed = sorted(name for name, o in offsets.items() if o is None or not o.completed)
    if not owed:
        return "committed", owed
    if any(o is not None for o in offsets.values()):
        return "partial", owed
    return "pending", owed


def state_counts(segments: list[SegmentFile], committed: Mapping[str, Mapping[str, Offset]]) -> Counter:
    return Counter(segment_state(s.partition_id, committed)[0] for s in segments)
