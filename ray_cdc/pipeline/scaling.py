"""Writer autoscaling: how many writers a destination needs for its backlog, and which writer
applies which segment.

Plain logic (the driver and `actors/writer.WriterPoolActor` use it); nothing here knows Ray.

Several writers of one destination are safe because every destination applies last-writer-wins by
writetime (segments may land in any order) and each segment is its own offset partition. What must
not happen is two writers applying the *same* partition in one pass: a writer keeps the offsets it
committed in memory (its replay and gap checks), so `SegmentRouter` gives a partition to one writer
for the whole pass, even after that writer left the rotation.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ray_cdc.errors import ConfigError
from ray_cdc.offsets import Offset

W = TypeVar("W")  # a writer handle (a Ray actor handle in the pipeline)

#: scale down only once the backlog would drain in this fraction of the target (hysteresis: a
#: backlog hovering at the target does not make the count flap)
SCALE_DOWN_BELOW = 0.5


@dataclass(frozen=True)
class WriterBounds:
    minimum: int = 1
    maximum: int = 1

    def __post_init__(self):
        if not 1 <= self.minimum <= self.maximum:
            raise ConfigError(f"writer bounds must satisfy 1 <= min <= max, got min={self.minimum} "
                              f"max={self.maximum}")


@dataclass(frozen=True)
class Load:
    """A destination's backlog and recent throughput, as the driver measured them."""

    backlog_bytes: int  # of the segments it has not completed, beyond its committed positions
    backlog_segments: int  # a segment is applied by one writer: more writers than this would idle
    bytes_per_second: float  # committed by all of its writers together, recently


@dataclass(frozen=True)
class ScalingSettings:
    """Writer counts of a run: bounds per destination (absent: exactly one writer), and the policy."""

    bounds: Mapping[str, WriterBounds] = field(default_factory=dict)
    target_drain: float = 30.0  # seconds the backlog should take to drain at most
    cooldown: float = 10.0  # seconds between two changes of one destination's count
    interval: float = 1.0  # seconds between two measurements of the load

    def scaler(self, destination: str, clock: Callable[[], float] = time.monotonic) -> WriterScaler:
        return WriterScaler(self.bounds.get(destination, WriterBounds()), target_drain=self.target_drain,
                            cooldown=self.cooldown, clock=clock)


class WriterScaler:
    """The writer count of one destination, from its load, within `bounds`.

    Up: as many writers as it takes to drain the backlog within `target_drain` seconds at the
    current per-writer rate, at once. Down: one at a time, and only when the backlog would drain in
    less than half the target. Never more writers than segments owed, never a change within
    `cooldown` seconds of the previous one, and no change before a throughput was measured."""

    def __init__(self, bounds: WriterBounds, *, target_drain: float, cooldown: float,
                 clock: Callable[[], float] = time.monotonic):
        if target_drain <= 0 or cooldown < 0:
            raise ConfigError(f"writer scaling needs target_drain > 0 and cooldown >= 0, got "
                              f"target_drain={target_drain} cooldown={cooldown}")
        self.bounds = bounds
        self._target, self._cooldown, self._clock = target_drain, cooldown, clock
        self.count = bounds.minimum
        self._changed_at = -math.inf

    def update(self, load: Load) -> int:
        """The count to run now (changed at most once per cooldown)."""
        now = self._clock()
        if now - self._changed_at < self._cooldown:
            return self.count
        wanted = self.desired(load)
        if wanted != self.count:
            self.count, self._changed_at = wanted, now
        return self.count

    def desired(self, load: Load) -> int:
        if load.backlog_segments == 0 or load.backlog_bytes <= 0:
            return self.bounds.minimum
        if load.bytes_per_second <= 0:
            return self.count  # nothing committed yet (writers starting): no rate to judge by
        per_writer = load.bytes_per_second / self.count
        needed = math.ceil(load.backlog_bytes / (per_writer * self._target))
        drain = load.backlog_bytes / load.bytes_per_second
        if needed > self.count:
            wanted = needed
        elif drain < self._target * SCALE_DOWN_BELOW:
            wanted = self.count - 1
        else:
            wanted = self.count
        wanted = min(wanted, max(load.backlog_segments, self.bounds.minimum))
        return max(self.bounds.minimum, min(self.bounds.maximum, wanted))


class Throughput:
    """Bytes per second a destination committed over the last `window` seconds of samples of its
    offsets (commits come in bursts: a rate over one short interval swings between 0 and peaks)."""

    def __init__(self, window: float = 5.0):
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()
        self.rate = 0.0

    def sample(self, now: float, committed_bytes: int) -> float:
        self._samples.append((now, committed_bytes))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
            self._samples.popleft()  # keep one sample at least `window` old
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        self.rate = max(0.0, b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
        return self.rate


def committed_bytes(offsets: Mapping[str, Offset]) -> int:
    """How far a destination got, summed over its partitions (grows with every commit)."""
    return sum(o.position for o in offsets.values())


def backlog(segments: Iterable, offsets: Mapping[str, Offset], size: Callable[[object], int]) -> tuple[int, int]:
    """(bytes, segments) of `segments` (SegmentRefs) a destination has not completed: each one's
    size beyond the position the destination committed in it. `size`: a segment's size in bytes."""
    owed_bytes = owed = 0
    for segment in segments:
        offset = offsets.get(segment.partition_id)
        if offset is not None and offset.completed:
            continue
        owed += 1
        owed_bytes += max(0, size(segment) - (offset.position if offset is not None else 0))
    return owed_bytes, owed


class SegmentRouter(Generic[W]):
    """Which writer of each destination applies a segment (partition): round-robin over the writers
    in rotation for a partition seen the first time, the same writer ever after (module doc)."""

    def __init__(self, writers: Mapping[str, W]):
        self._active: dict[str, list[W]] = {name: [w] for name, w in writers.items()}
        self._routes: dict[tuple[str, str], W] = {}
        self._turns = {name: itertools.count() for name in writers}

    def route(self, partition: str) -> dict[str, W]:
        return {name: self._writer(name, partition) for name in self._active}

    def _writer(self, name: str, partition: str) -> W:
        key = (name, partition)
        if key not in self._routes:
            active = self._active[name]
            self._routes[key] = active[next(self._turns[name]) % len(active)]
        return self._routes[key]

    def add(self, name: str, writer: W) -> None:
        self._active[name].append(writer)

    def retire(self, name: str) -> W | None:
        """Take the newest writer out of the rotation (it keeps the partitions it has); None when
        only one is left."""
        active = self._active[name]
        return active.pop() if len(active) > 1 else None

    def counts(self) -> dict[str, int]:
        return {name: len(active) for name, active in self._active.items()}
