"""ClickHouse writer throughput against the insert ceiling, measured in the same run.

Two workloads, decoded once into 64k-row Arrow batches (`CommitLogReader.arrow_batches`):
- wide: the 10-column `wide_table()`, inserts only (--rows, default 500k);
- mixed: the demo tables with the default change mix (inserts, updates, TTLs, cell/row/partition/range
  deletes, statics, counters, collection edits; --mixed-rows, default 100k).

Each run happens in a fresh child process on a fresh chDB directory (one directory per process is all
chDB allows, and peak RSS is then the run's own). A run times `ClickHouseDestination.write` over every
batch (after one warm-up write into another table, so imports and engine start-up are not counted),
then the ceiling: ONE `insert_arrow` of the prebuilt Arrow table of the same row changes (key and value
columns in stored form plus `_writetime`) into `ReplacingMergeTree(_writetime) ORDER BY` the primary
key. Times are CPU seconds of the process (`time.process_time`, which includes chDB's threads) and wall
seconds; the figures are medians of --runs runs. `prepare` / `write_prepared` are also timed on their
own (the same batches, another fresh table), to show what a transform stage could take off the writer.

Usage: python benchmarks/clickhouse_writer.py [--rows 500000] [--mixed-rows 100000] [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# --- building the workloads (parent) -------------------------------------------------------------------


def build(kind: str, rows: int, out: Path) -> Path:
    """Generate segments, decode them into Arrow batches, save batches + schema in `out`."""
    import pyarrow as pa

    from ray_cdc.commitlog.reader import CommitLogReader, sort_segments
    from ray_cdc.commitlog.workload import generate
    from ray_cdc.commitlog.workload_tables import wide_table
    from ray_cdc.schema.cql import load_cql_schema
    from ray_cdc.schema.registry import SchemaRegistry

    segments = out / f"{kind}-segments"
    if kind == "wide":
        generate(segments, rows=rows, tables=[wide_table()], mix={"insert": 1.0}, preallocate=False)
    else:
        generate(segments, rows=rows, preallocate=False)
    reader = CommitLogReader(SchemaRegistry(load_cql_schema(segments / "schema.cql")))
    batches = out / f"{kind}-batches"
    batches.mkdir()
    for i, (table, batch) in enumerate(reader.arrow_batches(sort_segments(segments.glob("CommitLog-*.log")))):
        with pa.OSFile(str(batches / f"{i:05d}.{table.id}.arrow"), "wb") as sink, \
                pa.ipc.new_file(sink, batch.schema) as writer:
            writer.write_batch(batch)
    (batches / "schema.cql").write_text((segments / "schema.cql").read_text())
    return batches


# --- one run (child) -----------------------------------------------------------------------------------


def _load(batches: Path):
    import pyarrow as pa

    from ray_cdc.schema.cql import load_cql_schema

    tables = {str(t.id): t for t in load_cql_schema(batches / "schema.cql")}
    out = []
    for path in sorted(batches.glob("*.arrow")):
        with pa.memory_map(str(path)) as source:
            batch = pa.ipc.open_file(source).get_batch(0)
        out.append((tables[path.name.split(".")[1]], batch))
    return out


def _warm_up(dest, pairs) -> None:
    """One small write into a table of its own: imports, engine start-up and first-query costs."""
    import dataclasses

    table, batch = pairs[0]
    warm = dataclasses.replace(table, name=table.name + "_warmup")
    dest.ensure_table(warm)
    dest.write(warm, batch.slice(0, min(1000, batch.num_rows)), [])


def _ceiling(dest, pairs) -> tuple[int, float, float]:
    """ONE insert_arrow per table of all its row changes (stored key/value columns + _writetime)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ray_cdc.destinations.clickhouse import ddl
    from ray_cdc.destinations.clickhouse.forms import to_stored

    by_table: dict = {}
    for table, batch in pairs:
        by_table.setdefault(table.id, (table, []))[1].append(batch)
    prebuilt = []
    for table, batches in by_table.values():
        data = pa.Table.from_batches(batches)
        data = data.filter(pc.is_in(data.column("_op"), pa.array(["insert", "update", "delete"])))
        columns = ddl.key_columns(table) + ddl.value_columns(table)
        arrays = {c.name: to_stored(data.column(c.name), c.type) for c in columns}
        arrays["_writetime"] = data.column("_writetime")
        name = ddl.qualified(table, "__ceiling")
        defs = ddl._key_defs(table) + [f"{ddl.quote(c.name)} {ddl.ch_type(c.type)}" for c in ddl.value_columns(table)]
        nullable_key = " SETTINGS allow_nullable_key = 1" if table.static and table.clustering else ""
        dest.client.command(f"CREATE TABLE {name} ({', '.join(defs)}, _writetime Int64) "
                            f"ENGINE = ReplacingMergeTree(_writetime) ORDER BY ({dest_keys(table)}){nullable_key}")
        prebuilt.append((name, pa.table(arrays)))
    rows = sum(t.num_rows for _, t in prebuilt)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for name, data in prebuilt:
        dest.client.insert_arrow(name, data)
    return rows, time.process_time() - cpu0, time.perf_counter() - wall0


