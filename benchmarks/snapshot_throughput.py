"""Snapshot rows/s from a live Cassandra node into PostgreSQL and chDB, against the plain script a user
might write instead (cassandra-driver `SELECT *`, psycopg `executemany`), on the same data, same run,
with the CPU seconds each process group spent, to show where the time goes.

    python benchmarks/snapshot_throughput.py --rows 500000

Starts the project's Cassandra 2.1 test node and a PostgreSQL test server (tests/services), loads a
10-column table, then times, one after the other:
  fetch_raw    the snapshot's own query (token, columns, WRITETIME/TTL) over the whole ring, one thread,
               pages kept as raw bytes: what one session gets out of Cassandra with no row building
  row_building our conversion of those pages into change-row Arrow batches, alone (no Cassandra)
  driver_rows  SELECT * with the driver's row parsing, one thread, nothing written (the baseline's read)
  baseline     single thread: SELECT * (fetch_size 5000) -> executemany INSERT ... ON CONFLICT DO UPDATE
  pg           snapshot_on_ray into PostgreSQL
  chdb         snapshot_on_ray into chDB
Rows/s = source rows / wall seconds (the snapshot's figure includes planning and Ray actor start-up;
`startup_s` is its time to the first committed range). CPU seconds per group, sampled every 0.2 s
from /proc (a process that exits keeps its last sample): `cassandra` (the JVM), `postgres` (the
server's processes), `ours` (this process and its children: the driver, Ray and its workers, chDB).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TABLE = """CREATE TABLE {ks}.bench (id bigint, ck int, name text, qty int, price decimal, score double,
  active boolean, ref uuid, at timestamp, note text, PRIMARY KEY (id, ck))"""
COLUMNS = ["id", "ck", "name", "qty", "price", "score", "active", "ref", "at", "note"]


class CpuSampler:
    """CPU seconds (user + system) per process group while a phase runs (see the module doc)."""

    def __init__(self, groups):
        self._groups = groups  # () -> {group: [pids]}
        self._last: dict[int, tuple[str, float]] = {}
        self._start: dict[int, float] = {}
        self._stop = threading.Event()

    def _sample(self) -> None:
        import psutil

        for group, pids in self._groups().items():
            for pid in pids:
                try:
                    times = psutil.Process(pid).cpu_times()
                except psutil.Error:
                    continue  # exited: its last sample stands
                self._last[pid] = (group, times.user + times.system)

    def __enter__(self) -> CpuSampler:  # noqa: PYI034
        self._sample()
        self._start = {pid: cpu for pid, (_, cpu) in self._last.items()}
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, (group, cpu) in self._last.items():
            out[group] = out.get(group, 0.0) + cpu - self._start.get(pid, 0.0)
        return {group: round(value, 1) for group, value in sorted(out.items())}


def process_groups(cassandra_pid: int, postgres_data: Path):
    """{cassandra, postgres, ours} -> pids, looked up afresh at every sample (Ray starts workers)."""
    import psutil

    def groups() -> dict[str, list[int]]:
        me = psutil.Process()
        ours = [me.pid] + [c.pid for c in me.children(recursive=True) if c.pid != cassandra_pid]
        postgres = []
        pidfile = postgres_data / "postmaster.pid"
        if pidfile.exists():
            try:
                master = psutil.Process(int(pidfile.read_text().split()[0]))
                postgres = [master.pid] + [c.pid for c in master.children(recursive=True)]
            except (psutil.Error, ValueError, IndexError):
                pass
        return {"cassandra": [cassandra_pid], "postgres": postgres,
                "ours": [p for p in ours if p not in postgres]}
    return groups


def fetch_raw(node, table, keep: list) -> int:
    """The snapshot's query over the whole ring, raw pages, one thread: Cassandra's side alone. The
    pages go to `keep` (for `row_building`)."""
    from ray_cdc.snapshot.protocol import RawPage
    from ray_cdc.snapshot.ranges import MAX_TOKEN, MIN_TOKEN
    from ray_cdc.snapshot.reader import CassandraSource
    from ray_cdc.snapshot.rows import SnapshotQuery

    cluster, session = CassandraSource((node.host,), port=node.port, protocol_version=3).connect()
    try:
        statement = session.prepare(SnapshotQuery.of(table).cql)
        statement.fetch_size = 5000
        result = session.execute(statement, (MIN_TOKEN, MAX_TOKEN))
        while True:
            keep += [p for p in result.current_rows if isinstance(p, RawPage)]
            if not result.has_more_pages:
                return sum(p.rows for p in keep)
            result = session.execute(statement, (MIN_TOKEN, MAX_TOKEN), paging_state=result.paging_state)
    finally:
        cluster.shutdown()


def row_building(table, pages: list) -> int:
    """Our row building alone (RowConverter: raw pages -> change-row Arrow batches), one thread, on
    the pages `fetch_raw` kept."""
    from ray_cdc.snapshot.ranges import MIN_TOKEN
    from ray_cdc.snapshot.rows import RowConverter

    if not pages:
        raise SystemExit("row_building needs the fetch_raw phase before it")
    converter = RowConverter(table)
    for page in pages:
        converter.convert(page, read_us=time.time_ns() // 1000, range_start=MIN_TOKEN, read_id=-1)
    return sum(p.rows for p in pages)


def driver_rows(node, ks: str) -> int:
    """SELECT * with the driver's row parsing, one thread, nothing written."""
    from cassandra.cluster import Cluster
    from cassandra.query import SimpleStatement

    cluster = Cluster([node.host], port=node.port, protocol_version=3)
    try:
        session = cluster.connect()
        statement = SimpleStatement(f"SELECT {', '.join(COLUMNS)} FROM {ks}.bench", fetch_size=5000)
        return sum(1 for _ in session.execute(statement))
    finally:
        cluster.shutdown()


