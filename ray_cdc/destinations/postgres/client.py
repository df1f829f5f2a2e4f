"""PostgresDestination: Arrow batches -> binary COPY into TEMP staging tables -> one merge transaction.

`write` = `prepare` (staging.py: the batch -> binary COPY payloads, no connection, so a transform
stage may run it on another core) + `write_prepared`: in ONE transaction, COPY into the staging
tables, keep and apply tombstones, upsert with per-column last-writer-wins (merge.py), upsert the
offsets. Anything failing before COMMIT leaves neither data nor offsets. Rows PostgreSQL refuses as
bad data are found (fields.py/values.py refuse the ones they can see coming; a COPY that fails on
data is bisected inside savepoints) and returned in `WriteResult.rejected`; the rest is applied.

Direct path: a write stage that staging.py found fit for it (`Stage.direct`) is COPYed straight into
the state table, bookkeeping columns included, when the table has no tombstones (nor the batch) and
its keys are new; it skips the TEMP staging COPY and the INSERT ... SELECT (together about twice the
cost of the COPY itself). A sample of the keys is probed first (`DIRECT_PROBE_ROWS` rows spread over
the stage): a hit sends the stage to the staged merge at once. The probe only chooses the path; what
makes the direct COPY exact is the state table's primary key: a key that exists after all (missed by
the sample, or inserted by another session meanwhile) fails the COPY with a unique violation, which
rolls back to a savepoint and takes the staged path (as does a value the server refuses: the staged
path isolates the row). A new key inserted directly holds exactly what the merge would have
inserted for it (staging.py builds the bookkeeping the same way).

TTL: `_expires_at` is row-level and follows the row's newest change (exact for `INSERT ... USING TTL`
of whole rows; a partial TTL write makes the row's expiry that write's). Expired rows drop out of the
view; the state table keeps them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg.conninfo import conninfo_to_dict

from ray_cdc.destinations import evolution
from ray_cdc.destinations.base import Capabilities, WriteResult
from ray_cdc.destinations.evolution import record_conflicts
from ray_cdc.destinations.postgres import evolve, merge
from ray_cdc.destinations.postgres.ddl import (
    OFFSETS_DDL,
    TableNames,
    Target,
    names_for,
    pg_type,
    qi,
    table_ddl,
)
from ray_cdc.destinations.postgres.errors import classify, is_bad_data
from ray_cdc.destinations.postgres.staging import Stage, StagedBatch, stage_batch
from ray_cdc.destinations.postgres.values import RowProblems, column_values
from ray_cdc.offsets import Offset
from ray_cdc.schema.model import TableSchema

log = logging.getLogger(__name__)

TEMP_BUFFERS = "64MB"
_STAGE_TABLE = {"writes": "rows", "static": "static", "partitions": "partitions",
                "row_deletes": "row_deletes", "ranges": "ranges"}
_TOMBSTONE_KINDS = {"partitions": "partitions", "row_deletes": "rows", "ranges": "ranges"}
DIRECT_PROBE_ROWS = 128  # keys of a direct-path stage probed before its COPY (see the module doc)


class PostgresDestination:
    capabilities = Capabilities(transactional=True)

    def __init__(self, dsn: str, *, name: str = "postgres", schema: str | None = None,
                 offsets_schema: str = "public", connect_timeout: int = 10, direct_path: bool = True,
                 dropped_columns: evolution.DroppedColumns = "keep"):
        self.name = name
        self._dsn = dsn
        self._secrets = _secrets_of(dsn)
        self._schema = schema
        self._offsets_table = f"{qi(offsets_schema)}.ray_cdc_offsets"
        self._offsets_schema = offsets_schema
        self._connect_timeout = connect_timeout
        self._direct_path = direct_path  # False: every write stage takes the staged merge
        self._conn: psycopg.Connection | None = None
        self._tables: dict = {}  # table schema -> TableNames, once its DDL ran
        self._staged: dict = {}  # table id -> the layout its TEMP staging tables on this connection have
        self._dropped_columns = dropped_columns  # "keep" or "drop" (evolution.py)
        self._conflicts: dict = {}  # table schema -> type changes this destination cannot take
        self._conflicts_seen: set = set()
        self._pending: dict = {}  # table id -> evolve.PendingDdl: made by the table's next write
        #: test hook: called with the cursor after the merge, before COMMIT (a failure there rolls back)
        self.before_commit: Callable[[psycopg.Cursor], None] | None = None
        #: test hook: called with the cursor after a direct-path stage's probe, before its COPY
        self.before_direct_copy: Callable[[psycopg.Cursor], None] | None = None
        #: how write stages went: "direct" (COPYed into the state table), "probed" (the probe found a
        #: key: staged), "conflict" (the direct COPY failed and was rolled back: staged), "staged"
        self.paths: dict[str, int] = {"direct": 0, "probed": 0, "conflict": 0, "staged": 0}

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
        # destinations sharing a server start together (PostgreSQL and TimescaleDB writers): two
        # concurrent CREATE ... IF NOT EXISTS of one name collide in the catalog, so they take turns
        self._run("create the offsets table", lambda cur: (
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._offsets_table,)),
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
        """The tables of `table`: created if new; for an existing table, the names of the layout its
        batches are written with. Changes the stored tables need (evolve.py) are made by the next write
        of the table, in its transaction. Read from the catalog once per schema version."""
        names = self._tables.get(table)
        if names is None:
            plan, pending = self._run(f"create or plan the tables of {table.qualified_name}",
                                      lambda cur: self._create_or_plan(cur, table))
            names = names_for(plan.layout, self._schema)
            if pending is not None:  # layouts cached for other versions of the table are stale now
                self._forget(table.id)
                self._pending[table.id] = pending
            record_conflicts(self._conflicts_seen, plan.conflicts)
            self._tables[table], self._conflicts[table] = names, plan.conflicts
        return names

    def _create_or_plan(self, cur, table: TableSchema) -> tuple[evolution.Plan, evolve.PendingDdl | None]:
        wanted = names_for(table, self._schema)
        # the lock every write of the table takes shared (_lock_for_writing): DDL waits for them
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (wanted.rows.qstate,))
        stored, exists = evolve.read_stored(cur, wanted)
        if not exists:
            result = evolution.Plan(layout=table)
        else:
            result = evolution.plan(table, [c for cs in stored.values() for c in cs], evolve.dialect(self.name),
                                    dropped_columns=self._dropped_columns, known=self._known(table))
        names = names_for(result.layout, self._schema)
        statements = evolve.evolution_sql(result, stored, names)
        if statements:
            return result, evolve.PendingDdl(names, stored, statements + self.table_ddl(names), result)
        for stmt in self.table_ddl(names):
            cur.execute(stmt)
        return result, None

    def _apply_pending(self, cur, names: TableNames) -> bool:
        """Make the changes the tables need for `names`, inside the write transaction, before its data."""
        pending = self._pending.get(names.table.id)
        if pending is None or pending.names != names:
            return False
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (names.rows.qstate,))
        if evolve.read_stored(cur, names)[0] != pending.stored:  # another writer changed them meanwhile
            self._forget(names.table.id)
            raise evolution.StalePreparedError(f"the tables of {names.table.qualified_name} changed",
                                               destination=self.name)
        plan = pending.plan
        log.info("%s: evolving the tables of %s: add %s, widen %s, drop %s", self.name, names.table.qualified_name,
                 [c.name for c in plan.add], [c.name for c in plan.widen], plan.drop)
        for stmt in pending.statements:
            cur.execute(stmt)
        return True

    def _forget(self, table_id) -> None:
        """Drop what is cached of a table's layout: it is read from the catalog again."""
        self._tables = {t: n for t, n in self._tables.items() if t.id != table_id}
        self._pending.pop(table_id, None)

    def _known(self, table: TableSchema) -> TableSchema | None:
        """The layout last written for this table id (exact CQL types of columns a batch lacks)."""
        return next((n.table for t, n in reversed(self._tables.items()) if t.id == table.id), None)

    def table_ddl(self, names: TableNames) -> list[str]:
        """The statements creating one Cassandra table's tables and views (subclasses may add to them)."""
        return table_ddl(names)

    def _ensure_stages(self, cur, names: TableNames) -> merge.StageNames:
        stages = merge.stage_names(names)
        staged = self._staged.get(names.table.id)
        if staged != names.table:
            if staged is not None:  # the layout changed: the TEMP tables have the old columns
                for stage in vars(stages).values():
                    cur.execute(f"DROP TABLE IF EXISTS pg_temp.{stage}")
            for stmt in merge.stage_ddl(names, stages):
                cur.execute(stmt)
            self._staged[names.table.id] = names.table
        return stages

    # --- writing -----------------------------------------------------------------------------------

    def prepare(self, table: TableSchema, batch: pa.RecordBatch) -> Prepared:
        """The connection-free half of `write`: type mapping, COPY payloads, rows refused up front."""
        return prepare_batch(names_for(table, self._schema), batch)

    def prepare_from(self, other: object, table: TableSchema) -> Prepared | None:
        """This destination's prepared form of a batch another PostgreSQL destination (TimescaleDB
        included) prepared for the same table: the same COPY payloads, into this one's tables. None
        when `other` is not such a form."""
        if not isinstance(other, Prepared) or other.names.table != table:
            return None
        return replace(other, names=names_for(table, self._schema))

    def write(self, table: TableSchema, batch: pa.RecordBatch, offsets: list[Offset]) -> WriteResult:
        """Write `batch` against the tables as `ensure_table` made them for its schema: it is shaped to
        their layout, and rows writing a column whose type change cannot be applied are rejected."""
        return evolution.write_fitted(
            table, batch, lambda t: (self.ensure_table(t).table, self._conflicts.get(t, [])),
            lambda layout, rows: self.write_prepared(prepare_batch(names_for(layout, self._schema), rows), offsets))

    def write_prepared(self, prepared: Prepared, offsets: list[Offset]) -> WriteResult:
        """COPY a prepared batch into the staging tables, merge it and upsert `offsets`, in ONE transaction."""
        table = prepared.names.table
        names = self.ensure_table(table)
        if names != prepared.names:
            raise evolution.StalePreparedError(f"{table.qualified_name} was prepared for another layout of "
                                               "its tables", destination=self.name)
        staged = prepared.staged
        rejected = dict(staged.problems)
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                evolved = self._apply_pending(cur, names)
                _lock_for_writing(cur, names, staged)
                if not evolve.layout_is_current(cur, names):  # evolved by another writer since
                    self._forget(table.id)
                    raise evolution.StalePreparedError(f"the tables of {table.qualified_name} changed",
                                                       destination=self.name)
                done, kinds = self._write_direct(conn, cur, names, staged)
                rest = {k: v for k, v in staged.stages().items() if k not in done}
                if rest:
                    stages = self._ensure_stages(cur, names)
                    for key, stage in rest.items():
                        target = getattr(stages, _STAGE_TABLE[key])
                        self._copy_isolating(conn, cur, target, stage.materialize(), rejected)
                    self._merge(conn, cur, names, stages, staged, done, kinds)
                self._save_offsets(cur, prepared.events, offsets)
                if self.before_commit is not None:
                    self.before_commit(cur)
        except psycopg.Error as exc:
            self._staged.pop(table.id, None)  # TEMP tables created in the rolled-back transaction are gone
            raise self._fail(exc, f"write {prepared.rows} rows of {table.qualified_name}") from None
        if evolved:
            self._pending.pop(table.id, None)
        return WriteResult(rows=prepared.rows - len(rejected), rejected=sorted(rejected.items()))

    def _write_direct(self, conn, cur, names: TableNames, staged: StagedBatch) -> tuple[set[str], set | None]:
        """COPY the write stages that may take the direct path into their state tables. Returns the
        stages done, and the tombstone kinds the table has (None: not looked up)."""
        stages = staged.stages()
        candidates = [k for k in ("writes", "static") if k in stages and stages[k].direct is not None]
        if not self._direct_path or not candidates or _has_tombstones(stages):
            return set(), None
        flags = cur.execute(merge.kinds_present_sql(names)).fetchone()
        kinds = {k for k, f in zip(("partitions", "rows", "ranges"), flags) if f}
        if kinds:
            return set(), kinds
        done = set()
        for key in candidates:
            if self._copy_direct(conn, cur, names.rows if key == "writes" else names.static, stages[key]):
                done.add(key)
        return done, kinds

    def _copy_direct(self, conn, cur, target: Target, stage: Stage) -> bool:
        direct = stage.direct
        try:
            with conn.transaction():  # a key value the server refuses (jsonb "\u0000") must not abort the write
                exists = _sampled_keys_exist(cur, target, direct.keys)
        except psycopg.Error as exc:
            if not is_bad_data(exc):
                raise
            exists = True  # the staged path isolates the row
        if exists:
            self.paths["probed"] += 1
            return False
        if self.before_direct_copy is not None:
            self.before_direct_copy(cur)
        columns = ", ".join(qi(c) for c in direct.columns)
        try:
            with conn.transaction(), cur.copy(f"COPY {target.qstate} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                for chunk in direct.payload.chunks(0, len(direct.payload)):
                    copy.write(chunk)
        except psycopg.Error as exc:
            if not (isinstance(exc, psycopg.errors.UniqueViolation) or is_bad_data(exc)):
                raise
            self.paths["conflict"] += 1
            return False
        self.paths["direct"] += 1
        return True

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

    def _merge(self, conn, cur, names: TableNames, stages, staged: StagedBatch, done: set[str] = frozenset(),
               kinds: set | None = None) -> None:
        """`done`: the write stages the direct path applied; `kinds`: the tombstone kinds the table
        has, when already looked up (only ever with a batch without tombstones)."""
        present = {_TOMBSTONE_KINDS[k] for k in staged.stages() if k in _TOMBSTONE_KINDS}
        for stmt in merge.keep_tombstones_sql(names, stages):
            if _uses(stmt, stages, present):
                cur.execute(stmt)
        for stmt in merge.apply_tombstones_sql(names, stages, present):
            cur.execute(stmt)
        writes = [(stage, target, stage_table) for key, stage, target, stage_table in (
            ("writes", staged.writes, names.rows, stages.rows), ("static", staged.static, names.static, stages.static))
            if stage is not None and len(stage) and key not in done]
        if writes and kinds is None:
            flags = cur.execute(merge.kinds_present_sql(names)).fetchone()
            kinds = {k for k, f in zip(("partitions", "rows", "ranges"), flags) if f}
        for stage, target, stage_table in writes:
            self.paths["staged"] += 1
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

    def rewrite_offsets(self, offsets: list[Offset], drop: list[str]) -> None:
        """Set `offsets` as they are (backwards too) and delete the partitions in `drop`, in ONE
        transaction: the operator's `ray-cdc offsets reset`, never the pipeline's forward-only path."""
        def work(cur) -> None:
            cur.execute(f"DELETE FROM {self._offsets_table} WHERE destination = %s AND partition_id = ANY(%s)",
                        (self.name, list(drop)))
            cur.executemany(merge.OFFSETS_SET.format(table=self._offsets_table), [
                (self.name, o.partition_id, o.node, o.segment_id, o.position, o.completed) for o in offsets])
        self._run("rewrite offsets", work)

    def committed_offsets(self) -> dict[str, Offset]:
        rows = self._run("read offsets", lambda cur: cur.execute(
            f"SELECT partition_id, node, segment_id, position, completed FROM {self._offsets_table} "
            "WHERE destination = %s", (self.name,)).fetchall())
        return {pid: Offset(node, seg, pos, done) for pid, node, seg, pos, done in rows}


def _has_tombstones(stages: dict) -> bool:
    """A batch with deletes takes the staged merge, never the direct path."""
    return any(k in _TOMBSTONE_KINDS for k in stages)


def _lock_for_writing(cur, names: TableNames, staged: StagedBatch) -> None:
    """Several writers may write one table at once (writer autoscaling), but never beside a batch
    with tombstones: under READ COMMITTED a delete and a concurrent insert of the same key do not
    see each other, and the deleted row would stay. Shared for writes, exclusive with tombstones
    (the transaction's only advisory lock, taken first: it cannot deadlock with another)."""
    exclusive = _has_tombstones(staged.stages())
    lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    cur.execute(f"SELECT {lock}(hashtext(%s))", (names.rows.qstate,))


def _uses(stmt: str, stages: merge.StageNames, present: set[str]) -> bool:
    """Skip the tombstone statements of kinds the batch does not have (their stages are empty)."""
    by_kind = {"partitions": stages.partitions, "rows": stages.row_deletes, "ranges": stages.ranges}
    return any(f"FROM {by_kind[k]} " in stmt for k in present)


def _sampled_keys_exist(cur, target: Target, keys: pa.RecordBatch) -> bool:
    """Does any of `DIRECT_PROBE_ROWS` keys spread over the stage exist in the state table?"""
    n = len(keys)
    rows = sorted({round(i * (n - 1) / max(DIRECT_PROBE_ROWS - 1, 1)) for i in range(min(n, DIRECT_PROBE_ROWS))})
    sample = keys.take(pa.array(rows, pa.int64()))
    columns = [column_values(c.type, sample.column(c.name), c.name, RowProblems()) for c in target.keys]
    tuples = [t for t in zip(*columns) if None not in t]  # a refused value: the COPY will tell
    if not tuples:
        return False
    row = "(" + ", ".join(f"%s::{pg_type(c.type)}" for c in target.keys) + ")"
    names = ", ".join(qi(c.name) for c in target.keys)
    probe = " AND ".join(f"s.{qi(c.name)} = k.{qi(c.name)}" for c in target.keys)
    sql = (f"SELECT EXISTS (SELECT 1 FROM (VALUES {', '.join([row] * len(tuples))}) AS k ({names}), "
           f"LATERAL (SELECT 1 FROM {target.qstate} AS s WHERE {probe} LIMIT 1) AS x)")
    return bool(cur.execute(sql, [v for t in tuples for v in t]).fetchone()[0])


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

    def warm(self) -> None:
        """Build the direct path's COPY tuples (deferred to the writer: staging.Direct) before the
        load, while the writer's connection is busy with the set before. Not for a batch with
        tombstones: it takes the staged merge (`_write_direct`)."""
        stages = self.staged.stages()
        if _has_tombstones(stages):
            return
        for stage in stages.values():
            if stage.direct is not None:
                stage.direct.payload  # noqa: B018 - builds and keeps it


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
