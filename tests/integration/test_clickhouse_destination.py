"""The ClickHouse destination against a real embedded ClickHouse (chDB), one data directory per module
(chDB lets a process open one directory at a time).

The reference state comes from a minimal oracle in this module (tests/support/expected_state.py did
not exist yet when this was written): Cassandra's reconciliation over the workload's *expected*
changes (worked out from the drawn operations, not from decoded batches): per-cell last-writer-wins,
row markers, row/partition/range tombstones, TTL. Non-frozen collections are left out of the
main comparison: batches carry only the live elements of a collection change (no "replaced" flag, no
removed elements, no TTL of collection cells), so the destination replays them as whole values. The
comparison therefore runs on the workload mix without per-element collection edits (collections are
still written whole by inserts), and the full mix is an expected failure that documents the gap.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pyarrow as pa
import pytest

from ray_cdc.commitlog.arrow_batches import arrow_batches
from ray_cdc.commitlog.builder import MutationBuilder, order_key
from ray_cdc.commitlog.changes import PARTITION_DELETE, RANGE_DELETE
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.reader import CommitLogReader, DecodedMutation
from ray_cdc.commitlog.workload import DEFAULT_MIX, demo_tables, generate, workload_mutations
from ray_cdc.destinations.clickhouse import ClickHouseDestination
from ray_cdc.destinations.clickhouse.forms import from_stored, to_stored
from ray_cdc.destinations.clickhouse.store import stored_schema
from ray_cdc.offsets import Offset
from ray_cdc.offsets.offset import OffsetRegressionError
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.registry import SchemaRegistry
from ray_cdc.schema.types import parse_cql_type

SEGMENT = 1_800_000_000_000


@pytest.fixture(scope="module")
def dest(tmp_path_factory):
    destination = ClickHouseDestination(f"chdb://{tmp_path_factory.mktemp('clickhouse')}")
    destination.open()
    yield destination
    destination.close()


# --- reading the destination ------------------------------------------------------------------------


def live_rows(dest, table: TableSchema) -> dict[tuple, dict]:
    sql = f"SELECT * FROM `{table.keyspace}`.`{table.name}__live`"
    schema = stored_schema(table)
    schema = pa.schema([schema.field(n) for n in schema.names if not n.startswith("_")])
    rows = from_stored(dest.client.query_arrow(sql), schema).to_pylist()
    keys = [c.name for c in (*table.partition_key, *table.clustering)]
    return {tuple(r[k] for k in keys): r for r in rows}


def stored_value(column: ColumnSchema, value):
    """A Python value of the column's CQL type in the form the destination stores and returns."""
    arrow = column.type.to_arrow_value(value) if value is not None else None
    return to_stored(pa.array([arrow], column.type.arrow_type()), column.type).to_pylist()[0]


# --- the oracle ---------------------------------------------------------------------------------------


