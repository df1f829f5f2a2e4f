"""The DLQ as a PostgreSQL table: metadata columns, and the payload as bytea (Arrow IPC stream).

For deployments where several hosts must see one queue, or where the DLQ should live beside the
replicated data. The table is created on first use. psycopg is imported only when a store connects,
so importing ray_cdc.dlq never needs a database driver.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from ray_cdc.dlq.entry import DeadLetter, is_valid_id
from ray_cdc.dlq.payload import from_ipc_stream, to_ipc_stream
from ray_cdc.dlq.store import (
    ALL,
    DeadLetterError,
    DeadLetterFilter,
    DeadLetterNotFoundError,
    Mask,
    after_attempt,
    identity,
    prepared,
)
from ray_cdc.secrets import redact

# (column, SQL type, DeadLetter field): one list drives CREATE, INSERT, SELECT and decoding.
_COLUMNS = (
    ("id", "uuid PRIMARY KEY", "id"),
    ("destination", "text NOT NULL", "destination"),
    ("keyspace_name", "text NOT NULL", "keyspace"),
    ("table_name", "text NOT NULL", "table"),
    ("table_id", "uuid NOT NULL", "table_id"),
    ("node", "text NOT NULL", "node"),
    ("source_segment_id", "bigint NOT NULL", "segment_id"),
    ("source_position", "bigint NOT NULL", "position"),
    ("error_class", "text NOT NULL", "error_class"),
    ("message", "text NOT NULL", "message"),
    ("row_count", "integer NOT NULL", "rows"),
    ("attempts", "integer NOT NULL", "attempts"),
    ("first_seen", "timestamptz NOT NULL", "first_seen"),
    ("last_seen", "timestamptz NOT NULL", "last_seen"),
)
_UUID_FIELDS = ("id", "table_id")  # psycopg hands these back as UUID objects
_TIME_FIELDS = ("first_seen", "last_seen")


class PostgresDeadLetterStore:
    def __init__(self, dsn: str, table: str = "ray_cdc_dead_letters"):
        self._dsn = dsn  # private, and never in repr or errors: it may hold a password
        self.table = table
        self._conn: Any = None
        self._lock = threading.Lock()  # one connection, used by one thread at a time

    def __repr__(self) -> str:
        return f"PostgresDeadLetterStore({redact(self._dsn)!r}, table={self.table!r})"

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # --- writing -----------------------------------------------------------------------------------

    def add(self, entries: Iterable[DeadLetter], *, mask: Mask = identity) -> list[str]:
        rows, ids = [], []
        for entry in entries:
            if not is_valid_id(entry.id):
                raise ValueError(f"dead letter id must be a uuid string, not {entry.id!r}")
            entry = prepared(entry, mask)
            rows.append([getattr(entry, f) for _, _, f in _COLUMNS] + [to_ipc_stream(entry.payload)])
            ids.append(entry.id)
        if rows:
            names = [c for c, _, _ in _COLUMNS] + ["payload"]
            # ON CONFLICT DO NOTHING: a retried add (after a lost reply) keeps one entry.
            query = self._sql("INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT (id) DO NOTHING",
                              columns=self._idents(names), values=self._placeholders(len(names)))
            with self._cursor() as cur:
                cur.executemany(query, rows)
        return ids

    def remove(self, entry_ids: Iterable[str]) -> int:
        ids = [i for i in entry_ids if is_valid_id(i)]  # anything else names no entry
        if not ids:
            return 0
        with self._cursor() as cur:
            cur.execute(self._sql("DELETE FROM {table} WHERE id = ANY(%s::uuid[])"), [ids])
            return cur.rowcount

    def record_attempt(self, entry_id: str, error: BaseException | str,
                       now: datetime | None = None) -> DeadLetter:
        if not is_valid_id(entry_id):
            raise DeadLetterNotFoundError(entry_id)
        with self._cursor() as cur:
            # FOR UPDATE: two failing replays of one entry both count.
            cur.execute(self._select("WHERE id = %s FOR UPDATE"), [entry_id])
            row = cur.fetchone()
            if row is None:
                raise DeadLetterNotFoundError(entry_id)
            entry = after_attempt(_entry(row), error, now)
            cur.execute(self._sql("UPDATE {table} SET attempts = %s, last_seen = %s, error_class = %s, "
                                  "message = %s WHERE id = %s"),
                        [entry.attempts, entry.last_seen, entry.error_class, entry.message, entry_id])
        return entry

    # --- reading -----------------------------------------------------------------------------------

    def list(self, filter: DeadLetterFilter = ALL) -> list[DeadLetter]:
        where, params = _where(filter)
        with self._cursor() as cur:
            cur.execute(self._select(where + " ORDER BY first_seen, id"), params)
            return [_entry(row) for row in cur.fetchall()]

    def get(self, entry_id: str) -> DeadLetter:
        if not is_valid_id(entry_id):
            raise DeadLetterNotFoundError(entry_id)
        with self._cursor() as cur:
            cur.execute(self._select("WHERE id = %s", payload=True), [entry_id])
            row = cur.fetchone()
        if row is None:
            raise DeadLetterNotFoundError(entry_id)
        return _entry(row[:-1]).with_payload(from_ipc_stream(bytes(row[-1])))

    def count(self, filter: DeadLetterFilter = ALL) -> int:
        where, params = _where(filter)
        with self._cursor() as cur:
            cur.execute(self._sql("SELECT count(*) FROM {table} " + where), params)
            return cur.fetchone()[0]

    # --- connection and SQL ------------------------------------------------------------------------

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor inside one transaction; a failure becomes a DeadLetterError without the DSN, and a
        broken connection is dropped so the next call reconnects."""
        import psycopg

        with self._lock:
            try:
                conn = self._connection(psycopg)
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                if self._conn is not None and (self._conn.closed or self._conn.broken):
                    self._conn = None
                raise DeadLetterError(f"dead letter table {self.table}: {redact(str(exc))}") from None

    def _connection(self, psycopg) -> Any:
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(self._dsn, autocommit=True)  # transactions are explicit
            try:
                self._create_table(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _create_table(self, conn) -> None:
        import psycopg

        columns = [f"{name} {typ}" for name, typ, _ in _COLUMNS] + ["payload bytea NOT NULL"]
        query = self._sql("CREATE TABLE IF NOT EXISTS {table} (" + ", ".join(columns) + ")")
        try:
            conn.execute(query)
        except psycopg.errors.UniqueViolation:
            # Two processes creating it at once: IF NOT EXISTS is not atomic in PostgreSQL. The other
            # one won, which is all we wanted.
            pass

    def _sql(self, template: str, **parts):
        from psycopg import sql

        return sql.SQL(template).format(table=sql.Identifier(*self.table.split(".")), **parts)

    def _select(self, tail: str, *, payload: bool = False):
        names = [c for c, _, _ in _COLUMNS] + (["payload"] if payload else [])
        return self._sql("SELECT {columns} FROM {table} " + tail, columns=self._idents(names))

    @staticmethod
    def _idents(names: list[str]):
        from psycopg import sql

        return sql.SQL(", ").join(map(sql.Identifier, names))

    @staticmethod
    def _placeholders(n: int):
        from psycopg import sql

        return sql.SQL(", ").join([sql.Placeholder()] * n)


def _where(filter: DeadLetterFilter) -> tuple[str, list]:
    """The filter as a WHERE clause (fixed text, values as parameters)."""
    clauses, params = [], []
    if filter.destination is not None:
        clauses.append("destination = %s")
        params.append(filter.destination)
    if filter.keyspace_table is not None:
        clauses.append("keyspace_name = %s AND table_name = %s")
        params.extend(filter.keyspace_table)
    if filter.error_class is not None:
        clauses.append("error_class = %s")
        params.append(filter.error_class)
    now = filter.at()  # the client's clock, as in the file store: one meaning of "age" everywhere
    if filter.older_than is not None:
        clauses.append("first_seen <= %s")
        params.append(now - filter.older_than)
    if filter.newer_than is not None:
        clauses.append("first_seen > %s")
        params.append(now - filter.newer_than)
    for clause, value in (("first_seen >= %s", filter.since), ("first_seen < %s", filter.until)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if filter.ids is not None:
        # ids that are not uuids name no entry (and must not make the cast fail)
        clauses.append("id = ANY(%s::uuid[])")
        params.append([i for i in filter.ids if is_valid_id(i)])
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _entry(row) -> DeadLetter:
    values = {field: value for (_, _, field), value in zip(_COLUMNS, row)}
    for name in _UUID_FIELDS:
        values[name] = str(values[name])
    for name in _TIME_FIELDS:
        values[name] = values[name].astimezone(timezone.utc)
    return DeadLetter(**values)
