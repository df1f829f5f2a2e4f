"""What each workload operation should decode into, and a decoded change in the same shape.

The expected cells are `changes.CellChange`s, the type the decoder reports cells in: sharing the
container costs the oracle no independence, because every value put in one here is worked out from the
drawn operation (`expect_write`, the planners in `workload_ops`), never from a decoded or built mutation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ray_cdc.commitlog.changes import CellChange, Change
from ray_cdc.schema.model import ColumnSchema
from ray_cdc.schema.types import CqlType

__all__ = ["ExpectedChange", "describe_change", "expect_write", "expiry"]

_UTC = timezone.utc


def expiry(now: int, ttl: int) -> datetime | None:
    return datetime.fromtimestamp(now + ttl, tz=_UTC) if ttl else None


@dataclass
class ExpectedChange:
    """One change a workload operation is meant to produce, in the terms of `changes.Change`."""

    op: str  # the workload operation (insert, update, ttl_insert, collection_append, ...)
    kind: str  # changes.ROW / PARTITION_DELETE / RANGE_DELETE
    table: str  # keyspace.table
    partition_key: dict
    clustering: dict = field(default_factory=dict)
    cells: dict[str, CellChange] = field(default_factory=dict)
    static: bool = False
    timestamp: int | None = None
    ttl: int = 0
    expires_at: datetime | None = None
    deleted_at: int | None = None
    range_start: tuple[dict, bool] | None = None
    range_end: tuple[dict, bool] | None = None

    def describe(self) -> dict:
        return {
            "kind": self.kind, "table": self.table, "partition_key": self.partition_key,
            "clustering": self.clustering, "static": self.static, "timestamp": self.timestamp,
            "ttl": self.ttl, "expires_at": self.expires_at, "deleted_at": self.deleted_at,
            "range_start": self.range_start, "range_end": self.range_end,
            "cells": {n: _describe_cell(c) for n, c in sorted(self.cells.items())},
        }


def _canonical(removed: list) -> list:
    # removals come back in Cassandra's cell-path order, not in the order they were asked for
    return sorted(removed, key=repr)


def _describe_cell(c: CellChange) -> dict:
    return {"value": c.value, "timestamp": c.timestamp, "ttl": c.ttl, "expires_at": c.expires_at,
            "deleted": c.deleted, "replaced": c.replaced, "removed": _canonical(c.removed)}


def describe_change(change: Change) -> dict:
    """A decoded change in the shape of `ExpectedChange.describe()`, for comparing the two."""
    def bound(b):
        return None if b is None else (b.values, b.inclusive)

    return {
        "kind": change.kind, "table": change.table.qualified_name, "partition_key": change.partition_key,
        "clustering": change.clustering, "static": change.static, "timestamp": change.timestamp,
        "ttl": change.ttl, "expires_at": change.expires_at, "deleted_at": change.deleted_at,
        "range_start": bound(change.range_start), "range_end": bound(change.range_end),
        "cells": {n: _describe_cell(c) for n, c in sorted(change.cells.items())},
    }


def _collection_value(t: CqlType, value) -> Any:
    """The elements an overwrite writes, as the change reports them (None when there are none)."""
    if value is None:
        return None
    if t.name == "udt":
        value = {n: v for n, v in value.items() if v is not None}
    return value if len(value) else None


def expect_write(column: ColumnSchema, value, ts: int, ttl: int, now: int) -> CellChange:
    """`SET column = value` (INSERT or UPDATE)."""
    if column.is_complex:  # a complex deletion at ts − 1, then the elements
        written = _collection_value(column.type, value)
        if written is None:
            return CellChange(None, ts - 1, deleted=True, replaced=True)
        return CellChange(written, ts, ttl, expiry(now, ttl), replaced=True)
    if value is None:
        return CellChange(None, ts, deleted=True)
    if column.type.name == "counter":
        value = value.count
    return CellChange(value, ts, ttl, expiry(now, ttl))
