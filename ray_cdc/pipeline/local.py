"""The whole replication loop in one process: the same plain pieces the Ray actors wrap.

Used by tests (the logic without Ray) and as the reference the distributed run must agree with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.pipeline.coordination import Coordinator, Retention, fully_committed, retire_segment
from ray_cdc.pipeline.writing import DestinationWriter

log = logging.getLogger(__name__)


@dataclass
class ReplicationSummary:
    segments: int = 0
    change_sets: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # destination -> rows applied
    skipped_rows: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)


def replicate_available(
    directories: Mapping[str, Path],
    reader_factory: Callable[[str], CommitLogReader],
    writers: Mapping[str, DestinationWriter],
    *,
    batch_rows: int = 32768,
    batch_bytes: int = 8 << 20,
    retention: Retention = "keep",
    archive_dir: Path | None = None,
) -> ReplicationSummary:
    """Apply every durable change in the directories to every destination, then return.
    Segments still being written are read up to their durable offset and left for the next call."""
    committed = {name: writer.start() for name, writer in writers.items()}
    coordinator = Coordinator(directories)
    coordinator.refresh(committed)
    summary = ReplicationSummary()
    for node in directories:
        reader = reader_factory(node)
        while (assignment := coordinator.next_assignment("local", node, committed)) is not None:
            segment = assignment.segment
            completed = False
            for change_set in reader.change_sets(segment.path, start=assignment.start,
                                                 max_rows=batch_rows, max_bytes=batch_bytes):
                summary.change_sets += 1
                for name, writer in writers.items():
                    result = writer.apply(node, change_set)
                    summary.rows[name] = summary.rows.get(name, 0) + result.rows
                    summary.skipped_rows[name] = summary.skipped_rows.get(name, 0) + result.skipped_rows
                    summary.dead_letters[name] = summary.dead_letters.get(name, 0) + result.dead_letters
                    committed[name][segment.partition_id] = writer.committed(segment.partition_id)
                completed = change_set.completed
            summary.segments += 1
            # one pass: a live segment is not queued again here; the next call resumes it from its offsets
            coordinator.finished(segment, completed=True)
            if completed and fully_committed(segment, committed):
                retire_segment(segment, retention, archive_dir)
    return summary
