"""`ray-cdc run config.yaml`: from a validated Config to replication passes on Ray.

Everything handed to actors is a small picklable factory built from the config: connections,
keystores and schemas are created inside the actor that uses them, never shipped.
"""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from pathlib import Path

import ray

from ray_cdc.config.models import ClickHouseDestination as ClickHouseConfig
from ray_cdc.config.models import Config
from ray_cdc.config.models import PostgresDestination as PostgresConfig
from ray_cdc.config.models import TimescaleDestination as TimescaleConfig
from ray_cdc.config.values import embedded_dir
from ray_cdc.destinations.postgres.expiry import expiry_jobs
from ray_cdc.observability.service import health_api
from ray_cdc.observability.view import PipelineView
from ray_cdc.pipeline.coordination import directory_listing
from ray_cdc.pipeline.distributed import NodeSource, RayRunSummary, replicate_available_on_ray
from ray_cdc.pipeline.factories import DeadLetterFactory, DestinationFactory, ReaderFactory
from ray_cdc.pipeline.scaling import ScalingSettings, WriterBounds
from ray_cdc.pipeline.snapshot import snapshot_before_cdc
from ray_cdc.pipeline.writing import RetryPolicy
from ray_cdc.transforms import TransformSettings
from ray_cdc.transforms.masking import check_destinations

log = logging.getLogger(__name__)


class EmbeddedServers:
    """The embedded PostgreSQL servers (`pgserver://DIR`) the driver keeps running for the writers."""

    def __init__(self):
        self._servers: dict[Path, object] = {}

    def dsn(self, directory: Path) -> str:
        server = self._servers.get(directory)
        if server is None:
            import pgserver

            directory.mkdir(parents=True, exist_ok=True)
            server = self._servers[directory] = _start_embedded(pgserver, directory)
        return server.get_uri()


def _start_embedded(pgserver, directory: Path, attempts: int = 3):
    """pgserver gives `pg_ctl start` 10 s; on a busy machine the server may be ready just after. It
    goes on starting: the next call finds it running and uses it."""
    import subprocess

    for attempt in range(1, attempts + 1):
        try:
            return pgserver.get_server(directory, cleanup_mode="stop")
        except subprocess.TimeoutExpired:
            if attempt == attempts:
                raise
            log.warning("embedded PostgreSQL in %s: not started after pg_ctl's 10 s; waiting again", directory)


def dead_letter_factory(config: Config, servers: EmbeddedServers) -> DeadLetterFactory:
    dlq = config.dlq
    if dlq.type == "postgres":
        embedded = embedded_dir(dlq.dsn, "pgserver")  # the driver keeps it running, as for destinations
        dsn = servers.dsn(embedded) if embedded is not None else dlq.dsn.get_secret_value()
        return DeadLetterFactory("postgres", dsn, dlq.table)
    return DeadLetterFactory("files", str(dlq.dir))


def destination_factories(config: Config, servers: EmbeddedServers) -> dict[str, DestinationFactory]:
    factories = {}
    dropped = config.schema_evolution.dropped_columns
    for name, dest in config.destinations.items():
        if isinstance(dest, ClickHouseConfig):
            factories[name] = DestinationFactory(name, "clickhouse", dest.dsn.get_secret_value(),
                                                 database=dest.database, dropped_columns=dropped,
                                                 purge_grace=dest.purge_grace)
        elif isinstance(dest, PostgresConfig):  # TimescaleConfig included: it extends PostgresConfig
            embedded = dest.embedded_dir
            dsn = servers.dsn(embedded) if embedded is not None else dest.dsn.get_secret_value()
            timescale = dest if isinstance(dest, TimescaleConfig) else None
            factories[name] = DestinationFactory(name, dest.type, dsn, schema=dest.db_schema, timescale=timescale,
                                                 dropped_columns=dropped)
    return factories


