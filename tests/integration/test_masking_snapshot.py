"""Masking in the snapshot of a live cluster (the real Cassandra test node): the snapshot readers mask
each set per destination, so the analytics copy (chDB) holds tokens and hashes while the operational
PostgreSQL copy (`enabled: false`) holds the values Cassandra has."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest

from ray_cdc.config.masking import MaskingConfig
from ray_cdc.config.snapshot import SnapshotConfig
from ray_cdc.pipeline.snapshot import snapshot_on_ray
from ray_cdc.transforms.masking_key import MaskingKey
from tests.integration.test_masking_pipeline import KEY_ENV, SECRET, masking_key_env  # noqa: F401
from tests.integration.test_snapshot import Destinations, local_ray, source_of, table_of  # noqa: F401
from tests.support.destination_checks import open_clickhouse

PATIENTS = 60


@pytest.mark.cassandra
def test_snapshot_masks_per_destination(masking_key_env, local_ray, cassandra_node,  # noqa: F811
                                        postgres_server, tmp_path):
    assert os.environ.get(KEY_ENV) == SECRET  # set before Ray started: the readers inherit it
    session = cassandra_node.session()
    ks = "snapmask_" + uuid.uuid4().hex[:8]
    session.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    session.execute(f"CREATE TABLE {ks}.patients (patient_id int PRIMARY KEY, email text, note text)")
    insert = session.prepare(f"INSERT INTO {ks}.patients (patient_id, email, note) VALUES (?, ?, ?)")
    for p in range(PATIENTS):
        session.execute(insert, (p, f"p{p}@clinic.example", f"note {p}"))
    table = table_of(session, ks, "patients")
    dests = Destinations(postgres_server.dsn, tmp_path / "chdb")
    masking = MaskingConfig(key_env=KEY_ENV, destinations={"pg": {"enabled": False}})
    summary = snapshot_on_ray(source_of(cassandra_node), [table], SnapshotConfig(consistency="ONE", split_count=4),
                              destination_factories=dests.factories(), masking=masking)
    assert summary.rows == PATIENTS and not summary.stopped

    with psycopg.connect(postgres_server.dsn) as conn:
        clear = conn.execute(f'SELECT patient_id, email, note FROM "{dests.pg_name}".patients').fetchall()
    assert sorted(clear) == [(p, f"p{p}@clinic.example", f"note {p}") for p in range(PATIENTS)]

    key = MaskingKey(SECRET.encode())
    ch = open_clickhouse(tmp_path / "chdb", "ch")
    try:
        masked = ch.client.query_arrow(f"SELECT patient_id, email, note FROM `{ks}`.`patients__live`").to_pylist()
    finally:
        ch.close()
    assert sorted((r["patient_id"], r["email"], r["note"]) for r in masked) == sorted(
        (key.token(str(p).encode()), key.hash_hex(f"p{p}@clinic.example".encode()), f"note {p}")
        for p in range(PATIENTS))
