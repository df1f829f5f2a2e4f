"""The ClickHouse destination against a real embedded ClickHouse (chDB), one data directory per module
(chDB lets a process open one directory at a time).

The reference state is tests/support/expected_state.py (Cassandra's reconciliation over the decoded
change records, element by element for non-frozen collections and UDTs), taken at "now" as the
`__live` view is: the full default workload mix (collection appends, puts, removals, overwrites,
deletes, element TTLs) and the mix without collection edits.
"""

from __future__ import annotations

import dataclasses
import functools
import pickle
import time
import uuid
from datetime import datetime, timezone

import pyarrow as pa
import pytest

from ray_cdc.commitlog.arrow_batches import arrow_batches
from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.reader import CommitLogReader, DecodedMutation
from ray_cdc.commitlog.workload import DEFAULT_MIX, demo_tables, generate
from ray_cdc.destinations.clickhouse import ClickHouseDestination
from ray_cdc.destinations.clickhouse.forms import from_stored, to_stored
from ray_cdc.destinations.clickhouse.store import stored_schema
from ray_cdc.offsets import Offset
from ray_cdc.offsets.offset import OffsetRegressionError
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.registry import SchemaRegistry
from ray_cdc.schema.types import parse_cql_type
from tests.support.expected_state import expected_state

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


def expected_rows(table: TableSchema, state, now: datetime) -> dict[tuple, dict]:
    """The oracle's live rows and static rows at `now`, keyed and valued in the stored form."""
    keys = [*table.partition_key, *table.clustering]
    columns = [*table.static, *table.regular]
    out = {}
    for key, values in state.live_rows(now).items():
        stored_key = tuple(stored_value(c, v) if v is not None else None for c, v in zip(keys, key))
        out[stored_key] = {c.name: stored_value(c, values.get(c.name)) for c in columns}
    for pk, values in state.live_statics(now).items():
        stored_key = tuple(stored_value(c, v) for c, v in zip(table.partition_key, pk)) + (None,) * len(table.clustering)
        out[stored_key] = {c.name: stored_value(c, values.get(c.name)) for c in columns}
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
    pytest.param(DEFAULT_MIX, id="per-element-collections"),
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
    states = expected_state(reader.changes(summary.segments))
    element_edited = 0
    for table in demo_tables(keyspace):
        state = states[table.qualified_name]
        element_edited += sum(1 for v in state.whole_value.values() if not v)
        expected = expected_rows(table, state, now)
        key_names = {c.name for c in (*table.partition_key, *table.clustering)}
        actual = {k: {n: v for n, v in r.items() if not n.startswith("_") and n not in key_names}
                  for k, r in live_rows(dest, table).items()}
        assert set(actual) == set(expected), (table.name, sorted(set(actual) ^ set(expected), key=repr)[:3])
        mismatched = [k for k in expected if _normal(actual[k]) != _normal(expected[k])]
        diffs = {(n, repr(expected[k][n])[:60], repr(actual[k][n])[:60]) for k in mismatched[:20]
                 for n in expected[k] if expected[k][n] != actual[k][n]}
        assert not mismatched, (table.name, len(mismatched), sorted(diffs)[:8])
    if mix is DEFAULT_MIX:
        assert element_edited > 50  # appends, puts and removals were compared element by element


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
    assert "TTL if(_is_deleted OR (_purge_at = 0)" in ddl and "ReplacingMergeTree(_version, _is_deleted)" in ddl
    now = int(datetime.now(timezone.utc).timestamp())
    dest.write(table, batch(table, lambda m: m.insert({"ck": 1}, {"a": "gone"}, timestamp=10, ttl=60, now=now - 3600),
                            lambda m: m.insert({"ck": 2}, {"a": "stays"}, timestamp=10, ttl=3600, now=now),
                            lambda m: m.insert({"ck": 3}, {"a": "forever"}, timestamp=10)), [])
    assert sorted(rows_of(dest, table)) == [2, 3]


