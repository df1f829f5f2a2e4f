"""Does coalescing pay off? Rows written and wall time into PostgreSQL with and without it.

Generates a workload (`demo`: every CQL type and change kind, keys that repeat; `wide`: random keys,
nearly no repeats), then for each setting applies every change set through the writer
(`DestinationWriter`) after the transform stage's common steps (`Transformer.common`), into a fresh
schema of one PostgreSQL (embedded pgserver unless --dsn), and prints rows in, rows written, and
the time of transform and write. Coalescing costs CPU on the transform actor and saves rows on
the destination: it pays off when the saved write time exceeds the transform time.

Usage: python benchmarks/transform_coalesce.py [--rows 100000] [--tables demo|wide] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from ray_cdc.commitlog import workload
from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.pipeline.writing import DestinationWriter
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry
from ray_cdc.transforms import Transformer, TransformSettings


def run(segments, schema, dsn: str, coalesce: bool, batch_rows: int) -> dict:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    destination = PostgresDestination(dsn, name=name, schema=name)
    destination.open()
    writer = DestinationWriter(destination)
    writer.start()
    transformer = Transformer(TransformSettings(coalesce=coalesce))
    reader = CommitLogReader(SchemaRegistry(schema))
    rows_in = rows_out = 0
    t_transform = t_write = 0.0
    for segment in segments:
        for change_set in reader.change_sets(segment, max_rows=batch_rows):
            started = time.perf_counter()
            transformed = transformer.common(change_set)
            t_transform += time.perf_counter() - started
            started = time.perf_counter()
            writer.apply("bench", transformed)
            t_write += time.perf_counter() - started
            rows_in += change_set.rows
            rows_out += transformed.rows
    destination.close()
    return {"coalesce": coalesce, "rows_in": rows_in, "rows_written": rows_out,
            "transform_s": round(t_transform, 2), "write_s": round(t_write, 2),
            "rows_per_s": round(rows_in / (t_transform + t_write))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tables", choices=("demo", "wide"), default="demo")
    parser.add_argument("--batch-rows", type=int, default=65536)
    parser.add_argument("--dsn", help="PostgreSQL DSN (default: an embedded pgserver in a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tables = workload.demo_tables() if args.tables == "demo" else [workload.wide_table()]
        summary = workload.generate(Path(tmp) / "segs", rows=args.rows, tables=tables, segment_size=64 << 20,
                                    preallocate=False)
        schema = load_cql_schema(summary.schema_path)
        dsn = args.dsn
        if dsn is None:
            import pgserver

            dsn = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop").get_uri()
        for coalesce in (False, True):
            print(run(summary.segments, schema, dsn, coalesce, args.batch_rows))


if __name__ == "__main__":
    main()
