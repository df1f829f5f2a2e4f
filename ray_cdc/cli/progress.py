"""A progress display for long commands (`demo`, `run --once`): how much of the durable log every
destination has applied, segments done, MiB/s. On a terminal one line is rewritten in place;
otherwise (logs, pipes) a plain line is printed now and then, so logs are not flooded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TextIO

from ray_cdc.observability.segments import SegmentFile
from ray_cdc.observability.status import is_done, position_in
from ray_cdc.offsets import Offset

MIB = 2**20


class ProgressLine:
    def __init__(self, stream: TextIO, *, tty: bool | None = None, every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._every = every if not self._tty else 0.0
        self._clock = clock
        self._started = clock()
        self._last_shown: float | None = None
        self._shown_any = False

    def update(self, applied: int, total: int, segments_done: int, segments: int) -> None:
        now = self._clock()
        if self._last_shown is not None and now - self._last_shown < self._every:
            return
        self._last_shown = now
        rate = applied / MIB / max(now - self._started, 1e-9)
        text = (f"applied {applied / MIB:,.1f} of {total / MIB:,.1f} MiB, {segments_done}/{segments} "
                f"segments done, {rate:,.2f} MiB/s")
        if self._tty:
            self._stream.write(f"\r\x1b[K{text}")
        else:
            self._stream.write(f"progress: {text}\n")
        self._stream.flush()
        self._shown_any = True

    def finish(self) -> None:
        """End the rewritten line so that what follows starts on its own."""
        if self._tty and self._shown_any:
            self._stream.write("\n")
            self._stream.flush()


def applied_by_all(committed: Mapping[str, Mapping[str, Offset]], segments: list[SegmentFile]) -> tuple[int, int]:
    """(bytes every destination has applied, segments every destination has completed)."""
    if not committed:
        return 0, 0
    applied = sum(min(position_in(s, book.get(s.partition_id)) for book in committed.values()) for s in segments)
    done = sum(is_done(s, committed, committed) for s in segments)
    return applied, done


class PipelineWatcher:
    """Polls the running pass's offset actor (named `<run>:offsets`) in a thread and feeds a
    ProgressLine. Between passes, or before the actor exists, it shows nothing."""

    def __init__(self, line: ProgressLine, segments: list[SegmentFile], destinations: list[str],
                 interval: float = 1.0):
        self._line, self._segments, self._interval = line, segments, interval
        self._destinations = destinations
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ray-cdc-progress", daemon=True)

    def __enter__(self) -> None:
        self._thread.start()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._line.finish()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            snapshot = _offset_snapshot()
            if snapshot is not None:  # a destination that reported nothing yet has applied nothing
                committed = {d: snapshot.get(d, {}) for d in self._destinations}
                applied, done = applied_by_all(committed, self._segments)
                self._line.update(applied, sum(s.end for s in self._segments), done, len(self._segments))


def _offset_snapshot() -> dict | None:
    import ray

    try:
        names = [n for n in ray.util.list_named_actors() if n.endswith(":offsets")]
        if not names:
            return None
        return ray.get(ray.get_actor(names[-1]).snapshot.remote(), timeout=5)
    except (ValueError, ray.exceptions.RayError):  # the pass ended between the listing and the call
        return None
