"""`ray-cdc run config.yaml` following a commitlog directory (not --once): while nothing arrives no
pass starts, and segments that arrive are replicated. Before, every poll started a pass whose actor
processes (seven or more) started, found nothing and were killed: an idle run kept the machine's
cores busy starting processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import psutil
import psycopg

from ray_cdc.commitlog.reader import CommitLogReader, sort_segments
from ray_cdc.commitlog.workload import demo_tables, generate
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.pipeline_checks import assert_postgres_equals_oracle
from tests.support.expected_state import expected_state

BOUND = 240  # seconds for each phase on a loaded 2-core machine (a local Ray starts first)
ROLES = ("ReaderActor", "WriterActor", "TransformActor", "CoordinatorActor")


def _committed(dsn: str, name: str) -> int:
    """Segments the destination committed to their end."""
    try:
        with psycopg.connect(dsn) as conn:
            return conn.execute("SELECT count(*) FROM public.ray_cdc_offsets WHERE destination = %s AND completed",
                                (name,)).fetchone()[0]
    except psycopg.Error:
        return 0  # the offsets table does not exist yet


def _pipeline_actors(run: subprocess.Popen) -> dict[int, str]:
    """pid -> role of the pipeline's actor processes under `run` (its local Ray's workers)."""
    found = {}
    for process in psutil.Process(run.pid).children(recursive=True):
        try:
            name = process.name()
        except psutil.NoSuchProcess:
            continue
        role = next((r for r in ROLES if r in name), None)
        if role is not None:
            found[process.pid] = role
    return found


def _arrive(segment, cdc_raw) -> None:
    """A segment as Cassandra leaves it in cdc_raw: the log, then its index saying COMPLETED."""
    shutil.copy(segment, cdc_raw)
    shutil.copy(segment.with_name(segment.stem + "_cdc.idx"), cdc_raw)


def _wait(until, run: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not until():
        assert run.poll() is None, f"the run ended while waiting for {what}"
        assert time.monotonic() < deadline, f"no {what} within {BOUND} s"
        time.sleep(0.2)


def test_an_idle_following_run_starts_no_actors_and_replicates_what_arrives(postgres_server, tmp_path):
    made = tmp_path / "made"
    generate(made, rows=3000, tables=demo_tables(), seed=5, segment_size=128 << 10, preallocate=False)
    segments = sort_segments(made.glob("CommitLog-*.log"))
    assert len(segments) >= 4
    cdc_raw = tmp_path / "cdc_raw"
    cdc_raw.mkdir()
    first, later = segments[:len(segments) // 2], segments[len(segments) // 2:]
    for segment in first:
        _arrive(segment, cdc_raw)
    name = "f_" + uuid.uuid4().hex[:8]
    config = tmp_path / "config.yaml"
    config.write_text(f"""
sources: [{{name: a, commitlog_dir: {cdc_raw}}}]
schema: {{cql_file: {made / 'schema.cql'}}}
destinations:
  {name}: {{type: postgres, dsn: "${{PG_DSN}}", schema: {name}}}
pipeline: {{batch_rows: 500, state_dir: {tmp_path / 'state'}, poll_interval: 0.5}}
observability: {{port: 0}}
""")
    env = {**os.environ, "PG_DSN": postgres_server.dsn, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
    run = subprocess.Popen([sys.executable, "-m", "ray_cdc", "run", str(config)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: _committed(postgres_server.dsn, name) == len(first), run, "commit of the first segments")
        _wait(lambda: not _pipeline_actors(run), run, "the end of the first pass")
        started = set()
        for _ in range(40):  # 8 polls with nothing new
            started |= set(_pipeline_actors(run))
            time.sleep(0.1)
        assert not started, f"actors started with nothing to replicate: {started}"
        for segment in later:
            _arrive(segment, cdc_raw)
            time.sleep(0.3)
        _wait(lambda: _committed(postgres_server.dsn, name) == len(segments), run, "commit of the later segments")
        run.send_signal(signal.SIGTERM)
        output = run.communicate(timeout=120)[0].decode(errors="replace")
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode == 0, output[-3000:]

    changes = list(CommitLogReader(SchemaRegistry(load_cql_schema(made / "schema.cql"))).changes(segments))
    destination = PostgresDestination(postgres_server.dsn, name=name, schema=name)
    destination.open()
    try:
        assert_postgres_equals_oracle(destination, expected_state(changes))
    finally:
        destination.close()
