"""`ray-cdc` command line.

Exit codes: 0 success (for `run`, also after SIGTERM/SIGINT: the change sets in flight were committed
with their offsets); 1 the input or a service was wrong (a typed ray_cdc error, printed on one
line with what and where); 2 the command line itself was wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from ray_cdc.errors import RayCdcError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
KEYSTORE_PASSWORD_ENV = "RAY_CDC_KEYSTORE_PASSWORD"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if not args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.handler(args) or EXIT_OK
    except RayCdcError as e:
        print(f"ray-cdc: error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `ray-cdc segments dump ... | head`
        sys.stderr.close()
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ray-cdc", description=__doc__.splitlines()[0] + " Replicates "
                                     "Apache Cassandra changes into PostgreSQL, TimescaleDB and ClickHouse.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = commands.add_parser("run", help="replicate the segments of every configured node into every "
                              "destination, on the connected Ray cluster (or a local one)")
    run.add_argument("config", type=Path, help="YAML configuration (see examples/config.yaml)")
    run.add_argument("--once", action="store_true", help="one pass over what is durable now, then exit "
                     "(default: keep following until SIGTERM/SIGINT)")
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="check a configuration file without running anything")
    validate.add_argument("config", type=Path)
    validate.set_defaults(handler=_validate)

    demo = commands.add_parser("demo", help="write a workload of segments with every CQL type and change kind, "
                               "decode it, and print a summary (no servers needed)")
    demo.add_argument("--rows", type=int, default=100_000, help="row changes to generate (default 100000)")
    demo.add_argument("--out", type=Path, help="keep the segments in this directory (default: a temp dir)")
    demo.set_defaults(handler=_demo)

    segments = commands.add_parser("segments", help="read and write commitlog segment files")
    seg_commands = segments.add_subparsers(title="segments commands", metavar="SUBCOMMAND")
    dump = seg_commands.add_parser("dump", help="print one JSON object per line for each row change")
    dump.add_argument("files", nargs="+", type=Path, metavar="FILE", help="segment files (CommitLog-<v>-<id>.log)")
    source = dump.add_mutually_exclusive_group()
    source.add_argument("--schema", type=Path, metavar="CQLFILE",
                        help="table schemas from CQL DDL (DESCRIBE ... WITH INTERNALS gives the table ids)")
    source.add_argument("--schema-from-log", action="store_true",
                        help="table schemas from the system_schema mutations in the segments themselves")
    source.add_argument("--cassandra", metavar="HOST[:PORT]", help="table schemas from a live cluster")
    dump.add_argument("--keystore", type=Path, help="keystore (JCEKS or PKCS12) for encrypted segments")
    dump.add_argument("--keystore-password", help=f"keystore password (or set ${KEYSTORE_PASSWORD_ENV})")
    dump.add_argument("--start", metavar="SEGMENT_ID:OFFSET", help="resume after this position")
    dump.add_argument("--unknown-tables", choices=("raise", "skip"), default="raise",
                      help="a mutation of a table with no schema: stop with an error (default) or skip it "
                      "and report the count at the end")
    dump.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                      help="damaged data: stop with an error (default) or skip it and report what was skipped")
    dump.set_defaults(handler=_dump)

    gen = seg_commands.add_parser("generate", help="write a workload of valid segments and a schema.cql beside them")
    gen.add_argument("--out", type=Path, required=True, help="output directory")
    gen.add_argument("--rows", type=int, required=True, help="number of row changes")
    gen.add_argument("--descriptor-version", type=int, choices=(6, 7, 8), default=7)
    gen.add_argument("--compression", choices=("none", "lz4", "snappy", "deflate", "zstd"), default="none")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--tables", choices=("demo", "wide"), default="demo",
                     help="demo: every CQL type and change kind; wide: 10-column rows of mixed types")
    gen.add_argument("--segment-size", type=int, default=32, metavar="MIB")
    gen.set_defaults(handler=_generate)
    return parser


# --- run and validate ---------------------------------------------------------------------------------


def _validate(args) -> int:
    from ray_cdc.config import load_config

    config = load_config(args.config)
    print(json.dumps(config.redacted_dict(), indent=2))
    return EXIT_OK


def _run(args) -> int:
    from ray_cdc.config import load_config
    from ray_cdc.pipeline.run import replicate, stop_on_signals

    config = load_config(args.config)
    logging.getLogger("ray_cdc").setLevel(logging.INFO)
    logging.getLogger(__name__).info("configuration: %s", json.dumps(config.redacted_dict()))
    # a signal before Ray starts is a stop request too; ray.init replaces the SIGTERM handler with
    # one that exits at once (nothing is in flight yet), so ours is put back right after it
    stop = stop_on_signals()
    _init_ray()
    stop = _keep_handlers(stop)
    passes = replicate(config, once=args.once, stop=stop)
    rows = sum(r["rows"] for p in passes for r in p.readers)
    stopped = " (stopped on request: every change set in flight committed)" if stop.is_set() else ""
    print(f"replicated {rows} row changes in {len(passes)} pass(es){stopped}")
    return EXIT_OK


def _keep_handlers(stop):
    """ray.init may have installed its own SIGTERM handler: put ours back (a stop already requested
    is kept)."""
    from ray_cdc.pipeline.run import stop_on_signals

    again = stop_on_signals()
    if stop.is_set():
        again.set()
    return again


def _init_ray() -> None:
    """Join the cluster of `ray job submit` / RAY_ADDRESS, else start a local one."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local run: no dashboard token to hand out
    if not ray.is_initialized():
        # "local", not None: a bare init would join whatever cluster a stale ray_current_cluster names
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False,
                 log_to_driver=False, configure_logging=False)


