"""Schema evolution, destination-neutral: what a destination table must become for a batch's schema.

A batch carries the TableSchema of its time (the registry's version at its writetime). A destination
compares it with the columns it holds (`DestColumn`s, read from its catalog) and gets a `Plan`:
- columns to ADD (nullable; older rows read NULL),
- columns to WIDEN (a destination type change in the destination's `widenings`, e.g. int -> bigint),
- dropped columns to DROP (only with `dropped_columns="drop"`; the default "keep" leaves them, and
  nothing writes them any more),
- `conflicts`: a type change the destination cannot take (narrowing or unrelated). Recorded, never
  applied: the batch's rows that write such a column are refused (they go to the DLQ with the reason);
  its other rows are written,
- `layout`: the TableSchema the destination writes with. Its value columns are in the destination's
  own order (a destination may key bookkeeping by column ordinal), new ones appended; columns the batch
  does not know (kept dropped ones, or newer ones when an older batch is replayed) stay in it with
  their stored type, so a batch of any version is written against the whole stored table.

A batch older than the destination's columns is never a reason for DDL: a column it lacks is not a
drop unless its schema lists it as dropped, and a type narrower than the stored one (stored bigint,
batch int) fits as it is.

`fit_batch` then shapes a batch to the layout: missing columns become NULL, columns whose stored type
is wider are cast, and rows writing a conflicting column are taken out with their reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.commitlog.arrow_batches import batch_schema
from ray_cdc.destinations.base import WriteResult
from ray_cdc.errors import DestinationError
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.types import CqlType

log = logging.getLogger(__name__)

DroppedColumns = Literal["keep", "drop"]
_VALUE_KINDS = (ColumnKind.REGULAR, ColumnKind.STATIC)


class SchemaEvolutionError(DestinationError):
    """A destination table cannot be made to fit a table schema (names the table and column)."""


class IncompatibleColumnChange(SchemaEvolutionError):
    """A column's type changed in a way the destination cannot apply (narrowing or unrelated types).
    Recorded once per destination and table version; the rows that write the column go to the DLQ."""

    def __init__(self, table: str, column: str, stored: str, wanted: str, *, destination: str):
        self.table, self.column, self.stored, self.wanted = table, column, stored, wanted
        super().__init__(f"{table}: column {column} changed type from {stored} to {wanted}, which this "
                         "destination cannot convert; rows writing it go to the dead-letter queue",
                         destination=destination)


class StalePreparedError(DestinationError):
    """A batch was prepared against another layout of its table than the destination now has (a
    schema change was applied since): the writer prepares it again from the batch."""


@dataclass(frozen=True)
class DestColumn:
    """A value column as the destination's catalog shows it."""

    name: str
    type: str  # the destination's type text, normalized by the destination
    kind: ColumnKind | None = None  # None: the destination does not say (one table for all kinds)


@dataclass(frozen=True)
class Dialect:
    """What planning needs to know about one destination's types."""

    name: str  # the destination's name (errors)
    type_of: Callable[[CqlType], str]  # a CQL type -> its stored type text (normalized as DestColumn.type)
    cql_of: Callable[[str], CqlType | None]  # a stored type text -> a CQL type stored that way (None: unknown)
    widenings: frozenset[tuple[str, str]]  # (stored type, wider stored type) the destination converts


@dataclass
class Plan:
    layout: TableSchema
    add: list[ColumnSchema] = field(default_factory=list)
    widen: list[ColumnSchema] = field(default_factory=list)  # with their new type
    drop: list[str] = field(default_factory=list)
    conflicts: list[IncompatibleColumnChange] = field(default_factory=list)

    @property
    def changes_table(self) -> bool:
        return bool(self.add or self.widen or self.drop)


def plan(wanted: TableSchema, stored: list[DestColumn], dialect: Dialect, *,
         dropped_columns: DroppedColumns = "keep", known: TableSchema | None = None) -> Plan:
    """What the destination table (value columns `stored`, in its order) must become for batches of
    `wanted`. `known`: the layout the destination last wrote with (exact CQL types of columns the batch
    does not have, better than `dialect.cql_of`)."""
    wanted_values = {c.name: c for c in wanted.columns if c.kind in _VALUE_KINDS}
    dropped = {d.name for d in wanted.dropped} - set(wanted_values)
    result = Plan(layout=wanted)
    values: list[ColumnSchema] = []
    for column in stored:
        if column.name in wanted_values:
            values.append(_existing(wanted, wanted_values[column.name], column, dialect, result))
        elif column.name in dropped and dropped_columns == "drop":
            result.drop.append(column.name)
        else:
            values.append(_unknown_to_batch(wanted, column, dialect, known))
    present = {c.name for c in stored}
    result.add = [c for c in wanted_values.values() if c.name not in present]
    values += result.add
    keys = [c for c in wanted.columns if c.kind not in _VALUE_KINDS]
    layout = TableSchema(wanted.keyspace, wanted.name, wanted.id, tuple(keys + values), (), dict(wanted.options))
    # the batch's own schema when it is the layout: batches prepared elsewhere against it stay valid
    same = layout.regular == wanted.regular and layout.static == wanted.static
    result.layout = wanted if same else layout
    return result


