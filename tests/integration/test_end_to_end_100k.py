"""100,000+ generated changes through `ray-cdc run config.yaml --once` on a local Ray, into every
destination at once (PostgreSQL; TimescaleDB on the same server, which has no timescaledb extension,
so `on_missing_extension: warn` and plain tables in its own schema; ClickHouse on chDB); each destination's content equals the final state computed independently from
the workload (tests/support/expected_state.py over the decoded change records).

The workload is the demo tables with the default mix: inserts, partial updates, collection appends,
puts, removals, overwrites and deletes, TTL writes, cell, row, partition and range deletes, static
rows, counters and multi-table mutations, over four tables, in several segments. The seed is random
and printed (set RAY_CDC_E2E_SEED to replay one).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest

from ray_cdc.commitlog.workload import demo_tables, generate
from tests.support.destination_checks import check_clickhouse, check_postgres, completed_segments, oracle

ROWS = 100_000
SEED = int(os.environ.get("RAY_CDC_E2E_SEED") or random.SystemRandom().randrange(1 << 31))


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e100k")
    started = time.monotonic()
    summary = generate(root / "cdc_raw", rows=ROWS, tables=demo_tables(), seed=SEED, segment_size=4 << 20,
                       preallocate=False)
    generated = time.monotonic() - started
    states = oracle(root / "cdc_raw")
    sys.stderr.write(f"\n[e2e100k] seed {SEED} (RAY_CDC_E2E_SEED={SEED} replays it): {summary.row_changes} "
                     f"changes, {len(summary.segments)} segments, generated in {generated:.0f} s, oracle in "
                     f"{time.monotonic() - started - generated:.0f} s\n")
    return root, summary, states


def test_100k_changes_into_every_destination_equal_the_oracle(postgres_server, workload, tmp_path):
    root, summary, states = workload
    assert summary.row_changes >= ROWS
    counts = Counter()
    for ops in summary.counts.values():
        counts.update(ops)
    for op in ("insert", "update", "ttl_insert", "cell_delete", "row_delete", "partition_delete", "range_delete",
               "collection_append", "collection_remove", "collection_overwrite"):
        assert counts.get(op, 0) > 100, (op, counts)
    assert len(summary.segments) > 3 and len(summary.counts) == len(demo_tables())

    tag = uuid.uuid4().hex[:8]
    pg, ts, ch = f"e2e_pg_{tag}", f"e2e_ts_{tag}", f"e2e_ch_{tag}"
    config = tmp_path / "config.yaml"
    config.write_text(f"""
sources:
  - {{name: node1, commitlog_dir: {root / 'cdc_raw'}}}
schema: {{cql_file: {root / 'cdc_raw' / 'schema.cql'}}}
destinations:
  {pg}: {{type: postgres, dsn: "${{PG_DSN}}", schema: {pg}}}
  {ts}: {{type: timescaledb, dsn: "${{PG_DSN}}", schema: {ts}, on_missing_extension: warn}}
  {ch}: {{type: clickhouse, dsn: "chdb://{tmp_path / 'clickhouse'}"}}
pipeline: {{state_dir: {tmp_path / 'state'}}}
""")
    env = {**os.environ, "PG_DSN": postgres_server.dsn, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "ray_cdc", "run", str(config), "--once"], env=env, check=False,
                         capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, f"seed {SEED}: {run.stderr[-4000:]}"
    assert f"replicated {summary.row_changes} row changes" in run.stdout, (SEED, run.stdout)

    tables = demo_tables()
    pg_rows = check_postgres(postgres_server.dsn, pg, pg, tables, states)
    # the test server has no timescaledb extension: warn mode replicates into plain tables
    ts_rows = check_postgres(postgres_server.dsn, ts, ts, tables, states)
    ch_rows = check_clickhouse(tmp_path / "clickhouse", ch, tables, states)
    for name in (pg, ts):
        assert completed_segments(postgres_server.dsn, name) == (len(summary.segments), len(summary.segments))
    sys.stderr.write(f"\n[e2e100k] seed {SEED}: ray-cdc run --once took {elapsed:.0f} s; live rows "
                     f"PostgreSQL {pg_rows}, TimescaleDB {ts_rows}, ClickHouse {ch_rows}\n")
    assert all(n > 100 for n in pg_rows.values()) and ts_rows == pg_rows, (pg_rows, ts_rows)
