"""Each node's segments on disk and how far the destinations have applied them: for `segments list`,
`status` (offline) and `offsets reset`. Plain functions over paths and offsets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ray_cdc.commitlog.cdc_index import index_path, read_cdc_index
from ray_cdc.errors import CdcIndexError
from ray_cdc.offsets import Offset
from ray_cdc.pipeline.coordination import discover_segments

State = Literal["committed", "partial", "pending"]


@dataclass(frozen=True)
class SegmentInfo:
    node: str
    segment_id: int
    path: Path
    size: int  # bytes on disk
    durable_end: int  # the `_cdc.idx` offset, else the file size

    @property
    def partition_id(self) -> str:
        return f"{self.node}/{self.segment_id}"


def node_segments(node: str, directory: Path) -> list[SegmentInfo]:
    return [_info(ref.node, ref.segment_id, ref.path) for ref in discover_segments(node, directory)]


def _info(node: str, segment_id: int, path: Path) -> SegmentInfo:
    size = path.stat().st_size
    try:
        end = read_cdc_index(index_path(path)).offset
    except (FileNotFoundError, CdcIndexError):  # no index, or one being rewritten: the file size
        end = size
    return SegmentInfo(node, segment_id, path, size, end)


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


def state_counts(segments: list[SegmentInfo], committed: Mapping[str, Mapping[str, Offset]]) -> Counter:
    return Counter(segment_state(s.partition_id, committed)[0] for s in segments)
