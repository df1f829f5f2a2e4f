"""The initial snapshot against the real Cassandra 2.1 node, into real PostgreSQL and chDB, on a local Ray.

Every check compares the destinations with `SELECT *` from Cassandra itself, row by row and column
by column (values normalized per CQL type: each side has its own Python forms).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import threading
import time
import uuid
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest
import ray
from cassandra.query import SimpleStatement

from ray_cdc.commitlog.arrow_batches import arrow_batches
from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.reader import DecodedMutation
from ray_cdc.config.snapshot import SnapshotConfig
from ray_cdc.destinations.clickhouse import ClickHouseDestination
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.pipeline.snapshot import snapshot_on_ray
from ray_cdc.schema.cluster import load_cluster_schema
from ray_cdc.snapshot.progress import done_intervals
from ray_cdc.snapshot.ranges import union
from ray_cdc.snapshot.reader import CassandraSource

pytestmark = pytest.mark.cassandra

MANY = """CREATE TABLE {ks}.many (id int, ck text, t text, i int, b bigint, d decimal, f double, ok boolean,
  u uuid, ts timestamp, st text static, s set<text>, m map<text, int>, l list<int>, PRIMARY KEY (id, ck))"""


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def session(cassandra_node):
    return cassandra_node.session()


@pytest.fixture
def keyspace(session):
    ks = "snap_" + uuid.uuid4().hex[:8]
    session.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    session.execute(MANY.format(ks=ks))
    return ks


def fill(session, ks: str, partitions: int, per_partition: int = 3) -> None:
    """Rows of every kind: whole inserts, later partial updates (other writetimes), TTLs (long and
    about to expire), nulls, key-only rows, statics, a static-only partition, collections."""
    insert = session.prepare(f"INSERT INTO {ks}.many (id, ck, t, i, b, d, f, ok, u, ts, s, m, l) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    insert_ttl = session.prepare(f"INSERT INTO {ks}.many (id, ck, t, i, b) VALUES (?, ?, ?, ?, ?) USING TTL ?")
    update = session.prepare(f"UPDATE {ks}.many SET i = ?, m = m + ? WHERE id = ? AND ck = ?")
    static = session.prepare(f"UPDATE {ks}.many SET st = ? WHERE id = ?")
    key_only = session.prepare(f"INSERT INTO {ks}.many (id, ck) VALUES (?, ?)")
    futures = []
    base = dt.datetime(2024, 1, 1)
    for p in range(partitions):
        for c in range(per_partition):
            ck = f"c{c}"
            futures.append(session.execute_async(insert, (
                p, ck, f"text {p}/{c} é", p * 10 + c, (p << 33) + c, Decimal(f"{p}.{c:03d}"), p / 7.0, bool(c % 2),
                uuid.UUID(int=p * 1000 + c + 1), base + dt.timedelta(seconds=p * 60 + c),
                {f"a{p % 5}", f"b{c}"} if c != 2 else None, {f"k{c}": p} if c != 1 else None,
                [p, c, p] if c != 0 else None)))
        if p % 4 == 0:
            futures.append(session.execute_async(update, (-p, {"later": p}, p, "c0")))
        if p % 5 == 0:
            futures.append(session.execute_async(static, (f"static {p}", p)))
        if p % 7 == 0:
            futures.append(session.execute_async(insert_ttl, (p, "ttl-long", "lives", p, p, 86400)))
            futures.append(session.execute_async(insert_ttl, (p, "ttl-short", "expires", p, p, 2)))
        if p % 11 == 0:
            futures.append(session.execute_async(key_only, (p, "key-only")))
        if len(futures) > 500:
            [f.result() for f in futures]
            futures = []
    session.execute(f"UPDATE {ks}.many SET st = 'alone' WHERE id = {partitions + 1}")  # static only
    [f.result() for f in futures]


# --- normalized forms ---------------------------------------------------------------------------------


def canon(t, v):
    if v is None:
        return None
    name = t.name
    if name in ("set", "list", "map") and len(v) == 0:
        return None  # CQL: an empty collection is null
    if name == "decimal":
        return Decimal(str(v)).normalize()
    if name == "uuid":
        return v if isinstance(v, uuid.UUID) else uuid.UUID(bytes=v) if isinstance(v, bytes) else uuid.UUID(str(v))
    if name == "timestamp":
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)
        return round(v.timestamp() * 1000)
    if name == "set":
        return sorted(canon(t.params[0], e) for e in v)
    if name == "list":
        return [canon(t.params[0], e) for e in v]
    if name == "map":
        items = v.items() if hasattr(v, "items") else v
        return sorted((canon(t.params[0], k), canon(t.params[1], x)) for k, x in items)
    if name == "double":
        return float(v)
    return v


def cassandra_rows(session, table) -> dict:
    columns = [*table.partition_key, *table.clustering, *table.static, *table.regular]
    out = {}
    # one page: Cassandra 2.1.0 returns static columns as null on the pages after a partition's
    # first (CASSANDRA-8502, fixed in later 2.1 releases), which would make the oracle itself wrong
    query = SimpleStatement(f"SELECT * FROM {table.keyspace}.{table.name}", fetch_size=None)
    for row in session.execute(query):
        values = {c.name: canon(c.type, getattr(row, c.name)) for c in columns}
        key = tuple(values[c.name] for c in (*table.partition_key, *table.clustering))
        out[key] = {c.name: values[c.name] for c in (*table.static, *table.regular)}
    return out


def postgres_rows(dsn: str, table, *, name: str, schema: str | None) -> dict:
    """Regular rows of the state view joined with the static view: what SELECT * shows."""
    dest = PostgresDestination(dsn, name=name, schema=schema)
    dest.open()
    try:
        names = dest.ensure_table(table)
        keys = [c.name for c in (*table.partition_key, *table.clustering)]
        cols = [c.name for c in table.regular]
        pk = [c.name for c in table.partition_key]
        out = {}
        with psycopg.connect(dsn) as conn:
            view = f'"{names.rows.schema}"."{names.rows.view}"'
            for row in conn.execute(f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in keys + cols)} FROM {view}"):
                out[tuple(canon(c.type, v) for c, v in zip((*table.partition_key, *table.clustering), row))] = {
                    c.name: canon(c.type, v) for c, v in zip(table.regular, row[len(keys):])}
            statics = {}
            if table.static:
                sview = f'"{names.static.schema}"."{names.static.view}"'
                scols = [c.name for c in table.static]
                for row in conn.execute(f"SELECT {', '.join(chr(34) + c + chr(34) for c in pk + scols)} FROM {sview}"):
                    statics[tuple(canon(c.type, v) for c, v in zip(table.partition_key, row))] = {
                        c.name: canon(c.type, v) for c, v in zip(table.static, row[len(pk):])}
        return _with_statics(out, statics, table)
    finally:
        dest.close()


def clickhouse_rows(chdb_dir, table) -> dict:
    from ray_cdc.destinations.clickhouse.forms import from_stored
    from ray_cdc.destinations.clickhouse.store import stored_schema
    from tests.support.destination_checks import open_clickhouse

    dest = open_clickhouse(chdb_dir, "ch")
    try:
        schema = stored_schema(table)
        schema = pa.schema([schema.field(n) for n in schema.names if not n.startswith("_")])
        stored = dest.client.query_arrow(f"SELECT * FROM `{table.keyspace}`.`{table.name}__live`")
        rows = from_stored(stored, schema).to_pylist()
    finally:
        dest.close()
    keys = (*table.partition_key, *table.clustering)
    out, statics = {}, {}
    for r in rows:
        key = tuple(canon(c.type, r[c.name]) for c in keys)
        if table.clustering and key[len(table.partition_key)] is None:  # the static row of a partition
            statics[key[:len(table.partition_key)]] = {c.name: canon(c.type, r[c.name]) for c in table.static}
            continue
        assert key not in out, f"{key} twice in ClickHouse"
        out[key] = {c.name: canon(c.type, r[c.name]) for c in table.regular}
        if table.static:
            statics.setdefault(key[:len(table.partition_key)], {c.name: canon(c.type, r[c.name]) for c in table.static})
    return _with_statics(out, statics, table)


def _with_statics(rows: dict, statics: dict, table) -> dict:
    """Join statics onto rows as SELECT * does; a partition with statics only shows once, clustering null."""
    n_pk = len(table.partition_key)
    out = {}
    seen = set()
    for key, values in rows.items():
        static = statics.get(key[:n_pk], {})
        out[key] = {**{c.name: static.get(c.name) for c in table.static}, **values}
        seen.add(key[:n_pk])
    for pk, static in statics.items():
        if pk not in seen and any(v is not None for v in static.values()):
            out[pk + (None,) * len(table.clustering)] = {**static, **{c.name: None for c in table.regular}}
    return out


def assert_equal(expected: dict, actual: dict, where: str) -> None:
    only_e, only_a = set(expected) - set(actual), set(actual) - set(expected)
    assert not only_e and not only_a, (where, "keys only in Cassandra", sorted(only_e, key=repr)[:3],
                                       "only in the destination", sorted(only_a, key=repr)[:3])
    differing = [(k, {c: (expected[k][c], actual[k].get(c)) for c in expected[k] if expected[k][c] != actual[k].get(c)})
                 for k in expected if expected[k] != actual[k]]
    assert not differing, (where, f"{len(differing)} rows differ", differing[:3])


# --- setup ----------------------------------------------------------------------------------------------


class Destinations:
    def __init__(self, dsn: str, chdb_dir):
        self.dsn, self.chdb_dir = dsn, chdb_dir
        self.pg_name = "s_" + uuid.uuid4().hex[:8]

    def factories(self) -> dict:
        dsn, pg, chdb = self.dsn, self.pg_name, str(self.chdb_dir)
        # partials of the package's classes: the Ray workers import them (this module they cannot)
        return {"pg": functools.partial(PostgresDestination, dsn, name="pg", schema=pg),
                "ch": functools.partial(ClickHouseDestination, f"chdb://{chdb}", name="ch", database="default")}

    def committed(self) -> dict:
        pg = PostgresDestination(self.dsn, name="pg", schema=self.pg_name)
        pg.open()
        try:
            out = {"pg": pg.committed_offsets()}
        finally:
            pg.close()
        from tests.support.destination_checks import open_clickhouse

        ch = open_clickhouse(self.chdb_dir, "ch")
        try:
            out["ch"] = ch.committed_offsets()
        finally:
            ch.close()
        return out


def table_of(session, ks: str, name: str = "many"):
    (table,) = [t for t in load_cluster_schema(session=session, keyspaces=[ks]) if t.name == name]
    return table


def source_of(node) -> CassandraSource:
    return CassandraSource((node.host,), port=node.port, protocol_version=3)


def check_all(session, table, dests: Destinations) -> int:
    expected = cassandra_rows(session, table)
    assert_equal(expected, postgres_rows(dests.dsn, table, name=dests.pg_name, schema=dests.pg_name), "PostgreSQL")
    assert_equal(expected, clickhouse_rows(dests.chdb_dir, table), "ClickHouse")
    return len(expected)


# --- (1) many types, clustering, statics, TTLs --------------------------------------------------------


def test_snapshot_equals_select_star(local_ray, cassandra_node, session, keyspace, postgres_server, tmp_path):
    fill(session, keyspace, 400)
    table = table_of(session, keyspace)
    dests = Destinations(postgres_server.dsn, tmp_path / "chdb")
    # small sets, several per range: each must follow the last at its writer, none deferred for a gap
    settings = SnapshotConfig(consistency="ONE", fetch_size=97, parallelism=2, split_count=16, batch_rows=40)
    summary = snapshot_on_ray(source_of(cassandra_node), [table], settings,
                              destination_factories=dests.factories())
    assert summary.planned[table.qualified_name] >= 16 and not summary.stopped
    assert [r for r in summary.ranges if r["deferred"]] == []
    assert len(summary.ranges) == summary.planned[table.qualified_name]  # each range read once
    assert summary.rows >= 400 * 3
    time.sleep(2.5)  # the 2-second TTL rows are gone in Cassandra: they must be gone in both destinations
    rows = check_all(session, table, dests)
    assert rows >= 400 * 3
    committed = dests.committed()
    for name in ("pg", "ch"):  # every token of the ring recorded as done, in each destination
        assert union(done_intervals(committed[name].values(), table.qualified_name)) == [(-(2**63), 2**63 - 1)]


# --- (2) interrupted, then restarted: continues, never re-reads a finished range ---------------------


def test_restart_continues_from_recorded_ranges(local_ray, cassandra_node, session, keyspace, postgres_server,
                                                tmp_path):
    fill(session, keyspace, 300)
    table = table_of(session, keyspace)
    dests = Destinations(postgres_server.dsn, tmp_path / "chdb")
    settings = SnapshotConfig(consistency="ONE", fetch_size=50, parallelism=2, split_count=24, batch_rows=100)
    stop = threading.Event()
    killed = []

    def on_range(result, readers):
        # after a few finished ranges: kill a reader in the middle of its range (a crash), and stop
        if len(killed) == 0 and result and len(on_range.done) >= 3:
            victim = next((r for r in readers if r != result["reader"]), None)
            if victim is not None:
                ray.kill(readers[victim], no_restart=True)
                killed.append(victim)
            stop.set()
        on_range.done.append(result)

    on_range.done = []
    first = snapshot_on_ray(source_of(cassandra_node), [table], settings, destination_factories=dests.factories(),
                            stop=stop, on_range=on_range)
    assert first.stopped and killed
    assert len(first.ranges) < first.planned[table.qualified_name]
    after_first = dests.committed()
    done_pg = done_intervals(after_first["pg"].values(), table.qualified_name)
    done_ch = done_intervals(after_first["ch"].values(), table.qualified_name)
    assert done_pg and done_ch

    second = snapshot_on_ray(source_of(cassandra_node), [table], settings, destination_factories=dests.factories())
    assert not second.stopped
    done_both = [(max(a, c), min(b, d)) for a, b in done_pg for c, d in done_ch if max(a, c) < min(b, d)]
    for r in second.ranges:  # nothing the first run finished everywhere is read again
        read_from = r["start"] + r["resume"]
        for a, b in done_both:
            assert not (read_from < b and a < r["end"]), (r, (a, b))
    total = check_all(session, table, dests)
    assert 0 < second.rows < total  # the second run read only what the first had not finished
    assert sum(r["end"] - r["start"] - r["resume"] for r in second.ranges) < 2**64 - sum(b - a for a, b in done_both)


# --- (3) writes during the snapshot, then applied as CDC-like changes ----------------------------------


def test_writes_during_snapshot_then_cdc_changes_converge(local_ray, cassandra_node, session, keyspace,
                                                          postgres_server, tmp_path):
    fill(session, keyspace, 300)
    table = table_of(session, keyspace)
    dests = Destinations(postgres_server.dsn, tmp_path / "chdb")
    settings = SnapshotConfig(consistency="ONE", fetch_size=40, parallelism=2, split_count=32, batch_rows=80)
    ops: list = []  # (builder step, partition key): the same writes, as the commitlog would carry them
    writing = threading.Event()
    finished = threading.Event()

    def writer():
        writing.set()
        n = 0
        while not finished.is_set() or n < 60:
            ts = time.time_ns() // 1000
            p = n % 300
            kind = n % 5
            if kind == 0:  # later partial update
                session.execute(f"UPDATE {keyspace}.many USING TIMESTAMP {ts} SET t = 'late {n}', i = {n} "
                                f"WHERE id = {p} AND ck = 'c1'")
                ops.append((p, lambda m, ts=ts, n=n: m.update({"ck": "c1"}, {"t": f"late {n}", "i": n}, timestamp=ts)))
            elif kind == 1:  # a new row
                session.execute(f"INSERT INTO {keyspace}.many (id, ck, t, b) VALUES ({p}, 'new{n}', 'fresh', {n}) "
                                f"USING TIMESTAMP {ts}")
                ops.append((p, lambda m, ts=ts, n=n: m.insert({"ck": f"new{n}"}, {"t": "fresh", "b": n}, timestamp=ts)))
            elif kind == 2:  # a row delete
                session.execute(f"DELETE FROM {keyspace}.many USING TIMESTAMP {ts} WHERE id = {p} AND ck = 'c2'")
                ops.append((p, lambda m, ts=ts: m.delete_row({"ck": "c2"}, timestamp=ts)))
            elif kind == 3:  # a collection overwrite and a set append
                session.execute(f"UPDATE {keyspace}.many USING TIMESTAMP {ts} SET l = [{n}, {n}], s = s + {{'x{n}'}} "
                                f"WHERE id = {p} AND ck = 'c0'")
                ops.append((p, lambda m, ts=ts, n=n: (m.update({"ck": "c0"}, {"l": [n, n]}, timestamp=ts),
                                                      m.append_to({"ck": "c0"}, "s", {f"x{n}"}, ts))))
            else:  # a map put and a static change
                session.execute(f"UPDATE {keyspace}.many USING TIMESTAMP {ts} SET m['w{n}'] = {n}, st = 'st{n}' "
                                f"WHERE id = {p} AND ck = 'c1'")
                ops.append((p, lambda m, ts=ts, n=n: (m.put({"ck": "c1"}, "m", {f"w{n}": n}, ts),
                                                      m.static({"st": f"st{n}"}, timestamp=ts))))
            n += 1
            time.sleep(0.005)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    writing.wait()
    try:
        snapshot_on_ray(source_of(cassandra_node), [table], settings, destination_factories=dests.factories())
    finally:
        finished.set()
        thread.join(60)
    assert len(ops) >= 60
    # the writes as CDC would deliver them (the commitlog stream overlaps the snapshot by design)
    decoded = []
    for position, (p, step) in enumerate(ops, start=1):
        builder = MutationBuilder(table, {"id": p})
        step(builder)
        decoded.append(DecodedMutation(CommitLogPosition(1, position), builder.mutation()))
    batches = [b for _, b in arrow_batches(decoded)]
    for factory in dests.factories().values():
        dest = factory()
        dest.open()
        try:
            dest.ensure_table(table)
            for b in batches:
                assert not dest.write(table, b, []).rejected
        finally:
            dest.close()
    check_all(session, table, dests)
