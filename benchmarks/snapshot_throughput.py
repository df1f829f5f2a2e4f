"""Snapshot rows/s from a live Cassandra node into PostgreSQL and chDB, against the plain script a user
might write instead (cassandra-driver `SELECT *`, psycopg `executemany`), on the same data, same run.

    python benchmarks/snapshot_throughput.py --rows 200000

Starts the project's Cassandra 2.1 test node and a PostgreSQL test server (tests/services), loads a
10-column table, then times, one after the other:
  baseline   single thread: SELECT * (fetch_size 5000) -> executemany INSERT ... ON CONFLICT DO UPDATE
  pg         snapshot_on_ray into PostgreSQL
  chdb       snapshot_on_ray into chDB
Rows/s = source rows / wall seconds (the snapshot's figure includes planning and Ray actor start-up).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TABLE = """CREATE TABLE {ks}.bench (id bigint, ck int, name text, qty int, price decimal, score double,
  active boolean, ref uuid, at timestamp, note text, PRIMARY KEY (id, ck))"""
COLUMNS = ["id", "ck", "name", "qty", "price", "score", "active", "ref", "at", "note"]


def load(session, ks: str, rows: int) -> None:
    from cassandra.concurrent import execute_concurrent_with_args

    insert = session.prepare(f"INSERT INTO {ks}.bench ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})")
    base = dt.datetime(2024, 1, 1)
    chunk = 20_000
    for start in range(0, rows, chunk):
        args = [(i // 4, i % 4, f"name {i}", i % 1000, Decimal(i) / 100, i / 3.0, bool(i % 2), uuid.UUID(int=i + 1),
                 base + dt.timedelta(seconds=i), "x" * 40) for i in range(start, min(rows, start + chunk))]
        execute_concurrent_with_args(session, insert, args, concurrency=64, raise_on_first_error=True)


def baseline(node, ks: str, dsn: str) -> tuple[int, float]:
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
    started = time.perf_counter()
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
    return rows, time.perf_counter() - started


def ours(node, table, factories: dict, parallelism: int, split_count: int | None) -> tuple[int, float]:
    from ray_cdc.config.snapshot import SnapshotConfig
    from ray_cdc.pipeline.snapshot import snapshot_on_ray
    from ray_cdc.snapshot.reader import CassandraSource

    settings = SnapshotConfig(consistency="ONE", parallelism=parallelism, split_count=split_count,
                              fetch_size=5000, batch_rows=65536)
    started = time.perf_counter()
    summary = snapshot_on_ray(CassandraSource((node.host,), port=node.port, protocol_version=3), [table],
                              settings, destination_factories=factories)
    return summary.rows, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--split-count", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args()

    import ray

    from ray_cdc.destinations.clickhouse import ClickHouseDestination
    from ray_cdc.destinations.postgres import PostgresDestination
    from ray_cdc.schema.cluster import load_cluster_schema
    from tests.services.cassandra_node import CassandraNode, ensure_installed
    from tests.services.postgres import PostgresServer

    work = Path(tempfile.mkdtemp(prefix="snapbench-"))
    ensure_installed()
    node = CassandraNode(work / "cassandra", heap="2G")
    pg = PostgresServer(work / "postgres")
    node.start()
    pg.start()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    try:
        session = node.session()
        ks = "bench"
        session.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
        session.execute(TABLE.format(ks=ks))
        t0 = time.perf_counter()
        load(session, ks, args.rows)
        load_s = time.perf_counter() - t0
        (table,) = [t for t in load_cluster_schema(session=session, keyspaces=[ks]) if t.name == "bench"]
        results = {}
        results["baseline"] = baseline(node, ks, pg.dsn)
        pg_factory = functools.partial(PostgresDestination, pg.dsn, name="pg", schema="snap_pg")
        results["pg"] = ours(node, table, {"pg": pg_factory}, args.parallelism, args.split_count)
        ch_factory = functools.partial(ClickHouseDestination, f"chdb://{work / 'chdb'}", name="ch", database="default")
        results["chdb"] = ours(node, table, {"ch": ch_factory}, args.parallelism, args.split_count)
    finally:
        ray.shutdown()
        node.stop()
        pg.remove()
    base_rate = results["baseline"][0] / results["baseline"][1]
    report = {"rows": args.rows, "load_seconds": round(load_s, 1), "parallelism": args.parallelism,
              "cpus": os.cpu_count(), "results": {}}
    for name, (rows, seconds) in results.items():
        rate = rows / seconds
        report["results"][name] = {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rate),
                                   "vs_baseline": round(rate / base_rate, 2)}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.rows:,} rows (10 columns), loaded in {load_s:.1f} s; {os.cpu_count()} CPUs; "
              f"parallelism {args.parallelism}")
        print(f"{'path':<10} {'rows':>10} {'seconds':>9} {'rows/s':>10} {'x baseline':>11}")
        for name, r in report["results"].items():
            print(f"{name:<10} {r['rows']:>10,} {r['seconds']:>9.2f} {r['rows_per_s']:>10,} {r['vs_baseline']:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
