"""The initial snapshot on Ray: token ranges to parallel reader actors, their sets to the writers.

1. Writers (one per destination, `actors/writer.py`) load their committed offsets and report them to
   the offset actor. Snapshot offsets (`snapshot/<keyspace.table>/<start token>`, see
   `ray_cdc/snapshot/progress.py`) say which token intervals each destination already holds.
2. Per table, what every destination holds is left out; the rest is planned into ranges
   (`ray_cdc/snapshot/ranges.py`: vnode-aligned, sized from `system.size_estimates` or a count), each
   feeding only the destinations that lack it.
3. `parallelism` reader actors take ranges one at a time; a writer commits each set's offset after
   its data and reports it to the offset actor. A reader that dies has its range queued again,
   resuming from the offsets the writers committed.

A restart (driver killed, stopped) runs the same steps: finished ranges are not read again, and a
range cut short continues from its last committed boundary.

Hand-over to CDC: start the commitlog stream *before* the snapshot (they overlap by design); both
carry writetimes, so last-writer-wins in the destinations settles every row the two both deliver.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import ray

from ray_cdc.actors.offsets import OffsetActor
from ray_cdc.actors.options import RESTARTABLE
from ray_cdc.actors.snapshot import SnapshotReaderActor
from ray_cdc.actors.transformer import TransformerFactory
from ray_cdc.actors.writer import WriterActor
from ray_cdc.config.masking import MaskingConfig
from ray_cdc.config.models import CassandraSchemaConfig, Config
from ray_cdc.config.snapshot import SnapshotConfig
from ray_cdc.pipeline.writing import RetryPolicy
from ray_cdc.schema.model import TableSchema
from ray_cdc.snapshot.errors import SnapshotError
from ray_cdc.snapshot.meter import SnapshotMeter
from ray_cdc.snapshot.progress import common_done, covered, done_intervals
from ray_cdc.snapshot.ranges import (
    TokenRange,
    complement,
    plan_ranges,
    read_size_estimates,
    ring_from_metadata,
)
from ray_cdc.snapshot.reader import CassandraSource, RangeReaderFactory, RangeTask
from ray_cdc.transforms import TransformSettings

log = logging.getLogger(__name__)

#: how often the driver refreshes progress while readers work
POLL = 0.5


@dataclass
class SnapshotSummary:
    planned: dict[str, int] = field(default_factory=dict)  # table -> ranges read this run
    already_done: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # held everywhere at start
    ranges: list[dict] = field(default_factory=list)  # one entry per range read (reader results)
    rows: int = 0  # source rows read
    change_rows: int = 0  # change rows handed to the writers
    reader_restarts: int = 0
    stopped: bool = False
    rows_per_s: float = 0.0
    seconds: float = 0.0


def plan_tasks(tables: Sequence[TableSchema], committed: Mapping[str, Mapping], destinations: Sequence[str],
               source: CassandraSource, settings: SnapshotConfig, summary: SnapshotSummary) -> list[RangeTask]:
    """The ranges still to read for every table, from the cluster's ring and estimates (driver side)."""
    cluster, session = source.connect(raw=False)
    try:
        tasks = []
        for table in tables:
            name = table.qualified_name
            done = common_done(committed, destinations, name)
            summary.already_done[name] = done
            todo = complement(done)
            if not todo:
                summary.planned[name] = 0
                continue
            ring = ring_from_metadata(cluster.metadata, table.keyspace)
            estimates = read_size_estimates(session, table.keyspace, table.name)
            ranges = plan_ranges(todo, ring, settings.plan_settings(), estimates)
            per_dest = {d: done_intervals(committed.get(d, {}).values(), name) for d in destinations}
            for r in ranges:
                owed = tuple(d for d in destinations if not covered(per_dest[d], r))
                tasks.append(RangeTask(name, r, 0, owed))
            summary.planned[name] = len(ranges)
        return tasks
    finally:
        cluster.shutdown()


def _resume(task: RangeTask, committed: Mapping[str, Mapping]) -> RangeTask:
    """The task again, from the lowest boundary its destinations committed for its partition."""
    names = task.destinations if task.destinations is not None else list(committed)
    positions = []
    for name in names:
        offset = committed.get(name, {}).get(task.partition_id)
        positions.append(offset.position if offset is not None else 0)
    resume = min(positions) if positions else 0
    return RangeTask(task.table, task.range, max(task.resume, resume), task.destinations)


