"""Change records: what a decoded mutation means, row by row, with typed values (format doc §14).

A `Change` is one row-level event: a row written (insert or update, with its cells), a row,
partition or range deleted. Every change of one mutation carries the mutation's position.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ray_cdc.commitlog.counters import counter_total
from ray_cdc.commitlog.mutation_model import (
    CELL_IS_DELETED,
    CELL_IS_EXPIRING,
    INCLUSIVE_KINDS,
    NO_DELETION_TIME,
    START_KINDS,
    Cell,
    ComplexColumn,
    Mutation,
    PartitionUpdate,
    RangeTombstoneMarker,
    Row,
)
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.schema.model import ColumnSchema, TableSchema

ROW, PARTITION_DELETE, RANGE_DELETE = "row", "partition_delete", "range_delete"


@dataclass(slots=True)
class CellChange:
    """A column written or deleted by a change.

    For a non-frozen collection or UDT, `value` holds the elements this change writes, `replaced`
    says the column was cleared first (an overwrite or delete: a complex deletion), and `removed`
    lists the elements (keys, list cell ids) it deletes.
    """

    value: Any
    timestamp: int
    ttl: int = 0
    expires_at: datetime | None = None
    deleted: bool = False
    replaced: bool = False
    removed: list = field(default_factory=list)


@dataclass(slots=True)
class RangeBound:
    values: dict[str, Any]  # a prefix of the clustering columns; empty = unbounded
    inclusive: bool


@dataclass(slots=True)
class Change:
    kind: str
    table: TableSchema
    position: CommitLogPosition
    partition_key: dict[str, Any]
    clustering: dict[str, Any] = field(default_factory=dict)
    cells: dict[str, CellChange] = field(default_factory=dict)
    static: bool = False
    timestamp: int | None = None  # row liveness (set by INSERT)
    ttl: int = 0
    expires_at: datetime | None = None
    deleted_at: int | None = None  # row, partition or range deletion timestamp
    range_start: RangeBound | None = None
    range_end: RangeBound | None = None

    @property
    def writetime(self) -> int:
        """The latest timestamp in the change: its version for last-writer-wins."""
        times = [c.timestamp for c in self.cells.values()]
        times += [t for t in (self.timestamp, self.deleted_at) if t is not None]
        return max(times) if times else 0

    def to_json(self) -> dict:
        table = self.table
        out = {
            "keyspace": table.keyspace,
            "table": table.name,
            "table_id": str(table.id),
            "segment_id": self.position.segment_id,
            "position": self.position.offset,
            "kind": self.kind,
            "partition_key": _json_values(table, self.partition_key),
            "clustering": _json_values(table, self.clustering),
            "cells": {name: _cell_json(table.column(name), c) for name, c in self.cells.items()},
        }
        if self.static:
            out["static"] = True
        if self.timestamp is not None:
            out["row"] = {"timestamp": self.timestamp, "ttl": self.ttl, "expires_at": _iso(self.expires_at)}
        if self.deleted_at is not None:
            out["deleted_at"] = self.deleted_at
        if self.kind == RANGE_DELETE:
            out["range"] = {
                "start": _json_values(table, self.range_start.values),
                "start_inclusive": self.range_start.inclusive,
                "end": _json_values(table, self.range_end.values),
                "end_inclusive": self.range_end.inclusive,
            }
        return out


def _iso(t: datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t is not None else None


def _json_values(table: TableSchema, values: dict) -> dict:
    return {k: (table.column(k).type.to_json(v) if v is not None else None) for k, v in values.items()}


def _cell_json(column: ColumnSchema, c: CellChange) -> dict:
    value = column.type.to_json(c.value) if c.value is not None else None
    out = {"value": value, "timestamp": c.timestamp, "ttl": c.ttl, "expires_at": _iso(c.expires_at),
           "deleted": c.deleted}
    if column.is_complex:
        out["replaced"] = c.replaced
        out["removed"] = [_element_json(column, e) for e in c.removed]
    return out


def _element_json(column: ColumnSchema, element) -> Any:
    key_type = column.type.params[0] if column.type.name in ("set", "map") else None
    if key_type is not None:
        return key_type.to_json(element)
    return str(element)


# --- building changes from the mutation model ----------------------------------------------------


def expiry(local_deletion_time: int, unsigned: bool = False) -> datetime | None:
    """The expiry time of an expiring cell or row (its local deletion time, in seconds)."""
    if local_deletion_time == NO_DELETION_TIME and not unsigned:
        return None
    if unsigned:
        local_deletion_time &= 0xFFFFFFFF
        if local_deletion_time == 0xFFFFFFFF:
            return None
    return datetime.fromtimestamp(local_deletion_time, tz=timezone.utc)


def decode_partition_key(table: TableSchema, key: bytes) -> dict[str, Any]:
    columns = table.partition_key
    if len(columns) == 1:
        return {columns[0].name: columns[0].type.decode(key)}
    return {c.name: c.type.decode(part) for c, part in zip(columns, split_composite(key))}


def split_composite(key: bytes) -> list[bytes]:
    """The components of a multi-column partition key (§13.2): u16 length, bytes, 0x00, each."""
    parts, pos = [], 0
    while pos < len(key):
        n = int.from_bytes(key[pos : pos + 2], "big")
        parts.append(key[pos + 2 : pos + 2 + n])
        pos += 3 + n
    return parts


def changes_of(mutation: Mutation, position: CommitLogPosition, *, unsigned_ldt: bool = False) -> Iterator[Change]:
    for update in mutation.updates:
        yield from _update_changes(update, position, unsigned_ldt)


def _update_changes(update: PartitionUpdate, position, unsigned_ldt) -> Iterator[Change]:
    table = update.table
    pk = decode_partition_key(table, update.key)
    if update.partition_deletion is not None and not update.partition_deletion.is_live:
        yield Change(PARTITION_DELETE, table, position, pk, deleted_at=update.partition_deletion.marked_for_delete_at)
    if update.static_row is not None:
        yield _row_change(update, update.static_row, update.static_columns, position, pk, unsigned_ldt)
    start = None
    for unfiltered in update.unfiltereds:
        if isinstance(unfiltered, RangeTombstoneMarker):
            start, change = _marker_change(table, unfiltered, start, position, pk)
            if change is not None:
                yield change
        else:
            yield _row_change(update, unfiltered, update.regular_columns, position, pk, unsigned_ldt)


def _bound(table: TableSchema, marker: RangeTombstoneMarker, inclusive: bool) -> RangeBound:
    cols = table.clustering
    return RangeBound({c.name: (c.type.decode(v) if v is not None else None)
                       for c, v in zip(cols, marker.clustering)}, inclusive)


def _marker_change(table, marker: RangeTombstoneMarker, start, position, pk):
    """Markers come as start/end pairs (a boundary closes one range and opens the next)."""
    if marker.kind in START_KINDS:
        return (marker, _bound(table, marker, marker.kind in INCLUSIVE_KINDS)), None
    end_inclusive = marker.kind in INCLUSIVE_KINDS or marker.kind == 5  # INCL_END_EXCL_START_BOUNDARY
    change = None
    if start is not None:
        start_marker, start_bound = start
        end_bound = _bound(table, marker, end_inclusive)
        change = Change(RANGE_DELETE, table, position, pk, clustering=dict(start_bound.values),
                        deleted_at=start_marker.deletion.marked_for_delete_at,
                        range_start=start_bound, range_end=end_bound)
    if marker.is_boundary:
        return (RangeTombstoneMarker(marker.kind, marker.clustering, marker.start_deletion),
                _bound(table, marker, marker.kind == 2)), change  # EXCL_END_INCL_START opens inclusive
    return None, change


def _row_change(update: PartitionUpdate, row: Row, names, position, pk, unsigned_ldt) -> Change:
    table = update.table
    clustering = {c.name: (c.type.decode(v) if v is not None else None)
                  for c, v in zip(table.clustering, row.clustering)}
    change = Change(ROW, table, position, pk, clustering, static=row.is_static)
    if row.liveness is not None:
        change.timestamp = row.liveness.timestamp
        change.ttl = row.liveness.ttl
        if row.liveness.ttl:
            change.expires_at = expiry(row.liveness.local_expiration_time, unsigned_ldt)
    if row.deletion is not None:
        change.deleted_at = row.deletion.marked_for_delete_at
    for index, data in row.columns:
        column = table.column(names[index])
        if isinstance(data, ComplexColumn):
            change.cells[column.name] = _complex_change(column, data, unsigned_ldt)
        else:
            change.cells[column.name] = _simple_change(column, data, unsigned_ldt)
    return change


def _simple_change(column: ColumnSchema, cell: Cell, unsigned_ldt) -> CellChange:
    if cell.flags & CELL_IS_DELETED:
        return CellChange(None, cell.timestamp, deleted=True)
    value = cell_value(column, cell.value)
    if cell.flags & CELL_IS_EXPIRING:
        return CellChange(value, cell.timestamp, cell.ttl, expiry(cell.local_deletion_time, unsigned_ldt))
    return CellChange(value, cell.timestamp)


def cell_value(column: ColumnSchema, raw: bytes) -> Any:
    """A simple cell's typed value; counters are stored as contexts in the commitlog."""
    if column.type.name == "counter":
        return counter_total(raw) if raw else None
    return column.type.decode(raw)


def _complex_change(column: ColumnSchema, data: ComplexColumn, unsigned_ldt) -> CellChange:
    typ = column.type
    replaced = data.deletion is not None and not data.deletion.is_live
    live, removed = [], []
    timestamp = data.deletion.marked_for_delete_at if replaced else 0
    ttl, expires = 0, None
    for cell in data.cells:
        timestamp = max(timestamp, cell.timestamp)
        element = typ.decode_cell_path(cell.path)
        if cell.flags & CELL_IS_DELETED:
            removed.append(element)
            continue
        value_type = typ.cell_value_type(cell.path)
        live.append((element, value_type.decode(cell.value) if value_type is not None else None))
        if cell.flags & CELL_IS_EXPIRING and not ttl:
            ttl, expires = cell.ttl, expiry(cell.local_deletion_time, unsigned_ldt)
    value = _collection_value(typ, live) if live else None
    return CellChange(value, timestamp, ttl, expires, deleted=replaced and not live, replaced=replaced,
                      removed=removed)


def _collection_value(typ, live: list) -> Any:
    name = typ.name
    if name == "list":
        return [v for _, v in live]
    if name == "set":
        return frozenset(e for e, _ in live)
    return dict(live)  # map: key -> value; udt: field -> value
