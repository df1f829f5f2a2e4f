"""Which tables the TimescaleDB destination turns into hypertables, and which time columns it refuses
(`ray_cdc.destinations.timescaledb.plan`: pure functions, no server)."""

from __future__ import annotations

import uuid

import pytest

from ray_cdc.commitlog.workload import demo_tables
from ray_cdc.destinations.timescaledb import HypertablePlan, HypertableSettings, HypertableSpec
from ray_cdc.destinations.timescaledb.plan import plan_hypertable
from ray_cdc.destinations.timescaledb.sql import create_hypertable
from ray_cdc.errors import ConfigError
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.types import parse_cql_type

KEY = "destinations.metrics"


def table(*columns: tuple[str, str, ColumnKind]) -> TableSchema:
    positions: dict[ColumnKind, int] = {}
    built = []
    for name, cql, kind in columns:
        built.append(ColumnSchema(name, parse_cql_type(cql), kind, positions.get(kind, 0)))
        positions[kind] = positions.get(kind, 0) + 1
    return TableSchema("shop", "events", uuid.uuid4(), tuple(built))


PK, CK, REG = ColumnKind.PARTITION_KEY, ColumnKind.CLUSTERING, ColumnKind.REGULAR
EVENTS = table(("device", "text", PK), ("day", "date", PK), ("at", "timestamp", CK), ("seen", "timestamp", REG),
               ("id", "timeuuid", CK), ("v", "double", REG))


def settings(**tables: HypertableSpec) -> HypertableSettings:
    return HypertableSettings(tables={f"shop.{k}": v for k, v in tables.items()}, config_key=KEY)


def test_default_is_the_first_timestamp_or_date_primary_key_column():
    assert plan_hypertable(EVENTS, settings()) == HypertablePlan("day", None, configured=False)
    by_table = {t.name: plan_hypertable(t, HypertableSettings()) for t in demo_tables()}
    # all_types clusters on a timeuuid: not a time type TimescaleDB partitions by; page_counters on a date
    assert by_table == {"all_types": None, "collections": None, "profiles": None,
                        "page_counters": HypertablePlan("day", None, configured=False)}


def test_no_auto_hypertables_keeps_unlisted_tables_plain():
    assert plan_hypertable(EVENTS, HypertableSettings(auto=False)) is None


def test_configured_column_and_chunk_intervals():
    plan = plan_hypertable(EVENTS, HypertableSettings(tables={"shop.events": HypertableSpec("at", 3600)},
                                                      chunk_interval=86400))
    assert plan == HypertablePlan("at", 3600, configured=True)
    plan = plan_hypertable(EVENTS, HypertableSettings(tables={"shop.events": HypertableSpec("at")},
                                                      chunk_interval=86400))
    assert plan == HypertablePlan("at", 86400, configured=True)


@pytest.mark.parametrize(("column", "words"), [
    ("seen", ["'seen' is a regular column of shop.events", "must be a primary key column",
              "(device, day, at, id)"]),
    ("v", ["'v' is a regular column"]),
    ("id", ["'id' of shop.events is a CQL timeuuid", "timestamp or date"]),
    ("device", ["'device' of shop.events is a CQL text"]),
    ("nope", ["shop.events has no column 'nope'", "primary key columns: device, day, at, id"]),
])
def test_unusable_time_columns_are_config_errors_naming_key_table_and_column(column, words):
    with pytest.raises(ConfigError) as info:
        plan_hypertable(EVENTS, settings(events=HypertableSpec(column)))
    message = str(info.value)
    assert message.startswith(f"{KEY}.hypertables.shop.events.time_column: "), message
    for word in words:
        assert word in message


def test_errors_name_the_shorthand_key_when_configured_there():
    spec = HypertableSpec("seen", config_key=f"{KEY}.time_column.shop.events")
    with pytest.raises(ConfigError, match=rf"^{KEY}\.time_column\.shop\.events: 'seen' is a regular"):
        plan_hypertable(EVENTS, settings(events=spec))


def test_create_hypertable_statement():
    statement, params = create_hypertable('"shop"."events__state"', HypertablePlan("at", None, True))
    assert statement == ("SELECT create_hypertable(%s::regclass, %s::name, "
                         "if_not_exists => TRUE, migrate_data => TRUE)")
    assert params == ('"shop"."events__state"', "at")
    statement, params = create_hypertable('"s"."t"', HypertablePlan("at", 86400, True))
    assert "chunk_time_interval => make_interval(secs => %s::double precision)" in statement
    assert params == ('"s"."t"', "at", 86400)
