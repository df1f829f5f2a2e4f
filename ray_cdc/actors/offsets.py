"""The offset actor: the committed offsets of every destination, as the writers report them.

Destinations store offsets in their own transactions (the source of truth); this actor is the
pipeline-wide view the coordinator resumes from and retires segments by.
"""

from __future__ import annotations

import ray

from ray_cdc.offsets import Offset


class OffsetBook:
    def __init__(self, initial: dict[str, dict[str, Offset]] | None = None):
        self._offsets: dict[str, dict[str, Offset]] = {k: dict(v) for k, v in (initial or {}).items()}

    def record(self, destination: str, offset: Offset) -> None:
        book = self._offsets.setdefault(destination, {})
        current = book.get(offset.partition_id)
        book[offset.partition_id] = current.advance(offset) if current is not None else offset

    def snapshot(self) -> dict[str, dict[str, Offset]]:
        return {k: dict(v) for k, v in self._offsets.items()}


@ray.remote(num_cpus=0)
class OffsetActor:
    def __init__(self, initial=None):
        self._book = OffsetBook(initial)

    def record(self, destination: str, offset: Offset) -> None:
        self._book.record(destination, offset)

    def snapshot(self) -> dict[str, dict[str, Offset]]:
        return self._book.snapshot()
