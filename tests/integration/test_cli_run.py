"""`ray-cdc status` against a running `ray-cdc run` (its real health API, with a bearer token), and
the progress display of `ray-cdc run --once`; both through the installed entry point, on a local Ray
each run starts for itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid

import pytest

from ray_cdc.cli import EXIT_OK
from ray_cdc.commitlog.workload import demo_tables, generate
from tests.services.postgres import free_port

TOKEN = "tok-" + uuid.uuid4().hex
START_BOUND = 300  # seconds for a local Ray and the pipeline to come up on a loaded 2-core machine


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cdc_raw")
    generate(root, rows=6000, tables=demo_tables(), seed=9, segment_size=256 << 10, preallocate=False)
    return root



def _config(tmp_path, root, postgres_server, port: int):
    config = tmp_path / "config.yaml"
    config.write_text(f"""
sources: [{{name: a, commitlog_dir: {root}}}]
schema: {{cql_file: {root / 'schema.cql'}}}
destinations:
  r_{uuid.uuid4().hex[:8]}: {{type: postgres, dsn: "${{PG_DSN}}"}}
  ch: {{type: clickhouse, dsn: "chdb://{tmp_path / 'ch'}"}}
pipeline: {{batch_rows: 500, state_dir: {tmp_path / 'state'}, poll_interval: 0.5}}
observability: {{port: {port}, bearer_token: "${{STATUS_TOKEN}}"}}
""")
    return config


def _env(postgres_server) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "PG_DSN": postgres_server.dsn, "STATUS_TOKEN": TOKEN, "RAY_AUTH_MODE": "disabled"}


def _wait_for_health(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_BOUND
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return
        except OSError:
            time.sleep(1)
    pytest.fail(f"the health API did not answer on port {port} within {START_BOUND} s")


def test_status_asks_the_running_pipeline(tmp_path, node_dir, postgres_server):
    port = free_port()
    config = _config(tmp_path, node_dir, postgres_server, port)
    env = _env(postgres_server)
    run = subprocess.Popen(["ray-cdc", "run", str(config)], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_health(port, run)
        status = ["ray-cdc", "status", str(config), "--timeout", "60"]
        shown = subprocess.run(status, env=env, capture_output=True, text=True, timeout=120, check=False)
        raw = subprocess.run([*status, "--json"], env=env, capture_output=True, text=True, timeout=120, check=False)
    finally:
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=120)
    assert shown.returncode == EXIT_OK, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(line.startswith("phase: ") for line in lines) and "nodes:" in lines and "  a:" in lines
    assert raw.returncode == EXIT_OK and set(json.loads(raw.stdout)) >= {"phase", "nodes", "destinations"}
    assert TOKEN not in shown.stdout + shown.stderr + raw.stdout + raw.stderr + out + err
    assert run.returncode == EXIT_OK, err


def test_run_once_prints_progress_lines_when_not_on_a_terminal(tmp_path, node_dir, postgres_server):
    config = _config(tmp_path, node_dir, postgres_server, free_port())
    result = subprocess.run(["ray-cdc", "run", str(config), "--once"], env=_env(postgres_server),
                            capture_output=True, text=True, timeout=START_BOUND + 300, check=False)
    assert result.returncode == EXIT_OK, result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("progress: applied ")]
    assert progress, result.stderr
    assert all(" segments done, " in line and line.endswith(" MiB/s") for line in progress)
    assert "\r" not in result.stderr and "replicated 6000 row changes" in result.stdout