def snapshot_on_ray(source: CassandraSource, tables: Sequence[TableSchema], settings: SnapshotConfig | None = None,
                    *, destination_factories: Mapping[str, Callable] | None = None, writers: Mapping | None = None,
                    offsets=None, policy: RetryPolicy | None = None, dead_letters: Callable | None = None,
                    run_id: str | None = None,
                    stop: threading.Event | None = None, on_range: Callable[[dict, dict], None] | None = None,
                    meter_stream=None, max_reader_restarts: int = 8,
                    masking: MaskingConfig | None = None) -> SnapshotSummary:
    """Snapshot `tables` into every destination (see the module doc).

    Either `destination_factories` (writers and an offset actor are created here, and removed at the
    end) or the running pipeline's `writers` and `offsets` actors (shared: chDB lets one process open
    a directory); `dead_letters`: the DLQ store factory of the own writers (rows a destination refuses).
    `stop`: once set, no new range starts; ranges in flight finish and are committed.
    `on_range(result, readers)`: called after each finished range (operators' hooks, fault tests).
    `masking`: the run's masking; the readers mask each set per destination before it is sent."""
    settings = settings or SnapshotConfig()
    source = _with_settings(source, settings)
    run_id = run_id or uuid.uuid4().hex[:8]
    own = writers is None
    if own:
        if not destination_factories:
            raise SnapshotError("snapshot_on_ray needs destination_factories or writers")
        offsets = OffsetActor.options(name=f"{run_id}:snapshot-offsets", **RESTARTABLE).remote()
        writers = {name: WriterActor.options(name=f"{run_id}:snapshot-writer:{name}", **RESTARTABLE).remote(
            name, factory, offsets, dead_letters, policy or RetryPolicy(), None)
            for name, factory in destination_factories.items()}
    elif offsets is None:
        raise SnapshotError("snapshot_on_ray with shared writers needs their offsets actor")
    names = sorted(writers)
    summary = SnapshotSummary()
    started = time.monotonic()
    masker = TransformerFactory(TransformSettings.masking_only(masking)) if masking is not None else None
    readers = ReaderPool(run_id, RangeReaderFactory(source, {t.qualified_name: t for t in tables}), dict(writers),
                         settings, masker)
    try:
        for _ in range(settings.parallelism):
            readers.spawn()
        if own:
            ray.get([w.__ray_ready__.remote() for w in writers.values()])  # committed offsets reported
        committed = ray.get(offsets.snapshot.remote())
        tasks = deque(plan_tasks(tables, committed, names, source, settings, summary))
        label = ",".join(t.qualified_name for t in tables) if len(tables) <= 3 else f"{len(tables)} tables"
        meter = SnapshotMeter(label, len(tasks), sum(t.range.width for t in tasks),
                              interval=settings.progress_interval, stream=meter_stream)
        _run(tasks, readers, offsets, summary, meter, stop, on_range, max_reader_restarts)
        figures = meter.close()
        summary.rows_per_s = figures.rows_per_s
        summary.seconds = time.monotonic() - started
        if own:
            ray.get([w.close.remote() for w in writers.values()])
        return summary
    finally:
        for actor in readers.actors.values():
            ray.kill(actor)
        if own:
            for actor in (*writers.values(), offsets):
                ray.kill(actor)


def _with_settings(source: CassandraSource, settings: SnapshotConfig) -> CassandraSource:
    from dataclasses import replace

    return replace(source, consistency=settings.consistency, fetch_size=settings.fetch_size)


@dataclass
class ReaderPool:
    """The reader actors of one snapshot by id. They are started before the writers are ready and the
    ranges planned, so that their start-up (a worker process, imports, a Cassandra session) overlaps
    those instead of following them."""

    run_id: str
    factory: RangeReaderFactory
    writers: dict
    settings: SnapshotConfig
    transformer: TransformerFactory | None = None  # masking, applied in the readers per destination
    actors: dict = field(default_factory=dict)
    started: int = 0

    def spawn(self) -> str:
        reader_id = f"{self.run_id}:snapshot-reader:{self.started}"
        self.started += 1
        self.actors[reader_id] = SnapshotReaderActor.options(name=reader_id).remote(
            reader_id, self.factory, self.writers, max_in_flight=self.settings.max_in_flight_batches,
            batch_rows=self.settings.batch_rows, transformer=self.transformer)
        return reader_id


