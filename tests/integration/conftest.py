"""Fixtures for tests against real servers the test run installs and starts itself.

`cassandra_node`: one Cassandra 2.1.0 node for the whole session (tests.services.CassandraNode).
It installs the node with scripts/install-test-services.sh when .test-services lacks it. If the node
cannot be installed or started, every test using it FAILS with the reason and the log tail: tests that
need a service never skip. Mark them `@pytest.mark.cassandra`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # `tests.services` lives at the repository root
    sys.path.insert(0, str(_ROOT))

from tests.services.cassandra_node import CassandraNode, CassandraNodeError, ensure_installed


@pytest.fixture(scope="session")
def cassandra_node(tmp_path_factory):
    """A running single-node Cassandra 2.1.0 on 127.0.0.1 (free ports; `.port` is the native CQL
    port), commitlog in `.commitlog_dir`, closed segments archived in `.archive_dir`."""
    problem = None
    install_seconds = 0.0
    try:
        install_seconds = ensure_installed()
    except CassandraNodeError as exc:
        problem = f"cannot install the Cassandra test node: {exc}"
    if problem:
        pytest.fail(problem, pytrace=False)

    node = CassandraNode(tmp_path_factory.mktemp("cassandra"))
    started = time.monotonic()
    try:
        node.start()
    except CassandraNodeError as exc:
        problem = f"cannot start the Cassandra test node: {exc}"
    except Exception as exc:  # noqa: BLE001 - anything else (driver import, OS errors): still a loud failure
        node.stop()
        problem = f"cannot start the Cassandra test node: {type(exc).__name__}: {exc}"
    if problem:
        pytest.fail(problem, pytrace=False)
    sys.stderr.write(
        f"\n[cassandra_node] install {install_seconds:.1f} s, start {time.monotonic() - started:.1f} s "
        f"({node.attempts} attempt(s)), "
        f"native port {node.port}, dir {node.base_dir}\n"
    )
    try:
        yield node
    finally:
        node.stop()


# --- PostgreSQL ------------------------------------------------------------------------------------

from tests.services.postgres import PostgresServer, PostgresServerError


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A running PostgreSQL for the whole session (tests.services.PostgresServer): Debian's 15
    binaries when installed, else pgserver. FAILS (never skips) with the reason if it cannot start."""
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    started = time.monotonic()
    problem = None
    try:
        server.start()
    except PostgresServerError as exc:
        problem = f"cannot start the PostgreSQL test server: {exc}"
    except Exception as exc:  # noqa: BLE001 - import or OS errors: still a loud failure
        problem = f"cannot start the PostgreSQL test server: {type(exc).__name__}: {exc}"
    if problem:
        server.remove()
        pytest.fail(problem, pytrace=False)
    sys.stderr.write(f"\n[postgres_server] {server.kind} up in {time.monotonic() - started:.1f} s, "
                     f"port {server.port}\n")
    try:
        yield server
    finally:
        server.remove()
