"""`ray-cdc offsets show | reset`: the committed offsets of every destination, and moving a node's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ray_cdc.cli.common import EXIT_NEEDS_CONFIRMATION, EXIT_OK, OffsetResetError, UnknownNameError, load
from ray_cdc.cli.inventory import node_segments
from ray_cdc.cli.reset_plan import describe, plan_reset
from ray_cdc.cli.stores import opened

RESET_HELP = """\
Move one node's committed offsets to SEGMENT_ID:OFFSET in each destination (or just --destination),
in one transaction per destination (ClickHouse: a synchronous delete, then the new rows). Segment
SEGMENT_ID resumes after OFFSET; the node's later segments are read again from their start; its
earlier ones count as fully applied. Forward skips changes; backward re-applies them, which is safe:
every destination keeps, per column, the value with the highest writetime (Cassandra's last writer
wins), so a change applied twice leaves the same rows. Stop the pipeline first: a running writer
keeps its own view of the offsets, so with --yes the command refuses (exit 1) while a pipeline
answers at observability.host:port. Without --yes nothing changes: the plan is printed and the exit
code is 4."""


def add_commands(commands) -> None:
    offsets = commands.add_parser("offsets", help="show or move the committed offsets of the destinations",
                                  description="Committed offsets: per destination and partition "
                                  "(node/segment), the position up to which changes are applied.")
    sub = offsets.add_subparsers(title="offsets commands", metavar="SUBCOMMAND")
    show = sub.add_parser("show", help="committed offsets per destination and partition")
    show.add_argument("config", type=Path, help="YAML configuration")
    show.add_argument("--destination", metavar="NAME", help="only this destination (a key of destinations)")
    show.add_argument("--json", action="store_true", help="one JSON object: destination -> partition -> offset")
    show.set_defaults(handler=_show)

    reset = sub.add_parser("reset", help="move a node's offsets forward or back (needs --yes)",
                           description=RESET_HELP)
    reset.add_argument("config", type=Path, help="YAML configuration")
    reset.add_argument("--node", required=True, help="the node (a sources[].name)")
    reset.add_argument("--to", required=True, metavar="SEGMENT_ID:OFFSET", help="the new position")
    reset.add_argument("--destination", metavar="NAME", help="only this destination (default: every one)")
    reset.add_argument("--yes", action="store_true", help="apply the change (without it: print the plan only)")
    reset.set_defaults(handler=_reset)


def _show(args) -> int:
    config = load(args.config)
    with opened(config, args.destination) as stores:
        books = {store.name: store.committed_offsets() for store in stores}
    if args.json:
        print(json.dumps({name: {pid: {"node": o.node, "segment_id": o.segment_id, "position": o.position,
                                       "completed": o.completed} for pid, o in sorted(book.items())}
                          for name, book in books.items()}, indent=2))
        return EXIT_OK
    for name, book in books.items():
        print(f"{name}: {len(book)} partition(s), {sum(o.completed for o in book.values())} completed")
        for pid, offset in sorted(book.items(), key=lambda item: (item[1].node, item[1].segment_id)):
            print(f"  {pid:40s} {describe(offset)}")
    return EXIT_OK


def _reset(args) -> int:
    from ray_cdc.commitlog.position import CommitLogPosition

    config = load(args.config)
    try:
        target = CommitLogPosition.parse(args.to)
    except ValueError:
        raise OffsetResetError(f"--to {args.to!r}: expected SEGMENT_ID:OFFSET (as `offsets show` prints "
                               "them, e.g. 1699285478684:1776)") from None
    sources = {s.name: s for s in config.sources}
    if args.node not in sources:
        raise UnknownNameError(f"--node {args.node!r} is not configured; nodes (sources[].name) are: "
                               f"{', '.join(sources)}")
    directory = Path(sources[args.node].commitlog_dir)
    ends = {s.segment_id: s.end for s in node_segments(args.node, directory)} if directory.is_dir() else {}
    with opened(config, args.destination) as stores:
        plans = [(store, plan_reset(args.node, target, store.committed_offsets(), ends)) for store in stores]
        for store, plan in plans:
            print(f"{store.name}: " + ("already there" if plan.empty else f"{len(plan.changes)} partition(s)"))
            for line in plan.changes:
                print(f"  {line}")
        if target.segment_id not in ends:
            print(f"note: segment {target.segment_id} is not in {directory}: nothing of it will be read")
        if not args.yes:
            print("nothing changed: run again with --yes to apply", file=sys.stderr)
            return EXIT_NEEDS_CONFIRMATION
        _refuse_while_running(config)
        for store, plan in plans:
            if not plan.empty:
                store.rewrite_offsets(plan.set, plan.drop)
                print(f"{store.name}: offsets of node {args.node} moved to {target}")
    return EXIT_OK


def _refuse_while_running(config) -> None:
    """Its writers hold the offsets in memory and only move them forward: a reset under a running
    pipeline would be overwritten or, worse, half-kept."""
    from ray_cdc.cli.status import running_at

    url = running_at(config.observability)
    if url is not None:
        raise OffsetResetError(f"a pipeline answers at {url}: stop it (SIGTERM) before resetting offsets, "
                               "then start it again")
