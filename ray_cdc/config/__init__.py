"""The configuration of `ray-cdc run config.yaml` (`examples/config.yaml` shows every section).

    sources:        the Cassandra nodes: name, commitlog_dir, ray_resource, keystore
    schema:         exactly one of {cql_file}, {cassandra: {...}}, {from_log: true}
    tables:         include/exclude `keyspace.table` patterns
    destinations:   name -> {type: postgres | timescaledb | clickhouse, dsn, ...}; none given: an
                    embedded PostgreSQL (pgserver://<state_dir>/postgres) and chDB
                    (chdb://<state_dir>/clickhouse)
    pipeline:       batch sizes, in-flight bound, readers, polling, segment retention, state_dir
    dlq:            {type: files, dir} (default <state_dir>/dlq) or {type: postgres, dsn}
    retry:          backoff for transient destination errors
    observability:  host, port, bearer_token of the health API

`load_config(path)` reads the YAML, replaces `${VAR}` / `${VAR:-default}` in string values, applies
`RAY_CDC__SECTION__KEY=value` environment overrides, and validates; any problem is a ConfigError
naming the file and the key path. Relative paths are relative to the config file's directory.
Secrets (passwords, tokens, DSNs) are pydantic SecretStr: `repr`, `str`, errors and
`Config.redacted_dict()` never show them.
"""

from ray_cdc.config.loader import ENV_PREFIX, load_config
from ray_cdc.config.models import (
    CassandraSchemaConfig,
    ClickHouseDestination,
    Config,
    Destination,
    Dlq,
    FilesDlq,
    KeystoreConfig,
    ObservabilityConfig,
    PipelineConfig,
    PostgresDestination,
    PostgresDlq,
    RetryConfig,
    SchemaConfig,
    SourceConfig,
    TablesConfig,
    TimescaleDestination,
)
from ray_cdc.config.values import SecretDsn, parse_duration, parse_size, redact_dsn

__all__ = [
    "ENV_PREFIX",
    "CassandraSchemaConfig",
    "ClickHouseDestination",
    "Config",
    "Destination",
    "Dlq",
    "FilesDlq",
    "KeystoreConfig",
    "ObservabilityConfig",
    "PipelineConfig",
    "PostgresDestination",
    "PostgresDlq",
    "RetryConfig",
    "SchemaConfig",
    "SecretDsn",
    "SourceConfig",
    "TablesConfig",
    "TimescaleDestination",
    "load_config",
    "parse_duration",
    "parse_size",
    "redact_dsn",
]
