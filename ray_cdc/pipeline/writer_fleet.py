"""The writer actors of a run: the pool readers route segments through, grown and shrunk by the
backlog (the policy is `scaling.WriterScaler`; this is the part that creates actors).

A writer taken out of the rotation keeps its actor until the pass ends: the segments routed to it
stay its own (see `scaling.SegmentRouter`), and a deferred one may come back to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import ray

from ray_cdc.actors.options import RESTARTABLE
from ray_cdc.actors.writer import WriterActor, WriterPoolActor
from ray_cdc.errors import ConfigError
from ray_cdc.pipeline.coordination import SegmentRef, discover_segments
from ray_cdc.pipeline.scaling import Load, ScalingSettings, Throughput, backlog, committed_bytes


@dataclass(frozen=True)
class WriterSpec:
    """What every writer actor of the run is built from (its destination is built inside it)."""

    run_id: str
    offsets: object  # OffsetActor handle
    dead_letters: object | None  # DeadLetterActor handle
    policy: object  # RetryPolicy
    detach_after: float | None
    placement: Mapping  # actor options that place it (beside the driver)


class WriterFleet:
    def __init__(self, spec: WriterSpec, factories: Mapping[str, Callable], settings: ScalingSettings,
                 directories: Mapping[str, Path]):
        self._spec, self._factories, self._settings = spec, dict(factories), settings
        self._directories = dict(directories)
        self._scalers = {name: settings.scaler(name) for name in factories}
        self._meters = {name: Throughput() for name in factories}
        self.actors: dict[str, list] = {name: [] for name in factories}
        first = {name: self._create(name) for name in factories}
        # one writer per destination for good (the default): the readers are handed the writers
        # themselves, no pool actor routes between them, and there is no load to measure
        self.fixed = all(s.bounds.maximum == 1 for s in self._scalers.values())
        # not restartable: a new pool would forget which writer owns which segment (the run fails instead)
        self.pool = first if self.fixed else \
            WriterPoolActor.options(name=f"{spec.run_id}:writer-pool", **spec.placement).remote(first)
        self.active = {name: 1 for name in factories}
        self.events: list[dict] = []  # every change of a count: seconds into the run, destination, count
        self._started = self._measured = time.monotonic()
        for name in factories:
            self._resize(name, self._scalers[name].count)

    def _create(self, name: str):
        spec, index = self._spec, len(self.actors[name])
        if index:  # the first one has created the destination's schema and offsets table: two
            # writers opening at once could collide in the catalog (CREATE ... IF NOT EXISTS races)
            ray.get(self.actors[name][0].__ray_ready__.remote())
        suffix = f":{index}" if index else ""  # the first keeps the plain name (`ray.get_actor`)
        actor = WriterActor.options(name=f"{spec.run_id}:writer:{name}{suffix}", **RESTARTABLE,
                                    **spec.placement).remote(name, self._factories[name], spec.offsets,
                                                             spec.dead_letters, spec.policy, spec.detach_after)
        self.actors[name].append(actor)
        return actor

    def all(self) -> list:
        return [a for actors in self.actors.values() for a in actors]

    def helpers(self) -> list:
        """The fleet's actors other than writers (the pool, when there is one)."""
        return [] if self.fixed else [self.pool]

    def scale(self) -> None:
        """Measure each destination's load (at most once per `interval`) and resize its rotation."""
        now = time.monotonic()
        if self.fixed or now - self._measured < self._settings.interval:
            return
        self._measured = now
        committed = ray.get(self._spec.offsets.snapshot.remote())
        segments = self._segments()
        for name, scaler in self._scalers.items():
            offsets = committed.get(name, {})
            owed_bytes, owed = backlog(segments, offsets, _size)
            rate = self._meters[name].sample(now, committed_bytes(offsets))
            self._resize(name, scaler.update(Load(owed_bytes, owed, rate)))

    def _resize(self, name: str, count: int) -> None:
        while self.active[name] < count:
            # a retired writer comes back before a new one is made: its destination is already open
            writer = self.actors[name][self.active[name]] if self.active[name] < len(self.actors[name]) \
                else self._create(name)
            ray.get(self.pool.add.remote(name, writer))
            self.active[name] += 1
        while self.active[name] > count and ray.get(self.pool.retire.remote(name)) is not None:
            self.active[name] -= 1
        if not self.events or self._last_count(name) != self.active[name]:
            self.events.append({"seconds": round(time.monotonic() - self._started, 3), "destination": name,
                                "writers": self.active[name]})

    def _last_count(self, name: str) -> int | None:
        return next((e["writers"] for e in reversed(self.events) if e["destination"] == name), None)

    def _segments(self) -> list[SegmentRef]:
        found = []
        for node, directory in self._directories.items():
            try:
                found += discover_segments(node, directory)
            except ConfigError:
                continue  # not visible from the driver's host: its backlog is not counted
        return found

    def peak(self) -> dict[str, int]:
        """The most writers each destination had in rotation at once."""
        return {name: max(e["writers"] for e in self.events if e["destination"] == name) for name in self.actors}

    def timings(self) -> dict[str, list[dict]]:
        """Per destination, the commit timings of each of its writers (`WriterActor.timings`)."""
        names = [(name, a) for name, actors in self.actors.items() for a in actors]
        results = ray.get([a.timings.remote() for _, a in names])
        per: dict[str, list[dict]] = {name: [] for name in self.actors}
        for (name, _), timing in zip(names, results):
            per[name].append(timing)
        return per


def merged_timings(timings: list[dict]) -> dict:
    """One destination's writers' timings as if one writer had committed every set."""
    merged = dict(timings[0])
    for timing in timings[1:]:
        merged = _merge_timings(merged, timing)
    return merged


def _merge_timings(a: dict, b: dict) -> dict:
    if b.get("first") is None:
        return a
    if a.get("first") is None:
        return dict(b)
    first = a if a["first"] <= b["first"] else b
    return {**a, "first": first["first"], "first_rows": first["first_rows"], "last": max(a["last"], b["last"]),
            "rows": a["rows"] + b["rows"], "sets": a["sets"] + b["sets"],
            "apply_seconds": list(a.get("apply_seconds", [])) + list(b.get("apply_seconds", []))}


def _size(segment: SegmentRef) -> int:
    try:
        return segment.path.stat().st_size
    except FileNotFoundError:
        return 0  # retired meanwhile: nothing owed