def timed(sampler_groups, run) -> dict:
    started = time.perf_counter()
    with CpuSampler(sampler_groups) as cpu:
        result = run()
    rows, extra = result if isinstance(result, tuple) else (result, {})
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": round(seconds, 2), "cpu_s": cpu.seconds(), **extra}


def load(session, ks: str, rows: int) -> None:
    from cassandra.concurrent import execute_concurrent_with_args

    insert = session.prepare(f"INSERT INTO {ks}.bench ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})")
    base = dt.datetime(2024, 1, 1)
    chunk = 20_000
    for start in range(0, rows, chunk):
        args = [(i // 4, i % 4, f"name {i}", i % 1000, Decimal(i) / 100, i / 3.0, bool(i % 2), uuid.UUID(int=i + 1),
                 base + dt.timedelta(seconds=i), "x" * 40) for i in range(start, min(rows, start + chunk))]
        execute_concurrent_with_args(session, insert, args, concurrency=64, raise_on_first_error=True)


def baseline(node, ks: str, dsn: str) -> int:
    """What a user might write: one thread, driver rows, executemany."""
    import psycopg
    from cassandra.cluster import Cluster
    from cassandra.query import SimpleStatement

    schema = "plain_" + uuid.uuid4().hex[:6]
    with psycopg.connect(dsn) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.bench (id bigint, ck int, name text, qty int, price numeric, "
                     "score double precision, active boolean, ref uuid, at timestamptz, note text, "
                     "PRIMARY KEY (id, ck))")
    cluster = Cluster([node.host], port=node.port, protocol_version=3)
    session = cluster.connect()
    rows = 0
    sql = (f"INSERT INTO {schema}.bench VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id, ck) DO "
           "UPDATE SET name = EXCLUDED.name, qty = EXCLUDED.qty, price = EXCLUDED.price, score = EXCLUDED.score, "
           "active = EXCLUDED.active, ref = EXCLUDED.ref, at = EXCLUDED.at, note = EXCLUDED.note")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        batch = []
        for row in session.execute(SimpleStatement(f"SELECT {', '.join(COLUMNS)} FROM {ks}.bench", fetch_size=5000)):
            batch.append(tuple(row))
            if len(batch) == 5000:
                cur.executemany(sql, batch)
                rows += len(batch)
                batch = []
        if batch:
            cur.executemany(sql, batch)
            rows += len(batch)
        conn.commit()
    cluster.shutdown()
    return rows


def ours(node, table, factories: dict, parallelism: int, split_count: int | None, fetch_size: int) -> tuple:
    from ray_cdc.config.snapshot import SnapshotConfig
    from ray_cdc.pipeline.snapshot import snapshot_on_ray
    from ray_cdc.snapshot.reader import CassandraSource

    settings = SnapshotConfig(consistency="ONE", parallelism=parallelism, split_count=split_count,
                              fetch_size=fetch_size, batch_rows=65536)
    started = time.perf_counter()
    first: list[float] = []

    def on_range(result, readers):
        if not first:
            first.append(time.perf_counter() - started)

    summary = snapshot_on_ray(CassandraSource((node.host,), port=node.port, protocol_version=3), [table],
                              settings, destination_factories=factories, on_range=on_range)
    return summary.rows, {"startup_s": round(first[0], 2) if first else None}


