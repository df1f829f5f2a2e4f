"""The observer actor: one for the whole `ray-cdc run` (the pipeline's own actors last one pass),
holding what the writers' destinations report (logic in observations.py)."""

from __future__ import annotations

import ray

from ray_cdc.observability.observations import Observations, Snapshot
from ray_cdc.offsets import Offset


@ray.remote(num_cpus=0)
class ObserverActor:
    def __init__(self):
        self._observations = Observations()

    def written(self, destination: str, table: str, rows: int, seconds: float) -> None:
        self._observations.written(destination, table, rows, seconds)

    def committed(self, destination: str, offsets: list[Offset], at_start: bool = False) -> None:
        self._observations.committed(destination, offsets, at_start=at_start)

    def snapshot(self) -> Snapshot:
        return self._observations.snapshot()
