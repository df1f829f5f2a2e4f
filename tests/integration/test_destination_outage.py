"""PostgreSQL goes away for 20 s in the middle of a run on Ray: its writer retries with backoff, then
lets the readers go on without it; ClickHouse (chDB) keeps advancing during the outage; once the
server is back, PostgreSQL catches up from its own offsets. Both end equal to the oracle (nothing
lost, nothing doubled), every offset completed. Retention (archive) moves a segment only once both
destinations committed it: none while PostgreSQL is down, all of them at the end. Segments that
appear during the outage reach ClickHouse during the outage. (The workload has no TTL inserts: see
tests/integration/pipeline_checks.py.)"""

from __future__ import annotations

import shutil
import threading
import time
import uuid

import ray

from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.pipeline.distributed import NodeSource, replicate_available_on_ray
from ray_cdc.pipeline.factories import DestinationFactory
from ray_cdc.pipeline.writing import RetryPolicy
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.pipeline_checks import (  # noqa: F401  (replica_nodes: module fixture)
    assert_postgres_and_clickhouse_equal_oracle,
    progress,
    replica_nodes,
)
from tests.integration.test_ray_pipeline import local_ray  # noqa: F401  (module fixture)

OUTAGE_SECONDS = 20


def test_clickhouse_keeps_going_while_postgres_is_down_for_20_seconds(
        local_ray, postgres_server, replica_nodes, tmp_path):  # noqa: F811
    root, schema, states, n_segments = replica_nodes
    shutil.copytree(root, tmp_path / "nodes")  # retention moves segments away: not the shared ones
    root = tmp_path / "nodes"
    # each node's last segment appears only during the outage: it must still reach ClickHouse
    held = tmp_path / "held"
    late = {}
    for node in ("a", "b"):
        last = max(root.glob(f"{node}/CommitLog-*.log"))
        (held / node).mkdir(parents=True)
        for path in (last, last.with_name(last.stem + "_cdc.idx")):
            shutil.move(str(path), held / node / path.name)
        late[node] = f"{node}/{last.name.split('-')[-1][:-4]}"
    archive = tmp_path / "archive"
    run_id, name = uuid.uuid4().hex[:8], "o_" + uuid.uuid4().hex[:8]
    ch_dsn = f"chdb://{tmp_path / 'clickhouse'}"
    factories = {"pg": DestinationFactory(name, "postgres", postgres_server.dsn, schema=name),
                 "ch": DestinationFactory("ch", "clickhouse", ch_dsn, database="default")}
    seen: dict[str, tuple] = {}
    failures: list[BaseException] = []

    def outage():
        try:
            offsets = None
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # the outage starts once PostgreSQL committed something
                try:
                    offsets = ray.get_actor(f"{run_id}:offsets")
                    if ray.get(offsets.snapshot.remote()).get("pg"):
                        break
                except ValueError:
                    pass
                time.sleep(0.05)
            postgres_server.stop()
            started = time.monotonic()
            time.sleep(1)  # let the in-flight sets meet the closed server
            for node in ("a", "b"):  # index file last, as Cassandra writes it
                for path in sorted(held.glob(f"{node}/*"), key=lambda p: p.suffix == ".idx"):
                    shutil.move(str(path), root / node / path.name)
            at_stop = ray.get(offsets.snapshot.remote())
            time.sleep(OUTAGE_SECONDS - 1)
            # On a loaded machine reading the late segments can take longer than the 20 s: PostgreSQL
            # stays down until ClickHouse has completed them (90 s at most), so what is checked below
            # is that the destinations are independent, not how fast the machine is.
            give_up = time.monotonic() + 90
            while time.monotonic() < give_up and not set(late.values()) <= {
                    pid for pid, o in ray.get(offsets.snapshot.remote()).get("ch", {}).items() if o.completed}:
                time.sleep(0.5)
            before_restart = ray.get(offsets.snapshot.remote())
            archived_while_down = {f"{p.parent.name}/{p.name.split('-')[-1][:-4]}"
                                   for p in archive.glob("*/CommitLog-*.log")}
            pg_completed = {pid for pid, o in before_restart.get("pg", {}).items() if o.completed}
            ch_completed = {pid for pid, o in before_restart.get("ch", {}).items() if o.completed}
            postgres_server.start()
            seen.update(down=time.monotonic() - started,
                        ch=(progress(at_stop.get("ch", {})), progress(before_restart.get("ch", {}))),
                        pg=(progress(at_stop.get("pg", {})), progress(before_restart.get("pg", {}))),
                        archived_while_down=archived_while_down, pg_completed=pg_completed,
                        ch_completed=ch_completed)
        except BaseException as e:  # noqa: BLE001 - reported by the test thread below
            failures.append(e)

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    started = time.monotonic()
    summary = replicate_available_on_ray(
        {node: NodeSource(root / node, f"cassandra-node-{node}") for node in ("a", "b")},
        lambda node: CommitLogReader(SchemaRegistry(schema)), factories, batch_rows=300, max_in_flight=2,
        policy=RetryPolicy(initial=0.5, maximum=2), detach_after=2.0, run_id=run_id,
        retention="archive", archive_dir=archive)
    elapsed = time.monotonic() - started
    thread.join()
    assert not failures, failures
    print(f"run {elapsed:.1f}s, outage {seen['down']:.1f}s, ch progress {seen['ch']}, pg progress {seen['pg']}, "
          f"readers {summary.readers}")
    assert seen["down"] >= OUTAGE_SECONDS
    (ch_completed_at_stop, ch_pos_at_stop), (ch_completed_later, ch_pos_later) = seen["ch"]
    assert ch_pos_later > ch_pos_at_stop and ch_completed_later > ch_completed_at_stop, \
        "ClickHouse did not advance while PostgreSQL was down: the destinations are in lockstep"
    assert seen["pg"][0] == seen["pg"][1]  # nothing reached PostgreSQL while it was down (sanity)
    assert sum(r["deferrals"] for r in summary.readers) >= 1  # the PostgreSQL writer was detached
    assert elapsed >= OUTAGE_SECONDS  # and it caught up only after the server came back
    assert set(late.values()) <= seen["ch_completed"]  # segments that appeared while PostgreSQL was down
    # what ClickHouse alone had committed stayed; only what PostgreSQL completed before could go
    assert seen["archived_while_down"] <= seen["pg_completed"], seen["archived_while_down"]
    assert summary.retired == 2 * n_segments == len(list(archive.glob("*/CommitLog-*.log")))
    assert not list(root.glob("*/CommitLog-*.log"))

    pg = PostgresDestination(postgres_server.dsn, name=name, schema=name)
    pg.open()
    assert_postgres_and_clickhouse_equal_oracle(pg, ch_dsn, states, 2 * n_segments)
