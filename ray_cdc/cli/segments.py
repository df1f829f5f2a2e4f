"""`ray-cdc segments dump | generate | list`: read, write and inventory commitlog segment files."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ray_cdc.cli.common import EXIT_OK, check_sources, load

KEYSTORE_PASSWORD_ENV = "RAY_CDC_KEYSTORE_PASSWORD"


def add_commands(commands) -> None:
    segments = commands.add_parser("segments", help="read, write and list commitlog segment files")
    sub = segments.add_subparsers(title="segments commands", metavar="SUBCOMMAND")
    _add_dump(sub)
    _add_generate(sub)
    listing = sub.add_parser("list", help="each node's segments with size and state (committed by every "
                             "destination / partially / pending)")
    listing.add_argument("config", type=Path, help="YAML configuration")
    listing.add_argument("--json", action="store_true", help="one JSON object per segment and line")
    listing.set_defaults(handler=_list)


def _add_dump(sub) -> None:
    dump = sub.add_parser("dump", help="print one JSON object per line for each row change")
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


def _add_generate(sub) -> None:
    gen = sub.add_parser("generate", help="write a workload of valid segments and a schema.cql beside them")
    gen.add_argument("--out", type=Path, required=True, help="output directory")
    gen.add_argument("--rows", type=int, required=True, help="number of row changes")
    gen.add_argument("--descriptor-version", type=int, choices=(6, 7, 8), default=7)
    gen.add_argument("--compression", choices=("none", "lz4", "snappy", "deflate", "zstd"), default="none")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--tables", choices=("demo", "wide"), default="demo",
                     help="demo: every CQL type and change kind; wide: 10-column rows of mixed types")
    gen.add_argument("--segment-size", type=int, default=32, metavar="MIB")
    gen.set_defaults(handler=_generate)


# --- list ------------------------------------------------------------------------------------------


def _list(args) -> int:
    from ray_cdc.cli.inventory import node_segments, segment_state
    from ray_cdc.cli.stores import opened

    config = load(args.config)
    check_sources(config)
    with opened(config) as stores:
        committed = {store.name: store.committed_offsets() for store in stores}
    for source in config.sources:
        segments = node_segments(source.name, Path(source.commitlog_dir))
        if not args.json:
            print(f"node {source.name}: {len(segments)} segment(s) in {source.commitlog_dir}")
        for s in segments:
            state, owed = segment_state(s.partition_id, committed)
            if args.json:
                print(json.dumps({"node": s.node, "segment_id": s.segment_id, "path": str(Path(source.commitlog_dir) / s.name),
                                  "bytes": s.size, "state": state, "owed_to": owed}))
            else:
                detail = f"  (still owed to {', '.join(owed)})" if state == "partial" else ""
                print(f"  {s.segment_id:>16} {s.size / 2**20:9.1f} MiB  {state}{detail}")
    return EXIT_OK


# --- dump ------------------------------------------------------------------------------------------


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


# --- generate --------------------------------------------------------------------------------------


def _generate(args) -> int:
    from ray_cdc.commitlog import workload

    tables = workload.demo_tables() if args.tables == "demo" else [workload.wide_table()]
    summary = workload.generate(
        args.out, rows=args.rows, tables=tables, seed=args.seed, descriptor_version=args.descriptor_version,
        compression=None if args.compression == "none" else args.compression,
        segment_size=args.segment_size << 20,
    )
    print(json.dumps(summary_json(summary), indent=2))
    return EXIT_OK


def summary_json(summary) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(summary).items()
            if isinstance(v, (int, float, str, dict, Path))}
