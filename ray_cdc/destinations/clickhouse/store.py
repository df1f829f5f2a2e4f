"""Reads and writes of one replicated table: current rows by key, tombstones, inserts with a token."""

from __future__ import annotations

import pyarrow as pa

from ray_cdc.destinations.clickhouse import ddl
from ray_cdc.destinations.clickhouse.cells import EXPIRY_COLUMN, EXPIRY_TYPE, STATE_COLUMN, STATE_TYPE
from ray_cdc.destinations.clickhouse.client import ClickHouseClient
from ray_cdc.destinations.clickhouse.forms import arrow_type, from_stored
from ray_cdc.destinations.clickhouse.literals import in_clause
from ray_cdc.destinations.clickhouse.merge import EXP_TYPE, TS_TYPE
from ray_cdc.destinations.clickhouse.tombstones import ClusteringOrder, RangeTombstone, Tombstones
from ray_cdc.schema.model import TableSchema

CHUNK = 5_000  # keys per IN list: keeps query text in the low megabytes
# a static row's NULL clustering must match NULL; the key lists of a large batch are long literals
_NULL_IN = {"transform_null_in": 1, "max_query_size": 256 << 20}


def stored_schema(table: TableSchema) -> pa.Schema:
    """Arrow schema of the replicated table's rows (keys, values, bookkeeping)."""
    fields = [pa.field(c.name, arrow_type(c.type)) for c in ddl.key_columns(table) + ddl.value_columns(table)]
    fields += [pa.field("_ts", TS_TYPE), pa.field("_exp", EXP_TYPE), pa.field("_deleted_at", pa.int64()),
               pa.field("_version", pa.int64()), pa.field("_is_deleted", pa.uint8()),
               pa.field("_expires_at", pa.uint32()), pa.field(STATE_COLUMN, STATE_TYPE),
               pa.field(EXPIRY_COLUMN, EXPIRY_TYPE)]
    return pa.schema(fields)


class TableStore:
    def __init__(self, client: ClickHouseClient, table: TableSchema):
        self.client = client
        self.table = table
        self.schema = stored_schema(table)
        self.keys = ddl.key_columns(table)
        self.pk = list(table.partition_key)
        self.order = ClusteringOrder(list(table.clustering))

    def create(self) -> None:
        for statement in ddl.table_statements(self.table):
            self.client.command(statement)

    def _select_latest(self, columns, keys: list[tuple]) -> list[pa.Table]:
        """The newest row (tombstone rows included: FINAL would hide them) of each key or partition."""
        names = [ddl.quote(c.name) for c in columns]
        by = ", ".join(ddl.quote(c.name) for c in self.keys)
        out = []
        for start in range(0, len(keys), CHUNK):
            where = in_clause(names, [c.type for c in columns], keys[start:start + CHUNK])
            sql = (f"SELECT * FROM {ddl.qualified(self.table)} WHERE {where} "
                   f"ORDER BY _version DESC LIMIT 1 BY {by}")
            out.append(from_stored(self.client.query_arrow(sql, settings=_NULL_IN), self.schema))
        return out

    def current(self, keys: list[tuple], partitions: list[tuple]) -> pa.Table:
        """Stored rows of `keys` (full primary keys) and of every row of `partitions`."""
        parts = self._select_latest(self.keys, keys) + self._select_latest(self.pk, partitions)
        if not parts:
            return self.schema.empty_table()
        rows = pa.concat_tables(parts)
        return rows if not partitions else _distinct_keys(rows, [c.name for c in self.keys])

    def tombstones(self, partitions: list[tuple]) -> Tombstones:
        found = Tombstones(len(self.pk), self.order)
        names = [ddl.quote(c.name) for c in self.pk]
        types = [c.type for c in self.pk]
        for start in range(0, len(partitions), CHUNK):
            where = in_clause(names, types, partitions[start:start + CHUNK])
            self._load_partitions(found, where, names)
            if self.table.clustering:
                self._load_ranges(found, where)
        return found

    def _load_partitions(self, found: Tombstones, where: str, names: list[str]) -> None:
        sql = (f"SELECT {', '.join(names)}, max(deleted_at) AS t FROM "
               f"{ddl.qualified(self.table, '__deleted_partitions')} WHERE {where} GROUP BY {', '.join(names)}")
        rows = self.client.query_arrow(sql).to_pylist()
        for row in rows:
            found.add_partition(tuple(_plain(row[c.name]) for c in self.pk), row["t"])

    def _load_ranges(self, found: Tombstones, where: str) -> None:
        sql = f"SELECT * FROM {ddl.qualified(self.table, '__deleted_ranges')} WHERE {where}"
        table = self.client.query_arrow(sql)
        bound = pa.struct([pa.field(c.name, arrow_type(c.type)) for c in self.table.clustering])
        for name in ("start", "end"):
            table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(bound))
        for row in table.to_pylist():
            found.add_range(tuple(_plain(row[c.name]) for c in self.pk), range_tombstone(row, self.table))

    def insert(self, suffix: str, data: pa.Table, token: str) -> None:
        if data.num_rows:
            self.client.insert_arrow(f"{self.table.keyspace}.{self.table.name}{suffix}", data,
                                     settings={"insert_deduplication_token": token})


def range_tombstone(row: dict, table: TableSchema) -> RangeTombstone:
    names = [c.name for c in table.clustering]
    start = tuple(row["start"][n] for n in names[:row["start_size"]])
    end = tuple(row["end"][n] for n in names[:row["end_size"]])
    return RangeTombstone(start, bool(row["start_inclusive"]), end, bool(row["end_inclusive"]),
                          int(row["deleted_at"]))


def _plain(value):
    """uuid.UUID (how an extension-typed uuid comes back) -> its 16 bytes, as batches carry it."""
    return value.bytes if hasattr(value, "bytes") and not isinstance(value, (bytes, bytearray)) else value


def _distinct_keys(rows: pa.Table, keys: list[str]) -> pa.Table:
    """One row per key, the newest version (a key can come from both the key and the partition query)."""
    if rows.num_rows == 0:
        return rows
    order = rows.sort_by([(k, "ascending") for k in keys] + [("_version", "descending")])
    seen, take = set(), []
    for i, key in enumerate(zip(*[order.column(k).to_pylist() for k in keys])):
        if key not in seen:
            seen.add(key)
            take.append(i)
    return order.take(take)
