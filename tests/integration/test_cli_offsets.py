"""`ray-cdc offsets show | reset`, `segments list`, `validate --check-connections` and the offline
`status`, run through `main(argv)` against a real PostgreSQL and chDB; and the offset stores'
`rewrite` methods the reset uses."""

from __future__ import annotations

import json
import uuid

import pytest
import ray

from ray_cdc.cli import EXIT_ERROR, EXIT_NEEDS_CONFIRMATION, EXIT_NOT_RUNNING, EXIT_OK, main
from ray_cdc.cli.common import load
from ray_cdc.cli.stores import preflight
from ray_cdc.commitlog.workload import demo_tables, generate
from ray_cdc.destinations.clickhouse import ClickHouseDestination
from ray_cdc.destinations.postgres import PostgresDestination
from ray_cdc.observability.server import HealthApi
from ray_cdc.observability.view import PipelineView
from ray_cdc.offsets import Offset
from tests.services.postgres import free_port


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    """Node a's cdc_raw: a few small segments, each with a COMPLETED _cdc.idx."""
    root = tmp_path_factory.mktemp("cdc_raw")
    summary = generate(root, rows=1500, tables=demo_tables(), seed=5, segment_size=128 << 10, preallocate=False)
    assert len(summary.segments) >= 3
    return root, sorted(int(p.name.split("-")[2].removesuffix(".log")) for p in summary.segments)


@pytest.fixture
def setup(tmp_path, postgres_server, node_dir):
    """A config with one PostgreSQL and one chDB destination, and the two destinations opened."""
    root, segment_ids = node_dir
    pg_name = "o_" + uuid.uuid4().hex[:8]  # offsets are kept per destination name on a shared server
    config = tmp_path / "config.yaml"
    config.write_text(f"""
sources: [{{name: a, commitlog_dir: {root}}}]
schema: {{cql_file: {root / 'schema.cql'}}}
destinations:
  {pg_name}: {{type: postgres, dsn: "{postgres_server.dsn}"}}
  ch: {{type: clickhouse, dsn: "chdb://{tmp_path / 'ch'}", database: cdc}}
observability: {{port: {free_port()}}}
pipeline: {{state_dir: {tmp_path / 'state'}}}
""")
    pg = PostgresDestination(postgres_server.dsn, name=pg_name)
    pg.open()
    yield config, pg_name, pg, segment_ids
    pg.close()


def _chdb(tmp_path) -> ClickHouseDestination:
    ch = ClickHouseDestination(f"chdb://{tmp_path / 'ch'}", name="ch", database="cdc")
    ch.open()
    return ch



def _seed(destination, s1: int, s2: int, s3: int) -> None:
    """Segment s1 applied whole, s2 up to 300, s3 up to 40; node b's offset must never be touched."""
    destination.commit_offsets([Offset("a", s1, 900, True), Offset("a", s2, 300), Offset("a", s3, 40),
                                Offset("b", s2, 77)])


# --- the stores --------------------------------------------------------------------------------------


def test_postgres_rewrite_moves_back_and_forgets_partitions_in_one_go(setup):
    _, _, pg, (s1, s2, s3, *_) = setup
    _seed(pg, s1, s2, s3)
    pg.rewrite_offsets([Offset("a", s1, 100)], drop=[f"a/{s2}", f"a/{s3}"])
    assert pg.committed_offsets() == {f"a/{s1}": Offset("a", s1, 100), f"b/{s2}": Offset("b", s2, 77)}
    pg.commit_offsets([Offset("a", s1, 200)])  # the pipeline moves forward from there again
    assert pg.committed_offsets()[f"a/{s1}"] == Offset("a", s1, 200)


def test_clickhouse_rewrite_moves_back_even_to_an_offset_it_stored_before(tmp_path):
    ch = _chdb(tmp_path)
    ch.commit_offsets([Offset("a", 1, 100)])
    ch.commit_offsets([Offset("a", 1, 500, True), Offset("a", 2, 60)])
    # the same row as the first insert: neither deduplicated nor outranked by the higher _version
    ch.rewrite_offsets([Offset("a", 1, 100)], drop=["a/2"])
    assert ch.committed_offsets() == {"a/1": Offset("a", 1, 100)}
    ch.close()
    reopened = _chdb(tmp_path)  # what a restarted pipeline reads
    assert reopened.committed_offsets() == {"a/1": Offset("a", 1, 100)}
    reopened.close()


# --- the commands ------------------------------------------------------------------------------------


