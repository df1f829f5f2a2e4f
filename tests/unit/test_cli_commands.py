"""`ray-cdc` commands that need no database: help and exit codes, where a DSN points, the status
client against a real health API server, and errors that say what to do."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from ray_cdc.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from ray_cdc.cli.status import NotRunning, StatusError, fetch_status, render, status_url
from ray_cdc.cli.stores import endpoint
from ray_cdc.config.models import ObservabilityConfig
from ray_cdc.observability.server import HealthApi
from ray_cdc.observability.view import PipelineView
from tests.services.postgres import free_port

SECRET = "pa55-Secret-word"


def test_help_lists_every_command_and_the_exit_codes():
    result = subprocess.run(["ray-cdc", "--help"], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == EXIT_OK
    for command in ("run", "demo", "status", "offsets", "validate", "segments", "dlq"):
        assert f"    {command} " in result.stdout, command
    for code in ("0  done", "1  the input", "2  the command line", "3  status", "4  offsets reset"):
        assert code in result.stdout


@pytest.mark.parametrize("argv", [["offsets", "reset", "--help"], ["status", "--help"], ["segments", "list", "--help"],
                                  ["validate", "--help"], ["dlq", "replay", "--help"], ["dlq", "purge", "--help"]])
def test_each_command_explains_itself_and_its_exit_codes(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr().out
    assert info.value.code == 0 and "exit codes:" in out and "config" in out


def test_reset_help_explains_why_going_back_is_safe(capsys):
    with pytest.raises(SystemExit):
        main(["offsets", "reset", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "last writer wins" in out and "--yes" in out


@pytest.mark.parametrize(("dsn", "where"), [
    (f"postgresql://app:{SECRET}@db.example:6543/cdc", "db.example:6543"),
    (f"postgresql://app:{SECRET}@db.example/cdc", "db.example:5432"),
    (f"host=10.1.2.3 port=5433 user=app password={SECRET} dbname=x", "10.1.2.3:5433"),
    ("host=/run/postgresql dbname=x", "socket /run/postgresql/.s.PGSQL.5432"),
    (f"https://default:{SECRET}@ch.example/db", "ch.example:8443"),
    ("http://ch.example:8124", "ch.example:8124"),
    ("chdb:///var/lib/ch", "embedded chdb directory /var/lib/ch"),
])
def test_endpoint_names_host_and_port_never_the_password(dsn, where):
    assert endpoint(dsn) == where


def test_status_url_asks_loopback_when_the_api_listens_everywhere():
    assert status_url(ObservabilityConfig(host="0.0.0.0", port=9750)) == "http://127.0.0.1:9750/status"
    assert status_url(ObservabilityConfig(host="::", port=1)) == "http://[::1]:1/status"



def test_nothing_listening_is_not_running():
    with pytest.raises(NotRunning, match="nothing answered at http://127.0.0.1:"):
        fetch_status(f"http://127.0.0.1:{free_port()}/status", None, timeout=2)


def test_a_listener_that_never_answers_is_an_error_not_a_stopped_pipeline():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections are accepted by the kernel, never answered
        port = silent.getsockname()[1]
        with pytest.raises(StatusError, match="accepted the connection but sent no status within 1 s"):
            fetch_status(f"http://127.0.0.1:{port}/status", None, timeout=1)


def test_a_refused_token_says_which_setting_to_fix_and_never_echoes_it():
    server = HealthApi(PipelineView({}, [], observer=None), "127.0.0.1", 0, "the-real-token")
    _, port = server.start()
    try:
        with pytest.raises(StatusError) as info:
            fetch_status(f"http://127.0.0.1:{port}/status", SECRET, timeout=10)
    finally:
        server.stop()
    assert "HTTP 401" in str(info.value) and "observability.bearer_token" in str(info.value)
    assert SECRET not in str(info.value) and "the-real-token" not in str(info.value)


def test_render_prints_fields_it_does_not_know():
    answer = {"phase": "running", "nodes": {"a": {"lag_bytes": 10, "segments": [{"id": 1, "lag": 10}]}},
              "brand_new_field": [1, 2], "empty": {}}
    lines = render(answer)
    assert lines == ["phase: running", "nodes:", "  a:", "    lag_bytes: 10", "    segments:", "      - id: 1",
                     "        lag: 10", "brand_new_field:", "  - 1", "  - 2", "empty: {}"]


def test_a_missing_commitlog_dir_names_the_key_and_the_path_before_ray_starts(tmp_path, capsys):
    missing = tmp_path / "no" / "cdc_raw"
    config = tmp_path / "config.yaml"
    config.write_text(f"sources: [{{name: a, commitlog_dir: {tmp_path}}}, {{name: b, commitlog_dir: {missing}}}]\n"
                      "schema: {from_log: true}\n")
    assert main(["run", str(config), "--once"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "SourceDirectoryError" in err and "sources[1].commitlog_dir" in err and str(missing) in err
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()  # failed before starting Ray


@pytest.mark.parametrize("group", ["offsets", "segments", "dlq"])
def test_a_command_group_without_subcommand_shows_its_own_help(group, capsys):
    assert main([group]) == EXIT_USAGE
    assert f"usage: ray-cdc {group} " in capsys.readouterr().err
