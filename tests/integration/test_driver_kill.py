"""kill -9 of the driver (`ray-cdc run`) at a random moment, then a restart: PostgreSQL ends equal
to the oracle, every offset completed — nothing lost, nothing applied twice. Seeds in the test ids."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest

from ray_cdc.commitlog.workload import demo_tables
from ray_cdc.destinations.postgres import PostgresDestination
from tests.integration.test_local_pipeline import two_nodes  # noqa: F401  (module fixture)
from tests.integration.test_postgres_destination import compare

TRIALS = 10


def _config(tmp_path, root, dsn_env: str, schema: str):
    config = tmp_path / "config.yaml"
    config.write_text(f"""
sources:
  - {{name: a, commitlog_dir: {root / 'a'}}}
  - {{name: b, commitlog_dir: {root / 'b'}}}
schema: {{cql_file: {root / 'a' / 'schema.cql'}}}
destinations:
  {schema}: {{type: postgres, dsn: "${{{dsn_env}}}", schema: {schema}}}
pipeline: {{batch_rows: 200, max_in_flight_batches: 2, state_dir: {tmp_path / 'state'}}}
""")
    return config


def _start(config, env):
    return subprocess.Popen([sys.executable, "-m", "ray_cdc", "run", str(config), "--once"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.parametrize("seed", range(TRIALS))
def test_driver_killed_then_restarted(postgres_server, two_nodes, tmp_path, seed):  # noqa: F811
    root, _, states, n_segments = two_nodes
    schema = "k_" + uuid.uuid4().hex[:8]
    env = {**os.environ, "PG_DSN": postgres_server.dsn, "RAY_ADDRESS": ""}
    config = _config(tmp_path, root, "PG_DSN", schema)
    delay = random.Random(seed).uniform(2.5, 6.5)  # Ray starts in ~3 s; a full run takes ~8 s
    process = _start(config, env)
    try:
        process.wait(timeout=delay)
        finished_early = True
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and everything it started in its session
        process.wait()
        finished_early = False
    time.sleep(1)
    print(f"seed={seed} delay={delay:.1f}s killed={not finished_early}")
    rerun = _start(config, env)
    output = rerun.communicate(timeout=300)[0].decode(errors="replace")
    assert rerun.returncode == 0, output[-3000:]
    destination = PostgresDestination(postgres_server.dsn, name=schema, schema=schema)  # offsets by name
    destination.open()
    for table in demo_tables():
        compare(destination, table, states[table.qualified_name])
    offsets = destination.committed_offsets()
    assert len(offsets) == 2 * n_segments and all(o.completed for o in offsets.values())
