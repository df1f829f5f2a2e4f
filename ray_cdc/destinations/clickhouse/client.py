"""A thin connection to ClickHouse: a DSN in, clickhouse-connect calls out, every error classified.

`chdb://DIR` (or `chdb:///abs/dir`) opens the embedded engine (chDB) on a data directory: one process
at a time may open a directory. `http(s)://user:pass@host:8123/db` talks to a server. The password is
never part of an error or a log line (`errors.redact`).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from ray_cdc.destinations.clickhouse.errors import classify, redact
from ray_cdc.errors import ConfigError

log = logging.getLogger(__name__)

_SCHEMES = ("chdb", "http", "https", "clickhouse", "clickhouses")


def describe(dsn: str) -> str:
    """The DSN as it may appear in logs and errors."""
    return redact(dsn)


def _check(dsn: str) -> None:
    scheme = urlsplit(dsn).scheme
    if scheme not in _SCHEMES:
        raise ConfigError(f"clickhouse dsn must start with one of {', '.join(s + '://' for s in _SCHEMES)}; "
                          f"got {describe(dsn)!r}")


class ClickHouseClient:
    """`command`, `query_arrow`, `insert_arrow` of clickhouse-connect, raising only DestinationErrors."""

    def __init__(self, dsn: str, *, name: str = "clickhouse"):
        _check(dsn)
        self.dsn = dsn
        self.name = name
        self._client = None

    def connect(self) -> None:
        if self._client is not None:
            return
        import clickhouse_connect  # deferred: the driver is imported only when used

        log.info("%s: connecting to %s", self.name, describe(self.dsn))
        self._client = self._call(clickhouse_connect.get_client, dsn=self.dsn)

    def _call(self, fn, *args, **kwargs) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the one boundary where driver errors are classified
            raise classify(exc, self.name) from None

    @property
    def embedded(self) -> bool:
        """chDB in this process: its directory is open in no other process, so this client's inserts
        are all the tables get."""
        return self.dsn.startswith("chdb://")

    @property
    def raw(self):
        if self._client is None:
            self.connect()
        return self._client

    def command(self, sql: str, settings: dict | None = None) -> Any:
        return self._call(self.raw.command, sql, settings=settings)

    def query_arrow(self, sql: str, settings: dict | None = None):
        return self._call(self.raw.query_arrow, sql, settings=settings)

    def insert_arrow(self, table: str, data, settings: dict | None = None) -> None:
        self._call(self.raw.insert_arrow, table, data, settings=settings)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            self._call(client.close)
