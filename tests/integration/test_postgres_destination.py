"""The PostgreSQL destination against a real server (the `postgres_server` fixture).

Correctness is checked against `tests.support.expected_state`, an independent model of Cassandra's
reconciliation over the decoder's change records.
"""

from __future__ import annotations

import math
import struct
import uuid

import psycopg
import pytest

from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.commitlog.workload import demo_tables, generate
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry
from tests.support.expected_state import expected_state

BASE = 1_700_000_000_000_000


# --- helpers -----------------------------------------------------------------------------------------


@pytest.fixture
def destination(postgres_server, request):
    schema = "t_" + uuid.uuid4().hex[:10]
    dest = PostgresDestination(postgres_server.dsn, name=schema, schema=schema)
    dest.open()
    yield dest
    dest.close()


@pytest.fixture(scope="module")
def demo_workload(tmp_path_factory):
    out = tmp_path_factory.mktemp("workload")
    summary = generate(out, rows=6000, tables=demo_tables(), seed=7)
    reader = CommitLogReader(SchemaRegistry(load_cql_schema(out / "schema.cql")))
    changes = list(reader.changes(summary.segments))
    return summary, changes


def batches_of(summary, max_rows: int):
    reader = CommitLogReader(SchemaRegistry(load_cql_schema(summary.schema_path)))
    return list(reader.arrow_batches(summary.segments, max_rows=max_rows))


def fetch_state(dest: PostgresDestination, table, static: bool = False) -> dict:
    """Live rows of the state table (no `now()` filter: the workload's TTLs are long past)."""
    names = dest.ensure_table(table)
    target = names.static if static else names.rows
    keys = [c.name for c in target.keys]
    cols = [c.name for c in target.values]
    text = {c.name for c in target.values if c.type.name == "duration"}  # psycopg cannot load ISO intervals
    select = ", ".join(f'"{c}"' + ("::text" if c in text else "") for c in keys + cols) + ", _expires_at"
    with psycopg.connect(dest._dsn) as conn:
        conn.execute("SET intervalstyle = 'iso_8601'")
        rows = conn.execute(f"SELECT {select} FROM {target.qstate} WHERE _live").fetchall()
    out = {}
    for row in rows:
        key = tuple(row[: len(keys)])
        out[key] = dict(zip(cols + ["_expires_at"], row[len(keys):]))
    return out


def _iso_interval(d) -> str:
    months, days, nanos = d.months, d.days, d.nanoseconds
    micros = nanos // 1000
    out = "P"
    years, months = divmod(months, 12)
    out += f"{years}Y" if years else ""
    out += f"{months}M" if months else ""
    out += f"{days}D" if days else ""
    if micros:
        hours, rest = divmod(micros, 3_600_000_000)
        minutes, rest = divmod(rest, 60_000_000)
        seconds, frac = divmod(rest, 1_000_000)
        out += "T" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
        if seconds or frac:
            out += f"{seconds}.{frac:06d}".rstrip("0").rstrip(".") + "S"
    return out if out != "P" else "PT0S"


def norm_expected(column, value):
    t = column.type
    if value is None:
        return None
    if t.name in ("list", "set", "map", "tuple", "udt") or (t.name == "vector" and t.params[0].name not in ("float", "double")):
        return canon(t.to_json(value))
    if t.name in ("varint",):
        return int(value)
    if t.name == "time":
        return value.nanosecond_time
    if t.name == "duration":
        return _iso_interval(value)
    if t.name == "vector":
        return [float(x) for x in value]
    return value


def norm_actual(column, value):
    t = column.type
    if value is None:
        return None
    if t.name in ("list", "set", "map", "tuple", "udt") or (t.name == "vector" and t.params[0].name not in ("float", "double")):
        return canon(value)
    if t.name == "varint":
        return int(value)
    if t.name == "float":  # psycopg reads real as its shortest text: widen it back to the float32
        return f32(value)
    if t.name == "vector":
        return [f32(x) if t.params[0].name == "float" else x for x in value]
    if t.name == "duration":
        return value if isinstance(value, str) else str(value)
    return value


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def canon(v):
    if isinstance(v, dict):
        return {k: canon(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [canon(x) for x in v]
    return v


def equal(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def compare(dest, table, expected, *, static=False) -> dict:
    """Differences between PostgreSQL's live rows and the oracle's; multicell columns touched by
    element edits are skipped (returned count) because a batch does not carry element edits."""
    actual = fetch_state(dest, table, static)
    want = expected.live_statics() if static else expected.live_rows()
    problems = []
    columns = table.static if static else table.regular

    def element_edited_only(key, row) -> bool:  # liveness hinging on element edits a batch lacks
        live = [c for c in columns if row.get(c.name) is not None]
        return bool(live) and all(c.is_complex and not expected.whole_value.get((key, c.name), True)
                                  for c in live)

    only_pg = {k for k in set(actual) - set(want) if not element_edited_only(k, actual[k])}
    only_want = {k for k in set(want) - set(actual) if not element_edited_only(k, want[k])}
    assert not only_pg and not only_want, (
        f"{table.name}: keys only in PostgreSQL {sorted(only_pg)[:3]}, only expected {sorted(only_want)[:3]}")
    want = {k: v for k, v in want.items() if k in actual}
    skipped = compared = 0
    for key, row in want.items():
        got = actual[key]
        for column in columns:
            if column.is_complex and not expected.whole_value.get((key, column.name), True):
                skipped += 1
                continue
            compared += 1
            e, a = norm_expected(column, row[column.name]), norm_actual(column, got[column.name])
            if not equal(e, a):
                problems.append((key, column.name, e, a))
        if key not in expected.complex_ttl and not equal(row["_expires_at"], got["_expires_at"]):
            problems.append((key, "_expires_at", row["_expires_at"], got["_expires_at"]))
    assert not problems, f"{table.name}: {len(problems)} differing cells, e.g. {problems[:3]}"
    return {"rows": len(want), "compared": compared, "skipped_element_edited": skipped}


def write_all(dest, batches):
    for table, batch in batches:
        result = dest.write(table, batch, [])
        assert not result.rejected, result.rejected[:3]


# --- correctness against the oracle -----------------------------------------------------------------------


@pytest.mark.parametrize("max_rows", [97, 5000])
def test_demo_workload_matches_oracle(destination, demo_workload, max_rows):
    summary, changes = demo_workload
    write_all(destination, batches_of(summary, max_rows))
    states = expected_state(changes)
    for table in demo_tables():
        state = states[table.qualified_name]
        report = compare(destination, table, state)
        assert report["rows"] > 50
        if table.static:
            compare(destination, table, state, static=True)


def test_replay_twice_is_idempotent(destination, demo_workload):
    summary, changes = demo_workload
    batches = batches_of(summary, 1000)
    write_all(destination, batches)
    write_all(destination, batches)
    states = expected_state(changes)
    for table in demo_tables():
        compare(destination, table, states[table.qualified_name])


def test_two_replicas_interleaved_converge(destination, demo_workload):
    summary, changes = demo_workload
    a, b = batches_of(summary, 300), batches_of(summary, 700)
    interleaved = [x for pair in zip(a, b) for x in pair] + a[len(b):] + b[len(a):]
    write_all(destination, interleaved)
    states = expected_state(changes)
    for table in demo_tables():
        compare(destination, table, states[table.qualified_name])
