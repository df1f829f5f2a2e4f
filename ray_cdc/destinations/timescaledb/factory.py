"""From the configuration model (`ray_cdc.config.models.TimescaleDestination`) to the destination."""

from __future__ import annotations

from ray_cdc.config.models import TimescaleDestination as TimescaleConfig
from ray_cdc.destinations.timescaledb.destination import TimescaleDbDestination
from ray_cdc.destinations.timescaledb.plan import HypertableSettings, HypertableSpec


def hypertable_settings(name: str, config: TimescaleConfig) -> HypertableSettings:
    key = f"destinations.{name}"
    tables = {table: HypertableSpec(spec.time_column, spec.chunk_interval,
                                    f"{key}.time_column.{table}" if table in config.time_column
                                    else f"{key}.hypertables.{table}.time_column")
              for table, spec in config.hypertable_specs().items()}
    return HypertableSettings(tables=tables, auto=config.auto_hypertables,
                              chunk_interval=config.chunk_interval, config_key=key)


def build_timescaledb_destination(name: str, config: TimescaleConfig, *,
                                  dsn: str | None = None, dropped_columns: str = "keep") -> TimescaleDbDestination:
    """The destination `name` of the configuration. `dsn`: the resolved connection string when the
    driver started an embedded server for a `pgserver://DIR` DSN (default: the configured DSN)."""
    return TimescaleDbDestination(dsn or config.dsn.get_secret_value(), name=name, schema=config.db_schema,
                                  hypertables=hypertable_settings(name, config),
                                  on_missing_extension=config.on_missing_extension, dropped_columns=dropped_columns)
