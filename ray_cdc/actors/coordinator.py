"""The coordinator actor: segment assignment across readers, and retention (logic in
pipeline/coordination.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import ray

from ray_cdc.pipeline.coordination import (
    Assignment,
    Coordinator,
    Progress,
    Retention,
    SegmentRef,
    Wait,
    fully_committed,
    retire_segment,
)

log = logging.getLogger(__name__)

#: while a pass waits for a deferring destination, how often the directories are scanned again
RESCAN_INTERVAL = 1.0


@ray.remote(num_cpus=0)
class CoordinatorActor:
    def __init__(self, directories: dict[str, str], offsets, destinations: list[str] | None = None,
                 retention: Retention = "keep", archive_dir: str | None = None, backoff=None):
        self._destinations = list(destinations) if destinations is not None else None
        self._coordinator = Coordinator({node: Path(d) for node, d in directories.items()}, self._destinations,
                                        backoff=backoff)
        self._offsets = offsets  # OffsetActor handle
        self._retention = retention
        self._archive_dir = Path(archive_dir) if archive_dir else None
        self._retired: set[SegmentRef] = set()
        self._stopping = False
        self._scanned = 0.0

    def _committed(self):
        return ray.get(self._offsets.snapshot.remote())

    def refresh(self) -> int:
        return self._scan(self._committed())

    def _scan(self, committed) -> int:
        self._scanned = time.monotonic()
        queued = len(self._coordinator.refresh(committed))
        for segment in self._coordinator.done():  # committed everywhere by an earlier run
            self._retire(segment)
        return queued

    def next_assignment(self, reader: str, node: str) -> Assignment | Wait | None:
        if self._stopping:
            return None
        committed = self._committed()
        step = self._coordinator.next_assignment(reader, node, committed)
        if isinstance(step, Wait) and time.monotonic() - self._scanned >= RESCAN_INTERVAL:
            # the pass waits for a destination that is down: new segments must still reach the others
            self._scan(committed)
            step = self._coordinator.next_assignment(reader, node, committed)
        return step

    def stop(self) -> None:
        """A graceful stop: no new assignment; readers finish the set they are on (`stopping`)."""
        self._stopping = True

    def stopping(self) -> bool:
        return self._stopping

    def finished(self, segment: SegmentRef, completed: bool, deferred: list[str] = ()) -> None:
        if self._coordinator.finished(segment, completed=completed, deferred=deferred):
            self._retire(segment)

    def _retire(self, segment: SegmentRef) -> None:
        # only what every destination reported completed (the offset actor is fed after each commit)
        if self._retention == "keep" or segment in self._retired or \
                not fully_committed(segment, self._committed(), self._destinations):
            return
        retire_segment(segment, self._retention, self._archive_dir)
        self._retired.add(segment)

    def retired(self) -> list[SegmentRef]:
        return sorted(self._retired)

    def reader_lost(self, reader: str) -> list[SegmentRef]:
        return self._coordinator.reader_lost(reader)

    def idle(self) -> bool:
        return self._coordinator.idle()

    def progress(self) -> Progress:
        return self._coordinator.progress()
