"""The connection-free half of a ClickHouse write: a batch in, everything that needs no stored row out.

`prepare` maps types to their stored form, refuses what ClickHouse cannot hold, derives the batch's
deduplication token, splits row changes from partition and range deletes, and builds the stored rows
of the changes that need no merge (`direct.py`), sorted by key as the table orders them. It touches
no connection, so a transform stage can run it on another core; `ClickHouseDestination.write_prepared`
does the rest (read back stored rows and tombstones, merge, insert).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.destinations.clickhouse import ddl
from ray_cdc.destinations.clickhouse.direct import candidates, direct_rows, sorted_keys
from ray_cdc.destinations.clickhouse.forms import rejections, to_stored
from ray_cdc.destinations.clickhouse.store import stored_schema
from ray_cdc.schema.model import TableSchema

ROW_OPS = ("insert", "update", "delete")
DELETE_OPS = ("partition_delete", "range_delete")


@dataclass
class Prepared:
    """A batch ready to load: see the module doc. Plain Arrow and numpy, so it pickles (Ray)."""

    table: TableSchema
    token: str  # the batch's insert_deduplication_token
    accepted: int  # rows of the batch applied (all but the rejected)
    rejected: list[tuple[int, str]]  # (row index in the batch, reason)
    rows: pa.Table  # row changes (insert/update/delete) in stored form, in batch order
    direct: pa.Table  # stored rows of the direct candidates among `rows`, sorted by key
    direct_source: np.ndarray  # index in `rows` of each row of `direct`
    partition_keys: pa.Table  # partition key of every partition or range delete
    deleted_partitions: pa.Table  # rows for `<t>__deleted_partitions`
    deleted_ranges: pa.Table  # rows for `<t>__deleted_ranges`
    key_names: list[str] = field(default_factory=list)
    pk_names: list[str] = field(default_factory=list)


def dedup_token(table: TableSchema, batch: pa.RecordBatch | pa.Table) -> str:
    """The batch's identity by source positions: the same changes always give the same token."""
    if not batch.num_rows:
        return f"{table.id}:0.0-0.0:0"
    seg = batch.column("_segment_id").to_numpy(zero_copy_only=False)  # never null (batch schema)
    pos = batch.column("_position").to_numpy(zero_copy_only=False)
    first_seg, last_seg = int(seg.min()), int(seg.max())
    first_pos, last_pos = int(pos[seg == first_seg].min()), int(pos[seg == last_seg].max())
    return f"{table.id}:{first_seg}.{first_pos}-{last_seg}.{last_pos}:{batch.num_rows}"


def prepare(table: TableSchema, batch: pa.RecordBatch) -> Prepared:
    ddl.check_key_types(table)
    token = dedup_token(table, batch)
    data, rejected = accept(table, pa.Table.from_batches([batch]))
    key_names = [c.name for c in ddl.key_columns(table)]
    pk_names = [c.name for c in table.partition_key]
    values = ddl.value_columns(table)
    ops = data.column("_op")
    rows = _only(data, pc.is_in(ops, pa.array(ROW_OPS)))
    part_deletes = _only(data, pc.equal(ops, "partition_delete"))
    range_deletes = _only(data, pc.equal(ops, "range_delete"))
    partition_keys = pa.concat_tables([part_deletes.select(pk_names), range_deletes.select(pk_names)])
    complex_columns = [c for c in values if c.type.is_multicell]
    order, shared_sorted = sorted_keys(rows, key_names)
    shared = np.empty_like(shared_sorted)
    shared[order] = shared_sorted
    ok = candidates(rows, shared, pk_names, partition_keys, complex_columns)
    # sorted as the table orders its rows: ClickHouse then has no block to sort
    source = order[ok[order]]
    direct = direct_rows(rows, source, key_names, values, stored_schema(table))
    return Prepared(table, token, data.num_rows, rejected, rows, direct, source, partition_keys,
                    partition_rows(part_deletes, pk_names), range_rows(range_deletes, table, pk_names),
                    key_names, pk_names)


def _only(data: pa.Table, mask) -> pa.Table:
    """`data.filter(mask)` without copying when the mask keeps every row (or none)."""
    kept = pc.sum(mask).as_py() or 0
    if kept == data.num_rows:
        return data
    return data.slice(0, 0) if kept == 0 else data.filter(mask)


def accept(table: TableSchema, data: pa.Table) -> tuple[pa.Table, list[tuple[int, str]]]:
    """The batch in stored form without the rows ClickHouse cannot hold; those with reasons."""
    bad = np.zeros(data.num_rows, dtype=bool)
    reasons: dict[int, str] = {}
    columns = ddl.key_columns(table) + ddl.value_columns(table)
    for column in columns:
        mask = rejections(data.column(column.name), column.type)
        if mask is not None:
            for i in np.flatnonzero(mask & ~bad):
                reasons[int(i)] = f"{column.name}: {column.type.cql()} value outside ClickHouse's range"
            bad |= mask
    if bad.any():
        data = data.filter(pa.array(~bad))
    for column in columns:
        index = data.schema.get_field_index(column.name)
        data = data.set_column(index, column.name, to_stored(data.column(column.name), column.type))
    return data, sorted(reasons.items())


def partition_rows(deletes: pa.Table, pk_names: list[str]) -> pa.Table:
    return deletes.select(pk_names).append_column("deleted_at", deletes.column("_writetime").cast(pa.int64()))


def range_rows(deletes: pa.Table, table: TableSchema, pk_names: list[str]) -> pa.Table:
    if deletes.num_rows == 0 or not table.clustering:
        return pa.table({})
    ranges = deletes.column("_range").combine_chunks()
    columns = {n: deletes.column(n) for n in pk_names}
    for name in ("start", "end"):
        columns[name] = _stored_bound(ranges.field(name), table)
        columns[f"{name}_size"] = ranges.field(f"{name}_size")
        columns[f"{name}_inclusive"] = ranges.field(f"{name}_inclusive")
    columns["deleted_at"] = deletes.column("_writetime")
    return pa.table(columns)


def _stored_bound(bound: pa.Array, table: TableSchema) -> pa.Array:
    children = [to_stored(bound.field(c.name), c.type) for c in table.clustering]
    return pa.StructArray.from_arrays(children, names=[c.name for c in table.clustering])
