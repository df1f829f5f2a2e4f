"""Checks shared by the pipeline's integration tests: a destination equal to the oracle."""

from __future__ import annotations

from datetime import datetime, timezone

from ray_cdc.commitlog.workload import demo_tables
from tests.integration.test_clickhouse_destination import _normal, expected_rows, live_rows
from tests.integration.test_postgres_destination import compare


def assert_postgres_equals_oracle(destination, states, tables=None) -> None:
    for table in tables or demo_tables():
        compare(destination, table, states[table.qualified_name])
        if table.static:
            compare(destination, table, states[table.qualified_name], static=True)


def assert_clickhouse_equals_oracle(destination, states, tables=None) -> None:
    """The `__live` views equal the oracle's live rows now (what a reader of ClickHouse sees)."""
    now = datetime.now(timezone.utc)
    for table in tables or demo_tables():
        destination.ensure_table(table)
        expected = expected_rows(table, states[table.qualified_name], now)
        key_names = {c.name for c in (*table.partition_key, *table.clustering)}
        actual = {k: {n: v for n, v in r.items() if not n.startswith("_") and n not in key_names}
                  for k, r in live_rows(destination, table).items()}
        assert set(actual) == set(expected), (table.name, sorted(set(actual) ^ set(expected), key=repr)[:3])
        mismatched = [k for k in expected if _normal(actual[k]) != _normal(expected[k])]
        assert not mismatched, (table.name, len(mismatched), mismatched[:3])


def progress(offsets: dict) -> tuple[int, int]:
    """(completed partitions, sum of positions): grows whenever a destination commits anything."""
    return sum(o.completed for o in offsets.values()), sum(o.position for o in offsets.values())
