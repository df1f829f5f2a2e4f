"""Reads and writes of one replicated table: current rows by key, tombstones, inserts with a token.

A batch's keys go to ClickHouse as data, not as SQL text: they are inserted into two Memory tables
of this destination (`<t>__keys_<dest>`: primary keys, `<t>__parts_<dest>`: partition keys of
partition and range deletes), and the reads select `WHERE (key) IN (SELECT ... FROM` those tables.
A literal `IN` list of 64k keys costs more to parse than the whole insert; an Arrow insert of the
keys costs a few milliseconds. One writer per destination loads a table at a time, so the tables
are emptied and refilled per batch.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.destinations.clickhouse import ddl
from ray_cdc.destinations.clickhouse.cells import EXPIRY_COLUMN, EXPIRY_TYPE, STATE_COLUMN, STATE_TYPE
from ray_cdc.destinations.clickhouse.client import ClickHouseClient
from ray_cdc.destinations.clickhouse.forms import arrow_type, from_stored
from ray_cdc.destinations.clickhouse.known_keys import KNOWN_KEYS_LIMIT, KnownKeys
from ray_cdc.destinations.clickhouse.merge import EXP_TYPE, TS_TYPE
from ray_cdc.destinations.clickhouse.tombstones import ClusteringOrder, Tombstones
from ray_cdc.schema.model import TableSchema

# a static row's NULL clustering must match NULL in `IN`
_NULL_IN = " SETTINGS transform_null_in = 1"


def stored_schema(table: TableSchema) -> pa.Schema:
    """Arrow schema of the replicated table's rows (keys, values, bookkeeping)."""
    fields = [pa.field(c.name, arrow_type(c.type)) for c in ddl.key_columns(table) + ddl.value_columns(table)]
    fields += [pa.field("_ts", TS_TYPE), pa.field("_exp", EXP_TYPE), pa.field("_deleted_at", pa.int64()),
               pa.field("_version", pa.int64()), pa.field("_is_deleted", pa.uint8()),
               pa.field("_expires_at", pa.uint32()), pa.field("_purge_at", pa.uint32())]
    if ddl.has_elements(table):
        fields += [pa.field(STATE_COLUMN, STATE_TYPE), pa.field(EXPIRY_COLUMN, EXPIRY_TYPE)]
    return pa.schema(fields)


