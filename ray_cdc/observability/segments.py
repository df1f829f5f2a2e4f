"""What a node's commitlog directory holds, as the lag computation needs it: size, durable end, age."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ray_cdc.commitlog.cdc_index import index_path, read_cdc_index
from ray_cdc.errors import CdcIndexError
from ray_cdc.offsets import partition_id
from ray_cdc.pipeline.coordination import discover_segments


@dataclass(frozen=True)
class SegmentFile:
    node: str
    segment_id: int
    name: str  # the file name (the directory is the node's configured commitlog_dir)
    size: int  # bytes on disk
    end: int  # the durable end: `_cdc.idx`'s offset when there is one, else `size`
    mtime: float  # time.time() of Cassandra's last write to it

    @property
    def partition_id(self) -> str:
        return partition_id(self.node, self.segment_id)


def segment_files(directories: Mapping[str, Path]) -> list[SegmentFile]:
    """Every segment of every node, in (node, segment id) order. A file that disappears while being
    looked at (retired by the coordinator meanwhile) is left out: it needs no replication any more."""
    found = []
    for node, directory in directories.items():
        found.extend(_stat_all(discover_segments(node, Path(directory))))
    return found


def _stat_all(segments: Iterable) -> list[SegmentFile]:
    files = []
    for segment in segments:
        try:
            stat = os.stat(segment.path)
        except FileNotFoundError:
            continue
        files.append(SegmentFile(segment.node, segment.segment_id, segment.path.name, stat.st_size,
                                 _durable_end(segment.path, stat.st_size), stat.st_mtime))
    return files


def _durable_end(path: Path, size: int) -> int:
    """Cassandra preallocates segments, so their size overstates what is written: the index's offset
    says how far it is durable. Without an index (2.1 archives, copied segments) the size is all there is;
    an index caught mid-rewrite (empty) counts as the size too, rather than failing a status request."""
    try:
        return read_cdc_index(index_path(path)).offset
    except (FileNotFoundError, CdcIndexError):
        return size
