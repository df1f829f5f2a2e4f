"""PNG charts of the benchmark harness's summaries (harness_report.py): throughput against the number of
workers, per-set latency p50/p99, and memory over time. Each function writes one file and returns its
path, or None when the summaries hold nothing to draw."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a benchmark machine
import matplotlib.pyplot as plt

from benchmarks.harness_report import median_ceiling

TARGET_PEAK_MIB = 2048  # the memory target the end-to-end benchmark checks


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def throughput_vs_workers(scaling: dict | None, path: Path) -> Path | None:
    """Rows/s (whole call and steady state) against the reader nodes, and the ceiling's median."""
    points = (scaling or {}).get("points") or []
    if not points:
        return None
    figure, axes = plt.subplots(figsize=(7, 4.2))
    xs = [p["readers"] for p in points]
    axes.plot(xs, [p["rows_per_s"] for p in points], "o-", label="pipeline, whole call")
    steady = [(x, p["steady_rows_per_s"]) for x, p in zip(xs, points) if p["steady_rows_per_s"] is not None]
    if steady:
        axes.plot(*zip(*steady), "s--", label="pipeline, steady state")
    axes.axhline(median_ceiling(points), color="grey", linestyle=":",
                 label=f"ceiling: {points[0]['ceiling']['name']} (same run)")
    axes.set_xticks(xs, [_worker_label(p) for p in points])
    axes.set_xlabel("workers: reader nodes (writers per destination)")
    axes.set_ylabel("rows/s")
    axes.set_title(f"Throughput vs workers ({'+'.join(scaling['destinations'])}, {points[0]['rows']:,} rows)")
    axes.set_ylim(bottom=0)
    axes.legend(fontsize=8)
    return _save(figure, path)


def _worker_label(point: dict) -> str:
    writers = "+".join(str(n) for n in point["writers"].values()) or "?"
    return f"{point['readers']} ({writers})"


def latency_bars(latencies: dict[str, dict], path: Path) -> Path | None:
    """p50 and p99 of the per-set apply time, one pair of bars per `scenario / destination` label."""
    labels = [(label, d, v) for label, per in latencies.items() for d, v in per.items()]
    if not labels:
        return None
    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(labels)), 4.2))
    xs = range(len(labels))
    axes.bar([x - 0.2 for x in xs], [v["p50_ms"] for _, _, v in labels], 0.4, label="p50")
    axes.bar([x + 0.2 for x in xs], [v["p99_ms"] for _, _, v in labels], 0.4, label="p99")
    axes.set_xticks(list(xs), [f"{label}\n{d}\n({v['sets']} sets)" for label, d, v in labels], fontsize=7)
    axes.set_ylabel("ms per change set (apply call to commit)")
    axes.set_title("Per-set latency in the writers")
    axes.legend(fontsize=8)
    return _save(figure, path)


def memory_over_time(timelines: dict[str, list], path: Path, baseline_pss: float | None = None) -> Path | None:
    """Summed RSS (lines) and PSS (dots) of the pipeline's process tree over time, one colour per run."""
    drawn = {label: t for label, t in timelines.items() if t}
    if not drawn:
        return None
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for label, timeline in drawn.items():
        (line,) = axes.plot([s[0] for s in timeline], [s[1] for s in timeline], label=f"{label}: RSS (summed)")
        pss = [(s[0], s[2]) for s in timeline if s[2] is not None]
        if pss:
            axes.plot(*zip(*pss), ".", color=line.get_color(), label=f"{label}: PSS (summed)")
    axes.axhline(TARGET_PEAK_MIB, color="red", linestyle=":", label=f"target {TARGET_PEAK_MIB} MiB")
    if baseline_pss:
        axes.axhline(baseline_pss, color="grey", linestyle="--", label="PSS with nothing to replicate")
    axes.set_xlabel("seconds since the pipeline process started")
    axes.set_ylabel("MiB")
    axes.set_title("Memory of the pipeline's processes over time")
    axes.set_ylim(bottom=0)
    axes.legend(fontsize=7)
    return _save(figure, path)


def draw_all(scenarios: dict, out: Path) -> list[Path]:
    """Every chart the scenarios that ran (without error) have data for."""
    ok = {name: s for name, s in scenarios.items() if "error" not in s}
    latencies = {f"e2e {n}": r["latency"] for n, r in ok.get("e2e", {}).get("scenarios", {}).items()
                 if r.get("available")}
    latencies.update({f"{p['readers']} reader(s)": p["latency"] for p in ok.get("scaling", {}).get("points", [])})
    timelines = {}
    backlog = ok.get("backlog")
    if backlog:
        timelines = {f"backlog 1x ({backlog['1x']['rows']:,} rows)": backlog["1x"]["memory_timeline"],
                     f"backlog {backlog['factor']}x ({backlog['big']['rows']:,} rows)": backlog["big"]["memory_timeline"]}
    elif "e2e" in ok:
        timelines = {f"e2e {n}": r["memory_timeline"] for n, r in ok["e2e"]["scenarios"].items() if r.get("available")}
    baseline = (backlog or ok.get("e2e") or {}).get("baseline", {}).get("peak_pss_mib")
    drawn = [throughput_vs_workers(ok.get("scaling"), out / "throughput_vs_workers.png"),
             latency_bars(latencies, out / "latency.png"),
             memory_over_time(timelines, out / "memory.png", baseline)]
    return [p for p in drawn if p is not None]
