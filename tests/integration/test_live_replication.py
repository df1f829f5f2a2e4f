"""`ray-cdc run` against a live Cassandra 2.1 node: the snapshot of a table that already holds data,
then the node's archived commitlog segments, into the embedded PostgreSQL and chDB defaults; writes
of every kind go on during the snapshot. Each destination ends equal to `SELECT *`, row by row.

The node is this module's own (not the session's shared one): its commitlog archive then holds only
this module's writes, so the run's source directory is exactly what a user's `cdc_raw` would be.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ray_cdc.commitlog.legacy_reader import LegacyCommitLogReader
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.test_snapshot import (
    MANY,
    assert_equal,
    cassandra_rows,
    clickhouse_rows,
    fill,
    postgres_rows,
)
from tests.integration.test_snapshot import table_of as snapshot_table_of
from tests.services.cassandra_node import CassandraNode, CassandraNodeError, ensure_installed

pytestmark = pytest.mark.cassandra

START_TIMEOUT = 300  # the run's Ray and health API, on a loaded 2-core machine
RUN_TIMEOUT = 900  # snapshot, then the passes over the archive
FILLER = "CREATE TABLE {ks}.filler (k int PRIMARY KEY, v blob)"  # not replicated: closes segments


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """This module's own node; like the shared one, it FAILS the tests when it cannot start."""
    own = CassandraNode(tmp_path_factory.mktemp("live-cassandra"))
    try:
        ensure_installed()
        own.start()
    except CassandraNodeError as exc:
        pytest.fail(f"cannot start the Cassandra test node: {exc}", pytrace=False)
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture
def state(tmp_path) -> Path:
    """The run's state directory (embedded PostgreSQL, chDB, DLQ), outside pytest's temporary tree:
    pgserver runs PostgreSQL as its own user, and pytest makes /tmp/pytest-of-<user> private (0700)
    whenever a session starts, which would cut that server off from its data in mid-run."""
    directory = Path(tempfile.mkdtemp(prefix="ray-cdc-live-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Run:
    """One `ray-cdc run` process and its health API."""

    process: subprocess.Popen
    log: Path
    port: int | None = None
    bodies: list[str] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_port(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = re.search(r"health API listening on http://127\.0\.0\.1:(\d+)", self.output())
            if found:
                self.port = int(found.group(1))
                return
            assert self.process.poll() is None, f"ray-cdc run exited:\n{self.output()[-4000:]}"
            time.sleep(0.3)
        raise AssertionError(f"the health API did not start:\n{self.output()[-4000:]}")

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status", timeout=60) as response:
            return json.loads(response.read())

    def wait_for(self, what: str, condition, timeout: float = RUN_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        status = {}
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"ray-cdc run exited:\n{self.output()[-4000:]}"
            status = self.status()
            if condition(status):
                return status
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}; last status {json.dumps(status)[:2000]}\n"
                             f"{self.output()[-3000:]}")

    def stop(self, timeout: float = 600) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
            raise AssertionError(f"ray-cdc run did not stop on SIGTERM:\n{self.output()[-4000:]}") from None


def start_run(config: Path, log: Path, *extra: str) -> Run:
    env = {**os.environ, "RAY_ADDRESS": ""}
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "ray_cdc", "run", str(config), *extra], env=env,
                                   stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    return Run(process, log)


def write_config(tmp: Path, state: Path, node: CassandraNode, ks: str, snapshot: str, segments: Path) -> Path:
    """Embedded destinations (no `destinations`: pgserver and chDB under the state directory); the
    schemas of every keyspace (the archive holds other tests' tables too), `ks.many` replicated."""
    config = tmp / "config.yaml"
    config.write_text(f"""
sources:
  - {{name: n1, commitlog_dir: {segments}}}
schema:
  cassandra: {{contact_points: [{node.host}], port: {node.port}}}
tables: {{include: ["{ks}.many"]}}
snapshot: {snapshot}
pipeline: {{batch_rows: 300, state_dir: {state}, poll_interval: 1, segment_retention: keep}}
observability: {{host: 127.0.0.1, port: 0}}
""")
    return config


def new_keyspace(session) -> str:
    ks = "live_" + uuid.uuid4().hex[:8]
    session.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    session.execute(MANY.format(ks=ks))
    session.execute(FILLER.format(ks=ks))
    return ks


def snapshot_fraction(status: dict, ks: str) -> float | None:
    table = status["snapshot"].get(f"{ks}.many")
    return None if table is None else table["fraction_done"]


# --- the writes ------------------------------------------------------------------------------------


class Writer:
    """Writes of every kind, one at a time, until stopped; counts those made while `during()` holds."""

    def __init__(self, session, ks: str, partitions: int, during):
        self.session, self.ks, self.partitions, self.during = session, ks, partitions, during
        self.done = threading.Event()
        self.count = self.count_during = 0
        self.kinds_during: set[str] = set()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _step(self, n: int) -> str:
        ks, p, ex = self.ks, n * 7919 % self.partitions, self.session.execute
        kind = ("update", "insert", "ttl", "collections", "removals", "row_delete", "static", "ttl_short",
                "partition_delete")[n % 9]
        if kind == "update":  # a partial update: other writetimes than the row's other cells
            ex(f"UPDATE {ks}.many SET t = %s, i = %s WHERE id = %s AND ck = 'c1'", (f"late {n}", n, p))
        elif kind == "insert":
            ex(f"INSERT INTO {ks}.many (id, ck, t, b, f) VALUES (%s, %s, 'fresh', %s, %s)", (p, f"new{n}", n, n / 3))
        elif kind == "ttl":
            ex(f"INSERT INTO {ks}.many (id, ck, t, i) VALUES (%s, %s, 'lives', %s) USING TTL 3600", (p, f"ttl{n}", n))
        elif kind == "ttl_short":  # gone before the comparison, in Cassandra and in the destinations
            ex(f"INSERT INTO {ks}.many (id, ck, t) VALUES (%s, %s, 'expires') USING TTL 2", (p, f"short{n}"))
        elif kind == "collections":
            ex(f"UPDATE {ks}.many SET s = s + %s, m[%s] = %s WHERE id = %s AND ck = 'c0'", ({f"x{n}"}, f"w{n}", n, p))
        elif kind == "removals":
            ex(f"UPDATE {ks}.many SET s = s - {{'b1'}} WHERE id = %s AND ck = 'c1'", (p,))
            ex(f"DELETE m['k0'] FROM {ks}.many WHERE id = %s AND ck = 'c0'", (p,))
        elif kind == "row_delete":
            ex(f"DELETE FROM {ks}.many WHERE id = %s AND ck = 'c2'", (p,))
        elif kind == "static":
            ex(f"UPDATE {ks}.many SET st = %s WHERE id = %s", (f"st{n}", p))
        elif n % 4 == 0:  # partition deletes, rarer
            ex(f"DELETE FROM {ks}.many WHERE id = %s", (p,))
        return kind

    def _loop(self) -> None:
        n = 0
        try:
            while not self.done.is_set():
                during = self.during()
                kind = self._step(n)
                if during and self.during():  # the snapshot ran before and after this write
                    self.count_during += 1
                    self.kinds_during.add(kind)
                n += 1
                self.count = n
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            self.error = exc

    def start(self) -> Writer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.done.set()
        self.thread.join(120)
        if self.error is not None:
            raise self.error


def list_edits(session, ks: str, partitions: int) -> None:
    """List appends, prepends and overwrites, after the snapshot (commitlog only): a list element
    the snapshot reads has no id CQL can show (ray_cdc/snapshot/rows.py)."""
    for p in range(0, partitions, 37):
        session.execute(f"UPDATE {ks}.many SET l = l + [%s] WHERE id = %s AND ck = 'c1'", (p, p))
        session.execute(f"UPDATE {ks}.many SET l = [%s] + l WHERE id = %s AND ck = 'c2'", (-p, p))
        session.execute(f"UPDATE {ks}.many SET l = [1, 2, %s] WHERE id = %s AND ck = 'c0'", (p, p))


def archive_everything(node: CassandraNode, session, ks: str) -> int:
    """A sentinel row, then filler until the segment holding it is archived (2.1 archives only full
    segments); each archived segment is decoded once. Returns the number of archived segments then."""
    session.execute(f"INSERT INTO {ks}.filler (k, v) VALUES (-1, 0x00)")
    reader = LegacyCommitLogReader(SchemaRegistry([t for t in snapshot_tables(session, ks) if t.name == "filler"]),
                                   unknown_tables="skip")
    seen: set[Path] = set()
    deadline = time.monotonic() + 300
    for n in itertools.count(1):
        session.execute(f"INSERT INTO {ks}.filler (k, v) VALUES (%s, %s)", (n, os.urandom(100_000)))
        if n % 4:
            continue
        new = [p for p in node.archived_segments() if p not in seen]
        seen.update(new)
        if any(c.partition_key["k"] == -1 for c in reader.changes(new)):
            return len(seen)
        assert time.monotonic() < deadline, f"the sentinel's segment was not archived in time ({sorted(seen)})"
        time.sleep(0.5)
    raise AssertionError("unreachable")


def snapshot_tables(session, ks: str):
    from ray_cdc.schema.cluster import load_cluster_schema

    return load_cluster_schema(session=session, keyspaces=[ks])


def all_segments_done(count: int):
    def done(status: dict) -> bool:
        n1 = status["nodes"].get("n1")
        return n1 is not None and n1["segments_total"] >= count and n1["segments_done"] == n1["segments_total"]
    return done


# --- comparing ----------------------------------------------------------------------------------------


def compare_destinations(session, ks: str, state: Path) -> int:
    import pgserver

    table = snapshot_table_of(session, ks)
    expected = cassandra_rows(session, table)
    server = pgserver.get_server(state / "postgres", cleanup_mode="stop")
    try:
        assert_equal(expected, postgres_rows(server.get_uri(), table, name="postgres", schema=None), "PostgreSQL")
    finally:
        server.cleanup()
    assert_equal(expected, clickhouse_rows(state / "clickhouse", table), "ClickHouse")
    return len(expected)


def snapshot_log(run: Run) -> tuple[int, int, bool]:
    """(rows, ranges read, stopped) from the run's snapshot summary line."""
    found = re.search(r"snapshot: (\d+) rows of \d+ tables in [\d.]+ s, (\d+) ranges read[^\n]*", run.output())
    assert found, f"no snapshot summary in the log:\n{run.output()[-3000:]}"
    return int(found[1]), int(found[2]), "stopped on request" in found[0]


# --- the tests -----------------------------------------------------------------------------------------


def test_run_snapshots_a_live_table_while_writes_go_on_then_follows_its_commitlog(node, tmp_path, state):
    session = node.session()
    ks = new_keyspace(session)
    partitions = 1500
    fill(session, ks, partitions)
    config = write_config(tmp_path, state, node, ks, "{consistency: ONE, fetch_size: 60, parallelism: 2, "
                                                     "split_count: 40, batch_rows: 300, progress_interval: 1s}",
                          node.archive_dir)
    run = start_run(config, tmp_path / "run.log")
    try:
        run.wait_port()
        fraction: list[float | None] = [None]

        def watch():  # the snapshot's progress as the run's /status shows it, every 0.2 s
            while not writer.done.is_set():
                try:
                    fraction[0] = snapshot_fraction(run.status(), ks)
                except OSError:
                    pass
                time.sleep(0.2)

        writer = Writer(session, ks, partitions + 50, lambda: fraction[0] is not None and 0 < fraction[0] < 1)
        watcher = threading.Thread(target=watch, daemon=True)
        writer.start()
        watcher.start()
        run.wait_for("the end of the snapshot", lambda s: snapshot_fraction(s, ks) == 1.0)
        time.sleep(2)  # a few more writes, through the commitlog alone
        writer.stop()
        watcher.join(60)
        list_edits(session, ks, partitions)
        assert writer.count_during >= 20, (writer.count_during, writer.count)
        assert {"update", "insert", "collections", "removals", "row_delete"} <= writer.kinds_during, writer.kinds_during
        segments = archive_everything(node, session, ks)
        run.wait_for("every archived segment applied", all_segments_done(segments))
        assert run.stop() == 0, run.output()[-4000:]
    finally:
        run.stop()
    rows, ranges, stopped = snapshot_log(run)
    assert rows >= partitions * 3 and ranges >= 40 and not stopped
    time.sleep(2)  # the 2-second TTL rows written last are gone in Cassandra: they must be in both
    assert compare_destinations(session, ks, state) >= partitions * 3


def test_a_run_stopped_mid_snapshot_continues_from_the_recorded_ranges(node, tmp_path, state):
    """SIGTERM while the snapshot runs: the ranges in flight are committed and the run exits 0; the
    next run reads only the token ranges some destination lacks, and the destinations end equal.
    (No commitlog here: the source directory is empty, the snapshot alone is under test.)"""
    session = node.session()
    ks = new_keyspace(session)
    partitions = 1200
    fill(session, ks, partitions)
    segments = tmp_path / "no-segments"
    segments.mkdir()
    config = write_config(tmp_path, state, node, ks, "{consistency: ONE, fetch_size: 20, parallelism: 2, "
                                                     "split_count: 64, batch_rows: 60, progress_interval: 1s}",
                          segments)
    first = start_run(config, tmp_path / "first.log")
    try:
        first.wait_port()
        status = first.wait_for("the snapshot under way", lambda s: (snapshot_fraction(s, ks) or 0) > 0.1)
    finally:
        code = first.stop()
    assert snapshot_fraction(status, ks) < 1, "the snapshot ended before it could be stopped"
    assert code == 0, first.output()[-4000:]
    first_rows, first_ranges, stopped = snapshot_log(first)
    assert stopped and 0 < first_ranges < 64 and first_rows > 0

    second = start_run(config, tmp_path / "second.log", "--once")
    try:
        code = second.process.wait(RUN_TIMEOUT)
    finally:
        second.stop()
    assert code == 0, second.output()[-4000:]
    second_rows, _, stopped = snapshot_log(second)
    total = compare_destinations(session, ks, state)
    assert not stopped
    # the second run read only what the first had not committed (its ranges in flight were finished
    # before it exited): over the two runs every row was read exactly once
    assert 0 < second_rows < total and first_rows + second_rows == total, (first_rows, second_rows, total)
