"""The health API around a `ray-cdc run`: the observer actor, the view and the server, for as long
as the replication loop runs."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ray

from ray_cdc.actors.options import RESTARTABLE
from ray_cdc.config.models import Config
from ray_cdc.observability.actor import ObserverActor
from ray_cdc.observability.errors import HealthApiError
from ray_cdc.observability.observed import ObservedFactory
from ray_cdc.observability.readiness import DestinationTarget
from ray_cdc.observability.server import HealthApi
from ray_cdc.observability.view import PipelineView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observability:
    view: PipelineView
    observer: Any  # ObserverActor handle
    address: tuple[str, int] | None  # where the API listens (port 0: the one picked); None: not served

    def observed(self, factories: Mapping[str, Callable]) -> dict[str, ObservedFactory]:
        """The destination factories, their destinations reporting to the observer."""
        return {name: ObservedFactory(factory, self.observer) for name, factory in factories.items()}


@contextmanager
def health_api(config: Config, factories: Mapping[str, Any], dead_letters: Callable[[], object] | None
               ) -> Iterator[Observability]:
    """Serve the API on `config.observability` while the block runs. `factories`: the run's
    destination factories (name, kind and resolved dsn: each destination's own readiness check)."""
    observer_name = f"ray-cdc-observer:{uuid.uuid4().hex[:8]}"  # unique: runs may share a cluster
    observer = ObserverActor.options(name=observer_name, **RESTARTABLE).remote()
    targets = [DestinationTarget(name, f.kind, f.dsn) for name, f in factories.items()]
    view = PipelineView({s.name: s.commitlog_dir for s in config.sources}, targets, observer, dead_letters,
                        observer_name=observer_name)
    settings = config.observability
    token = settings.bearer_token.get_secret_value() if settings.bearer_token else None
    api = HealthApi(view, settings.host, settings.port, token or None)
    try:
        address = start(api, required="observability" in config.model_fields_set)
        yield Observability(view, observer, address)
    finally:
        api.stop()
        ray.kill(observer)


def start(api: HealthApi, *, required: bool) -> tuple[str, int] | None:
    """Start the API. An address the config names (`required`) that cannot be served is an error; the
    default one (127.0.0.1:9750) may be taken by another run on the same host: replication then goes
    on without the API, saying so, rather than not starting at all."""
    try:
        return api.start()
    except HealthApiError as exc:
        if required:
            raise
        log.error("%s; replicating without the health API (configure observability to serve it)", exc)
        return None
