"""A real multi-node Ray (ray.cluster_utils.Cluster: a head and three worker nodes on this machine),
each worker with one Cassandra node's resource and its own commitlog directory.

Each node holds a different third of one workload's segments, so a segment of any node that went
missing, or was applied twice wrongly, shows in the oracle. Mid-run the Ray node of Cassandra node
`c` is removed: the other nodes keep replicating, `c`'s work stops (its offsets stay where they
were, nothing fails), and when a node with `c`'s resource joins again its reader resumes from the
committed offsets. PostgreSQL and chDB both end equal to the oracle, every segment completed once
per destination, and every reader ran on the Ray node that has its directory.

The workload has every change kind, TTL inserts included: the segments land out of writetime order,
which ClickHouse settles like Cassandra (test_clickhouse_out_of_order.py)."""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid

import pytest
import ray
from ray.cluster_utils import Cluster

from ray_cdc.commitlog.cdc_index import index_path
from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.commitlog.workload import DEFAULT_MIX, demo_tables, generate
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.pipeline.distributed import NodeSource, replicate_available_on_ray
from ray_cdc.pipeline.factories import DestinationFactory
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.pipeline_checks import assert_postgres_and_clickhouse_equal_oracle
from tests.support.expected_state import expected_state

NODES = ("a", "b", "c")
LOST = "c"
#: generous: the machine is shared and loaded (load average 10 is common)
WAIT = 300.0
#: sets a reader handed to the writers before its node went away may still commit meanwhile
SETTLE = 5.0


def resource(node: str) -> str:
    return f"cassandra-node-{node}"


@pytest.fixture(scope="module")
def split_log(tmp_path_factory):
    """One workload's segments dealt round-robin to three nodes' directories (with their `_cdc.idx`)."""
    root = tmp_path_factory.mktemp("split")
    summary = generate(root / "all", rows=6000, tables=demo_tables(), seed=33, segment_size=128 << 10,
                       preallocate=False, mix=DEFAULT_MIX)
    schema = load_cql_schema(root / "all" / "schema.cql")
    changes = list(CommitLogReader(SchemaRegistry(schema)).changes(summary.segments))
    for i, segment in enumerate(sorted(summary.segments)):
        target = root / NODES[i % len(NODES)]
        target.mkdir(exist_ok=True)
        for path in (segment, index_path(segment)):
            shutil.move(str(path), target / path.name)
    return root, schema, expected_state(changes), len(summary.segments)


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "include_dashboard": False, "object_store_memory": 300 << 20})
    workers = {node: cluster.add_node(num_cpus=1, resources={resource(node): 1}) for node in NODES}
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    try:
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()


def _wait_until(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")


def _offsets_actor(run_id: str):
    def lookup():
        try:
            return ray.get_actor(f"{run_id}:offsets")
        except ValueError:
            return None
    return _wait_until(lookup, "the run's offset actor exists")


def node_offsets(snapshot: dict, node: str) -> dict:
    """destination -> {partition: Offset} of one Cassandra node's segments."""
    return {dest: {pid: o for pid, o in offsets.items() if o.node == node} for dest, offsets in snapshot.items()}


def node_progress(snapshot: dict, node: str) -> int:
    return sum(o.position + o.completed for offsets in node_offsets(snapshot, node).values()
               for o in offsets.values())


def test_a_lost_ray_node_pauses_only_its_work_and_resumes_when_it_returns(
        cluster, postgres_server, split_log, tmp_path):
    ray_cluster, workers = cluster
    root, schema, states, n_segments = split_log
    run_id, name = uuid.uuid4().hex[:8], "m_" + uuid.uuid4().hex[:8]
    ch_dsn = f"chdb://{tmp_path / 'clickhouse'}"
    factories = {"pg": DestinationFactory(name, "postgres", postgres_server.dsn, schema=name),
                 "ch": DestinationFactory("ch", "clickhouse", ch_dsn, database="default")}
    outcome: dict = {}

    def run():
        try:
            outcome["summary"] = replicate_available_on_ray(
                {node: NodeSource(root / node, resource(node)) for node in NODES},
                lambda node: CommitLogReader(SchemaRegistry(schema)), factories,
                batch_rows=200, max_in_flight=2, run_id=run_id)
        except BaseException as e:  # noqa: BLE001 - reported below, in the test's thread
            outcome["error"] = e

    pipeline = threading.Thread(target=run, daemon=True)
    pipeline.start()
    offsets = _offsets_actor(run_id)

    def snapshot() -> dict:
        return ray.get(offsets.snapshot.remote())

    _wait_until(lambda: node_progress(snapshot(), LOST) > 0, f"node {LOST} committed a set")
    ray_cluster.remove_node(workers[LOST])
    at_removal = snapshot()
    time.sleep(SETTLE)
    settled = snapshot()
    others_moved = _wait_until(
        lambda: all(node_progress(snapshot(), n) > node_progress(at_removal, n) for n in NODES if n != LOST)
        or outcome, f"the nodes other than {LOST} replicated more after its Ray node was removed")
    time.sleep(SETTLE)
    before_return = snapshot()
    assert "error" not in outcome, outcome.get("error")
    assert others_moved is True, "the run ended while a node was missing: its work was not waited for"
    assert pipeline.is_alive()
    assert node_offsets(before_return, LOST) == node_offsets(settled, LOST), \
        f"node {LOST}'s offsets moved while it had no Ray node"
    lost_segments = len(list((root / LOST).glob("CommitLog-*.log")))
    completed = [sum(o.completed for o in node_offsets(at_removal, LOST).get(d, {}).values()) for d in factories]
    assert min(completed) < lost_segments, f"node {LOST} had finished before it was removed: this proves nothing"

    workers[LOST] = ray_cluster.add_node(num_cpus=1, resources={resource(LOST): 1})
    pipeline.join(timeout=900)
    assert not pipeline.is_alive(), "the run did not finish within 15 minutes of the node's return"
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    print(f"readers {summary.readers}, restarts {summary.reader_restarts}")

    assert summary.reader_restarts == 1
    by_node = {r["reader"].split(":")[2]: r for r in summary.readers}
    assert set(by_node) == set(NODES) and by_node[LOST]["reader"].endswith(":1")
    for node, counts in by_node.items():  # each reader ran where its directory is
        assert counts["ray_node_id"] == workers[node].node_id, node

    pg = PostgresDestination(postgres_server.dsn, name=name, schema=name)
    pg.open()
    assert_postgres_and_clickhouse_equal_oracle(pg, ch_dsn, states, n_segments)
