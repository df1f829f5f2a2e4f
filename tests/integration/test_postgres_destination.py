"""The PostgreSQL destination against a real server (the `postgres_server` fixture).

Correctness is checked against `tests.support.expected_state`, an independent model of Cassandra's
reconciliation over the decoder's change records.
"""

from __future__ import annotations

import math
import struct
import threading
import time
import uuid

import psycopg
import pytest

from ray_cdc.commitlog.arrow_batches import arrow_batches
from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.reader import CommitLogReader, DecodedMutation
from ray_cdc.commitlog.workload import demo_tables, generate
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.errors import FatalDestinationError, TransientDestinationError
from ray_cdc.offsets import Offset
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry
from tests.support.expected_state import expected_state

BASE = 1_700_000_000_000_000


# --- helpers -----------------------------------------------------------------------------------------


@pytest.fixture
def destination(postgres_server, request):
    schema = "t_" + uuid.uuid4().hex[:10]
    dest = PostgresDestination(postgres_server.dsn, name=schema, schema=schema)
    dest.open()
    yield dest
    dest.close()


@pytest.fixture(scope="module")
def demo_workload(tmp_path_factory):
    out = tmp_path_factory.mktemp("workload")
    summary = generate(out, rows=6000, tables=demo_tables(), seed=7)
    reader = CommitLogReader(SchemaRegistry(load_cql_schema(out / "schema.cql")))
    changes = list(reader.changes(summary.segments))
    return summary, changes


def batches_of(summary, max_rows: int):
    reader = CommitLogReader(SchemaRegistry(load_cql_schema(summary.schema_path)))
    return list(reader.arrow_batches(summary.segments, max_rows=max_rows))


def fetch_state(dest: PostgresDestination, table, static: bool = False) -> dict:
    """Live rows of the state table (no `now()` filter: the workload's TTLs are long past)."""
    names = dest.ensure_table(table)
    target = names.static if static else names.rows
    keys = [c.name for c in target.keys]
    cols = [c.name for c in target.values]
    text = {c.name for c in target.values if c.type.name == "duration"}  # psycopg cannot load ISO intervals
    select = ", ".join(f'"{c}"' + ("::text" if c in text else "") for c in keys + cols) + ", _expires_at"
    with psycopg.connect(dest._dsn) as conn:
        conn.execute("SET intervalstyle = 'iso_8601'")
        rows = conn.execute(f"SELECT {select} FROM {target.qstate} WHERE _live").fetchall()
    out = {}
    for row in rows:
        key = tuple(row[: len(keys)])
        out[key] = dict(zip(cols + ["_expires_at"], row[len(keys):]))
    return out


def _iso_interval(d) -> str:
    months, days, nanos = d.months, d.days, d.nanoseconds
    micros = nanos // 1000
    out = "P"
    years, months = divmod(months, 12)
    out += f"{years}Y" if years else ""
    out += f"{months}M" if months else ""
    out += f"{days}D" if days else ""
    if micros:
        hours, rest = divmod(micros, 3_600_000_000)
        minutes, rest = divmod(rest, 60_000_000)
        seconds, frac = divmod(rest, 1_000_000)
        out += "T" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
        if seconds or frac:
            out += f"{seconds}.{frac:06d}".rstrip("0").rstrip(".") + "S"
    return out if out != "P" else "PT0S"


def norm_expected(column, value):
    t = column.type
    if value is None:
        return None
    if t.name in ("list", "set", "map", "tuple", "udt") or (t.name == "vector" and t.params[0].name not in ("float", "double")):
        return canon(t.to_json(value))
    if t.name in ("varint",):
        return int(value)
    if t.name == "time":
        return value.nanosecond_time
    if t.name == "duration":
        return _iso_interval(value)
    if t.name == "vector":
        return [float(x) for x in value]
    return value


