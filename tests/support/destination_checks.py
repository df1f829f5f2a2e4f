"""Compare what a pipeline run left in its destinations with the oracle (tests.support.expected_state).

For tests that run the pipeline only through its public entry points (`ray-cdc run`, `ray job submit`,
`replicate`) and then look at the destinations from outside:

    states = oracle(segment_dirs)                        # keyspace.table -> TableState
    check_postgres(dsn, name, schema, tables, states)    # also for TimescaleDB's plain tables
    check_clickhouse(chdb_dir, tables, states)           # the __live views, at now
    completed_segments(dsn, name)                        # progress of a PostgreSQL destination

The column-by-column comparisons are the destinations' own test helpers (tests/integration/
test_postgres_destination.py `compare`, test_clickhouse_destination.py `expected_rows`), so a change of a
destination's layout is followed here without edits.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from ray_cdc.commitlog.reader import CommitLogReader, sort_segments
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry
from tests.support.expected_state import expected_state


def oracle(*segment_dirs: Path) -> dict:
    """The expected final state of every table after every change of every directory (replicas of
    the same node log the same mutations: applying them twice changes nothing)."""
    states = None
    for directory in segment_dirs:
        reader = CommitLogReader(SchemaRegistry(load_cql_schema(Path(directory) / "schema.cql")))
        changes = reader.changes(sort_segments(Path(directory).glob("CommitLog-*.log")))
        if states is None:
            states = expected_state(changes)
        else:
            for change in changes:
                states[change.table.qualified_name].apply(change)
    return states


def check_postgres(dsn: str, name: str, schema: str, tables, states) -> dict[str, int]:
    """Every table (and its static rows) equal to the oracle, column by column; live rows per table."""
    from ray_cdc.destinations.postgres import PostgresDestination
    from tests.integration.test_postgres_destination import compare

    destination = PostgresDestination(dsn, name=name, schema=schema)
    destination.open()
    try:
        rows = {}
        for table in tables:
            state = states[table.qualified_name]
            rows[table.qualified_name] = compare(destination, table, state)["rows"]
            if table.static:
                compare(destination, table, state, static=True)
        return rows
    finally:
        destination.close()


def completed_segments(dsn: str, name: str) -> tuple[int, int]:
    """(segments completely committed, offsets recorded) of the PostgreSQL destination `name`."""
    from ray_cdc.destinations.postgres import PostgresDestination

    destination = PostgresDestination(dsn, name=name)
    destination.open()
    try:
        offsets = destination.committed_offsets()
    finally:
        destination.close()
    return sum(1 for o in offsets.values() if o.completed), len(offsets)


def open_clickhouse(chdb_dir: Path, name: str, timeout: float = 60.0):
    """The ClickHouse destination on `chdb_dir`, once no other process holds the directory (a finished
    Ray job's workers may take a moment to exit)."""
    from ray_cdc.destinations.clickhouse import ClickHouseDestination

    deadline = time.monotonic() + timeout
    while True:
        destination = ClickHouseDestination(f"chdb://{chdb_dir}", name=name, database="default")
        try:
            destination.open()
            return destination
        except Exception:  # the directory still locked: retry until the deadline
            destination.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def check_clickhouse(chdb_dir: Path, name: str, tables, states, now: datetime | None = None) -> dict[str, int]:
    """Every table's `__live` view equal to the oracle at `now` (each key once: nothing doubled);
    live rows per table. Closes chDB afterwards, so the process can open another directory."""
    from ray_cdc.destinations.clickhouse.forms import from_stored
    from ray_cdc.destinations.clickhouse.store import stored_schema
    from tests.integration.test_clickhouse_destination import _normal, expected_rows

    now = now or datetime.now(timezone.utc)
    destination = open_clickhouse(chdb_dir, name)
    try:
        counts = {}
        for table in tables:
            schema = stored_schema(table)
            schema = pa.schema([schema.field(n) for n in schema.names if not n.startswith("_")])
            stored = destination.client.query_arrow(f"SELECT * FROM `{table.keyspace}`.`{table.name}__live`")
            rows = from_stored(stored, schema).to_pylist()
            key_names = [c.name for c in (*table.partition_key, *table.clustering)]
            actual = {tuple(r[k] for k in key_names): {n: v for n, v in r.items()
                                                       if n not in key_names and not n.startswith("_")}
                      for r in rows}
            assert len(actual) == len(rows), f"{table.name}: {len(rows) - len(actual)} keys appear more than once"
            expected = expected_rows(table, states[table.qualified_name], now)
            only_ch, only_expected = set(actual) - set(expected), set(expected) - set(actual)
            assert not only_ch and not only_expected, (
                f"{table.name}: {len(only_ch)} keys only in ClickHouse, e.g. "
                f"{[(k, actual[k]) for k in sorted(only_ch, key=repr)[:2]]}; {len(only_expected)} only in the "
                f"oracle, e.g. {[(k, expected[k]) for k in sorted(only_expected, key=repr)[:2]]}")
            differing = [k for k in expected if _normal(actual[k]) != _normal(expected[k])]
            assert not differing, (table.name, f"{len(differing)} rows differ", [
                (k, {n: (expected[k][n], actual[k][n]) for n in expected[k] if expected[k][n] != actual[k][n]})
                for k in differing[:2]])
            counts[table.qualified_name] = len(rows)
        return counts
    finally:
        destination.close()
