"""ClickHouseDestination: the Destination protocol over ReplacingMergeTree (see `merge.py`).

Exactly once without transactions: every insert of a batch carries the same
`insert_deduplication_token`, derived from the batch's source positions (table id, first and last
(segment, position), row count), and each table keeps the last tokens
(`non_replicated_deduplication_window`), so a re-sent batch is dropped by ClickHouse. Offsets are
written after the data; a crash in between re-sends the batch, which the tokens make a no-op (and the
merge itself is idempotent: re-applying a change to a row that has it changes nothing).

`write` = `prepare` (connection-free: type mapping, rejections, the token, the rows that need no merge;
see `prepare.py`) + `write_prepared` (upload the batch's keys, read back the stored rows and tombstones
of those keys, merge what must be merged, one insert per table). A transform stage may run `prepare`
elsewhere and hand the `Prepared` to the writer.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from ray_cdc.destinations import evolution
from ray_cdc.destinations.base import Capabilities, WriteResult
from ray_cdc.destinations.clickhouse import ddl, evolve
from ray_cdc.destinations.clickhouse.client import ClickHouseClient
from ray_cdc.destinations.clickhouse.direct import stored_keys_among
from ray_cdc.destinations.clickhouse.merge import Merger
from ray_cdc.destinations.clickhouse.offsets import OffsetStore
from ray_cdc.destinations.clickhouse.prepare import Prepared, dedup_token, prepare
from ray_cdc.destinations.clickhouse.store import TableStore
from ray_cdc.destinations.clickhouse.tombstones import Tombstones
from ray_cdc.destinations.evolution import record_conflicts
from ray_cdc.offsets import Offset
from ray_cdc.schema.model import TableSchema

log = logging.getLogger(__name__)

__all__ = ["ClickHouseDestination", "Prepared", "dedup_token"]

# every inserted block holds one row per key (merged), so ReplacingMergeTree has nothing to collapse
_MAIN_INSERT = {"optimize_on_insert": 0}


class ClickHouseDestination:
    capabilities = Capabilities(transactional=False, dedup_token=True, ttl_clause=True)

    def __init__(self, dsn: str = "chdb://./ray_cdc_clickhouse", *, name: str = "clickhouse",
                 database: str = "ray_cdc", dropped_columns: evolution.DroppedColumns = "keep",
                 purge_grace: float = ddl.PURGE_GRACE, track_keys: bool | None = None):
        """`track_keys`: keep the stored keys' hashes to skip reading back batches of new keys
        (`known_keys.py`); None: where the engine is embedded (chDB), the one case where this
        writer is known to make every insert."""
        self.name = name
        self._purge_grace = int(purge_grace)  # s an expired row stays stored (ddl.py: out-of-order changes)
        self.client = ClickHouseClient(dsn, name=name)
        self.offsets = OffsetStore(self.client, database, name)
        self._stores: dict = {}  # table id -> the store of its current layout
        self._layouts: dict = {}  # table schema (a batch's) -> the layout its batches are written with
        self._conflicts: dict = {}  # table schema -> type changes this destination cannot take
        self._conflicts_seen: set = set()
        self._dropped_columns = dropped_columns  # "keep" or "drop" (evolution.py)
        self._track_keys = track_keys

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
        """The store of the table's layout, the table created or evolved first (`evolve.py`)."""
        layout = self._layout(table)
        store = self._stores.get(table.id)
        if store is None or store.table != layout:
            store = self._stores[table.id] = TableStore(self.client, layout, self.name, self._purge_grace,
                                                        track_keys=self._tracks_keys())
        return store

    def _tracks_keys(self) -> bool:
        """Whether this writer makes every change to its tables (so it may remember what they hold)."""
        return self.client.embedded if self._track_keys is None else self._track_keys

    def _layout(self, table: TableSchema) -> TableSchema:
        """The layout batches of `table` are written with; read from system.columns once per version."""
        layout = self._layouts.get(table)
        if layout is not None:
            return layout
        stored, had_elements = evolve.read_stored(self.client, table)
        if stored is None:
            TableStore(self.client, table, self.name, self._purge_grace).create()
            plan = evolution.Plan(layout=table)
        else:
            known = next((lay for t, lay in reversed(self._layouts.items()) if t.id == table.id), None)
            plan = evolution.plan(table, stored, evolve.dialect(self.name),
                                  dropped_columns=self._dropped_columns, known=known)
        statements = evolve.evolution_statements(plan, had_elements)
        if statements:
            log.info("%s: evolving %s: add %s, widen %s, drop %s", self.name, table.qualified_name,
                     [c.name for c in plan.add], [c.name for c in plan.widen], plan.drop)
            for statement in statements + ddl.table_statements(plan.layout, self._purge_grace):
                self.client.command(statement)
            # layouts cached for other versions of the table are stale now
            self._layouts = {t: lay for t, lay in self._layouts.items() if t.id != table.id}
        record_conflicts(self._conflicts_seen, plan.conflicts)
        self._layouts[table], self._conflicts[table] = plan.layout, plan.conflicts
        return plan.layout

    def committed_offsets(self) -> dict[str, Offset]:
        return self.offsets.load()

    def rewrite_offsets(self, offsets: list[Offset], drop: list[str]) -> None:
        """`ray-cdc offsets reset`: set `offsets` as given (backwards too), delete `drop` (see
        `OffsetStore.rewrite`)."""
        self.offsets.rewrite(offsets, drop)

    # --- writing -------------------------------------------------------------------------------------

    @staticmethod
    def prepare(table: TableSchema, batch: pa.RecordBatch) -> Prepared:
        """The connection-free half of `write` (see `prepare.py`)."""
        return prepare(table, batch)

    def write(self, table: TableSchema, batch: pa.RecordBatch, offsets: list[Offset]) -> WriteResult:
        """Write `batch` against the table as `_layout` made it for its schema: shaped to the layout,
        rows writing a column whose type change cannot be applied rejected."""
        return evolution.write_fitted(table, batch, lambda t: (self._layout(t), self._conflicts.get(t, [])),
                                      lambda layout, rows: self.write_prepared(prepare(layout, rows), offsets))

    def write_prepared(self, prepared: Prepared, offsets: list[Offset]) -> WriteResult:
        self.offsets.check_forward(offsets)  # before any data: a regression is a bug upstream
        store = self._store(prepared.table)
        if store.table != prepared.table:
            raise evolution.StalePreparedError(f"{prepared.table.qualified_name} was prepared for another "
                                               "layout of its table", destination=self.name)
        # evolved by another writer since? Not where this one makes every change (embedded chDB), which
        # spares a system.columns read per batch
        if not self._tracks_keys() and not evolve.layout_is_current(self.client, store.table):
            self._layouts = {t: lay for t, lay in self._layouts.items() if t.id != store.table.id}
            raise evolution.StalePreparedError(f"the table of {store.table.qualified_name} changed",
                                               destination=self.name)
        if prepared.accepted:
            _apply(store, prepared)
        # the offsets' own token names their partitions: replicas (RF > 1) send byte-identical batches,
        # whose data may be deduplicated, but each node's offset must land
        self.offsets.save(offsets, _offsets_token(offsets))
        return WriteResult(rows=prepared.accepted, rejected=list(prepared.rejected))

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