def test_expired_overwrite_in_a_later_batch_keeps_shadowing_the_older_row(dest):
    """A row written without TTL, then overwritten whole (every column and the row marker) in another
    batch with cells that expire: once they have, the row is gone (Cassandra: the expired cells are
    tombstones at their writetime, newer than the old cells). The two versions sit in different parts;
    applying the TTL (MATERIALIZE TTL, what a background merge of the newer part alone does) must not
    remove the newer one and let the older read as current again, in the `__live` view or in the rows a
    later merge starts from. Every expired row stays stored for PURGE_GRACE after it was written here,
    so that a late, older change of it is still shadowed (test_clickhouse_out_of_order.py)."""
    table = table_of("ttl_overwrite")
    dest.ensure_table(table)
    name = f"`{table.keyspace}`.`{table.name}`"
    dest.write(table, batch(table, lambda m: m.insert({"ck": 1}, {"a": "old", "b": 1}, timestamp=10),
                            position=1000), [])
    now = int(datetime.now(timezone.utc).timestamp())
    dest.write(table, batch(table, lambda m: m.insert({"ck": 1}, {"a": "new", "b": 2}, timestamp=20, ttl=2, now=now),
                            lambda m: m.insert({"ck": 2}, {"a": "alone", "b": 2}, timestamp=20, ttl=2, now=now),
                            position=1100), [])
    assert rows_of(dest, table) == {1: {"a": "new", "b": 2}, 2: {"a": "alone", "b": 2}}
    assert stored_rows(dest, table) == 3
    while datetime.now(timezone.utc).timestamp() < now + 3:
        time.sleep(0.2)
    dest.client.command(f"ALTER TABLE {name} MATERIALIZE TTL SETTINGS mutations_sync = 1")
    assert rows_of(dest, table) == {}
    kept = dest.client.query_arrow(f"SELECT ck, a, b FROM {name} ORDER BY _version, ck").to_pylist()
    assert kept == [{"ck": 1, "a": "old", "b": 1}, {"ck": 1, "a": "new", "b": 2}, {"ck": 2, "a": "alone", "b": 2}]
    # a late update older than the expired cells but newer than the old ones: shadowed, the row stays gone
    dest.write(table, batch(table, lambda m: m.update({"ck": 1}, {"b": 3}, timestamp=15), position=1200), [])
    dest.client.command(f"ALTER TABLE {name} MATERIALIZE TTL SETTINGS mutations_sync = 1")
    assert rows_of(dest, table) == {}
    # a newer one lives, alone: the expired cells read as nothing
    dest.write(table, batch(table, lambda m: m.update({"ck": 1}, {"b": 4}, timestamp=30), position=1300), [])
    assert rows_of(dest, table) == {1: {"a": None, "b": 4}}


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


def test_collection_elements_merge_per_element_and_expire_one_by_one(dest):
    from ray_cdc.commitlog.builder import list_cell_id

    t = parse_cql_type
    table = TableSchema("ray_cdc_t", "bags", uuid.uuid5(uuid.NAMESPACE_OID, "bags"), (
        ColumnSchema("id", t("bigint"), ColumnKind.PARTITION_KEY), ColumnSchema("ck", t("int"), ColumnKind.CLUSTERING),
        ColumnSchema("s", t("set<text>"), ColumnKind.REGULAR), ColumnSchema("l", t("list<int>"), ColumnKind.REGULAR),
        ColumnSchema("m", t("map<int, text>"), ColumnKind.REGULAR)))
    dest.ensure_table(table)
    now = int(datetime.now(timezone.utc).timestamp())
    key = {"ck": 1}
    dest.write(table, batch(table, lambda m: m.append_to(key, "s", {"c"}, 30),
                            lambda m: m.update(key, {"s": {"a", "b"}, "l": [1, 2], "m": {2: "two", 1: "one"}},
                                               timestamp=10),
                            lambda m: m.remove_from(key, "s", ["a"], 20), position=10), [])
    dest.write(table, batch(table, lambda m: m.remove_from(key, "s", ["b"], 5),  # older than the element
                            lambda m: m.append_to(key, "l", [3], 40), lambda m: m.append_to(key, "l", [0], 35),
                            lambda m: m.remove_from(key, "l", [list_cell_id(10, 1)], 50),
                            lambda m: m.put(key, "m", {3: "three", 1: None}, 60),
                            lambda m: m.append_to(key, "m", {9: "gone"}, 70, ttl=60, now=now - 3600),
                            lambda m: m.append_to(key, "l", [5], 70, ttl=3600, now=now), position=20), [])
    (row,) = live_rows(dest, table).values()
    assert sorted(row["s"]) == ["b", "c"] and row["l"] == [1, 0, 3, 5]
    assert sorted(row["m"]) == [(2, "two"), (3, "three")]  # 9 expired on its own
    dest.write(table, batch(table, lambda m: m.delete_column(key, "m", timestamp=65),
                            lambda m: m.delete_row(key, timestamp=36), position=30), [])
    (row,) = live_rows(dest, table).values()
    assert (row["s"], row["l"], row["m"]) == ([], [3, 5], [])


