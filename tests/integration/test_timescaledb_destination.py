"""The TimescaleDB destination against real servers.

- A real PostgreSQL without the extension (`postgres_server`: Debian's PostgreSQL 15 has no
  timescaledb): a missing extension stops with a fixable error, or, with `on_missing_extension:
  warn`, one warning and plain tables that replicate exactly like the PostgreSQL destination
  (compared with the oracle in tests.support.expected_state). Refused time columns are ConfigErrors
  before any table exists.
- A real TimescaleDB (`timescaledb_server`: PGlite's PostgreSQL 17 with timescaledb 2.23, see
  tests/services/timescaledb_pglite.py): the extension is created, state tables become hypertables,
  replication into them equals the oracle, a plain table is converted with its rows.
"""

from __future__ import annotations

import logging
import uuid

import psycopg
import pytest

from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.commitlog.workload import demo_tables, generate
from ray_cdc.destinations.timescaledb import (
    HypertableSettings,
    HypertableSpec,
    TimescaleDbDestination,
    TimescaleExtensionMissingError,
)
from ray_cdc.errors import ConfigError, FatalDestinationError
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry
from tests.integration.test_postgres_destination import batches_of, compare, write_all
from tests.services.timescaledb_pglite import TimescalePglite, TimescalePgliteError, ensure_installed
from tests.support.expected_state import expected_state

DEMO = "ray_cdc_demo"


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    out = tmp_path_factory.mktemp("workload")
    summary = generate(out, rows=3000, tables=demo_tables(), seed=11)
    changes = list(CommitLogReader(SchemaRegistry(load_cql_schema(out / "schema.cql"))).changes(summary.segments))
    return summary, changes


def unique_name() -> str:
    return "ts_" + uuid.uuid4().hex[:10]


def tsdb(dsn: str, name: str, **options) -> TimescaleDbDestination:
    return TimescaleDbDestination(dsn, name=name, schema=name, **options)


def relations(dsn: str, schema: str) -> dict[str, str]:
    """relation name -> relkind ('r' table, 'v' view, 'p' partitioned) in `schema`."""
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n "
                                 "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'p')",
                                 (schema,)).fetchall())


