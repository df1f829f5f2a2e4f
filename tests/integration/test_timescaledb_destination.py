"""The TimescaleDB destination against a real PostgreSQL without the extension (`postgres_server`:
Debian's PostgreSQL 15 has no timescaledb): a missing extension stops with a fixable error, or, with
`on_missing_extension: warn`, one warning and plain tables that replicate exactly like the PostgreSQL
destination (compared with the oracle in tests.support.expected_state). Refused time columns are
ConfigErrors before any table exists.
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
