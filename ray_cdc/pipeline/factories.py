"""The picklable factories a run hands to its actors: each builds, inside the actor, what must not
travel (connections, keystores, schemas read from files or the cluster).

Kept apart from `run.py` and light to import: an actor unpickles its factory before anything else,
and every module imported here is imported by every actor process as it starts (on a 2-core machine
the actors' imports are most of a pass's start-up). What a factory builds is imported when it builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray_cdc.config.models import SchemaConfig, SourceConfig
    from ray_cdc.config.models import TimescaleDestination as TimescaleConfig


@dataclass(frozen=True)
class ReaderFactory:
    """Builds a node's CommitLogReader inside its reader actor."""

    schema: SchemaConfig
    sources: dict[str, SourceConfig]

    def __call__(self, node: str):
        from ray_cdc.commitlog.reader import CommitLogReader
        from ray_cdc.schema.registry import SchemaRegistry

        # a live cluster's tables change while the run follows it: columns the schema lacks reload it
        reload = self._tables if self.schema.kind == "cassandra" else None
        return CommitLogReader(SchemaRegistry(self._tables(), reload=reload), keystore=self._keystore(node),
                               schema_from_log=self.schema.kind == "from_log")

    def _tables(self):
        if self.schema.kind == "cql_file":
            from ray_cdc.schema.cql import load_cql_schema

            return load_cql_schema(self.schema.cql_file)
        if self.schema.kind == "cassandra":
            return _cluster_tables(self.schema.cassandra)
        return []

    def _keystore(self, node: str):
        keystore = self.sources[node].keystore
        if keystore is None:
            return None
        from ray_cdc.commitlog.encryption import Keystore

        key_password = keystore.key_password.get_secret_value() if keystore.key_password else None
        return Keystore.open(keystore.path, keystore.password.get_secret_value(), key_password)


def _cluster_tables(cassandra):
    from ray_cdc.schema.cluster import load_cluster_schema

    auth = None
    if cassandra.username:
        from cassandra.auth import PlainTextAuthProvider

        auth = PlainTextAuthProvider(cassandra.username, cassandra.password.get_secret_value()
                                     if cassandra.password else "")
    return load_cluster_schema(cassandra.contact_points, port=cassandra.port, keyspaces=cassandra.keyspaces,
                               auth_provider=auth)


@dataclass(frozen=True)
class DestinationFactory:
    """Builds one destination inside its writer actor (`dsn` already resolved: embedded servers
    are started by the driver)."""

    name: str
    kind: str
    dsn: str
    schema: str | None = None
    database: str | None = None
    timescale: TimescaleConfig | None = None  # the hypertable settings of a timescaledb destination
    dropped_columns: str = "keep"  # schema_evolution.dropped_columns
    purge_grace: float | None = None  # clickhouse: s an expired row stays stored (None: its default)

    def __call__(self):
        if self.kind == "timescaledb":
            from ray_cdc.destinations.timescaledb import build_timescaledb_destination

            return build_timescaledb_destination(self.name, self.timescale, dsn=self.dsn,
                                                 dropped_columns=self.dropped_columns)
        if self.kind == "clickhouse":
            from ray_cdc.destinations.clickhouse import ClickHouseDestination

            grace = {} if self.purge_grace is None else {"purge_grace": self.purge_grace}
            return ClickHouseDestination(self.dsn, name=self.name, database=self.database or "ray_cdc",
                                         dropped_columns=self.dropped_columns, **grace)
        from ray_cdc.destinations.postgres import PostgresDestination

        return PostgresDestination(self.dsn, name=self.name, schema=self.schema, dropped_columns=self.dropped_columns)


@dataclass(frozen=True)
class DeadLetterFactory:
    """Builds the configured dead-letter store inside each writer actor."""

    kind: str
    location: str  # a directory, or a PostgreSQL DSN
    table: str = "ray_cdc_dead_letters"

    def __call__(self):
        from ray_cdc.dlq import FileDeadLetterStore, PostgresDeadLetterStore

        if self.kind == "postgres":
            return PostgresDeadLetterStore(self.location, table=self.table)
        return FileDeadLetterStore(Path(self.location))
