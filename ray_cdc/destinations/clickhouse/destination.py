"""ClickHouseDestination: the Destination protocol over ReplacingMergeTree (see `merge.py`).

Exactly once without transactions: every insert of a batch carries the same
`insert_deduplication_token`, derived from the batch's source positions (table id, first and last
(segment, position), row count), and each table keeps the last tokens
(`non_replicated_deduplication_window`), so a re-sent batch is dropped by ClickHouse. Offsets are
written after the data; a crash in between re-sends the batch, which the tokens make a no-op (and the
merge itself is idempotent: re-applying a change to a row that has it changes nothing).
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.destinations.base import Capabilities, WriteResult
from ray_cdc.destinations.clickhouse import ddl
from ray_cdc.destinations.clickhouse.client import ClickHouseClient
from ray_cdc.destinations.clickhouse.forms import rejections, to_stored
from ray_cdc.destinations.clickhouse.merge import Merger
from ray_cdc.destinations.clickhouse.offsets import OffsetStore
from ray_cdc.destinations.clickhouse.store import TableStore
from ray_cdc.destinations.clickhouse.tombstones import RangeTombstone, Tombstones
from ray_cdc.offsets import Offset
from ray_cdc.schema.model import TableSchema

log = logging.getLogger(__name__)

ROW_OPS = ("insert", "update", "delete")


def dedup_token(table: TableSchema, batch: pa.RecordBatch) -> str:
    """The batch's identity by source positions: the same changes always give the same token."""
    seg, pos = batch.column("_segment_id"), batch.column("_position")
    first = min(zip(seg.to_pylist(), pos.to_pylist())) if batch.num_rows else (0, 0)
    last = max(zip(seg.to_pylist(), pos.to_pylist())) if batch.num_rows else (0, 0)
    return f"{table.id}:{first[0]}.{first[1]}-{last[0]}.{last[1]}:{batch.num_rows}"


class ClickHouseDestination:
    capabilities = Capabilities(transactional=False, dedup_token=True, ttl_clause=True)

    def __init__(self, dsn: str = "chdb://./ray_cdc_clickhouse", *, name: str = "clickhouse",
                 database: str = "ray_cdc"):
        self.name = name
        self.client = ClickHouseClient(dsn, name=name)
        self.offsets = OffsetStore(self.client, database, name)
        self._stores: dict = {}

    # --- lifecycle -----------------------------------------------------------------------------------

    def open(self) -> None:
        self.client.connect()
        self.offsets.create()

    def ping(self) -> None:
        self.client.command("SELECT 1")

    def close(self) -> None:
        self.client.close()

    def ensure_table(self, table: TableSchema) -> None:
        self._store(table).create()

    def _store(self, table: TableSchema) -> TableStore:
        store = self._stores.get(table.id)
        if store is None or store.table != table:
            store = self._stores[table.id] = TableStore(self.client, table)
        return store

    def committed_offsets(self) -> dict[str, Offset]:
        return self.offsets.load()

    # --- writing -------------------------------------------------------------------------------------

    def write(self, table: TableSchema, batch: pa.RecordBatch, offsets: list[Offset]) -> WriteResult:
        self.offsets.check_forward(offsets)  # before any data: a regression is a bug upstream
        store = self._store(table)
        token = dedup_token(table, batch)
        good, rejected = _accept(table, pa.Table.from_batches([batch]))
        if good.num_rows:
            _apply(store, good, token)
        # the offsets' own token names their partitions: replicas (RF > 1) send byte-identical batches,
        # whose data may be deduplicated, but each node's offset must land
        self.offsets.save(offsets, _offsets_token(offsets))
        return WriteResult(rows=good.num_rows, rejected=rejected)

    def live_count(self, table: TableSchema) -> int:
        """Rows of `table` that Cassandra would return now (its `__live` view)."""
        self.ensure_table(table)
        return int(self.client.command(f"SELECT count() FROM {ddl.qualified(table, '__live')}"))

    def commit_offsets(self, offsets: list[Offset]) -> None:
        """Offsets of a stretch of log with no rows for this destination (system mutations only)."""
        self.offsets.check_forward(offsets)
        self.offsets.save(offsets, _offsets_token(offsets))


def _offsets_token(offsets: list[Offset]) -> str:
    return "offsets:" + ",".join(f"{o.partition_id}@{o.position}:{int(o.completed)}" for o in offsets)


