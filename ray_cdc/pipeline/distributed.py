"""The replication loop on Ray: coordinator, readers pinned to their node, writers per destination.

The driver creates the actors, starts one reader per Cassandra node and waits for them; a reader
that dies has its segments handed back by the coordinator and is started again (its resume point
comes from the offsets the writers committed, so nothing is lost or applied twice). A reader whose
Ray node is gone is started again too: it waits for a node with that Cassandra node's resource
(the node's work pauses, the other nodes' goes on) and resumes once one joins.

The shared actors (coordinator, offsets, DLQ, writers) are kept on the driver's node, so losing a
Cassandra host loses only its reader and transform actor. Each destination has between
`min` and `max` writers, resized from its backlog while the pass runs (`writer_fleet.py`).

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
from ray_cdc.actors.options import RESTARTABLE, on_node, pinned_to
from ray_cdc.actors.reader import ReaderActor
from ray_cdc.actors.transformer import TransformActor, TransformerFactory
from ray_cdc.pipeline.coordination import Retention
from ray_cdc.pipeline.fanout import fitted_window
from ray_cdc.pipeline.retry import Backoff, RetryPolicy
from ray_cdc.pipeline.scaling import ScalingSettings
from ray_cdc.pipeline.writer_fleet import WriterFleet, WriterSpec, merged_timings
from ray_cdc.transforms import TransformSettings

log = logging.getLogger(__name__)

#: seconds a writer retries in place before it lets the readers go on without it
DETACH_AFTER = 5.0
#: how often the driver looks at its stop event and the writers' load while readers work
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
    # destination -> its writers' commit times (`WriterActor.timings`): first/last committed set, rows
    writers: dict[str, dict] = field(default_factory=dict)
    peak_writers: dict[str, int] = field(default_factory=dict)  # destination -> most writers at once
    writer_sets: dict[str, list[int]] = field(default_factory=dict)  # destination -> sets each writer committed
    scaling: list[dict] = field(default_factory=list)  # every change of a writer count (`WriterFleet.events`)


def _beside_driver() -> dict:
    """Placement of the shared actors: on the driver's node, which must have a CPU for the writers."""
    node_id = ray.get_runtime_context().get_node_id()
    cpus = next((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["NodeID"] == node_id), 0)
    return on_node(node_id, hard=cpus > 0)


def _smallest_store() -> float | None:
    """Bytes of the smallest object store among the cluster's live nodes (None: none reported)."""
    stores = [n["Resources"].get("object_store_memory") for n in ray.nodes() if n.get("Alive")]
    stores = [s for s in stores if s]
    return min(stores) if stores else None


def replicate_available_on_ray(
    sources: Mapping[str, NodeSource],
    reader_factory: Callable,
    destination_factories: Mapping[str, Callable],
    *,
    batch_rows: int = 32768,
    batch_bytes: int = 8 << 20,
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
    scaling: ScalingSettings | None = None,
) -> RayRunSummary:
    """Apply every durable change of every node to every destination, on the connected Ray cluster.

    `dead_letters`: a factory of the dead-letter store, built inside the DLQ actor. `retention`:
    what happens to a segment once every destination committed all of it. `transforms`: the
    transform stage's settings; None: readers hand their sets straight to the writers. `stop`: once
    set, readers take no new set, the sets in flight are committed with their offsets, and this
    returns (`stopped` in the summary). `scaling`: writers per destination (None: one each).

    Actors are named `<run_id>:<role>[:<what>]` (`ray.get_actor`), for operators and fault tests."""
    started = time.time()
    run_id = run_id or uuid.uuid4().hex[:8]
    policy = policy or RetryPolicy()
    beside_driver = _beside_driver()
    offsets = OffsetActor.options(name=f"{run_id}:offsets", **RESTARTABLE, **beside_driver).remote()
    dlq = None
    if dead_letters is not None:
        dlq = DeadLetterActor.options(name=f"{run_id}:dlq", **RESTARTABLE, **beside_driver).remote(dead_letters)
    # every actor is created at once (their constructors, imports and connections run concurrently);
    # the driver then waits once, for what the coordinator's first scan needs
    fleet = WriterFleet(WriterSpec(run_id, offsets, dlq, policy, detach_after, beside_driver),
                        destination_factories, scaling or ScalingSettings(),
                        {node: s.directory for node, s in sources.items()})
    coordinator = CoordinatorActor.options(name=f"{run_id}:coordinator", **RESTARTABLE, **beside_driver).remote(
        {node: str(s.directory) for node, s in sources.items()}, offsets, list(destination_factories),
        retention, str(archive_dir) if archive_dir else None, Backoff(policy))
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
            reader_id, node, reader_factory, coordinator, fleet.pool, max_in_flight=max_in_flight,
            batch_rows=batch_rows, batch_bytes=batch_bytes, tables=tables, transformer=transformers.get(node))
        return reader_id, actor

    def start(node: str, attempt: int, created=None):
        reader_id, actor = created or create(node, attempt)
        return reader_id, actor, actor.run_available.remote()

    max_in_flight = fitted_window(max_in_flight, len(destination_factories), batch_bytes, _smallest_store(),
                                  readers=len(sources))
    log.info("in flight: at most %d set(s) per destination per reader", max_in_flight)
    created = {node: create(node, 0) for node in sources}  # readers load their schemas meanwhile
    # writers ready: their offsets are loaded and recorded, which the coordinator's scan reads
    ray.get([w.__ray_ready__.remote() for w in fleet.all()]
            + [t.__ray_ready__.remote() for t in transformers.values()])
    ray.get(coordinator.refresh.remote())

    running = {node: (0, *start(node, 0, created[node])) for node in sources}
    try:
        while running:
            if stop is not None and stop.is_set() and not summary.stopped:
                # readers take no new set; the ones in flight are committed with their offsets
                summary.stopped = True
                ray.get(coordinator.stop.remote())
            fleet.scale()
            refs = {ref: node for node, (_, _, _, ref) in running.items()}  # the handles keep readers alive
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=STOP_POLL)
            for ref in ready:
                node = refs[ref]
                attempt, reader_id = running.pop(node)[:2]
                try:
                    summary.readers.append(ray.get(ref))
                except ray.exceptions.RayActorError:
                    if attempt >= max_reader_restarts:
                        raise
                    # its Ray node may be gone: the new reader waits for one with the node's resource
                    log.warning("reader %s died; its segments go back to the queue", reader_id)
                    ray.get(coordinator.reader_lost.remote(reader_id))
                    summary.reader_restarts += 1
                    running[node] = (attempt + 1, *start(node, attempt + 1))
        summary.retired = len(ray.get(coordinator.retired.remote()))
        timings = fleet.timings()
        summary.writers = {name: merged_timings(t) for name, t in timings.items()}
        summary.writer_sets = {name: [t["sets"] for t in ts] for name, ts in timings.items()}
        summary.peak_writers, summary.scaling = fleet.peak(), fleet.events
        ray.get([w.close.remote() for w in fleet.all()])
    finally:
        for actor in (*fleet.all(), *fleet.helpers(), *transformers.values(), coordinator, offsets,
                      *([dlq] if dlq is not None else [])):
            ray.kill(actor)
    return summary
