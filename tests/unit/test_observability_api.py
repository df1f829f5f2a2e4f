"""The health API without Ray: the OpenAPI document, the bearer token, readiness rules and checks."""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request

import jsonschema
import pytest
from openapi_spec_validator import validate

from ray_cdc.errors import RayCdcError
from ray_cdc.observability.errors import HealthApiError
from ray_cdc.observability.openapi import document, response_schema
from ray_cdc.observability.readiness import (
    DestinationTarget,
    actors_ready,
    check_destination,
    judge_actors,
    scrub,
)
from ray_cdc.observability.server import HealthApi, authorized
from ray_cdc.observability.service import start
from ray_cdc.observability.view import PipelineView

TOKEN = "s3cr3t-token-Zq9"


def test_the_document_is_valid_openapi_and_describes_every_endpoint():
    validate(document())
    assert set(document()["paths"]) == {"/health", "/ready", "/status", "/metrics", "/openapi.json"}
    assert document()["paths"]["/health"]["get"]["security"] == []  # open even with a token
    for path in ("/ready", "/status", "/metrics", "/openapi.json"):
        assert "401" in document()["paths"][path]["get"]["responses"], path


@pytest.mark.parametrize(("header", "expected"), [
    (f"Bearer {TOKEN}", True), (f"bearer {TOKEN}", True), (None, False), ("", False), ("Bearer", False),
    (f"Bearer {TOKEN}x", False), (f"Basic {TOKEN}", False), (f"Bearer {TOKEN[:-1]}", False)])
def test_bearer_token(header, expected):
    assert authorized(header, TOKEN) is expected


def test_no_token_configured_lets_everyone_in():
    assert authorized(None, None)


def _get(port: int, path: str, token: str | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def api(tmp_path):
    """A real server on a free port; its view has no pipeline behind it (only what needs none is asked)."""
    server = HealthApi(PipelineView({}, [], observer=None), "127.0.0.1", 0, TOKEN)
    _, port = server.start()
    yield port
    server.stop()


def test_health_is_open_and_matches_the_document(api):
    status, headers, body = _get(api, "/health")
    assert status == 200 and headers["Content-Type"] == "application/json"
    jsonschema.validate(json.loads(body), response_schema("/health", 200))


@pytest.mark.parametrize("path", ["/ready", "/status", "/metrics", "/openapi.json", "/nowhere"])
@pytest.mark.parametrize("token", [None, "wrong"])
def test_everything_else_needs_the_token(api, path, token):
    status, headers, body = _get(api, path, token)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in body.decode() and TOKEN not in json.dumps(headers)
    jsonschema.validate(json.loads(body), response_schema("/status", 401))


def test_the_document_is_served_with_the_token(api):
    status, _, body = _get(api, "/openapi.json", TOKEN)
    assert status == 200 and json.loads(body) == json.loads(json.dumps(document()))
    assert _get(api, "/nowhere", TOKEN)[0] == 404


def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HealthApiError, match=f"127.0.0.1:{port}.*observability") as error:
            HealthApi(PipelineView({}, [], observer=None), "127.0.0.1", port).start()
    assert isinstance(error.value, RayCdcError)


def test_the_default_address_in_use_is_logged_and_replication_goes_on(caplog):
    """Another run on the host may hold 127.0.0.1:9750: without an observability section the run
    goes on without the API (an ERROR line says why); an address the config names must be served."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        api = HealthApi(PipelineView({}, [], observer=None), "127.0.0.1", port, TOKEN)
        with caplog.at_level(logging.ERROR, logger="ray_cdc.observability"):
            assert start(api, required=False) is None
        assert f"127.0.0.1:{port}" in caplog.text and "without the health API" in caplog.text
        assert TOKEN not in caplog.text
        with pytest.raises(HealthApiError):
            start(api, required=True)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_postgres_is_reported_without_its_password():
    check = check_destination(DestinationTarget("pg", "postgres",
                                                f"postgresql://app:{TOKEN}@127.0.0.1:{_closed_port()}/db"))
    assert not check.reachable and "OperationalError" in check.detail
    assert TOKEN not in check.detail


def test_each_destination_is_checked_with_its_own_settings(tmp_path):
    chdb = DestinationTarget("ch", "clickhouse", f"chdb://{tmp_path / 'not-yet-created'}")
    assert check_destination(chdb).reachable  # the writer creates it
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    broken = check_destination(DestinationTarget("ch", "clickhouse", f"chdb://{blocker / 'data'}"))
    assert not broken.reachable and "not a writable directory" in broken.detail
    server = check_destination(DestinationTarget("ch", "clickhouse",
                                                 f"http://default:{TOKEN}@127.0.0.1:{_closed_port()}"))
    assert not server.reachable and TOKEN not in server.detail


def test_scrub_removes_secrets_verbatim_and_passwords():
    assert scrub(f"failed for x{TOKEN}y and password=hunter2", [TOKEN]) == "failed for x***y and password=***"


def test_readiness_needs_a_coordinator_offsets_and_a_writer_per_destination():
    actors = [("p-1:coordinator", "ALIVE"), ("p-1:offsets", "ALIVE"), ("p-1:writer:pg", "ALIVE"),
              ("p-1:reader:a:0", "DEAD")]
    statuses, missing = judge_actors("p-1", actors, ["pg", "ch"])
    assert missing == ["writer:ch"] and not actors_ready(statuses, missing)
    pooled = actors + [("p-1:writer:ch:1", "ALIVE")]  # writers of a pool carry an index
    statuses, missing = judge_actors("p-1", pooled, ["pg", "ch"])
    assert missing == [] and actors_ready(statuses, missing)  # a reader that ended is not required
    restarting = [(n, "RESTARTING" if "offsets" in n else s) for n, s in pooled]
    assert not actors_ready(*judge_actors("p-1", restarting, ["pg", "ch"]))
    assert judge_actors(None, [], ["pg"]) == ([], [])  # between passes nothing is expected
