"""The health API of `ray-cdc run` (following, on a local Ray) over real HTTP: every endpoint matches
the OpenAPI document, the figures follow the replication (segments done, rows, lag of segments that
arrive later), /ready turns false while PostgreSQL is down and its ClickHouse check stays true, and
neither the bearer token nor the database password ever reaches a response or the logs.

Passes are an hour apart (`poll_interval`): after the first one the pipeline waits with no actor
running, so segments added then stay uncommitted (a known lag) and PostgreSQL can be stopped without
disturbing a pass."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ray_cdc.commitlog.cdc_index import index_path, read_cdc_index
from ray_cdc.commitlog.workload import demo_tables, generate
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.observability.openapi import document, response_schema
from tests.integration.test_local_pipeline import two_nodes  # noqa: F401  (module fixture)
from tests.services.postgres import PostgresServer

TOKEN = "hx-" + uuid.uuid4().hex  # a fresh secret per run: any occurrence in output is a leak
START_TIMEOUT = 180  # seconds until the API listens (Ray starts first on a loaded machine)
PASS_TIMEOUT = 600  # seconds for the first pass to replicate everything
LATE_SEGMENT_BASE = 1_900_000_000_000  # segment ids above every generated one


@dataclass
class Run:
    port: int
    process: subprocess.Popen
    output: Path
    postgres: PostgresServer
    schema: str
    nodes: Path
    n_segments: int
    bodies: list[str] = field(default_factory=list)  # every response, to look for secrets in

    def get(self, path: str, token: str | None = TOKEN) -> tuple[int, str, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                reply = response.status, response.headers["Content-Type"], response.read()
        except urllib.error.HTTPError as error:
            reply = error.code, error.headers["Content-Type"], error.read()
        self.bodies.append(reply[2].decode(errors="replace"))
        return reply

    def json(self, path: str, expected: tuple[int, ...] = (200,)) -> dict:
        status, content_type, body = self.get(path)
        assert status in expected and content_type == "application/json", (path, status, body[:500])
        data = json.loads(body)
        jsonschema.validate(data, response_schema(path, status))
        return data

    def wait_for(self, what: str, condition, timeout: float = PASS_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"ray-cdc run exited:\n{self.output.read_text()[-3000:]}"
            status = self.json("/status")
            if condition(status):
                return status
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last status: {json.dumps(status)[:2000]}")


def _config(tmp: Path, nodes: Path, schema: str) -> Path:
    config = tmp / "config.yaml"
    config.write_text(f"""
sources:
  - {{name: a, commitlog_dir: {nodes / 'a'}}}
  - {{name: b, commitlog_dir: {nodes / 'b'}}}
schema: {{cql_file: {nodes / 'a' / 'schema.cql'}}}
destinations:
  pg: {{type: postgres, dsn: "${{PG_DSN}}", schema: {schema}}}
  ch: {{type: clickhouse, dsn: "chdb://{tmp / 'clickhouse'}"}}
