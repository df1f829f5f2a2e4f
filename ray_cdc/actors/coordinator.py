"""The coordinator actor: segment assignment across readers (logic in pipeline/coordination.py)."""

from __future__ import annotations

from pathlib import Path

import ray

from ray_cdc.pipeline.coordination import Assignment, Coordinator, SegmentRef


@ray.remote(num_cpus=0)
class CoordinatorActor:
    def __init__(self, directories: dict[str, str], offsets):
        self._coordinator = Coordinator({node: Path(d) for node, d in directories.items()})
        self._offsets = offsets  # OffsetActor handle

    def _committed(self):
        return ray.get(self._offsets.snapshot.remote())

    def refresh(self) -> int:
        return len(self._coordinator.refresh(self._committed()))

    def next_assignment(self, reader: str, node: str) -> Assignment | None:
        return self._coordinator.next_assignment(reader, node, self._committed())

    def finished(self, segment: SegmentRef, completed: bool) -> None:
        self._coordinator.finished(segment, completed=completed)

    def reader_lost(self, reader: str) -> list[SegmentRef]:
        return self._coordinator.reader_lost(reader)

    def idle(self) -> bool:
        return self._coordinator.idle()
