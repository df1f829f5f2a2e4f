"""End-to-end replication throughput and memory: rows/s from segments into each destination, and into
all of them at once, beside each destination's own ceiling on the same rows, measured in the same run.

For every scenario (postgres, clickhouse, timescaledb, all) and every run, in this order:

- pipeline: `replicate(config, once=True)` — the code behind `ray-cdc run config.yaml --once` — in a
  fresh child process with its own local Ray; rows/s is the row changes replicated over the time of
  `replicate` (Ray's own start-up is reported separately, as `start_s`). Peak RSS is the sum of the
  resident set sizes of the child and every process under it (the Ray driver, GCS, raylet, every
  worker and actor), sampled every 0.2 s;
- ceiling: the destination loading the same rows with its own bulk path, nothing else —
  PostgreSQL (and TimescaleDB, on the same server): `psql \\copy` from a CSV file of the user columns
  (written beforehand with pyarrow.csv) into a plain table with the user's columns and primary key;
  ClickHouse (chDB): one `insert_arrow` of the prebuilt Arrow table (user columns + writetime) into a
  ReplacingMergeTree(writetime) ordered by the primary key. For `all`, the ceilings of the scenario's
  destinations run concurrently and the ceiling is the rows over the time until the last finishes.
  Rows are keyed like the Cassandra table: when a key repeats, the ceiling loads its last change.

The table shows medians over --runs; ratio = pipeline rows/s / ceiling rows/s (target >= 0.5, peak
memory < 2 GiB), over the whole `replicate` call (actor start-up included). Memory is the peak of the
summed PSS of the tree: PSS divides each shared page among the processes that map it, so the sum counts
every physical page once (the summed RSS, also shown, counts a shared library or an object-store page
once per process that maps it). Beside it, from the writers'
commit times (`RayRunSummary.writers`): the steady state, rows committed after the first set over the
time from the first committed set to the last (the slowest destination's), with its own ratio to the
ceiling, and the start-up, from the call to the first committed set. `--backlog-factor 10` then
replicates a backlog 10x as large (scenarios of --backlog-scenarios, once each) and compares its peak
PSS with the 1x runs: memory must not grow with the backlog (at most BACKLOG_GROWTH x, and < 2 GiB).

Workloads: `--mix wide` (default) is the 10-column `wide_table()` of
`ray_cdc.commitlog.workload` with inserts only; `--mix default` is the demo tables with the default
mix (updates, collection edits, TTLs, deletes, counters). PostgreSQL is started by the benchmark
(tests/services/postgres.py: Debian's PostgreSQL 15 when installed, else pgserver), chDB runs in
process in a fresh directory per run. The TimescaleDB scenario is a `type: timescaledb` destination
with `on_missing_extension: warn` on that server; it is reported as not available when the pipeline
does not accept that destination type yet.

Usage: python benchmarks/end_to_end.py [--rows 1000000] [--runs 3] [--mix wide|default]
       [--scenarios postgres,clickhouse,timescaledb,all] [--backlog-factor 10] [--workdir DIR]
       [--json out.json]
Quick: python benchmarks/end_to_end.py --rows 200000 --runs 1
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SCENARIOS = ("postgres", "clickhouse", "timescaledb", "all")
TARGET_RATIO = 0.5
TARGET_PEAK_MIB = 2048  # of the summed PSS (see the module doc)
BACKLOG_GROWTH = 1.1  # a 10x backlog may cost at most this much more memory than 1x: sampling noise, not growth
SAMPLE_EVERY = 0.2
INSERTS = {"insert": 1}
BASE_SEGMENT_ID = 1_700_000_000_000
CHUNK_ROWS = 100_000  # generation runs in parallel chunks of this many rows


# --- workload --------------------------------------------------------------------------------------


def _tables(mix: str):
    from ray_cdc.commitlog import workload

    return [workload.wide_table()] if mix == "wide" else workload.demo_tables()


def _generate_chunk(directory: str, rows: int, mix: str, seed: int, index: int) -> dict:
    from ray_cdc.commitlog import workload

    out = Path(directory) / f"chunk{index}"
    summary = workload.generate(out, rows=rows, tables=_tables(mix), seed=seed * 1000 + index,
                                mix=INSERTS if mix == "wide" else None, preallocate=False,
                                base_segment_id=BASE_SEGMENT_ID + index * 100_000)
    return {"rows": summary.row_changes, "bytes": summary.data_bytes}


def workload_dir(root: Path, rows: int, mix: str, seed: int, chunk_rows: int = CHUNK_ROWS) -> tuple[Path, dict]:
    """Segments of `rows` row changes (reused when `root` already holds them): generated in parallel
    chunks of `chunk_rows` (at least one segment each), each with its own seed and segment ids, so the
    segment ids keep increasing."""
    directory = root / f"{mix}-{rows}-s{seed}"
    done = directory / "generated.json"
    if done.exists():
        return directory, json.loads(done.read_text())
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    t0 = time.perf_counter()
    sizes = [min(chunk_rows, rows - i) for i in range(0, rows, chunk_rows)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        parts = list(pool.map(_generate_chunk, [str(directory)] * len(sizes), sizes, [mix] * len(sizes),
                              [seed] * len(sizes), range(len(sizes))))
    for chunk in sorted(directory.glob("chunk*")):
        for path in chunk.iterdir():
            target = directory / path.name
            if path.name == "schema.cql" and target.exists():
                path.unlink()
            else:
                path.rename(target)
        chunk.rmdir()
    info = {"rows": sum(p["rows"] for p in parts), "bytes": sum(p["bytes"] for p in parts),
            "segments": len(list(directory.glob("CommitLog-*.log"))), "mix": mix, "seed": seed,
            "generate_s": time.perf_counter() - t0}
    done.write_text(json.dumps(info))
    return directory, info


# --- the ceilings' input: the same rows, as Arrow (chDB) and CSV (PostgreSQL) -----------------------


def ceiling_inputs(segments: Path, out: Path) -> list[dict]:
    """Per table: the user columns of every change (its last change per primary key), as an Arrow
    IPC file (with `_writetime`) and a CSV file, with the column types each destination gets."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ray_cdc.commitlog.reader import CommitLogReader, sort_segments
    from ray_cdc.schema.cql import load_cql_schema
    from ray_cdc.schema.registry import SchemaRegistry

    schemas = load_cql_schema(segments / "schema.cql")
    reader = CommitLogReader(SchemaRegistry(schemas))
    per_table: dict[str, list] = {}
    for table, batch in reader.arrow_batches(sort_segments(segments.glob("CommitLog-*.log"))):
        per_table.setdefault(table.qualified_name, []).append(batch)
    inputs = []
    for schema in schemas:
        batches = per_table.get(schema.qualified_name)
        if not batches:
            continue
        keys = [c.name for c in (*schema.partition_key, *schema.clustering)]
        names = [c.name for c in schema.columns]
        table = pa.Table.from_batches(batches).select([*names, "_writetime"])
        for k in keys:  # partition-level changes (static rows, partition deletes) have no clustering key
            table = table.filter(pc.is_valid(table.column(k)))
        table = _last_per_key(table, keys)
        table = table.set_column(table.schema.get_field_index("_writetime"), "_writetime",
                                 pc.fill_null(table.column("_writetime"), 0))
        table = pa.table({n: _plain(table.column(n)) for n in table.column_names})
        name = f"{schema.keyspace}__{schema.name}"
        ipc, csv = out / f"{name}.arrow", out / f"{name}.csv"
        with pa.OSFile(str(ipc), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        _write_csv(table.select(names), csv)
        inputs.append({"table": name, "rows": table.num_rows, "keys": keys, "columns": names,
                       "arrow": str(ipc), "csv": str(csv),
                       "pg_types": {n: _pg_type(table.schema.field(n).type) for n in names},
                       "ch_types": {n: _ch_type(table.schema.field(n).type, n in keys or n == "_writetime")
                                    for n in table.column_names}})
    return inputs


def _last_per_key(table, keys: list[str]):
    """The last change (highest writetime) of each key: the ceiling tables have the primary key."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = table.append_column("_i", pa.array(range(table.num_rows), pa.int64()))
    order = pc.sort_indices(table, [(k, "ascending") for k in keys] + [("_writetime", "descending")])
    table = table.take(order)
    first = pa.array([True] + [False] * (table.num_rows - 1)) if table.num_rows else pa.array([], pa.bool_())
    for k in keys:  # a row starts a new key when any key column differs from the previous row's
        column = table.column(k).combine_chunks()
        if table.num_rows > 1:
            changed = pc.fill_null(pc.not_equal(column.slice(1), column.slice(0, table.num_rows - 1)), True)
            first = pc.or_(first, pa.concat_arrays([pa.array([True]), changed]))
    table = table.filter(first)
    return table.take(pc.sort_indices(table, [("_i", "ascending")])).drop_columns(["_i"])


def _plain(column):
    """Columns both bulk paths take as they are; uuids become their text form, nested values JSON."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_fixed_size_binary(kind) and kind.byte_width == 16:
        return pa.array([None if v is None else str(uuid.UUID(bytes=v)) for v in column.to_pylist()], pa.string())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return pa.array([None if v is None else "\\x" + v.hex() for v in column.to_pylist()], pa.string())
    if _basic(kind):
        return column
    return pa.array([None if v is None else json.dumps(v, default=str, sort_keys=True) for v in column.to_pylist()],
                    pa.string())


def _basic(kind) -> bool:
    import pyarrow as pa

    return (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            or pa.types.is_string(kind) or pa.types.is_timestamp(kind) or pa.types.is_date32(kind))


def _pg_type(kind) -> str:
    import pyarrow as pa

    if pa.types.is_int64(kind):
        return "bigint"
    if pa.types.is_int32(kind):
        return "integer"
    if pa.types.is_integer(kind):
        return "smallint" if kind.bit_width <= 16 else "bigint"
    if pa.types.is_float32(kind):
        return "real"
    if pa.types.is_floating(kind):
        return "double precision"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_timestamp(kind):
        return "timestamptz"
    if pa.types.is_date32(kind):
        return "date"
    return "text"


def _ch_type(kind, key: bool) -> str:
    import pyarrow as pa

    if pa.types.is_integer(kind):
        base = f"{'U' if pa.types.is_unsigned_integer(kind) else ''}Int{kind.bit_width}"
    elif pa.types.is_floating(kind):
        base = f"Float{kind.bit_width}"
    elif pa.types.is_boolean(kind):
        base = "Bool"
    elif pa.types.is_timestamp(kind):
        digits = {"s": 0, "ms": 3, "us": 6, "ns": 9}[kind.unit]
        base = f"DateTime64({digits}, 'UTC')"
    elif pa.types.is_date32(kind):
        base = "Date32"
    else:
        base = "String"
    return base if key else f"Nullable({base})"


def _write_csv(table, path: Path) -> None:
    import pyarrow.csv as pacsv

    pacsv.write_csv(table, str(path), pacsv.WriteOptions(include_header=False))


# --- ceilings --------------------------------------------------------------------------------------


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def pg_prepare(dsn: str, schema: str, inputs: list[dict]) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {_qi(schema)} CASCADE")
        conn.execute(f"CREATE SCHEMA {_qi(schema)}")
        for t in inputs:
            columns = ", ".join(f"{_qi(n)} {t['pg_types'][n]}" for n in t["columns"])
            keys = ", ".join(_qi(k) for k in t["keys"])
            conn.execute(f"CREATE TABLE {_qi(schema)}.{_qi(t['table'])} ({columns}, PRIMARY KEY ({keys}))")


def pg_copy_commands(dsn: str, schema: str, inputs: list[dict]) -> list[str]:
    copies = [f"\\copy {_qi(schema)}.{_qi(t['table'])} FROM '{t['csv']}' WITH (FORMAT csv)" for t in inputs]
    return ["psql", dsn, "-v", "ON_ERROR_STOP=1", "-q", *[arg for copy in copies for arg in ("-c", copy)]]


def pg_drop(dsn: str, *schemas: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f"DROP SCHEMA IF EXISTS {_qi(schema)} CASCADE")


class ClickHouseCeiling:
    """A child process with chDB open on a fresh directory, the tables created and the Arrow tables
    read: `go()` starts the inserts, `wait()` returns their time (one insert_arrow per table)."""

    def __init__(self, directory: Path, inputs: list[dict]):
        spec = json.dumps({"dir": str(directory), "inputs": inputs})
        self.process = subprocess.Popen([sys.executable, __file__, "--child-ch-ceiling", spec],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"chDB ceiling child did not start: {line!r}")

    def go(self) -> None:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def wait(self) -> dict:
        out = self.process.stdout.read()
        if self.process.wait() != 0:
            raise RuntimeError(f"chDB ceiling child failed: {out[-2000:]}")
        return json.loads(out.strip().splitlines()[-1])


def child_ch_ceiling(spec_text: str) -> None:
    import clickhouse_connect
    import pyarrow as pa

    spec = json.loads(spec_text)
    client = clickhouse_connect.get_client(dsn=f"chdb://{spec['dir']}")
    client.command("CREATE DATABASE IF NOT EXISTS bench")
    tables = []
    for t in spec["inputs"]:
        columns = ", ".join(f"`{n}` {kind}" for n, kind in t["ch_types"].items())
        order = ", ".join(f"`{k}`" for k in t["keys"])
        client.command(f"CREATE TABLE bench.`{t['table']}` ({columns}) "
                       f"ENGINE = ReplacingMergeTree(_writetime) ORDER BY ({order})")
        with pa.memory_map(t["arrow"]) as source:
            tables.append((t["table"], pa.ipc.open_file(source).read_all().combine_chunks()))
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    for name, table in tables:
        client.insert_arrow(f"bench.`{name}`", table)
    elapsed = time.perf_counter() - t0
    counts = {name: int(client.command(f"SELECT count() FROM bench.`{name}`")) for name, _ in tables}
    print(json.dumps({"seconds": elapsed, "rows": counts}))


def measure_ceiling(scenario: str, destinations: list[str], dsn: str, inputs: list[dict], scratch: Path) -> dict:
    """The destinations' own bulk load of the same rows, concurrently when there are several."""
    rows = sum(t["rows"] for t in inputs)
    tag = uuid.uuid4().hex[:8]
    pg_schemas = {d: f"ceil_{d[:2]}_{tag}" for d in destinations if d in ("postgres", "timescaledb")}
    for schema in pg_schemas.values():
        pg_prepare(dsn, schema, inputs)
    clickhouse = ClickHouseCeiling(scratch / f"ch-ceiling-{tag}", inputs) if "clickhouse" in destinations else None
    try:
        t0 = time.perf_counter()
        copies = [subprocess.Popen(pg_copy_commands(dsn, s, inputs), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                  for s in pg_schemas.values()]
        if clickhouse is not None:
            clickhouse.go()
        times = {}
        for name, copy in zip(pg_schemas, copies):
            out = copy.communicate()[0]
            if copy.returncode != 0:
                raise RuntimeError(f"psql \\copy failed: {out.decode(errors='replace')[-2000:]}")
            times[name] = time.perf_counter() - t0
        if clickhouse is not None:
            result = clickhouse.wait()
            times["clickhouse"] = result["seconds"]
            assert sum(result["rows"].values()) == rows, (result, rows)
        elapsed = max(times.values())
    finally:
        if clickhouse is not None and clickhouse.process.poll() is None:
            clickhouse.process.kill()
        shutil.rmtree(scratch / f"ch-ceiling-{tag}", ignore_errors=True)
        pg_drop(dsn, *pg_schemas.values())
    return {"scenario": scenario, "rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed, "parts": times}


# --- the pipeline ----------------------------------------------------------------------------------


def config_text(destinations: list[str], segments: Path | list[Path], tag: str, scratch: Path,
                batch_rows: int | None, extra: str = "") -> str:
    """`segments`: one directory, or one per Cassandra node (one reader each; schema.cql from the first).
    `extra`: more top-level YAML (e.g. the harness's `writers:` section)."""
    nodes = segments if isinstance(segments, list) else [segments]
    lines = []
    if "postgres" in destinations:
        lines.append(f'  bpg_{tag}: {{type: postgres, dsn: "${{BENCH_PG_DSN}}", schema: bpg_{tag}}}')
    if "timescaledb" in destinations:
        lines.append(f'  bts_{tag}: {{type: timescaledb, dsn: "${{BENCH_PG_DSN}}", schema: bts_{tag}, '
                     f'on_missing_extension: warn}}')
    if "clickhouse" in destinations:
        lines.append(f'  ch_{tag}: {{type: clickhouse, dsn: "chdb://{scratch / ("ch-" + tag)}"}}')
    pipeline = f"state_dir: {scratch / ('state-' + tag)}" + (f", batch_rows: {batch_rows}" if batch_rows else "")
    sources = "".join(f"  - {{name: bench{i or ''}, commitlog_dir: {d}}}\n" for i, d in enumerate(nodes))
    return (f"sources:\n{sources}"
            f"schema: {{cql_file: {nodes[0] / 'schema.cql'}}}\n"
            f"destinations:\n" + "\n".join(lines) + "\n"
            f"pipeline: {{{pipeline}}}\n"
            # any free port: the default one may be taken by another run on this machine
            f"observability: {{port: 0}}\n{extra}")


class TreeSampler:
    """Peak of the summed RSS of a process and all its descendants, sampled every SAMPLE_EVERY s; and,
    every PSS_EVERY-th sample, the summed PSS (shared pages divided among the processes sharing them:
    the summed RSS counts every shared library and object-store page once per process)."""

    PSS_EVERY = 5

    def __init__(self, pid: int, cpu: bool = False):
        import psutil

        self.root = psutil.Process(pid)
        self._track_cpu = cpu  # opt-in (--cpu): sampling every process's CPU costs the run some of its own
        # CPU seconds per process over the run: the tree's, and PostgreSQL's server processes (the
        # destinations' side of the load), less what they had used before
        self.cpu: dict[int, tuple[str, float]] = {}
        self._cpu_before = {p.pid: _cpu(p) for p in _postgres_processes()} if cpu else {}
        self.peak = self.peak_pss = 0
        self.peak_processes: dict[str, float] = {}
        self.timeline: list[list] = []  # [seconds since start, summed RSS MiB, summed PSS MiB or None]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        n = 0
        began = time.perf_counter()
        while not self._stop.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                break
            sizes = {}
            pss = 0
            for p in processes:
                try:
                    sizes[p.pid] = (p.memory_info().rss, p)
                    if n % self.PSS_EVERY == 0:
                        pss += p.memory_full_info().pss
                except psutil.Error:
                    pass
            for p in (processes + _postgres_processes()) if self._track_cpu else ():
                try:
                    known = self.cpu.get(p.pid)  # an actor's label once it has one (an exiting process has none)
                    role = known[0] if known is not None and _is_actor(known[0]) else _role(p)
                    self.cpu[p.pid] = (role, _cpu(p) - self._cpu_before.get(p.pid, 0.0))
                except psutil.Error:
                    pass
            total = sum(rss for rss, _ in sizes.values())
            if total > self.peak:
                self.peak = total
                self.peak_processes = {_label(p): rss / 2**20 for rss, p in sizes.values()}
            self.peak_pss = max(self.peak_pss, pss)
            self.timeline.append([round(time.perf_counter() - began, 2), round(total / 2**20, 1),
                                  round(pss / 2**20, 1) if n % self.PSS_EVERY == 0 else None])
            n += 1
            self._stop.wait(SAMPLE_EVERY)

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20, self.peak_pss / 2**20

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds per role (a process label without its pid), most first."""
        roles: dict[str, float] = {}
        for role, seconds in self.cpu.values():
            roles[role] = roles.get(role, 0.0) + seconds
        return dict(sorted(((r, round(c, 2)) for r, c in roles.items() if c >= 0.005), key=lambda x: -x[1]))


def _cpu(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _postgres_processes() -> list:
    import psutil

    found = []
    for p in psutil.process_iter(["name"]):
        if (p.info.get("name") or "").startswith("postgres"):
            found.append(p)
    return found


def _is_actor(role: str) -> bool:
    return role.startswith("ray::") and role != "ray::IDLE"


def _role(process) -> str:
    label = _label(process)
    if label.startswith("postgres"):
        return "postgres server"
    return label.rsplit(" [", 1)[0].split(".")[0]  # ray::WriterActor.apply -> ray::WriterActor


def _label(process) -> str:
    try:
        cmd = process.cmdline()
        name = cmd[0].rsplit("/", 1)[-1] if cmd else process.name()
        if name.startswith("ray::") or not cmd:
            return f"{name} [{process.pid}]"
        script = next((c.rsplit("/", 1)[-1] for c in cmd[1:3] if c.endswith(".py")), "")
        return f"{name} {script} [{process.pid}]".replace("  ", " ")
    except Exception:  # noqa: BLE001 - a process that just exited: its label does not matter
        return f"? [{process.pid}]"


def measure_pipeline(scenario: str, destinations: list[str], dsn: str, segments: Path | list[Path], scratch: Path,
                     batch_rows: int | None, extra_config: str = "", cpu: bool = False) -> dict:
    """`cpu`: also the CPU seconds of every process (and PostgreSQL's server), by role."""
    tag = uuid.uuid4().hex[:8]
    config = scratch / f"config-{tag}.yaml"
    config.write_text(config_text(destinations, segments, tag, scratch, batch_rows, extra_config))
    env = {**os.environ, "BENCH_PG_DSN": dsn, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
    t0 = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "--child-run", str(config)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    sampler = TreeSampler(child.pid, cpu=cpu)
    out, err = child.communicate()
    wall = time.perf_counter() - t0
    peak, peak_pss = sampler.stop()
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"pipeline child failed ({child.returncode}): {err[-3000:]}") from None
    if "error" in result:
        return {"scenario": scenario, "error": result["error"]}
    pg_drop(dsn, f"bpg_{tag}", f"bts_{tag}")
    shutil.rmtree(scratch / f"ch-{tag}", ignore_errors=True)
    shutil.rmtree(scratch / f"state-{tag}", ignore_errors=True)
    return {"scenario": scenario, "rows": result["rows"], "seconds": result["seconds"],
            "rows_per_s": result["rows"] / result["seconds"], "start_s": result["start_s"], "wall_s": wall,
            "startup_s": result.get("startup_s"), "steady_rows_per_s": result.get("steady_rows_per_s"),
            "steady_s": result.get("steady_s"), "steady_per_destination": result.get("steady_per_destination"),
            "peak_rss_mib": peak, "peak_pss_mib": peak_pss, "processes_at_peak": sampler.peak_processes,
            **({"cpu_seconds": (by_role := sampler.cpu_by_role()), "cpu_cores": sum(by_role.values()) / wall}
               if cpu else {}),
            "memory_timeline": sampler.timeline, "set_seconds": result.get("set_seconds"),
            "writers": result.get("writers")}


def child_run(config_path: str) -> None:
    """In a fresh process: a local Ray, then one pass of `replicate` (what `ray-cdc run --once` does)."""
    from ray_cdc.config import load_config
    from ray_cdc.errors import ConfigError
    from ray_cdc.pipeline.local_ray import init_ray
    from ray_cdc.pipeline.run import replicate

    try:
        config = load_config(config_path)
    except ConfigError as e:
        print(json.dumps({"error": str(e)}))
        return
    t0 = time.perf_counter()
    init_ray(config.pipeline)  # what `ray-cdc run` does: a local Ray, its object store sized by the config
    start = time.perf_counter() - t0
    t1, wall1 = time.perf_counter(), time.time()
    try:
        passes = replicate(config, once=True)
    except ConfigError as e:
        print(json.dumps({"error": str(e)}))
        return
    elapsed = time.perf_counter() - t1
    rows = sum(r["rows"] for p in passes for r in p.readers)
    set_seconds = {}  # destination -> each committed set's apply time (the harness's latency percentiles)
    for p in passes:
        for name, t in p.writers.items():
            set_seconds.setdefault(name, []).extend(t.get("apply_seconds", []))
    writers = {}  # destination -> how many of its writers committed a set (writer scaling)
    for p in passes:
        for name, sets in getattr(p, "writer_sets", {}).items():
            writers[name] = max(writers.get(name, 0), sum(1 for n in sets if n))
    print(json.dumps({"rows": rows, "seconds": elapsed, "start_s": start, **steady_state(passes, wall1),
                      "set_seconds": set_seconds, "writers": writers}))


def steady_state(passes, began: float) -> dict:
    """From the writers' commit times: `startup_s`, the time from the `replicate` call to the first
    committed set (any destination), and `steady_rows_per_s`, the rows committed after the first set
    over the time from the first committed set to the last (per destination; the slowest one's when
    there are several: every destination must have all the rows)."""
    per = {}
    for p in passes:
        for name, t in p.writers.items():
            if t.get("first") is None:
                continue
            d = per.setdefault(name, {"first": t["first"], "first_rows": t["first_rows"], "last": t["last"],
                                      "rows": 0, "sets": 0})
            if t["first"] < d["first"]:
                d["first"], d["first_rows"] = t["first"], t["first_rows"]
            d["last"] = max(d["last"], t["last"])
            d["rows"] += t["rows"]
            d["sets"] += t["sets"]
    if not per:
        return {"startup_s": None, "steady_rows_per_s": None, "steady_s": None}
    rates = {}
    for name, d in per.items():
        span = d["last"] - d["first"]
        rates[name] = (d["rows"] - d["first_rows"]) / span if d["sets"] > 1 and span > 0 else None
    known = [r for r in rates.values() if r is not None]
    return {"startup_s": min(d["first"] for d in per.values()) - began,
            "steady_rows_per_s": min(known) if known else None,
            "steady_s": max(d["last"] for d in per.values()) - min(d["first"] for d in per.values()),
            "steady_per_destination": rates}


# --- scenarios, runs, report ------------------------------------------------------------------------


def destinations_of(scenario: str, available: set[str]) -> list[str]:
    if scenario == "all":
        return [d for d in ("postgres", "timescaledb", "clickhouse") if d in available]
    return [scenario]


def _median(results: list[dict], key: str) -> float | None:
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def _ratio(value: float | None, ceiling: float) -> float | None:
    return None if value is None else value / ceiling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="row changes (default 1000000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mix", choices=("wide", "default"), default="wide",
                        help="wide: 10-column inserts (default); default: the demo tables and default mix")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, of " + ", ".join(SCENARIOS))
    parser.add_argument("--backlog-factor", type=int, default=1,
                        help="also replicate a backlog this many times larger and compare peak RSS")
    parser.add_argument("--backlog-scenarios", default="all")
    parser.add_argument("--batch-rows", type=int, help="pipeline.batch_rows (default: the config's default)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cpu", action="store_true",
                        help="also print the CPU seconds of every process by role (the sampling costs the run some CPU)")
    parser.add_argument("--workdir", type=Path, help="keep (and reuse) generated segments here")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child-run", help=argparse.SUPPRESS)
    parser.add_argument("--child-ch-ceiling", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_run:
        return child_run(args.child_run)
    if args.child_ch_ceiling:
        return child_ch_ceiling(args.child_ch_ceiling)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}")
    command = "python " + " ".join([os.path.relpath(__file__, REPO), *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="ray-cdc-e2e-") as tmp:
        run(args, scenarios, Path(tmp), command)


def run(args, scenarios: list[str], tmp: Path, command: str) -> None:
    from tests.services.postgres import PostgresServer

    root = args.workdir or tmp / "segments"
    segments, info = workload_dir(root, args.rows, args.mix, args.seed)
    print(f"{info['rows']:,} row changes ({args.mix} mix, seed {args.seed}), {info['bytes'] / 2**20:.0f} MiB in "
          f"{info['segments']} segments" + (f", generated in {info['generate_s']:.0f} s" if "generate_s" in info else ""),
          flush=True)
    inputs = ceiling_inputs(segments, tmp)
    server = PostgresServer(tmp / "postgres")
    server.start()
    try:
        dsn = server.dsn
        available, baseline = probe_available(dsn, segments, tmp, args.batch_rows)
        print(f"baseline (Ray, the actors and {'+'.join(sorted(available))}, nothing to replicate): peak RSS "
              f"{baseline['peak_rss_mib']:,.0f} MiB, PSS {baseline['peak_pss_mib']:,.0f} MiB", flush=True)
        results = {"baseline": baseline, "command": command, "python": sys.version.split()[0], "cpu_count": os.cpu_count(),
                   "postgres": server.kind, "workload": info, "ceiling_rows": sum(t["rows"] for t in inputs),
                   "scenarios": {}}
        for scenario in scenarios:
            if scenario == "timescaledb" and scenario not in available:
                print(f"timescaledb: not available ({available_reason(available)})", flush=True)
                results["scenarios"][scenario] = {"available": False, "reason": available_reason(available)}
        todo = [s for s in scenarios if s != "timescaledb" or s in available]
        per = {s: {"pipeline": [], "ceiling": []} for s in todo}
        for i in range(args.runs):
            for scenario in todo:
                destinations = destinations_of(scenario, available)
                p = measure_pipeline(scenario, destinations, dsn, segments, tmp, args.batch_rows, cpu=args.cpu)
                c = measure_ceiling(scenario, destinations, dsn, inputs, tmp)
                per[scenario]["pipeline"].append(p)
                per[scenario]["ceiling"].append(c)
                print(f"  run {i + 1} {scenario:12s} pipeline whole call {p['rows_per_s']:>10,.0f} rows/s "
                      f"({p['seconds']:.1f} s + Ray start {p['start_s']:.1f} s, peak RSS {p['peak_rss_mib']:,.0f} MiB, "
                      f"PSS {p['peak_pss_mib']:,.0f} MiB); steady state {_num(p['steady_rows_per_s'])} rows/s "
                      f"(first to last commit {_secs(p['steady_s'])}), start-up to first commit {_secs(p['startup_s'])}"
                      f"  ceiling {c['rows_per_s']:>10,.0f} rows/s ({c['seconds']:.2f} s)", flush=True)
                if "cpu_seconds" in p:  # where the cores went: Ray start and actor start-up included
                    top = ", ".join(f"{r} {c:.1f}" for r, c in list(p["cpu_seconds"].items())[:8])
                    print(f"        CPU s over {p['wall_s']:.1f} s ({p['cpu_cores']:.2f} cores): {top}", flush=True)
        for scenario in todo:
            results["scenarios"][scenario] = summarize(scenario, destinations_of(scenario, available), per[scenario])
        if args.backlog_factor > 1:
            results["backlog"] = backlog(args, dsn, root, tmp, available, results["scenarios"])
        report(results, args)
    finally:
        server.remove()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


_UNAVAILABLE: dict[str, str] = {}


def probe_available(dsn: str, segments: Path, tmp: Path, batch_rows: int | None) -> tuple[set[str], dict]:
    """Which destination types the pipeline accepts, and Ray's own footprint: a config with every
    destination type run over an empty directory of segments (nothing to replicate: Ray, the actors
    and the destinations' connections only). A timescaledb destination the pipeline refuses is
    reported as not available and the probe is run again without it."""
    empty = tmp / "empty-source"
    empty.mkdir(exist_ok=True)
    shutil.copy(segments / "schema.cql", empty / "schema.cql")
    everything = ["postgres", "timescaledb", "clickhouse"]
    probe = measure_pipeline("baseline", everything, dsn, empty, tmp, batch_rows)
    if "error" not in probe:
        return set(everything), probe
    _UNAVAILABLE["timescaledb"] = probe["error"]
    return {"postgres", "clickhouse"}, measure_pipeline("baseline", ["postgres", "clickhouse"], dsn, empty, tmp,
                                                        batch_rows)


def available_reason(available: set[str]) -> str:
    return _UNAVAILABLE.get("timescaledb", "")


def summarize(scenario: str, destinations: list[str], runs: dict) -> dict:
    pipeline, ceiling = runs["pipeline"], runs["ceiling"]
    rate, ceil = _median(pipeline, "rows_per_s"), _median(ceiling, "rows_per_s")
    steady = _median(pipeline, "steady_rows_per_s")
    return {"available": True, "destinations": destinations, "rows": pipeline[0]["rows"],
            "rows_per_s": rate, "ceiling_rows_per_s": ceil, "ratio": rate / ceil,
            "steady_rows_per_s": steady, "steady_ratio": _ratio(steady, ceil),
            "startup_s": _median(pipeline, "startup_s"),
            "peak_rss_mib": _median(pipeline, "peak_rss_mib"), "peak_pss_mib": _median(pipeline, "peak_pss_mib"),
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in pipeline),
            "peak_pss_mib_max": max(r["peak_pss_mib"] for r in pipeline),
            "ray_start_s": _median(pipeline, "start_s"), "runs": runs}


def backlog(args, dsn: str, root: Path, tmp: Path, available: set[str], scenarios: dict) -> dict:
    rows = args.rows * args.backlog_factor
    segments, info = workload_dir(root, rows, args.mix, args.seed)
    print(f"backlog x{args.backlog_factor}: {info['rows']:,} row changes, {info['bytes'] / 2**20:.0f} MiB in "
          f"{info['segments']} segments", flush=True)
    out = {"factor": args.backlog_factor, "workload": info, "scenarios": {}}
    for scenario in [s.strip() for s in args.backlog_scenarios.split(",") if s.strip()]:
        if scenario == "timescaledb" and scenario not in available:
            continue
        p = measure_pipeline(scenario, destinations_of(scenario, available), dsn, segments, tmp, args.batch_rows)
        base = scenarios.get(scenario, {}).get("peak_pss_mib")
        out["scenarios"][scenario] = {**p, "peak_pss_mib_1x": base}
        print(f"  {scenario:12s} {p['rows_per_s']:>10,.0f} rows/s, peak PSS {p['peak_pss_mib']:,.0f} MiB"
              + (f" (1x: {base:,.0f} MiB)" if base else ""), flush=True)
    if args.workdir is None:
        shutil.rmtree(segments, ignore_errors=True)
    return out


def report(results: dict, args) -> None:
    print(f"\n{results['workload']['rows']:,} row changes, {args.runs} run(s), medians; ceilings load "
          f"{results['ceiling_rows']:,} rows (the last change per key)")
    print("whole call: rows over the whole `replicate` call (actor start-up included); steady state: rows "
          "committed after the first set over the time from the first committed set to the last; start-up: "
          "from the call to the first committed set")
    print(f"{'scenario':12s} {'whole-call rows/s':>18s} {'ratio':>6s} {'steady rows/s':>14s} {'ratio':>6s} "
          f"{'start-up s':>11s} {'ceiling rows/s':>15s} {'peak RSS MiB':>13s} {'peak PSS MiB':>13s}  destinations")
    for scenario, r in results["scenarios"].items():
        if not r.get("available"):
            print(f"{scenario:12s} {'not available':>18s}  {r.get('reason', '')[:100]}")
            continue
        steady_ratio = "n/a" if r["steady_ratio"] is None else f"{r['steady_ratio']:.2f}"
        startup = "n/a" if r["startup_s"] is None else f"{r['startup_s']:.1f}"
        print(f"{scenario:12s} {r['rows_per_s']:>18,.0f} {r['ratio']:>6.2f} {_num(r['steady_rows_per_s']):>14s} "
              f"{steady_ratio:>6s} {startup:>11s} {r['ceiling_rows_per_s']:>15,.0f} "
              f"{r['peak_rss_mib']:>13,.0f} {r['peak_pss_mib']:>13,.0f}  {'+'.join(r['destinations'])}")
    for scenario, r in results["scenarios"].items():
        if r.get("available"):
            verdict = "meets" if r["ratio"] >= TARGET_RATIO and r["peak_pss_mib_max"] < TARGET_PEAK_MIB else "MISSES"
            steady = "n/a" if r["steady_ratio"] is None else f"{r['steady_ratio']:.2f}"
            print(f"{scenario}: {verdict} the target (ratio >= {TARGET_RATIO}, peak PSS < {TARGET_PEAK_MIB} MiB) "
                  f"on the whole call: ratio {r['ratio']:.2f}, peak PSS {r['peak_pss_mib_max']:,.0f} MiB; "
                  f"steady-state ratio {steady} (start-up excluded, not the target's measure)")
    for scenario, r in results.get("backlog", {}).get("scenarios", {}).items():
        base = r.get("peak_pss_mib_1x")
        growth = r["peak_pss_mib"] / base if base else None
        verdict = "meets" if r["peak_pss_mib"] < TARGET_PEAK_MIB and (growth is None or growth <= BACKLOG_GROWTH) else "MISSES"
        print(f"backlog x{results['backlog']['factor']} {scenario}: {verdict} the target (peak PSS < {TARGET_PEAK_MIB} MiB, "
              f"at most {BACKLOG_GROWTH}x the 1x backlog's): peak PSS {r['peak_pss_mib']:,.0f} MiB"
              + (f", {growth:.2f}x the 1x backlog's" if growth else "")
              + f" (summed RSS {r['peak_rss_mib']:,.0f} MiB), {r['rows_per_s']:,.0f} rows/s")
    base = results["baseline"]
    print(f"baseline, nothing to replicate: peak RSS {base['peak_rss_mib']:,.0f} MiB, PSS {base['peak_pss_mib']:,.0f} MiB "
          "(Ray's processes, the actors, the destinations' connections)")
    print(f"command: {results['command']}")


if __name__ == "__main__":
    main()