class Oracle:
    """Cassandra's reconciliation of one table's expected changes."""

    def __init__(self, table: TableSchema, now: datetime):
        self.table, self.now = table, now
        self.cells: dict[tuple, dict[str, tuple]] = {}  # key -> column -> (ts, value, expires)
        self.markers: dict[tuple, tuple] = {}  # key -> (ts, expires)
        self.row_tombs: dict[tuple, int] = {}
        self.partition_tombs: dict[tuple, int] = {}
        self.range_tombs: dict[tuple, list] = {}

    def _key(self, change) -> tuple:
        pk = tuple(change.partition_key[c.name] for c in self.table.partition_key)
        if change.static:
            return pk + (None,) * len(self.table.clustering)
        return pk + tuple(change.clustering.get(c.name) for c in self.table.clustering)

    def apply(self, change) -> None:
        if change.kind == PARTITION_DELETE:
            pk = tuple(change.partition_key[c.name] for c in self.table.partition_key)
            self.partition_tombs[pk] = max(self.partition_tombs.get(pk, 0), change.deleted_at)
        elif change.kind == RANGE_DELETE:
            pk = tuple(change.partition_key[c.name] for c in self.table.partition_key)
            self.range_tombs.setdefault(pk, []).append((change.range_start, change.range_end, change.deleted_at))
        else:
            self._row(change)

    def _row(self, change) -> None:
        key = self._key(change)
        if change.deleted_at is not None:
            self.row_tombs[key] = max(self.row_tombs.get(key, 0), change.deleted_at)
        if change.timestamp is not None and change.op in ("insert", "ttl_insert"):
            old = self.markers.get(key)
            if old is None or change.timestamp >= old[0]:
                self.markers[key] = (change.timestamp, change.expires_at)
        cells = self.cells.setdefault(key, {})
        for name, cell in change.cells.items():
            old = cells.get(name)
            if old is None or cell.timestamp >= old[0]:
                value = None if cell.deleted else getattr(cell.value, "total", cell.value)
                cells[name] = (cell.timestamp, value, cell.expires_at)

    def _tomb(self, key: tuple) -> int:
        n_pk = len(self.table.partition_key)
        t = max(self.row_tombs.get(key, 0), self.partition_tombs.get(key[:n_pk], 0))
        clustering = key[n_pk:]
        if clustering and clustering[0] is not None:
            for start, end, at in self.range_tombs.get(key[:n_pk], []):
                if at > t and self._in_range(clustering, start, end):
                    t = at
        return t

    def _cmp(self, clustering: tuple, bound: dict) -> int:
        for column, value in zip(self.table.clustering, clustering):
            if column.name not in bound:
                return 0
            a = order_key(column.type, column.type.encode(value))
            b = order_key(column.type, column.type.encode(bound[column.name]))
            if a != b:
                return (-1 if a < b else 1) * (-1 if column.reversed else 1)
        return 0

    def _in_range(self, clustering, start, end) -> bool:
        (sb, si), (eb, ei) = start, end
        c = self._cmp(clustering, sb) if sb else 1
        if c < 0 or (c == 0 and not si):
            return False
        c = self._cmp(clustering, eb) if eb else -1
        return not (c > 0 or (c == 0 and not ei))

    def _alive(self, ts: int, expires, tomb: int) -> bool:
        return ts > tomb and (expires is None or expires > self.now)

    def state(self, skip: set[str]) -> dict[tuple, dict]:
        columns = {c.name: c for c in (*self.table.static, *self.table.regular)}
        keys = [*self.table.partition_key, *self.table.clustering]
        out = {}
        for key in set(self.cells) | set(self.markers):
            tomb = self._tomb(key)
            marker = self.markers.get(key)
            live = marker is not None and self._alive(marker[0], marker[1], tomb)
            values = {}
            for name, (ts, value, expires) in self.cells.get(key, {}).items():
                if self._alive(ts, expires, tomb) and value is not None:
                    values[name] = value
                    live = live or name not in skip or _nonempty(value)
            if live:
                stored_key = tuple(stored_value(c, v) if v is not None else None for c, v in zip(keys, key))
                out[stored_key] = {n: stored_value(columns[n], values.get(n)) for n in columns if n not in skip}
        return out


def _normal(row: dict) -> dict:
    """Map entries in a canonical order: a map's entry order carries no meaning."""
    return {n: sorted(v, key=repr) if isinstance(v, list) and v and isinstance(v[0], tuple) else v
            for n, v in row.items()}


def _nonempty(value) -> bool:
    return bool(value) if isinstance(value, (list, set, frozenset, dict, tuple)) else value is not None


# --- building batches by hand ------------------------------------------------------------------------


def table_of(name: str, *, static: bool = False) -> TableSchema:
    t = parse_cql_type
    columns = [ColumnSchema("id", t("bigint"), ColumnKind.PARTITION_KEY),
               ColumnSchema("ck", t("int"), ColumnKind.CLUSTERING),
               ColumnSchema("a", t("text"), ColumnKind.REGULAR), ColumnSchema("b", t("int"), ColumnKind.REGULAR)]
    if static:
        columns.append(ColumnSchema("s", t("text"), ColumnKind.STATIC))
    return TableSchema("ray_cdc_t", name, uuid.uuid5(uuid.NAMESPACE_OID, name), tuple(columns))


def batch(table: TableSchema, *steps, position: int = 100) -> pa.RecordBatch:
    """One batch of changes; each step is a function of a fresh MutationBuilder of partition id=1."""
    decoded = []
    for i, step in enumerate(steps):
        builder = MutationBuilder(table, {"id": 1})
        step(builder)
        decoded.append(DecodedMutation(CommitLogPosition(SEGMENT, position + i), builder.mutation()))
    batches = [b for _, b in arrow_batches(decoded)]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def rows_of(dest, table):
    return {k[1]: {"a": r["a"], "b": r["b"]} for k, r in live_rows(dest, table).items()}


# --- tests --------------------------------------------------------------------------------------------


WHOLE_VALUE_MIX = {op: w for op, w in DEFAULT_MIX.items() if not op.startswith("collection_")}


