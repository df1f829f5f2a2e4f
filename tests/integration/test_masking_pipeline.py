"""Masking through the Ray pipeline into a real PostgreSQL and chDB, with the transform stage on and off
(`pipeline.transform_stage: false` with masking configured: the stage runs masking only).

One table holds PII (`email`) and PHI (`patient_id`, an int key). PostgreSQL is the operational copy
(`enabled: false`: clear values), chDB the analytics copy (masked). Some rows carry a timestamp
chDB refuses (year 2400) and a few one PostgreSQL refuses too (year 300000): they go to the DLQ. After
one run: PostgreSQL holds every accepted row in clear; no clear email or patient id is anywhere in
chDB, its keys are tokens (text), emails hashes, the same value the same mask; the DLQ entries of chDB
hold the masked values of exactly the rows chDB refused, those of PostgreSQL the clear ones; the key
appears nowhere (destinations, DLQ, logs)."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

import pyarrow as pa
import pytest

from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.mutation_encoder import encode_mutation
from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.commitlog.segment_writer import SegmentWriter
from ray_cdc.config.models import Config
from ray_cdc.destinations.clickhouse import ClickHouseDestination
from ray_cdc.dlq import DeadLetterFilter
from ray_cdc.pipeline.distributed import NodeSource, replicate_available_on_ray
from ray_cdc.pipeline.factories import DeadLetterFactory, DestinationFactory
from ray_cdc.pipeline.run import transform_settings
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.registry import SchemaRegistry
from ray_cdc.schema.types import parse_cql_type
from ray_cdc.transforms.masking_key import MaskingKey
from tests.integration.test_ray_pipeline import local_ray  # noqa: F401  (module fixture)

KEY_ENV = "RAY_CDC_TEST_PIPELINE_MASKING_KEY"
SECRET = "pipeline-masking-key-0123456789"
SEGMENT = 1_810_000_000_000
YEAR_2400 = int(datetime(2400, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)  # chDB refuses
YEAR_300000 = 9_404_000_000_000_000  # beyond PostgreSQL's timestamptz too
ROWS = 240


@pytest.fixture(scope="module")
def masking_key_env():
    """Set before Ray starts (requested before `local_ray`): the actors' processes inherit it."""
    os.environ[KEY_ENV] = SECRET
    yield
    os.environ.pop(KEY_ENV, None)


def visits_table(keyspace: str) -> TableSchema:
    t = parse_cql_type
    return TableSchema(keyspace, "visits", uuid.uuid5(uuid.NAMESPACE_OID, keyspace), (
        ColumnSchema("patient_id", t("int"), ColumnKind.PARTITION_KEY),
        ColumnSchema("visit", t("int"), ColumnKind.CLUSTERING),
        ColumnSchema("email", t("text"), ColumnKind.REGULAR),
        ColumnSchema("at", t("timestamp"), ColumnKind.REGULAR),
        ColumnSchema("note", t("text"), ColumnKind.REGULAR)))


def email(n: int) -> str:
    return f"person{n % 40}@example.org"


