"""Several writers per destination on a real local Ray into a real PostgreSQL. Two replicas hold the
same mutations (RF = 2, deletes and TTLs included), so writers that apply different segments at
once write the same keys: PostgreSQL must still end equal to the oracle, every offset completed.
A backlog that would take far longer than the target to drain raises the writer count."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.destinations.postgres.errors import classify
from ray_cdc.errors import TransientDestinationError
from ray_cdc.pipeline.distributed import NodeSource, replicate_available_on_ray
from ray_cdc.pipeline.factories import DestinationFactory
from ray_cdc.pipeline.scaling import ScalingSettings, WriterBounds
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.pipeline_checks import (  # noqa: F401  (replica_nodes: module fixture)
    assert_postgres_equals_oracle,
    replica_nodes,
    write_replicas,
)
from tests.integration.test_ray_pipeline import local_ray  # noqa: F401  (module fixture)

MAX_WRITERS = 3


@pytest.fixture(scope="module")
def large_backlog(tmp_path_factory):
    """Like `replica_nodes` (RF = 2, every change kind), three times the rows: enough segments left
    when the first commits give the scaler a rate (start-up on a loaded machine takes tens of s)."""
    return write_replicas(tmp_path_factory.mktemp("backlog"), rows=12000, seed=22)


def test_a_large_backlog_scales_postgres_writers_up_and_the_result_equals_the_oracle(
        local_ray, postgres_server, large_backlog):  # noqa: F811
    _, _, states, n_segments = large_backlog
    name = "s_" + uuid.uuid4().hex[:8]
    # a drain target no backlog of several segments meets on this machine: the count must go up
    scaling = ScalingSettings({"pg": WriterBounds(1, MAX_WRITERS)}, target_drain=0.5, cooldown=2.0, interval=0.5)
    summary = _run(large_backlog, postgres_server.dsn, name, scaling)

    assert summary.scaling[0] == {"seconds": summary.scaling[0]["seconds"], "destination": "pg", "writers": 1}
    assert summary.peak_writers["pg"] >= 2, summary.scaling
    assert max(e["writers"] for e in summary.scaling) <= MAX_WRITERS
    assert sum(1 for sets in summary.writer_sets["pg"] if sets) >= 2, summary.writer_sets  # more than one applied sets
    assert sum(summary.writer_sets["pg"]) == summary.writers["pg"]["sets"]

    _assert_equals_oracle(postgres_server.dsn, name, states, n_segments)


def test_two_writers_applying_replicas_of_the_same_keys_at_once_equal_the_oracle(
        local_ray, postgres_server, replica_nodes):  # noqa: F811
    _, _, states, n_segments = replica_nodes
    name = "s_" + uuid.uuid4().hex[:8]
    summary = _run(replica_nodes, postgres_server.dsn, name, ScalingSettings({"pg": WriterBounds(2, 2)}))
    assert summary.peak_writers == {"pg": 2} and all(summary.writer_sets["pg"]), summary.writer_sets
    _assert_equals_oracle(postgres_server.dsn, name, states, n_segments)


def _run(nodes, dsn: str, name: str, scaling: ScalingSettings):
    root, schema, _, _ = nodes
    summary = replicate_available_on_ray(
        {node: NodeSource(root / node, f"cassandra-node-{node}") for node in ("a", "b")},
        lambda node: CommitLogReader(SchemaRegistry(schema)),
        {"pg": DestinationFactory(name, "postgres", dsn, schema=name)},
        batch_rows=300, max_in_flight=4, scaling=scaling)
    print(f"scaling {summary.scaling}, sets per writer {summary.writer_sets}")
    return summary


def _assert_equals_oracle(dsn: str, name: str, states, n_segments: int) -> None:
    check = PostgresDestination(dsn, name=name, schema=name)
    check.open()
    assert_postgres_equals_oracle(check, states)
    offsets = check.committed_offsets()
    assert len(offsets) == 2 * n_segments and all(o.completed for o in offsets.values())


def test_a_deadlock_between_two_writers_sessions_is_transient_so_the_writer_retries(postgres_server):
    """Two sessions updating the same two keys in opposite orders: PostgreSQL aborts one with a
    deadlock (40P01), which the destination's one classification must call transient (retried)."""
    table = "deadlock_" + uuid.uuid4().hex[:8]
    with psycopg.connect(postgres_server.dsn, autocommit=True) as setup:
        setup.execute(f"CREATE TABLE {table} (k int PRIMARY KEY, v int)")
        setup.execute(f"INSERT INTO {table} VALUES (1, 0), (2, 0)")
    both_hold_one = threading.Barrier(2)
    errors: list[BaseException] = []

    def session(first: int, second: int):
        with psycopg.connect(postgres_server.dsn) as conn:
            try:
                conn.execute(f"UPDATE {table} SET v = v + 1 WHERE k = %s", (first,))
                both_hold_one.wait(timeout=30)
                conn.execute(f"UPDATE {table} SET v = v + 1 WHERE k = %s", (second,))
                conn.commit()
            except psycopg.Error as e:
                errors.append(e)

    threads = [threading.Thread(target=session, args=order) for order in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(errors) == 1 and errors[0].sqlstate == "40P01", errors
    error = classify(errors[0], destination="pg", secrets=[], doing="write")
    assert isinstance(error, TransientDestinationError) and "40P01" in str(error)