@pytest.mark.parametrize("mix", [
    pytest.param(WHOLE_VALUE_MIX, id="whole-collections"),
    pytest.param(DEFAULT_MIX, id="per-element-collections", marks=pytest.mark.xfail(
        strict=True, reason="batches lose per-element collection edits (removed elements, replaced "
                            "flag, collection-cell TTL): replayed as whole values")),
])
def test_demo_workload_matches_oracle(dest, tmp_path, mix):
    rows = 3200
    keyspace = "ray_cdc_whole" if mix is WHOLE_VALUE_MIX else "ray_cdc_full"
    summary = generate(tmp_path / "segments", rows=rows, tables=demo_tables(keyspace), segment_size=1 << 20,
                       mix=mix)
    reader = CommitLogReader(SchemaRegistry(load_cql_schema(summary.schema_path)))
    written = 0
    for table, record_batch in reader.arrow_batches(summary.segments, max_rows=400):
        dest.ensure_table(table)
        result = dest.write(table, record_batch, [])
        assert result.rejected == []
        written += result.rows
    assert written == rows

    now = datetime.now(timezone.utc)
    tables = {t.qualified_name: t for t in demo_tables(keyspace)}
    oracles = {name: Oracle(t, now) for name, t in tables.items()}
    for _, changes in workload_mutations(list(tables.values()), rows=rows, mix=mix):
        for change in changes:
            oracles[change.table].apply(change)
    for name, table in tables.items():
        skip: set[str] = set()
        expected = oracles[name].state(skip)
        actual = {k: {n: v for n, v in r.items() if not n.startswith("_") and n not in skip
                      and n not in {c.name for c in (*table.partition_key, *table.clustering)}}
                  for k, r in live_rows(dest, table).items()}
        assert set(actual) == set(expected), name
        mismatched = [k for k in expected if _normal(actual[k]) != _normal(expected[k])]
        diffs = {(n, repr(expected[k][n])[:60], repr(actual[k][n])[:60]) for k in mismatched[:20]
                 for n in expected[k] if expected[k][n] != actual[k][n]}
        assert not mismatched, (name, len(mismatched), sorted(diffs)[:8])


def test_same_batch_twice_does_not_duplicate(dest):
    table = table_of("twice")
    dest.ensure_table(table)
    b = batch(table, lambda m: m.insert({"ck": 1}, {"a": "x", "b": 1}, timestamp=10),
              lambda m: m.insert({"ck": 2}, {"a": "y", "b": 2}, timestamp=11))
    dest.write(table, b, [])
    dest.write(table, b, [])
    count = dest.client.query_arrow("SELECT count() AS n FROM ray_cdc_t.twice").to_pylist()[0]["n"]
    assert count == 2  # not FINAL: the second insert was dropped by its deduplication token
    assert rows_of(dest, table) == {1: {"a": "x", "b": 1}, 2: {"a": "y", "b": 2}}


def test_out_of_order_partial_updates(dest):
    table = table_of("partial")
    dest.ensure_table(table)
    dest.write(table, batch(table, lambda m: m.update({"ck": 1}, {"a": "new"}, timestamp=30), position=10), [])
    dest.write(table, batch(table, lambda m: m.update({"ck": 1}, {"a": "old", "b": 7}, timestamp=20),
                            position=20), [])
    dest.write(table, batch(table, lambda m: m.update({"ck": 1}, {"b": 9}, timestamp=25),
                            lambda m: m.update({"ck": 1}, {"b": 8}, timestamp=24), position=30), [])
    assert rows_of(dest, table) == {1: {"a": "new", "b": 9}}


def test_delete_then_older_late_insert_stays_deleted(dest):
    table = table_of("late", static=True)
    dest.ensure_table(table)
    dest.write(table, batch(table, lambda m: m.insert({"ck": 1}, {"a": "x", "b": 1}, timestamp=10),
                            lambda m: m.insert({"ck": 2}, {"a": "y", "b": 2}, timestamp=10),
                            lambda m: m.insert({"ck": 3}, {"a": "z", "b": 3}, timestamp=10), position=10), [])
    dest.write(table, batch(table, lambda m: m.delete_row({"ck": 1}, timestamp=50),
                            lambda m: m.delete_range({"ck": 2}, {"ck": 2}, start_inclusive=True,
                                                     end_inclusive=True, timestamp=50), position=20), [])
    assert rows_of(dest, table) == {3: {"a": "z", "b": 3}}
    late = batch(table, lambda m: m.insert({"ck": 1}, {"a": "late", "b": 0}, timestamp=40),
                 lambda m: m.insert({"ck": 2}, {"a": "late", "b": 0}, timestamp=40),
                 lambda m: m.update({"ck": 3}, {"b": 4}, timestamp=60), position=30)
    dest.write(table, late, [])
    assert rows_of(dest, table) == {3: {"a": "z", "b": 4}}
    dest.write(table, batch(table, lambda m: m.delete_partition(timestamp=70), position=40), [])
    dest.write(table, batch(table, lambda m: m.update({"ck": 3}, {"a": "older"}, timestamp=65),
                            lambda m: m.insert({"ck": 4}, {"a": "newer", "b": 5}, timestamp=80), position=50), [])
    assert rows_of(dest, table) == {4: {"a": "newer", "b": 5}}


