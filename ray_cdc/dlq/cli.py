"""`ray-cdc dlq list | show | replay | purge`: the dead-letter queue of a configuration.

Every command opens the store `dlq:` configures (a directory of Arrow files, or a PostgreSQL table).
`replay` re-drives entries through their destination's write path (`replay.py`) and removes each one
once written; `purge` deletes entries without replaying them and needs --yes. Filters narrow every
command but `show`; they combine with AND.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ray_cdc.cli.common import EXIT_ERROR, EXIT_NEEDS_CONFIRMATION, EXIT_OK, load
from ray_cdc.dlq import render
from ray_cdc.dlq.entry import utc_now
from ray_cdc.dlq.store import DeadLetterFilter

_DAYS = re.compile(r"^(\d+(?:\.\d+)?)\s*d$", re.IGNORECASE)

REPLAY_HELP = """\
Write the matching entries to their destinations again, through the destination's own type mapping
and the writer's write path (no offset moves), after fixing what refused them. Each entry is removed
once its rows are written; rows refused again stay, with attempts + 1 and the new reason. Replaying
twice, or again after a crash, is harmless: destinations keep each column's newest write (by
writetime), so a replayed row never overwrites newer data. The payload is replayed as stored: it was
masked for its destination already, and is not masked again. Exit code 1 when an entry is left."""


def add_commands(commands) -> None:
    dlq = commands.add_parser("dlq", help="list, show, replay or purge the rows destinations refused",
                              description=__doc__.splitlines()[0])
    sub = dlq.add_subparsers(title="dlq commands", metavar="SUBCOMMAND")

    listing = sub.add_parser("list", help="the matching entries, oldest first")
    _config_and_filters(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per entry and line")
    listing.set_defaults(handler=lambda args: list_entries(load(args.config), filter_of(args), as_json=args.json))

    show = sub.add_parser("show", help="one entry: its summary, then its rows as JSON lines")
    show.add_argument("config", type=Path, help="YAML configuration")
    show.add_argument("id", help="the entry's id (as `dlq list` prints it)")
    show.set_defaults(handler=lambda args: show_entry(load(args.config), args.id))

    replay = sub.add_parser("replay", help="write the matching entries again, after a fix", description=REPLAY_HELP)
    _config_and_filters(replay)
    replay.add_argument("--dry-run", action="store_true", help="say what would be replayed; change nothing")
    replay.set_defaults(handler=lambda args: replay_entries(load(args.config), filter_of(args), dry_run=args.dry_run))

    purge = sub.add_parser("purge", help="delete the matching entries without replaying them (needs --yes)")
    _config_and_filters(purge)
    purge.add_argument("--yes", action="store_true", help="delete (without it: list what would go, exit 4)")
    purge.set_defaults(handler=lambda args: purge_entries(load(args.config), filter_of(args), yes=args.yes))


def _config_and_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="YAML configuration")
    parser.add_argument("--destination", metavar="NAME", help="entries of this destination (a key of destinations)")
    parser.add_argument("--table", metavar="KEYSPACE.TABLE", type=_table, help="entries of this Cassandra table")
    parser.add_argument("--error-class", metavar="NAME", help="entries with this error class (e.g. RejectedRow)")
    parser.add_argument("--since", metavar="WHEN", type=point_in_time,
                        help="first seen at or after WHEN: ISO 8601 (UTC unless it says) or an age (90m, 6h, 7d)")
    parser.add_argument("--until", metavar="WHEN", type=point_in_time, help="first seen before WHEN (as --since)")
    parser.add_argument("--id", metavar="ID", action="append", dest="ids", help="this entry (repeatable)")


def filter_of(args: argparse.Namespace) -> DeadLetterFilter:
    return DeadLetterFilter(destination=args.destination, table=args.table, error_class=args.error_class,
                            since=args.since, until=args.until, ids=frozenset(args.ids) if args.ids else None)


def point_in_time(text: str, now: datetime | None = None) -> datetime:
    """`2026-11-26T08:00`, `2026-11-26 08:00+01:00` (UTC when no offset is given), or an age back
    from now: `500ms`, `90s`, `30m`, `6h`, `7d`."""
    from ray_cdc.config.values import parse_duration

    now = now or utc_now()
    if days := _DAYS.match(text.strip()):
        return now - timedelta(days=float(days[1]))
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither an ISO 8601 time nor an age (90m, 6h, 7d)") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _table(text: str) -> str:
    keyspace, dot, table = text.partition(".")
    if not (keyspace and dot and table):
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEYSPACE.TABLE")
    return text


# --- the commands (config already loaded) ----------------------------------------------------------


def list_entries(config, filter: DeadLetterFilter, *, as_json: bool = False) -> int:
    with opened_store(config) as store:
        entries = store.list(filter)
    if as_json:
        for entry in entries:
            print(json.dumps(render.summary(entry)))
        return EXIT_OK
    for line in render.table_lines(entries):
        print(line)
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {sum(e.rows for e in entries)} row(s)")
    return EXIT_OK


def show_entry(config, entry_id: str) -> int:
    with opened_store(config) as store:
        entry = store.get(entry_id)  # DeadLetterNotFoundError: exit 1 with the id
    print(json.dumps(render.summary(entry), indent=2))
    for row in render.payload_rows(entry.payload):
        print(json.dumps(row))
    return EXIT_OK


def replay_entries(config, filter: DeadLetterFilter, *, dry_run: bool = False) -> int:
    from ray_cdc.dlq.replay import Replayer
    from ray_cdc.pipeline.run import EmbeddedServers, destination_factories
    from ray_cdc.pipeline.writing import RetryPolicy

    servers = EmbeddedServers()
    retry = config.retry
    # a replay reports what it could not do rather than wait forever for a destination
    policy = RetryPolicy(retry.initial_backoff, retry.max_backoff, retry.max_elapsed or 60.0)
    with opened_store(config, servers) as store:
        report = Replayer(store, destination_factories(config, servers), policy=policy).replay(
            filter, dry_run=dry_run)
    for outcome in report.outcomes:
        print(render.outcome_line(outcome))
    verb = "would replay" if dry_run else "replayed"
    done = report.count("planned" if dry_run else "replayed")
    print(f"{verb} {done} of {len(report.outcomes)} entr{'y' if len(report.outcomes) == 1 else 'ies'}, "
          f"{report.rows_written} row(s)")
    return EXIT_OK if report.complete else EXIT_ERROR


def purge_entries(config, filter: DeadLetterFilter, *, yes: bool = False) -> int:
    with opened_store(config) as store:
        entries = store.list(filter)
        if not yes:
            for line in render.table_lines(entries):
                print(line)
            print(f"would delete {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}; nothing deleted "
                  "(add --yes)")
            return EXIT_NEEDS_CONFIRMATION
        removed = store.remove([e.id for e in entries])
    print(f"deleted {removed} entr{'y' if removed == 1 else 'ies'}")
    return EXIT_OK


@contextmanager
def opened_store(config, servers=None) -> Iterator:
    """The store `config.dlq` names; an embedded PostgreSQL (`pgserver://DIR`) is started for it."""
    from ray_cdc.config.values import embedded_dir
    from ray_cdc.dlq import FileDeadLetterStore, PostgresDeadLetterStore

    dlq = config.dlq
    if dlq.type == "files":
        yield FileDeadLetterStore(dlq.dir)
        return
    directory = embedded_dir(dlq.dsn, "pgserver")
    if directory is not None:
        from ray_cdc.pipeline.run import EmbeddedServers

        dsn = (servers or EmbeddedServers()).dsn(directory)
    else:
        dsn = dlq.dsn.get_secret_value()
    store = PostgresDeadLetterStore(dsn, table=dlq.table)
    try:
        yield store
    finally:
        store.close()
