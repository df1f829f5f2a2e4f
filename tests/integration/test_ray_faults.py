"""Crash recovery on Ray: kill a writer or a reader actor at a random moment; the destination still
ends equal to the oracle (nothing lost, nothing applied twice). Seeds are in the test ids."""

from __future__ import annotations

import random
import threading
import time
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
from tests.integration.test_ray_pipeline import local_ray  # noqa: F401  (module fixture)

TRIALS = 10


def _run(root, schema, dsn, name, run_id):
    def destination():
        return PostgresDestination(dsn, name=name, schema=name)

    return replicate_available_on_ray(
        {node: NodeSource(root / node, f"cassandra-node-{node}") for node in ("a", "b")},
        lambda node: CommitLogReader(SchemaRegistry(schema)), {"pg": destination},
        batch_rows=200, max_in_flight=2, run_id=run_id)


@pytest.fixture(scope="module")
def baseline_seconds(local_ray, postgres_server, two_nodes):  # noqa: F811
    root, schema, _, _ = two_nodes
    started = time.monotonic()
    _run(root, schema, postgres_server.dsn, "f_" + uuid.uuid4().hex[:8], uuid.uuid4().hex[:8])
    return time.monotonic() - started


def _kill_later(run_id: str, target: str, delay: float, no_restart: bool, outcome: dict) -> threading.Thread:
    """Kill the named actor `delay` seconds after it exists (so the kill lands while it works)."""
    def kill():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                actor = ray.get_actor(f"{run_id}:{target}")
                break
            except ValueError:
                time.sleep(0.02)
        else:
            outcome["killed"] = False
            return
        time.sleep(delay)
        ray.kill(actor, no_restart=no_restart)
        outcome["killed"] = True

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("seed", range(TRIALS))
@pytest.mark.parametrize("target", ["writer:pg", "reader:a:0"])
def test_killed_actor_loses_and_duplicates_nothing(local_ray, postgres_server, two_nodes, baseline_seconds,  # noqa: F811
                                                   target, seed):
    root, schema, states, n_segments = two_nodes
    rng = random.Random(seed)
    delay = rng.uniform(0.05, 0.35) * baseline_seconds  # well inside a reader's working time
    run_id, name = uuid.uuid4().hex[:8], "f_" + uuid.uuid4().hex[:8]
    outcome: dict = {}
    killer = _kill_later(run_id, target, delay, no_restart=target.startswith("reader"), outcome=outcome)
    summary = _run(root, schema, postgres_server.dsn, name, run_id)
    killer.join()
    print(f"seed={seed} target={target} delay={delay:.2f}s killed={outcome.get('killed')} "
          f"reader_restarts={summary.reader_restarts}")
    check = PostgresDestination(postgres_server.dsn, name=name, schema=name)
    check.open()
    for table in demo_tables():
        compare(check, table, states[table.qualified_name])
    offsets = check.committed_offsets()
    assert len(offsets) == 2 * n_segments and all(o.completed for o in offsets.values())
    assert outcome.get("killed"), "the kill did not land while the actor worked: the trial proves nothing"
    if target.startswith("reader"):
        assert summary.reader_restarts == 1
