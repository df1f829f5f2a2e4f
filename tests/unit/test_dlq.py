"""The dead-letter queue's plain logic: entries, splitting refused rows, redaction, the file store."""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ray_cdc.commitlog.arrow_batches import batch_schema
from ray_cdc.destinations.base import WriteResult
from ray_cdc.dlq import (
    DeadLetter,
    DeadLetterError,
    DeadLetterFilter,
    DeadLetterNotFoundError,
    FileDeadLetterStore,
    dead_letters,
    redact,
    split_rejected,
)
from ray_cdc.schema.cql import parse_cql_schema

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)

ORDERS = parse_cql_schema(
    "CREATE TABLE shop.orders (id uuid, line int, email text, amount decimal, tags set<text>, "
    "PRIMARY KEY (id, line)) WITH ID = 5a1c395e-b41f-11e5-9f22-ba0be0483c18;")[0]
USERS = parse_cql_schema(
    "CREATE TABLE crm.users (id int PRIMARY KEY, name text) WITH ID = 6b2d4a6f-b41f-11e5-9f22-ba0be0483c18;")[0]


def orders_batch(n: int = 6, segment_id: int = 7) -> pa.RecordBatch:
    """A batch with the exact layout writers receive (CQL columns, metadata columns, table metadata)."""
    schema = batch_schema(ORDERS)
    columns = {
        "id": [uuid.UUID(int=i).bytes for i in range(n)],
        "line": list(range(n)),
        "email": [f"user{i}@example.com" if i % 2 else None for i in range(n)],
        "amount": [f"{i}.50" for i in range(n)],
        "tags": [["a", str(i)] for i in range(n)],
        "_op": ["insert"] * (n - 1) + ["range_delete"],
        "_writetime": [1_700_000_000_000_000 + i for i in range(n)],
        "_ttl": [None] * (n - 1) + [60],
        "_expires_at": [None] * (n - 1) + [datetime(2026, 1, 2, tzinfo=timezone.utc)],
        "_segment_id": [segment_id] * n,
        "_position": [100 * (n - i) for i in range(n)],  # descending: the earliest row is the last
        "_present": [["email", "amount"]] * n,
        "_range": [None] * (n - 1) + [{"start": {"line": 1}, "start_size": 1, "start_inclusive": True,
                                       "end": {"line": 3}, "end_size": 1, "end_inclusive": False}],
        "_cells.tags": [None] * n,  # the element-wise companion of the non-frozen set
    }
    return pa.RecordBatch.from_arrays([pa.array(columns[f.name], f.type) for f in schema], schema=schema)


def users_batch(n: int = 2) -> pa.RecordBatch:
    schema = batch_schema(USERS)
    columns = {"id": list(range(n)), "name": [f"n{i}" for i in range(n)], "_op": ["update"] * n,
               "_segment_id": [3] * n, "_position": [10 + i for i in range(n)]}
    return pa.RecordBatch.from_arrays([pa.array(columns.get(f.name, [None] * n), f.type) for f in schema],
                                      schema=schema)


def letter(batch=None, *, destination="pg", error_class="RejectedRowsError", message="value too long",
           now=T0) -> DeadLetter:
    return DeadLetter.new(orders_batch() if batch is None else batch, destination=destination, node="n1",
                          error_class=error_class, message=message, now=now)


@pytest.fixture
def store(tmp_path) -> FileDeadLetterStore:
    return FileDeadLetterStore(tmp_path / "dlq")


# --- entries and splitting --------------------------------------------------------------------------


def test_entry_takes_table_and_earliest_position_from_the_batch():
    entry = letter()
    assert (entry.keyspace, entry.table, entry.qualified_table) == ("shop", "orders", "shop.orders")
    assert entry.table_id == "5a1c395e-b41f-11e5-9f22-ba0be0483c18"
    assert (entry.segment_id, entry.position) == (7, 100)  # the smallest position, not the first row's
    assert (entry.rows, entry.attempts, entry.first_seen, entry.last_seen) == (6, 1, T0, T0)
    assert uuid.UUID(entry.id).version == 4


def test_entry_needs_the_table_metadata():
    bare = pa.RecordBatch.from_pydict({"_segment_id": [1], "_position": [2]})
    with pytest.raises(ValueError, match="metadata"):
        DeadLetter.new(bare, destination="pg", node="n1", error_class="E", message="m")


def test_split_rejected_keeps_order_schema_and_first_reason():
    batch = orders_batch()
    result = WriteResult(rows=4, rejected=[(4, "too long"), (1, "bad date"), (4, "duplicate")])
    good, bad, reasons = split_rejected(batch, result.rejected)
    assert good.num_rows == 4 and bad.num_rows == 2
    assert good.schema == batch.schema and bad.schema == batch.schema
    assert good.schema.metadata == batch.schema.metadata == bad.schema.metadata
    assert bad.column("line").to_pylist() == [1, 4]
    assert reasons == ["bad date", "too long"]
    assert good.column("line").to_pylist() == [0, 2, 3, 5]