pipeline: {{batch_rows: 200, state_dir: {tmp / 'state'}, poll_interval: 3600, segment_retention: keep}}
observability: {{host: 127.0.0.1, port: 0, bearer_token: "${{HEALTH_TOKEN}}"}}
""")
    return config


def _listening_port(process: subprocess.Popen, output: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = re.search(r"health API listening on http://127\.0\.0\.1:(\d+)", output.read_text())
        if found:
            return int(found.group(1))
        assert process.poll() is None, f"ray-cdc run exited:\n{output.read_text()[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"the health API did not start:\n{output.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def run(tmp_path_factory, two_nodes):  # noqa: F811
    root, _, _, n_segments = two_nodes
    tmp = tmp_path_factory.mktemp("health")
    nodes = tmp / "nodes"
    for node in ("a", "b"):
        shutil.copytree(root / node, nodes / node)
    postgres = PostgresServer(tmp / "postgres")  # its own: the test stops it
    postgres.start()
    schema = "h_" + uuid.uuid4().hex[:8]
    output = tmp / "ray-cdc.log"
    env = {**os.environ, "PG_DSN": postgres.dsn, "HEALTH_TOKEN": TOKEN, "RAY_ADDRESS": ""}
    with output.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "ray_cdc", "run", str(_config(tmp, nodes, schema))],
                                   env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Run(_listening_port(process, output), process, output, postgres, schema, nodes, n_segments)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        postgres.remove()


def _samples(text: bytes) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def _first_pass_done(run: Run):
    def done(status: dict) -> bool:
        return status["passes"] >= 1 and status["phase"] == "between_passes"
    return run.wait_for("the first pass", done)


def test_every_endpoint_follows_the_run_as_documented(run):
    status, _, body = run.get("/health", token=None)
    assert status == 200
    jsonschema.validate(json.loads(body), response_schema("/health", 200))

    readiness = []  # /ready while the pass runs: its actors must be seen alive
    deadline = time.monotonic() + PASS_TIMEOUT
    while time.monotonic() < deadline and run.json("/status")["passes"] == 0:
        time.sleep(0.2)
    while time.monotonic() < deadline:
        report = run.json("/ready", expected=(200, 503))
        if report["phase"] != "running":
            break
        readiness.append(report)
        time.sleep(0.3)
    live = [r for r in readiness if r["ready"]]
    assert live, f"never ready while the pass ran: {json.dumps(readiness[-1:])[:3000]}"
    roles = {(a["role"], a["name"].split(":")[2] if a["role"] == "writer" else None)
             for a in live[-1]["actors"] if a["state"] == "ALIVE"}
    assert {("coordinator", None), ("offsets", None), ("writer", "pg"), ("writer", "ch")} <= roles
    assert ("observer", None) in roles
    assert all(a["name"].startswith(live[-1]["pass_id"] + ":") for a in live[-1]["actors"] if a["role"] != "observer")

    final = _first_pass_done(run)
    pg = PostgresDestination(run.postgres.dsn, name="pg", schema=run.schema)  # the destination's own truth
    pg.open()
    completed = [o for o in pg.committed_offsets().values() if o.completed]
    pg.close()
    assert len(completed) == 2 * run.n_segments
    for node in ("a", "b"):
        figures = final["nodes"][node]
        assert figures["segments_total"] == figures["segments_done"] == run.n_segments
        assert figures["lag_bytes"] == 0 and figures["lag_seconds"] == 0 and figures["segments"] == []
    rows = {d: final["destinations"][d]["rows_written"] for d in ("pg", "ch")}
    assert rows["pg"] == rows["ch"] > 0  # the same coalesced sets reach both
    assert final["dlq_entries"] == 0 and final["snapshot"] == {}
    assert all(final["destinations"][d]["lag_bytes"] == 0 for d in ("pg", "ch"))

    status, content_type, text = run.get("/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    samples = _samples(text)
    for d in ("pg", "ch"):
        written = sum(v for (name, labels), v in samples.items()
                      if name == "ray_cdc_rows_written_total" and ("destination", d) in labels)
        assert written == rows[d]
        assert samples[("ray_cdc_batch_commit_seconds_count", (("destination", d),))] == \
            final["destinations"][d]["commits"] > 0
        assert samples[("ray_cdc_segments_completed_total", (("destination", d),))] == 2 * run.n_segments
    assert samples[("ray_cdc_lag_bytes", (("node", "a"),))] == 0
    assert samples[("ray_cdc_dlq_entries", ())] == 0
    assert run.json("/openapi.json") == json.loads(json.dumps(document()))


def test_segments_that_arrive_between_passes_show_as_lag(run, tmp_path):
    _first_pass_done(run)
    late = generate(tmp_path / "late", rows=300, tables=demo_tables(), seed=5, segment_size=64 << 10,
                    base_segment_id=LATE_SEGMENT_BASE)
    ends = {}
    for segment in late.segments:
        for path in (segment, index_path(segment)):
            shutil.copy2(path, run.nodes / "a" / path.name)
        ends[segment.name] = read_cdc_index(index_path(segment)).offset
        os.utime(run.nodes / "a" / segment.name, (time.time() - 120, time.time() - 120))
    status = run.json("/status")
    a = status["nodes"]["a"]
    assert a["segments_total"] == run.n_segments + len(ends) and a["segments_done"] == run.n_segments
    assert a["lag_bytes"] == sum(ends.values()) > 0
    assert 120 <= a["lag_seconds"] < 120 + 300
    assert {s["file"]: s["lag_bytes"] for s in a["segments"]} == ends
    assert {s["state"] for s in a["segments"]} == {"waiting"}  # no pass runs: nothing reads them
    assert all(c["position"] is None for s in a["segments"] for c in s["committed"].values())
    assert status["nodes"]["b"]["lag_bytes"] == 0
    assert all(status["destinations"][d]["lag_bytes"] == sum(ends.values()) for d in ("pg", "ch"))
    assert _samples(run.get("/metrics")[2])[("ray_cdc_lag_bytes", (("node", "a"),))] == sum(ends.values())


def test_ready_is_false_while_postgres_is_down_and_clickhouse_stays_reachable(run):
    _first_pass_done(run)
    before = run.json("/ready")
    assert before["ready"] and before["missing_actors"] == []
    # between passes only the observer runs (the pass's actors are gone with it)
    assert [(a["role"], a["state"]) for a in before["actors"]] == [("observer", "ALIVE")]
    run.postgres.stop()  # its DSN now points at a closed port
    try:
        report = run.json("/ready", expected=(503,))
        assert not report["ready"] and report["phase"] == "between_passes"
        assert not report["destinations"]["pg"]["reachable"] and report["destinations"]["pg"]["detail"]
        assert report["destinations"]["ch"] == {"reachable": True, "detail": None}
    finally:
        run.postgres.start()
    assert run.json("/ready")["ready"]


def test_every_endpoint_but_health_needs_the_token(run):
    for path in ("/ready", "/status", "/metrics", "/openapi.json"):
        for token in (None, "wrong", TOKEN[:-1]):
            status, _, body = run.get(path, token=token)
            assert status == 401, (path, token)
            jsonschema.validate(json.loads(body), response_schema(path, 401))
    assert run.get("/health", token="wrong")[0] == 200


def test_neither_the_token_nor_the_password_leaves_the_process(run):
    run.json("/status")
    run.json("/ready", expected=(200, 503))  # run alone, this test may find the pass starting
    run.get("/metrics")
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(timeout=120) == 0, run.output.read_text()[-3000:]
    output = run.output.read_text()
    assert "health API listening on" in output
    secrets = [TOKEN] + ([run.postgres.password] if run.postgres.kind == "debian" else [])
    for secret in secrets:
        assert secret not in output
        assert not [b for b in run.bodies if secret in b]
