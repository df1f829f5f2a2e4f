"""`ray-cdc segments dump | generate` and `ray-cdc demo`, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ray_cdc.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from ray_cdc.commitlog.reader import sort_segments

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("RAY_CDC_SHARED", REPO.parent / "shared")) / "fixtures" / "cassandra-commitlog"
needs_fixtures = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real segments not found at {SHARED}")
KEYS = {"keyspace", "table", "table_id", "segment_id", "position", "kind", "partition_key", "clustering", "cells"}
CELL_KEYS = {"value", "timestamp", "ttl", "expires_at", "deleted"}


def _dump(capsys, *args) -> tuple[int, list[dict], str]:
    code = main(["segments", "dump", *map(str, args)])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


@needs_fixtures
def test_dump_real_segment_with_schema_from_log(capsys):
    code, rows, _ = _dump(capsys, *sorted((SHARED / "4.0.11").glob("*.log")), "--schema-from-log")
    assert code == EXIT_OK
    assert len(rows) == 355
    assert all(KEYS <= set(r) for r in rows)
    first = rows[0]
    assert (first["keyspace"], first["table"], first["kind"]) == ("Keyspace1", "Standard1", "row")
    assert first["table_id"] == "657e5210-7cbb-11ee-9858-c9aa1eb53e69"
    assert first["segment_id"] == 1699285478684
    assert first["clustering"] == {"col": "name0"}
    assert set(first["cells"]["val"]) >= CELL_KEYS
    assert first["cells"]["val"]["value"].startswith("0x")  # blob, as CQL writes blob literals
    positions = [r["position"] for r in rows]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


@needs_fixtures
def test_dump_with_a_ddl_file_equals_schema_from_log(capsys, tmp_path):
    ddl = tmp_path / "schema.cql"
    ddl.write_text('CREATE TABLE "Keyspace1"."Standard1" (key ascii, col ascii, val blob, PRIMARY KEY (key, col))\n'
                   "    WITH ID = 657e5210-7cbb-11ee-9858-c9aa1eb53e69;\n")
    segment = next((SHARED / "4.0.11").glob("*.log"))
    _, from_ddl, _ = _dump(capsys, segment, "--schema", ddl, "--unknown-tables", "skip")
    _, from_log, _ = _dump(capsys, segment, "--schema-from-log")
    assert from_ddl == from_log


@needs_fixtures
def test_dump_without_schema_names_the_unknown_table(capsys):
    segment = next((SHARED / "4.0.11").glob("*.log"))
    code, rows, err = _dump(capsys, segment)
    assert code == EXIT_ERROR and rows == []
    assert "UnknownTableError" in err and "657e5210-7cbb-11ee-9858-c9aa1eb53e69" in err and segment.name in err
    code, rows, err = _dump(capsys, segment, "--unknown-tables", "skip")
    assert code == EXIT_OK and rows == []
    assert "657e5210-7cbb-11ee-9858-c9aa1eb53e69" in err


@needs_fixtures
def test_dump_encrypted_segment_with_keystore_password_from_env(capsys, monkeypatch):
    monkeypatch.setenv("RAY_CDC_KEYSTORE_PASSWORD", "cassandra")
    segments = sorted((SHARED / "3.4").glob("*.log"))
    code, rows, err = _dump(capsys, *segments, "--schema-from-log", "--keystore", SHARED / "3.4" / "cassandra.keystore")
    assert code == EXIT_OK and len(rows) == 14561
    assert "cassandra" not in err


@needs_fixtures
def test_wrong_keystore_password_is_an_error_without_the_password(capsys):
    segments = sorted((SHARED / "3.4").glob("*.log"))
    code, rows, err = _dump(capsys, *segments, "--schema-from-log", "--keystore", SHARED / "3.4" / "cassandra.keystore",
                            "--keystore-password", "not-the-secret-pw")
    assert code == EXIT_ERROR and rows == []
    assert "KeystoreError" in err and "not-the-secret-pw" not in err


def test_generate_then_dump_round_trip(capsys, tmp_path):
    assert main(["segments", "generate", "--out", str(tmp_path), "--rows", "400", "--descriptor-version", "8",
                 "--compression", "zstd", "--seed", "5"]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    segments = sort_segments(tmp_path.glob("CommitLog-8-*.log"))
    assert segments and (tmp_path / "schema.cql").is_file()
    code, rows, _ = _dump(capsys, *segments, "--schema", tmp_path / "schema.cql")
    assert code == EXIT_OK
    assert len(rows) == summary["row_changes"]
    kinds = {r["kind"] for r in rows}
    assert kinds == {"row", "partition_delete", "range_delete"}
    json.dumps(rows)  # every value is JSON-native


def test_dump_resumes_after_a_position(capsys, tmp_path):
    main(["segments", "generate", "--out", str(tmp_path), "--rows", "200"])
    capsys.readouterr()
    segments = sort_segments(tmp_path.glob("CommitLog-*.log"))
    _, rows, _ = _dump(capsys, *segments, "--schema", tmp_path / "schema.cql")
    middle = rows[len(rows) // 2]
    start = f"{middle['segment_id']}:{middle['position']}"
    _, rest, _ = _dump(capsys, *segments, "--schema", tmp_path / "schema.cql", "--start", start)
    assert rest == [r for r in rows if (r["segment_id"], r["position"]) > (middle["segment_id"], middle["position"])]


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["segments", "dump"])
    assert info.value.code == EXIT_USAGE
    assert main([]) == EXIT_USAGE


def test_garbage_file_is_a_typed_error_naming_it(capsys, tmp_path):
    bad = tmp_path / "CommitLog-7-123.log"
    bad.write_bytes(os.urandom(4096))
    code, _, err = _dump(capsys, bad)
    assert code == EXIT_ERROR and str(bad) in err and "SegmentHeaderError" in err


def test_python_dash_m_and_demo_run(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ray_cdc", "demo", "--rows", "3000", "--out", str(tmp_path)],
                            check=False, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "rows/s" in result.stdout and "ray_cdc_demo." in result.stdout
