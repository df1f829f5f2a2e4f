"""The DeadLetterStore protocol, its filter, and what every store does the same way.

Stores hold entries durably; they never interpret payloads. Two rules every store enforces itself,
so no caller can forget them: messages pass through `redact()` before they are written, and the
payload passes through the `mask` hook (masking of sensitive columns, filled by a later issue)
before it is written: the DLQ never holds what a destination may not see.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import pyarrow as pa

from ray_cdc.dlq.entry import DeadLetter, utc_now
from ray_cdc.errors import RayCdcError
from ray_cdc.secrets import redact

Mask = Callable[[pa.RecordBatch], pa.RecordBatch]


def identity(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch


class DeadLetterError(RayCdcError):
    """The DLQ store failed (unreadable entry, unreachable database, ...)."""


class DeadLetterNotFoundError(DeadLetterError, LookupError):
    """No entry has this id (never added, or already removed by a replay or purge)."""

    def __init__(self, entry_id: str):
        self.entry_id = entry_id
        super().__init__(f"no dead letter {entry_id!r}")


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which entries `list`/`count` return; None matches everything.

    Age is measured from `first_seen` to `now` (default: the time of the call): `older_than=d` takes
    entries at least `d` old, `newer_than=d` those younger than `d`, so the two split the queue.
    `since`/`until` bound `first_seen` itself (since <= first_seen < until); `ids` picks entries by id.
    """

    destination: str | None = None
    table: str | None = None  # "keyspace.table"
    error_class: str | None = None
    older_than: timedelta | None = None
    newer_than: timedelta | None = None
    now: datetime | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: frozenset[str] | None = None

    def __post_init__(self):
        for name in ("since", "until", "now"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be a timezone-aware time, not {value.isoformat()}")
        if self.ids is not None:
            object.__setattr__(self, "ids", frozenset(self.ids))
        if self.table is not None:
            keyspace, dot, table = self.table.partition(".")
            if not (keyspace and dot and table):
                raise ValueError(f"table filter must be 'keyspace.table', not {self.table!r}")

    @property
    def keyspace_table(self) -> tuple[str, str] | None:
        if self.table is None:
            return None
        keyspace, _, table = self.table.partition(".")
        return keyspace, table

    def at(self) -> datetime:
        return self.now or utc_now()

    def matches(self, entry: DeadLetter, now: datetime | None = None) -> bool:
        now = now or self.at()
        return ((self.destination is None or entry.destination == self.destination)
                and (self.table is None or entry.qualified_table == self.table)
                and (self.error_class is None or entry.error_class == self.error_class)
                and (self.older_than is None or now - entry.first_seen >= self.older_than)
                and (self.newer_than is None or now - entry.first_seen < self.newer_than)
                and (self.since is None or entry.first_seen >= self.since)
                and (self.until is None or entry.first_seen < self.until)
                and (self.ids is None or entry.id in self.ids))


ALL = DeadLetterFilter()


class DeadLetterStore(Protocol):
    def add(self, entries: Iterable[DeadLetter], *, mask: Mask = identity) -> list[str]:
        """Persist entries (payload masked, message redacted); their ids. Adding an id that is already
        there keeps one entry, so a retried `add` does not duplicate."""

    def list(self, filter: DeadLetterFilter = ALL) -> list[DeadLetter]:
        """Summaries (payload None) of the matching entries, oldest first."""

    def get(self, entry_id: str) -> DeadLetter:
        """The entry with its payload; DeadLetterNotFoundError if there is none."""

    def remove(self, entry_ids: Iterable[str]) -> int:
        """Delete entries (after a successful replay, or a purge); ids not there are ignored.
        Returns how many were removed."""

    def count(self, filter: DeadLetterFilter = ALL) -> int: ...

    def record_attempt(self, entry_id: str, error: BaseException | str,
                       now: datetime | None = None) -> DeadLetter:
        """A replay failed again: attempts + 1, last_seen, and the new error (a string keeps the
        error class). Returns the updated summary."""


def prepared(entry: DeadLetter, mask: Mask) -> DeadLetter:
    """The entry as a store writes it: payload masked, message redacted."""
    if entry.payload is None:
        raise ValueError(f"dead letter {entry.id} has no payload to store")
    payload = mask(entry.payload)
    return dataclasses.replace(entry, payload=payload, rows=payload.num_rows, message=redact(entry.message))


def after_attempt(entry: DeadLetter, error: BaseException | str, now: datetime | None) -> DeadLetter:
    """`entry` after one more failed attempt (shared by every store's `record_attempt`)."""
    if isinstance(error, BaseException):
        error_class, message = type(error).__name__, str(error)
    else:
        error_class, message = entry.error_class, error
    return dataclasses.replace(entry, attempts=entry.attempts + 1, last_seen=now or utc_now(),
                               error_class=error_class, message=redact(message))
