"""cluster.yaml is a valid Ray cluster-launcher config (Ray's own preparation and schema check), and
the resource each Cassandra host's worker advertises is the one a source of that name asks for."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from ray_cdc.config.models import SourceConfig

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_ray_accepts_the_cluster_config(cluster):
    prepared = prepare_config(copy.deepcopy(cluster))
    validate_config(prepared)  # raises jsonschema.ValidationError on a bad key or value
    node_type = prepared["available_node_types"][prepared["head_node_type"]]
    assert node_type["max_workers"] == len(cluster["provider"]["worker_ips"])


def test_ray_rejects_a_broken_copy(cluster):
    # the check above is a real one: a misspelled key fails Ray's schema
    broken = copy.deepcopy(cluster)
    broken["worker_start_ray_comands"] = broken.pop("worker_start_ray_commands")
    with pytest.raises(Exception, match="worker_start_ray_comands"):
        validate_config(prepare_config(broken))


def _worker_resource_for(hostname: str, cluster: dict) -> str:
    """Run the worker's `ray start` line through a real shell with `hostname` stubbed, and return the
    --resources value the worker would advertise."""
    start = next(c for c in cluster["worker_start_ray_commands"] if "ray start" in c)
    start = start.split(";", 1)[-1].strip()
    script = f'hostname() {{ echo {hostname}; }}; ray() {{ printf "%s\\n" "$@"; }}; RAY_HEAD_IP=10.0.0.10; {start}'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    match = re.search(r"--resources=(\{.*\})", out)
    assert match, out
    return match.group(1)


def test_each_worker_advertises_its_cassandra_node(cluster):
    import json

    resources = json.loads(_worker_resource_for("cass-a", cluster))
    source = SourceConfig(name="cass-a", commitlog_dir="/var/lib/cassandra/cdc_raw")
    assert resources == {source.ray_resource: 1}
