"""The SQL of the TimescaleDB destination: extension detection and hypertable conversion."""

from __future__ import annotations

from ray_cdc.destinations.timescaledb.plan import HypertablePlan

EXTENSION = "timescaledb"
INSTALLED_VERSION = "SELECT extversion FROM pg_extension WHERE extname = %s"
AVAILABLE_VERSION = "SELECT default_version FROM pg_available_extensions WHERE name = %s"
CREATE_EXTENSION = "CREATE EXTENSION IF NOT EXISTS timescaledb"

#: the time dimension of an existing hypertable (none: a plain table)
TIME_DIMENSION = ("SELECT column_name FROM timescaledb_information.dimensions "
                  "WHERE hypertable_schema = %s AND hypertable_name = %s ORDER BY dimension_number LIMIT 1")


def create_hypertable(qualified_table: str, plan: HypertablePlan) -> tuple[str, tuple]:
    """`create_hypertable` for an existing (maybe non-empty) table; idempotent. The classic
    signature, which every TimescaleDB 2.x release accepts."""
    interval = ", chunk_time_interval => make_interval(secs => %s::double precision)" if plan.chunk_interval else ""
    params = (qualified_table, plan.time_column) + ((plan.chunk_interval,) if plan.chunk_interval else ())
    statement = (f"SELECT create_hypertable(%s::regclass, %s::name{interval}, "
                 "if_not_exists => TRUE, migrate_data => TRUE)")
    return statement, params
