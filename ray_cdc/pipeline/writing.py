"""The writer's logic: apply ChangeSets to one destination exactly once, retrying what is transient.

Exactly once = offsets committed with the data + replays skipped + idempotent application:
- a set whose end the destination already committed is skipped whole; rows at or before the
  committed position inside a set are filtered out (a crash can land between two sets only);
- the offset of a set goes with its *last* table batch (same transaction where the destination
  has one), so an offset is never saved before all of its set's data;
- when a crash falls between two table batches of one set, the set is replayed and its first
  batches applied again: per-column last-writer-wins makes that a no-op.
Rows the destination rejects go to the dead-letter store; the stream carries on.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.commitlog.reader import ChangeSet
from ray_cdc.dlq import dead_letters, split_rejected
from ray_cdc.errors import TransientDestinationError
from ray_cdc.offsets import Offset, partition_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter for transient destination errors."""

    initial: float = 0.5
    maximum: float = 30.0
    max_elapsed: float | None = None  # None: retry for as long as it takes

    def delays(self, rng: random.Random | None = None):
        rng = rng or random.Random()
        ceiling = self.initial
        while True:
            yield rng.uniform(0, ceiling)
            ceiling = min(self.maximum, ceiling * 2)


def retry(call: Callable, policy: RetryPolicy, *, what: str, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic):
    """Run `call`; on TransientDestinationError wait and try again, within the policy's budget."""
    started = clock()
    attempt = 0
    for delay in policy.delays():
        try:
            return call()
        except TransientDestinationError as e:
            attempt += 1
            if policy.max_elapsed is not None and clock() - started + delay > policy.max_elapsed:
                raise
            log.warning("%s failed (attempt %d), retrying in %.1f s: %s", what, attempt, delay, e)
            sleep(delay)
    raise AssertionError("unreachable: delays() is endless")


@dataclass
class ApplyResult:
    rows: int = 0
    skipped_rows: int = 0  # already applied before a restart
    dead_letters: int = 0
    offset: Offset | None = None


@dataclass
class DestinationWriter:
    """Applies ChangeSets of any node to one destination (see the module doc)."""

    destination: object  # ray_cdc.destinations.base.Destination
    dead_letters: object | None = None  # ray_cdc.dlq store: add(entries)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    _committed: dict[str, Offset] = field(default_factory=dict)
    _tables: set = field(default_factory=set)

    def start(self) -> dict[str, Offset]:
        self._committed = dict(retry(self.destination.committed_offsets, self.policy,
                                     what=f"{self.destination.name}: reading offsets", sleep=self.sleep))
        return dict(self._committed)

    def committed(self, partition: str) -> Offset | None:
        return self._committed.get(partition)

    def apply(self, node: str, change_set: ChangeSet) -> ApplyResult:
        key = partition_id(node, change_set.segment_id)
        committed = self._committed.get(key)
        result = ApplyResult()
        target = Offset(node, change_set.segment_id, change_set.end.offset, change_set.completed)
        if committed is not None and (committed.position > target.position or committed == target):
            result.skipped_rows = change_set.rows
            return result
        batches = [(t, _after(b, committed)) for t, b in change_set.batches]
        result.skipped_rows = change_set.rows - sum(b.num_rows for _, b in batches)
        batches = [(t, b) for t, b in batches if b.num_rows]
        if not batches:
            self._commit_offsets([target])
        for i, (table, batch) in enumerate(batches):
            offsets = [target] if i == len(batches) - 1 else []
            written = self._write(table, batch, offsets)
            result.rows += written.rows
            result.dead_letters += self._dead_letter(node, table, batch, written.rejected)
        self._committed[key] = committed.advance(target) if committed is not None else target
        result.offset = target
        return result

    def _write(self, table, batch: pa.RecordBatch, offsets: list[Offset]):
        name = self.destination.name
        if table.id not in self._tables:
            retry(lambda: self.destination.ensure_table(table), self.policy,
                  what=f"{name}: creating {table.qualified_name}", sleep=self.sleep)
            self._tables.add(table.id)
        return retry(lambda: self.destination.write(table, batch, offsets), self.policy,
                     what=f"{name}: writing {batch.num_rows} rows of {table.qualified_name}", sleep=self.sleep)

    def _commit_offsets(self, offsets: list[Offset]) -> None:
        retry(lambda: self.destination.commit_offsets(offsets), self.policy,
              what=f"{self.destination.name}: committing offsets", sleep=self.sleep)

    def _dead_letter(self, node: str, table, batch: pa.RecordBatch, rejected: list[tuple[int, str]]) -> int:
        if not rejected:
            return 0
        if self.dead_letters is None:
            log.error("%s rejected %d rows of %s and no dead-letter store is configured",
                      self.destination.name, len(rejected), table.qualified_name)
            return 0
        _, bad, reasons = split_rejected(batch, rejected)
        self.dead_letters.add(dead_letters(bad, reasons, destination=self.destination.name, node=node,
                                           error_class="RejectedRow"))
        return bad.num_rows


def _after(batch: pa.RecordBatch, committed: Offset | None) -> pa.RecordBatch:
    """The rows of a batch a destination does not have yet (positions after its offset)."""
    if committed is None:
        return batch
    keep = pc.greater(batch.column("_position"), pa.scalar(committed.position, pa.int64()))
    return batch.filter(keep)
