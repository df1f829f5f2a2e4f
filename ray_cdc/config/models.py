"""The configuration of `ray-cdc run` as pydantic models (the file's layout is in `ray_cdc.config`)."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ray_cdc.config.masking import MaskingConfig
from ray_cdc.config.schema_evolution import SchemaEvolutionConfig
from ray_cdc.config.snapshot import SnapshotConfig
from ray_cdc.config.values import (
    ByteSize,
    ClickHouseDsn,
    ConfigPath,
    Count,
    DestinationName,
    Duration,
    Identifier,
    NodeName,
    Port,
    PostgresDsn,
    SecretDsn,
    SecretText,
    TableName,
    TablePattern,
    embedded_dir,
)
from ray_cdc.config.writers import WritersConfig


class _Section(BaseModel):
    # An unknown key is an error, never ignored: a typo'd option silently falling back to its
    # default is the worst kind of misconfiguration.
    model_config = ConfigDict(extra="forbid")


# --- sources -------------------------------------------------------------------------------------


class KeystoreConfig(_Section):
    """The keystore of Cassandra's `transparent_data_encryption_options`, for encrypted segments."""

    path: ConfigPath
    password: SecretText
    key_password: SecretText | None = None  # None: the store password, as Cassandra does


class SourceConfig(_Section):
    """One Cassandra node: its directory of closed segments (`cdc_raw`, or a copy)."""

    name: NodeName
    # Read where it is: on a cluster, the Ray node that has this directory advertises this resource.
    commitlog_dir: ConfigPath
    ray_resource: str = Field("", min_length=1)  # default `cassandra-node-<name>`, set below
    keystore: KeystoreConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_resource(cls, data: Any) -> Any:
        if isinstance(data, dict) and "ray_resource" not in data and isinstance(data.get("name"), str):
            data = {**data, "ray_resource": f"cassandra-node-{data['name']}"}
        return data


class CassandraSchemaConfig(_Section):
    """Table schemas from a live cluster (`ray_cdc.schema.cluster.load_cluster_schema`)."""

    contact_points: list[str] = Field(min_length=1)
    port: Port = 9042
    username: str | None = None
    password: SecretText | None = None
    keyspaces: list[str] | None = None  # None: every non-system keyspace


class SchemaConfig(_Section):
    """Where table schemas come from: exactly one of a CQL file, a live cluster, the log itself."""

    cql_file: ConfigPath | None = None
    cassandra: CassandraSchemaConfig | None = None
    from_log: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> SchemaConfig:
        given = [name for name, value in (("cql_file", self.cql_file), ("cassandra", self.cassandra),
                                          ("from_log", self.from_log or None)) if value is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of cql_file, cassandra, from_log: true "
                             f"(got {' and '.join(given) or 'none'})")
        return self

    @property
    def kind(self) -> Literal["cql_file", "cassandra", "from_log"]:
        return "cql_file" if self.cql_file is not None else "cassandra" if self.cassandra else "from_log"


class TablesConfig(_Section):
    """Which tables are replicated: `keyspace.table` shell patterns; an exclude wins over an include."""

    include: list[TablePattern] = Field(default_factory=lambda: ["*.*"], min_length=1)
    exclude: list[TablePattern] = Field(default_factory=list)

    def matches(self, keyspace: str, table: str) -> bool:
        name = f"{keyspace}.{table}"
        return (any(fnmatchcase(name, p) for p in self.include)
                and not any(fnmatchcase(name, p) for p in self.exclude))


# --- destinations --------------------------------------------------------------------------------

class PostgresDestination(_Section):
    type: Literal["postgres"] = "postgres"
    dsn: PostgresDsn  # a DSN may hold a password: a secret, shown redacted
    # None: one PostgreSQL schema per Cassandra keyspace; a name: every table in that schema.
    # (`schema` is a BaseModel attribute, hence the alias.)
    db_schema: Identifier | None = Field(None, alias="schema")
    offsets_table: Identifier = "ray_cdc_offsets"
    # seconds between deletions of rows whose TTL has passed (the views hide them already); None: off
    expiry_interval: Duration | None = None

    @property
    def embedded_dir(self) -> Path | None:
        """The data directory of an embedded server (`pgserver://DIR`), None for a real server."""
        return embedded_dir(self.dsn, "pgserver")


