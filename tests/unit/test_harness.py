"""The benchmark harness (benchmarks/harness.py): scenario selection, the summaries, table and charts on
small synthetic results shaped like the benchmark scripts' JSON, splitting a workload over nodes, and
one real --quick decode run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import harness
from benchmarks import harness_report as report
from benchmarks.charts import draw_all
from benchmarks.end_to_end import config_text
from ray_cdc.actors.writer import APPLY_SECONDS_KEPT, CommitTimings
from ray_cdc.commitlog import workload
from ray_cdc.config import load_config
from ray_cdc.errors import RayCdcError

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- scenario selection and secrets -----------------------------------------------------------------------


def test_scenarios_run_in_the_harness_order_each_once():
    assert harness.parse_scenarios("backlog, decode,backlog,e2e") == ["decode", "e2e", "backlog"]


def test_an_unknown_scenario_is_a_typed_error_naming_it():
    with pytest.raises(harness.UnknownScenarioError, match="decod") as caught:
        harness.parse_scenarios("decod,e2e")
    assert isinstance(caught.value, RayCdcError)
    assert "decode, e2e, snapshot, scaling, backlog" in str(caught.value)
    with pytest.raises(harness.UnknownScenarioError, match="none given"):
        harness.parse_scenarios(" , ")


def test_the_command_line_refuses_an_unknown_scenario(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/harness.py", "--scenarios", "nope", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "unknown nope" in done.stderr


def test_dsn_passwords_are_redacted():
    text = "psql failed: postgresql://postgres:s3cr3t-Pw@127.0.0.1:5432/postgres and chdb:///tmp/x"
    assert report_safe(harness.redact(text))
    assert "postgresql://postgres:***@127.0.0.1:5432/postgres" in harness.redact(text)


def report_safe(text: str) -> bool:
    return "s3cr3t" not in text


# --- latencies and the steady state -----------------------------------------------------------------------


def test_latency_percentiles_pool_the_writers_of_each_destination():
    seconds = {"bpg_ab12": [i / 1000 for i in range(1, 51)], "bpg_ab12#2": [i / 1000 for i in range(51, 101)],
               "ch_ab12": [0.5] * 7, "bts_ab12": []}
    latency = report.latency_percentiles(seconds)
    assert set(latency) == {"postgres", "clickhouse"}  # a writer with no committed set has no percentile
    assert latency["postgres"]["sets"] == 100
    assert latency["postgres"]["p50_ms"] == pytest.approx(50.5)
    assert latency["postgres"]["p99_ms"] == pytest.approx(float(np.percentile(range(1, 101), 99)))
    assert latency["clickhouse"] == {"p50_ms": pytest.approx(500), "p99_ms": pytest.approx(500), "sets": 7}
    assert report.writer_count({"set_seconds": seconds}) == {"postgres": 2, "clickhouse": 1}
    # the pipeline's own count (writers of a destination merged into one timing) comes first
    assert report.writer_count({"set_seconds": seconds, "writers": {"bpg_ab12": 3, "ch_ab12": 1}}) == {
        "postgres": 3, "clickhouse": 1}


def test_a_steady_state_over_too_few_sets_is_not_reported():
    few = {"postgres": {"p50_ms": 1, "p99_ms": 2, "sets": report.MIN_STEADY_SETS - 1}}
    enough = {"postgres": {"p50_ms": 1, "p99_ms": 2, "sets": report.MIN_STEADY_SETS}}
    assert report.steady_or_none(4_000_000.0, few) is None
    assert report.steady_or_none(50_000.0, enough) == 50_000.0
    assert report.steady_or_none(50_000.0, {}) is None


def test_writer_commit_timings_keep_each_sets_apply_time_bounded_and_as_json():
    timings = CommitTimings()
    for i in range(APPLY_SECONDS_KEPT + 3):
        timings.committed(10, i / 1000)
    data = json.loads(json.dumps(timings.as_dict()))
    assert data["sets"] == APPLY_SECONDS_KEPT + 3 and data["rows"] == 10 * (APPLY_SECONDS_KEPT + 3)
    assert len(data["apply_seconds"]) == APPLY_SECONDS_KEPT
    assert data["apply_seconds"][-1] == pytest.approx((APPLY_SECONDS_KEPT + 2) / 1000)  # the latest kept


# --- summaries of the scripts' JSON ---------------------------------------------------------------------


def pipeline_run(rows: int, seconds: float, steady: float, sets: int, peak: float, writer: str = "bpg_t1") -> dict:
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "steady_rows_per_s": steady,
            "startup_s": 9.0, "peak_rss_mib": peak, "peak_pss_mib": peak / 2,
            "set_seconds": {writer: [0.1 * (i + 1) for i in range(sets)]},
            "memory_timeline": [[0.0, 100.0, 60.0], [0.2, peak, None], [1.0, peak - 10, peak / 2]]}


def e2e_raw() -> dict:
    run = pipeline_run(100_000, 2.0, 80_000.0, 10, 1000.0)
    return {"workload": {"rows": 100_000}, "postgres": "debian",
            "baseline": {"peak_rss_mib": 900.0, "peak_pss_mib": 500.0},
            "scenarios": {
                "postgres": {"available": True, "destinations": ["postgres"], "rows_per_s": 50_000.0,
                             "ceiling_rows_per_s": 100_000.0, "ratio": 0.5, "steady_rows_per_s": 80_000.0,
                             "steady_ratio": 0.8, "runs": {"pipeline": [run], "ceiling": [{"rows_per_s": 1e5}]}},
                "timescaledb": {"available": False, "reason": "unknown destination type"}},
            "backlog": {"factor": 10, "scenarios": {
                "postgres": {**pipeline_run(1_000_000, 10.0, 120_000.0, 12, 1500.0), "peak_rss_mib_1x": 1000.0}}}}


def test_e2e_summary_keeps_the_ceiling_of_the_same_run_and_the_latencies():
    summary = report.summarize_e2e(e2e_raw())
    pg = summary["scenarios"]["postgres"]
    assert pg["ceiling"] == {"name": "psql \\copy", "rows_per_s": 100_000.0}
    assert (pg["ratio"], pg["steady_rows_per_s"], pg["steady_ratio"]) == (0.5, 80_000.0, 0.8)
    assert pg["latency"]["postgres"]["sets"] == 10
    assert pg["memory_timeline"][1] == [0.2, 1000.0, None]
    assert summary["scenarios"]["timescaledb"] == {"available": False, "reason": "unknown destination type"}
    assert summary["baseline"] == {"peak_rss_mib": 900.0, "peak_pss_mib": 500.0}


def test_all_destinations_at_once_are_compared_with_their_concurrent_bulk_loads():
    assert report.ceiling_of(["postgres", "timescaledb", "clickhouse"], 7.0) == {
        "name": "psql \\copy + chDB insert_arrow (concurrently)", "rows_per_s": 7.0}


def test_backlog_summary_compares_the_big_run_with_the_1x_run():
    summary = report.summarize_backlog(e2e_raw(), "postgres")
    assert summary["factor"] == 10
    assert summary["rss_growth"] == pytest.approx(1.5) and summary["pss_growth"] == pytest.approx(1.5)
    assert summary["big"]["rows"] == 1_000_000 and summary["1x"]["rows"] == 100_000
    assert summary["ceiling"]["rows_per_s"] == 100_000.0


def test_decode_summary_is_relative_to_framing_in_the_same_run():
    mode = {"rows_per_s_per_core": 2_000_000.0, "cells_per_s_per_core": 2e7, "peak_rss_mib": 130.0, "cpu_s": 0.5}
    framing = {"rows_per_s_per_core": 1_000_000.0, "cells_per_s_per_core": 0.0, "peak_rss_mib": 80.0, "cpu_s": 1.0}
    raw = {"sets": [{"generated": {"segment_mib": 16, "rows": 10, "bytes": 2**20},
                     "modes": {"framing": framing, "arrow": mode}}]}
    (decoded,) = report.summarize_decode(raw)["sets"]
    assert decoded["ceiling"] == {"name": "framing only", "rows_per_s": 1_000_000.0}
    assert decoded["modes"] == {"arrow": {"rows_per_s": 2e6, "cells_per_s": 2e7, "peak_rss_mib": 130.0,
                                          "vs_ceiling": 2.0}}


def test_snapshot_summary_is_relative_to_the_plain_script():
    raw = {"rows": 1000, "parallelism": 2, "results": {
        "baseline": {"rows": 1000, "seconds": 1.0, "rows_per_s": 1000, "vs_baseline": 1.0},
        "pg": {"rows": 1000, "seconds": 0.5, "rows_per_s": 2000, "vs_baseline": 2.0},
        "fetch_raw": {"rows": 1000, "seconds": 0.1, "rows_per_s": 10000, "vs_baseline": 10.0}}}
    summary = report.summarize_snapshot(raw)
    assert summary["ceiling"]["rows_per_s"] == 1000
    assert summary["paths"] == {"pg": {"rows_per_s": 2000, "vs_ceiling": 2.0}}
    assert summary["phases"] == {"fetch_raw": {"rows_per_s": 10000}}  # a phase is not a snapshot


def scaling_summary() -> dict:
    points = [report.scaling_point(n, n, pipeline_run(60_000, 6.0 / n, 30_000.0 * n, 6, 900.0 + 100 * n),
                                   report.ceiling_of(["postgres"], 90_000.0 + n)) for n in (1, 2, 3)]
    return {"destinations": ["postgres"], "workload": {"rows": 60_000}, "points": points}


def test_scaling_points_carry_their_own_ceiling_and_ratio():
    points = scaling_summary()["points"]
    assert [p["readers"] for p in points] == [1, 2, 3]
    assert points[1]["ratio"] == pytest.approx(20_000 / 90_002)
    assert points[2]["writers"] == {"postgres": 1}  # the writers that committed, whatever was asked
    assert report.median_ceiling(points) == 90_002


# --- table and charts -------------------------------------------------------------------------------------


def results_of_every_kind() -> dict:
    return {"e2e": report.summarize_e2e(e2e_raw()), "scaling": scaling_summary(),
            "backlog": report.summarize_backlog(e2e_raw(), "postgres"),
            "snapshot": {"error": "ScenarioFailedError: snapshot_throughput.py exited with 1: no java"}}


def test_the_table_has_a_row_per_figure_and_says_what_failed():
    table = report.markdown_table(results_of_every_kind())
    lines = table.splitlines()
    assert lines[0].startswith("| scenario | rows/s | steady rows/s | ceiling (same run)")
    assert all(line.count("|") == lines[0].count("|") for line in lines), table
    assert "| e2e postgres (postgres) | 50,000 | 80,000 | psql \\copy | 100,000 | 0.50 | 0.80 |" in table
    assert "| e2e timescaledb | not available: unknown destination type |" in table
    assert "| scaling 3 reader(s), 3 writer(s) asked (postgres) | 30,000 | 90,000 |" in table
    assert "peak PSS 1.50x, RSS 1.50x the 1x run's" in table
    assert "| snapshot | failed: ScenarioFailedError: snapshot_throughput.py exited with 1: no java |" in table


def test_charts_are_png_files_of_the_scenarios_that_have_data(tmp_path):
    charts = draw_all(results_of_every_kind(), tmp_path)
    assert [p.name for p in charts] == ["throughput_vs_workers.png", "latency.png", "memory.png"]
    for path in charts:
        image = path.read_bytes()
        assert image.startswith(PNG_MAGIC) and len(image) > 10_000


def test_no_chart_without_data(tmp_path):
    decode_only = {"decode": {"unit": "rows/s per core", "sets": []}, "snapshot": {"error": "x"}}
    assert draw_all(decode_only, tmp_path) == []
    assert list(tmp_path.iterdir()) == []


# --- scaling: the workload over n node directories ---------------------------------------------------------


@pytest.fixture(scope="module")
def six_segments(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("segments")
    workload.generate(out, rows=3000, tables=[workload.wide_table()], seed=3, mix={"insert": 1},
                      segment_size=100_000, preallocate=False)
    assert len(list(out.glob("CommitLog-*.log"))) >= 6
    return out


@pytest.mark.parametrize("n", [1, 2, 3])
def test_the_workload_is_dealt_over_nodes_each_segment_once_with_its_index(six_segments, tmp_path, n):
    nodes = harness.split_over_nodes(six_segments, n, tmp_path)
    logs = [sorted(p.name for p in node.glob("CommitLog-*.log")) for node in nodes]
    every = sorted(p.name for p in six_segments.glob("CommitLog-*.log"))
    assert sorted(name for names in logs for name in names) == every
    assert max(map(len, logs)) - min(map(len, logs)) <= 1
    for node, names in zip(nodes, logs):
        assert (node / "schema.cql").read_text() == (six_segments / "schema.cql").read_text()
        assert sorted(p.name for p in node.glob("*_cdc.idx")) == [n.replace(".log", "_cdc.idx") for n in names]


def test_a_scaling_config_with_n_nodes_and_n_writers_loads(six_segments, tmp_path):
    nodes = harness.split_over_nodes(six_segments, 3, tmp_path / "nodes")
    text = config_text(["postgres"], nodes, "t1", tmp_path, None, harness.writers_section(3))
    path = tmp_path / "config.yaml"
    path.write_text(text)
    config = load_config(path, environ={"BENCH_PG_DSN": "postgresql://u:p@127.0.0.1:5/db"})
    assert [s.commitlog_dir for s in config.sources] == nodes
    assert (config.writers.minimum, config.writers.maximum) == (3, 3)


# --- a real run ---------------------------------------------------------------------------------------------


def test_a_quick_decode_run_writes_results_with_its_ceiling_and_machine_info(tmp_path):
    out = tmp_path / "quick"
    done = subprocess.run([sys.executable, "benchmarks/harness.py", "--quick", "--scenarios", "decode",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["command"] == f"python benchmarks/harness.py --quick --scenarios decode --out {out}"
    assert results["preset"] == "quick" and list(results["scenarios"]) == ["decode"]
    machine = results["machine"]
    assert machine["cores"] >= 1 and machine["versions"]["pyarrow"]
    assert len(machine["load_average_before"]) == 3 and len(machine["load_average_after"]) == 3
    decode = results["scenarios"]["decode"]
    assert len(decode["load_average"]["before"]) == 3
    assert [s["segment_mib"] for s in decode["sets"]] == [16, 256]
    for decoded in decode["sets"]:
        assert decoded["ceiling"]["name"] == "framing only" and decoded["ceiling"]["rows_per_s"] > 0
        assert set(decoded["modes"]) == {"arrow", "sets"}
        for mode in decoded["modes"].values():
            assert mode["rows_per_s"] > 0 and mode["vs_ceiling"] > 0 and mode["peak_rss_mib"] > 0
    assert (out / "raw" / "decode.json").is_file()
    assert "| decode arrow (16 MiB segments, per core) |" in (out / "results.md").read_text()
    assert "| decode arrow (16 MiB segments, per core) |" in done.stdout
