"""Replaying dead letters after a fix: each entry's rows through its destination's write path again.

An entry's payload is what its writer was given: already transformed and masked for that
destination, with the table schema it was refused under (`table_schema.py`). A replay runs the
destination's own `prepare` (type mapping: a changed mapping applies) and the writer's write
(`DestinationWriter.write_rows`: table creation, retries, bisection of a batch refused as a whole),
and moves no offset. Masking is NOT applied again: the payload is masked already, and a keyed hash
of a hash is another value.

Each entry is applied exactly once in effect: it is removed only after its rows are written, and a
crash between the write and the removal leaves it to be replayed again, which changes nothing, as
every destination applies a change only where its writetime wins (a replayed old row never
overwrites a newer one). An entry whose rows are refused again stays, with attempts + 1, last_seen
and the new reason; when only some rows are refused, those become one new entry (same first_seen,
attempts + 1) and the old entry goes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ray_cdc.dlq.entry import DeadLetter, utc_now
from ray_cdc.dlq.split import dead_letters, split_rejected
from ray_cdc.dlq.store import DeadLetterFilter, DeadLetterNotFoundError, DeadLetterStore
from ray_cdc.dlq.table_schema import table_schema_of
from ray_cdc.errors import RayCdcError
from ray_cdc.pipeline.writing import DestinationWriter, RetryPolicy

Status = Literal["replayed", "refused", "partly", "failed", "skipped", "planned"]


@dataclass(frozen=True)
class Outcome:
    """What a replay did with one entry. `refused`: every row refused again; `partly`: some were
    (they are a new entry, `new_ids`); `failed`: the write raised; `skipped`: not attempted."""

    entry_id: str
    destination: str
    table: str
    status: Status
    rows_written: int = 0
    rows_refused: int = 0
    reason: str = ""
    new_ids: tuple[str, ...] = ()


@dataclass
class ReplayReport:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def rows_written(self) -> int:
        return sum(o.rows_written for o in self.outcomes)

    @property
    def complete(self) -> bool:
        """Every matching entry was written and removed (or, in a dry run, could be)."""
        return all(o.status in ("replayed", "planned") for o in self.outcomes)


class Replayer:
    """Replays the entries of `store` into destinations built by `destinations` (name -> factory of
    an unopened destination, as `pipeline.run.destination_factories` gives). `before_remove` runs
    between an entry's write and its removal (tests put a crash there)."""

    def __init__(self, store: DeadLetterStore, destinations: Mapping[str, Callable[[], Any]], *,
                 policy: RetryPolicy | None = None, clock: Callable[[], datetime] = utc_now,
                 before_remove: Callable[[DeadLetter], None] | None = None):
        self._store = store
        self._factories = destinations
        self._policy = policy or RetryPolicy(max_elapsed=60.0)  # a replay reports, it does not wait forever
        self._clock = clock
        self._before_remove = before_remove
        self._writers: dict[str, DestinationWriter] = {}

    def replay(self, filter: DeadLetterFilter, *, dry_run: bool = False) -> ReplayReport:
        report = ReplayReport()
        try:
            for summary in self._store.list(filter):
                outcome = self._plan(summary) if dry_run else self._replay_one(summary)
                if outcome is not None:
                    report.outcomes.append(outcome)
        finally:
            self.close()
        return report

    def close(self) -> None:
        for writer in self._writers.values():
            writer.destination.close()
        self._writers.clear()

    # --- one entry ---------------------------------------------------------------------------------

    def _plan(self, summary: DeadLetter) -> Outcome:
        if summary.destination not in self._factories:
            return _skipped(summary, f"destination {summary.destination!r} is not configured")
        try:
            table_schema_of(self._store.get(summary.id).payload, entry=summary.id)
        except DeadLetterNotFoundError:
            return _skipped(summary, "removed meanwhile")
        except RayCdcError as exc:
            return _skipped(summary, str(exc))
        return _outcome(summary, "planned", rows_written=summary.rows)

    def _replay_one(self, summary: DeadLetter) -> Outcome | None:
        if summary.destination not in self._factories:
            return _skipped(summary, f"destination {summary.destination!r} is not configured")
        try:
            entry = self._store.get(summary.id)
        except DeadLetterNotFoundError:
            return None  # replayed or purged by someone else since it was listed
        try:
            table = table_schema_of(entry.payload, entry=entry.id)
            writer = self._writer(entry.destination)
            destination = writer.destination
            prepare = getattr(destination, "prepare", None)  # the transform stage's part; no masking
            prepared = prepare(table, entry.payload) if prepare is not None else None
            result = writer.write_rows(table, entry.payload, prepared)
        except RayCdcError as exc:
            updated = self._store.record_attempt(entry.id, exc, now=self._clock())
            return _outcome(entry, "failed", reason=updated.message)
        if not result.rejected:
            if self._before_remove is not None:
                self._before_remove(entry)
            self._store.remove([entry.id])
            return _outcome(entry, "replayed", rows_written=result.rows)
        return self._refused_again(entry, table, result)

    def _refused_again(self, entry: DeadLetter, table, result) -> Outcome:
        now = self._clock()
        if len({index for index, _ in result.rejected}) == entry.rows:
            updated = self._store.record_attempt(entry.id, result.rejected[0][1], now=now)
            return _outcome(entry, "refused", rows_refused=entry.rows, reason=updated.message)
        _, bad, reasons = split_rejected(entry.payload, result.rejected)
        fresh = [dataclasses.replace(e, attempts=entry.attempts + 1, first_seen=entry.first_seen, last_seen=now)
                 for e in dead_letters(bad, reasons, destination=entry.destination, node=entry.node,
                                       error_class=entry.error_class, now=now, table=table)]
        # added before the old entry goes: a crash in between leaves the refused rows twice, never 0 times
        new_ids = tuple(self._store.add(fresh))
        self._store.remove([entry.id])
        return _outcome(entry, "partly", rows_written=result.rows, rows_refused=bad.num_rows,
                        reason=reasons[0], new_ids=new_ids)

    def _writer(self, name: str) -> DestinationWriter:
        writer = self._writers.get(name)
        if writer is None:
            destination = self._factories[name]()
            destination.open()
            writer = self._writers[name] = DestinationWriter(destination, policy=self._policy)
        return writer


def _outcome(entry: DeadLetter, status: Status, **details) -> Outcome:
    return Outcome(entry.id, entry.destination, entry.qualified_table, status, **details)


def _skipped(entry: DeadLetter, reason: str) -> Outcome:
    return _outcome(entry, "skipped", reason=reason)
