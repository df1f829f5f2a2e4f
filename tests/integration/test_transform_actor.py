"""The transform actor on a real local Ray: the steps shared by all destinations once, then masking
and the destination's `prepare` per destination; and the whole pipeline with and without the stage
ends equal to the oracle (coalescing never changes what the destination holds)."""

from __future__ import annotations

import uuid

import pytest
import ray

from ray_cdc.actors.transformer import TransformActor, TransformerFactory
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.reader import ChangeSet, CommitLogReader
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.pipeline.distributed import NodeSource, replicate_available_on_ray
from ray_cdc.pipeline.factories import DestinationFactory
from ray_cdc.schema.registry import SchemaRegistry
from ray_cdc.transforms import TransformSettings
from tests.integration.pipeline_checks import assert_postgres_equals_oracle
from tests.integration.test_local_pipeline import two_nodes  # noqa: F401  (module fixture)
from tests.integration.test_ray_pipeline import local_ray  # noqa: F401  (module fixture)
from tests.unit.test_transforms import TABLE, batch_of


def test_transform_actor_coalesces_once_and_prepares_per_destination(local_ray, postgres_server):  # noqa: F811
    raw = batch_of((1, lambda m: m.update({"ck": 1}, {"a": "old"}, timestamp=1)),
                   (1, lambda m: m.update({"ck": 1}, {"a": "new"}, timestamp=2)),
                   (2, lambda m: m.insert({"ck": 1}, {"b": 5}, timestamp=3)))
    change_set = ChangeSet(7, CommitLogPosition(7, 102), [(TABLE, raw)], completed=True)
    factory = TransformerFactory(TransformSettings(), {"pg": DestinationFactory("pg", "postgres", postgres_server.dsn)})
    actor = TransformActor.remote(factory)
    try:
        common = actor.common.remote(ray.put(change_set))
        part = ray.get(actor.for_destination.remote(common, "pg"))  # a ref in, resolved by Ray
        assert [i.batch for i in part.items] == [None]  # not masked: the batch stays in the common set
        for_pg = part.with_batches_of(ray.get(common))  # what WriterActor.apply(..., shared=) does
        assert (for_pg.rows, for_pg.input_rows, for_pg.end, for_pg.completed) == (2, 3, change_set.end, True)
        assert for_pg.items[0].batch.column("a").to_pylist() == ["new", None]
        has_prepare = callable(getattr(PostgresDestination, "prepare", None))
        assert (for_pg.items[0].prepared is not None) == has_prepare  # prepare used exactly when there is one
    finally:
        ray.kill(actor)


@pytest.mark.parametrize("transforms", [TransformSettings(coalesce=True), TransformSettings(coalesce=False), None],
                         ids=["coalesce", "no-coalesce", "no-stage"])
def test_pipeline_through_the_transform_stage_equals_the_oracle(local_ray, postgres_server, two_nodes,  # noqa: F811
                                                                 transforms):
    root, schema, states, n_segments = two_nodes
    name = "x_" + uuid.uuid4().hex[:8]
    summary = replicate_available_on_ray(
        {node: NodeSource(root / node, f"cassandra-node-{node}") for node in ("a", "b")},
        lambda node: CommitLogReader(SchemaRegistry(schema)),
        {"pg": DestinationFactory(name, "postgres", postgres_server.dsn, schema=name)},
        batch_rows=300, transforms=transforms)
    assert sum(r["segments"] for r in summary.readers) == 2 * n_segments
    check = PostgresDestination(postgres_server.dsn, name=name, schema=name)
    check.open()
    assert_postgres_equals_oracle(check, states)
    offsets = check.committed_offsets()
    assert len(offsets) == 2 * n_segments and all(o.completed for o in offsets.values())
