"""The benchmark harness's figures: summaries of what each benchmark script wrote, latency percentiles,
and the Markdown table of the README. Pure functions over JSON-like dicts (no I/O), so they are tested
on small synthetic results (tests/unit/test_harness.py)."""

from __future__ import annotations

import statistics

import numpy as np

#: fewer committed sets per destination than this and the steady state (rows after the first set over
#: first-to-last commit) is noise: two sets committed a moment apart give millions of rows/s
MIN_STEADY_SETS = 5

#: the end_to_end benchmark names its writers `<prefix><tag>` (config_text); prefix -> destination
WRITER_PREFIXES = {"bpg_": "postgres", "bts_": "timescaledb", "ch_": "clickhouse"}

SNAPSHOT_PATHS = ("pg", "chdb")  # snapshot_throughput.py's snapshots into PostgreSQL and chDB


def destination_of(writer: str) -> str:
    """The destination a writer of the end_to_end benchmark's config belongs to (its name's prefix)."""
    for prefix, destination in WRITER_PREFIXES.items():
        if writer.startswith(prefix):
            return destination
    return writer


def latency_percentiles(set_seconds: dict[str, list[float]] | None) -> dict[str, dict]:
    """Per destination: p50 and p99 of its sets' apply times in milliseconds, and how many sets. Writers
    of one destination (writer autoscaling) are pooled."""
    pooled: dict[str, list[float]] = {}
    for writer, seconds in (set_seconds or {}).items():
        pooled.setdefault(destination_of(writer), []).extend(seconds)
    return {d: {"p50_ms": float(np.percentile(s, 50)) * 1000, "p99_ms": float(np.percentile(s, 99)) * 1000,
                "sets": len(s)}
            for d, s in sorted(pooled.items()) if s}


def writer_count(run: dict) -> dict[str, int]:
    """Per destination: how many of its writers committed at least one set — as the pipeline reports
    it (`writers`, writer scaling), else one per writer name with apply times."""
    counts: dict[str, int] = {}
    if run.get("writers"):
        for writer, n in run["writers"].items():
            counts[destination_of(writer)] = counts.get(destination_of(writer), 0) + n
        return counts
    for writer, seconds in (run.get("set_seconds") or {}).items():
        if seconds:
            counts[destination_of(writer)] = counts.get(destination_of(writer), 0) + 1
    return counts


def summarize_decode(raw: dict) -> dict:
    """decode_throughput.py --json: per segment size, each mode's rows/s and cells/s per core beside the
    ceiling measured on the same files in the same run (framing only: CRCs and entry bodies)."""
    sets = []
    for s in raw["sets"]:
        modes, framing = s["modes"], s["modes"]["framing"]
        sets.append({"segment_mib": s["generated"]["segment_mib"], "rows": s["generated"]["rows"],
                     "mib": s["generated"]["bytes"] / 2**20,
                     "ceiling": {"name": "framing only", "rows_per_s": framing["rows_per_s_per_core"]},
                     "modes": {name: {"rows_per_s": m["rows_per_s_per_core"], "cells_per_s": m["cells_per_s_per_core"],
                                      "peak_rss_mib": m["peak_rss_mib"], "vs_ceiling": framing["cpu_s"] / m["cpu_s"]}
                               for name, m in modes.items() if name != "framing"}})
    return {"unit": "rows/s per core (CPU time)", "sets": sets}


def summarize_pipeline_run(run: dict) -> dict:
    """One `measure_pipeline` result of end_to_end.py, reduced to what the harness reports and charts."""
    latency = latency_percentiles(run.get("set_seconds"))
    return {"rows": run["rows"], "rows_per_s": run["rows_per_s"],
            "steady_rows_per_s": steady_or_none(run.get("steady_rows_per_s"), latency),
            "startup_s": run.get("startup_s"), "peak_rss_mib": run["peak_rss_mib"],
            "peak_pss_mib": run["peak_pss_mib"], "latency": latency,
            "writers": writer_count(run), "memory_timeline": run.get("memory_timeline") or []}


def steady_or_none(steady: float | None, latency: dict[str, dict]) -> float | None:
    """The steady-state rate, or None when a destination committed fewer than MIN_STEADY_SETS sets."""
    if not latency or min(v["sets"] for v in latency.values()) < MIN_STEADY_SETS:
        return None
    return steady


