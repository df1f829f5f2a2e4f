"""The `snapshot` section of the config and what `ray-cdc run` makes of it (no cluster, no Ray)."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from ray_cdc.config.models import Config
from ray_cdc.pipeline.snapshot import snapshot_before_cdc, source_from_config
from ray_cdc.pipeline.writing import RetryPolicy

CLUSTER = {"cassandra": {"contact_points": ["10.1.2.3"], "port": 9043, "username": "reader",
                         "password": "s3cret-pw"}}


def config(schema: dict, **snapshot) -> Config:
    return Config.model_validate({"sources": [{"name": "a", "commitlog_dir": "/tmp"}], "schema": schema,
                                  "snapshot": snapshot})


def test_defaults_and_settings_reach_the_section():
    c = config(CLUSTER, parallelism=3, fetch_size=200, consistency="ONE", progress_interval="2s")
    assert (c.snapshot.enabled, c.snapshot.parallelism, c.snapshot.fetch_size) == (True, 3, 200)
    assert c.snapshot.progress_interval == 2.0


@pytest.mark.parametrize("snapshot, where", [({"paralelism": 2}, "snapshot.paralelism"),
                                             ({"consistency": "MOST"}, "snapshot.consistency"),
                                             ({"fetch_size": 0}, "snapshot.fetch_size")])
def test_an_unknown_key_or_a_bad_value_is_rejected_naming_it(snapshot, where):
    with pytest.raises(ValidationError) as error:
        config(CLUSTER, **snapshot)
    assert where in str(error.value)


def test_the_snapshot_reads_the_cluster_the_schemas_come_from_with_its_settings():
    c = config(CLUSTER, consistency="ONE", fetch_size=777)
    source = source_from_config(c.schema_source.cassandra, c.snapshot)
    assert (source.contact_points, source.port, source.username) == (("10.1.2.3",), 9043, "reader")
    assert (source.consistency, source.fetch_size, source.password) == ("ONE", 777, "s3cret-pw")
    assert "s3cret-pw" not in repr(source)


@pytest.mark.parametrize("schema, snapshot", [({"cql_file": "/tmp/schema.cql"}, {}),  # no live cluster
                                              ({"from_log": True}, {}),
                                              (CLUSTER, {"enabled": False})])
def test_no_snapshot_without_a_live_cluster_or_when_turned_off(schema, snapshot):
    # returns before connecting anywhere: the contact point is not reachable from here
    assert snapshot_before_cdc(config(schema, **snapshot), {}, threading.Event(), policy=RetryPolicy(),
                               dead_letters=None, run_id="t") is None
