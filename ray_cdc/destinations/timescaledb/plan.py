"""Which tables become hypertables, on which column: plain functions over the table schema.

The PostgreSQL destination keys a table's state table (`t__state`) by the Cassandra primary key, and
its merge upserts `ON CONFLICT (primary key)`. TimescaleDB requires every unique index of a
hypertable to contain its time column, so a hypertable's time column must be a primary key column
(partition key or clustering): then the primary key is a valid unique index of the hypertable and
the merge stays exactly as it is. Regular columns (and the writetime `_wt`) change with updates and
are not in the key, so they cannot partition the state table: configuring one is a ConfigError.

Only the rows' state table becomes a hypertable; the static-column table (one row per partition)
and the tombstone tables stay plain tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ray_cdc.errors import ConfigError
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema

#: CQL types that can partition a hypertable by time (PostgreSQL: timestamptz, date)
TIME_TYPES = frozenset(("timestamp", "date"))
_KEY_KINDS = (ColumnKind.PARTITION_KEY, ColumnKind.CLUSTERING)


@dataclass(frozen=True)
class HypertableSpec:
    """A configured hypertable: its time column and chunk interval (seconds; None: the default)."""

    time_column: str
    chunk_interval: int | None = None
    config_key: str | None = None  # where the configuration sets it (errors name it)


@dataclass(frozen=True)
class HypertableSettings:
    """The hypertable part of a TimescaleDB destination's configuration, as plain values."""

    tables: dict[str, HypertableSpec] = field(default_factory=dict)  # keyspace.table -> spec
    auto: bool = True  # unlisted tables: the first timestamp/date primary key column, if any
    chunk_interval: int | None = None  # seconds; None: TimescaleDB's default (7 days)
    config_key: str = "destinations.timescaledb"  # how errors name this destination's settings

    def key_of(self, table: str) -> str:
        """The config key of `table`'s time column."""
        spec = self.tables.get(table)
        if spec is not None and spec.config_key:
            return spec.config_key
        return f"{self.config_key}.hypertables.{table}.time_column"


@dataclass(frozen=True)
class HypertablePlan:
    time_column: str
    chunk_interval: int | None  # seconds; None: TimescaleDB's default
    configured: bool  # named in the configuration (False: chosen by auto_hypertables)


def key_columns(table: TableSchema) -> tuple[ColumnSchema, ...]:
    return table.partition_key + table.clustering


def default_time_column(table: TableSchema) -> ColumnSchema | None:
    """The first timestamp or date column of the primary key (partition key first), if any."""
    return next((c for c in key_columns(table) if c.type.name in TIME_TYPES), None)


def check_time_column(table: TableSchema, name: str, where: str) -> ColumnSchema:
    """The column `name` of `table` if it can be the hypertable's time column, else a ConfigError
    naming the config key (`where`), the table and the column."""
    column = next((c for c in table.columns if c.name == name), None)
    if column is None:
        raise ConfigError(f"{where}: {table.qualified_name} has no column {name!r} "
                          f"(primary key columns: {_names(key_columns(table))})")
    if column.kind not in _KEY_KINDS:
        raise ConfigError(
            f"{where}: {name!r} is a {column.kind.value} column of {table.qualified_name}; a hypertable's "
            f"time column must be a primary key column (the state table is unique on "
            f"({_names(key_columns(table))}) and TimescaleDB needs the time column in every unique index). "
            f"Choose a timestamp or date primary key column, or leave the table out to keep it plain")
    if column.type.name not in TIME_TYPES:
        raise ConfigError(f"{where}: {name!r} of {table.qualified_name} is a CQL {column.type.name}; "
                          "a hypertable's time column must be a timestamp or date column")
    return column


def plan_hypertable(table: TableSchema, settings: HypertableSettings) -> HypertablePlan | None:
    """The hypertable `table`'s state table becomes, or None for a plain table."""
    spec = settings.tables.get(table.qualified_name)
    if spec is not None:
        column = check_time_column(table, spec.time_column, settings.key_of(table.qualified_name))
        interval = spec.chunk_interval if spec.chunk_interval is not None else settings.chunk_interval
        return HypertablePlan(column.name, interval, configured=True)
    if not settings.auto:
        return None
    column = default_time_column(table)
    if column is None:
        return None
    return HypertablePlan(column.name, settings.chunk_interval, configured=False)


def _names(columns) -> str:
    return ", ".join(c.name for c in columns)