def summarize_e2e(raw: dict) -> dict:
    """end_to_end.py --json: per scenario, the pipeline (first run: latencies, memory timeline; medians
    of the runs: rates) beside the ceiling measured on the same rows in the same run."""
    out = {}
    for name, s in raw["scenarios"].items():
        if not s.get("available"):
            out[name] = {"available": False, "reason": s.get("reason", "")}
            continue
        first = summarize_pipeline_run(s["runs"]["pipeline"][0])
        steady = steady_or_none(s["steady_rows_per_s"], first["latency"])
        out[name] = {**first, "available": True, "destinations": s["destinations"], "rows_per_s": s["rows_per_s"],
                     "steady_rows_per_s": steady, "ratio": s["ratio"],
                     "steady_ratio": _ratio(steady, s["ceiling_rows_per_s"]),
                     "ceiling": ceiling_of(s["destinations"], s["ceiling_rows_per_s"]),
                     "runs": len(s["runs"]["pipeline"])}
    return {"workload": raw["workload"], "postgres": raw.get("postgres"), "baseline": _baseline(raw),
            "scenarios": out}


def ceiling_of(destinations: list[str], rows_per_s: float) -> dict:
    """What a pipeline scenario is compared with: the destinations' own bulk load of the same rows."""
    paths = {"postgres": "psql \\copy", "timescaledb": "psql \\copy", "clickhouse": "chDB insert_arrow"}
    name = " + ".join(dict.fromkeys(paths[d] for d in destinations))
    return {"name": name + (" (concurrently)" if len(destinations) > 1 else ""), "rows_per_s": rows_per_s}


def _baseline(raw: dict) -> dict:
    base = raw.get("baseline") or {}
    return {"peak_rss_mib": base.get("peak_rss_mib"), "peak_pss_mib": base.get("peak_pss_mib")}


def summarize_backlog(raw: dict, scenario: str = "all") -> dict:
    """end_to_end.py --backlog-factor F --json: the 1x and Fx runs of one scenario (peaks, memory over
    time) in the same run, and the 1x run's ceiling."""
    one = summarize_e2e(raw)["scenarios"][scenario]
    big = summarize_pipeline_run(raw["backlog"]["scenarios"][scenario])
    return {"scenario": scenario, "factor": raw["backlog"]["factor"], "1x": one, "big": big,
            "ceiling": one["ceiling"], "rss_growth": big["peak_rss_mib"] / one["peak_rss_mib"],
            "pss_growth": big["peak_pss_mib"] / one["peak_pss_mib"], "baseline": _baseline(raw)}


def summarize_snapshot(raw: dict) -> dict:
    """snapshot_throughput.py --json: the snapshot into PostgreSQL and chDB beside the single-threaded
    driver + executemany script on the same rows, in the same run."""
    results = raw["results"]
    base = results["baseline"]
    return {"rows": raw["rows"], "parallelism": raw["parallelism"],
            "ceiling": {"name": "one thread: driver SELECT * + psycopg executemany", "rows_per_s": base["rows_per_s"]},
            "paths": {name: {"rows_per_s": r["rows_per_s"], "vs_ceiling": r["vs_baseline"]}
                      for name, r in results.items() if name in SNAPSHOT_PATHS},
            # the script's other phases (e.g. the raw fetch alone): where the time goes, not snapshots
            "phases": {name: {"rows_per_s": r["rows_per_s"]} for name, r in results.items()
                       if name not in SNAPSHOT_PATHS and name != "baseline"}}


def scaling_point(readers: int, writers: int, run: dict, ceiling: dict) -> dict:
    """One point of the scaling curve: the pipeline with `readers` nodes (and `writers` per destination
    asked for) beside its ceiling measured right after it."""
    summary = summarize_pipeline_run(run)
    return {**summary, "readers": readers, "writers_asked": writers, "ceiling": ceiling,
            "ratio": run["rows_per_s"] / ceiling["rows_per_s"]}


def median_ceiling(points: list[dict]) -> float:
    return statistics.median(p["ceiling"]["rows_per_s"] for p in points)


# --- the README table ---------------------------------------------------------------------------------