def replicate(config: Config, *, once: bool = False, stop: threading.Event | None = None,
              servers: EmbeddedServers | None = None) -> list[RayRunSummary]:
    """Replication passes until `stop` is set (SIGTERM/SIGINT set it) or, with `once`, one pass.
    A stop request during a pass ends it early, after the change sets in flight are committed with
    their offsets (readers take no new set), so the destinations' offsets match their data exactly."""
    stop = stop or stop_on_signals()
    servers = servers or EmbeddedServers()
    factories = destination_factories(config, servers)
    dead_letters = dead_letter_factory(config, servers)
    with (health_api(config, factories, dead_letters) as observability,
          expiry_jobs(config.destinations, factories)):  # PostgreSQL: deletes rows past their TTL
        return _passes(config, observability.observed(factories), observability.view, dead_letters,
                       once=once, stop=stop)


def _passes(config: Config, factories: dict, view: PipelineView, dead_letters: DeadLetterFactory, *,
            once: bool, stop: threading.Event) -> list[RayRunSummary]:
    sources = {s.name: NodeSource(s.commitlog_dir, s.ray_resource if _has_resource(s.ray_resource) else None)
               for s in config.sources}
    readers = ReaderFactory(config.schema_source, {s.name: s for s in config.sources})
    policy = RetryPolicy(config.retry.initial_backoff, config.retry.max_backoff, config.retry.max_elapsed)
    run_name = uuid.uuid4().hex[:8]
    passes = []
    # the tables' existing rows first (resumed from the ranges recorded in the destinations)
    snapshot = snapshot_before_cdc(config, factories, stop, policy=policy, dead_letters=dead_letters,
                                   run_id=f"{run_name}-snapshot")
    if snapshot is not None and snapshot.stopped:
        return passes
    directories = {s.name: s.commitlog_dir for s in config.sources}
    listing = None  # the directories as the last pass started with them
    while True:
        found = directory_listing(directories)
        if passes and found is not None and found == listing:
            # nothing added, written or completed since the last pass, which left nothing to do:
            # starting its actors again (a process each) would only find that out
            if stop.wait(config.pipeline.poll_interval):
                return passes
            continue
        listing = found
        pass_id = f"{run_name}-{len(passes) + 1}"  # the pass's actors are named <pass_id>:<role>
        view.pass_started(pass_id)
        try:
            passes.append(replicate_available_on_ray(
                sources, readers, factories, batch_rows=config.pipeline.batch_rows,
                batch_bytes=config.pipeline.batch_bytes, max_in_flight=config.pipeline.max_in_flight_batches,
                policy=policy, tables=config.tables, dead_letters=dead_letters,
                retention=config.pipeline.segment_retention, archive_dir=config.pipeline.archive_dir,
                detach_after=config.retry.detach_after, transforms=transform_settings(config), stop=stop,
                scaling=scaling_settings(config), run_id=pass_id))
        finally:
            view.pass_ended()
        if once or stop.is_set() or stop.wait(config.pipeline.poll_interval):
            return passes


def transform_settings(config: Config) -> TransformSettings | None:
    """The transform stage of the config; None: readers hand their sets straight to the writers.
    With masking configured the stage always runs (masking only, when turned off)."""
    if config.masking is not None:
        check_destinations(config.masking, config.destinations)
    if not config.pipeline.transform_stage:
        return None if config.masking is None else TransformSettings.masking_only(config.masking)
    return TransformSettings(coalesce=config.pipeline.coalesce, masking=config.masking)


def scaling_settings(config: Config) -> ScalingSettings:
    """Writers per destination from `writers`; embedded chDB always gets one (its engine is in the
    writer's process, and one process at a time may open its directory)."""
    bounds = {}
    for name, dest in config.destinations.items():
        single = isinstance(dest, ClickHouseConfig) and dest.embedded_dir is not None
        bounds[name] = WriterBounds() if single else WriterBounds(config.writers.minimum, config.writers.maximum)
    return ScalingSettings(bounds, target_drain=config.writers.target_drain, cooldown=config.writers.cooldown)


def _has_resource(resource: str) -> bool:
    """Pin readers only where the cluster has the node's resource (a laptop run has none)."""
    return resource in ray.cluster_resources()


def stop_on_signals() -> threading.Event:
    """An event SIGTERM/SIGINT set: the first asks for a graceful stop (what is in flight is
    committed); a second one while stopping interrupts at once (KeyboardInterrupt)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return stop  # signals reach the main thread only: the caller sets the event itself

    def handler(signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping without committing")
        log.warning("%s: committing the change sets in flight, then stopping (again to interrupt)",
                    signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    return stop