def test_offsets_show_lists_every_destination(setup, tmp_path, capsys):
    config, pg_name, pg, (s1, s2, s3, *_) = setup
    _seed(pg, s1, s2, s3)
    ch = _chdb(tmp_path)
    ch.commit_offsets([Offset("a", s1, 64)])
    ch.close()
    assert main(["offsets", "show", str(config), "--json"]) == EXIT_OK
    shown = json.loads(capsys.readouterr().out)
    assert shown[pg_name][f"a/{s2}"] == {"node": "a", "segment_id": s2, "position": 300, "completed": False}
    assert set(shown[pg_name]) == {f"a/{s1}", f"a/{s2}", f"a/{s3}", f"b/{s2}"}
    assert shown["ch"] == {f"a/{s1}": {"node": "a", "segment_id": s1, "position": 64, "completed": False}}
    assert main(["offsets", "show", str(config), "--destination", "ch"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "ch: 1 partition(s), 0 completed" and f"{s1}:64" in out and pg_name not in out


def test_offsets_reset_needs_yes_then_moves_every_destination(setup, tmp_path, capsys):
    config, _pg_name, pg, (s1, s2, s3, *_) = setup
    ch = _chdb(tmp_path)
    for destination in (pg, ch):
        _seed(destination, s1, s2, s3)
    ch.close()  # chDB: one process at a time may open its directory
    before = pg.committed_offsets()

    assert main(["offsets", "reset", str(config), "--node", "a", "--to", f"{s2}:120"]) == EXIT_NEEDS_CONFIRMATION
    out, err = capsys.readouterr()
    assert f"a/{s2}: {s2}:300 -> {s2}:120" in out and f"a/{s3}: {s3}:40 -> nothing applied" in out
    assert "--yes" in err and pg.committed_offsets() == before

    assert main(["offsets", "reset", str(config), "--node", "a", "--to", f"{s2}:120", "--yes"]) == EXIT_OK
    expected = {f"a/{s1}": Offset("a", s1, 900, True), f"a/{s2}": Offset("a", s2, 120),
                f"b/{s2}": Offset("b", s2, 77)}
    assert pg.committed_offsets() == expected
    ch = _chdb(tmp_path)
    assert ch.committed_offsets() == expected
    ch.close()


def test_offsets_reset_forward_completes_earlier_segments_at_their_durable_end(setup, node_dir, capsys):
    config, pg_name, pg, (s1, s2, s3, *_) = setup
    root, _ = node_dir
    end_of_s1 = int((root / f"CommitLog-7-{s1}_cdc.idx").read_text().split()[0])
    args = ["offsets", "reset", str(config), "--node", "a", "--to", f"{s3}:10", "--destination", pg_name, "--yes"]
    assert main(args) == EXIT_OK
    committed = pg.committed_offsets()
    assert committed[f"a/{s1}"] == Offset("a", s1, end_of_s1, True)
    assert committed[f"a/{s2}"].completed and committed[f"a/{s3}"] == Offset("a", s3, 10)
    assert "ch:" not in capsys.readouterr().out  # --destination: the other one is not touched


@pytest.mark.parametrize(("argv", "says"), [
    (["--node", "z", "--to", "1:2"], "UnknownNameError: --node 'z' is not configured; nodes (sources[].name) are: a"),
    (["--node", "a", "--to", "12-40"], "OffsetResetError: --to '12-40': expected SEGMENT_ID:OFFSET"),
    (["--node", "a", "--to", "1:2", "--destination", "nope"], "UnknownNameError: --destination 'nope' is not configured"),
])
def test_offsets_reset_bad_input_says_what_to_give(setup, capsys, argv, says):
    config = setup[0]
    assert main(["offsets", "reset", str(config), *argv, "--yes"]) == EXIT_ERROR
    assert says in capsys.readouterr().err


def test_segments_list_shows_each_segment_state(setup, tmp_path, capsys):
    config, pg_name, pg, (s1, s2, s3, *_) = setup
    ch = _chdb(tmp_path)
    ch.commit_offsets([Offset("a", s1, 900, True)])
    ch.close()
    pg.commit_offsets([Offset("a", s1, 900, True), Offset("a", s2, 10)])
    assert main(["segments", "list", str(config), "--json"]) == EXIT_OK
    rows = {r["segment_id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows[s1]["state"] == "committed" and rows[s1]["owed_to"] == []
    assert rows[s2]["state"] == "partial" and rows[s2]["owed_to"] == sorted(["ch", pg_name])
    assert rows[s3]["state"] == "pending" and rows[s3]["bytes"] > 0
    assert main(["segments", "list", str(config)]) == EXIT_OK
    assert f"node a: {len(rows)} segment(s)" in capsys.readouterr().out


def test_status_without_a_pipeline_exits_3_with_an_offline_summary(setup, capsys):
    config, pg_name, pg, (s1, _s2, _s3, *_) = setup
    pg.commit_offsets([Offset("a", s1, 900, True)])
    assert main(["status", str(config), "--timeout", "2"]) == EXIT_NOT_RUNNING
    out = capsys.readouterr().out
    assert out.startswith("pipeline not running: nothing answered at http://127.0.0.1:")
    assert f"destination {pg_name}: 1 partition(s) with offsets, 1 segment(s) completed" in out
    assert "destination ch: 0 partition(s)" in out
    assert "0 committed by every destination, 1 partially" in out


# --- errors that say what to do -------------------------------------------------------------------------


def test_an_unreachable_dsn_names_the_setting_and_host_never_the_password(tmp_path, node_dir, capsys):
    root, _ = node_dir
    port = free_port()  # nothing listens there
    config = tmp_path / "config.yaml"
    config.write_text(f"""
sources: [{{name: a, commitlog_dir: {root}}}, {{name: b, commitlog_dir: {tmp_path / 'missing'}}}]
schema: {{from_log: true}}
destinations:
  warehouse: {{type: postgres, dsn: "postgresql://app:Very-Secret-9@127.0.0.1:{port}/cdc"}}
""")
    assert main(["offsets", "show", str(config)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "UnreachableDestinationError" in err and "destinations.warehouse.dsn" in err
    assert f"127.0.0.1:{port}" in err and "Very-Secret-9" not in err

    assert main(["validate", str(config), "--check-connections"]) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert "ok: node a" in out and "Very-Secret-9" not in out + err
    assert f"sources[1].commitlog_dir (node 'b'): {tmp_path / 'missing'} does not exist" in err
    assert "destinations.warehouse.dsn" in err and f"127.0.0.1:{port}" in err


def test_validate_check_connections_passes_when_everything_answers(setup, capsys):
    config, pg_name, *_ = setup
    assert main(["validate", str(config), "--check-connections"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"ok: destination {pg_name}: 127.0.0.1:" in out and "ok: destination ch: embedded chdb" in out


def test_run_stops_before_ray_on_a_dsn_the_server_refuses(tmp_path, node_dir, postgres_server, capsys):
    root, _ = node_dir
    wrong_db = postgres_server.dsn.rsplit("/", 1)[0] + "/no_such_database"
    config = tmp_path / "config.yaml"
    config.write_text(f"""
sources: [{{name: a, commitlog_dir: {root}}}]
schema: {{cql_file: {root / 'schema.cql'}}}
destinations:
  warehouse: {{type: postgres, dsn: "{wrong_db}"}}
""")
    assert main(["run", str(config), "--once"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "destinations.warehouse.dsn" in err and "no_such_database" in err
    assert f"127.0.0.1:{postgres_server.port}" in err and postgres_server.password not in err
    assert not ray.is_initialized()  # stopped before Ray


def test_a_server_that_is_down_is_a_warning_for_run(tmp_path, node_dir):
    root, _ = node_dir
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"""
sources: [{{name: a, commitlog_dir: {root}}}]
schema: {{from_log: true}}
destinations:
  down: {{type: postgres, dsn: "postgresql://app:Very-Secret-9@127.0.0.1:{port}/cdc"}}
  local: {{type: clickhouse, dsn: "chdb://{tmp_path / 'ch'}"}}
""")
    [down] = preflight(load(config))
    assert down.retryable and "destinations.down.dsn" in str(down) and f"127.0.0.1:{port}" in str(down)
    assert "Very-Secret-9" not in str(down)


def test_offsets_reset_refuses_while_a_pipeline_answers(setup, capsys):
    config, _, pg, (s1, *_) = setup
    pg.commit_offsets([Offset("a", s1, 900, True)])
    port = load(config).observability.port
    api = HealthApi(PipelineView({}, [], observer=None), "127.0.0.1", port, "some-token")
    api.start()
    try:
        code = main(["offsets", "reset", str(config), "--node", "a", "--to", f"{s1}:10", "--yes"])
    finally:
        api.stop()
    assert code == EXIT_ERROR
    assert f"a pipeline answers at http://127.0.0.1:{port}/status: stop it" in capsys.readouterr().err
    assert pg.committed_offsets()[f"a/{s1}"] == Offset("a", s1, 900, True)
