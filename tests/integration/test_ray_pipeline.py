"""The actors on a real local Ray: two Cassandra nodes' segments into PostgreSQL, equal to the oracle."""

from __future__ import annotations

import os
import uuid

import pytest
import ray

from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.commitlog.workload import demo_tables
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.pipeline.distributed import NodeSource, replicate_available_on_ray
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.test_local_pipeline import two_nodes  # noqa: F401  (module fixture)
from tests.integration.test_postgres_destination import compare


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             resources={"cassandra-node-a": 1, "cassandra-node-b": 1})
    yield
    ray.shutdown()


def test_two_nodes_replicate_through_the_actors(local_ray, postgres_server, two_nodes):  # noqa: F811
    root, schema, states, n_segments = two_nodes
    name = "r_" + uuid.uuid4().hex[:8]
    dsn = postgres_server.dsn

    def destination():
        return PostgresDestination(dsn, name=name, schema=name)

    summary = replicate_available_on_ray(
        {node: NodeSource(root / node, f"cassandra-node-{node}") for node in ("a", "b")},
        lambda node: CommitLogReader(SchemaRegistry(schema)), {"pg": destination}, batch_rows=300)
    assert sum(r["segments"] for r in summary.readers) == 2 * n_segments
    check = destination()
    check.open()
    for table in demo_tables():
        compare(check, table, states[table.qualified_name])
    offsets = check.committed_offsets()
    assert len(offsets) == 2 * n_segments and all(o.completed for o in offsets.values())