# --- the direct path (new keys written without a merge) and its boundaries -----------------------------


def keyed_batch(table: TableSchema, *steps, position: int = 100) -> pa.RecordBatch:
    """Like `batch`, with each step's partition key: steps are (partition key, builder step)."""
    decoded = []
    for i, (pk, step) in enumerate(steps):
        builder = MutationBuilder(table, pk)
        step(builder)
        decoded.append(DecodedMutation(CommitLogPosition(SEGMENT, position + i), builder.mutation()))
    return pa.Table.from_batches([b for _, b in arrow_batches(decoded)]).combine_chunks().to_batches()[0]


def stored_rows(dest, table: TableSchema) -> int:
    """Physical rows (no FINAL): what inserts, not merges, put there."""
    return int(dest.client.command(f"SELECT count() FROM `{table.keyspace}`.`{table.name}`"))


def test_batch_mixing_new_keys_and_stored_keys_with_newer_and_older_columns(dest):
    table = table_of("mixed_keys")
    dest.ensure_table(table)
    dest.write(table, batch(table, lambda m: m.insert({"ck": 1}, {"a": "one", "b": 1}, timestamp=10),
                            lambda m: m.insert({"ck": 2}, {"a": "two", "b": 2}, timestamp=10),
                            lambda m: m.update({"ck": 3}, {"a": "three"}, timestamp=10), position=10), [])
    dest.write(table, batch(table, lambda m: m.insert({"ck": 4}, {"a": "four", "b": 4}, timestamp=5),  # new
                            lambda m: m.update({"ck": 1}, {"a": "ONE"}, timestamp=20),  # stored, newer
                            lambda m: m.update({"ck": 2}, {"a": "old", "b": 0}, timestamp=5),  # stored, older
                            lambda m: m.insert({"ck": 3}, {"b": 33}, timestamp=9),  # older a, new b
                            lambda m: m.update({"ck": 5}, {"b": 5}, timestamp=7), position=20), [])  # new
    assert rows_of(dest, table) == {1: {"a": "ONE", "b": 1}, 2: {"a": "two", "b": 2}, 3: {"a": "three", "b": 33},
                                    4: {"a": "four", "b": 4}, 5: {"a": None, "b": 5}}
    # a late change older than every cell of a key the direct path wrote is merged, not stacked
    dest.write(table, batch(table, lambda m: m.update({"ck": 4}, {"a": "stale"}, timestamp=4),
                            lambda m: m.update({"ck": 5}, {"a": "five"}, timestamp=6), position=30), [])
    assert rows_of(dest, table)[4] == {"a": "four", "b": 4}
    assert rows_of(dest, table)[5] == {"a": "five", "b": 5}


def test_several_changes_of_one_new_key_in_a_batch_merge_per_column(dest):
    table = table_of("dups")
    dest.ensure_table(table)
    dest.write(table, batch(table, lambda m: m.insert({"ck": 1}, {"a": "first", "b": 1}, timestamp=10),
                            lambda m: m.update({"ck": 1}, {"a": "newest"}, timestamp=30),
                            lambda m: m.update({"ck": 1}, {"b": 2}, timestamp=20),
                            lambda m: m.update({"ck": 1}, {"a": "older"}, timestamp=25),
                            lambda m: m.insert({"ck": 2}, {"a": "tie-1"}, timestamp=40),
                            lambda m: m.insert({"ck": 2}, {"a": "tie-2"}, timestamp=40),  # a tie: the later
                            lambda m: m.insert({"ck": 3}, {"a": "gone"}, timestamp=50),
                            lambda m: m.delete_row({"ck": 3}, timestamp=50),  # a delete at the same time wins
                            lambda m: m.insert({"ck": 4}, {"a": "alone", "b": 4}, timestamp=60)), [])
    assert rows_of(dest, table) == {1: {"a": "newest", "b": 2}, 2: {"a": "tie-2", "b": None},
                                    4: {"a": "alone", "b": 4}}
    assert stored_rows(dest, table) == 4  # one row per key, the deleted one as a tombstone row


