"""What the health API shows, gathered on request from the pipeline's parts.

The driver's replication loop reports each pass's start and end (`pass_started`/`pass_ended`); the
rest comes from the segment files, the observer actor (rows, latencies, committed offsets), the
running pass's coordinator (who reads which segment), Ray's actor table, the dead-letter store and
the destinations themselves. A part that does not answer in time leaves its last known figures.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ray

from ray_cdc.errors import RayCdcError
from ray_cdc.observability import metrics
from ray_cdc.observability.models import (
    ActorStatus,
    DestinationStatus,
    Health,
    Phase,
    ReadyReport,
    StatusReport,
)
from ray_cdc.observability.observations import Snapshot
from ray_cdc.observability.readiness import DestinationTarget, actors_ready, check_destination, judge_actors
from ray_cdc.observability.segments import SegmentFile, segment_files
from ray_cdc.observability.snapshot_status import snapshot_status
from ray_cdc.observability.status import NO_PROGRESS, destination_lag, node_statuses
from ray_cdc.pipeline.coordination import Progress

log = logging.getLogger(__name__)

#: seconds to wait for an actor's answer before using the last one
ACTOR_TIMEOUT = 5.0
EMPTY = Snapshot({}, {}, {}, {}, {}, {})


class PipelineView:
    def __init__(self, directories: Mapping[str, Path], destinations: list[DestinationTarget], observer,
                 dead_letters: Callable[[], object] | None = None, clock: Callable[[], float] = time.time,
                 observer_name: str | None = None):
        self._directories = dict(directories)
        self._destinations = destinations
        self._observer, self._observer_name = observer, observer_name
        self._dead_letters = dead_letters
        self._store = None
        self._store_lock = threading.Lock()  # requests are served on several threads: one store
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._phase: Phase = "starting"
        self._pass_id: str | None = None
        self._passes = 0
        self._observed = EMPTY

    # --- the replication loop's reports ---------------------------------------------------------------

    def pass_started(self, pass_id: str) -> None:
        with self._lock:
            self._phase, self._pass_id, self._passes = "running", pass_id, self._passes + 1

    def pass_ended(self) -> None:
        with self._lock:
            self._phase, self._pass_id = "between_passes", None

    def _pass(self) -> tuple[Phase, str | None, int]:
        with self._lock:
            return self._phase, self._pass_id, self._passes

    # --- the endpoints ---------------------------------------------------------------------------------

    def health(self) -> Health:
        return Health(uptime_seconds=self._clock() - self._started)

    def ready(self) -> ReadyReport:
        phase, pass_id, _ = self._pass()
        names = [d.name for d in self._destinations]
        table = _actor_table()
        actors, missing = judge_actors(pass_id, _named(table, f"{pass_id}:") if pass_id else [], names)
        if self._observer_name is not None:  # lives for the whole run: between passes too
            actors, missing = self._with_observer(table, actors, missing)
        with ThreadPoolExecutor(max_workers=max(1, len(self._destinations))) as pool:
            checks = dict(zip(names, pool.map(check_destination, self._destinations)))
        ready = (phase in ("running", "between_passes") and actors_ready(actors, missing)
                 and all(c.reachable for c in checks.values()))
        return ReadyReport(ready=ready, phase=phase, pass_id=pass_id, actors=actors, missing_actors=missing,
                           destinations=checks)

    def _with_observer(self, table: dict[str, str], actors: list[ActorStatus], missing: list[str]
                       ) -> tuple[list[ActorStatus], list[str]]:
        state = table.get(self._observer_name)
        if state is None:
            return actors, [*missing, "observer"]
        return [ActorStatus(name=self._observer_name, role="observer", state=state, required=True), *actors], missing

    def status(self) -> StatusReport:
        return self._status(self._observations())

    def metrics(self) -> bytes:
        observed = self._observations()  # one snapshot for both: the counters agree with the status
        return metrics.render(observed, self._status(observed))

    def _status(self, observed: Snapshot) -> StatusReport:
        phase, pass_id, passes = self._pass()
        names = [d.name for d in self._destinations]
        files = segment_files(self._directories)
        now = self._clock()
        return StatusReport(
            generated_at=now, phase=phase, pass_id=pass_id, passes=passes,
            nodes=node_statuses(files, observed.committed, names, self._progress(pass_id), now, self._directories),
            destinations={d: _destination_status(d, files, observed) for d in names},
            dlq_entries=self._dlq_entries(), snapshot=snapshot_status(observed.committed, names))

    # --- sources -------------------------------------------------------------------------------------

    def _observations(self) -> Snapshot:
        try:
            self._observed = ray.get(self._observer.snapshot.remote(), timeout=ACTOR_TIMEOUT)
        except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError) as exc:
            log.warning("the observer actor did not answer (%s): showing its last figures", type(exc).__name__)
        return self._observed

    def _progress(self, pass_id: str | None) -> Progress:
        if pass_id is None:
            return NO_PROGRESS
        try:
            coordinator = ray.get_actor(f"{pass_id}:coordinator")
            return ray.get(coordinator.progress.remote(), timeout=ACTOR_TIMEOUT)
        except (ValueError, ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
            return NO_PROGRESS  # not created yet, or gone with its pass: no segment is being read

    def _dlq_entries(self) -> int | None:
        if self._dead_letters is None:
            return None
        try:
            with self._store_lock:
                if self._store is None:
                    self._store = self._dead_letters()
            return self._store.count()
        except (RayCdcError, OSError) as exc:
            log.warning("cannot count the dead letters: %s", type(exc).__name__)
            return None


def _destination_status(destination: str, files: list[SegmentFile], observed: Snapshot) -> DestinationStatus:
    return DestinationStatus(
        rows_written=sum(n for (d, _), n in observed.rows.items() if d == destination),
        rows_per_second=observed.rows_per_second.get(destination, 0.0), commits=observed.commits.get(destination, 0),
        lag_bytes=destination_lag(files, observed.committed, destination))


def _actor_table() -> dict[str, str]:
    """name -> state of the cluster's named actors, from Ray's actor table. Ray's public state API
    (`ray.util.state`) asks the dashboard, which `ray-cdc run` does not start; the GCS table it reads
    is what `ray._private.state` serves directly."""
    from ray._private import state

    return {a["Name"]: a["State"] for a in state.actors().values() if a.get("Name")}


def _named(table: dict[str, str], prefix: str) -> list[tuple[str, str]]:
    return sorted((name, state) for name, state in table.items() if name.startswith(prefix))