def norm_actual(column, value):
    t = column.type
    if value is None:
        return None
    if t.name in ("list", "set", "map", "tuple", "udt") or (t.name == "vector" and t.params[0].name not in ("float", "double")):
        return canon(value)
    if t.name == "varint":
        return int(value)
    if t.name == "float":  # psycopg reads real as its shortest text: widen it back to the float32
        return f32(value)
    if t.name == "vector":
        return [f32(x) if t.params[0].name == "float" else x for x in value]
    if t.name == "duration":
        return value if isinstance(value, str) else str(value)
    return value


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def canon(v):
    if isinstance(v, dict):
        return {k: canon(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [canon(x) for x in v]
    return v


def equal(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def compare(dest, table, expected, *, static=False) -> dict:
    """Differences between PostgreSQL's live rows and the oracle's, every column (non-frozen
    collections and UDTs element by element: appends, puts, removals, overwrites, deletes)."""
    actual = fetch_state(dest, table, static)
    want = expected.live_statics() if static else expected.live_rows()
    problems = []
    columns = table.static if static else table.regular
    only_pg, only_want = set(actual) - set(want), set(want) - set(actual)
    assert not only_pg and not only_want, (
        f"{table.name}: keys only in PostgreSQL {sorted(only_pg)[:3]}, only expected {sorted(only_want)[:3]}")
    compared = element_edited = 0
    for key, row in want.items():
        got = actual[key]
        for column in columns:
            if column.is_complex and not expected.whole_value.get((key, column.name), True):
                element_edited += 1
            compared += 1
            e, a = norm_expected(column, row[column.name]), norm_actual(column, got[column.name])
            if not equal(e, a):
                problems.append((key, column.name, e, a))
        if key not in expected.complex_ttl and not equal(row["_expires_at"], got["_expires_at"]):
            problems.append((key, "_expires_at", row["_expires_at"], got["_expires_at"]))
    assert not problems, f"{table.name}: {len(problems)} differing cells, e.g. {problems[:3]}"
    return {"rows": len(want), "compared": compared, "element_edited": element_edited}


def write_all(dest, batches):
    for table, batch in batches:
        result = dest.write(table, batch, [])
        assert not result.rejected, result.rejected[:3]


# --- correctness against the oracle -----------------------------------------------------------------------


@pytest.mark.parametrize("max_rows", [97, 5000])
def test_demo_workload_matches_oracle(destination, demo_workload, max_rows):
    summary, changes = demo_workload
    write_all(destination, batches_of(summary, max_rows))
    states = expected_state(changes)
    for table in demo_tables():
        state = states[table.qualified_name]
        report = compare(destination, table, state)
        assert report["rows"] > 50
        if table.name == "collections":  # element edits are compared, not skipped
            assert report["element_edited"] > 50, report
        if table.static:
            compare(destination, table, state, static=True)


def test_replay_twice_is_idempotent(destination, demo_workload):
    summary, changes = demo_workload
    batches = batches_of(summary, 1000)
    write_all(destination, batches)
    write_all(destination, batches)
    states = expected_state(changes)
    for table in demo_tables():
        compare(destination, table, states[table.qualified_name])


def test_two_replicas_interleaved_converge(destination, demo_workload):
    summary, changes = demo_workload
    a, b = batches_of(summary, 300), batches_of(summary, 700)
    interleaved = [x for pair in zip(a, b) for x in pair] + a[len(b):] + b[len(a):]
    write_all(destination, interleaved)
    states = expected_state(changes)
    for table in demo_tables():
        compare(destination, table, states[table.qualified_name])


# --- hand-made cases -----------------------------------------------------------------------------------


def _table():
    from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
    from ray_cdc.schema.types import parse_cql_type as t

    cols = (ColumnSchema("id", t("int"), ColumnKind.PARTITION_KEY),
            ColumnSchema("a", t("int"), ColumnKind.CLUSTERING, 0),
            ColumnSchema("b", t("text"), ColumnKind.CLUSTERING, 1, True),  # DESC
            ColumnSchema("x", t("text"), ColumnKind.REGULAR),
            ColumnSchema("y", t("int"), ColumnKind.REGULAR))
    return TableSchema("handmade", "events", uuid.uuid4(), cols)


_position = iter(range(1, 1_000_000))


def apply(dest, table, *builders, offsets=()):
    """Each builder is one mutation, each written as its own batch (arrival order = call order)."""
    results = []
    for b in builders:
        decoded = DecodedMutation(CommitLogPosition(1, next(_position) * 100), b.mutation())
        for tbl, batch in arrow_batches([decoded]):
            results.append(dest.write(tbl, batch, list(offsets)))
    return results


def live(dest, table) -> dict:
    return {k: (v["x"], v["y"]) for k, v in fetch_state(dest, table).items()}


def mb(table, pk=1):
    return MutationBuilder(table, {"id": pk})


def test_partial_updates_out_of_timestamp_order(destination):
    t = _table()
    apply(destination, t,
          mb(t).update({"a": 1, "b": "p"}, {"x": "new"}, timestamp=BASE + 20),
          mb(t).update({"a": 1, "b": "p"}, {"x": "old", "y": 7}, timestamp=BASE + 10),
          mb(t).update({"a": 1, "b": "p"}, {"y": None}, timestamp=BASE + 5))  # older null: ignored
    assert live(destination, t) == {(1, 1, "p"): ("new", 7)}


def test_delete_then_older_late_insert_stays_deleted(destination):
    t = _table()
    key = {"a": 1, "b": "p"}
    apply(destination, t, mb(t).insert(key, {"x": "v1", "y": 1}, timestamp=BASE + 10),
          mb(t).delete_row(key, timestamp=BASE + 50),
          mb(t).insert(key, {"x": "late", "y": 2}, timestamp=BASE + 30))
    assert live(destination, t) == {}
    apply(destination, t, mb(t).update(key, {"y": 3}, timestamp=BASE + 60))
    assert live(destination, t) == {(1, 1, "p"): (None, 3)}


def test_range_delete_prefix_bounds_desc_clustering(destination):
    t = _table()
    rows = [(a, b) for a in (1, 2, 3) for b in ("p", "q", "r")]
    apply(destination, t, *[mb(t).insert({"a": a, "b": b}, {"x": f"{a}{b}"}, timestamp=BASE + 10) for a, b in rows])
    # within a = 2, b is DESC (r, q, p): from (2, 'q') inclusive to the end of the a = 2 prefix
    apply(destination, t, mb(t).delete_range({"a": 2, "b": "q"}, {"a": 2}, timestamp=BASE + 20))
    assert sorted(k[1:] for k in live(destination, t)) == sorted(r for r in rows if r not in ((2, "q"), (2, "p")))
    # an older late write inside the range stays deleted; a newer one lives
    apply(destination, t, mb(t).insert({"a": 2, "b": "p"}, {"x": "late"}, timestamp=BASE + 15),
          mb(t).insert({"a": 2, "b": "q"}, {"x": "new"}, timestamp=BASE + 25))
    state = live(destination, t)
    assert (1, 2, "p") not in state and state[(1, 2, "q")] == ("new", None)
    # exclusive prefix start: a > 2 (every b)
    apply(destination, t, mb(t).delete_range({"a": 2}, {}, start_inclusive=False, timestamp=BASE + 30))
    assert sorted(k[1:] for k in live(destination, t)) == [(1, "p"), (1, "q"), (1, "r"), (2, "q"), (2, "r")]


def test_partition_delete(destination):
    t = _table()
    apply(destination, t, mb(t, 1).insert({"a": 1, "b": "p"}, {"x": "a"}, timestamp=BASE + 10),
          mb(t, 1).insert({"a": 2, "b": "p"}, {"x": "b"}, timestamp=BASE + 10),
          mb(t, 2).insert({"a": 1, "b": "p"}, {"x": "other"}, timestamp=BASE + 10),
          mb(t, 1).delete_partition(timestamp=BASE + 20),
          mb(t, 1).insert({"a": 3, "b": "p"}, {"x": "late"}, timestamp=BASE + 15))
    assert live(destination, t) == {(2, 1, "p"): ("other", None)}


def test_ttl_expiry_column_and_view(destination):
    import time as _time

    t = _table()
    now = int(_time.time())
    apply(destination, t, mb(t).insert({"a": 1, "b": "old"}, {"x": "gone"}, timestamp=BASE, ttl=60, now=now - 3600),
          mb(t).insert({"a": 1, "b": "new"}, {"x": "kept"}, timestamp=BASE, ttl=3600, now=now))
    state = fetch_state(destination, t)
    assert state[(1, 1, "new")]["_expires_at"].timestamp() == now + 3600
    assert state[(1, 1, "old")]["_expires_at"].timestamp() == now - 3600 + 60
    with psycopg.connect(destination._dsn) as conn:
        shown = conn.execute(f'SELECT b FROM "{destination.name}"."events"').fetchall()
    assert shown == [("new",)]


# --- offsets -------------------------------------------------------------------------------------------------


def test_offsets_commit_with_data_or_not_at_all(destination):
    t = _table()
    apply(destination, t, mb(t).insert({"a": 1, "b": "p"}, {"x": "v"}, timestamp=BASE),
          offsets=[Offset("node-a", 1, 100)])

    def fail(cur):
        cur.execute("SELECT 1 / 0")  # after the merge and the offsets, before COMMIT

    destination.before_commit = fail
    with pytest.raises(FatalDestinationError):
        apply(destination, t, mb(t).insert({"a": 2, "b": "p"}, {"x": "w"}, timestamp=BASE),
              offsets=[Offset("node-a", 1, 200)])
    destination.before_commit = None
    assert live(destination, t) == {(1, 1, "p"): ("v", None)}
    assert destination.committed_offsets() == {"node-a/1": Offset("node-a", 1, 100)}


def test_offsets_only_move_forward(destination):
    t = _table()
    apply(destination, t, mb(t).insert({"a": 1, "b": "p"}, {"x": "v"}, timestamp=BASE),
          offsets=[Offset("node-a", 1, 500), Offset("node-b", 9, 40, completed=True)])
    apply(destination, t, mb(t).insert({"a": 1, "b": "p"}, {"x": "v"}, timestamp=BASE),
          offsets=[Offset("node-a", 1, 300), Offset("node-b", 9, 10)])
    assert destination.committed_offsets() == {"node-a/1": Offset("node-a", 1, 500),
                                               "node-b/9": Offset("node-b", 9, 40, True)}


# --- rejected rows ----------------------------------------------------------------------------------------------


def test_bad_rows_are_rejected_the_rest_lands(destination):
    t = _table()
    builders = [mb(t).insert({"a": i, "b": "p"}, {"x": "bad\x00text" if i == 3 else f"ok{i}"}, timestamp=BASE)
                for i in range(6)]
    decoded = [DecodedMutation(CommitLogPosition(1, 10 * i), b.mutation()) for i, b in enumerate(builders)]
    (tbl, batch), = list(arrow_batches(decoded))
    result = destination.write(tbl, batch, [])
    assert [i for i, _ in result.rejected] == [3] and "NUL" in result.rejected[0][1]
    assert result.rows == 5
    assert sorted(k[1] for k in live(destination, t)) == [0, 1, 2, 4, 5]


def test_decimals_numeric_cannot_hold_are_rejected_alone(destination):
    """A decimal PostgreSQL's numeric cannot hold: psycopg refuses to encode it while the batch is
    prepared, so only its two rows are rejected and the rest lands with the offsets."""
    from decimal import Decimal

    from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
    from ray_cdc.schema.types import parse_cql_type as t

    table = TableSchema("handmade", "amounts", uuid.uuid4(), (
        ColumnSchema("id", t("int"), ColumnKind.PARTITION_KEY), ColumnSchema("v", t("decimal"), ColumnKind.REGULAR)))
    builders = [MutationBuilder(table, {"id": i}).insert({}, {"v": Decimal("1e200000") if i in (2, 7) else Decimal(i)},
                                                          timestamp=BASE) for i in range(10)]
    decoded = [DecodedMutation(CommitLogPosition(1, 10 * i), b.mutation()) for i, b in enumerate(builders)]
    (tbl, batch), = list(arrow_batches(decoded))
    result = destination.write(tbl, batch, [Offset("n", 1, 90)])
    assert [i for i, _ in result.rejected] == [2, 7], result.rejected
    assert result.rows == 8
    assert sorted(k[0] for k in fetch_state(destination, table)) == [0, 1, 3, 4, 5, 6, 8, 9]
    assert destination.committed_offsets()["n/1"].position == 90


# --- error classification -----------------------------------------------------------------------------------------


def test_server_down_is_transient_then_recovers(postgres_server, destination):
    if postgres_server.kind != "debian":
        pytest.fail("needs the restartable Debian server")
    t = _table()
    apply(destination, t, mb(t).insert({"a": 1, "b": "p"}, {"x": "v"}, timestamp=BASE))
    postgres_server.stop()
    try:
        with pytest.raises(TransientDestinationError):
            apply(destination, t, mb(t).insert({"a": 2, "b": "p"}, {"x": "w"}, timestamp=BASE))
        with pytest.raises(TransientDestinationError):
            destination.ping()
    finally:
        postgres_server.start()
    apply(destination, t, mb(t).insert({"a": 2, "b": "p"}, {"x": "w"}, timestamp=BASE))
    assert len(live(destination, t)) == 2


def test_wrong_password_is_fatal_and_not_shown(postgres_server):
    if postgres_server.kind != "debian":
        pytest.fail("needs the password-protected Debian server")
    secret = "Sup3r-s3cret-pw"
    dest = PostgresDestination(postgres_server.dsn_with_password(secret), name="badpw")
    with pytest.raises(FatalDestinationError) as info:
        dest.open()
    assert secret not in str(info.value) and info.value.__cause__ is None
    assert "badpw" in str(info.value)


def test_destinations_opening_together_on_one_server_all_open(postgres_server):
    """PostgreSQL and TimescaleDB writers start at the same moment on one server and share its offsets
    table: each creates it if missing, and none fails on the other's CREATE."""
    schema = "o_" + uuid.uuid4().hex[:10]
    dests = [PostgresDestination(postgres_server.dsn, name=f"d{i}", offsets_schema=schema) for i in range(8)]
    start = threading.Barrier(len(dests))
    errors = []

    def open_one(dest):
        start.wait()
        try:
            dest.open()
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(d,)) for d in dests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        dests[0].commit_offsets([Offset("n", 1, 10)])
        assert dests[0].committed_offsets()["n/1"].position == 10
    finally:
        for d in dests:
            d.close()


def test_a_collision_in_the_catalog_is_transient_not_bad_data(postgres_server):
    """Two sessions creating one table at once: the loser's unique violation is in PostgreSQL's own
    catalog, not in a row; it is retried (transient), never dead-lettered as a rejected row."""
    from ray_cdc.destinations.postgres.errors import classify

    table = "race_" + uuid.uuid4().hex[:10]
    with psycopg.connect(postgres_server.dsn) as first, psycopg.connect(postgres_server.dsn) as second:
        first.execute(f"CREATE TABLE {table} (k int)")  # not committed yet: the second waits on it
        failure = []

        def create():
            try:
                second.execute(f"CREATE TABLE IF NOT EXISTS {table} (k int)")
            except psycopg.Error as exc:
                failure.append(exc)

        waiting = threading.Thread(target=create)
        waiting.start()
        time.sleep(0.5)
        first.commit()
        waiting.join()
    assert failure and failure[0].sqlstate == "23505", failure
    error = classify(failure[0], destination="pg", secrets=[], doing="create")
    assert isinstance(error, TransientDestinationError), error


# --- non-frozen collections, element by element ---------------------------------------------------------


def _collections_table():
    from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
    from ray_cdc.schema.types import parse_cql_type as t

    return TableSchema("handmade", "bags", uuid.uuid4(), (
        ColumnSchema("id", t("int"), ColumnKind.PARTITION_KEY),
        ColumnSchema("s", t("set<text>"), ColumnKind.REGULAR),
        ColumnSchema("l", t("list<int>"), ColumnKind.REGULAR),
        ColumnSchema("m", t("map<int, text>"), ColumnKind.REGULAR)))


def test_collection_elements_merge_per_element(destination):
    import time as _time

    from ray_cdc.commitlog.builder import list_cell_id

    t = _collections_table()
    now = int(_time.time())

    def bag(pk=1):
        return MutationBuilder(t, {"id": pk})

    apply(destination, t,
          bag().append_to({}, "s", {"c"}, BASE + 30),  # arrives before the overwrite it follows
          bag().update({}, {"s": {"a", "b"}, "l": [1, 2], "m": {2: "two", 1: "one"}}, timestamp=BASE + 10),
          bag().remove_from({}, "s", ["a"], BASE + 20),
          bag().remove_from({}, "s", ["b"], BASE + 5),  # older than the element: ignored
          bag().append_to({}, "l", [3], BASE + 40),
          bag().append_to({}, "l", [0], BASE + 35),
          bag().remove_from({}, "l", [list_cell_id(BASE + 10, 1)], BASE + 50),  # the 2
          bag().put({}, "m", {3: "three", 1: None}, BASE + 60),
          bag().append_to({}, "m", {9: "gone soon"}, BASE + 70, ttl=60, now=now - 3600))
    state = fetch_state(destination, t)[(1,)]
    assert state["s"] == ["b", "c"]
    assert state["l"] == [1, 0, 3]  # timeuuid order: the order of the writes' timestamps
    assert state["m"] == [[2, "two"], [3, "three"], [9, "gone soon"]]  # stored: TTL not applied
    with psycopg.connect(destination._dsn) as conn:
        shown = conn.execute(f'SELECT m FROM "{destination.name}"."bags"').fetchone()[0]
    assert shown == [[2, "two"], [3, "three"]]  # the view drops the expired element
    # DELETE m at 65 kills the elements written before it; the append at 70 survives (until its TTL)
    apply(destination, t, bag().delete_column({}, "m", timestamp=BASE + 65),
          bag().delete_row({}, timestamp=BASE + 36))  # a row tombstone: s (30) and l (10, 35) die, 40 lives
    state = fetch_state(destination, t)[(1,)]
    assert (state["s"], state["l"], state["m"]) == (None, [3], [[9, "gone soon"]])
    # a later overwrite replaces everything older, whatever order the pieces arrive in
    apply(destination, t, bag().update({}, {"l": [7]}, timestamp=BASE + 100), bag().append_to({}, "l", [8], BASE + 90))
    assert fetch_state(destination, t)[(1,)]["l"] == [7]


# --- what the user-facing view shows -------------------------------------------------------------------


def view_rows(dest, view: str, columns: str) -> list[tuple]:
    with psycopg.connect(dest._dsn) as conn:
        return conn.execute(f'SELECT {columns} FROM "{dest.name}"."{view}" ORDER BY 1, 2').fetchall()


def test_row_alive_only_through_expiring_elements_leaves_the_view(destination):
    """Cassandra returns no row once the only cells keeping it alive (collection elements with a TTL)
    have expired; a row marker (INSERT) or a non-expiring cell keeps it."""
    import time as _time

    t = _collections_table()
    now = int(_time.time())
    apply(destination, t,
          MutationBuilder(t, {"id": 1}).append_to({}, "s", {"soon"}, BASE + 10, ttl=2, now=now),
          MutationBuilder(t, {"id": 2}).insert({}, {}, timestamp=BASE + 10),
          MutationBuilder(t, {"id": 2}).append_to({}, "s", {"soon"}, BASE + 20, ttl=2, now=now),
          MutationBuilder(t, {"id": 3}).append_to({}, "s", {"soon"}, BASE + 10, ttl=2, now=now),
          MutationBuilder(t, {"id": 3}).append_to({}, "l", [5], BASE + 10))
    with psycopg.connect(destination._dsn) as conn:
        before = conn.execute(f'SELECT id, s FROM "{destination.name}"."bags" ORDER BY id').fetchall()
    assert before == [(1, ["soon"]), (2, ["soon"]), (3, ["soon"])]
    _time.sleep(max(0.0, now + 3 - _time.time()))  # the elements expire at now + 2 (whole seconds)
    with psycopg.connect(destination._dsn) as conn:
        after = conn.execute(f'SELECT id, s, l FROM "{destination.name}"."bags" ORDER BY id').fetchall()
    assert after == [(2, None, None), (3, None, [5])]
    assert set(fetch_state(destination, t)) == {(1,), (2,), (3,)}  # the state keeps them (late writes)


def _static_table():
    from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
    from ray_cdc.schema.types import parse_cql_type as t

    return TableSchema("handmade", "with_statics", uuid.uuid4(), (
        ColumnSchema("id", t("int"), ColumnKind.PARTITION_KEY),
        ColumnSchema("ck", t("int"), ColumnKind.CLUSTERING, 0),
        ColumnSchema("st", t("text"), ColumnKind.STATIC),
        ColumnSchema("v", t("text"), ColumnKind.REGULAR)))


def test_partition_with_only_static_cells_is_one_row_in_the_view(destination):
    """Cassandra's SELECT returns a partition that has static cells and no live row as one row with the
    clustering (and regular) columns null; once a row lives, only the rows show."""
    t = _static_table()

    def part(pk):
        return MutationBuilder(t, {"id": pk})

    apply(destination, t, part(1).static({"st": "only static"}, timestamp=BASE + 10),
          part(2).static({"st": "with rows"}, timestamp=BASE + 10),
          part(2).insert({"ck": 1}, {"v": "a"}, timestamp=BASE + 10),
          part(3).insert({"ck": 1}, {"v": "b"}, timestamp=BASE + 10))
    assert view_rows(destination, "with_statics", "id, ck, v") == [(1, None, None), (2, 1, "a"), (3, 1, "b")]
    assert view_rows(destination, "with_statics__statics", "id, st") == [(1, "only static"), (2, "with rows")]
    # the partition's only row deleted: the static cells alone make it one row again
    apply(destination, t, part(2).delete_row({"ck": 1}, timestamp=BASE + 20))
    assert view_rows(destination, "with_statics", "id, ck, v") == [(1, None, None), (2, None, None), (3, 1, "b")]
    # a partition delete removes the static cells too: nothing left of partition 1
    apply(destination, t, part(1).delete_partition(timestamp=BASE + 30))
    assert view_rows(destination, "with_statics", "id, ck, v") == [(2, None, None), (3, 1, "b")]


# --- the write path: prepare / write_prepared, the plain-INSERT path, payload encoding -------------------


def test_prepare_is_connection_free_and_write_prepared_applies_it(postgres_server):
    """`prepare` needs no server (it runs with a DSN that points nowhere), survives pickling (another
    process may run it), and `write_prepared` applies it like `write`."""
    import pickle

    t = _table()
    decoded = [DecodedMutation(CommitLogPosition(7, 10 * i), mb(t, i).insert({"a": i, "b": "p"}, {"x": f"v{i}"},
                                                                                timestamp=BASE).mutation())
               for i in range(50)]
    (tbl, batch), = list(arrow_batches(decoded))
    nowhere = PostgresDestination("postgresql://nobody@127.0.0.1:1/none", schema="unused")
    prepared = pickle.loads(pickle.dumps(nowhere.prepare(tbl, batch)))
    schema = "t_" + uuid.uuid4().hex[:10]
    dest = PostgresDestination(postgres_server.dsn, name=schema, schema=schema)
    dest.open()
    try:
        prepared = dest.prepare(tbl, batch)
        result = dest.write_prepared(pickle.loads(pickle.dumps(prepared)), [Offset("n", 7, 500)])
        assert result.rows == 50 and not result.rejected
        assert len(live(dest, t)) == 50
        assert dest.committed_offsets()["n/7"].position == 500
    finally:
        dest.close()


def test_a_prepared_batch_carries_its_encoded_values_once(postgres_server):
    """What a transform actor sends a PostgreSQL writer: the direct path's COPY tuples are built in
    the writer from the encoded fields the staged fallback shares, so the prepared batch is about
    the size of the batch (it was twice that), and still takes the direct path there."""
    import pickle

    t = _table()
    decoded = [DecodedMutation(CommitLogPosition(7, 10 * i), mb(t, i).insert(
        {"a": i, "b": f"p{i % 7}"}, {"x": f"value {i} " * 4, "y": i}, timestamp=BASE + i).mutation())
        for i in range(2000)]
    (tbl, batch), = list(arrow_batches(decoded))
    schema = "t_" + uuid.uuid4().hex[:10]
    dest = PostgresDestination(postgres_server.dsn, name=schema, schema=schema)
    dest.open()
    try:
        sent = pickle.dumps(dest.prepare(tbl, batch), protocol=5)
        assert len(sent) < 1.25 * len(pickle.dumps(batch, protocol=5))
        result = dest.write_prepared(pickle.loads(sent), [Offset("n", 7, 20_000)])
        assert (result.rows, result.rejected, dest.paths["direct"]) == (2000, [], 1)
        rows = live(dest, t)
        assert len(rows) == 2000
    finally:
        dest.close()


def test_new_keys_and_existing_keys_in_one_batch(destination):
    """The plain-INSERT path is taken only when no staged key exists: a batch mixing new and existing
    keys (and a duplicate inside the batch) goes through the upsert and still merges per column."""
    t = _table()
    apply(destination, t, mb(t).insert({"a": 1, "b": "p"}, {"x": "old", "y": 1}, timestamp=BASE + 10))
    builders = [mb(t).update({"a": 1, "b": "p"}, {"y": 2}, timestamp=BASE + 20),
                mb(t).insert({"a": 2, "b": "p"}, {"x": "new"}, timestamp=BASE + 20),
                mb(t).update({"a": 2, "b": "p"}, {"y": 9}, timestamp=BASE + 15)]
    decoded = [DecodedMutation(CommitLogPosition(1, 10 * i), b.mutation()) for i, b in enumerate(builders)]
    (tbl, batch), = list(arrow_batches(decoded))
    assert not destination.write(tbl, batch, []).rejected
    assert live(destination, t) == {(1, 1, "p"): ("old", 2), (1, 2, "p"): ("new", 9)}


def test_values_postgresql_refuses_in_copy_are_bisected(destination):
    """A NUL inside a frozen list's text is valid for Arrow and psycopg, but jsonb refuses "\\u0000": only
    the server's COPY finds it, so the batch is bisected inside savepoints down to those rows."""
    from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
    from ray_cdc.schema.types import parse_cql_type as t

    table = TableSchema("handmade", "frozen_lists", uuid.uuid4(), (
        ColumnSchema("id", t("int"), ColumnKind.PARTITION_KEY),
        ColumnSchema("v", t("frozen<list<text>>"), ColumnKind.REGULAR)))
    builders = [MutationBuilder(table, {"id": i}).insert({}, {"v": ["a\x00b" if i in (3, 11) else f"ok{i}"]},
                                                         timestamp=BASE) for i in range(16)]
    decoded = [DecodedMutation(CommitLogPosition(1, 10 * i), b.mutation()) for i, b in enumerate(builders)]
    (tbl, batch), = list(arrow_batches(decoded))
    result = destination.write(tbl, batch, [])
    assert [i for i, _ in result.rejected] == [3, 11], result.rejected
    assert all("UntranslatableCharacter" in reason or "jsonb" in reason.lower() or "unicode" in reason.lower()
               for _, reason in result.rejected), result.rejected
    assert sorted(k[0] for k in fetch_state(destination, table)) == [i for i in range(16) if i not in (3, 11)]
    # the batch qualified for the direct path: its COPY into the state table failed and was rolled back
    assert destination.paths["conflict"] == 1 and destination.paths["direct"] == 0


# --- the direct path (COPY straight into the state table) -------------------------------------------------


def state_rows(dest, target) -> dict:
    """Every column of a state table, bookkeeping included, by key."""
    n = len(target.keys)
    with psycopg.connect(dest._dsn) as conn:
        cur = conn.execute(f"SELECT * FROM {target.qstate}")
        names = [d.name for d in cur.description]
        return {row[:n]: dict(zip(names, row)) for row in cur.fetchall()}


def _direct_tables():
    """Tables the direct path can take: all_types without the types staged as text (duration, vector
    of float), with its composite partition key, DESC timeuuid clustering and static columns; and the
    benchmark's wide table."""
    from ray_cdc.commitlog.workload_tables import DEMO_KEYSPACE, _TableSpec, _user_types, wide_table

    all_types, = [t for t in demo_tables() if t.name == "all_types"]
    spec = _TableSpec(
        "direct_types", partition=(("tenant", "text"), ("bucket", "int")),
        clustering=(("event_time", "timeuuid", True), ("seq", "bigint", False), ("label", "ascii", False)),
        static=(("owner", "text"), ("revision", "bigint")),
        regular=tuple((c.name, c.type.cql()) for c in all_types.regular
                      if c.type.name not in ("duration", "vector")))
    return [spec.build(DEMO_KEYSPACE, _user_types(DEMO_KEYSPACE)), wide_table()]


def test_direct_path_builds_the_state_rows_the_merge_builds(postgres_server, tmp_path):
    """Inserts, partial updates and TTL writes of every demo table, written once with the direct path
    and once without: the state tables are equal column for column (`_ts`, `_row_ts`, `_row_del`, `_wt`,
    `_expires_at`, `_ck`, `_live` included), both equal the oracle, and the direct path took batches."""
    summary = generate(tmp_path, rows=4000, tables=_direct_tables(), seed=11,
                       mix={"insert": 10, "update": 3, "ttl_insert": 2, "static": 2})
    changes = list(CommitLogReader(SchemaRegistry(load_cql_schema(summary.schema_path))).changes(summary.segments))
    dests = []
    for direct in (True, False):
        schema = "t_" + uuid.uuid4().hex[:10]
        dest = PostgresDestination(postgres_server.dsn, name=schema, schema=schema, direct_path=direct)
        dest.open()
        dests.append(dest)
    try:
        for dest in dests:
            write_all(dest, batches_of(summary, 400))
        direct, staged = dests
        assert direct.paths["direct"] >= 5, direct.paths
        assert staged.paths["direct"] == 0
        states = expected_state(changes)
        for table in _direct_tables():
            names_d, names_s = direct.ensure_table(table), staged.ensure_table(table)
            targets = [(names_d.rows, names_s.rows)]
            if names_d.static is not None:
                targets.append((names_d.static, names_s.static))
            for a, b in targets:
                rows_a, rows_b = state_rows(direct, a), state_rows(staged, b)
                assert rows_a.keys() == rows_b.keys(), table.name
                diff = [k for k in rows_a if rows_a[k] != rows_b[k]]
                assert not diff, (table.name, [(rows_a[k], rows_b[k]) for k in diff[:2]])
            compare(direct, table, states[table.qualified_name])
            if table.static:
                compare(direct, table, states[table.qualified_name], static=True)
    finally:
        for dest in dests:
            dest.close()


def _batch(table, builders):
    decoded = [DecodedMutation(CommitLogPosition(1, next(_position) * 100), b.mutation()) for b in builders]
    (tbl, batch), = list(arrow_batches(decoded))
    return tbl, batch


def test_direct_path_batch_whose_keys_partly_exist(destination):
    """An existing key the probe samples sends the stage to the merge at once; one it does not sample
    makes the direct COPY fail (unique violation), which rolls back to the savepoint and merges. Either
    way the existing row merges per column, the new rows land, and the offsets commit."""
    t = _table()
    apply(destination, t, mb(t).insert({"a": 1, "b": "p"}, {"x": "old", "y": 1}, timestamp=BASE + 10),
          mb(t).insert({"a": 0, "b": "p"}, {"x": "zero", "y": 0}, timestamp=BASE + 10))
    assert destination.paths == {"direct": 2, "probed": 0, "conflict": 0, "staged": 0}
    # row 1 of 1000 is not among the probed rows (0, 8, 16, ...); row 0 is
    for existing, path in ((1, "conflict"), (0, "probed")):
        before = dict(destination.paths)
        builders = [mb(t, 2 + existing).insert({"a": i, "b": "q"}, {"x": f"n{i}"}, timestamp=BASE + 5)
                    for i in range(1000)]
        builders[existing] = mb(t).update({"a": existing, "b": "p"}, {"y": 2}, timestamp=BASE + 20)
        tbl, batch = _batch(t, builders)
        result = destination.write(tbl, batch, [Offset("n", 1, 100 + existing)])
        assert result.rows == 1000 and not result.rejected
        assert destination.paths[path] == before[path] + 1 and destination.paths["direct"] == before["direct"]
        assert destination.paths["staged"] == before["staged"] + 1
    got = live(destination, t)
    assert got[(1, 1, "p")] == ("old", 2) and got[(1, 0, "p")] == ("zero", 2)
    assert len(got) == 2 + 2 * 999
    assert all(got[(pk, i, "q")] == (f"n{i}", None) for pk in (2, 3) for i in range(1000) if i != pk - 2)
    assert destination.committed_offsets()["n/1"].position == 101


def test_direct_path_key_inserted_by_another_writer_between_probe_and_copy(postgres_server):
    """Another session commits a row with one of the batch's keys after the probe found none: the direct
    COPY fails on the primary key, rolls back to the savepoint, and the staged merge reconciles both
    writers per column (last writer wins by writetime)."""
    t = _table()
    schema = "t_" + uuid.uuid4().hex[:10]
    ours, other = (PostgresDestination(postgres_server.dsn, name=n, schema=schema) for n in ("a", "b"))
    try:
        for dest in (ours, other):
            dest.open()
            dest.ensure_table(t)
        racing = mb(t, 9).insert({"a": 3, "b": "r"}, {"x": "theirs-newer"}, timestamp=BASE + 30)

        def insert_meanwhile(cur):
            ours.before_direct_copy = None
            tbl, batch = _batch(t, [racing])
            assert not other.write(tbl, batch, [Offset("n", 2, 5)]).rejected
            assert other.paths["direct"] == 1  # committed: it holds the key now

        ours.before_direct_copy = insert_meanwhile
        builders = [mb(t, 9).insert({"a": i, "b": "r"}, {"x": f"ours{i}", "y": 100 + i}, timestamp=BASE + 20)
                    for i in range(10)]
        tbl, batch = _batch(t, builders)
        assert not ours.write(tbl, batch, [Offset("n", 1, 7)]).rejected
        assert ours.paths == {"direct": 0, "probed": 0, "conflict": 1, "staged": 1}
        got = live(ours, t)
        assert len(got) == 10
        assert got[(9, 3, "r")] == ("theirs-newer", 103)  # x: their newer write; y: only ours wrote it
        assert all(got[(9, i, "r")] == (f"ours{i}", 100 + i) for i in range(10) if i != 3)
        assert ours.committed_offsets()["n/1"].position == 7
    finally:
        ours.close()
        other.close()


def test_direct_path_not_taken_while_tombstones_exist(destination):
    """A new key written before a kept partition tombstone must stay deleted: with tombstones in the
    table the stage goes through the merge, which checks every write against them."""
    t = _table()
    apply(destination, t, mb(t, 5).delete_partition(timestamp=BASE + 50))
    tbl, batch = _batch(t, [mb(t, 5).insert({"a": 1, "b": "p"}, {"x": "late-old"}, timestamp=BASE + 40),
                            mb(t, 6).insert({"a": 1, "b": "p"}, {"x": "new"}, timestamp=BASE + 40)])
    assert not destination.write(tbl, batch, []).rejected
    assert destination.paths["direct"] == 0
    assert live(destination, t) == {(6, 1, "p"): ("new", None)}


def test_a_row_written_whole_keeps_an_empty_ts_and_merges_as_if_every_column_had_its_writetime(destination):
    """An insert of every column stores `_ts` empty (each column's writetime is then the row's `_wt`),
    by the direct path and by the merge alike; later changes merge against it exactly as against the
    full array: an older write loses, a newer one wins, a row delete between them kills the cells it
    postdates, and the merged row carries the full array again."""
    t = _table()
    whole = [mb(t).insert({"a": i, "b": "w"}, {"x": f"x{i}", "y": i}, timestamp=BASE + 100) for i in range(4)]
    apply(destination, t, whole[0])  # direct path (new key, no tombstones)
    tbl, batch = _batch(t, whole[1:] + [mb(t).update({"a": 1, "b": "w"}, {"y": 50}, timestamp=BASE + 90)])
    assert not destination.write(tbl, batch, []).rejected  # duplicates: the staged merge
    names = destination.ensure_table(t)
    ts = {k[1]: (r["_ts"], r["_wt"]) for k, r in state_rows(destination, names.rows).items()}
    assert ts == {i: ([], BASE + 100) for i in range(4)}, ts
    assert destination.paths["direct"] >= 1 and destination.paths["staged"] >= 1
    apply(destination, t,
          mb(t).update({"a": 0, "b": "w"}, {"x": "older"}, timestamp=BASE + 99),   # loses to the insert
          mb(t).update({"a": 2, "b": "w"}, {"x": "newer"}, timestamp=BASE + 101),  # wins
          mb(t).delete_row({"a": 3, "b": "w"}, timestamp=BASE + 100),             # kills both cells
          mb(t).update({"a": 3, "b": "w"}, {"y": 7}, timestamp=BASE + 99))        # older than the delete
    assert live(destination, t) == {(1, 0, "w"): ("x0", 0), (1, 1, "w"): ("x1", 1), (1, 2, "w"): ("newer", 2)}
    state = {k[1]: r["_ts"] for k, r in state_rows(destination, names.rows).items()}
    assert state[1] == [] and state[0] == [BASE + 100, BASE + 100]
    assert state[2] == [BASE + 101, BASE + 100] and state[3] == [BASE + 100, BASE + 100]