def _run(tasks: deque, pool: ReaderPool, offsets, summary: SnapshotSummary, meter: SnapshotMeter, stop, on_range,
         max_restarts: int) -> None:
    readers = pool.actors
    idle = list(readers)
    busy: dict = {}  # ObjectRef -> (reader id, task)
    done_tokens = ranges_done = 0
    base_rows = 0
    while tasks or busy:
        if stop is not None and stop.is_set() and not summary.stopped:
            summary.stopped = True
            log.warning("snapshot: stop requested; finishing the %d ranges in flight", len(busy))
        while idle and tasks and not summary.stopped:
            reader_id, task = idle.pop(), tasks.popleft()
            busy[readers[reader_id].read_range.remote(task)] = (reader_id, task)
        if not busy:
            break
        ready, _ = ray.wait(list(busy), num_returns=1, timeout=POLL)
        for ref in ready:
            reader_id, task = busy.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError:
                summary.reader_restarts += 1
                if summary.reader_restarts > max_restarts:
                    raise
                log.warning("snapshot reader %s died on %s %s; the range goes back to the queue",
                            reader_id, task.table, task.range)
                readers.pop(reader_id, None)
                tasks.appendleft(_resume(task, ray.get(offsets.snapshot.remote())))
                idle.append(pool.spawn())
                continue
            idle.append(reader_id)
            summary.ranges.append(result)
            base_rows += result["rows"]
            summary.change_rows += result["change_rows"]
            if result["deferred"]:  # a destination was down: the range again, for it alone, later
                log.warning("snapshot: %s %s deferred by %s", task.table, task.range, sorted(result["deferred"]))
                time.sleep(POLL)
                again = RangeTask(task.table, task.range, 0, tuple(sorted(result["deferred"])))
                tasks.append(_resume(again, ray.get(offsets.snapshot.remote())))
                continue
            ranges_done += 1
            done_tokens += task.range.width - task.resume
            if on_range is not None:
                on_range(result, readers)
        live = _progress([readers[r] for r, _ in busy.values() if r in readers])
        meter.update(rows=base_rows + sum(p["rows"] for p in live),
                     ranges_done=ranges_done, tokens_done=done_tokens + sum(p["tokens"] for p in live))
    summary.rows = base_rows


def _progress(actors) -> list[dict]:
    """What the busy readers report; a reader that just died reports nothing (the wait above deals
    with it on the next turn)."""
    out = []
    for ref in [a.progress.remote() for a in actors]:
        try:
            out.append(ray.get(ref))
        except ray.exceptions.RayActorError:
            continue
    return out


# --- `ray-cdc run` ------------------------------------------------------------------------------------


def source_from_config(cassandra: CassandraSchemaConfig, settings: SnapshotConfig) -> CassandraSource:
    """The cluster the schemas come from is the one the snapshot reads."""
    password = cassandra.password.get_secret_value() if cassandra.password else None
    return CassandraSource(tuple(cassandra.contact_points), port=cassandra.port, username=cassandra.username,
                           password=password, consistency=settings.consistency, fetch_size=settings.fetch_size)


def configured_tables(source: CassandraSource, config: Config) -> list[TableSchema]:
    """The replicated tables (`tables` include/exclude) as the live cluster describes them now."""
    from ray_cdc.schema.cluster import load_cluster_schema

    cluster, session = source.connect(raw=False)
    try:
        tables = load_cluster_schema(session=session, keyspaces=config.schema_source.cassandra.keyspaces)
    finally:
        cluster.shutdown()
    return [t for t in tables if config.tables.matches(t.keyspace, t.name)]


def snapshot_before_cdc(config: Config, factories: Mapping[str, Callable], stop: threading.Event, *,
                        policy: RetryPolicy, dead_letters: Callable | None, run_id: str) -> SnapshotSummary | None:
    """What `ray-cdc run` does before following the commitlog: snapshot the configured tables of the
    live cluster (`schema.cassandra`) into every destination. None when there is nothing to snapshot
    (`snapshot.enabled: false`, schemas not from a live cluster, no table matches).

    It runs to its end before the first commitlog pass: the two overlap by design (every change
    written during the snapshot is also in the segments the passes read afterwards, and
    last-writer-wins by writetime settles rows both deliver), and the destinations' writers are not
    shared between the two (an embedded chDB directory opens in one process at a time). A restart
    reads only the token ranges some destination still lacks (`plan_tasks`): after a finished
    snapshot, none."""
    settings = config.snapshot
    cassandra = config.schema_source.cassandra
    if not settings.enabled or cassandra is None:
        return None
    source = source_from_config(cassandra, settings)
    tables = configured_tables(source, config)
    if not tables:
        log.info("snapshot: no configured table on the cluster at %s", ", ".join(cassandra.contact_points))
        return None
    summary = snapshot_on_ray(source, tables, settings, destination_factories=factories, policy=policy,
                              dead_letters=dead_letters, run_id=run_id, stop=stop, masking=config.masking)
    complete = sum(1 for ranges in summary.planned.values() if ranges == 0)
    log.info("snapshot: %d rows of %d tables in %.1f s, %d ranges read (%d tables were complete already)%s",
             summary.rows, len(tables), summary.seconds, len(summary.ranges), complete,
             "; stopped on request" if summary.stopped else "")
    return summary


__all__ = ["SnapshotSummary", "TokenRange", "plan_tasks", "snapshot_before_cdc", "snapshot_on_ray"]