class TableStore:
    def __init__(self, client: ClickHouseClient, table: TableSchema, destination: str = "clickhouse",
                 purge_grace: int = ddl.PURGE_GRACE, *, track_keys: bool = False):
        """`track_keys`: keep the stored keys' hashes (`known_keys.py`); only where every insert into
        the table goes through this store."""
        self.client = client
        self.purge_grace = purge_grace
        self.table = table
        self.schema = stored_schema(table)
        self.keys = ddl.key_columns(table)
        self.pk = list(table.partition_key)
        self.order = ClusteringOrder(list(table.clustering))
        self.keys_table = ddl.qualified(table, f"__keys_{destination}")
        self.parts_table = ddl.qualified(table, f"__parts_{destination}")
        self._created = False
        self._parts_filled: bool | None = None
        self._track_keys = track_keys
        # the tombstone tables are known to be empty (only where this store makes every insert)
        self._sole_writer, self._no_tombstones = track_keys, False
        self._known: KnownKeys | None = None
        self._uploaded: np.ndarray | None = None  # the hashes of the keys uploaded last

    def create(self) -> None:
        for statement in ddl.table_statements(self.table, self.purge_grace) + ddl.scratch_statements(
                self.table, self.keys_table, self.parts_table):
            self.client.command(statement)
        self._created = True

    def upload(self, keys: pa.Table, partitions: pa.Table) -> None:
        """Replace the scratch tables' contents with a batch's primary keys and deleted partitions."""
        if not self._created:
            self.create()
        self.client.command(f"TRUNCATE TABLE {self.keys_table}")
        if self._parts_filled is not False:  # unknown (first batch) or filled by the last batch
            self.client.command(f"TRUNCATE TABLE {self.parts_table}")
        self._parts_filled = partitions.num_rows > 0  # before the insert: a failed one may leave rows
        if keys.num_rows:
            self.client.insert_arrow(self.keys_table, keys)
        if partitions.num_rows:
            self.client.insert_arrow(self.parts_table, partitions)

    def may_hold_uploaded_keys(self, has_partitions: bool) -> bool:
        """False when none of the uploaded keys is stored (so `current` would find nothing); True
        when some may be, or when that is not known (keys not tracked, or partitions uploaded)."""
        self._uploaded = None
        if not self._track_keys:
            return True
        known = self._known if self._known is not None else self._load_known()
        if known is None:
            return True
        hashes = self.client.query_arrow(f"SELECT {self._key_hash()} AS h FROM {self.keys_table}").column("h")
        # remembered after the insert whatever path this batch takes: its new keys are stored then
        self._uploaded = pc.drop_null(hashes).to_numpy()
        if has_partitions or hashes.null_count:  # a deleted partition's rows, a NULL key (static row): read
            return True
        return bool(known.maybe_stored(self._uploaded).any())

    def inserted_uploaded_keys(self) -> None:
        """The uploaded keys' rows are inserted: remember their keys."""
        if self._known is not None and self._uploaded is not None:
            self._known.add(self._uploaded)
            if self._known.full:
                self._known, self._track_keys = None, False
        self._uploaded = None

    def forget_keys(self) -> None:
        """A write failed, and may have inserted rows or not: read the keys again when next needed."""
        self._known, self._uploaded, self._no_tombstones = None, None, False

    def _load_known(self) -> KnownKeys | None:
        table = ddl.qualified(self.table)
        if int(self.client.command(f"SELECT count() FROM {table}")) > KNOWN_KEYS_LIMIT:
            self._track_keys = False  # too many to keep in memory: read per batch
            return None
        hashes = self.client.query_arrow(f"SELECT {self._key_hash()} AS h FROM {table}").column("h")
        self._known = KnownKeys(pc.drop_null(hashes).to_numpy())  # NULL: a static row's key, never matched
        return self._known

    def _key_hash(self) -> str:
        return f"cityHash64({self._names(self.keys)})"

    def current(self, has_keys: bool, has_partitions: bool) -> pa.Table:
        """The newest stored row (tombstone rows included: FINAL would hide them) of each uploaded key
        and of every row of the uploaded partitions."""
        conditions = []
        if has_keys:
            conditions.append(f"({self._names(self.keys)}) IN (SELECT {self._names(self.keys)} FROM {self.keys_table})")
        if has_partitions:
            conditions.append(f"({self._names(self.pk)}) IN (SELECT {self._names(self.pk)} FROM {self.parts_table})")
        if not conditions:
            return self.schema.empty_table()
        sql = (f"SELECT * FROM {ddl.qualified(self.table)} WHERE {' OR '.join(conditions)} "
               f"ORDER BY _version DESC LIMIT 1 BY {self._names(self.keys)}{_NULL_IN}")
        return from_stored(self.client.query_arrow(sql), self.schema)

    def tombstones(self, has_keys: bool, has_partitions: bool) -> Tombstones:
        """The partition and range tombstones of every uploaded key's partition."""
        found = Tombstones(len(self.pk), self.order)
        sources = [self.keys_table] * has_keys + [self.parts_table] * has_partitions
        if not sources or not self._any_tombstones():
            return found
        pk = self._names(self.pk)
        touched = " UNION ALL ".join(f"SELECT {pk} FROM {s}" for s in sources)
        where = f"({pk}) IN ({touched})"
        sql = (f"SELECT {pk}, max(deleted_at) AS deleted_at FROM "
               f"{ddl.qualified(self.table, '__deleted_partitions')} WHERE {where} GROUP BY {pk}")
        found.add_partition_rows(_plain_keys(self.client.query_arrow(sql), self.pk), [c.name for c in self.pk])
        if self.table.clustering:
            self._load_ranges(found, where)
        return found

    def _any_tombstones(self) -> bool:
        """Whether the side tables hold anything (a metadata count: most tables never see a delete)."""
        if self._no_tombstones:
            return False
        counts = [f"(SELECT count() FROM {ddl.qualified(self.table, '__deleted_partitions')})"]
        if self.table.clustering:
            counts.append(f"(SELECT count() FROM {ddl.qualified(self.table, '__deleted_ranges')})")
        found = int(self.client.command(f"SELECT {' + '.join(counts)}")) > 0
        self._no_tombstones = self._sole_writer and not found  # a count per batch spared until a delete
        return found

    def _load_ranges(self, found: Tombstones, where: str) -> None:
        sql = f"SELECT * FROM {ddl.qualified(self.table, '__deleted_ranges')} WHERE {where}"
        table = self.client.query_arrow(sql)
        if not table.num_rows:
            return
        bound = pa.struct([pa.field(c.name, arrow_type(c.type)) for c in self.table.clustering])
        for name in ("start", "end"):
            table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(bound))
        found.add_range_rows(_plain_keys(table, self.pk), [c.name for c in self.pk],
                             [c.name for c in self.table.clustering])

    def insert(self, suffix: str, data: pa.Table, token: str, settings: dict | None = None) -> None:
        if data.num_rows:
            if suffix.startswith("__deleted"):
                self._no_tombstones = False
            self.client.insert_arrow(ddl.qualified(self.table, suffix), data,
                                     settings={"insert_deduplication_token": token, **(settings or {})})

    @staticmethod
    def _names(columns) -> str:
        return ", ".join(ddl.quote(c.name) for c in columns)


def _plain_keys(table: pa.Table, pk) -> pa.Table:
    """Partition key columns as batches carry them (a UUID comes back as an extension type: its bytes)."""
    for column in pk:
        index = table.schema.get_field_index(column.name)
        typ = arrow_type(column.type)
        if table.schema.field(index).type != typ:
            table = table.set_column(index, column.name, table.column(index).cast(typ))
    return table