def test_split_rejected_nothing_and_out_of_range():
    batch = orders_batch()
    good, bad, reasons = split_rejected(batch, [])
    assert good.equals(batch) and bad.num_rows == 0 and reasons == []
    with pytest.raises(IndexError):
        split_rejected(batch, [(6, "x")])


def test_dead_letters_group_rows_by_reason():
    _, bad, reasons = split_rejected(orders_batch(), [(0, "a"), (2, "b"), (5, "a")])
    entries = dead_letters(bad, reasons, destination="pg", node="n1", error_class="RejectedRowsError", now=T0)
    assert [(e.message, e.payload.column("line").to_pylist()) for e in entries] == [("a", [0, 5]), ("b", [2])]
    assert [e.position for e in entries] == [100, 400]
    assert len({e.id for e in entries}) == 2


# --- redaction --------------------------------------------------------------------------------------


@pytest.mark.parametrize("message, secret, kept", [
    ("connect to postgresql://u:pw@h:5432/db failed", "pw", "postgresql://u:***@h:5432/db"),
    ("clickhouse://default:p@ss@ch:8123/x", "p@ss", "clickhouse://default:***@ch:8123/x"),
    ("host=h user=u password=s3cr3t dbname=x", "s3cr3t", "password=*** dbname=x"),
    ("host=h password='a b c' port=5", "a b c", "password=*** port=5"),
    ("PGPASSWORD=abc and sslpassword=zz9", "abc", "PGPASSWORD=*** and sslpassword=***"),
    ("http://h/?user=u&password=xx1&db=d", "xx1", "password=***&db=d"),
    ('{"password": "hunter2"}', "hunter2", '"password": ***'),
])
def test_redact_strips_passwords(message, secret, kept):
    cleaned = redact(message)
    assert secret not in cleaned and kept in cleaned


def test_redact_keeps_messages_without_secrets():
    for message in ['password authentication failed for user "u"', "postgresql://u@h/db",
                    'value too long for type character varying(10)']:
        assert redact(message) == message


# --- the file store ---------------------------------------------------------------------------------


def test_add_list_get_remove_count(store):
    a, b = letter(), letter(users_batch(), destination="ch")
    assert store.add([a, b]) == [a.id, b.id]
    assert store.count() == 2
    summaries = store.list()
    assert {s.id for s in summaries} == {a.id, b.id}
    assert all(s.payload is None for s in summaries)
    assert store.list(DeadLetterFilter(destination="ch"))[0] == b.summary()
    got = store.get(a.id)
    assert got == a and got.payload.equals(a.payload)
    assert store.remove([a.id, a.id, str(uuid.uuid4()), "../not-an-id"]) == 1
    assert store.count() == 1
    with pytest.raises(DeadLetterNotFoundError):
        store.get(a.id)
    assert sorted(p.name for p in store.directory.iterdir()) == [f"{b.id}.arrow", f"{b.id}.json"]


def test_payload_round_trip_keeps_schema_metadata_and_values(store):
    entry = letter()
    store.add([entry])
    payload = store.get(entry.id).payload
    assert payload.equals(entry.payload, check_metadata=True)
    assert payload.schema.metadata[b"table_id"] == b"5a1c395e-b41f-11e5-9f22-ba0be0483c18"
    assert payload.column("_range").to_pylist()[-1]["end"] == {"line": 3}
    # the payload file is plain Arrow IPC, readable without ray_cdc
    with pa.ipc.open_file(store.directory / f"{entry.id}.arrow") as reader:
        assert reader.read_all().num_rows == 6


def test_adding_an_id_twice_keeps_one_entry(store):
    entry = letter()
    store.add([entry])
    store.add([entry])
    assert store.count() == 1


def test_reopened_store_sees_the_entries(store):
    entry = letter()
    store.add([entry])
    again = FileDeadLetterStore(store.directory)
    assert again.list() == [entry.summary()]
    assert again.get(entry.id).payload.equals(entry.payload)


def test_a_crash_mid_write_leaves_no_entry(store):
    done = letter()
    store.add([done])
    crashed = letter()
    # What a crash can leave: the payload renamed into place, the sidecar only as a temporary file
    # (half written), and a temporary payload of yet another entry.
    (store.directory / f"{crashed.id}.arrow").write_bytes(b"ARROW1 half")
    (store.directory / f"{crashed.id}.json.0123abcd.tmp").write_bytes(b'{"id": "')
    (store.directory / f"{uuid.uuid4()}.arrow.4567ef.tmp").write_bytes(b"ARR")
    assert store.list() == [done.summary()]
    assert store.count() == 1
    with pytest.raises(DeadLetterNotFoundError):
        store.get(crashed.id)
    assert store.recover() == 3
    assert sorted(p.name for p in store.directory.iterdir()) == [f"{done.id}.arrow", f"{done.id}.json"]


