"""A dead letter: rows a destination refused, with everything needed to judge and replay them.

The payload is an Arrow RecordBatch of the refused rows with the input batch's own schema (CQL
columns, `_op`, `_writetime`, `_segment_id`, `_position`, ..., and the `keyspace`/`table`/`table_id`
schema metadata), so a replay re-drives exactly what the writer was given, through the same code.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from ray_cdc.commitlog.position import CommitLogPosition


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    # uuid4: ids made by many actors (and replays) never collide without any coordination.
    return str(uuid.uuid4())


def is_valid_id(value: str) -> bool:
    """A canonical uuid string: the file store builds file names from ids, so nothing else may pass."""
    try:
        return str(uuid.UUID(value)) == value
    except (ValueError, TypeError, AttributeError):
        return False


@dataclass(frozen=True)
class DeadLetter:
    """One entry of the DLQ. `payload` is None in the summaries `DeadLetterStore.list` returns."""

    id: str
    destination: str
    keyspace: str
    table: str
    table_id: str
    node: str
    segment_id: int  # source position of the entry's earliest row
    position: int
    error_class: str
    message: str
    rows: int
    attempts: int = 1
    first_seen: datetime = field(default_factory=utc_now)
    last_seen: datetime = field(default_factory=utc_now)
    # compare=False: RecordBatch.__eq__ is value equality on possibly large data; ids identify entries.
    payload: pa.RecordBatch | None = field(default=None, compare=False, repr=False)

    @property
    def qualified_table(self) -> str:
        return f"{self.keyspace}.{self.table}"

    @property
    def source(self) -> CommitLogPosition:
        return CommitLogPosition(self.segment_id, self.position)

    def summary(self) -> DeadLetter:
        return dataclasses.replace(self, payload=None)

    def with_payload(self, payload: pa.RecordBatch | None) -> DeadLetter:
        return dataclasses.replace(self, payload=payload)

    @classmethod
    def new(cls, payload: pa.RecordBatch, *, destination: str, node: str, error_class: str, message: str,
            now: datetime | None = None) -> DeadLetter:
        """An entry for `payload` (rows of one input batch): table and source position come from the
        batch itself, so they can never disagree with the rows they describe."""
        meta = payload.schema.metadata or {}
        missing = [k for k in (b"keyspace", b"table", b"table_id") if k not in meta]
        if missing:
            raise ValueError(f"dead letter payload lacks schema metadata {[k.decode() for k in missing]}")
        segment_id, position = earliest_position(payload)
        seen = now or utc_now()
        return cls(id=new_id(), destination=destination, keyspace=meta[b"keyspace"].decode(),
                   table=meta[b"table"].decode(), table_id=meta[b"table_id"].decode(), node=node,
                   segment_id=segment_id, position=position, error_class=error_class, message=message,
                   rows=payload.num_rows, attempts=1, first_seen=seen, last_seen=seen, payload=payload)


def earliest_position(batch: pa.RecordBatch) -> tuple[int, int]:
    """The smallest (`_segment_id`, `_position`) of the batch's rows: where replay of them starts."""
    if batch.num_rows == 0:
        raise ValueError("a dead letter needs at least one row")
    segments = batch.column("_segment_id").to_numpy(zero_copy_only=False)
    positions = batch.column("_position").to_numpy(zero_copy_only=False)
    first = int(np.lexsort((positions, segments))[0])
    return int(segments[first]), int(positions[first])