def _apply(store: TableStore, prepared: Prepared) -> None:
    try:
        _merge_and_insert(store, prepared)
    except BaseException:
        store.forget_keys()  # the insert may have landed or not: the tracked keys are unknown now
        raise
    store.inserted_uploaded_keys()


def _merge_and_insert(store: TableStore, prepared: Prepared) -> None:
    table, token = store.table, prepared.token
    rows = prepared.rows
    has_keys, has_partitions = rows.num_rows > 0, prepared.partition_keys.num_rows > 0
    store.upload(rows.select(prepared.key_names), prepared.partition_keys)
    tombstones = store.tombstones(has_keys, has_partitions)
    tombstones.add_partition_rows(prepared.deleted_partitions, prepared.pk_names)
    tombstones.add_range_rows(prepared.deleted_ranges, prepared.pk_names, [c.name for c in table.clustering])
    # new keys only (an insert workload): nothing stored to read and merge with
    stored = store.may_hold_uploaded_keys(has_partitions) if has_keys else has_partitions
    current = store.current(has_keys, has_partitions) if stored else store.schema.empty_table()
    direct, merged_rows = _split(prepared, current, tombstones)
    parts = [direct] if direct.num_rows else []
    if merged_rows.num_rows or current.num_rows:
        values = ddl.value_columns(table)
        merger = Merger(prepared.key_names, [c.name for c in values], [c for c in values if c.type.is_multicell])
        parts.append(merger.merge(current, merged_rows, tombstones.times_of).cast(store.schema))
    # tombstones first: once they are stored, a retry recomputes the same rows from them
    store.insert("__deleted_partitions", prepared.deleted_partitions, token)
    store.insert("__deleted_ranges", prepared.deleted_ranges, token)
    if parts:
        store.insert("", pa.concat_tables(parts) if len(parts) > 1 else parts[0], token, _MAIN_INSERT)


def _split(prepared: Prepared, current: pa.Table, tombstones: Tombstones) -> tuple[pa.Table, pa.Table]:
    """The direct rows that stay direct (no stored row, no tombstone over their partition), and the
    row changes to merge (every other one, in batch order)."""
    direct, source = prepared.direct, prepared.direct_source
    keep = ~stored_keys_among(current, direct, prepared.key_names)
    if tombstones:
        partitions = zip(*[direct.column(n).to_pylist() for n in prepared.pk_names])
        keep &= np.array([pk not in tombstones.partitions and pk not in tombstones.ranges for pk in partitions],
                         dtype=bool).reshape(-1)
    merge = np.ones(prepared.rows.num_rows, dtype=bool)
    merge[source[keep]] = False
    if keep.all():
        kept = direct
    else:
        kept = direct.filter(pa.array(keep))
    changes = prepared.rows.filter(pa.array(merge)) if not merge.all() else prepared.rows
    return kept, changes