def _accept(table: TableSchema, data: pa.Table) -> tuple[pa.Table, list[tuple[int, str]]]:
    """The batch in stored form without the rows ClickHouse cannot hold; those with reasons."""
    bad = np.zeros(data.num_rows, dtype=bool)
    reasons: dict[int, str] = {}
    for column in ddl.key_columns(table) + ddl.value_columns(table):
        mask = rejections(data.column(column.name).combine_chunks(), column.type)
        if mask is not None:
            for i in np.flatnonzero(mask & ~bad):
                reasons[int(i)] = f"{column.name}: {column.type.cql()} value outside ClickHouse's range"
            bad |= mask
    if bad.any():
        data = data.filter(pa.array(~bad))
    for column in ddl.key_columns(table) + ddl.value_columns(table):
        index = data.schema.get_field_index(column.name)
        data = data.set_column(index, column.name, to_stored(data.column(column.name), column.type))
    return data, sorted(reasons.items())


def _apply(store: TableStore, data: pa.Table, token: str) -> None:
    table = store.table
    key_names = [c.name for c in store.keys]
    pk_names = [c.name for c in store.pk]
    ops = data.column("_op")
    rows = data.filter(pc.is_in(ops, pa.array(ROW_OPS)))
    part_deletes = data.filter(pc.equal(ops, "partition_delete"))
    range_deletes = data.filter(pc.equal(ops, "range_delete"))
    deleted_partitions = _distinct(part_deletes, pk_names) | _distinct(range_deletes, pk_names)
    touched = sorted(deleted_partitions | _distinct(rows, pk_names), key=repr)
    tombstones = store.tombstones(touched)
    new_partitions = _partition_rows(part_deletes, pk_names, tombstones)
    new_ranges = _range_rows(range_deletes, table, pk_names, tombstones)
    current = store.current(sorted(_distinct(rows, key_names), key=repr), sorted(deleted_partitions, key=repr))
    values = ddl.value_columns(table)
    merger = Merger(key_names, [c.name for c in values], [c for c in values if c.type.is_multicell])
    merged = merger.merge(current, rows, tombstones.times)
    # tombstones first: once they are stored, a retry recomputes the same rows from them
    store.insert("__deleted_partitions", new_partitions, token)
    store.insert("__deleted_ranges", new_ranges, token)
    store.insert("", merged.cast(store.schema), token)


def _distinct(data: pa.Table, names: list[str]) -> set[tuple]:
    if data.num_rows == 0:
        return set()
    return set(zip(*[data.column(n).to_pylist() for n in names]))


def _partition_rows(deletes: pa.Table, pk_names: list[str], tombstones: Tombstones) -> pa.Table:
    keys = deletes.select(pk_names)
    times = deletes.column("_writetime")
    for key, t in zip(zip(*[keys.column(n).to_pylist() for n in pk_names]), times.to_pylist()):
        tombstones.add_partition(key, t)
    return keys.append_column("deleted_at", times.cast(pa.int64()))


def _range_rows(deletes: pa.Table, table: TableSchema, pk_names: list[str], tombstones: Tombstones) -> pa.Table:
    if deletes.num_rows == 0 or not table.clustering:
        return pa.table({})
    ranges = deletes.column("_range").combine_chunks()
    columns = {n: deletes.column(n) for n in pk_names}
    for name in ("start", "end"):
        columns[name] = _stored_bound(ranges.field(name), table)
        columns[f"{name}_size"] = ranges.field(f"{name}_size")
        columns[f"{name}_inclusive"] = ranges.field(f"{name}_inclusive")
    columns["deleted_at"] = deletes.column("_writetime")
    out = pa.table(columns)
    names = [c.name for c in table.clustering]
    for row in out.to_pylist():
        pk = tuple(row[n] for n in pk_names)
        start = tuple(row["start"][n] for n in names[:row["start_size"]])
        end = tuple(row["end"][n] for n in names[:row["end_size"]])
        tombstones.add_range(pk, RangeTombstone(start, row["start_inclusive"], end, row["end_inclusive"],
                                                row["deleted_at"]))
    return out


def _stored_bound(bound: pa.Array, table: TableSchema) -> pa.Array:
    children = [to_stored(bound.field(c.name), c.type) for c in table.clustering]
    return pa.StructArray.from_arrays(children, names=[c.name for c in table.clustering])
