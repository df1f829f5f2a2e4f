"""`ray-cdc dlq` against a real PostgreSQL destination and a PostgreSQL DLQ table, from a config file.

Rows a CHECK constraint refuses land in the DLQ; `replay --dry-run` changes nothing; `replay` before
the fix leaves them (exit 1, attempts 2); after the constraint is dropped `replay --id` takes one
entry, `replay` the rest, `list` is empty, the destination equals the oracle of every change. A
payload masked before it was stored (a keyed hash) arrives in the destination exactly as stored:
replay does not mask again. No command prints the DSN's password."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import uuid

import pyarrow as pa

from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.config import load_config
from ray_cdc.dlq.cli import add_commands, opened_store
from ray_cdc.pipeline.run import EmbeddedServers, destination_factories
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.pipeline_checks import assert_postgres_equals_oracle
from tests.integration.test_dlq_pipeline import events_table
from tests.integration.test_dlq_replay import Constraint, replicate, write_workload
from tests.integration.test_postgres_destination import fetch_state
from tests.support.expected_state import expected_state


def run(argv: list[str], capsys) -> tuple[int, str]:
    root = argparse.ArgumentParser(prog="ray-cdc")
    add_commands(root.add_subparsers())
    args = root.parse_args(argv)
    code = args.handler(args)
    return code, capsys.readouterr().out


def write_config(tmp_path, postgres_server, name: str, keyspace: str):
    path = tmp_path / "config.yaml"
    path.write_text(f"""\
sources: [{{name: a, commitlog_dir: {tmp_path / 'a'}}}]
schema: {{from_log: true}}
destinations:
  {name}: {{type: postgres, dsn: "{postgres_server.dsn}", schema: {keyspace}}}
dlq: {{type: postgres, dsn: "{postgres_server.dsn}", table: dlq_{keyspace}}}
retry: {{initial_backoff: 10ms, max_backoff: 100ms, max_elapsed: 30s}}
""")
    return path


def constrained_destination(tmp_path, postgres_server):
    """A config whose PostgreSQL destination has a CHECK constraint its workload breaks, that
    destination (open), the constraint, the table and the refused rows' positions."""
    keyspace = "cli_" + uuid.uuid4().hex[:8]
    name = "pg_" + keyspace
    table = events_table(keyspace)
    refused = write_workload(tmp_path / "a", table)
    config_path = write_config(tmp_path, postgres_server, name, keyspace)
    config = load_config(config_path)
    constraint = Constraint("postgres", postgres_server.dsn, table)
    destination = destination_factories(config, EmbeddedServers())[name]()
    destination.open()
    constraint.add(destination)
    return config_path, config, name, table, destination, constraint, refused


def test_dlq_commands_replay_after_the_fix(postgres_server, tmp_path, capsys):
    config_path, config, name, table, destination, constraint, refused = constrained_destination(
        tmp_path, postgres_server)
    with opened_store(config) as store:
        replicate(tmp_path / "a", table, destination, store)
    outputs = []

    def dlq(*argv: str) -> tuple[int, str]:
        code, out = run(["dlq", *argv], capsys)
        outputs.append(out)
        return code, out

    code, out = dlq("list", str(config_path), "--json")
    entries = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(entries) == len(refused) == 6
    assert all(e["destination"] == name and e["attempts"] == 1 and "no_bad" in e["message"] for e in entries)

    code, out = dlq("replay", str(config_path), "--dry-run")
    assert code == 0 and out.endswith("would replay 6 of 6 entries, 6 row(s)\n")
    code, out = dlq("replay", str(config_path), "--table", table.qualified_name)
    assert code == 1 and [line.split()[0] for line in out.splitlines()[:-1]] == ["refused"] * 6
    code, out = dlq("list", str(config_path), "--json")
    assert {json.loads(line)["attempts"] for line in out.splitlines()} == {2}

    constraint.drop(destination)
    first = entries[0]["id"]
    code, out = dlq("replay", str(config_path), "--id", first)
    assert code == 0 and out.startswith(f"replayed  {first}") and out.endswith("replayed 1 of 1 entry, 1 row(s)\n")
    code, out = dlq("replay", str(config_path), "--destination", name)
    assert code == 0 and out.endswith("replayed 5 of 5 entries, 5 row(s)\n")
    code, out = dlq("list", str(config_path))
    assert code == 0 and out.endswith("0 entries, 0 row(s)\n")

    changes = list(CommitLogReader(SchemaRegistry([table])).changes(sorted((tmp_path / "a").glob("*.log"))))
    assert_postgres_equals_oracle(destination, expected_state(changes), [table])
    destination.close()
    if postgres_server.kind == "debian":  # its DSN holds a password (pgserver's has none)
        assert all(postgres_server.password not in out for out in outputs)


def test_replay_does_not_mask_again(postgres_server, tmp_path, capsys):
    """The writer's input (what the DLQ keeps) is masked already: a keyed hash applied again would
    give another value. Here the entry's note is hashed when stored; replay must write that hash."""
    config_path, config, _, table, destination, constraint, _ = constrained_destination(tmp_path, postgres_server)
    try:

        def keyed_hash(batch: pa.RecordBatch) -> pa.RecordBatch:
            index = batch.schema.get_field_index("note")
            hashed = [hmac.new(b"test key", v.encode(), hashlib.sha256).hexdigest()
                      for v in batch.column(index).to_pylist()]
            return batch.set_column(index, batch.schema.field(index), pa.array(hashed))

        with opened_store(config) as store:
            masking_store = _MaskingStore(store, keyed_hash)
            replicate(tmp_path / "a", table, destination, masking_store)
            stored = {tuple(r.values()) for e in store.list()
                      for r in store.get(e.id).payload.select(["id", "ck", "note"]).to_pylist()}
        assert len(stored) == 6 and not any(note.startswith("bad") for _, _, note in stored)
        constraint.drop(destination)
        code, _ = run(["dlq", "replay", str(config_path)], capsys)
        assert code == 0
        rows = fetch_state(destination, table, False)
        # each replayed row holds the hash as stored (hashed once); key (3, 3) keeps its newer note
        assert {(i, ck): rows[(i, ck)]["note"] for i, ck, _ in stored} == {
            (i, ck): "newer 3" if (i, ck) == (3, 3) else note for i, ck, note in stored}
    finally:
        destination.close()


class _MaskingStore:
    """The configured store, adding entries through its `mask` hook (the stores' masking rule)."""

    def __init__(self, store, mask):
        self._store, self._mask = store, mask

    def add(self, entries):
        return self._store.add(entries, mask=self._mask)
