"""The configured destinations as the CLI reaches them: for reading and moving offsets, and for
reachability checks. Every failure names the setting and the host:port (or directory) tried, never
the password."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from ray_cdc.cli.common import UnknownNameError, UnreachableDestinationError
from ray_cdc.errors import DestinationError, TransientDestinationError
from ray_cdc.offsets import Offset
from ray_cdc.secrets import redact

CONNECT_TIMEOUT = 5  # seconds: a CLI answers quickly, or says what it could not reach
_EMBEDDED = ("pgserver", "chdb")
_DEFAULT_PORTS = {"http": 8123, "https": 8443, "clickhouse": 8123, "clickhouses": 8443}


def endpoint(dsn: str) -> str:
    """Where a DSN points, for messages: `host:port`, a socket directory or an embedded data
    directory. Never the user or password."""
    scheme, sep, rest = dsn.partition("://")
    if sep and scheme in _EMBEDDED:
        return f"embedded {scheme} directory {rest}"
    if sep and scheme in _DEFAULT_PORTS:
        url = urlsplit(dsn)
        return f"{url.hostname}:{url.port or _DEFAULT_PORTS[scheme]}"
    import psycopg.conninfo

    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "an unparsable PostgreSQL DSN"  # the DSN itself may hold the password: not quoted
    host, port = params.get("host") or "localhost", params.get("port") or "5432"
    return f"socket {host}/.s.PGSQL.{port}" if host.startswith("/") else f"{host}:{port}"


@dataclass
class Store:
    """One configured destination, opened for its offsets."""

    name: str
    kind: str
    endpoint: str
    destination: object  # a PostgresDestination or ClickHouseDestination

    @property
    def setting(self) -> str:
        return f"destinations.{self.name}.dsn"

    def committed_offsets(self) -> dict[str, Offset]:
        with self.translated("read the offsets"):
            return self.destination.committed_offsets()

    def rewrite_offsets(self, offsets: list[Offset], drop: list[str]) -> None:
        with self.translated("rewrite the offsets"):
            self.destination.rewrite_offsets(offsets, drop)

    @contextmanager
    def translated(self, doing: str) -> Iterator[None]:
        """A destination error becomes one that says which setting and endpoint were tried."""
        try:
            yield
        except DestinationError as exc:
            message = (f"destination {self.name!r} ({self.kind}, {self.endpoint}, setting {self.setting}): "
                       f"cannot {doing}: {redact(str(exc))}; check that the server is up and reachable "
                       f"from here and that {self.setting} is right")
            raise UnreachableDestinationError(
                message, retryable=isinstance(exc, TransientDestinationError)) from None


def selected(config, only: str | None) -> dict:
    """The configured destinations, or the one named by --destination (an unknown name is an error)."""
    if only is None:
        return dict(config.destinations)
    if only not in config.destinations:
        raise UnknownNameError(f"--destination {only!r} is not configured; destinations are: "
                               f"{', '.join(config.destinations)}")
    return {only: config.destinations[only]}


@contextmanager
def opened(config, only: str | None = None) -> Iterator[list[Store]]:
    """The destinations of `config` (or just `only`), connected, closed on exit. Embedded PostgreSQL
    servers are started for the duration."""
    from ray_cdc.pipeline.run import EmbeddedServers

    servers = EmbeddedServers()
    stores: list[Store] = []
    try:
        for name, settings in selected(config, only).items():
            stores.append(_open(name, settings, servers))
        yield stores
    finally:
        for store in stores:
            store.destination.close()


def _open(name: str, settings, servers) -> Store:
    dsn = settings.dsn.get_secret_value()
    if settings.type == "clickhouse":
        from ray_cdc.destinations.clickhouse import ClickHouseDestination

        destination = ClickHouseDestination(dsn, name=name, database=settings.database)
    else:  # timescaledb keeps its offsets exactly like postgres: no extension needed to read them
        from ray_cdc.destinations.postgres import PostgresDestination

        embedded = settings.embedded_dir
        resolved = servers.dsn(embedded) if embedded is not None else dsn
        destination = PostgresDestination(resolved, name=name, schema=settings.db_schema,
                                          connect_timeout=CONNECT_TIMEOUT)
    store = Store(name, settings.type, endpoint(dsn), destination)
    with store.translated("connect"):
        destination.open()
    return store


def preflight(config) -> list[UnreachableDestinationError]:
    """Connect once to every destination on a server before `run` starts Ray (embedded ones have
    nothing to reach). A server that answers no (login, unknown database) is raised at once: it will
    not change by retrying. One that is down is returned, for a warning: the pipeline retries it,
    and the other destinations go on meanwhile."""
    down = []
    for name, settings in config.destinations.items():
        if settings.embedded_dir is not None:
            continue
        try:
            with opened(config, name):
                pass
        except UnreachableDestinationError as exc:
            if not exc.retryable:
                raise
            down.append(exc)
    return down