def test_a_failed_sidecar_rename_leaves_no_entry_and_no_temporary(store, monkeypatch):
    entry = letter()
    real_replace = os.replace

    def crash_on_sidecar(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_sidecar)
    with pytest.raises(OSError, match="disk full"):
        store.add([entry])
    monkeypatch.undo()
    assert store.list() == [] and store.count() == 0
    assert [p.name for p in store.directory.iterdir()] == [f"{entry.id}.arrow"]  # orphan payload only
    assert store.recover() == 1 and not list(store.directory.iterdir())


def test_a_damaged_sidecar_is_an_error_not_a_silent_loss(store):
    entry = letter()
    store.add([entry])
    (store.directory / f"{entry.id}.json").write_text("{not json")
    with pytest.raises(DeadLetterError, match="unreadable"):
        store.list()


def test_messages_are_redacted_before_they_are_stored(store):
    entry = letter(message="COPY failed on postgresql://replicator:TopSecret1@db:5432/app (password=TopSecret1)")
    store.add([entry])
    on_disk = b"".join(p.read_bytes() for p in store.directory.iterdir())
    assert b"TopSecret1" not in on_disk
    # the unquoted value runs to whitespace: the ")" goes with it (better than leaking a password's tail)
    assert store.get(entry.id).message == "COPY failed on postgresql://replicator:***@db:5432/app (password=***"
    store.record_attempt(entry.id, RuntimeError("again: host=db password=TopSecret1"), now=T0)
    assert b"TopSecret1" not in b"".join(p.read_bytes() for p in store.directory.iterdir())


def test_mask_hook_is_applied_to_the_stored_payload(store):
    entry = letter()

    def hide_email(batch: pa.RecordBatch) -> pa.RecordBatch:
        index = batch.schema.get_field_index("email")
        masked = pc.if_else(pc.is_null(batch.column(index)), None, "masked")
        return batch.set_column(index, batch.schema.field(index), masked)

    store.add([entry], mask=hide_email)
    payload = store.get(entry.id).payload
    assert set(payload.column("email").to_pylist()) == {None, "masked"}
    assert b"example.com" not in (store.directory / f"{entry.id}.arrow").read_bytes()
    assert payload.schema.metadata == entry.payload.schema.metadata


def test_record_attempt(store):
    entry = letter()
    store.add([entry])
    later = T0 + timedelta(hours=1)
    updated = store.record_attempt(entry.id, ValueError("still bad"), now=later)
    assert (updated.attempts, updated.last_seen, updated.first_seen) == (2, later, T0)
    assert (updated.error_class, updated.message) == ("ValueError", "still bad")
    updated = store.record_attempt(entry.id, "plain text", now=later)
    assert (updated.attempts, updated.error_class, updated.message) == (3, "ValueError", "plain text")
    assert store.get(entry.id).attempts == 3 and store.get(entry.id).payload.equals(entry.payload)
    with pytest.raises(DeadLetterNotFoundError):
        store.record_attempt(str(uuid.uuid4()), "x")


def test_filters(store):
    old = letter(now=T0 - timedelta(days=3))
    fresh = letter(users_batch(), destination="ch", error_class="SchemaError", now=T0 - timedelta(minutes=5))
    mid = letter(destination="ch", now=T0 - timedelta(hours=2))
    store.add([fresh, old, mid])

    def ids(**kw):
        return [e.id for e in store.list(DeadLetterFilter(now=T0, **kw))]

    assert ids() == [old.id, mid.id, fresh.id]  # oldest first
    assert ids(destination="ch") == [mid.id, fresh.id]
    assert ids(table="crm.users") == [fresh.id]
    assert ids(table="shop.orders", destination="ch") == [mid.id]
    assert ids(error_class="RejectedRowsError") == [old.id, mid.id]
    assert ids(older_than=timedelta(hours=1)) == [old.id, mid.id]
    assert ids(newer_than=timedelta(hours=1)) == [fresh.id]
    assert ids(older_than=timedelta(hours=1), newer_than=timedelta(days=1)) == [mid.id]
    assert store.count(DeadLetterFilter(destination="pg")) == 1
    with pytest.raises(ValueError, match="keyspace.table"):
        DeadLetterFilter(table="users")


def test_concurrent_adds_get_unique_ids(store):
    batch = users_batch(1)
    ids: list[str] = []
    lock = threading.Lock()

    def worker():
        mine = store.add([DeadLetter.new(batch, destination="pg", node="n1", error_class="E", message="m")
                          for _ in range(10)])
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == len(set(ids)) == 80
    assert store.count() == 80
    assert {e.id for e in store.list()} == set(ids)


def test_sidecar_is_small_json_without_payload(store):
    entry = letter()
    store.add([entry])
    record = json.loads((store.directory / f"{entry.id}.json").read_text())
    assert record["id"] == entry.id and record["table"] == "orders" and record["rows"] == 6
    assert "payload" not in record
    assert oct(os.stat(store.directory / f"{entry.id}.arrow").st_mode & 0o777) == "0o600"
