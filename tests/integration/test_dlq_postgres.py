"""PostgresDeadLetterStore against the real PostgreSQL test server (the `postgres_server` fixture)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest

from ray_cdc.dlq import (
    DeadLetterError,
    DeadLetterFilter,
    DeadLetterNotFoundError,
    PostgresDeadLetterStore,
    dead_letters,
    split_rejected,
)
from tests.unit.test_dlq import T0, letter, orders_batch, users_batch


@pytest.fixture
def store(postgres_server):
    # A table per test: tests stay independent on the one session server.
    store = PostgresDeadLetterStore(postgres_server.dsn, table=f"dlq_{uuid.uuid4().hex[:12]}")
    try:
        yield store
    finally:
        store.close()


def test_table_created_on_first_use_and_entries_round_trip(store, postgres_server):
    a, b = letter(), letter(users_batch(), destination="ch", error_class="SchemaError")
    assert store.add([a, b]) == [a.id, b.id]
    assert store.count() == 2
    assert store.list() == sorted([a.summary(), b.summary()], key=lambda e: e.id)  # same first_seen: by id
    assert all(s.payload is None for s in store.list())
    got = store.get(a.id)
    assert got == a
    assert got.payload.equals(a.payload, check_metadata=True)
    assert got.first_seen == T0 and got.first_seen.tzinfo is not None
    with psycopg.connect(postgres_server.dsn) as conn:
        data = conn.execute(f"SELECT payload FROM {store.table} WHERE id = %s", [a.id]).fetchone()[0]
    assert pa.ipc.open_stream(bytes(data)).read_all().num_rows == 6  # plain Arrow IPC stream


def test_remove_count_and_not_found(store):
    a, b = letter(), letter()
    store.add([a, b])
    store.add([a])  # a retried add: still one entry
    assert store.count() == 2
    assert store.remove([a.id, str(uuid.uuid4()), "not-an-id"]) == 1
    assert [e.id for e in store.list()] == [b.id]
    with pytest.raises(DeadLetterNotFoundError):
        store.get(a.id)
    with pytest.raises(DeadLetterNotFoundError):
        store.get("'; DROP TABLE x; --")


def test_filters(store):
    old = letter(now=T0 - timedelta(days=3))
    fresh = letter(users_batch(), destination="ch", error_class="SchemaError", now=T0 - timedelta(minutes=5))
    mid = letter(destination="ch", now=T0 - timedelta(hours=2))
    store.add([fresh, old, mid])

    def ids(**kw):
        return [e.id for e in store.list(DeadLetterFilter(now=T0, **kw))]

    assert ids() == [old.id, mid.id, fresh.id]
    assert ids(destination="ch") == [mid.id, fresh.id]
    assert ids(table="crm.users") == [fresh.id]
    assert ids(error_class="RejectedRowsError") == [old.id, mid.id]
    assert ids(older_than=timedelta(hours=1), newer_than=timedelta(days=1)) == [mid.id]
    assert store.count(DeadLetterFilter(destination="ch", now=T0)) == 2


def test_record_attempt_and_redaction(store, postgres_server):
    entry = letter(message="COPY on postgresql://replicator:TopSecret1@db/app failed")
    store.add([entry])
    later = T0 + timedelta(minutes=10)
    updated = store.record_attempt(entry.id, RuntimeError("again, password=TopSecret1"), now=later)
    assert (updated.attempts, updated.last_seen, updated.error_class) == (2, later, "RuntimeError")
    assert store.get(entry.id) == updated
    with psycopg.connect(postgres_server.dsn) as conn:
        text = conn.execute(f"SELECT message FROM {store.table}").fetchone()[0]
    assert "TopSecret1" not in text and text == "again, password=***"
    with pytest.raises(DeadLetterNotFoundError):
        store.record_attempt(str(uuid.uuid4()), "x")


def test_split_batch_to_store(store):
    good, bad, reasons = split_rejected(orders_batch(), [(1, "too long"), (3, "too long"), (2, "bad")])
    entries = dead_letters(bad, reasons, destination="pg", node="n1", error_class="RejectedRowsError")
    store.add(entries)
    assert good.num_rows == 3
    stored = {e.message: store.get(e.id).payload.column("line").to_pylist() for e in store.list()}
    assert stored == {"too long": [1, 3], "bad": [2]}


def test_connection_failures_are_dlq_errors_without_the_password(postgres_server):
    from tests.services.postgres import free_port

    dsns = [f"postgresql://replicator:WrongSecret9@127.0.0.1:{free_port()}/app?connect_timeout=3"]
    if postgres_server.kind == "debian":  # pgserver trusts every password: no refusal to show there
        dsns.append(postgres_server.dsn_with_password("WrongSecret9"))
    for dsn in dsns:
        store = PostgresDeadLetterStore(dsn)
        with pytest.raises(DeadLetterError) as info:
            store.count()
        assert "WrongSecret9" not in str(info.value) and "WrongSecret9" not in repr(store)


def test_run_configured_embedded_postgres_dlq_gets_the_running_server():
    """`dlq: {type: postgres, dsn: pgserver://DIR}`: the factory the writers get holds the started
    embedded server's address (psycopg cannot open `pgserver://`), and the store works through it."""
    from ray_cdc.config import load_config
    from ray_cdc.pipeline.run import EmbeddedServers, dead_letter_factory

    # outside pytest's private (0700) tree: pgserver runs PostgreSQL as its own user
    home = Path(tempfile.mkdtemp(prefix="ray-cdc-dlq-"))
    home.chmod(0o755)
    (home / "cdc_raw").mkdir()
    path = home / "config.yaml"
    path.write_text("sources: [{name: n1, commitlog_dir: cdc_raw}]\nschema: {from_log: true}\n"
                    "dlq: {type: postgres, dsn: 'pgserver://dlqpg', table: dead}\n")
    factory = dead_letter_factory(load_config(path), EmbeddedServers())
    assert factory.location.startswith("postgresql://") and factory.table == "dead"
    store = factory()
    try:
        entry = letter()
        store.add([entry])
        assert [e.id for e in store.list()] == [entry.id]
    finally:
        store.close()
        shutil.rmtree(home, ignore_errors=True)
