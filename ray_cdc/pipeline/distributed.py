"""The replication loop on Ray: coordinator, readers pinned to their node, one writer per destination.

The driver creates the actors, starts one reader per Cassandra node and waits for them; a reader
that dies has its segments handed back by the coordinator and is started again (its resume point
comes from the offsets the writers committed, so nothing is lost or applied twice).

Destinations progress independently: a writer whose destination stays down longer than
`detach_after` defers what it is given, the readers keep feeding the others, and the coordinator
queues the deferred segments again for that writer alone, with backoff, until it catches up.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import ray

from ray_cdc.actors.coordinator import CoordinatorActor
from ray_cdc.actors.dlq import DeadLetterActor
from ray_cdc.actors.offsets import OffsetActor
from ray_cdc.actors.options import RESTARTABLE, pinned_to
from ray_cdc.actors.reader import ReaderActor
from ray_cdc.actors.transformer import TransformActor, TransformerFactory
from ray_cdc.actors.writer import WriterActor
from ray_cdc.pipeline.coordination import Retention
from ray_cdc.pipeline.writing import RetryPolicy
from ray_cdc.transforms import TransformSettings

log = logging.getLogger(__name__)

#: seconds a writer retries in place before it lets the readers go on without it
DETACH_AFTER = 5.0
#: how often the driver looks at its stop event while readers work
STOP_POLL = 0.2
DEFAULT_TRANSFORMS = TransformSettings()


@dataclass(frozen=True)
class NodeSource:
    directory: Path
    ray_resource: str | None = None  # the custom resource of the Ray node that has `directory`


@dataclass
class RayRunSummary:
    readers: list[dict] = field(default_factory=list)
    reader_restarts: int = 0
    retired: int = 0  # segments deleted or archived (retention), every destination having committed them
    stopped: bool = False  # ended early by a stop request, after committing what was in flight
    started: float = 0.0  # time.time() when the pass began (before any actor was created)
    # destination -> its writer's commit times (`WriterActor.timings`): first/last committed set, rows
    writers: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class _Backoff:
    """The coordinator's waits before handing a deferred segment back (a picklable factory)."""

    policy: RetryPolicy

    def __call__(self):
        return self.policy.ceilings()


def replicate_available_on_ray(
    sources: Mapping[str, NodeSource],
    reader_factory: Callable,
    destination_factories: Mapping[str, Callable],
    *,
    batch_rows: int = 65536,
    batch_bytes: int = 16 << 20,
    max_in_flight: int = 4,
    policy: RetryPolicy | None = None,
    detach_after: float | None = DETACH_AFTER,
    max_reader_restarts: int = 3,
    run_id: str | None = None,
    tables=None,
    dead_letters: Callable | None = None,
    retention: Retention = "keep",
    archive_dir: Path | None = None,
    transforms: TransformSettings | None = DEFAULT_TRANSFORMS,
    stop: threading.Event | None = None,
) -> RayRunSummary:
    """Apply every durable change of every node to every destination, on the connected Ray cluster.

    `dead_letters`: a factory of the dead-letter store, built inside the DLQ actor. `retention`:
    what happens to a segment once every destination committed all of it. `transforms`: the
    transform stage's settings; None: readers hand their sets straight to the writers. `stop`: once
    set, readers take no new set, the sets in flight are committed with their offsets, and this
    returns (`stopped` in the summary).

    Actors are named `<run_id>:<role>[:<what>]` (`ray.get_actor`), for operators and fault tests."""
    started = time.time()
    run_id = run_id or uuid.uuid4().hex[:8]
    policy = policy or RetryPolicy()
    offsets = OffsetActor.options(name=f"{run_id}:offsets", **RESTARTABLE).remote()
    dlq = None
    if dead_letters is not None:
        dlq = DeadLetterActor.options(name=f"{run_id}:dlq", **RESTARTABLE).remote(dead_letters)
    # every actor is created at once (their constructors, imports and connections run concurrently);
    # the driver then waits once, for what the coordinator's first scan needs
    writers = {name: WriterActor.options(name=f"{run_id}:writer:{name}", **RESTARTABLE).remote(
        name, factory, offsets, dlq, policy, detach_after) for name, factory in destination_factories.items()}
    coordinator = CoordinatorActor.options(name=f"{run_id}:coordinator", **RESTARTABLE).remote(
        {node: str(s.directory) for node, s in sources.items()}, offsets, list(destination_factories),
        retention, str(archive_dir) if archive_dir else None, _Backoff(policy))
    summary = RayRunSummary(started=started)
    transformers = {}
    if transforms is not None:  # one per node, beside its reader: the sets do not cross the network
        factory = TransformerFactory(transforms, dict(destination_factories))
        transformers = {node: TransformActor.options(name=f"{run_id}:transform:{node}", **RESTARTABLE,
                                                     **pinned_to(s.ray_resource)).remote(factory)
                        for node, s in sources.items()}

    def create(node: str, attempt: int):
        reader_id = f"{run_id}:reader:{node}:{attempt}"
        actor = ReaderActor.options(name=reader_id, **pinned_to(sources[node].ray_resource)).remote(
            reader_id, node, reader_factory, coordinator, writers, max_in_flight=max_in_flight,
            batch_rows=batch_rows, batch_bytes=batch_bytes, tables=tables, transformer=transformers.get(node))
        return reader_id, actor

    def start(node: str, attempt: int, created=None):
        reader_id, actor = created or create(node, attempt)
        return reader_id, actor, actor.run_available.remote()

    created = {node: create(node, 0) for node in sources}  # readers load their schemas meanwhile
    # writers ready: their offsets are loaded and recorded, which the coordinator's scan reads
    ray.get([w.__ray_ready__.remote() for w in writers.values()]
            + [t.__ray_ready__.remote() for t in transformers.values()])
    ray.get(coordinator.refresh.remote())

    running = {node: (0, *start(node, 0, created[node])) for node in sources}
    stopping = False
    try:
        while running:
            if stop is not None and stop.is_set() and not stopping:
                # readers take no new set; the ones in flight are committed with their offsets
                stopping = True
                summary.stopped = True
                ray.get(coordinator.stop.remote())
            node, (attempt, reader_id, _actor, ref) = next(iter(running.items()))  # the handle keeps it alive
            if stop is not None and not stopping:
                ready, _ = ray.wait([ref], timeout=STOP_POLL)  # wake up for a stop request
                if not ready:
                    continue
            try:
                summary.readers.append(ray.get(ref))
                del running[node]
            except ray.exceptions.RayActorError:
                if attempt >= max_reader_restarts:
                    raise
                log.warning("reader %s died; its segments go back to the queue", reader_id)
                ray.get(coordinator.reader_lost.remote(reader_id))
                summary.reader_restarts += 1
                running[node] = (attempt + 1, *start(node, attempt + 1))
        summary.retired = len(ray.get(coordinator.retired.remote()))
        summary.writers = dict(zip(writers, ray.get([w.timings.remote() for w in writers.values()])))
        ray.get([w.close.remote() for w in writers.values()])
    finally:
        for actor in (*writers.values(), *transformers.values(), coordinator, offsets,
                      *([dlq] if dlq is not None else [])):
            ray.kill(actor)
    return summary