def test_offsets_move_forward_only(dest):
    table = table_of("offsets")
    dest.ensure_table(table)
    b = batch(table, lambda m: m.insert({"ck": 1}, {"a": "x"}, timestamp=10))
    dest.write(table, b, [Offset("node-a", SEGMENT, 500)])
    dest.write(table, batch(table, lambda m: m.insert({"ck": 2}, {"a": "y"}, timestamp=11), position=600),
               [Offset("node-a", SEGMENT, 900), Offset("node-b", SEGMENT + 1, 42, completed=True)])
    with pytest.raises(OffsetRegressionError):
        dest.write(table, b, [Offset("node-a", SEGMENT, 700)])
    fresh = ClickHouseDestination.__new__(ClickHouseDestination)  # a restarted writer on the same client
    fresh.name, fresh.client, fresh.offsets = dest.name, dest.client, type(dest.offsets)(
        dest.client, dest.offsets.database, dest.name)
    committed = fresh.committed_offsets()
    assert committed[f"node-a/{SEGMENT}"] == Offset("node-a", SEGMENT, 900)
    assert committed[f"node-b/{SEGMENT + 1}"] == Offset("node-b", SEGMENT + 1, 42, completed=True)


def test_ttl_clause_and_expiry(dest):
    table = table_of("ttl")
    dest.ensure_table(table)
    ddl = dest.client.command("SHOW CREATE TABLE ray_cdc_t.ttl")
    assert "TTL if(_expires_at = 0" in ddl and "ReplacingMergeTree(_version, _is_deleted)" in ddl
    now = int(datetime.now(timezone.utc).timestamp())
    dest.write(table, batch(table, lambda m: m.insert({"ck": 1}, {"a": "gone"}, timestamp=10, ttl=60, now=now - 3600),
                            lambda m: m.insert({"ck": 2}, {"a": "stays"}, timestamp=10, ttl=3600, now=now),
                            lambda m: m.insert({"ck": 3}, {"a": "forever"}, timestamp=10)), [])
    assert sorted(rows_of(dest, table)) == [2, 3]


def test_unconvertible_rows_are_rejected_rest_applied(dest):
    t = parse_cql_type
    table = TableSchema("ray_cdc_t", "rejects", uuid.uuid5(uuid.NAMESPACE_OID, "rejects"), (
        ColumnSchema("id", t("bigint"), ColumnKind.PARTITION_KEY), ColumnSchema("ck", t("int"), ColumnKind.CLUSTERING),
        ColumnSchema("d", t("date"), ColumnKind.REGULAR)))
    dest.ensure_table(table)
    from datetime import date
    b = batch(table, lambda m: m.insert({"ck": 1}, {"d": date(2024, 1, 2)}, timestamp=10),
              lambda m: m.insert({"ck": 2}, {"d": date(1, 1, 1)}, timestamp=10))
    result = dest.write(table, b, [])
    assert result.rows == 1 and [i for i, _ in result.rejected] == [1]
    assert "outside" in result.rejected[0][1]
    assert [k[1] for k in live_rows(dest, table)] == [1]


def test_errors_are_classified_without_credentials():
    from ray_cdc.destinations.clickhouse.errors import classify
    from ray_cdc.errors import FatalDestinationError, TransientDestinationError

    class Fake(Exception):
        code = 209

    assert isinstance(classify(Fake("http://u:secret@h:8123 timed out"), "ch"), TransientDestinationError)
    fatal = classify(ValueError("Code: 62. Syntax error at http://u:secret@h:8123/db"), "ch")
    assert isinstance(fatal, FatalDestinationError) and "secret" not in str(fatal)
