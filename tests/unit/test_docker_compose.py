"""docker-compose.yml is a valid Compose file (checked by docker-compose itself), and its parts fit:
the ray-cdc container reads the Cassandra container's cdc_raw through a shared volume at the path
deploy/config.yaml names, advertises the Ray resource that config's source asks for, and every
${VAR} the config needs is supplied by the compose environment."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ray_cdc.config import load_config

REPO = Path(__file__).resolve().parents[2]


def _compose_command() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed: "
                "scripts/install-test-services.sh installs Debian's docker-compose", pytrace=False)


def _resolved() -> dict:
    out = subprocess.run([*_compose_command(), "-f", str(REPO / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_file_is_valid():
    services = _resolved()["services"]
    assert {"cassandra", "ray-cdc", "postgres", "timescaledb", "clickhouse"} <= set(services)


def test_compose_rejects_a_broken_copy(tmp_path):
    # the validation above is real: a wrong dependency condition is refused
    text = (REPO / "docker-compose.yml").read_text().replace("service_healthy", "service_healty")
    (tmp_path / "docker-compose.yml").write_text(text)
    (tmp_path / "deploy").symlink_to(REPO / "deploy")
    out = subprocess.run([*_compose_command(), "config", "-q"], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert out.returncode != 0 and "service_healty" in out.stderr


def _volume_at(service: dict, target: str) -> str | None:
    for volume in service.get("volumes", []):
        if isinstance(volume, dict) and volume["target"] == target:
            return volume["source"]
        if isinstance(volume, str) and volume.split(":")[1] == target:
            return volume.split(":")[0]
    return None


def test_ray_cdc_reads_cassandras_cdc_raw_with_the_shipped_config():
    services = _resolved()["services"]
    environ = {k: str(v) for k, v in services["ray-cdc"]["environment"].items()}
    config = load_config(REPO / "deploy" / "config.yaml", environ=environ)
    (source,) = config.sources
    shared = _volume_at(services["cassandra"], "/var/lib/cassandra/cdc_raw")
    assert shared is not None and _volume_at(services["ray-cdc"], str(source.commitlog_dir)) == shared
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.search(r'\\"' + re.escape(source.ray_resource) + r'\\": 1', dockerfile), source.ray_resource
    assert "cdc_enabled: true" in " ".join(services["cassandra"]["entrypoint"])
    assert {d.type for d in config.destinations.values()} == {"postgres", "timescaledb", "clickhouse"}
