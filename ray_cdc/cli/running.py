"""`ray-cdc run | demo | validate`: replicate, try it on embedded servers, check a configuration."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from ray_cdc.cli.common import EXIT_ERROR, EXIT_OK, check_sources, init_ray, load, source_problem
from ray_cdc.cli.progress import PipelineWatcher, ProgressLine


def add_commands(commands) -> None:
    run = commands.add_parser("run", help="replicate the segments of every configured node into every "
                              "destination, on the connected Ray cluster (or a local one)")
    run.add_argument("config", type=Path, help="YAML configuration (see examples/config.yaml)")
    run.add_argument("--once", action="store_true", help="one pass over what is durable now, then exit, "
                     "with a progress display on stderr (default: keep following until SIGTERM/SIGINT)")
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="check a configuration file without running anything")
    validate.add_argument("config", type=Path)
    validate.add_argument("--check-connections", action="store_true",
                          help="also check that every source directory exists and every destination "
                          "answers (exit 1 if any does not, after reporting them all)")
    validate.set_defaults(handler=_validate)

    demo = commands.add_parser("demo", help="write a workload of segments with every CQL type and change kind, "
                               "replicate it into embedded PostgreSQL and chDB, print a summary (no servers needed)")
    demo.add_argument("--rows", type=int, default=100_000, help="row changes to generate (default 100000)")
    demo.add_argument("--out", type=Path, help="keep the segments in this directory (default: a temp dir)")
    demo.set_defaults(handler=_demo)


# --- validate --------------------------------------------------------------------------------------


def _validate(args) -> int:
    config = load(args.config)
    print(json.dumps(config.redacted_dict(), indent=2))
    if not args.check_connections:
        return EXIT_OK
    from ray_cdc.cli.stores import opened
    from ray_cdc.errors import RayCdcError

    failures = []
    for index, source in enumerate(config.sources):
        problem = source_problem(index, source)
        if problem is None:
            print(f"ok: node {source.name}: {source.commitlog_dir}")
        else:
            failures.append(f"{type(problem).__name__}: {problem}")
    for name in config.destinations:
        try:
            with opened(config, name) as stores:
                print(f"ok: destination {name}: {stores[0].endpoint}")
        except RayCdcError as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
    for failure in failures:
        print(f"ray-cdc: error: {failure}", file=sys.stderr)
    return EXIT_ERROR if failures else EXIT_OK


# --- run -------------------------------------------------------------------------------------------


def _run(args) -> int:
    from ray_cdc.pipeline.run import replicate, stop_on_signals

    config = load(args.config)
    if not os.environ.get("RAY_ADDRESS"):  # on a cluster the directories are on the Cassandra hosts
        check_sources(config)
    logging.getLogger("ray_cdc").setLevel(logging.INFO)
    logging.getLogger(__name__).info("configuration: %s", json.dumps(config.redacted_dict()))
    # a signal before Ray starts is a stop request too; ray.init replaces the SIGTERM handler with
    # one that exits at once (nothing is in flight yet), so ours is put back right after it
    stop = stop_on_signals()
    _warn_unreachable(config)
    init_ray(config.pipeline)
    stop = _keep_handlers(stop)
    if args.once:
        with PipelineWatcher(ProgressLine(sys.stderr), local_segments(config), list(config.destinations)):
            passes = replicate(config, once=True, stop=stop)
    else:
        passes = replicate(config, once=False, stop=stop)
    rows = sum(r["rows"] for p in passes for r in p.readers)
    stopped = " (stopped on request: every change set in flight committed)" if stop.is_set() else ""
    print(f"replicated {rows} row changes in {len(passes)} pass(es){stopped}")
    return EXIT_OK


def _warn_unreachable(config) -> None:
    from ray_cdc.cli.stores import preflight

    for down in preflight(config):
        print(f"ray-cdc: warning: {down} (the pipeline retries it; the other destinations go on)",
              file=sys.stderr)


def local_segments(config) -> list:
    """The segments in the source directories this machine has (on a cluster, maybe none)."""
    from ray_cdc.cli.inventory import node_segments

    return [s for source in config.sources if Path(source.commitlog_dir).is_dir()
            for s in node_segments(source.name, Path(source.commitlog_dir))]


def _keep_handlers(stop):
    """ray.init may have installed its own SIGTERM handler: put ours back (a stop already requested
    is kept)."""
    from ray_cdc.pipeline.run import stop_on_signals

    again = stop_on_signals()
    if stop.is_set():
        again.set()
    return again


# --- demo ------------------------------------------------------------------------------------------


def _demo(args) -> int:
    """Generate a workload, replicate it on a local Ray into embedded PostgreSQL and chDB, and show
    what each destination holds."""
    from ray_cdc.commitlog import workload
    from ray_cdc.pipeline.run import EmbeddedServers, replicate

    with tempfile.TemporaryDirectory(prefix="ray-cdc-demo-") as tmp:
        out = args.out or Path(tmp)
        t0 = time.perf_counter()
        summary = workload.generate(out / "cdc_raw", rows=args.rows, tables=workload.demo_tables())
        print(f"wrote {args.rows} row changes of every CQL type and change kind "
              f"({summary.data_bytes / 2**20:.1f} MiB of mutations) in {time.perf_counter() - t0:.1f} s")
        config_path = out / "config.yaml"
        config_path.write_text(_DEMO_CONFIG)
        config = load(config_path)
        init_ray(config.pipeline)
        servers = EmbeddedServers()
        t1 = time.perf_counter()
        with PipelineWatcher(ProgressLine(sys.stderr), local_segments(config), list(config.destinations)):
            passes = replicate(config, once=True, servers=servers)
        elapsed = time.perf_counter() - t1
        rows = sum(r["rows"] for p in passes for r in p.readers)
        print(f"replicated {rows} row changes into PostgreSQL and ClickHouse in {elapsed:.1f} s "
              f"({rows / elapsed:,.0f} rows/s, Ray startup included)")
        _print_counts(config, servers, workload.demo_tables())
        print("the same with your own servers: set destinations in a config file (see examples/config.yaml) "
              "and run: ray-cdc run config.yaml")
    return EXIT_OK


_DEMO_CONFIG = """\
# written by `ray-cdc demo`: the embedded defaults (pgserver + chDB), no servers to set up
sources:
  - name: demo
    commitlog_dir: cdc_raw
schema:
  cql_file: cdc_raw/schema.cql
pipeline:
  batch_rows: 20000
  state_dir: state
observability:
  port: 0  # any free port: a pipeline already serving the default one must not stop the demo
"""


def _print_counts(config, servers, tables) -> None:
    """Live rows per table in each destination (the embedded ones, reachable from here)."""
    import psycopg

    from ray_cdc.destinations.clickhouse import ClickHouseDestination
    from ray_cdc.destinations.postgres.ddl import names_for, qi

    pg = config.destinations["postgres"]
    clickhouse = ClickHouseDestination(config.destinations["clickhouse"].dsn.get_secret_value(), name="demo")
    clickhouse.open()
    with psycopg.connect(servers.dsn(pg.embedded_dir)) as conn:
        print(f"  {'table':32s} {'PostgreSQL':>10s} {'ClickHouse':>10s}  (live rows)")
        for table in tables:
            names = names_for(table, pg.db_schema)
            in_pg = conn.execute(f"SELECT count(*) FROM {qi(names.schema)}.{qi(names.rows.view)}").fetchone()[0]
            in_ch = clickhouse.live_count(table)
            print(f"  {table.qualified_name:32s} {in_pg:>10,} {in_ch:>10,}")
    clickhouse.close()
