"""ClickHouse applies changes that arrive out of writetime order (replicas' segments, several writers,
a replayed backlog) to the same result as Cassandra, TTLs included: a newer version whose TTL has
passed still shadows the older changes that arrive after it (real chDB, the oracle of the workload)."""

from __future__ import annotations

import pytest

from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.commitlog.workload import demo_tables, generate
from ray_cdc.destinations.clickhouse import ClickHouseDestination
from ray_cdc.pipeline.writing import DestinationWriter
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.pipeline_checks import assert_clickhouse_equals_oracle
from tests.support.expected_state import expected_state

ORDERS = {
    "dealt": lambda segments: segments[0::3] + segments[1::3] + segments[2::3],  # three replicas, one by one
    "reversed": lambda segments: segments[::-1],
}


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """The default mix (TTL inserts included, their TTLs long past) over many small segments."""
    root = tmp_path_factory.mktemp("ooo")
    summary = generate(root / "log", rows=6000, tables=demo_tables(), seed=33, segment_size=128 << 10,
                       preallocate=False)
    reader = CommitLogReader(SchemaRegistry(load_cql_schema(root / "log" / "schema.cql")))
    segments = sorted(summary.segments)
    assert len(segments) >= 9
    return reader, segments, expected_state(list(reader.changes(segments)))


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_segments_out_of_writetime_order_give_the_oracles_rows(workload, tmp_path, order):
    reader, segments, states = workload
    destination = ClickHouseDestination(f"chdb://{tmp_path / 'ch'}", name="ch", database="default")
    destination.open()
    try:
        writer = DestinationWriter(destination)
        writer.start()
        for segment in ORDERS[order](segments):
            for change_set in reader.change_sets(segment):
                writer.apply("n1", change_set)
        for table in demo_tables():  # TTL merges now, as ClickHouse may run them at any time
            destination.client.command(f"OPTIMIZE TABLE `{table.keyspace}`.`{table.name}` FINAL")
        assert_clickhouse_equals_oracle(destination, states)
    finally:
        destination.close()
