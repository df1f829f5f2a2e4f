"""The replication loop on Ray: coordinator, readers pinned to their node, one writer per destination.

The driver creates the actors, starts one reader per Cassandra node and waits for them; a reader
that dies has its segments handed back by the coordinator and is started again (its resume point
comes from the offsets the writers committed, so nothing is lost or applied twice).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import ray

from ray_cdc.actors.coordinator import CoordinatorActor
from ray_cdc.actors.offsets import OffsetActor
from ray_cdc.actors.options import RESTARTABLE, pinned_to
from ray_cdc.actors.reader import ReaderActor
from ray_cdc.actors.writer import WriterActor
from ray_cdc.pipeline.writing import RetryPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeSource:
    directory: Path
    ray_resource: str | None = None  # the custom resource of the Ray node that has `directory`


@dataclass
class RayRunSummary:
    readers: list[dict] = field(default_factory=list)
    reader_restarts: int = 0


def replicate_available_on_ray(
    sources: Mapping[str, NodeSource],
    reader_factory: Callable,
    destination_factories: Mapping[str, Callable],
    *,
    batch_rows: int = 65536,
    batch_bytes: int = 16 << 20,
    max_in_flight: int = 4,
    policy: RetryPolicy | None = None,
    max_reader_restarts: int = 3,
    run_id: str | None = None,
    tables=None,
    dead_letters=None,
) -> RayRunSummary:
    """Apply every durable change of every node to every destination, on the connected Ray cluster.

    Actors are named `<run_id>:<role>[:<what>]` (`ray.get_actor`), for operators and fault tests."""
    run_id = run_id or uuid.uuid4().hex[:8]
    offsets = OffsetActor.options(name=f"{run_id}:offsets", **RESTARTABLE).remote()
    writers = {name: WriterActor.options(name=f"{run_id}:writer:{name}", **RESTARTABLE).remote(
        name, factory, offsets, dead_letters, policy) for name, factory in destination_factories.items()}
    ray.get([w.__ray_ready__.remote() for w in writers.values()])  # offsets loaded before assignment
    coordinator = CoordinatorActor.options(name=f"{run_id}:coordinator", **RESTARTABLE).remote(
        {node: str(s.directory) for node, s in sources.items()}, offsets)
    ray.get(coordinator.refresh.remote())
    summary = RayRunSummary()

    def start(node: str, attempt: int):
        reader_id = f"{run_id}:reader:{node}:{attempt}"
        actor = ReaderActor.options(name=reader_id, **pinned_to(sources[node].ray_resource)).remote(
            reader_id, node, reader_factory, coordinator, writers, max_in_flight=max_in_flight,
            batch_rows=batch_rows, batch_bytes=batch_bytes, tables=tables)
        return reader_id, actor, actor.run_available.remote()

    running = {node: (0, *start(node, 0)) for node in sources}
    while running:
        node, (attempt, reader_id, _actor, ref) = next(iter(running.items()))  # the handle keeps it alive
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
    ray.get([w.close.remote() for w in writers.values()])
    for actor in (*writers.values(), coordinator, offsets):
        ray.kill(actor)
    return summary
