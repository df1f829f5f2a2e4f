"""The writer's logic: apply ChangeSets to one destination exactly once, retrying what is transient.

Exactly once = offsets committed after the data + replays skipped + idempotent application:
- a set whose end the destination already committed is skipped whole; rows at or before the
  committed position inside a set are filtered out;
- a set that does not start where the destination's offset is (a *gap*: an earlier set was deferred
  or lost with a crashed actor) is deferred, never applied: an offset must not jump over data;
- the offset of a set is committed after all of its batches and after its rejected rows are in the
  dead-letter store, so an offset never covers data (or dead letters) that is not saved;
- when a crash falls between two table batches of one set, the set is replayed and its first
  batches applied again: per-column last-writer-wins makes that a no-op.
Rows the destination rejects go to the dead-letter store; the stream carries on.

Destinations progress independently: with `detach_after`, a destination still failing after that
many seconds of retries makes `apply` return a *deferred* result instead of blocking its readers
(which keep feeding the other destinations); a `Breaker` then answers at once until its backoff
has passed, and the coordinator hands the segment back to this writer later, from its own offset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.destinations.evolution import StalePreparedError
from ray_cdc.dlq import DeadLetterError, dead_letters, split_rejected
from ray_cdc.dlq.isolate import write_isolating
from ray_cdc.errors import TransientDestinationError
from ray_cdc.offsets import Offset, partition_id
from ray_cdc.pipeline.retry import Breaker, RetryPolicy, retry

log = logging.getLogger(__name__)


Status = Literal["applied", "skipped", "deferred"]


@dataclass
class ApplyResult:
    rows: int = 0
    skipped_rows: int = 0  # already applied before a restart
    dead_letters: int = 0
    offset: Offset | None = None
    status: Status = "applied"
    reason: str = ""  # why a set was deferred


@dataclass
class TableBatch:
    """One table's rows of a set, with what the destination's `prepare` made of them (transform
    stage) when it has one: the writer then only loads it."""

    table: Any  # TableSchema
    batch: pa.RecordBatch
    prepared: Any = None


def table_batches(change_set) -> list[TableBatch]:
    """A ChangeSet's `(table, batch)` pairs, or a transformed set's TableBatches, alike."""
    items = getattr(change_set, "items", None)
    if items is not None:
        return list(items)
    return [TableBatch(t, b) for t, b in change_set.batches]


def warm(change_set) -> None:
    """Do now the CPU work a destination's prepared batches left for load time (`warm()`, when they
    have it), so that it runs beside the load of the set before (actors/writer.py)."""
    for item in table_batches(change_set):
        ready = getattr(item.prepared, "warm", None)
        if ready is not None:
            ready()


class _Unset:
    pass


UNSET: Any = _Unset()


@dataclass
class DestinationWriter:
    """Applies ChangeSets of any node to one destination (see the module doc)."""

    destination: object  # ray_cdc.destinations.base.Destination
    dead_letters: object | None = None  # anything with add(entries): a ray_cdc.dlq store, the DLQ actor
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    detach_after: float | None = None  # None: retry in place for as long as the policy allows
    clock: Callable[[], float] = time.monotonic
    _committed: dict[str, Offset] = field(default_factory=dict)
    _tables: set = field(default_factory=set)
    _breaker: Breaker | None = None

    def __post_init__(self):
        self._breaker = Breaker(self.policy, self.clock)

    def start(self) -> dict[str, Offset]:
        self._committed = dict(retry(self.destination.committed_offsets, self.policy,
                                     what=f"{self.destination.name}: reading offsets", sleep=self.sleep))
        return dict(self._committed)

    def committed(self, partition: str) -> Offset | None:
        return self._committed.get(partition)

    def apply(self, node: str, change_set, start: CommitLogPosition | None = UNSET) -> ApplyResult:
        """Apply one set. `start`: the position the set follows (None: the segment's beginning);
        given, a set that does not follow this destination's offset is deferred (see module doc)."""
        key = partition_id(node, change_set.segment_id)
        committed = self._committed.get(key)
        target = Offset(node, change_set.segment_id, change_set.end.offset, change_set.completed)
        items = table_batches(change_set)
        total = sum(i.batch.num_rows for i in items)
        if committed is not None and (committed.position > target.position or committed == target):
            return ApplyResult(skipped_rows=total, status="skipped")
        if start is not UNSET and _gap(committed, start):
            return ApplyResult(status="deferred", reason=f"gap: {key} is at "
                               f"{committed.position if committed else 'nothing'}, the set follows {start}")
        if self.detach_after is not None and not self._breaker.allows():
            return ApplyResult(status="deferred", reason=f"{self.destination.name} is unavailable")
        # a half-open breaker tries once: the destination just failed, its readers must not wait long
        budget = None if self.detach_after is None else 0.0 if self._breaker.tripped else self.detach_after
        try:
            result = self._apply(node, items, committed, target, budget)
        except (TransientDestinationError, DeadLetterError) as e:
            if self.detach_after is None:
                raise
            self._breaker.trip()
            if self.policy.max_elapsed is not None and self._breaker.down_for() > self.policy.max_elapsed:
                raise  # down for longer than the operator allows: stop rather than fall behind forever
            log.warning("%s: deferring %s up to %s: %s", self.destination.name, key, target.position, e)
            return ApplyResult(status="deferred", reason=str(e))
        self._breaker.reset()
        self._committed[key] = committed.advance(target) if committed is not None else target
        result.offset = target
        return result

    def _apply(self, node, items: list[TableBatch], committed: Offset | None, target: Offset,
               budget: float | None) -> ApplyResult:
        result = ApplyResult()
        for item in items:
            batch = _after(item.batch, committed)
            result.skipped_rows += item.batch.num_rows - batch.num_rows
            if not batch.num_rows:
                continue
            # a set partly applied before (resumed mid-set) is re-prepared from its remaining rows
            prepared = item.prepared if batch.num_rows == item.batch.num_rows else None
            written = self._write(item.table, batch, prepared, budget)
            result.rows += written.rows
            result.dead_letters += self._dead_letter(node, item.table, batch, written.rejected, budget)
        self._commit_offsets([target], budget)
        return result

    def write_rows(self, table, batch: pa.RecordBatch, prepared=None):
        """Write rows outside any set, moving no offset (a DLQ replay); the same path as `apply`'s."""
        return self._write(table, batch, prepared, None)

    def _write(self, table, batch: pa.RecordBatch, prepared, budget: float | None):
        name = self.destination.name
        if table.id not in self._tables:
            retry(lambda: self.destination.ensure_table(table), self.policy, budget=budget,
                  what=f"{name}: creating {table.qualified_name}", sleep=self.sleep, clock=self.clock)
            self._tables.add(table.id)
        whole = None
        if prepared is not None and hasattr(self.destination, "write_prepared"):
            def whole():
                try:
                    return self.destination.write_prepared(prepared, [])
                except StalePreparedError:  # prepared before a schema change was applied: again, here
                    return self.destination.write(table, batch, [])

        def call():  # a batch refused as a whole is bisected to its refused rows (dlq/isolate.py)
            return write_isolating(batch, lambda rows: self.destination.write(table, rows, []), whole)
        # offsets are committed once the whole set and its dead letters are saved (module doc)
        return retry(call, self.policy, budget=budget, sleep=self.sleep, clock=self.clock,
                     what=f"{name}: writing {batch.num_rows} rows of {table.qualified_name}")

    def _commit_offsets(self, offsets: list[Offset], budget: float | None) -> None:
        retry(lambda: self.destination.commit_offsets(offsets), self.policy, budget=budget,
              what=f"{self.destination.name}: committing offsets", sleep=self.sleep, clock=self.clock)

    def _dead_letter(self, node: str, table, batch: pa.RecordBatch, rejected: list[tuple[int, str]],
                     budget: float | None) -> int:
        if not rejected:
            return 0
        if self.dead_letters is None:
            log.error("%s rejected %d rows of %s and no dead-letter store is configured",
                      self.destination.name, len(rejected), table.qualified_name)
            return 0
        _, bad, reasons = split_rejected(batch, rejected)
        entries = dead_letters(bad, reasons, destination=self.destination.name, node=node,
                               error_class="RejectedRow", table=table)
        # a store that is down is waited for like a destination: the offset must not pass these rows
        retry(lambda: self.dead_letters.add(entries), self.policy, budget=budget, sleep=self.sleep,
              clock=self.clock, retry_on=(DeadLetterError,),
              what=f"{self.destination.name}: saving {bad.num_rows} dead letters")
        return bad.num_rows


def _gap(committed: Offset | None, start: CommitLogPosition | None) -> bool:
    """The set starts after `start`; the destination holds everything up to `committed`."""
    if start is None:
        return False
    return committed is None or committed.position < start.offset


def _after(batch: pa.RecordBatch, committed: Offset | None) -> pa.RecordBatch:
    """The rows of a batch a destination does not have yet (positions after its offset)."""
    if committed is None:
        return batch
    first = pc.min(batch.column("_position")).as_py()
    if first is None or first > committed.position:
        return batch  # the usual case, all of it new: a filter would copy every column
    keep = pc.greater(batch.column("_position"), pa.scalar(committed.position, pa.int64()))
    return batch.filter(keep)