def write_visits(directory, table, first_segment: int) -> dict[str, set]:
    """Two segments of inserts; returns the emails of the rows each destination refuses."""
    directory.mkdir(parents=True)
    refused = {"pg": set(), "ch": set()}
    for s in range(2):
        with SegmentWriter(directory, segment_id=first_segment + s) as writer:
            for i in range(ROWS // 2):
                n = s * ROWS // 2 + i
                at = YEAR_300000 if n % 60 == 7 else YEAR_2400 if n % 10 == 3 else 1_700_000_000_000 + n
                builder = MutationBuilder(table, {"patient_id": 1000 + n % 30}).insert(
                    {"visit": n}, {"email": email(n), "at": at, "note": f"visit {n}"}, timestamp=1_000_000 + n)
                writer.append(encode_mutation(builder.mutation()))
                if at != 1_700_000_000_000 + n:
                    refused["ch"].add(n)
                if at == YEAR_300000:
                    refused["pg"].add(n)
        writer.write_cdc_index(completed=True)  # closed: the segment is durable to its end
    return refused


def text_columns(payload) -> list[str]:
    return [f.name for f in payload.schema if pa.types.is_string(f.type)]


def pipeline_config(tmp_path, stage: bool) -> Config:
    return Config.model_validate({
        "sources": [{"name": "a", "commitlog_dir": str(tmp_path / "a")}], "schema": {"from_log": True},
        "destinations": {"pg": {"type": "postgres", "dsn": "postgresql://localhost/x"},
                         "ch": {"type": "clickhouse", "dsn": f"chdb://{tmp_path / 'clickhouse'}"}},
        "pipeline": {"transform_stage": stage},
        "masking": {"key_env": KEY_ENV, "destinations": {"pg": {"enabled": False}}}})


@pytest.mark.parametrize("stage", [True, False], ids=["stage", "no-stage"])
def test_masked_in_clickhouse_and_its_dlq_clear_in_postgres(masking_key_env, local_ray, postgres_server,  # noqa: F811
                                                            tmp_path, stage):
    keyspace = "mask_" + uuid.uuid4().hex[:8]
    table = visits_table(keyspace)
    # segment ids of their own: PostgreSQL keeps destination `pg`'s offsets across the tests
    refused = write_visits(tmp_path / "a", table, SEGMENT + (0 if stage else 10))
    settings = transform_settings(pipeline_config(tmp_path, stage))
    assert settings is not None and settings.prepare is stage  # off: the stage masks, nothing else
    ch_dsn = f"chdb://{tmp_path / 'clickhouse'}"
    factories = {"pg": DestinationFactory("pg", "postgres", postgres_server.dsn, schema=keyspace),
                 "ch": DestinationFactory("ch", "clickhouse", ch_dsn, database="default")}
    dlq = DeadLetterFactory("files", str(tmp_path / "dlq"))
    summary = replicate_available_on_ray({"a": NodeSource(tmp_path / "a")},
                                         lambda node: CommitLogReader(SchemaRegistry([table])), factories,
                                         batch_rows=64, dead_letters=dlq, transforms=settings)
    assert summary.readers[0]["rows"] == ROWS, summary

    key = MaskingKey(SECRET.encode())
    all_emails = {email(n) for n in range(ROWS)}
    accepted = {"pg": set(range(ROWS)) - refused["pg"], "ch": set(range(ROWS)) - refused["ch"]}

    import psycopg

    with psycopg.connect(postgres_server.dsn) as conn:
        pg_rows = conn.execute(f'SELECT patient_id, visit, email FROM "{keyspace}".visits').fetchall()
    assert sorted(pg_rows) == sorted((1000 + n % 30, n, email(n)) for n in accepted["pg"])  # clear

    ch = ClickHouseDestination(ch_dsn, name="ch", database="default")
    ch.open()
    try:
        live = ch.client.query_arrow(f"SELECT * FROM `{keyspace}`.`visits__live`").to_pylist()
        stored = str(ch.client.query_arrow(f"SELECT * FROM `{keyspace}`.`visits`").to_pylist())
        key_type = ch.client.query_arrow(f"SELECT type FROM system.columns WHERE database = '{keyspace}' "
                                         "AND table = 'visits' AND name = 'patient_id'").to_pylist()
    finally:
        ch.close()
    assert sorted((r["patient_id"], r["visit"], r["email"]) for r in live) == sorted(
        (key.token(str(1000 + n % 30).encode()), n, key.hash_hex(email(n).encode())) for n in accepted["ch"])
    assert key_type == [{"type": "String"}]  # an int key became text: the token's type
    assert not any(e in stored for e in all_emails) and SECRET not in stored

    store = dlq()
    for name, masked in (("ch", True), ("pg", False)):
        payloads = [store.get(e.id).payload for e in store.list(DeadLetterFilter(destination=name))]
        visits = sorted(v for p in payloads for v in p.column("visit").to_pylist())
        assert visits == sorted(refused[name]), name  # exactly the refused rows
        emails = [e for p in payloads for e in p.column("email").to_pylist()]
        expected = [email(n) for n in visits]
        if masked:  # the DLQ never holds what the destination may not see
            assert sorted(emails) == sorted(key.hash_hex(e.encode()) for e in expected)
            text = str([p.select(text_columns(p)).to_pylist() for p in payloads])
            assert not any(e in text for e in all_emails)
        else:
            assert sorted(emails) == sorted(expected)
    dlq_files = "".join(p.read_bytes().decode("latin-1") for p in (tmp_path / "dlq").rglob("*") if p.is_file())
    assert SECRET not in dlq_files
