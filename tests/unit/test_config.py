"""`ray_cdc.config`: the YAML configuration of `ray-cdc run`, its overrides, errors and redaction."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from ray_cdc.config import (
    ClickHouseDestination,
    Config,
    FilesDlq,
    PostgresDestination,
    PostgresDlq,
    TimescaleDestination,
    load_config,
    parse_duration,
    parse_size,
    redact_dsn,
)
from ray_cdc.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "config.yaml"
MINIMAL = """\
sources:
  - name: n1
    commitlog_dir: /var/lib/cassandra/cdc_raw
schema:
  from_log: true
"""
SECRET = "Sup3r-S3cret!"  # must never show up outside the Config's secret fields


@pytest.fixture
def write(tmp_path):
    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def load(write, text: str, **env: str) -> Config:
    return load_config(write(text), environ=env)


def error_of(write, text: str, **env: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(write, text, **env)
    # never chained to the pydantic/YAML error: their text quotes the input (maybe a secret)
    assert info.value.__cause__ is None and info.value.__context__ is None
    return str(info.value)


# --- the example and the defaults ----------------------------------------------------------------


def test_example_config_loads_with_two_nodes_and_all_three_destinations():
    config = load_config(EXAMPLE, environ={"PG_PASSWORD": SECRET, "CLICKHOUSE_PASSWORD": SECRET})
    assert [s.name for s in config.sources] == ["cass-a", "cass-b"]
    assert {type(d) for d in config.destinations.values()} == {
        PostgresDestination, TimescaleDestination, ClickHouseDestination}
    assert config.schema_source.cql_file == EXAMPLE.parent / "schema.cql"  # relative to the file
    specs = config.destinations["metrics"].hypertable_specs()
    assert {t: (s.time_column, s.chunk_interval) for t, s in specs.items()} == {
        "shop.events": ("event_time", None), "shop.page_views": ("viewed_at", 86400)}
    assert SECRET not in repr(config) and SECRET not in json.dumps(config.redacted_dict())


def test_defaults(write, tmp_path):
    config = load(write, MINIMAL)
    state = tmp_path / "ray-cdc-state"  # beside the config file, wherever the command runs
    p = config.pipeline
    assert (p.batch_rows, p.batch_bytes, p.max_in_flight_batches) == (32768, 8 << 20, 4)
    assert p.object_store_memory == 256 << 20
    assert (p.transform_stage, p.coalesce) == (True, True)
    assert (p.poll_interval, p.segment_retention, p.archive_dir, p.state_dir) == (1.0, "keep", None, state)
    assert config.sources[0].ray_resource == "cassandra-node-n1"
    assert config.sources[0].keystore is None
    assert config.schema_source.kind == "from_log"
    assert config.tables.include == ["*.*"] and config.tables.exclude == []
    assert config.dlq == FilesDlq(dir=state / "dlq")
    retry = config.retry
    assert (retry.initial_backoff, retry.max_backoff, retry.max_elapsed) == (0.5, 30.0, None)
    assert (config.observability.host, config.observability.bearer_token) == ("127.0.0.1", None)


@pytest.mark.parametrize("section", ["", "destinations:\n", "destinations: {}\n"])
def test_no_destinations_means_embedded_postgres_and_chdb_under_state_dir(write, section, tmp_path):
    config = load(write, MINIMAL + section + "pipeline: {state_dir: st}\n")
    pg, ch = config.destinations["postgres"], config.destinations["clickhouse"]
    assert list(config.destinations) == ["postgres", "clickhouse"]
    assert isinstance(pg, PostgresDestination) and isinstance(ch, ClickHouseDestination)
    assert pg.embedded_dir == tmp_path / "st" / "postgres"
    assert ch.dsn.get_secret_value() == f"chdb://{tmp_path / 'st' / 'clickhouse'}"
    assert ch.embedded_dir == tmp_path / "st" / "clickhouse"


def test_destinations_of_each_type(write, tmp_path):
    config = load(write, MINIMAL + """
