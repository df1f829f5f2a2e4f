"""Runs named benchmark scenarios and writes results.json plus PNG charts into one folder.

    python benchmarks/harness.py --scenarios decode,e2e,snapshot,scaling,backlog --out benchmarks/results/NAME
    python benchmarks/harness.py --quick --scenarios decode --out /tmp/bench   # small sizes, for a try

Scenarios (each measures, in the same run, the ceiling it is compared with):
  decode    benchmarks/decode_throughput.py: the Arrow and change-set paths per core, beside framing only
  e2e       benchmarks/end_to_end.py: the pipeline into PostgreSQL, ClickHouse (chDB), TimescaleDB and all
            three at once, beside each destination's bulk load (psql \\copy, insert_arrow) of the same rows
  snapshot  benchmarks/snapshot_throughput.py: the snapshot of the live Cassandra 2.1 test node into
            PostgreSQL and chDB, beside a single-threaded driver + executemany script
  scaling   the pipeline with the workload split over 1..N node directories (one reader each) and
            `writers: {min: n, max: n}`, beside the destination's bulk load after every point
  backlog   end_to_end.py with a backlog F times larger: memory over time of the Fx and the 1x runs

results.json: each scenario's figures (summarized; the scripts' own JSON is kept under raw/), machine
information (cores, load average before and after every scenario, package versions, git commit) and the
command. Charts: throughput_vs_workers.png, latency.png (per change set: the writers' apply-to-commit
time), memory.png (summed RSS of the pipeline's process tree every 0.2 s, PSS every 1 s). The machine is shared:
the load averages in results.json say how loaded it was.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import harness_report as report
from ray_cdc.errors import ConfigError, RayCdcError

SCENARIOS = ("decode", "e2e", "snapshot", "scaling", "backlog")
E2E_SCENARIOS = "postgres,clickhouse,timescaledb,all"
PACKAGES = ("ray", "pyarrow", "chdb", "psycopg", "cassandra-driver", "pydantic", "numpy", "matplotlib", "psutil")


class UnknownScenarioError(ConfigError):
    """A scenario name the harness does not have."""


class ScenarioFailedError(RayCdcError):
    """A benchmark script exited with an error; the message has its command and output tail."""


@dataclass(frozen=True)
class Sizes:
    decode_mb: int  # MiB of segments per segment size
    e2e_rows: int
    snapshot_rows: int
    scaling_rows: int
    max_workers: int  # scaling: 1..max reader nodes (and writers per destination)
    backlog_rows: int  # the 1x backlog; the big one is backlog_factor times larger
    backlog_factor: int = 10
    runs: int = 1
    # pipeline.batch_rows: smaller than the default 65536 so that a modest workload still commits
    # enough sets for latency percentiles and a steady state
    batch_rows: int = 16384


# modest: the whole run takes about 25 minutes on a heavily loaded 2-core machine
FULL = Sizes(decode_mb=24, e2e_rows=150_000, snapshot_rows=30_000, scaling_rows=120_000, max_workers=3,
             backlog_rows=30_000)
QUICK = Sizes(decode_mb=8, e2e_rows=30_000, snapshot_rows=10_000, scaling_rows=30_000, max_workers=2,
              backlog_rows=10_000, backlog_factor=3, batch_rows=8192)


def parse_scenarios(text: str) -> list[str]:
    """The comma-separated scenario names, in the harness's order, each once."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if unknown := sorted(set(names) - set(SCENARIOS)):
        raise UnknownScenarioError(f"--scenarios: unknown {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    if not names:
        raise UnknownScenarioError(f"--scenarios: none given (known: {', '.join(SCENARIOS)})")
    return [s for s in SCENARIOS if s in names]


_DSN_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def redact(text: str) -> str:
    """Passwords of DSNs in a script's output never reach results.json or the console."""
    return _DSN_PASSWORD.sub(r"\1***@", text)


# --- machine information --------------------------------------------------------------------------


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         check=False).stdout.strip()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cores": os.cpu_count(), "memory_gib": round(memory, 1), "platform": platform.platform(),
            "python": platform.python_version(), "versions": versions, "git_commit": git or None,
            "shared": "other work shared this machine during the run: see the load averages"}


# --- running the benchmark scripts ------------------------------------------------------------------