PHASES = ("fetch_raw", "row_building", "driver_rows", "baseline", "pg", "chdb")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--split-count", type=int, default=32)
    parser.add_argument("--fetch-size", type=int, default=5000, help="the snapshot's page size")
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated, of " + ", ".join(PHASES))
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args()
    phases = [p for p in args.phases.split(",") if p]
    if unknown := sorted(set(phases) - set(PHASES)):
        parser.error(f"unknown phases: {', '.join(unknown)}")

    import ray

    from ray_cdc.destinations.clickhouse import ClickHouseDestination
    from ray_cdc.destinations.postgres import PostgresDestination
    from ray_cdc.pipeline.local_ray import init_ray
    from ray_cdc.schema.cluster import load_cluster_schema
    from tests.services.cassandra_node import CassandraNode, ensure_installed
    from tests.services.postgres import PostgresServer

    work = Path(tempfile.mkdtemp(prefix="snapbench-"))
    ensure_installed()
    # periodic commitlog sync (Cassandra's default; the tests' node syncs every write): loading is
    # not what is measured, and the snapshot reads SSTables either way
    node = CassandraNode(work / "cassandra", heap="2G", extra_config={
        "commitlog_sync": "periodic", "commitlog_sync_period_in_ms": 10000, "commitlog_sync_batch_window_in_ms": None})
    pg = PostgresServer(work / "postgres")
    try:
        node.start()
        pg.start()
        init_ray()  # a local Ray, started again if it misses its start-up deadline on a loaded machine
        groups = process_groups(node.process.pid, Path(pg.data_dir or work / "postgres"))
        session = node.session()
        ks = "bench"
        session.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
        session.execute(TABLE.format(ks=ks))
        t0 = time.perf_counter()
        load(session, ks, args.rows)
        node.nodetool("flush", ks)  # read from SSTables, as a table that already holds data is
        load_s = time.perf_counter() - t0
        (table,) = [t for t in load_cluster_schema(session=session, keyspaces=[ks]) if t.name == "bench"]
        snapshot = (args.parallelism, args.split_count, args.fetch_size)
        pages: list = []
        runs = {
            "fetch_raw": lambda: fetch_raw(node, table, pages),
            "row_building": lambda: row_building(table, pages),
            "driver_rows": lambda: driver_rows(node, ks),
            "baseline": lambda: baseline(node, ks, pg.dsn),
            "pg": lambda: ours(node, table, {"pg": functools.partial(
                PostgresDestination, pg.dsn, name="pg", schema="snap_pg")}, *snapshot),
            "chdb": lambda: ours(node, table, {"ch": functools.partial(
                ClickHouseDestination, f"chdb://{work / 'chdb'}", name="ch", database="default")}, *snapshot),
        }
        results = {name: timed(groups, runs[name]) for name in phases}
    finally:
        ray.shutdown()
        node.stop()
        pg.remove()
        shutil.rmtree(work, ignore_errors=True)
    report = {"rows": args.rows, "load_seconds": round(load_s, 1), "parallelism": args.parallelism,
              "fetch_size": args.fetch_size, "cpus": os.cpu_count(), "results": results}
    base = results.get("baseline")
    for r in results.values():
        r["rows_per_s"] = round(r["rows"] / r["seconds"])
        r["vs_baseline"] = round(r["rows_per_s"] * base["seconds"] / base["rows"], 2) if base else None
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{args.rows:,} rows (10 columns), loaded in {load_s:.1f} s; {os.cpu_count()} CPUs; "
          f"parallelism {args.parallelism}, fetch size {args.fetch_size}")
    print(f"{'path':<12} {'rows':>9} {'seconds':>8} {'rows/s':>8} {'x base':>7} {'start-up':>8}  CPU seconds")
    for name, r in results.items():
        startup = "" if r.get("startup_s") is None else f"{r['startup_s']:.1f}"
        ratio = "" if r["vs_baseline"] is None else f"{r['vs_baseline']:.2f}"
        cpu = ", ".join(f"{k} {v}" for k, v in r["cpu_s"].items())
        print(f"{name:<12} {r['rows']:>9,} {r['seconds']:>8.1f} {r['rows_per_s']:>8,} {ratio:>7} {startup:>8}  {cpu}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
