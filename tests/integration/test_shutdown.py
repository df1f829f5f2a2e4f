"""Graceful shutdown: SIGTERM to `ray-cdc run config.yaml` (following, not --once) in the middle of a
run. It exits 0 within a bound; each destination holds exactly the changes its committed offsets
cover (no half-applied set: the data equals the oracle of the covered changes); a second run
completes both to the full oracle. Seeds in the test ids.

The workload has no `INSERT ... USING TTL`: ClickHouse's row expiry depends on the order changes are
applied in (RF = 2 replicas interleave), so a *prefix* of the log with TTL rows may differ from the
oracle there even when nothing is half-applied: a destination issue (reported), not this test's."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from ray_cdc.commitlog.reader import CommitLogReader, sort_segments
from ray_cdc.destinations.clickhouse import ClickHouseDestination
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.pipeline_checks import (  # noqa: F401  (replica_nodes: module fixture)
    assert_clickhouse_equals_oracle,
    assert_postgres_equals_oracle,
    replica_nodes,
)
from tests.support.expected_state import expected_state

STOP_BOUND = 30  # seconds from SIGTERM to exit: in-flight sets are small, nothing new is read


def _config(tmp_path, root, schema: str):
    config = tmp_path / "config.yaml"
    config.write_text(f"""
sources:
  - {{name: a, commitlog_dir: {root / 'a'}}}
  - {{name: b, commitlog_dir: {root / 'b'}}}
schema: {{cql_file: {root / 'a' / 'schema.cql'}}}
destinations:
  {schema}: {{type: postgres, dsn: "${{PG_DSN}}", schema: {schema}}}
  ch: {{type: clickhouse, dsn: "chdb://{tmp_path / 'clickhouse'}"}}
pipeline: {{batch_rows: 100, max_in_flight_batches: 2, state_dir: {tmp_path / 'state'}, poll_interval: 0.5}}
""")
    return config


def _committed_count(dsn: str, name: str) -> int:
    try:
        with psycopg.connect(dsn) as conn:
            return conn.execute("SELECT count(*) FROM public.ray_cdc_offsets WHERE destination = %s",
                                (name,)).fetchone()[0]
    except psycopg.Error:
        return 0  # the offsets table does not exist yet


def _covered(changes, offsets):
    """The changes some node's committed offset covers (both nodes logged the same mutations)."""
    return [c for c in changes if any(o.commitlog_position >= c.position for o in offsets.values()
                                      if o.segment_id == c.position.segment_id)]


@pytest.mark.parametrize("seed", range(3))
def test_sigterm_commits_what_is_in_flight_then_exits(postgres_server, replica_nodes, tmp_path, seed):  # noqa: F811
    root, schema_tables, states, n_segments = replica_nodes
    name = "g_" + uuid.uuid4().hex[:8]
    config = _config(tmp_path, root, name)
    env = {**os.environ, "PG_DSN": postgres_server.dsn, "RAY_ADDRESS": ""}
    # once PostgreSQL has offsets of this many segments (of 2 x n_segments), then a random moment
    after_parts = random.Random(seed).randint(1, 2 * n_segments // 2)
    process = subprocess.Popen([sys.executable, "-m", "ray_cdc", "run", str(config)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _committed_count(postgres_server.dsn, name) < after_parts and \
                time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()[0].decode(errors="replace")[-3000:]
        time.sleep(random.Random(seed + 1000).uniform(0, 1.0))
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        output = process.communicate(timeout=STOP_BOUND + 30)[0].decode(errors="replace")
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    print(f"seed={seed} after_parts={after_parts} stopped in {took:.1f}s")
    assert process.returncode == 0, output[-3000:]
    assert "stopped on request" in output, output[-3000:]
    assert took < STOP_BOUND

    segments = sort_segments((root / "a").glob("CommitLog-*.log"))
    changes = list(CommitLogReader(SchemaRegistry(schema_tables)).changes(segments))
    pg = PostgresDestination(postgres_server.dsn, name=name, schema=name)
    pg.open()
    ch = ClickHouseDestination(f"chdb://{tmp_path / 'clickhouse'}", name="ch", database="default")
    ch.open()
    try:
        pg_offsets, ch_offsets = pg.committed_offsets(), ch.committed_offsets()
        assert not all(o.completed for o in pg_offsets.values()) or len(pg_offsets) < 2 * n_segments, \
            "the run had finished before SIGTERM: the trial proves nothing"
        assert_postgres_equals_oracle(pg, expected_state(_covered(changes, pg_offsets)))
        assert_clickhouse_equals_oracle(ch, expected_state(_covered(changes, ch_offsets)))
    finally:
        ch.close()

    rerun = subprocess.run([sys.executable, "-m", "ray_cdc", "run", str(config), "--once"], env=env,
                           capture_output=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stdout.decode(errors="replace")[-3000:] + rerun.stderr.decode()[-3000:]
    ch.open()
    try:
        assert_postgres_equals_oracle(pg, states)
        assert_clickhouse_equals_oracle(ch, states)
        for destination in (pg, ch):
            offsets = destination.committed_offsets()
            assert len(offsets) == 2 * n_segments and all(o.completed for o in offsets.values()), destination.name
    finally:
        ch.close()
