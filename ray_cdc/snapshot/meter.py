"""Snapshot progress: rows, ranges, rows/s and ETA — a bar on a terminal, lines in the log, gauges.

The ETA comes from the share of the token space done: Murmur3 spreads keys uniformly over the ring,
so tokens done / tokens to do estimates the share of rows done without knowing the row count.
Gauges (`ray_cdc_snapshot_*`, prometheus_client's default registry, when installed) carry the same
figures for the metrics endpoint.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

_GAUGES: dict | None = None


def _gauges() -> dict:
    global _GAUGES
    if _GAUGES is None:
        try:
            from prometheus_client import Gauge
        except ImportError:  # metrics are optional: the log and the bar still show progress
            _GAUGES = {}
            return _GAUGES
        _GAUGES = {name: Gauge(f"ray_cdc_snapshot_{name}", text, ["table"]) for name, text in (
            ("rows", "source rows read and committed by the snapshot"),
            ("ranges_done", "token ranges finished"),
            ("ranges_total", "token ranges planned"),
            ("rows_per_second", "snapshot rows per second since its start"),
            ("eta_seconds", "estimated seconds until the snapshot ends"))}
    return _GAUGES


@dataclass
class Figures:
    rows: int
    ranges_done: int
    ranges_total: int
    rows_per_s: float
    fraction: float  # of the token space to do
    eta_s: float | None
    elapsed_s: float


class SnapshotMeter:
    def __init__(self, label: str, ranges_total: int, tokens_total: int, *, interval: float = 5.0,
                 stream=None, clock: Callable[[], float] = time.monotonic):
        self.label = label
        self.ranges_total = ranges_total
        self.tokens_total = max(1, tokens_total)
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.started = clock()
        self._logged = self.started
        self.rows = self.ranges_done = self.tokens_done = 0

    def update(self, *, rows: int, ranges_done: int, tokens_done: int) -> Figures:
        self.rows, self.ranges_done, self.tokens_done = rows, ranges_done, min(tokens_done, self.tokens_total)
        figures = self.figures()
        if self.tty:
            self.stream.write("\r" + self.render(figures))
            self.stream.flush()
        now = self.clock()
        if now - self._logged >= self.interval:
            self._logged = now
            log.info("snapshot %s", self.render(figures, bar=False))
        for name, gauge in _gauges().items():
            value = {"rows": figures.rows, "ranges_done": figures.ranges_done, "ranges_total": figures.ranges_total,
                     "rows_per_second": figures.rows_per_s, "eta_seconds": figures.eta_s or 0.0}[name]
            gauge.labels(self.label).set(value)
        return figures

    def figures(self) -> Figures:
        elapsed = max(1e-9, self.clock() - self.started)
        fraction = self.tokens_done / self.tokens_total
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        return Figures(self.rows, self.ranges_done, self.ranges_total, self.rows / elapsed, fraction, eta, elapsed)

    def render(self, f: Figures | None = None, *, bar: bool = True, width: int = 24) -> str:
        f = f or self.figures()
        eta = "?" if f.eta_s is None else _duration(f.eta_s)
        text = (f"{self.label}: {f.rows:,} rows, {f.ranges_done}/{f.ranges_total} ranges, "
                f"{f.rows_per_s:,.0f} rows/s, ETA {eta}")
        if not bar:
            return text
        filled = int(f.fraction * width)
        return f"[{'#' * filled}{'.' * (width - filled)}] {f.fraction:6.1%} {text}"

    def close(self) -> Figures:
        figures = self.figures()
        if self.tty:
            self.stream.write("\r" + self.render(figures) + "\n")
            self.stream.flush()
        log.info("snapshot %s done in %s", self.render(figures, bar=False), _duration(figures.elapsed_s))
        return figures


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
