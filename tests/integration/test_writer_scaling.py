"""Writer autoscaling on a real local Ray into a real PostgreSQL: a backlog that would take far longer
than the target to drain raises the writer count; several writers then apply segments of the same
keys at once (two replicas hold the same mutations, RF = 2, deletes and TTLs included), and
PostgreSQL still ends equal to the oracle with every offset completed."""

from __future__ import annotations

import uuid

from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.pipeline.distributed import NodeSource, replicate_available_on_ray
from ray_cdc.pipeline.run import DestinationFactory
from ray_cdc.pipeline.scaling import ScalingSettings, WriterBounds
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.pipeline_checks import (  # noqa: F401  (replica_nodes: module fixture)
    assert_postgres_equals_oracle,
    replica_nodes,
)
from tests.integration.test_ray_pipeline import local_ray  # noqa: F401  (module fixture)

MAX_WRITERS = 3


def test_a_large_backlog_scales_postgres_writers_up_and_the_result_equals_the_oracle(
        local_ray, postgres_server, replica_nodes):  # noqa: F811
    root, schema, states, n_segments = replica_nodes
    name = "s_" + uuid.uuid4().hex[:8]
    # a drain target no backlog of several segments meets on this machine: the count must go up
    scaling = ScalingSettings({"pg": WriterBounds(1, MAX_WRITERS)}, target_drain=0.5, cooldown=0.5, interval=0.3)
    summary = replicate_available_on_ray(
        {node: NodeSource(root / node, f"cassandra-node-{node}") for node in ("a", "b")},
        lambda node: CommitLogReader(SchemaRegistry(schema)),
        {"pg": DestinationFactory(name, "postgres", postgres_server.dsn, schema=name)},
        batch_rows=300, max_in_flight=4, scaling=scaling)
    print(f"scaling {summary.scaling}, sets per writer {summary.writer_sets}")

    assert summary.scaling[0] == {"seconds": summary.scaling[0]["seconds"], "destination": "pg", "writers": 1}
    assert summary.peak_writers["pg"] >= 2, summary.scaling
    assert max(e["writers"] for e in summary.scaling) <= MAX_WRITERS
    assert sum(1 for sets in summary.writer_sets["pg"] if sets) >= 2, summary.writer_sets  # they all worked
    assert sum(summary.writer_sets["pg"]) == summary.writers["pg"]["sets"]

    check = PostgresDestination(postgres_server.dsn, name=name, schema=name)
    check.open()
    assert_postgres_equals_oracle(check, states)
    offsets = check.committed_offsets()
    assert len(offsets) == 2 * n_segments and all(o.completed for o in offsets.values())