def dest_keys(table) -> str:
    from ray_cdc.destinations.clickhouse import ddl

    return ", ".join(ddl.quote(c.name) for c in ddl.key_columns(table))


def run_child(batches: Path) -> dict:
    import dataclasses

    from ray_cdc.destinations.clickhouse import ClickHouseDestination

    pairs = _load(batches)
    rows = sum(b.num_rows for _, b in pairs)
    with tempfile.TemporaryDirectory() as data_dir:
        dest = ClickHouseDestination(f"chdb://{data_dir}", name="bench")
        dest.open()
        for table in {t.id: t for t, _ in pairs}.values():
            dest.ensure_table(table)
        _warm_up(dest, pairs)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for table, batch in pairs:
            dest.write(table, batch, [])
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # the two halves on their own, into copies of the tables
        copies = {t.id: dataclasses.replace(t, name=t.name + "_split") for t, _ in pairs}
        for table in copies.values():
            dest.ensure_table(table)
        cpu0 = time.process_time()
        prepared = [dest.prepare(copies[t.id], b) for t, b in pairs]
        prepare_cpu = time.process_time() - cpu0
        cpu0 = time.process_time()
        for p in prepared:
            dest.write_prepared(p, [])
        load_cpu = time.process_time() - cpu0
        ceiling_rows, ceiling_cpu, ceiling_wall = _ceiling(dest, pairs)
        dest.close()
    return {"rows": rows, "cpu": cpu, "wall": wall, "peak_rss_mib": peak, "prepare_cpu": prepare_cpu,
            "write_prepared_cpu": load_cpu, "ceiling_rows": ceiling_rows, "ceiling_cpu": ceiling_cpu,
            "ceiling_wall": ceiling_wall}


# --- driver (parent) -----------------------------------------------------------------------------------


def measure(batches: Path, runs: int) -> dict:
    results = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, __file__, "--child", str(batches)], capture_output=True, text=True,
                             check=False)
        if out.returncode != 0:
            raise SystemExit(f"child run failed:\n{out.stderr[-4000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    def median(f) -> float:
        return statistics.median(f(r) for r in results)

    rows = results[0]["rows"]
    summary = {
        "rows": rows,
        "writer_rows_per_s_cpu": median(lambda r: r["rows"] / r["cpu"]),
        "writer_rows_per_s_wall": median(lambda r: r["rows"] / r["wall"]),
        "ceiling_rows": results[0]["ceiling_rows"],
        "ceiling_rows_per_s_cpu": median(lambda r: r["ceiling_rows"] / r["ceiling_cpu"]),
        "ceiling_rows_per_s_wall": median(lambda r: r["ceiling_rows"] / r["ceiling_wall"]),
        "ratio_cpu": median(lambda r: (r["rows"] / r["cpu"]) / (r["ceiling_rows"] / r["ceiling_cpu"])),
        "ratio_wall": median(lambda r: (r["rows"] / r["wall"]) / (r["ceiling_rows"] / r["ceiling_wall"])),
        "prepare_rows_per_s_cpu": median(lambda r: r["rows"] / r["prepare_cpu"]),
        "write_prepared_rows_per_s_cpu": median(lambda r: r["rows"] / r["write_prepared_cpu"]),
        "peak_rss_mib": median(lambda r: r["peak_rss_mib"]),
        "runs": results,
    }
    return summary


def _print(name: str, s: dict) -> None:
    print(f"{name}: {s['rows']:,} rows (ceiling: {s['ceiling_rows']:,} row changes), median of {len(s['runs'])} runs")
    print(f"  writer   {s['writer_rows_per_s_cpu']:>12,.0f} rows/s CPU   {s['writer_rows_per_s_wall']:>12,.0f} rows/s wall")
    print(f"  ceiling  {s['ceiling_rows_per_s_cpu']:>12,.0f} rows/s CPU   {s['ceiling_rows_per_s_wall']:>12,.0f} rows/s wall")
    print(f"  ratio    {s['ratio_cpu']:>12.2f} (CPU)          {s['ratio_wall']:>12.2f} (wall)")
    print(f"  split    prepare {s['prepare_rows_per_s_cpu']:,.0f} rows/s CPU, "
          f"write_prepared {s['write_prepared_rows_per_s_cpu']:,.0f} rows/s CPU")
    print(f"  peak RSS {s['peak_rss_mib']:,.0f} MiB (writer run, batches included)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000, help="rows of the wide insert workload")
    parser.add_argument("--mixed-rows", type=int, default=100_000, help="row changes of the default mix")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("wide", "mixed"), help="one workload only")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.child)))
        return
    report = {}
    with tempfile.TemporaryDirectory() as work:
        for kind, rows in (("wide", args.rows), ("mixed", args.mixed_rows)):
            if args.only and kind != args.only:
                continue
            report[kind] = measure(build(kind, rows, Path(work)), args.runs)
            _print(kind, report[kind])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
