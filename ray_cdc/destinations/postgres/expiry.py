"""Deleting expired rows from PostgreSQL / TimescaleDB (`expiry_interval` of the destination).

Cassandra TTLs reach every destination as `_expires_at` (the user-visible column of the views, next
to `_writetime`; ClickHouse's tables have it too). The views already hide a row once its
`_expires_at` has passed, exactly as they decide liveness; this job reclaims the space: it deletes
those rows from the tables the views read (`<t>__state`, `<t>__static`), in batches of `batch_rows`
with a commit each, so that a writer merging into the same table never waits long on its locks.
Tombstone tables are never touched (they keep older late writes out; they carry no expiry).

Caveat, as in Cassandra after gc_grace: once an expired row is deleted, a write older than the
expiring one that arrives later (a lagging node's copy) is applied as if the row had never been.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from ray_cdc.errors import TransientDestinationError
from ray_cdc.secrets import redact

log = logging.getLogger(__name__)

# base tables written by ray_cdc (state tables and their static twins) that have the expiry column
_EXPIRING_TABLES = """
SELECT c.table_schema, c.table_name FROM information_schema.columns AS c
JOIN information_schema.tables AS t USING (table_schema, table_name)
WHERE c.column_name = '_expires_at' AND t.table_type = 'BASE TABLE'
  AND (c.table_name LIKE '%%\\_\\_state' OR c.table_name LIKE '%%\\_\\_static')
  AND (%(schema)s::text IS NULL OR c.table_schema = %(schema)s)
ORDER BY 1, 2"""

# (tableoid, ctid) identifies a row even in a hypertable, whose chunks each have their own ctids
_DELETE_BATCH = """
DELETE FROM {table} WHERE (tableoid, ctid) IN (
    SELECT tableoid, ctid FROM {table} WHERE _expires_at <= now() LIMIT {limit})"""


@dataclass
class ExpiryJob:
    """One pass over a destination's tables: `run_once()` deletes what has expired by now."""

    dsn: str
    destination: str  # its name, for errors and logs (never the DSN)
    schema: str | None = None  # None: every schema (one per keyspace)
    batch_rows: int = 10_000

    def run_once(self) -> dict[str, int]:
        """`schema.table` -> rows deleted (tables with none left out)."""
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                return self._expire(conn)
        except psycopg.Error as e:
            raise TransientDestinationError(f"expiry job: {redact(str(e)).strip()}",
                                            destination=self.destination) from None

    def _expire(self, conn: psycopg.Connection) -> dict[str, int]:
        deleted = {}
        for schema, table in conn.execute(_EXPIRING_TABLES, {"schema": self.schema}).fetchall():
            statement = sql.SQL(_DELETE_BATCH).format(table=sql.Identifier(schema, table),
                                                      limit=sql.Literal(self.batch_rows))
            total = 0
            while True:
                count = conn.execute(statement).rowcount
                total += count
                if count < self.batch_rows:
                    break
            if total:
                deleted[f"{schema}.{table}"] = total
        return deleted


class ExpiryThread:
    """Runs a job every `interval` seconds until `stop()`; a failed pass is logged and tried again at
    the next interval (the views hide expired rows meanwhile, so nothing user-visible depends on it)."""

    def __init__(self, job: Callable[[], dict[str, int]], interval: float, name: str):
        self._job, self.interval, self.name = job, interval, name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"ray-cdc-expiry-{name}", daemon=True)
        self.passes = 0
        self.deleted = 0

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> ExpiryThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                deleted = self._job()
            except TransientDestinationError as e:
                log.warning("%s", e)
                continue
            self.passes += 1
            self.deleted += sum(deleted.values())
            if deleted:
                log.info("%s: deleted expired rows %s", self.name, deleted)


@contextmanager
def expiry_jobs(destinations, factories) -> Iterator[list[ExpiryThread]]:
    """While inside: one thread per PostgreSQL/TimescaleDB destination with an `expiry_interval`
    (`destinations`: name -> its config; `factories`: name -> its DestinationFactory, whose DSN is
    resolved, embedded servers started)."""
    threads = []
    try:
        for name, config in destinations.items():
            interval = getattr(config, "expiry_interval", None)
            if interval is not None and getattr(factories.get(name), "kind", None) in ("postgres", "timescaledb"):
                job = ExpiryJob(factories[name].dsn, name, schema=config.db_schema)
                threads.append(ExpiryThread(job.run_once, interval, name).start())
        yield threads
    finally:
        for thread in threads:
            thread.stop()
