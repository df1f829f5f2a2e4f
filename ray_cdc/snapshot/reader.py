"""Reading one token range page by page (the driver's paging) into change sets for the writers.

A `RangeTask` is a range of one table and where to resume inside it (`resume`: tokens already done
past its start). `RangeReader.read(task)` prepares the table's select once, asks for the first page,
and while a page is converted asks for the next one (`execute_async` with the previous page's
`paging_state`), so Cassandra and the conversion overlap.

Change sets (`ray_cdc.commitlog.reader.ChangeSet`, what the writers apply) carry the range's offset:
`segment_id` = the range's start token, `end.offset` = the boundary: tokens up to `start + boundary`
are complete in this and earlier sets. A set is closed once it holds `batch_rows` rows *and* its
boundary moved past the previous set's (a writer skips a set that does not move its offset); the last
set of a range ends at the range's width with `completed`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.reader import ChangeSet
from ray_cdc.schema.model import TableSchema
from ray_cdc.snapshot.errors import SnapshotReadError
from ray_cdc.snapshot.protocol import RawPage, RawRowsHandler, passthrough_rows
from ray_cdc.snapshot.ranges import TokenRange
from ray_cdc.snapshot.rows import RowConverter

log = logging.getLogger(__name__)

CONSISTENCY_LEVELS = ("ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE", "SERIAL",
                      "LOCAL_SERIAL")


@dataclass(frozen=True)
class RangeTask:
    table: str  # keyspace.table
    range: TokenRange
    resume: int = 0  # tokens past range.start already applied everywhere this task feeds
    destinations: tuple[str, ...] | None = None  # None: every destination

    @property
    def partition_id(self) -> str:
        from ray_cdc.snapshot.progress import snapshot_node

        return f"{snapshot_node(self.table)}/{self.range.start}"


@dataclass(frozen=True)
class CassandraSource:
    """How reader actors connect (built inside each actor: a session never travels)."""

    contact_points: tuple[str, ...]
    port: int = 9042
    protocol_version: int | None = None  # None: negotiated (falling back to 4, then 3, as 2.1 needs)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    consistency: str = "LOCAL_QUORUM"
    fetch_size: int = 5000
    request_timeout: float = 60.0
    connect_timeout: float = 10.0

    def connect(self, *, raw: bool = True):
        """(cluster, session); with `raw`, result rows arrive as raw pages (`protocol.RawRowsHandler`)."""
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

        auth = None
        if self.username:
            from cassandra.auth import PlainTextAuthProvider

            auth = PlainTextAuthProvider(self.username, self.password or "")
        versions = [self.protocol_version] if self.protocol_version else [None, 4, 3]
        last = None
        for version in versions:
            profile = ExecutionProfile(load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
                                       request_timeout=self.request_timeout,
                                       **({"row_factory": passthrough_rows} if raw else {}))
            kwargs = {"port": self.port, "connect_timeout": self.connect_timeout, "auth_provider": auth,
                      "execution_profiles": {EXEC_PROFILE_DEFAULT: profile}}
            if version:
                kwargs["protocol_version"] = version
            cluster = Cluster(list(self.contact_points), **kwargs)
            try:
                session = cluster.connect()
            except Exception as exc:  # noqa: BLE001 - classified below into one typed error
                cluster.shutdown()
                last = exc
                continue
            if raw:
                session.client_protocol_handler = RawRowsHandler
            return cluster, session
        where = ", ".join(f"{h}:{self.port}" for h in self.contact_points)
        text = f"{type(last).__name__}: {last}"
        if self.password:
            text = text.replace(self.password, "***")
        raise SnapshotReadError(f"cannot connect to Cassandra at {where}: {text}", table="-")


def _consistency(name: str) -> int:
    from cassandra import ConsistencyLevel

    try:
        return getattr(ConsistencyLevel, name.upper())
    except AttributeError:
        raise SnapshotReadError(f"unknown consistency level {name!r} (one of {', '.join(CONSISTENCY_LEVELS)})",
                                table="-") from None


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class RangeReaderFactory:
    """Builds a RangeReader inside a reader actor (its own session, schemas shipped as values)."""

    source: CassandraSource
    tables: dict

    def __call__(self) -> RangeReader:
        _, session = self.source.connect()
        return RangeReader(session, self.tables, consistency=self.source.consistency,
                           fetch_size=self.source.fetch_size)


class RangeReader:
    """Reads ranges of the tables it is given through one session (see the module doc)."""

    def __init__(self, session, tables: dict[str, TableSchema], *, consistency: str = "LOCAL_QUORUM",
                 fetch_size: int = 5000, clock: Callable[[], int] = _now_us):
        self._session = session
        self._tables = tables
        self._consistency = _consistency(consistency)
        self._fetch_size = fetch_size
        self._clock = clock
        self._prepared: dict[str, tuple] = {}
        self.rows_read = 0  # source rows, all ranges (progress)
        self.tokens_done = 0  # tokens past the current task's start (progress)

    def _statement(self, name: str):
        entry = self._prepared.get(name)
        if entry is None:
            table = self._tables[name]
            converter = RowConverter(table)
            statement = self._session.prepare(converter.query.cql)
            statement.consistency_level = self._consistency
            statement.fetch_size = self._fetch_size
            entry = self._prepared[name] = (table, converter, statement)
        return entry

    def read(self, task: RangeTask, *, batch_rows: int = 65536) -> Iterator[ChangeSet]:
        table, converter, statement = self._statement(task.table)
        r = task.range
        bound = statement.bind((r.start + task.resume, r.end))
        read_id = -(secrets.randbits(62) + 1)  # this read's rows: a token no other batch can have
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        emitted = boundary = self.tokens_done = task.resume
        sent = self._clock()  # R of the page: taken before the request leaves (rows.py)
        future = self._request(bound, None)
        while True:
            page, state = self._page(future, task)
            if state is not None:  # the next page is read while this one is converted
                next_sent = self._clock()
                future = self._request(bound, state)
            batch = converter.convert(page, read_us=sent, range_start=r.start, read_id=read_id)
            self.rows_read += page.rows
            if batch.num_rows:
                pending.append(batch)
                pending_rows += batch.num_rows
            if state is None:
                self.tokens_done = r.width
                yield self._set(table, r, pending, r.width, completed=True)
                return
            if page.rows:
                last = int.from_bytes(page.columns[0][-1], "big", signed=True)
                # the last partition may go on in the next page: only those before it are complete
                boundary = max(boundary, last - 1 - r.start)
                self.tokens_done = boundary
            if pending_rows >= batch_rows and boundary > emitted:
                yield self._set(table, r, pending, boundary, completed=False)
                emitted, pending, pending_rows = boundary, [], 0
            sent = next_sent

    def _request(self, bound, state):
        return self._session.execute_async(bound, paging_state=state)

    def _page(self, future, task: RangeTask) -> tuple[RawPage, bytes | None]:
        try:
            result = future.result()
        except Exception as exc:
            raise SnapshotReadError(f"{type(exc).__name__}: {exc}", table=task.table,
                                    token_range=str(task.range)) from exc
        pages = result.current_rows
        page = pages[0] if pages else RawPage([], [[]], 0)
        return page, result.paging_state

    @staticmethod
    def _set(table: TableSchema, r: TokenRange, pending: list[pa.RecordBatch], boundary: int,
             *, completed: bool) -> ChangeSet:
        batches = []
        if pending:
            merged = pa.Table.from_batches(pending).combine_chunks()
            batches = [(table, b) for b in merged.to_batches() if b.num_rows]
        return ChangeSet(r.start, CommitLogPosition(r.start, boundary), batches, completed=completed)
