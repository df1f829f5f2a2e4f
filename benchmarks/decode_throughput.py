"""Decoder throughput and memory: cells/s and rows/s per core, and peak RSS.

Generates at least --mb MiB of segments of 10-column rows of mixed types (the `wide` workload) twice,
once as small segments and once as large ones, then decodes each set in a fresh child process
(so peak RSS is the decoder's alone), three times, and prints medians:

- framing: read segments, check every CRC, yield entry bodies — the ceiling any decoder of these
  files is compared with (it does no mutation decoding at all);
- model: framing + mutation decoding into the structural model;
- arrow: the fast path, framing + decoding + per-table Arrow record batches (64k rows), with the
  compiled kernel (`CommitLogReader.arrow_batches`);
- sets: the replication pipeline's reader path, `CommitLogReader.change_sets` per segment (the same
  batches, cut into sets at entry boundaries), with the compiled kernel;
- arrow-python: the same batches with the kernel switched off (RAY_CDC_PURE_PYTHON=1);
- changes: the per-row change-record iterator (typed Python values).

Peak RSS of the large-segment set against the small-segment set shows whether memory depends on
segment size (it must not: files are streamed one section at a time, batches are bounded).

Usage: python benchmarks/decode_throughput.py [--mb 200] [--runs 3] [--modes arrow,sets] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_CELLS_PER_S = 1_000_000
MODES = ("framing", "model", "arrow", "sets", "arrow-python", "changes")


def _segments(directory: Path) -> list[Path]:
    from ray_cdc.commitlog.reader import sort_segments

    return sort_segments(directory.glob("CommitLog-*.log"))


def run_child(mode: str, directory: Path) -> dict:
    """Decode every segment of `directory` in this process; returns counts, CPU seconds, peak RSS."""
    import pyarrow.compute as pc

    from ray_cdc.commitlog.reader import CommitLogReader
    from ray_cdc.commitlog.segment import SegmentReader
    from ray_cdc.schema.cql import load_cql_schema
    from ray_cdc.schema.registry import SchemaRegistry

    segments = _segments(directory)
    reader = CommitLogReader(SchemaRegistry(load_cql_schema(directory / "schema.cql")))
    rows = cells = entries = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if mode == "framing":  # one entry per row change in this workload: rows = entries
        for path in segments:
            for _ in SegmentReader(path).entries():
                entries += 1
        rows = entries
    elif mode == "model":
        for path in segments:
            for decoded in reader.mutations(path):
                for update in decoded.mutation.updates:
                    for row in update.unfiltereds:
                        rows += 1
                        cells += len(row.columns)
    elif mode in ("arrow", "arrow-python"):
        for _, batch in reader.arrow_batches(segments):
            rows += batch.num_rows
            cells += pc.sum(pc.list_value_length(batch.column("_present"))).as_py() or 0
    elif mode == "sets":
        for path in segments:
            for change_set in reader.change_sets(path):
                for _, batch in change_set.batches:
                    rows += batch.num_rows
                    cells += pc.sum(pc.list_value_length(batch.column("_present"))).as_py() or 0
    elif mode == "changes":
        for change in reader.changes(segments):
            rows += 1
            cells += len(change.cells)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"mode": mode, "rows": rows, "cells": cells, "entries": entries, "cpu_s": cpu, "wall_s": wall,
            "peak_rss_mib": peak_kib / 1024}


def measure(mode: str, directory: Path, runs: int) -> dict:
    results = []
    env = {**os.environ, "RAY_CDC_PURE_PYTHON": "1" if mode == "arrow-python" else ""}
    for _ in range(runs):
        out = subprocess.run([sys.executable, __file__, "--child", mode, str(directory)],
                             check=True, capture_output=True, text=True, env=env).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    median_cpu = statistics.median(r["cpu_s"] for r in results)
    first = results[0]
    return {**first, "cpu_s": median_cpu, "wall_s": statistics.median(r["wall_s"] for r in results),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
            "rows_per_s_per_core": first["rows"] / median_cpu, "cells_per_s_per_core": first["cells"] / median_cpu,
            "entries_per_s_per_core": first["entries"] / median_cpu, "runs": runs}


#: a CDC stream of 10-column rows: mostly full inserts, some partial updates and TTL writes
MIX = {"insert": 75, "update": 20, "ttl_insert": 5}


def _write(directory: Path, rows: int, segment_mib: int):
    from ray_cdc.commitlog import workload

    return workload.generate(directory, rows=rows, tables=[workload.wide_table()], seed=1, mix=MIX,
                             segment_size=segment_mib << 20, preallocate=False)


def rows_for(mb: int, scratch: Path) -> int:
    """Rows that make `mb` MiB of segment data, from the bytes per row of a small sample."""
    sample = 20_000
    summary = _write(scratch, sample, 64)
    for p in scratch.iterdir():
        p.unlink()
    return int(mb * (1 << 20) * sample / summary.data_bytes) + 1


def generate(directory: Path, rows: int, segment_mib: int) -> dict:
    t0 = time.perf_counter()
    summary = _write(directory, rows, segment_mib)
    return {"rows": rows, "bytes": summary.data_bytes, "segments": len(_segments(directory)),
            "segment_mib": segment_mib, "generate_s": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="MiB of segments per set (default 200)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"comma-separated subset of {', '.join(MODES)} (framing and arrow are always run)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child[0], Path(args.child[1]))))
        return
    results = {"python": sys.version.split()[0], "cpu_count": os.cpu_count(), "sets": []}
    with tempfile.TemporaryDirectory(prefix="ray-cdc-bench-") as tmp:
        scratch = Path(tmp) / "sample"
        scratch.mkdir()
        rows = rows_for(args.mb, scratch)
        for segment_mib in (16, 256):
            directory = Path(tmp) / f"seg{segment_mib}"
            directory.mkdir()
            info = generate(directory, rows, segment_mib)
            print(f"\n{info['bytes'] / 2**20:.0f} MiB in {info['segments']} segments of up to {segment_mib} MiB "
                  f"({info['rows']} rows, generated in {info['generate_s']:.0f} s)")
            wanted = {"framing", "arrow", *args.modes.split(",")}
            modes = {m: measure(m, directory, args.runs) for m in MODES if m in wanted}
            _print(modes, info)
            results["sets"].append({"generated": info, "modes": modes})
            for p in directory.iterdir():
                p.unlink()
    small, large = (s["modes"]["arrow"]["peak_rss_mib"] for s in results["sets"])
    print(f"\npeak RSS, arrow path: {small:.0f} MiB with 16 MiB segments, {large:.0f} MiB with 256 MiB segments "
          f"(ratio {large / small:.2f}; independent of segment size when close to 1)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _print(modes: dict, info: dict) -> None:
    ceiling = modes["framing"]
    mib = info["bytes"] / 2**20
    print(f"{'mode':9s} {'rows/s/core':>12s} {'cells/s/core':>13s} {'MiB/s/core':>11s} {'peak RSS MiB':>13s}")
    for name, r in modes.items():
        print(f"{name:9s} {r['rows_per_s_per_core']:12,.0f} {r['cells_per_s_per_core']:13,.0f} "
              f"{mib / r['cpu_s']:11,.1f} {r['peak_rss_mib']:13,.0f}")
    arrow = modes["arrow"]
    print(f"ceiling (framing only, no decoding): {mib / ceiling['cpu_s']:,.0f} MiB/s/core; "
          f"arrow path reaches {ceiling['cpu_s'] / arrow['cpu_s']:.0%} of it (its framing is in the kernel, "
          f"so it can pass 100%)")
    print(f"target {TARGET_CELLS_PER_S:,} cells/s/core: arrow path {arrow['cells_per_s_per_core']:,.0f} "
          f"({arrow['cells_per_s_per_core'] / TARGET_CELLS_PER_S:.2f}x target)")


if __name__ == "__main__":
    main()