def run_script(script: str, args: list[str], *, capture: bool = False) -> str:
    """Runs benchmarks/<script> with this Python; its progress goes to the console (stdout captured
    when asked). A failure raises ScenarioFailedError with the command and the output's tail."""
    command = [sys.executable, str(REPO / "benchmarks" / script), *args]
    print(f"$ {' '.join(['python', 'benchmarks/' + script, *args])}", flush=True)
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise ScenarioFailedError(redact(f"{script} exited with {done.returncode}: {done.stderr[-1500:]}"))
    return done.stdout or ""


def run_decode(sizes: Sizes, raw: Path, work: Path) -> dict:
    out = raw / "decode.json"
    run_script("decode_throughput.py", ["--mb", str(sizes.decode_mb), "--runs", str(sizes.runs),
                                        "--modes", "arrow,sets", "--json", str(out)])
    return report.summarize_decode(json.loads(out.read_text()))


def run_e2e(sizes: Sizes, raw: Path, work: Path) -> dict:
    out = raw / "e2e.json"
    run_script("end_to_end.py", ["--rows", str(sizes.e2e_rows), "--runs", str(sizes.runs), "--scenarios",
                                 E2E_SCENARIOS, "--batch-rows", str(sizes.batch_rows), "--workdir",
                                 str(work / "segments"), "--json", str(out)])
    return report.summarize_e2e(json.loads(out.read_text()))


def run_backlog(sizes: Sizes, raw: Path, work: Path) -> dict:
    out = raw / "backlog.json"
    run_script("end_to_end.py", ["--rows", str(sizes.backlog_rows), "--runs", "1", "--scenarios", "all",
                                 "--backlog-factor", str(sizes.backlog_factor), "--backlog-scenarios", "all",
                                 "--batch-rows", str(sizes.batch_rows),
                                 "--workdir", str(work / "segments"), "--json", str(out)])
    return report.summarize_backlog(json.loads(out.read_text()))


def run_snapshot(sizes: Sizes, raw: Path, work: Path) -> dict:
    stdout = run_script("snapshot_throughput.py", ["--rows", str(sizes.snapshot_rows), "--json"], capture=True)
    result = json.loads(stdout.strip().splitlines()[-1])
    (raw / "snapshot.json").write_text(json.dumps(result, indent=2))
    return report.summarize_snapshot(result)


def run_scaling(sizes: Sizes, raw: Path, work: Path, destinations: tuple[str, ...] = ("postgres",)) -> dict:
    """The same workload split over 1..N node directories (one reader each) with n writers per
    destination asked for, each point followed by the destinations' own bulk load of the same rows."""
    from benchmarks import end_to_end as e2e
    from tests.services.postgres import PostgresServer

    n_max = sizes.max_workers
    # enough segments that every node count gets an equal share: the chunks (a segment each) are a
    # multiple of 1..N
    chunks = math.lcm(*range(1, n_max + 1))
    segments, info = e2e.workload_dir(work / "scaling", sizes.scaling_rows, "wide", 1,
                                      chunk_rows=math.ceil(sizes.scaling_rows / chunks))
    inputs = e2e.ceiling_inputs(segments, work)
    server = PostgresServer(work / "postgres-scaling")
    server.start()
    points, runs = [], []
    try:
        for n in range(1, n_max + 1):
            nodes = split_over_nodes(segments, n, work / f"nodes-{n}")
            run = e2e.measure_pipeline("scaling", list(destinations), server.dsn, nodes, work, sizes.batch_rows,
                                       writers_section(n))
            if "error" in run:
                raise ScenarioFailedError(redact(f"scaling, {n} node(s): {run['error']}"))
            ceiling = e2e.measure_ceiling("scaling", list(destinations), server.dsn, inputs, work)
            point = report.scaling_point(n, n, run, report.ceiling_of(list(destinations), ceiling["rows_per_s"]))
            points.append(point)
            runs.append({"pipeline": run, "ceiling": ceiling})
            print(f"  {n} reader node(s), writers {point['writers']}: {point['rows_per_s']:,.0f} rows/s "
                  f"(steady {report._n(point['steady_rows_per_s'])}), ceiling {ceiling['rows_per_s']:,.0f} rows/s, "
                  f"ratio {point['ratio']:.2f}", flush=True)
    finally:
        server.remove()
    (raw / "scaling.json").write_text(redact(json.dumps({"workload": info, "runs": runs}, indent=2)))
    return {"destinations": list(destinations), "workload": info, "points": points}