def _existing(table: TableSchema, column: ColumnSchema, stored: DestColumn, dialect: Dialect,
              result: Plan) -> ColumnSchema:
    """The layout column of a column both have; records a widening or a conflict in `result`."""
    wanted_type = dialect.type_of(column.type)
    if wanted_type == stored.type:
        return column
    if (stored.type, wanted_type) in dialect.widenings:
        result.widen.append(column)
        return column
    stored_cql = dialect.cql_of(stored.type)
    if stored_cql is None:
        raise SchemaEvolutionError(f"{table.qualified_name}: column {column.name} is stored as {stored.type}, "
                                   "a type this destination cannot map back", destination=dialect.name)
    if (wanted_type, stored.type) not in dialect.widenings:  # a batch narrower than the store fits as is
        result.conflicts.append(IncompatibleColumnChange(table.qualified_name, column.name, stored.type,
                                                         wanted_type, destination=dialect.name))
    return ColumnSchema(column.name, stored_cql, column.kind)


def _unknown_to_batch(table: TableSchema, stored: DestColumn, dialect: Dialect,
                      known: TableSchema | None) -> ColumnSchema:
    """A stored column the batch's schema lacks: kept, with the best CQL type there is for it."""
    for source in (known.column(stored.name) if known else None, table.column(stored.name)):
        if source is not None and dialect.type_of(source.type) == stored.type:
            return ColumnSchema(stored.name, source.type, stored.kind or source.kind)
    cql = dialect.cql_of(stored.type)
    if cql is None:
        raise SchemaEvolutionError(f"{table.qualified_name}: column {stored.name} is stored as {stored.type}, "
                                   "is not in the batch's schema, and its type cannot be mapped back",
                                   destination=dialect.name)
    return ColumnSchema(stored.name, cql, stored.kind or ColumnKind.REGULAR)


# --- shaping a batch to the layout -------------------------------------------------------------------------


@dataclass
class FittedBatch:
    batch: pa.RecordBatch  # the rows to write, in the layout's batch schema
    kept: np.ndarray  # index in the original batch of each row of `batch`
    refused: list[tuple[int, str]]  # (index in the original batch, reason): for the DLQ

    def original_rows(self, rejected: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """Rejections of `batch` (indices into it) plus the refused rows, as indices of the original."""
        return sorted([(int(self.kept[i]), reason) for i, reason in rejected] + self.refused)


def fit_batch(batch: pa.RecordBatch, layout: TableSchema,
              conflicts: list[IncompatibleColumnChange] = ()) -> FittedBatch:
    """`batch` shaped to `layout`: rows writing a conflicting column refused, the other columns the
    batch lacks NULL, narrower ones cast to the stored type."""
    n = batch.num_rows
    schema = batch_schema(layout)
    if not conflicts and all(f.name in batch.schema.names and batch.schema.field(f.name).type == f.type
                             for f in schema):
        return FittedBatch(batch, np.arange(n), [])  # already in shape (columns the layout lacks stay)
    refuse = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    for conflict in conflicts:
        rows = _rows_writing(batch, conflict.column) & ~refuse
        for i in np.flatnonzero(rows):
            reasons[int(i)] = str(conflict)
        refuse |= rows
    conflicting = {c.column for c in conflicts}
    arrays = []
    for f in schema:
        if f.name in conflicting or f.name not in batch.schema.names:
            arrays.append(pa.nulls(n, f.type))
        else:
            arrays.append(_as(batch.column(f.name), f.type))
    fitted = pa.RecordBatch.from_arrays(arrays, schema=schema)
    kept = np.flatnonzero(~refuse)
    if len(kept) < n:
        fitted = fitted.take(pa.array(kept, pa.int64()))
    return FittedBatch(fitted, kept, sorted(reasons.items()))


def write_fitted(table: TableSchema, batch: pa.RecordBatch,
                 layout_of: Callable[[TableSchema], tuple[TableSchema, list[IncompatibleColumnChange]]],
                 write: Callable[[TableSchema, pa.RecordBatch], WriteResult]) -> WriteResult:
    """Write `batch` (of schema `table`) shaped to the layout `layout_of` gives (after creating or
    evolving the table), through `write(layout, fitted batch)`; rejected indices are the batch's. Once
    more when another writer of the destination evolved the table meanwhile (StalePreparedError)."""
    for attempt in range(2):
        layout, conflicts = layout_of(table)
        fitted = fit_batch(batch, layout, conflicts)
        try:
            result = write(layout, fitted.batch)
        except StalePreparedError:
            if attempt:
                raise
            continue
        return WriteResult(rows=result.rows, rejected=fitted.original_rows(result.rejected))
    raise AssertionError("unreachable: the second attempt returns or raises")


def _as(array: pa.Array, typ: pa.DataType) -> pa.Array:
    return array if array.type == typ else array.cast(typ)  # a narrower stored value widens exactly


def _rows_writing(batch: pa.RecordBatch, column: str) -> np.ndarray:
    """Rows whose change writes `column` (a value or a cell deletion: it is in `_present`)."""
    present = batch.column("_present")
    hits = pc.equal(present.flatten(), column).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(present).to_numpy(zero_copy_only=False)
    rows = np.zeros(batch.num_rows, dtype=bool)
    rows[parents[hits]] = True
    return rows


def record_conflicts(seen: set, conflicts: list[IncompatibleColumnChange]) -> None:
    """Log each conflict once per destination object (they repeat with every batch of the table)."""
    for conflict in conflicts:
        key = (conflict.destination, conflict.table, conflict.column, conflict.stored, conflict.wanted)
        if key not in seen:
            seen.add(key)
            log.error("%s", conflict)