def _n(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _r(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _lat(latency: dict) -> str:
    return "<br>".join(f"{d}: {v['p50_ms']:,.0f} / {v['p99_ms']:,.0f}" for d, v in latency.items()) or "–"


def _mem(run: dict) -> str:
    return f"{run['peak_pss_mib']:,.0f} / {run['peak_rss_mib']:,.0f}"


HEADER = ("| scenario | rows/s | steady rows/s | ceiling (same run) | ceiling rows/s | ratio | steady ratio "
          "| set latency p50 / p99 ms | peak PSS / RSS MiB |\n|---|---:|---:|---|---:|---:|---:|---|---:|")


def table_rows(scenarios: dict) -> list[str]:
    """One Markdown row per measured figure of every scenario that ran (errors say so)."""
    rows = []
    for name, s in scenarios.items():
        if "error" in s:
            rows.append(f"| {name} | failed: {s['error'][:80]} | | | | | | | |")
        else:
            rows.extend(ROWS[name](s))
    return rows


def _decode_rows(s: dict) -> list[str]:
    return [f"| decode {mode} ({d['segment_mib']} MiB segments, per core) | {_n(m['rows_per_s'])} | – "
            f"| {d['ceiling']['name']} | {_n(d['ceiling']['rows_per_s'])} | {_r(m['vs_ceiling'])} | – | – "
            f"| {m['peak_rss_mib']:,.0f} (RSS) |"
            for d in s["sets"] for mode, m in d["modes"].items()]


def _e2e_rows(s: dict) -> list[str]:
    rows = []
    for name, r in s["scenarios"].items():
        if not r["available"]:
            rows.append(f"| e2e {name} | not available: {r['reason'][:80]} | | | | | | | |")
            continue
        rows.append(f"| e2e {name} ({'+'.join(r['destinations'])}) | {_n(r['rows_per_s'])} "
                    f"| {_n(r['steady_rows_per_s'])} | {r['ceiling']['name']} | {_n(r['ceiling']['rows_per_s'])} "
                    f"| {_r(r['ratio'])} | {_r(r['steady_ratio'])} | {_lat(r['latency'])} | {_mem(r)} |")
    return rows


def _snapshot_rows(s: dict) -> list[str]:
    return [f"| snapshot into {name} | {_n(p['rows_per_s'])} | – | {s['ceiling']['name']} "
            f"| {_n(s['ceiling']['rows_per_s'])} | {_r(p['vs_ceiling'])} | – | – | – |"
            for name, p in s["paths"].items()]


def _scaling_rows(s: dict) -> list[str]:
    return [f"| scaling {p['readers']} reader(s), {p['writers_asked']} writer(s) asked "
            f"({'+'.join(s['destinations'])}) | {_n(p['rows_per_s'])} | {_n(p['steady_rows_per_s'])} "
            f"| {p['ceiling']['name']} | {_n(p['ceiling']['rows_per_s'])} | {_r(p['ratio'])} "
            f"| {_r(_ratio(p['steady_rows_per_s'], p['ceiling']['rows_per_s']))} | {_lat(p['latency'])} "
            f"| {_mem(p)} |" for p in s["points"]]


def _backlog_rows(s: dict) -> list[str]:
    one, big = s["1x"], s["big"]
    return [(f"| backlog 1x ({one['rows']:,} rows, {s['scenario']}) | {_n(one['rows_per_s'])} "
            f"| {_n(one['steady_rows_per_s'])} | {s['ceiling']['name']} | {_n(s['ceiling']['rows_per_s'])} "
            f"| {_r(one['ratio'])} | {_r(one['steady_ratio'])} | {_lat(one['latency'])} | {_mem(one)} |"),
            (f"| backlog {s['factor']}x ({big['rows']:,} rows, {s['scenario']}): peak PSS {s['pss_growth']:.2f}x, "
            f"RSS {s['rss_growth']:.2f}x the 1x run's | {_n(big['rows_per_s'])} | {_n(big['steady_rows_per_s'])} "
            f"| (memory compared with the 1x run) | – | – | – | {_lat(big['latency'])} | {_mem(big)} |")]


def _ratio(value: float | None, ceiling: float) -> float | None:
    return None if value is None else value / ceiling


ROWS = {"decode": _decode_rows, "e2e": _e2e_rows, "snapshot": _snapshot_rows, "scaling": _scaling_rows,
        "backlog": _backlog_rows}


def markdown_table(scenarios: dict) -> str:
    return "\n".join([HEADER, *table_rows(scenarios)])