def test_new_keys_under_stored_and_same_batch_tombstones_stay_deleted(dest):
    t = parse_cql_type
    table = TableSchema("ray_cdc_t", "uuid_keys", uuid.uuid5(uuid.NAMESPACE_OID, "uuid_keys"), (
        ColumnSchema("id", t("uuid"), ColumnKind.PARTITION_KEY),
        ColumnSchema("at", t("timestamp"), ColumnKind.CLUSTERING),
        ColumnSchema("a", t("text"), ColumnKind.REGULAR)))
    dest.ensure_table(table)
    p1, p2, p3 = (uuid.UUID(int=i) for i in (1, 2, 3))
    at = [datetime(2024, 1, 1, 0, 0, s, tzinfo=timezone.utc) for s in range(6)]
    dest.write(table, keyed_batch(table, ({"id": p1}, lambda m: m.delete_partition(timestamp=100)),
                                  ({"id": p2}, lambda m: m.delete_range({"at": at[1]}, {"at": at[3]}, timestamp=100)),
                                  position=10), [])
    dest.write(table, keyed_batch(
        table,
        ({"id": p1}, lambda m: m.insert({"at": at[0]}, {"a": "older than the partition delete"}, timestamp=90)),
        ({"id": p1}, lambda m: m.insert({"at": at[1]}, {"a": "p1 newer"}, timestamp=110)),
        ({"id": p2}, lambda m: m.insert({"at": at[2]}, {"a": "inside the range, older"}, timestamp=90)),
        ({"id": p2}, lambda m: m.insert({"at": at[4]}, {"a": "outside the range"}, timestamp=90)),
        ({"id": p3}, lambda m: m.insert({"at": at[0]}, {"a": "deleted in this batch"}, timestamp=90)),
        ({"id": p3}, lambda m: m.delete_partition(timestamp=95)),
        ({"id": p3}, lambda m: m.insert({"at": at[5]}, {"a": "p3 newer"}, timestamp=99)), position=20), [])
    live = {(uuid.UUID(bytes=k[0]), k[1].second): r["a"] for k, r in live_rows(dest, table).items()}
    assert live == {(p1, 1): "p1 newer", (p2, 4): "outside the range", (p3, 5): "p3 newer"}


def _insert_row(i: int, m: MutationBuilder) -> None:
    m.insert({"ck": i}, {"a": f"v{i}", "b": i}, timestamp=10)


def test_replayed_batch_after_newer_data_and_a_restart_changes_nothing(dest, tmp_path):
    table = table_of("replay")
    dest.ensure_table(table)
    first = batch(table, *[functools.partial(_insert_row, i) for i in range(50)], position=10)
    dest.write(table, first, [])
    dest.write(table, batch(table, lambda m: m.update({"ck": 7}, {"a": "newer"}, timestamp=20), position=100), [])
    before = stored_rows(dest, table)
    dest.write(table, first, [])  # replay: dropped by its token
    assert stored_rows(dest, table) == before == 51
    # a writer restarted on the same data directory still knows the token, and prepares it elsewhere
    prepared = ClickHouseDestination.prepare(table, first)
    restarted = ClickHouseDestination(name=dest.name)  # never opened: it takes over the open client
    restarted.client, restarted.offsets = dest.client, dest.offsets
    restarted.write_prepared(pickle.loads(pickle.dumps(prepared)), [])
    assert stored_rows(dest, table) == before
    rows = rows_of(dest, table)
    assert len(rows) == 50 and rows[7] == {"a": "newer", "b": 7} and rows[8] == {"a": "v8", "b": 8}


def test_prepare_then_write_prepared_equals_write(dest, tmp_path):
    summary = generate(tmp_path / "segments", rows=1500, tables=demo_tables("ray_cdc_split"),
                       segment_size=1 << 20, mix=DEFAULT_MIX, seed=3)
    reader = CommitLogReader(SchemaRegistry(load_cql_schema(summary.schema_path)))
    pairs = list(reader.arrow_batches(summary.segments, max_rows=300))
    copies = {t.id: dataclasses.replace(t, keyspace="ray_cdc_split_copy") for t, _ in pairs}
    other = ClickHouseDestination(f"chdb://{tmp_path / 'unused'}")  # never opened: prepare needs no connection
    # pickled, as a transform stage hands it over through Ray's object store
    prepared = [pickle.loads(pickle.dumps(other.prepare(copies[t.id], b))) for t, b in pairs]
    for (table, record_batch), p in zip(pairs, prepared):
        dest.ensure_table(table)
        dest.ensure_table(copies[table.id])
        assert dest.write(table, record_batch, []).rows == record_batch.num_rows
        assert dest.write_prepared(p, []).rows == record_batch.num_rows
    assert sum(p.direct.num_rows for p in prepared) > 100  # the direct path was taken ...
    assert sum(p.rows.num_rows - p.direct.num_rows for p in prepared) > 100  # ... and the merge too
    for table in {t.id: t for t, _ in pairs}.values():
        assert live_rows(dest, table) == live_rows(dest, copies[table.id]), table.name


