"""`ray-cdc dlq` commands on a real file store: parsing, filters, list/show/purge output and exit codes.
Replay against real destinations: tests/integration/test_dlq_replay.py and test_dlq_cli_replay.py."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone

import pytest

from ray_cdc.dlq import DeadLetterFilter, DeadLetterNotFoundError, FileDeadLetterStore
from ray_cdc.dlq.cli import add_commands, filter_of, point_in_time
from ray_cdc.dlq.table_schema import MissingTableSchemaError, table_schema_of, with_table_schema
from tests.unit.test_dlq import ORDERS, T0, letter, orders_batch, users_batch

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ray-cdc")
    add_commands(root.add_subparsers())
    return root


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(f"sources: [{{name: n1, commitlog_dir: {tmp_path}}}]\nschema: {{from_log: true}}\n"
                    f"dlq: {{type: files, dir: {tmp_path / 'dlq'}}}\n")
    return path


@pytest.fixture
def store(tmp_path):
    return FileDeadLetterStore(tmp_path / "dlq")


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return args.handler(args)


def test_filters_from_the_command_line(config):
    args = parser().parse_args(["dlq", "list", str(config), "--destination", "pg", "--table", "shop.orders",
                                "--error-class", "RejectedRow", "--since", "2026-11-01T00:00",
                                "--until", "2026-11-02 00:00+01:00", "--id", "a", "--id", "b", "--json"])
    assert filter_of(args) == DeadLetterFilter(
        destination="pg", table="shop.orders", error_class="RejectedRow",
        since=datetime(2026, 11, 1, tzinfo=timezone.utc),  # no offset given: UTC
        until=datetime(2026, 11, 1, 23, 0, tzinfo=timezone.utc), ids=frozenset({"a", "b"}))
    assert args.json
    assert filter_of(parser().parse_args(["dlq", "replay", str(config)])) == DeadLetterFilter()


@pytest.mark.parametrize("text, expected", [
    ("7d", NOW - timedelta(days=7)), ("6h", NOW - timedelta(hours=6)), ("90m", NOW - timedelta(minutes=90)),
    ("2026-01-01", datetime(2026, 1, 1, tzinfo=timezone.utc)),
])
def test_point_in_time(text, expected):
    assert point_in_time(text, now=NOW) == expected


@pytest.mark.parametrize("argv", [
    ["dlq", "list", "c.yaml", "--table", "orders"],
    ["dlq", "list", "c.yaml", "--since", "last tuesday"],
    ["dlq", "show", "c.yaml"],
])
def test_bad_command_lines_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        parser().parse_args(argv)
    assert info.value.code == 2


def test_list_json_and_table(config, store, capsys):
    a = letter(message="COPY on postgresql://u:TopSecret1@db/app failed")
    b = letter(users_batch(), destination="ch", now=T0 + timedelta(hours=1))
    store.add([a, b])
    assert run(["dlq", "list", str(config), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["destination"], r["table"], r["rows"], r["attempts"]) for r in lines] == [
        (a.id, "pg", "shop.orders", 6, 1), (b.id, "ch", "crm.users", 2, 1)]
    assert lines[0]["source"] == "7:100" and lines[0]["first_seen"] == T0.isoformat()
    assert run(["dlq", "list", str(config), "--destination", "ch"]) == 0
    out = capsys.readouterr().out
    assert b.id in out and a.id not in out and out.endswith("1 entry, 2 row(s)\n")
    run(["dlq", "list", str(config)])
    assert "TopSecret1" not in capsys.readouterr().out


def test_show_prints_summary_and_rows_without_secrets(config, store, capsys):
    entry = letter(message="failed: host=db password=TopSecret1")
    store.add([entry])
    assert run(["dlq", "show", str(config), entry.id]) == 0
    out = capsys.readouterr().out
    assert "TopSecret1" not in out
    decoder = json.JSONDecoder()
    summary, end = decoder.raw_decode(out)
    assert summary["id"] == entry.id and summary["message"] == "failed: host=db password=***"
    rows = [json.loads(line) for line in out[end:].strip().splitlines()]
    assert [r["line"] for r in rows] == list(range(6))
    assert rows[0]["id"] == "0x" + "00" * 16 and rows[1]["email"] == "user1@example.com"
    assert rows[5]["_range"]["end"] == {"line": 3} and rows[5]["_expires_at"].startswith("2026-01-02")
    with pytest.raises(DeadLetterNotFoundError):
        run(["dlq", "show", str(config), "0b0e3f0e-0000-4000-8000-000000000000"])


def test_purge_needs_yes_and_removes_only_matching(config, store, capsys):
    keep = letter(destination="pg")
    gone = [letter(destination="ch"), letter(users_batch(), destination="ch")]
    store.add([keep, *gone])
    assert run(["dlq", "purge", str(config), "--destination", "ch"]) == 4
    assert "would delete 2 entries" in capsys.readouterr().out and store.count() == 3
    assert run(["dlq", "purge", str(config), "--destination", "ch", "--table", "crm.users", "--yes"]) == 0
    assert {e.id for e in store.list()} == {keep.id, gone[0].id}  # same first_seen: any order
    assert run(["dlq", "purge", str(config), "--id", gone[0].id, "--yes"]) == 0
    assert capsys.readouterr().out.endswith("deleted 1 entry\n")
    assert [e.id for e in store.list()] == [keep.id]


def test_file_store_filters_since_until_ids(store):
    old, mid, new = (letter(now=T0 + timedelta(hours=h)) for h in (0, 1, 2))
    store.add([old, mid, new])

    def ids(**kw):
        return [e.id for e in store.list(DeadLetterFilter(**kw))]

    assert ids(since=T0 + timedelta(hours=1)) == [mid.id, new.id]
    assert ids(until=T0 + timedelta(hours=1)) == [old.id]
    assert ids(ids={new.id, old.id, "not-an-id"}) == [old.id, new.id]
    with pytest.raises(ValueError, match="timezone-aware"):
        DeadLetterFilter(since=datetime(2026, 1, 1))


def test_payload_carries_its_table_schema():
    batch = with_table_schema(orders_batch(), ORDERS)
    assert table_schema_of(batch, entry="e1") == ORDERS
    assert batch.schema.metadata[b"table"] == b"orders"  # the batch's own metadata is kept
    with pytest.raises(MissingTableSchemaError, match="e1 \\(shop.orders\\)"):
        table_schema_of(orders_batch(), entry="e1")