def writers_section(n: int) -> str:
    """`writers: {min: n, max: n}` when the config has the section (writer autoscaling), else nothing."""
    from ray_cdc.config.models import Config

    return f"writers: {{min: {n}, max: {n}}}\n" if "writers" in Config.model_fields else ""


def split_over_nodes(segments: Path, n: int, root: Path) -> list[Path]:
    """Hard links of the segments (with their _cdc.idx) dealt round-robin over `n` node directories,
    each with the schema: the same workload as n Cassandra nodes."""
    from ray_cdc.commitlog.reader import sort_segments

    nodes = [root / f"node{i}" for i in range(n)]
    for node in nodes:
        shutil.rmtree(node, ignore_errors=True)
        node.mkdir(parents=True)
        shutil.copy(segments / "schema.cql", node / "schema.cql")
    for i, path in enumerate(sort_segments(segments.glob("CommitLog-*.log"))):
        for part in (path, path.with_name(path.stem + "_cdc.idx")):
            if part.exists():
                os.link(part, nodes[i % n] / part.name)
    return nodes


RUNNERS = {"decode": run_decode, "e2e": run_e2e, "snapshot": run_snapshot, "scaling": run_scaling,
           "backlog": run_backlog}


# --- the whole run -------------------------------------------------------------------------------------


def run_scenarios(names: list[str], sizes: Sizes, out: Path, work: Path, runners: dict = RUNNERS) -> dict:
    """Each scenario in turn, with the load average before and after it; a failed scenario is kept
    as its error and the others still run."""
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in names:
        print(f"\n== {name}", flush=True)
        before, t0 = load_average(), time.perf_counter()
        try:
            results[name] = runners[name](sizes, raw, work)
        except (RayCdcError, RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:  # the run goes on
            results[name] = {"error": redact(f"{type(e).__name__}: {e}")}
            print(f"{name} FAILED: {results[name]['error']}", flush=True)
        results[name]["load_average"] = {"before": before, "after": load_average()}
        results[name]["seconds"] = round(time.perf_counter() - t0, 1)
        # each scenario's figures beside its ceiling as soon as it is done (a script's own output may
        # have been captured)
        print("\n".join(report.table_rows({name: results[name]})), flush=True)
    return results


def write_results(out: Path, command: str, sizes: Sizes, preset: str, info: dict, scenarios: dict) -> dict:
    """results.json, results.md (the table) and the charts; returns what results.json holds."""
    from benchmarks.charts import draw_all

    charts = draw_all(scenarios, out)
    results = {"command": command, "preset": preset, "sizes": asdict(sizes), "machine": info,
               "charts": [p.name for p in charts], "scenarios": scenarios}
    (out / "results.json").write_text(redact(json.dumps(results, indent=2)))
    (out / "results.md").write_text(report.markdown_table(scenarios) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, of " + ", ".join(SCENARIOS))
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md, the charts")
    parser.add_argument("--quick", action="store_true", help="small sizes (a try, not a measurement)")
    args = parser.parse_args(argv)
    try:
        names = parse_scenarios(args.scenarios)
    except UnknownScenarioError as e:
        parser.error(str(e))
    sizes, preset = (QUICK, "quick") if args.quick else (FULL, "full")
    command = "python " + " ".join([os.path.relpath(__file__, REPO), *(argv if argv is not None else sys.argv[1:])])
    args.out.mkdir(parents=True, exist_ok=True)
    info = {**machine_info(), "load_average_before": load_average(),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="ray-cdc-harness-") as tmp:
        scenarios = run_scenarios(names, sizes, args.out, Path(tmp))
    info["load_average_after"] = load_average()
    results = write_results(args.out, command, sizes, preset, info, scenarios)
    print("\n" + report.markdown_table(scenarios))
    print(f"\nload average before {info['load_average_before']}, after {info['load_average_after']} "
          f"({info['cores']} cores); charts: {', '.join(results['charts']) or 'none'}; {args.out / 'results.json'}")
    return 1 if any("error" in s for s in scenarios.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