# --- segments dump ----------------------------------------------------------------------------------


def _dump(args) -> int:
    from ray_cdc.commitlog.position import CommitLogPosition
    from ray_cdc.commitlog.reader import CommitLogReader

    reader = CommitLogReader(
        _registry(args), keystore=_keystore(args), schema_from_log=args.schema_from_log,
        unknown_tables=args.unknown_tables, on_error=args.on_error,
    )
    start = CommitLogPosition.parse(args.start) if args.start else None
    out = sys.stdout
    for change in reader.changes(args.files, start=start):
        out.write(json.dumps(change.to_json(), ensure_ascii=False))
        out.write("\n")
    _report(reader, verbose=args.verbose)
    return EXIT_OK


_COMPLETED = {True: "complete", False: "still being written", None: "no _cdc.idx"}


def _report(reader, *, verbose: bool) -> None:
    for s in reader.summaries:
        report = s.report
        if verbose and report is not None:
            print(f"ray-cdc: {s.path}: {report.entries} entries, {s.mutations} mutations decoded, "
                  f"{s.system_mutations} of system tables, last position {report.last_position}, "
                  f"{_COMPLETED[report.completed]}", file=sys.stderr)
        if s.unknown_tables:
            print(f"ray-cdc: {s.path}: skipped mutations of unknown tables: {dict(s.unknown_tables)}", file=sys.stderr)
        report = s.report
        if report is not None and report.problems:
            for problem in report.problems:
                print(f"ray-cdc: {s.path}: skipped: {problem}", file=sys.stderr)
            print(f"ray-cdc: {s.path}: {report.bytes_skipped} bytes skipped", file=sys.stderr)


def _registry(args):
    from ray_cdc.schema.registry import SchemaRegistry

    if args.schema:
        from ray_cdc.schema.cql import load_cql_schema

        return SchemaRegistry(load_cql_schema(args.schema))
    if args.cassandra:
        from ray_cdc.schema.cluster import load_cluster_schema

        host, _, port = args.cassandra.partition(":")
        return SchemaRegistry(load_cluster_schema([host], port=int(port or 9042)))
    return SchemaRegistry()


def _keystore(args):
    if not args.keystore:
        return None
    from ray_cdc.commitlog.encryption import Keystore

    password = args.keystore_password or os.environ.get(KEYSTORE_PASSWORD_ENV)
    if password is None:
        raise SystemExit(f"ray-cdc: error: --keystore needs --keystore-password or ${KEYSTORE_PASSWORD_ENV}")
    return Keystore.open(args.keystore, password)


# --- segments generate and demo ---------------------------------------------------------------------


def _generate(args) -> int:
    from ray_cdc.commitlog import workload

    tables = workload.demo_tables() if args.tables == "demo" else [workload.wide_table()]
    summary = workload.generate(
        args.out, rows=args.rows, tables=tables, seed=args.seed, descriptor_version=args.descriptor_version,
        compression=None if args.compression == "none" else args.compression,
        segment_size=args.segment_size << 20,
    )
    print(json.dumps(_summary_json(summary), indent=2))
    return EXIT_OK


def _summary_json(summary) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(summary).items()
            if isinstance(v, (int, float, str, dict, Path))}


def _demo(args) -> int:
    """Generate a workload, replicate it on a local Ray into embedded PostgreSQL and chDB, and show
    what each destination holds."""
    from ray_cdc.commitlog import workload
    from ray_cdc.config import load_config
    from ray_cdc.pipeline.run import EmbeddedServers, replicate

    with tempfile.TemporaryDirectory(prefix="ray-cdc-demo-") as tmp:
        out = args.out or Path(tmp)
        t0 = time.perf_counter()
        summary = workload.generate(out / "cdc_raw", rows=args.rows, tables=workload.demo_tables())
        print(f"wrote {args.rows} row changes of every CQL type and change kind "
              f"({summary.data_bytes / 2**20:.1f} MiB of mutations) in {time.perf_counter() - t0:.1f} s")
        config_path = out / "config.yaml"
        config_path.write_text(_DEMO_CONFIG)
        config = load_config(config_path)
        _init_ray()
        servers = EmbeddedServers()
        t1 = time.perf_counter()
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


if __name__ == "__main__":
    sys.exit(main())