def test_composite_key_columns_are_refused_by_name():
    from ray_cdc.errors import FatalDestinationError

    t = parse_cql_type
    table = TableSchema("ray_cdc_t", "frozen_key", uuid.uuid5(uuid.NAMESPACE_OID, "frozen_key"), (
        ColumnSchema("id", t("bigint"), ColumnKind.PARTITION_KEY),
        ColumnSchema("tags", t("frozen<list<int>>"), ColumnKind.CLUSTERING),
        ColumnSchema("a", t("text"), ColumnKind.REGULAR)))
    b = batch(table, lambda m: m.insert({"tags": [1, 2]}, {"a": "x"}, timestamp=10))
    with pytest.raises(FatalDestinationError, match="ray_cdc_t.frozen_key: primary key column tags"):
        ClickHouseDestination.prepare(table, b)


# --- the stored keys a writer tracks (known_keys.py) ------------------------------------------------


READ_BACK = "LIMIT 1 BY"  # the read of the stored rows of a batch's keys (TableStore.current)


class RecordingClient:
    """The destination's real chDB client, recording the SQL of its reads."""

    def __init__(self, client):
        self._client, self.reads, self.commands = client, [], []

    def query_arrow(self, sql, settings=None):
        self.reads.append(sql)
        return self._client.query_arrow(sql, settings)

    def command(self, sql, *args, **kwargs):
        self.commands.append(sql)
        return self._client.command(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def sharing(dest, **options) -> ClickHouseDestination:
    """Another destination object on `dest`'s open chDB (a restarted writer: it knows nothing yet)."""
    other = ClickHouseDestination(name=dest.name, **options)
    other.client, other.offsets = RecordingClient(dest.client), dest.offsets
    return other


def test_a_batch_of_new_keys_is_not_read_back_and_a_stored_key_still_merges(dest):
    table = table_of("tracked")
    writer = sharing(dest)
    writer.ensure_table(table)
    writer.write(table, batch(table, *[functools.partial(_insert_row, i) for i in range(20)], position=10), [])
    writer.write(table, batch(table, *[functools.partial(_insert_row, i) for i in range(20, 40)], position=40), [])
    assert not [sql for sql in writer.client.reads if READ_BACK in sql]
    # a partial update of a stored key is merged with its row, not written over it
    writer.write(table, batch(table, lambda m: m.update({"ck": 25}, {"a": "newer"}, timestamp=20),
                              lambda m: m.insert({"ck": 99}, {"a": "new", "b": 99}, timestamp=20), position=90), [])
    assert len([sql for sql in writer.client.reads if READ_BACK in sql]) == 1
    rows = rows_of(dest, table)
    assert len(rows) == 41 and rows[25] == {"a": "newer", "b": 25} and rows[99] == {"a": "new", "b": 99}
    assert stored_rows(dest, table) == 42  # the merged row of ck 25 beside its first version


def test_a_restarted_writer_knows_the_keys_already_stored(dest):
    table = table_of("tracked_restart")
    first = sharing(dest)
    first.ensure_table(table)
    first.write(table, batch(table, *[functools.partial(_insert_row, i) for i in range(10)], position=10), [])
    restarted = sharing(dest)  # its keys come from the table, not from `first`
    restarted.write(table, batch(table, lambda m: m.update({"ck": 3}, {"b": 333}, timestamp=20), position=50), [])
    assert rows_of(dest, table)[3] == {"a": "v3", "b": 333}


def test_a_failed_insert_makes_the_writer_read_the_keys_again(dest, monkeypatch):
    from ray_cdc.destinations.clickhouse.store import TableStore
    from ray_cdc.errors import TransientDestinationError

    table = table_of("tracked_failure")
    writer = sharing(dest)
    writer.ensure_table(table)
    writer.write(table, batch(table, functools.partial(_insert_row, 1), position=10), [])
    real = TableStore.insert

    def lands_then_fails(self, suffix, data, token, settings=None):
        real(self, suffix, data, token, settings)  # the rows are stored, the answer is lost
        if suffix == "" and data.num_rows:
            raise TransientDestinationError("connection reset after the insert", destination=dest.name)

    monkeypatch.setattr(TableStore, "insert", lands_then_fails)
    with pytest.raises(TransientDestinationError):
        writer.write(table, batch(table, functools.partial(_insert_row, 2), position=20), [])
    monkeypatch.setattr(TableStore, "insert", real)
    writer.write(table, batch(table, lambda m: m.update({"ck": 2}, {"a": "updated"}, timestamp=30), position=30), [])
    assert rows_of(dest, table) == {1: {"a": "v1", "b": 1}, 2: {"a": "updated", "b": 2}}


@pytest.mark.parametrize("track_keys", [True, False], ids=["tracked", "read-back"])
def test_demo_workload_matches_oracle_with_and_without_tracked_keys(dest, tmp_path, track_keys):
    """The same full mix (static rows, deletes of every kind, collections) through a writer that
    tracks its keys and one that reads every batch's keys back (a ClickHouse server's way)."""
    keyspace = f"ray_cdc_keys_{'on' if track_keys else 'off'}"
    writer = sharing(dest, track_keys=track_keys)
    summary = generate(tmp_path / "segments", rows=2400, tables=demo_tables(keyspace), segment_size=1 << 20)
    reader = CommitLogReader(SchemaRegistry(load_cql_schema(summary.schema_path)))
    for table, record_batch in reader.arrow_batches(summary.segments, max_rows=300):
        writer.ensure_table(table)
        assert writer.write(table, record_batch, []).rejected == []
    reads = [sql for sql in writer.client.reads if READ_BACK in sql]
    now = datetime.now(timezone.utc)
    states = expected_state(reader.changes(summary.segments))
    for table in demo_tables(keyspace):
        expected = expected_rows(table, states[table.qualified_name], now)
        key_names = {c.name for c in (*table.partition_key, *table.clustering)}
        actual = {k: {n: v for n, v in r.items() if not n.startswith("_") and n not in key_names}
                  for k, r in live_rows(dest, table).items()}
        assert set(actual) == set(expected), table.name
        assert [k for k in expected if _normal(actual[k]) != _normal(expected[k])] == [], table.name
    batches = sum(1 for _ in reader.arrow_batches(summary.segments, max_rows=300))
    assert 0 < len(reads) < batches if track_keys else len(reads) >= batches - len(demo_tables(keyspace))


def test_keys_inserted_by_a_batch_that_reads_back_are_remembered_too(dest):
    """A batch with a partition delete reads its rows back; the new keys it inserts beside it must
    still count as stored, or a later partial update of one would be written over its row."""
    table = table_of("tracked_partitions")
    writer = sharing(dest)
    writer.ensure_table(table)
    writer.write(table, keyed_batch(table, ({"id": 1}, functools.partial(_insert_row, 1)), position=10), [])
    writer.write(table, keyed_batch(table, ({"id": 1}, lambda m: m.delete_partition(timestamp=20)),
                                    ({"id": 2}, lambda m: m.insert({"ck": 5}, {"a": "a5", "b": 5}, timestamp=20)),
                                    position=20), [])
    writer.write(table, keyed_batch(table, ({"id": 2}, lambda m: m.update({"ck": 5}, {"a": "newer"}, timestamp=30)),
                                    position=30), [])
    live = {k: (r["a"], r["b"]) for k, r in live_rows(dest, table).items()}
    assert live == {(2, 5): ("newer", 5)}


def test_tombstones_are_counted_once_until_a_delete_and_a_delete_still_holds(dest):
    """A writer that makes every insert (embedded chDB) counts the tombstone tables once: they stay
    empty until it inserts a delete itself. After one, older writes of the deleted partition, in
    later batches, stay deleted."""
    table = table_of("tracked_tombstones")
    writer = sharing(dest)
    writer.ensure_table(table)

    def counts():
        return len([sql for sql in writer.client.commands if "__deleted_partitions" in sql and "count()" in sql])

    for n in range(3):
        writer.write(table, keyed_batch(table, ({"id": n}, functools.partial(_insert_row, n)), position=10 + n), [])
    assert counts() == 1
    writer.write(table, keyed_batch(table, ({"id": 1}, lambda m: m.delete_partition(timestamp=50)), position=20), [])
    writer.write(table, keyed_batch(table, ({"id": 1}, lambda m: m.insert({"ck": 7}, {"a": "late", "b": 7},
                                                                          timestamp=40)), position=30), [])
    writer.write(table, keyed_batch(table, ({"id": 4}, functools.partial(_insert_row, 4)), position=40), [])
    assert set(live_rows(dest, table)) == {(0, 0), (2, 2), (4, 4)}
    assert counts() >= 2  # counted again once a delete was written