def extension_installed(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone()[0] > 0


def test_server_has_no_timescaledb(postgres_server):
    """What the tests below rely on: plain PostgreSQL, no timescaledb available."""
    with psycopg.connect(postgres_server.dsn) as conn:
        available = conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    assert available == (0,)


def test_missing_extension_is_a_fatal_error_saying_how_to_fix_it(postgres_server):
    name = unique_name()
    dest = tsdb(postgres_server.dsn, name)
    with pytest.raises(TimescaleExtensionMissingError) as info:
        dest.open()
    dest.close()
    error = info.value
    assert isinstance(error, FatalDestinationError) and error.destination == name
    message = str(error)
    assert message.startswith(f"{name}: the timescaledb extension is not usable on this server "
                              "(not in pg_available_extensions)")
    assert "shared_preload_libraries" in message and "on_missing_extension: warn" in message
    assert postgres_server.password not in message
    # nothing was created: neither the offsets table nor any schema of the destination
    assert relations(postgres_server.dsn, name) == {}
    assert not extension_installed(postgres_server.dsn)


def test_missing_extension_stops_ensure_table_too_when_not_opened(postgres_server):
    dest = tsdb(postgres_server.dsn, unique_name())
    table = demo_tables()[3]
    with pytest.raises(TimescaleExtensionMissingError):
        dest.ensure_table(table)
    dest.close()
    assert relations(postgres_server.dsn, dest.name) == {}


def test_warn_logs_once_and_replicates_into_plain_tables_equal_to_the_oracle(postgres_server, workload, caplog):
    summary, changes = workload
    name = unique_name()
    dest = tsdb(postgres_server.dsn, name, on_missing_extension="warn")
    with caplog.at_level(logging.WARNING, logger="ray_cdc.destinations.timescaledb"):
        dest.open()
        write_all(dest, batches_of(summary, 700))
    warnings = [r for r in caplog.records if r.name.startswith("ray_cdc.destinations.timescaledb")]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    text = warnings[0].getMessage()
    assert warnings[0].levelno == logging.WARNING
    assert text.startswith(f"{name}: the timescaledb extension is not usable on this server")
    assert "plain PostgreSQL tables" in text and postgres_server.password not in text
    assert dest.extension_version is None
    states = expected_state(changes)
    for table in demo_tables():
        report = compare(dest, table, states[table.qualified_name])
        assert report["rows"] > 20, (table.name, report)
        if table.static:
            compare(dest, table, states[table.qualified_name], static=True)
    dest.close()
    kinds = relations(postgres_server.dsn, name)
    # page_counters would be a hypertable (its `day` clustering column) with the extension: plain here
    assert kinds["page_counters__state"] == "r" and kinds["page_counters"] == "v"
    assert {k for k, v in kinds.items() if v == "r"} >= {f"{t.name}__state" for t in demo_tables()}
    assert not extension_installed(postgres_server.dsn)


def test_warn_mode_still_refuses_a_bad_time_column_before_creating_tables(postgres_server):
    name = unique_name()
    settings = HypertableSettings(tables={f"{DEMO}.profiles": HypertableSpec("last_seen")},
                                  config_key=f"destinations.{name}")
    dest = tsdb(postgres_server.dsn, name, on_missing_extension="warn", hypertables=settings)
    dest.open()
    profiles = next(t for t in demo_tables() if t.name == "profiles")
    with pytest.raises(ConfigError) as info:
        dest.ensure_table(profiles)
    dest.close()
    assert str(info.value).startswith(f"destinations.{name}.hypertables.{DEMO}.profiles.time_column: "
                                      f"'last_seen' is a regular column of {DEMO}.profiles")
    assert "profiles__state" not in relations(postgres_server.dsn, name)


def test_bad_credentials_are_fatal_and_never_show_the_password(postgres_server):
    wrong = "Wr0ng-" + uuid.uuid4().hex[:8]
    dest = tsdb(postgres_server.dsn_with_password(wrong), unique_name(), on_missing_extension="warn")
    with pytest.raises(FatalDestinationError) as info:
        dest.open()
    dest.close()
    message = str(info.value)
    assert message.startswith(f"{dest.name}: connect: ") and "password authentication failed" in message
    assert wrong not in message


# --- a real TimescaleDB (PGlite + timescaledb, tests/services/timescaledb_pglite.py) ----------------


@pytest.fixture(scope="module")
def timescaledb_server(tmp_path_factory):
    """TimescaleDB 2.23 on PostgreSQL 17 (WASM) over the wire protocol; FAILS (never skips) with the
    reason when it cannot be installed or started. One client at a time (see the service's doc)."""
    problem = None
    server = TimescalePglite(tmp_path_factory.mktemp("timescaledb"))
    try:
        ensure_installed()
        server.start()
    except TimescalePgliteError as exc:
        problem = f"cannot install or start the TimescaleDB test server: {exc}"
    if problem:
        server.stop()
        pytest.fail(problem, pytrace=False)
    yield server
    server.stop()


def query(dsn: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def hypertables(dsn: str, schema: str) -> dict[str, tuple]:
    """hypertable name -> (time column, chunk interval, number of chunks)."""
    rows = query(dsn, "SELECT h.hypertable_name, d.column_name, d.time_interval, h.num_chunks "
                      "FROM timescaledb_information.hypertables h JOIN timescaledb_information.dimensions d "
                      "USING (hypertable_schema, hypertable_name) WHERE h.hypertable_schema = %s", (schema,))
    return {name: (column, interval, chunks) for name, column, interval, chunks in rows}


def test_real_timescaledb_hypertable_replicates_equal_to_the_oracle(timescaledb_server, workload):
    summary, changes = workload
    name = unique_name()
    dest = tsdb(timescaledb_server.dsn, name, hypertables=HypertableSettings(chunk_interval=86400))
    dest.open()
    assert dest.extension_version is not None and dest.extension_version.startswith("2.")
    write_all(dest, batches_of(summary, 500))
    write_all(dest, batches_of(summary, 2000))  # replayed: idempotent on the hypertable too
    dest.close()  # one client at a time: the checks below connect on their own
    tables = hypertables(timescaledb_server.dsn, name)
    # page_counters clusters on `day date`: a hypertable by default; the other demo tables have no
    # timestamp/date primary key column and stay plain
    assert list(tables) == ["page_counters__state"]
    states = expected_state(changes)
    days = {key[-1] for key in states[f"{DEMO}.page_counters"].live_rows()}  # (site, page, day)
    column, interval, chunks = tables["page_counters__state"]
    assert (column, interval.days) == ("day", 1) and chunks >= len(days) > 1, (tables, len(days))
    for table in demo_tables():
        report = compare(dest, table, states[table.qualified_name])
        assert report["rows"] > 20, (table.name, report)
        if table.static:
            compare(dest, table, states[table.qualified_name], static=True)
    shown = query(timescaledb_server.dsn, f'SELECT count(*) FROM "{name}"."page_counters"')[0][0]
    assert shown == len(states[f"{DEMO}.page_counters"].live_rows())


def readings_table():
    from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
    from ray_cdc.schema.types import parse_cql_type as t

    cols = (ColumnSchema("sensor", t("text"), ColumnKind.PARTITION_KEY),
            ColumnSchema("at", t("timestamp"), ColumnKind.CLUSTERING, 0),
            ColumnSchema("taken", t("date"), ColumnKind.CLUSTERING, 1),
            ColumnSchema("v", t("double"), ColumnKind.REGULAR),
            ColumnSchema("note", t("text"), ColumnKind.REGULAR))
    return TableSchema("plant", "readings", uuid.uuid4(), cols)


def write_readings(dest, table, *builders) -> None:
    from tests.integration.test_postgres_destination import apply

    for result in apply(dest, table, *builders):
        assert not result.rejected, result.rejected


def readings_state(dsn: str, schema: str) -> dict:
    rows = query(dsn, f'SELECT sensor, at, v, note FROM "{schema}"."readings" ORDER BY sensor, at')
    return {(s, at.isoformat()): (v, note) for s, at, v, note in rows}


def test_real_timescaledb_plain_table_becomes_a_hypertable_with_its_rows(timescaledb_server):
    from datetime import date, datetime, timezone

    from ray_cdc.commitlog.builder import MutationBuilder

    table = readings_table()
    ts = 1_700_000_000_000_000
    day0 = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def at(days: int) -> dict:
        moment = day0.replace(day=1 + days)
        return {"at": moment, "taken": date(2024, 1, 1 + days)}

    def row(sensor: str) -> MutationBuilder:
        return MutationBuilder(table, {"sensor": sensor})

    name = unique_name()
    plain = tsdb(timescaledb_server.dsn, name, hypertables=HypertableSettings(auto=False))
    plain.open()
    write_readings(plain, table, *[row(s).insert(at(d), {"v": float(d), "note": s}, timestamp=ts)
                                   for s in ("a", "b") for d in range(10)])
    plain.close()
    assert hypertables(timescaledb_server.dsn, name) == {}

    key = f"destinations.{name}.hypertables.plant.readings.time_column"
    settings = HypertableSettings(tables={"plant.readings": HypertableSpec("at", 2 * 86400, key)},
                                  auto=False, config_key=f"destinations.{name}")
    dest = tsdb(timescaledb_server.dsn, name, hypertables=settings)
    dest.open()
    dest.ensure_table(table)  # migrate_data: the 20 rows move into chunks
    write_readings(dest, table,
                   row("a").update(at(3), {"v": 33.0}, timestamp=ts + 10),  # newer: wins
                   row("a").update(at(4), {"v": -1.0}, timestamp=ts - 10),  # older: ignored
                   row("b").delete_row(at(5), timestamp=ts + 5),
                   row("b").insert(at(5), {"v": -2.0}, timestamp=ts + 1),  # older than the delete
                   row("c").insert(at(25), {"v": 7.0}, timestamp=ts))  # a new chunk
    dest.close()
    tables = hypertables(timescaledb_server.dsn, name)
    assert list(tables) == ["readings__state"]
    column, interval, chunks = tables["readings__state"]
    # chunks are aligned on multiples of the interval since the epoch
    expected_chunks = len({(day0.date().toordinal() + d - date(1970, 1, 1).toordinal()) // 2
                           for d in (*range(10), 25)})
    assert (column, interval.days, chunks) == ("at", 2, expected_chunks)
    state = readings_state(timescaledb_server.dsn, name)
    expected = {(s, day0.replace(day=1 + d).isoformat()): (float(d), s) for s in ("a", "b") for d in range(10)}
    expected[("a", day0.replace(day=4).isoformat())] = (33.0, "a")
    del expected[("b", day0.replace(day=6).isoformat())]
    expected[("c", day0.replace(day=26).isoformat())] = (7.0, None)
    assert state == expected

    # the hypertable's time column cannot change: another key column is a ConfigError naming the key
    other = HypertableSettings(tables={"plant.readings": HypertableSpec("taken", None, key)}, auto=False)
    again = tsdb(timescaledb_server.dsn, name, hypertables=other)
    with pytest.raises(ConfigError) as info:
        again.ensure_table(table)
    again.close()
    assert str(info.value).startswith(f"{key}: \"{name}\".\"readings__state\" is already a hypertable on 'at', "
                                      "not 'taken'")
