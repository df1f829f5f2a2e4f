"""The DLQ actor: the one process that writes the dead-letter store (files or PostgreSQL).

Writers hand it the rows their destination refused (`DeadLetter`s with reason, source position,
destination, table and the rows as Arrow); it persists them behind the configured store, which
redacts messages and applies the masking hook. One writer process per store is what the file
store is safe for (`dlq/file_store.py`), hence one actor for the whole run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import ray

from ray_cdc.actors.process import arrow_without_pandas
from ray_cdc.dlq import DeadLetter, DeadLetterError, DeadLetterFilter
from ray_cdc.dlq.store import ALL


@ray.remote(num_cpus=0)
class DeadLetterActor:
    def __init__(self, store_factory: Callable):
        arrow_without_pandas()
        self._store = store_factory()  # built here: a DSN or a directory travels, never a connection
        recover = getattr(self._store, "recover", None)
        if recover is not None:
            recover()  # what a crashed predecessor left half-written

    def add(self, entries: list[DeadLetter]) -> list[str]:
        return self._store.add(entries)

    def count(self, filter: DeadLetterFilter = ALL) -> int:
        return self._store.count(filter)

    def list(self, filter: DeadLetterFilter = ALL) -> list[DeadLetter]:
        return self._store.list(filter)


class RemoteDeadLetters:
    """A writer's view of the DLQ actor: `add` returns once the entries are persisted. An actor that
    is gone (being restarted) is a DeadLetterError, which the writer retries like a store's."""

    def __init__(self, actor):
        self._actor = actor

    def add(self, entries: Iterable[DeadLetter]) -> list[str]:
        try:
            return ray.get(self._actor.add.remote(list(entries)))
        except ray.exceptions.RayActorError as e:
            raise DeadLetterError(f"the dead-letter actor is unavailable: {type(e).__name__}") from None
