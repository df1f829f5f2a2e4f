"""PostgresDestination.write against the `psql \\copy` ceiling, on the same rows, in the same run.

    python benchmarks/postgres_writer.py [--rows 500000] [--mixed-rows 200000] [--runs 3]

Workloads (segments written by ray_cdc's generator, decoded once into 64k-row Arrow batches before
timing):
- wide: the 10-column `wide_table()`, inserts only;
- mixed: the same table with the generator's default change mix (updates, TTL writes, cell, row,
  partition and range deletes; the kinds that need other tables are left out by the generator).
Ceiling: the batches' insert/update rows, user columns only, written to a CSV file and loaded with
`psql -c "\\copy ... FROM file WITH (FORMAT csv)"` into a plain table with the user's columns and
primary key (no primary key for mixed, whose keys repeat). Each run uses a fresh database; the
writer and the ceiling alternate within a run; the table prints every run and the medians of 3.
The server is tests/services/postgres.py's Debian PostgreSQL 15 (fsync off), on this machine.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg.conninfo import make_conninfo

from ray_cdc.commitlog.reader import CommitLogReader, sort_segments
from ray_cdc.commitlog.workload import generate
from ray_cdc.commitlog.workload_tables import wide_table
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.destinations.postgres.ddl import pg_type, qi
from ray_cdc.offsets import Offset
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry
from tests.services.postgres import DEBIAN_BIN, PostgresServer


def workload(out: Path, rows: int, mix: dict | None):
    summary = generate(out, rows=rows, tables=[wide_table()], mix=mix, preallocate=False)
    reader = CommitLogReader(SchemaRegistry(load_cql_schema(summary.schema_path)))
    pairs = list(reader.arrow_batches(sort_segments(out.glob("CommitLog-*.log"))))
    return pairs[0][0], [b for _, b in pairs]


def ceiling_csv(table, batches, path: Path) -> int:
    """The batches' insert/update rows, user columns, as CSV (uuid as text; NULL unquoted-empty)."""
    names = [c.name for c in table.columns]
    parts = []
    for batch in batches:
        writes = batch.filter(pc.is_in(batch.column("_op"), pa.array(["insert", "update"])))
        cols = []
        for name in names:
            col = writes.column(name)
            if pa.types.is_fixed_size_binary(col.type):
                col = pa.array([None if v is None else str(uuid.UUID(bytes=v)) for v in col.to_pylist()])
            cols.append(col)
        parts.append(pa.table(cols, names=names))
    data = pa.concat_tables(parts)
    pacsv.write_csv(data, path, pacsv.WriteOptions(include_header=False))
    return data.num_rows


def fresh_database(admin_dsn: str, name: str) -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {qi(name)}")
        conn.execute(f"CREATE DATABASE {qi(name)}")
    return make_conninfo(admin_dsn, dbname=name)


def time_writer(dsn: str, table, batches) -> tuple[float, dict]:
    dest = PostgresDestination(dsn, name="bench")
    dest.open()
    dest.ensure_table(table)  # DDL is once per table in a pipeline's life: outside the timing
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        result = dest.write(table, batch, [Offset("bench", 1, i + 1)])
        assert not result.rejected, result.rejected[:3]
    elapsed = time.perf_counter() - start
    dest.close()
    return elapsed, dict(dest.paths)  # how the write stages went (direct path, probe hit, conflict, staged)


def time_ceiling(dsn: str, table, csv: Path, primary_key: bool) -> float:
    cols = ", ".join(f"{qi(c.name)} {pg_type(c.type)}" for c in table.columns)
    key = f", PRIMARY KEY ({', '.join(qi(c.name) for c in table.partition_key + table.clustering)})" if primary_key else ""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE ceiling ({cols}{key})")
    psql = shutil.which("psql") or str(DEBIAN_BIN / "psql")
    names = ", ".join(qi(c.name) for c in table.columns)
    start = time.perf_counter()
    subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn, "-c",
                    f"\\copy ceiling ({names}) FROM '{csv}' WITH (FORMAT csv)"], check=True)
    return time.perf_counter() - start


def bench(server: PostgresServer, label: str, table, batches, work: Path, runs: int, primary_key: bool):
    changes = sum(len(b) for b in batches)
    csv = work / f"{label}.csv"
    copied = ceiling_csv(table, batches, csv)
    ratios, writer_rates, ceiling_rates = [], [], []
    for run in range(runs):
        writer_s, paths = time_writer(fresh_database(server.dsn, f"bench_{label}_w{run}"), table, batches)
        ceiling_s = time_ceiling(fresh_database(server.dsn, f"bench_{label}_c{run}"), table, csv, primary_key)
        writer_rates.append(changes / writer_s)
        ceiling_rates.append(copied / ceiling_s)
        ratios.append(writer_rates[-1] / ceiling_rates[-1])
        print(f"{label:6s} run {run + 1}: writer {writer_rates[-1]:>9,.0f} changes/s ({writer_s:.2f} s), "
              f"ceiling {ceiling_rates[-1]:>9,.0f} rows/s ({ceiling_s:.2f} s), ratio {ratios[-1]:.2f}; stages {paths}", flush=True)
    print(f"{label:6s} median: writer {statistics.median(writer_rates):,.0f} changes/s, ceiling "
          f"{statistics.median(ceiling_rates):,.0f} rows/s, ratio {statistics.median(ratios):.2f} "
          f"({changes:,} changes, {copied:,} rows copied by the ceiling)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000, help="row changes of the insert-only workload")
    parser.add_argument("--mixed-rows", type=int, default=200_000, help="row changes of the mixed workload")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pg_writer_bench_"))
    server = PostgresServer(work / "pg")
    server.start()
    try:
        table, batches = workload(work / "wide", args.rows, {"insert": 1.0})
        bench(server, "wide", table, batches, work, args.runs, primary_key=True)
        del batches
        table, batches = workload(work / "mixed", args.mixed_rows, None)
        bench(server, "mixed", table, batches, work, args.runs, primary_key=False)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