_CHUNK_INTERVAL = re.compile(r"(\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)?",
                             re.IGNORECASE)
_CHUNK_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_chunk_interval(value: Any) -> Any:
    """Whole seconds from `7 days`, `1d`, `12 hours`, `30m`, `2w` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected an interval, not a boolean")  # noqa: TRY004 - pydantic wants ValueError
    if not isinstance(value, str):
        return value
    match = _CHUNK_INTERVAL.fullmatch(value.strip())
    if match is None:
        raise ValueError("not an interval (e.g. 7 days, 1d, 12 hours, 30m, or seconds)")
    unit = (match[2] or "s").lower()
    return int(match[1]) * _CHUNK_UNIT_SECONDS["m" if unit.startswith("mi") else unit[0]]


#: A hypertable's chunk interval in whole seconds, at least one minute.
ChunkInterval = Annotated[int, BeforeValidator(parse_chunk_interval), Field(ge=60)]


class HypertableConfig(_Section):
    """One table as a hypertable: its time column (a timestamp or date column of the Cassandra
    primary key: the state table is keyed by it, and a hypertable's unique index must hold its
    time column) and, optionally, the chunk interval."""

    time_column: Identifier
    chunk_interval: ChunkInterval | None = None  # None: the destination's chunk_interval


class TimescaleDestination(PostgresDestination):
    type: Literal["timescaledb"] = "timescaledb"  # type: ignore[assignment]
    # keyspace.table -> its time column (shorthand of `hypertables: {t: {time_column: c}}`)
    time_column: dict[TableName, Identifier] = Field(default_factory=dict)
    # keyspace.table -> {time_column, chunk_interval}
    hypertables: dict[TableName, HypertableConfig] = Field(default_factory=dict)
    # tables listed in neither: a hypertable on the first timestamp/date column of their primary key
    # when they have one (true), or plain tables (false)
    auto_hypertables: bool = True
    chunk_interval: ChunkInterval | None = None  # None: TimescaleDB's default (7 days)
    # the server lacks the extension: stop (error), or log a warning and make plain tables (warn)
    on_missing_extension: Literal["error", "warn"] = "error"

    @model_validator(mode="after")
    def _each_table_once(self) -> TimescaleDestination:
        if both := sorted(set(self.time_column) & set(self.hypertables)):
            raise ValueError(f"{', '.join(both)}: in both time_column and hypertables; keep one")
        return self

    def hypertable_specs(self) -> dict[str, HypertableConfig]:
        """keyspace.table -> its configured hypertable (time_column entries included)."""
        specs = {t: HypertableConfig(time_column=c) for t, c in self.time_column.items()}
        return {**specs, **self.hypertables}


class ClickHouseDestination(_Section):
    type: Literal["clickhouse"] = "clickhouse"
    dsn: ClickHouseDsn
    database: Identifier = "default"
    # how long an expired row stays stored after it was written (hidden from `__live` at its expiry):
    # changes arriving out of writetime order within it are shadowed right (Cassandra's gc_grace)
    purge_grace: Duration = 240 * 3600.0

    @property
    def embedded_dir(self) -> Path | None:
        """The chDB data directory (`chdb://DIR`), None for a server."""
        return embedded_dir(self.dsn, "chdb")


Destination = Annotated[PostgresDestination | TimescaleDestination | ClickHouseDestination,
                        Field(discriminator="type")]

# --- pipeline, dlq, retry, observability ---------------------------------------------------------


class PipelineConfig(_Section):
    # a set of 32k rows / 8 MiB keeps the pipeline of three destinations under 2 GiB (README,
    # Measured); twice that was ~5% faster and ~100 MiB larger
    batch_rows: Count = 32768
    batch_bytes: ByteSize = 8 * 1024 * 1024
    # per stage; with batch_bytes it bounds the memory in flight, so it is capped, not just > 0
    max_in_flight_batches: Annotated[Count, Field(le=1024)] = 4
    # the object store of a Ray that ray-cdc starts itself (pipeline/local_ray.py); null: Ray's own
    # default (30% of RAM). The windows are fitted to it (pipeline/fanout.fitted_window): 256 MiB
    # holds the default window of 4 sets for each of three destinations at the default batch size.
    object_store_memory: Annotated[ByteSize, Field(ge=100 * 1024 * 1024)] | None = 256 * 1024 * 1024
    poll_interval: Duration = 1.0  # seconds between looks for new segments
    # What happens to a segment once every destination committed it. `keep` is the default because
    # it never destroys anything; with cdc_raw, Cassandra refuses CDC writes once it is full.
    segment_retention: Literal["delete", "archive", "keep"] = "keep"
    archive_dir: ConfigPath | None = Field(None, validate_default=True)
    state_dir: ConfigPath = Field(Path("ray-cdc-state"), validate_default=True)  # resolved like any path
    # The transform stage between readers and writers (type mapping off the writers' cores, masking
    # hook). coalesce: drop row changes a later change of the same key in the same batch overrides.
    transform_stage: bool = True
    coalesce: bool = True

    @field_validator("archive_dir")
    @classmethod
    def _archive_needs_dir(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None and info.data.get("segment_retention") == "archive":
            raise ValueError("required when segment_retention is archive")
        return value


class PostgresDlq(_Section):
    type: Literal["postgres"]
    dsn: PostgresDsn
    table: Identifier = "ray_cdc_dead_letters"


class FilesDlq(_Section):
    type: Literal["files"] = "files"
    dir: ConfigPath | None = None  # None: <state_dir>/dlq (set by Config, so never None after loading)


Dlq = Annotated[PostgresDlq | FilesDlq, Field(discriminator="type")]


class RetryConfig(_Section):
    """Backoff for transient destination errors (connection lost, server restarting)."""

    initial_backoff: Duration = 0.5
    max_backoff: Duration = 30.0
    max_elapsed: Duration | None = None  # None: retry forever (a destination that comes back resumes)
    # A destination down longer than this stops holding the others back: its writer defers, the
    # readers go on, and its segments are read again for it alone once it is back. None: never.
    detach_after: Duration | None = 5.0

    @field_validator("max_backoff")
    @classmethod
    def _not_below_initial(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("initial_backoff")
        if initial is not None and value < initial:
            raise ValueError(f"must be at least initial_backoff ({initial:g} s)")
        return value


class ObservabilityConfig(_Section):
    host: str = "127.0.0.1"  # loopback: the health API is reachable from outside only when asked
    port: Port = 9750
    bearer_token: SecretText | None = None


# --- the whole file ------------------------------------------------------------------------------


class Config(_Section):
    sources: list[SourceConfig] = Field(min_length=1)
    schema_source: SchemaConfig = Field(alias="schema")  # `schema` is a BaseModel attribute
    tables: TablesConfig = Field(default_factory=TablesConfig)
    destinations: dict[DestinationName, Destination] = Field(default_factory=dict)  # empty: embedded defaults
    # a dict default, validated, so that the default state_dir is resolved against the config file
    pipeline: PipelineConfig = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    dlq: Dlq = Field(default_factory=FilesDlq)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    writers: WritersConfig = Field(default_factory=WritersConfig)  # writer actors per destination
    masking: MaskingConfig | None = None  # None: every destination sees every column in clear
    schema_evolution: SchemaEvolutionConfig = Field(default_factory=SchemaEvolutionConfig)
    snapshot: SnapshotConfig = Field(default_factory=SnapshotConfig)  # tables' existing rows, before CDC

    @field_validator("sources")
    @classmethod
    def _unique_sources(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        names = [s.name for s in sources]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError("node names must be unique (offsets are kept per node): "
                             + ", ".join(duplicates))
        return sources

    @field_validator("destinations", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value  # `destinations:` with every entry commented out

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Config:
        state = self.pipeline.state_dir
        if not self.destinations:
            self.destinations = {
                "postgres": PostgresDestination(dsn=SecretDsn(f"pgserver://{state / 'postgres'}")),
                "clickhouse": ClickHouseDestination(dsn=SecretDsn(f"chdb://{state / 'clickhouse'}")),
            }
        if isinstance(self.dlq, FilesDlq) and self.dlq.dir is None:
            self.dlq = FilesDlq(dir=state / "dlq")
        return self

    def redacted_dict(self) -> dict[str, Any]:
        """The configuration as JSON-safe data for logs: passwords and tokens are `***`, DSNs keep
        everything but their password (`postgresql://u:***@h/db`)."""
        return self.model_dump(mode="json", by_alias=True)
