"""What every destination implements, and the replication semantics they all follow.

Input: the per-table Arrow record batches of `ray_cdc.commitlog.arrow_batches` (one column per CQL
column plus `_op`, `_writetime`, `_ttl`, `_expires_at`, `_segment_id`, `_position`, `_present`,
`_range`, and a `_cells.<c>` companion per non-frozen collection/UDT column with its element cells
and complex deletion), together with the offsets the batch brings each partition to.

Semantics (Cassandra's own reconciliation, so that replaying, reordering across nodes, and the
same change arriving from several replicas (RF > 1) all converge to the same state):
- Last writer wins **per column** (per element for non-frozen collections and UDTs), by writetime: a change sets only the columns in `_present`,
  and a column keeps the value with the highest writetime it has seen (ties: the later-applied
  change wins, which is harmless because a tie means the same write replayed).
- Deletions are tombstones with a writetime: a row, partition or range deletion at time T removes
  every cell written at or before T, and keeps removing later-arriving cells written at or before
  T. A cell written after T survives it.
- TTL: `_expires_at` is kept with the row; an expired row is not live (destinations may also
  remove it physically).
- Exactly once: `write` applies a batch and upserts the offsets it carries in ONE transaction (or,
  where the store has no transactions, writes idempotently with a deduplication token derived from
  the batch's positions). `committed_offsets()` is what a restarted pipeline resumes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from ray_cdc.offsets import Offset
from ray_cdc.schema.model import TableSchema


@dataclass(frozen=True)
class Capabilities:
    """What a destination can do; the pipeline adapts to it rather than testing its type."""

    transactional: bool  # data and offsets commit atomically
    dedup_token: bool = False  # idempotent inserts keyed by a token (ClickHouse)
    ttl_clause: bool = False  # expiry enforced by the store itself
    max_batch_rows: int = 1_000_000


@dataclass
class WriteResult:
    rows: int  # rows of the batch applied
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (row index, reason): for the DLQ


class Destination(Protocol):
    name: str
    capabilities: Capabilities

    def open(self) -> None:
        """Connect, and create the offsets table if it is missing."""

    def ensure_table(self, table: TableSchema) -> None:
        """Create the destination table (and its tombstone bookkeeping) for a Cassandra table."""

    def write(self, table: TableSchema, batch: pa.RecordBatch, offsets: list[Offset]) -> WriteResult:
        """Apply a batch and advance `offsets` atomically (see the module doc)."""

    def commit_offsets(self, offsets: list[Offset]) -> None:
        """Advance offsets over a stretch of log that holds no rows for this destination."""

    def committed_offsets(self) -> dict[str, Offset]:
        """partition id -> the offset this destination has committed."""

    def ping(self) -> None:
        """Raise if the destination is unreachable (readiness checks)."""

    def close(self) -> None: ...


class PreparingDestination(Destination, Protocol):
    """A destination whose write splits in two (optional: the pipeline checks for `prepare`).

    `prepare` is pure and connection-free (type mapping, staging rows, finding values the store would
    refuse), so the transform actors run it off the writer's critical path; `write_prepared` only
    loads the result. `write(table, batch, offsets)` must equal `write_prepared(prepare(table,
    batch), offsets)`. `WriteResult.rejected` indices refer to the rows of the batch given to
    `prepare`. A writer that resumes inside a set re-prepares the remaining rows itself.
    """

    def prepare(self, table: TableSchema, batch: pa.RecordBatch) -> object:
        """The batch in the form `write_prepared` loads (picklable: it travels between actors)."""

    def write_prepared(self, prepared: object, offsets: list[Offset]) -> WriteResult:
        """Apply a prepared batch and advance `offsets` (the same guarantees as `write`)."""