destinations:
  pg: {type: postgres, dsn: "host=db dbname=x", schema: replica}
  ts:
    type: timescaledb
    dsn: "postgresql://h/db"
    time_column: {shop.events: ts}
    on_missing_extension: warn
  ch: {type: clickhouse, dsn: chdb://data/ch, database: cdc}
  remote: {type: clickhouse, dsn: "http://u:pw@ch:8123"}
""")
    pg, ts, ch, remote = config.destinations.values()
    assert (pg.db_schema, pg.embedded_dir) == ("replica", None)
    assert (ts.on_missing_extension, ts.db_schema) == ("warn", None)
    assert ch.embedded_dir == tmp_path / "data" / "ch"  # relative to the config file, like other paths
    assert (ch.database, remote.embedded_dir) == ("cdc", None)


def test_sources_keystore_and_cassandra_schema(write, tmp_path):
    config = load(write, """
sources:
  - {name: a, commitlog_dir: cdc_a, ray_resource: host-a}
  - name: b
    commitlog_dir: ~/cdc_b
    keystore: {path: ks.jceks, password: pw}
schema:
  cassandra: {contact_points: [10.0.0.1], username: u, password: pw, keyspaces: [shop]}
""")
    a, b = config.sources
    assert (a.commitlog_dir, a.ray_resource) == (tmp_path / "cdc_a", "host-a")
    assert b.commitlog_dir == Path.home() / "cdc_b"
    assert b.keystore.path == tmp_path / "ks.jceks" and b.keystore.password.get_secret_value() == "pw"
    assert config.schema_source.kind == "cassandra" and config.schema_source.cassandra.port == 9042


def test_tables_filter(write):
    text = MINIMAL + "tables: {include: ['shop.*', '*.events'], exclude: [shop.audit_*]}\n"
    tables = load(write, text).tables
    assert tables.matches("shop", "orders") and tables.matches("web", "events")
    assert not tables.matches("shop", "audit_log") and not tables.matches("web", "clicks")


def test_dlq_kinds(write, tmp_path):
    assert load(write, MINIMAL + "dlq: {type: files, dir: dead}\n").dlq == FilesDlq(dir=tmp_path / "dead")
    dlq = load(write, MINIMAL + "dlq: {type: postgres, dsn: 'postgresql://h/db'}\n").dlq
    assert isinstance(dlq, PostgresDlq) and dlq.table == "ray_cdc_dead_letters"


def test_a_config_built_in_python_needs_no_file():
    config = Config.model_validate({"sources": [{"name": "n", "commitlog_dir": "/d"}],
                                    "schema": {"cql_file": "/s.cql"}})
    assert config.destinations["postgres"].embedded_dir == Path("ray-cdc-state/postgres")


def test_config_pickles_for_ray_actors(write):
    config = load(write, MINIMAL + "destinations: {pg: {type: postgres, dsn: 'postgresql://u:pw@h/d'}}\n")
    again = pickle.loads(pickle.dumps(config))
    assert again == config and again.destinations["pg"].dsn.get_secret_value() == "postgresql://u:pw@h/d"


# --- values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "size"), [
    ("16MiB", 16 << 20), ("16 MB", 16 << 20), ("64k", 65536), ("64KB", 65536), ("64kib", 65536),
    ("1.5m", 3 << 19), ("1g", 1 << 30), ("100", 100), ("100b", 100), (4096, 4096)])
def test_sizes(write, text, size):
    assert parse_size(text) == size
    assert load(write, MINIMAL + f"pipeline: {{batch_bytes: {text}}}\n").pipeline.batch_bytes == size


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("2s", 2.0), ("1.5m", 90.0), ("1h", 3600.0),
                                               ("3", 3.0), (0.25, 0.25)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("dsn", "shown"), [
    ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgresql://u:p@ss/w0rd@h/db", "postgresql://u:***@h/db"),  # unescaped @ and / in the password
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("postgresql://h/db?user=u&password=pw&sslmode=require",
     "postgresql://h/db?user=u&password=***&sslmode=require"),
    ("host=h password='p w' dbname=db", "host=h password=*** dbname=db"),
    ("https://u:pw@ch:8443", "https://u:***@ch:8443"),
    ("http://ch:8123", "http://ch:8123"),
    ("chdb:///data/ch", "chdb:///data/ch"),
])
def test_redact_dsn(dsn, shown):
    assert redact_dsn(dsn) == shown


# --- errors name the file, the key path, and a suggestion ----------------------------------------


@pytest.mark.parametrize(("yaml_text", "key", "hint"), [
    (MINIMAL + "pipeline: {batch_row: 5}\n", "pipeline.batch_row: unknown key", "did you mean 'batch_rows'?"),
    (MINIMAL + "destination: {}\n", "destination: unknown key", "did you mean 'destinations'?"),
    (MINIMAL + "destinations: {pg: {type: postgres, dns: 'postgresql://h/d'}}\n",
     "destinations.pg.dns: unknown key", "did you mean 'dsn'?"),
    ("sources: [{name: n, commitlog: /d}]\nschema: {from_log: true}\n",
     "sources[0].commitlog: unknown key", "did you mean 'commitlog_dir'?"),
    (MINIMAL + "destinations: {pg: {type: postgress, dsn: 'postgresql://h/d'}}\n",
     "destinations.pg.type: unknown type 'postgress'", "did you mean 'postgres'?"),
    (MINIMAL + "observability: {colour: blue}\n", "observability.colour: unknown key",
     "valid keys: host, port, bearer_token"),
])
def test_unknown_keys_are_named_with_a_suggestion(write, tmp_path, yaml_text, key, hint):
    message = error_of(write, yaml_text)
    assert message.startswith(f"{tmp_path / 'config.yaml'}: ")
    assert f"{key}; {hint}" in message


@pytest.mark.parametrize(("section", "expected"), [
    ("pipeline: {batch_rows: 0}", "pipeline.batch_rows: Input should be greater than 0"),
    ("pipeline: {batch_rows: -5}", "pipeline.batch_rows: Input should be greater than 0"),
    ("pipeline: {batch_rows: yes}", "pipeline.batch_rows: expected a number, not a boolean"),
    ("pipeline: {batch_rows: many}", "pipeline.batch_rows: Input should be a valid integer"),
    ("pipeline: {batch_bytes: 16XB}", "pipeline.batch_bytes: not a size"),
    ("pipeline: {batch_bytes: 0k}", "pipeline.batch_bytes: Input should be greater than 0"),
    ("pipeline: {max_in_flight_batches: 0}", "max_in_flight_batches: Input should be greater than 0"),
    ("pipeline: {max_in_flight_batches: 100000}", "max_in_flight_batches: Input should be less than"),
    ("pipeline: {poll_interval: soon}", "pipeline.poll_interval: not a duration"),
    ("pipeline: {segment_retention: archiv}", "segment_retention: Input should be 'delete', 'archive'"),
    ("pipeline: {segment_retention: archive}", "archive_dir: required when segment_retention is archive"),
    ("retry: {initial_backoff: 10s, max_backoff: 1s}", "retry.max_backoff: must be at least initial_backoff"),
    ("observability: {port: 70000}", "observability.port: Input should be less than or equal to 65535"),
    ("tables: {include: [shop]}", "tables.include[0]: not a keyspace.table pattern"),
    ("destinations: {pg: {dsn: 'postgresql://h/d'}}",
     "destinations.pg.type: required, one of: postgres, timescaledb, clickhouse"),
    ("destinations: {pg: {type: postgres, dsn: 'mysql://h/d'}}",
     "destinations.pg.dsn: scheme 'mysql' is not one of postgresql, postgres, pgserver"),
    ("destinations: {ch: {type: clickhouse, dsn: 'ch.example.com'}}", "destinations.ch.dsn: expected a URL"),
    ("destinations: {pg: {type: postgres, dsn: 'pgserver://'}}", "destinations.pg.dsn: pgserver:// needs a"),
    ("destinations: {My-PG: {type: postgres, dsn: 'postgresql://h/d'}}",
     "destinations.My-PG: not a destination name"),
    ("destinations: {ts: {type: timescaledb, dsn: 'postgresql://h/d', on_missing_extension: ignore}}",
     "destinations.ts.on_missing_extension: Input should be 'error' or 'warn'"),
    ("destinations: {ts: {type: timescaledb, dsn: 'postgresql://h/d', time_column: {events: ts}}}",
     "destinations.ts.time_column.events: not a keyspace.table name"),
    ("dlq: {type: postgres}", "dlq.dsn: required"),
])
def test_bad_values_name_the_key(write, section, expected):
    assert expected in error_of(write, MINIMAL + section + "\n")


@pytest.mark.parametrize(("schema", "got"), [
    ("{from_log: false}", "got none"),
    ("{}", "got none"),
    ("{from_log: true, cql_file: s.cql}", "got cql_file and from_log"),
])
def test_schema_needs_exactly_one_source(write, schema, got):
    message = error_of(write, f"sources: [{{name: n, commitlog_dir: /d}}]\nschema: {schema}\n")
    assert f"schema: give exactly one of cql_file, cassandra, from_log: true ({got})" in message


def test_required_sections_and_unique_nodes(write):
    assert error_of(write, "").endswith("config.yaml: sources: required; schema: required")
    message = error_of(write, "sources: [{name: a, commitlog_dir: /x}, {name: a, commitlog_dir: /y}]\n"
                              "schema: {from_log: true}\n")
    assert "sources: node names must be unique (offsets are kept per node): a" in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_names_line_and_column(write):
    message = error_of(write, MINIMAL + "pipeline:\n  batch_rows: [1\n")
    assert "config.yaml:8:1: invalid YAML" in message


def test_duplicate_key_is_an_error(write):
    assert "config.yaml:8:3: invalid YAML: duplicate key 'batch_rows'" in error_of(
        write, MINIMAL + "pipeline:\n  batch_rows: 1\n  batch_rows: 2\n")


def test_top_level_must_be_a_mapping(write):
    assert "expected a mapping of sections" in error_of(write, "- sources\n")


# --- environment -----------------------------------------------------------------------------------


def test_env_overrides_before_validation(write, tmp_path):
    config = load(write, MINIMAL + "destinations: {pg: {type: postgres, dsn: 'postgresql://h/old'}}\n",
                  RAY_CDC__PIPELINE__BATCH_ROWS="1000",
                  RAY_CDC__PIPELINE__BATCH_BYTES="64k",
                  RAY_CDC__DESTINATIONS__PG__DSN="postgresql://u:pw@h/new",
                  RAY_CDC__SOURCES__0__COMMITLOG_DIR="/mnt/cdc",
                  RAY_CDC__RETRY__MAX_ELAPSED="10m",
                  RAY_CDC__OBSERVABILITY__PORT="0",
                  RAY_CDC__TABLES__INCLUDE="[shop.*, web.events]",
                  RAY_CDC_KEYSTORE_PASSWORD="x",  # one underscore: not an override
                  OTHER="y")
    assert (config.pipeline.batch_rows, config.pipeline.batch_bytes) == (1000, 65536)
    assert config.destinations["pg"].dsn.get_secret_value() == "postgresql://u:pw@h/new"
    assert config.sources[0].commitlog_dir == Path("/mnt/cdc")
    assert (config.retry.max_elapsed, config.observability.port) == (600.0, 0)
    assert config.tables.include == ["shop.*", "web.events"]


def test_env_override_values(write):
    config = load(write, MINIMAL + "retry: {max_elapsed: 5s}\n",
                  RAY_CDC__RETRY__MAX_ELAPSED="null",  # YAML null
                  RAY_CDC__OBSERVABILITY__BEARER_TOKEN="0123",  # not YAML's octal 83
                  RAY_CDC__SCHEMA__FROM_LOG="true",
                  RAY_CDC__DESTINATIONS__PG__TYPE="postgres",  # a whole new destination
                  RAY_CDC__DESTINATIONS__PG__DSN="'host=h password=a #b'")  # quoted: a YAML string
    assert config.retry.max_elapsed is None
    assert config.observability.bearer_token.get_secret_value() == "0123"
    assert config.destinations["pg"].dsn.get_secret_value() == "host=h password=a #b"


def test_env_override_errors_name_the_variable(write):
    message = error_of(write, MINIMAL, RAY_CDC__PIPELINE__BATCH_ROWZ="5")
    assert ("pipeline.batch_rowz: unknown key; did you mean 'batch_rows'? "
            "(set by RAY_CDC__PIPELINE__BATCH_ROWZ)") in message
    assert "sources has no item 3" in error_of(write, MINIMAL, RAY_CDC__SOURCES__3__NAME="x")
    assert "empty key" in error_of(write, MINIMAL, RAY_CDC__PIPELINE____X="1")
    message = error_of(write, MINIMAL, RAY_CDC__SOURCES__0__NAME__X="1")
    assert "sources[0].name is a value, not a section" in message


def test_interpolation(write):
    config = load(write, MINIMAL + """
destinations:
  pg: {type: postgres, dsn: "postgresql://u:${PG_PW}@${PG_HOST:-localhost}/db", schema: "${PG_SCHEMA:-cdc}"}
observability: {port: "${PORT}", bearer_token: "$${NOT_A_VAR}"}
""", PG_PW=SECRET, PORT="8080", PG_SCHEMA="")
    assert config.destinations["pg"].dsn.get_secret_value() == f"postgresql://u:{SECRET}@localhost/db"
    assert config.destinations["pg"].db_schema == "cdc"  # :- also covers an empty variable
    assert config.observability.port == 8080
    assert config.observability.bearer_token.get_secret_value() == "${NOT_A_VAR}"


def test_missing_variable_is_named(write):
    text = MINIMAL + "destinations: {pg: {type: postgres, dsn: 'postgresql://u:${PG_PW}@h/d'}}\n"
    message = error_of(write, text)
    assert message.endswith("config.yaml: destinations.pg.dsn: environment variable PG_PW is not set")


# --- secrets never leak ------------------------------------------------------------------------------

SECRETS_BUT_TOKEN = f"""
sources:
  - name: n1
    commitlog_dir: /d
    keystore: {{path: ks, password: "{SECRET}", key_password: "{SECRET}"}}
schema:
  cassandra: {{contact_points: [h], username: u, password: "{SECRET}"}}
destinations:
  pg: {{type: postgres, dsn: "postgresql://u:{SECRET}@db.example.com/x"}}
  ch: {{type: clickhouse, dsn: "https://u:{SECRET}@ch.example.com:8443"}}
dlq: {{type: postgres, dsn: "host=h password={SECRET}"}}
"""
WITH_SECRETS = SECRETS_BUT_TOKEN + f'observability: {{bearer_token: "{SECRET}"}}\n'


def test_secrets_absent_from_repr_str_and_redacted_dict(write):
    config = load(write, WITH_SECRETS)
    assert config.sources[0].keystore.password.get_secret_value() == SECRET
    assert config.observability.bearer_token.get_secret_value() == SECRET
    for text in (repr(config), str(config), json.dumps(config.redacted_dict())):
        assert SECRET not in text
    data = config.redacted_dict()
    assert data["destinations"]["pg"]["dsn"] == "postgresql://u:***@db.example.com/x"
    assert data["destinations"]["ch"]["dsn"] == "https://u:***@ch.example.com:8443"
    assert data["dlq"]["dsn"] == "host=h password=***"
    assert data["sources"][0]["keystore"]["password"] == "***"
    assert data["schema"]["cassandra"]["password"] == "***"
    assert data["observability"]["bearer_token"] == "***"
    assert "postgresql://u:***@db.example.com/x" in repr(config)  # a DSN's host stays useful in logs


@pytest.mark.parametrize("broken", [
    "pipeline: {batch_rows: 0}",  # an error elsewhere in a file full of secrets
    f"destinations: {{pg: {{type: postgres, dsn: 'mysql://u:{SECRET}@h/d'}}}}",  # a bad DSN
    f"destinations: {{pg: {{type: postgres, dsn: 'postgresql://u:{SECRET}@h/d', schema: [{SECRET}]}}}}",
    f"observability: {{bearer_token: [{SECRET}]}}",  # a secret of the wrong type
    f"dlq: {{type: files, dir: /x, password: {SECRET}}}",  # an unknown key holding a secret
])
def test_secrets_absent_from_validation_errors(write, broken):
    message = error_of(write, SECRETS_BUT_TOKEN + broken + "\n")
    assert SECRET not in message


def test_secrets_absent_from_env_override_errors(write):
    message = error_of(write, MINIMAL, RAY_CDC__DESTINATIONS__PG__DSN=f"postgresql://u:{SECRET}@h/d")
    assert "destinations.pg.type: required" in message and SECRET not in message


def test_secrets_absent_from_yaml_errors(write):
    message = error_of(write, MINIMAL + f"destinations:\n  pg: {{dsn: postgresql://u:{SECRET}@h/d: x\n")
    assert "invalid YAML" in message and SECRET not in message


# --- the timescaledb destination -------------------------------------------------------------------

TIMESCALE = MINIMAL + """
destinations:
  metrics:
    type: timescaledb
    dsn: "postgresql://u:Sup3r-S3cret!@tsdb/metrics"
    time_column: {shop.page_views: viewed_at}
    hypertables:
      shop.events: {time_column: event_time, chunk_interval: 1 day}
      shop.readings: {time_column: at}
    auto_hypertables: false
    chunk_interval: 12 hours
"""


def test_timescaledb_hypertables_and_their_defaults(write):
    ts = load(write, TIMESCALE).destinations["metrics"]
    assert isinstance(ts, TimescaleDestination)
    assert (ts.auto_hypertables, ts.chunk_interval, ts.on_missing_extension) == (False, 12 * 3600, "error")
    specs = {t: (s.time_column, s.chunk_interval) for t, s in ts.hypertable_specs().items()}
    assert specs == {"shop.page_views": ("viewed_at", None), "shop.events": ("event_time", 86400),
                     "shop.readings": ("at", None)}
    plain = load(write, MINIMAL + "destinations: {ts: {type: timescaledb, dsn: 'postgresql://h/d'}}\n")
    ts = plain.destinations["ts"]
    assert (ts.auto_hypertables, ts.chunk_interval, ts.hypertable_specs()) == (True, None, {})


@pytest.mark.parametrize(("text", "seconds"), [
    ("7 days", 604800), ("1d", 86400), ("12 hours", 43200), ("1h", 3600), ("30m", 1800),
    ("90 minutes", 5400), ("2w", 1209600), ("3600", 3600), (86400, 86400)])
def test_timescaledb_chunk_intervals(write, text, seconds):
    config = load(write, MINIMAL + "destinations: {ts: {type: timescaledb, dsn: 'postgresql://h/d', "
                                   f"chunk_interval: '{text}'}}}}\n")
    assert config.destinations["ts"].chunk_interval == seconds


@pytest.mark.parametrize(("section", "expected"), [
    ("{time_column: {shop.events: a}, hypertables: {shop.events: {time_column: b}}}",
     "destinations.ts: shop.events: in both time_column and hypertables; keep one"),
    ("{hypertables: {shop.events: {time_column: a, chunk_interval: 7 fortnights}}}",
     "destinations.ts.hypertables.shop.events.chunk_interval: not an interval"),
    ("{chunk_interval: 10s}", "destinations.ts.chunk_interval: Input should be greater than or equal to 60"),
    ("{chunk_interval: yes}", "destinations.ts.chunk_interval: expected an interval, not a boolean"),
    ("{hypertables: {shop.events: {column: a}}}", "destinations.ts.hypertables.shop.events.column"),
    ("{hypertables: {shop.events: {}}}", "destinations.ts.hypertables.shop.events.time_column: required"),
    ("{hypertables: {events: {time_column: a}}}", "destinations.ts.hypertables.events: not a keyspace.table"),
    ("{hypertables: {shop.events: {time_column: 'a b'}}}",
     "destinations.ts.hypertables.shop.events.time_column: not a plain identifier"),
    ("{auto_hypertables: maybe}", "destinations.ts.auto_hypertables: Input should be a valid boolean"),
])
def test_timescaledb_bad_values_name_the_key(write, section, expected):
    options = section[1:-1]
    text = MINIMAL + f"destinations: {{ts: {{type: timescaledb, dsn: 'postgresql://h/d', {options}}}}}\n"
    assert expected in error_of(write, text)


def test_timescaledb_destination_is_built_from_its_config_and_pickles(write):
    from ray_cdc.destinations.timescaledb import build_timescaledb_destination

    config = load(write, TIMESCALE)
    ts = pickle.loads(pickle.dumps(config.destinations["metrics"]))  # shipped to the writer actor
    dest = build_timescaledb_destination("metrics", ts)  # builds without connecting
    settings = dest.hypertables
    assert (dest.name, dest.on_missing_extension, settings.auto, settings.chunk_interval) == (
        "metrics", "error", False, 43200)
    assert {t: (s.time_column, s.chunk_interval, s.config_key) for t, s in settings.tables.items()} == {
        "shop.page_views": ("viewed_at", None, "destinations.metrics.time_column.shop.page_views"),
        "shop.events": ("event_time", 86400, "destinations.metrics.hypertables.shop.events.time_column"),
        "shop.readings": ("at", None, "destinations.metrics.hypertables.shop.readings.time_column")}
    assert SECRET not in repr(dest.hypertables) and SECRET not in repr(ts)
    resolved = build_timescaledb_destination("metrics", ts, dsn="postgresql://other/db")
    assert resolved._dsn == "postgresql://other/db"  # the embedded server's DSN, resolved by the driver


def test_transform_stage_and_detach_after_reach_the_pipeline(tmp_path):
    from ray_cdc.pipeline.run import transform_settings
    from ray_cdc.transforms import TransformSettings

    config = load_config(EXAMPLE, environ={"PG_PASSWORD": SECRET, "CLICKHOUSE_PASSWORD": SECRET})
    assert transform_settings(config) == TransformSettings(coalesce=True) and config.retry.detach_after == 5.0
    path = tmp_path / "c.yaml"
    path.write_text("sources: [{name: a, commitlog_dir: d}]\nschema: {from_log: true}\n"
                    "pipeline: {coalesce: false}\nretry: {detach_after: null}\n")
    config = load_config(path, environ={})
    assert transform_settings(config) == TransformSettings(coalesce=False) and config.retry.detach_after is None
    path.write_text("sources: [{name: a, commitlog_dir: d}]\nschema: {from_log: true}\n"
                    "pipeline: {transform_stage: false}\n")
    assert transform_settings(load_config(path, environ={})) is None
    path.write_text("sources: [{name: a, commitlog_dir: d}]\nschema: {from_log: true}\npipeline: {coalesec: false}\n")
    with pytest.raises(ConfigError, match="coalesec"):
        load_config(path, environ={})


def test_object_store_memory_takes_sizes_and_null(write):
    config = load(write, MINIMAL + "pipeline: {object_store_memory: 1GiB}\n")
    assert config.pipeline.object_store_memory == 1 << 30
    assert load(write, MINIMAL + "pipeline: {object_store_memory: null}\n").pipeline.object_store_memory is None
    with pytest.raises(ConfigError, match="object_store_memory"):
        load(write, MINIMAL + "pipeline: {object_store_memory: 10MiB}\n")  # below what Ray accepts


def test_clickhouse_purge_grace_reaches_its_destination(write):
    from ray_cdc.pipeline.run import EmbeddedServers, destination_factories

    config = load(write, MINIMAL + "destinations: {ch: {type: clickhouse, dsn: 'chdb://ch', purge_grace: 2h}}\n")
    assert config.destinations["ch"].purge_grace == 7200
    factory = destination_factories(config, EmbeddedServers())["ch"]
    assert factory.purge_grace == 7200 and factory()._purge_grace == 7200
    default = load(write, MINIMAL + "destinations: {ch: {type: clickhouse, dsn: 'chdb://ch'}}\n")
    assert default.destinations["ch"].purge_grace == 10 * 24 * 3600  # Cassandra's gc_grace_seconds
