"""Checks shared by the pipeline's integration tests: a destination equal to the oracle, and two
nodes' directories holding the same workload (RF=2), every change kind included.

TTL inserts matter here: replicas' sets interleave and a catching-up destination applies segments
late, which is exactly when ClickHouse's physical expiry once let an older version reappear
(fixed: `_purge_at` in destinations/clickhouse/ddl.py)."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import pytest

from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.commitlog.workload import DEFAULT_MIX, demo_tables, generate
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.test_clickhouse_destination import _normal, expected_rows, live_rows
from tests.integration.test_postgres_destination import compare
from tests.support.expected_state import TableState, expected_state


def state_of(states, table) -> TableState:
    """The oracle's state of `table`: empty when no change of it was covered (a run stopped early)."""
    return states.get(table.qualified_name) or TableState(table)


def assert_postgres_equals_oracle(destination, states, tables=None) -> None:
    for table in tables or demo_tables():
        compare(destination, table, state_of(states, table))
        if table.static:
            compare(destination, table, state_of(states, table), static=True)


def assert_clickhouse_equals_oracle(destination, states, tables=None) -> None:
    """The `__live` views equal the oracle's live rows now (what a reader of ClickHouse sees)."""
    now = datetime.now(timezone.utc)
    for table in tables or demo_tables():
        destination.ensure_table(table)
        expected = expected_rows(table, state_of(states, table), now)
        key_names = {c.name for c in (*table.partition_key, *table.clustering)}
        actual = {k: {n: v for n, v in r.items() if not n.startswith("_") and n not in key_names}
                  for k, r in live_rows(destination, table).items()}
        assert set(actual) == set(expected), (table.name, sorted(set(actual) ^ set(expected), key=repr)[:3])
        mismatched = [k for k in expected if _normal(actual[k]) != _normal(expected[k])]
        assert not mismatched, (table.name, len(mismatched), mismatched[:3])


def assert_postgres_and_clickhouse_equal_oracle(pg, ch_dsn: str, states, partitions: int) -> None:
    """PostgreSQL (`pg`, open) and the chDB at `ch_dsn` (database `default`, destination `ch`) equal
    the oracle, each with `partitions` offsets, all completed (every segment applied once)."""
    from ray_cdc.destinations.clickhouse import ClickHouseDestination

    assert_postgres_equals_oracle(pg, states)
    ch = ClickHouseDestination(ch_dsn, name="ch", database="default")
    ch.open()
    try:
        assert_clickhouse_equals_oracle(ch, states)
        for destination in (pg, ch):
            offsets = destination.committed_offsets()
            assert len(offsets) == partitions and all(o.completed for o in offsets.values()), destination.name
    finally:
        ch.close()


def progress(offsets: dict) -> tuple[int, int]:
    """(completed partitions, sum of positions): grows whenever a destination commits anything."""
    return sum(o.completed for o in offsets.values()), sum(o.position for o in offsets.values())


@pytest.fixture(scope="module")
def replica_nodes(tmp_path_factory):
    """Two nodes' directories with the same default-mix workload (TTL inserts included)."""
    return write_replicas(tmp_path_factory.mktemp("nodes"), rows=4000, seed=21)


def write_replicas(root, *, rows: int, seed: int):
    """`root/a` and `root/b` holding the same default-mix workload: (root, schema, oracle, segments per node)."""
    summary = generate(root / "a", rows=rows, tables=demo_tables(), seed=seed, segment_size=256 << 10,
                       preallocate=False, mix=DEFAULT_MIX)
    shutil.copytree(root / "a", root / "b")
    schema = load_cql_schema(root / "a" / "schema.cql")
    changes = list(CommitLogReader(SchemaRegistry(schema)).changes(summary.segments))
    return root, schema, expected_state(changes), len(summary.segments)
