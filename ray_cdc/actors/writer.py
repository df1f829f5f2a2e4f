"""One writer actor per destination (logic in pipeline/writing.py)."""

from __future__ import annotations

from collections.abc import Callable

import ray

from ray_cdc.commitlog.reader import ChangeSet
from ray_cdc.pipeline.writing import ApplyResult, DestinationWriter, RetryPolicy


@ray.remote
class WriterActor:
    """`destination_factory` builds the destination inside the actor (connections never travel)."""

    def __init__(self, name: str, destination_factory: Callable, offsets, dead_letters=None,
                 policy: RetryPolicy | None = None):
        destination = self._destination = destination_factory()
        destination.open()
        self._name = name
        dlq = dead_letters() if callable(dead_letters) else dead_letters  # a factory: built here, not shipped
        self._writer = DestinationWriter(destination, dlq, policy or RetryPolicy())
        self._offsets = offsets
        for offset in self._writer.start().values():
            self._offsets.record.remote(name, offset)

    def close(self) -> None:
        """Release the destination (chDB lets one process at a time open its directory)."""
        self._destination.close()

    def apply(self, node: str, change_set: ChangeSet) -> ApplyResult:
        result = self._writer.apply(node, change_set)
        if result.offset is not None:
            ray.get(self._offsets.record.remote(self._name, result.offset))
        return result
