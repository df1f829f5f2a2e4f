"""PostgresDestination: Arrow batches -> binary COPY into TEMP staging tables -> one merge transaction.

`write` = `prepare` (staging.py: the batch -> binary COPY payloads, no connection, so a transform
stage may run it on another core) + `write_prepared`: in ONE transaction, COPY into the staging
tables, keep and apply tombstones, upsert with per-column last-writer-wins (merge.py), upsert the
offsets. Anything failing before COMMIT leaves neither data nor offsets. Rows PostgreSQL refuses as
bad data are found (fields.py/values.py refuse the ones they can see coming; a COPY that fails on
data is bisected inside savepoints) and returned in `WriteResult.rejected`; the rest is applied.

TTL: `_expires_at` is row-level and follows the row's newest change (exact for `INSERT ... USING TTL`
of whole rows; a partial TTL write makes the row's expiry that write's). Expired rows drop out of the
view; the state table keeps them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg.conninfo import conninfo_to_dict

from ray_cdc.destinations.base import Capabilities, WriteResult
from ray_cdc.destinations.postgres import merge
from ray_cdc.destinations.postgres.ddl import OFFSETS_DDL, TableNames, names_for, qi, table_ddl
from ray_cdc.destinations.postgres.errors import classify, is_bad_data
from ray_cdc.destinations.postgres.staging import Stage, StagedBatch, stage_batch
from ray_cdc.offsets import Offset
from ray_cdc.schema.model import TableSchema

log = logging.getLogger(__name__)

TEMP_BUFFERS = "64MB"
_STAGE_TABLE = {"writes": "rows", "static": "static", "partitions": "partitions",
                "row_deletes": "row_deletes", "ranges": "ranges"}
_TOMBSTONE_KINDS = {"partitions": "partitions", "row_deletes": "rows", "ranges": "ranges"}


class PostgresDestination:
    capabilities = Capabilities(transactional=True)

    def __init__(self, dsn: str, *, name: str = "postgres", schema: str | None = None,
                 offsets_schema: str = "public", connect_timeout: int = 10):
        self.name = name
        self._dsn = dsn
        self._secrets = _secrets_of(dsn)
        self._schema = schema
        self._offsets_table = f"{qi(offsets_schema)}.ray_cdc_offsets"
        self._offsets_schema = offsets_schema
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection | None = None
        self._tables: dict = {}  # table schema -> TableNames, once its DDL ran
        self._staged: set = set()  # table ids whose TEMP staging tables exist on this connection
        #: test hook: called with the cursor after the merge, before COMMIT (a failure there rolls back)
        self.before_commit: Callable[[psycopg.Cursor], None] | None = None

    # --- connection --------------------------------------------------------------------------------

    def _fail(self, exc: BaseException, doing: str):
        error = classify(exc, destination=self.name, secrets=self._secrets, doing=doing)
        if self._conn is not None and self._conn.broken:
            self._drop_connection()
        return error

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop_connection()
            try:
                self._conn = psycopg.connect(self._dsn, connect_timeout=self._connect_timeout)
                # the staging tables live in this session's local buffers: a 64k-row batch outgrows
                # the 8 MB default and would go through the OS on every COPY and merge
                self._conn.execute(f"SET temp_buffers = '{TEMP_BUFFERS}'")
                # the merge's statements are short: compiling them (JIT kicks in on cost estimates
                # of large batches) would cost more than running them
                self._conn.execute("SET jit = off")
                self._conn.commit()
            except psycopg.Error as exc:
                raise self._fail(exc, "connect") from None
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
        self._conn = None
        self._staged.clear()  # TEMP tables die with the session

    def open(self) -> None:
        self._run("create the offsets table", lambda cur: (
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {qi(self._offsets_schema)}"),
            cur.execute(OFFSETS_DDL.format(schema=qi(self._offsets_schema)))))

    def close(self) -> None:
        self._drop_connection()

    def ping(self) -> None:
        self._run("ping", lambda cur: cur.execute("SELECT 1"))

    def _run(self, doing: str, work: Callable[[psycopg.Cursor], object]):
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                return work(cur)
        except psycopg.Error as exc:
            raise self._fail(exc, doing) from None

    # --- tables ------------------------------------------------------------------------------------

    def ensure_table(self, table: TableSchema) -> TableNames:
        names = self._tables.get(table)
        if names is None:
            names = names_for(table, self._schema)

            def create(cur):
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table.qualified_name,))
                for stmt in self.table_ddl(names):
                    cur.execute(stmt)
            self._run(f"create tables of {table.qualified_name}", create)
            self._tables[table] = names
        return names

    def table_ddl(self, names: TableNames) -> list[str]:
        """The statements creating one Cassandra table's tables and views (subclasses may add to them)."""
        return table_ddl(names)

    def _ensure_stages(self, cur, names: TableNames) -> merge.StageNames:
        stages = merge.stage_names(names)
        if names.table.id not in self._staged:
            for stmt in merge.stage_ddl(names, stages):
                cur.execute(stmt)
            self._staged.add(names.table.id)
        return stages

    # --- writing -----------------------------------------------------------------------------------

    def prepare(self, table: TableSchema, batch: pa.RecordBatch) -> Prepared:
        """The connection-free half of `write`: type mapping, COPY payloads, rows refused up front."""
        return prepare_batch(names_for(table, self._schema), batch)

    def write(self, table: TableSchema, batch: pa.RecordBatch, offsets: list[Offset]) -> WriteResult:
        return self.write_prepared(self.prepare(table, batch), offsets)

    def write_prepared(self, prepared: Prepared, offsets: list[Offset]) -> WriteResult:
        """COPY a prepared batch into the staging tables, merge it and upsert `offsets`, in ONE transaction."""
        table = prepared.names.table
        names = self.ensure_table(table)
        staged = prepared.staged
        rejected = dict(staged.problems)
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                stages = self._ensure_stages(cur, names)
                for key, stage in staged.stages().items():
                    target = getattr(stages, _STAGE_TABLE[key])
                    self._copy_isolating(conn, cur, target, stage, rejected)
                self._merge(conn, cur, names, stages, staged)
                self._save_offsets(cur, prepared.events, offsets)
                if self.before_commit is not None:
                    self.before_commit(cur)
        except psycopg.Error as exc:
            raise self._fail(exc, f"write {prepared.rows} rows of {table.qualified_name}") from None
        return WriteResult(rows=prepared.rows - len(rejected), rejected=sorted(rejected.items()))

    def _copy_isolating(self, conn, cur, target: str, stage: Stage, rejected: dict) -> None:
        """COPY the stage; when PostgreSQL refuses a value, bisect (inside savepoints) to the bad rows."""
        pending = [(0, len(stage))]
        while pending:
            start, stop = pending.pop()
            try:
                with conn.transaction():
                    _copy(cur, target, stage, start, stop)
            except psycopg.Error as exc:
                if not is_bad_data(exc):
                    raise
                if stop - start == 1:
                    reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
                    rejected[int(stage.index[start])] = reason
                    continue
                mid = (start + stop) // 2
                pending += [(mid, stop), (start, mid)]
        # rows rejected here are gone from the staging table; the other stages keep theirs

    def _merge(self, conn, cur, names: TableNames, stages, staged: StagedBatch) -> None:
        present = {_TOMBSTONE_KINDS[k] for k in staged.stages() if k in _TOMBSTONE_KINDS}
        for stmt in merge.keep_tombstones_sql(names, stages):
            if _uses(stmt, stages, present):
                cur.execute(stmt)
        for stmt in merge.apply_tombstones_sql(names, stages, present):
            cur.execute(stmt)
        kinds = set()
        if staged.writes is not None or staged.static is not None:
            flags = cur.execute(merge.kinds_present_sql(names)).fetchone()
            kinds = {k for k, f in zip(("partitions", "rows", "ranges"), flags) if f}
        for stage, target, stage_table in ((staged.writes, names.rows, stages.rows),
                                           (staged.static, names.static, stages.static)):
            if stage is not None and len(stage):
                self._upsert(conn, cur, names, target, stage_table, stage, kinds)

    def _upsert(self, conn, cur, names: TableNames, target, stage_table: str, stage: Stage, kinds: set) -> None:
        """Keys the state table does not have yet go in with a plain INSERT (no speculative insertion,
        which costs a third of the merge); a batch touching existing keys, or racing another session
        for a new one (unique violation, rolled back to the savepoint), takes the upsert."""
        def upsert(on_conflict: bool) -> str:
            return merge.upsert_sql(names, target, stage_table, duplicates=stage.duplicates, kinds=kinds,
                                    on_conflict=on_conflict)
        if not cur.execute(merge.any_key_exists_sql(target, stage_table)).fetchone()[0]:
            try:
                with conn.transaction():
                    cur.execute(upsert(False))
                return
            except psycopg.errors.UniqueViolation:
                pass
        cur.execute(upsert(True))

    def _save_offsets(self, cur, events: dict[int, int], offsets: list[Offset]) -> None:
        if not offsets:
            return
        cur.executemany(merge.OFFSETS_UPSERT.format(table=self._offsets_table), [
            (self.name, o.partition_id, o.node, o.segment_id, o.position, o.completed, events.get(o.segment_id, 0))
            for o in offsets])

    def commit_offsets(self, offsets: list[Offset]) -> None:
        """Offsets of a stretch of log with no rows for this destination (system mutations only)."""
        self._run("commit offsets", lambda cur: cur.executemany(
            merge.OFFSETS_UPSERT.format(table=self._offsets_table),
            [(self.name, o.partition_id, o.node, o.segment_id, o.position, o.completed, 0) for o in offsets]))

    def committed_offsets(self) -> dict[str, Offset]:
        rows = self._run("read offsets", lambda cur: cur.execute(
            f"SELECT partition_id, node, segment_id, position, completed FROM {self._offsets_table} "
            "WHERE destination = %s", (self.name,)).fetchall())
        return {pid: Offset(node, seg, pos, done) for pid, node, seg, pos, done in rows}


def _uses(stmt: str, stages: merge.StageNames, present: set[str]) -> bool:
    """Skip the tombstone statements of kinds the batch does not have (their stages are empty)."""
    by_kind = {"partitions": stages.partitions, "rows": stages.row_deletes, "ranges": stages.ranges}
    return any(f"FROM {by_kind[k]} " in stmt for k in present)


def _copy(cur, target: str, stage: Stage, start: int, stop: int) -> None:
    columns = ", ".join(qi(c) for c in stage.columns)
    with cur.copy(f"COPY {target} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        for chunk in stage.payload.chunks(start, stop):
            copy.write(chunk)


@dataclass
class Prepared:
    """A batch ready to COPY (picklable: it can be prepared in another process)."""

    names: TableNames
    staged: StagedBatch
    rows: int
    events: dict[int, int]  # row changes per segment id (the offsets' event counts)


def prepare_batch(names: TableNames, batch: pa.RecordBatch) -> Prepared:
    counts = pc.value_counts(batch.column("_segment_id"))
    events = dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))
    return Prepared(names, stage_batch(names, batch), len(batch), events)


def _secrets_of(dsn: str) -> list[str]:
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        return []
    return [password] if password else []
