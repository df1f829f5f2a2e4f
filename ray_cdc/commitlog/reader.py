"""Reading commitlog segments into decoded mutations and change records, with schemas by table id.

`CommitLogReader` joins the framing layer (`segment.SegmentReader`: entries and positions), the
mutation decoder, and the schema sources: a registry given up front (DDL file, live cluster) and,
optionally, the schema changes found in the log itself, applied in log order.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from uuid import UUID

from ray_cdc.commitlog.changes import Change, changes_of
from ray_cdc.commitlog.mutation_decoder import MutationDecoder
from ray_cdc.commitlog.mutation_model import Mutation
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.segment import FastRun, ReadReport, SegmentReader, parse_segment_name
from ray_cdc.errors import MutationDecodeError, UnknownTableError
from ray_cdc.schema.from_log import LogSchemaTracker
from ray_cdc.schema.model import TableSchema
from ray_cdc.schema.registry import SchemaRegistry
from ray_cdc.schema.system_schema import KNOWN_SYSTEM_TABLES, system_table_id

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

# Tables of Cassandra's own keyspaces (2.1–5.0): their mutations are expected in every segment and
# are skipped knowingly (counted), unlike an unknown user table, which is an error.
_SYSTEM_TABLES = {
    "system": (
        "local", "peers", "peers_v2", "peer_events", "peer_events_v2", "batches", "batchlog", "paxos",
        "paxos_repair_history", "built_indexes", "IndexInfo", "size_estimates", "table_estimates",
        "compaction_history", "sstable_activity", "sstable_activity_v2", "available_ranges",
        "available_ranges_v2", "transferred_ranges", "transferred_ranges_v2", "view_builds_in_progress",
        "built_views", "prepared_statements", "repairs", "top_partitions", "hints", "range_xfers",
        "schema_keyspaces", "schema_columnfamilies", "schema_columns", "schema_triggers",
        "schema_usertypes", "schema_functions", "schema_aggregates", "views_builds_in_progress",
    ),
    "system_auth": (
        "roles", "role_members", "role_permissions", "resource_role_permissons_index",
        "network_permissions", "cidr_groups", "cidr_permissions", "identity_to_role", "users",
        "credentials", "permissions",
    ),
    "system_distributed": ("repair_history", "parent_repair_history", "view_build_status", "partition_denylist"),
    "system_traces": ("sessions", "events"),
}
SYSTEM_TABLE_IDS: frozenset[UUID] = frozenset(
    system_table_id(ks, t) for ks, tables in _SYSTEM_TABLES.items() for t in tables
)
_SYSTEM_KEYSPACES = frozenset(("system_schema", *_SYSTEM_TABLES))
_MESSAGING_V13 = 8  # descriptor version whose local deletion times are unsigned (format doc §12.3)


@dataclass(frozen=True, slots=True)
class DecodedMutation:
    position: CommitLogPosition
    mutation: Mutation
    unsigned_ldt: bool = False  # local deletion times are unsigned (messaging 13)


@dataclass
class ChangeSet:
    """Every table's batches for one contiguous range of a segment's entries, up to `end`."""

    segment_id: int
    end: CommitLogPosition  # the last entry covered: the offset to record once the set is applied
    batches: list  # [(TableSchema, pa.RecordBatch)]
    completed: bool = False  # the segment is done: its _cdc.idx said COMPLETED and all was read

    @property
    def rows(self) -> int:
        return sum(batch.num_rows for _, batch in self.batches)


@dataclass
class SegmentSummary:
    path: str
    report: ReadReport | None = None
    mutations: int = 0
    system_mutations: int = 0
    schema_changes: list[str] = field(default_factory=list)
    unknown_tables: Counter = field(default_factory=Counter)
    undecodable: int = 0
    fast_mutations: int = 0  # of `mutations`, those the compiled kernel decoded (arrow_batches)


class CommitLogReader:
    """Decodes segments in order with schemas by table id.

    unknown_tables: "raise" (default) stops with UnknownTableError naming the table id; "skip"
    counts the mutation in the summary instead — never a silent drop.
    """

    def __init__(
        self,
        registry: SchemaRegistry | None = None,
        *,
        keystore=None,
        schema_from_log: bool = False,
        unknown_tables: Literal["raise", "skip"] = "raise",
        on_error: Literal["raise", "skip"] = "raise",
        include_system: bool = False,
    ):
        self.registry = registry if registry is not None else SchemaRegistry()
        self._tracker = LogSchemaTracker(self.registry) if schema_from_log else None
        self._keystore = keystore
        self._unknown_tables = unknown_tables
        self._on_error = on_error
        self._include_system = include_system
        self._at = 0  # the time (µs) the schema lookups are made at
        self._decoder = MutationDecoder(self._schema_for, cache=True)
        self._decoder_at = self._at
        self.summaries: list[SegmentSummary] = []
        self._legacy_reader = None

    def _legacy(self, path: str):
        """The reader of Cassandra 2.1/2.2 segments (descriptor v4/v5) when `path` is one, else None;
        it shares this reader's schemas, error modes and summaries."""
        from ray_cdc.commitlog.legacy_reader import LegacyCommitLogReader, is_legacy_segment

        if not is_legacy_segment(path):
            return None
        if self._legacy_reader is None:
            self._legacy_reader = LegacyCommitLogReader(self.registry, unknown_tables=self._unknown_tables,
                                                        on_error=self._on_error)
            self._legacy_reader.summaries = self.summaries
        return self._legacy_reader

    def _schema_for(self, table_id: UUID) -> TableSchema | None:
        table = KNOWN_SYSTEM_TABLES.get(table_id)
        return table if table is not None else self.registry.get(table_id, self._at)

    # --- public API --------------------------------------------------------------------------------

    def mutations(self, path: str | Path, *, start: CommitLogPosition | None = None,
                  limit: int | None = None) -> Iterator[DecodedMutation]:
        """The decoded mutations of one segment, in log order, after `start`, up to `limit`."""
        path = str(path)
        if (legacy := self._legacy(path)) is not None:
            yield from islice(legacy.mutations(path, start=start), limit)
            return
        summary, reader = self._open_segment(path, start, limit)
        unsigned_ldt = reader.header.version >= _MESSAGING_V13
        for entry in reader.entries():
            mutation = self._decode(entry, path, summary)
            if mutation is None:
                continue
            if self._is_system(mutation, summary):
                continue
            summary.mutations += 1
            yield DecodedMutation(entry.position, mutation, unsigned_ldt)

    def arrow_batches(self, paths: Iterable[str | Path], *, start: CommitLogPosition | None = None,
                      max_rows: int = 65536, max_bytes: int = 16 << 20
                      ) -> Iterator[tuple[TableSchema, pa.RecordBatch]]:
        """Per-table Arrow record batches of every segment, in segment-id order (the layout of
        `arrow_batches.batch_schema`); the same batches, in the same order, as
        `arrow_batches.arrow_batches(self.mutations(path) for each path)`.

        Each section goes to the compiled kernel first (`_fastpath`, when built and not disabled by
        `RAY_CDC_PURE_PYTHON=1`), which checks and decodes runs of entries in C; the mutations it declines (schema mutations, tables it has no
        plan for yet, partition/range deletions, static rows, collections, counters, bad input)
        take the Python decoder, with every error, skip and summary rule of `mutations()`.
        """
        from ray_cdc.commitlog.arrow_batches import ArrowBatcher, fastpath

        fp = fastpath()
        batcher = ArrowBatcher(max_rows=max_rows, max_bytes=max_bytes)
        kernel = fp.Kernel(max_rows, max_bytes) if fp is not None else None
        for path in sort_segments(paths):
            segment_id = parse_segment_name(str(path))[1]
            if start is not None and segment_id < start.segment_id:
                continue
            seg_start = start if start is not None and segment_id == start.segment_id else None
            yield from self._segment_batches(str(path), seg_start, batcher, kernel, fp)
        yield from batcher.flush()

    def change_sets(self, path: str | Path, *, start: CommitLogPosition | None = None,
                    max_rows: int = 65536, max_bytes: int = 16 << 20) -> Iterator[ChangeSet]:
        """One segment as a sequence of ChangeSets: every table's batches for a contiguous range of
        entries, closed at an entry boundary when some table's batch is full, and at the end.

        A consumer that applies a whole set (all its batches) can record `end` as its offset: no
        change at or before `end` is left in a later set. The last set may have no batches (its
        entries were system mutations, or nothing followed `start`): it still carries the end
        position and whether the segment is `completed`.
        """
        from ray_cdc.commitlog.arrow_batches import ArrowBatcher, fastpath

        if (legacy := self._legacy(str(path))) is not None:
            yield from legacy.change_sets(path, start=start, max_rows=max_rows, max_bytes=max_bytes)
            return
        fp = fastpath()
        batcher = ArrowBatcher(max_rows=max_rows, max_bytes=max_bytes)
        kernel = fp.Kernel(max_rows, max_bytes) if fp is not None else None
        segment_id = parse_segment_name(str(path))[1]
        steps = self._segment_steps(str(path), start, batcher, kernel, fp)
        yield from change_sets_of(steps, segment_id, start, batcher, lambda: self.summaries[-1].report)

    def _segment_batches(self, path: str, start, batcher, kernel, fp):
        for _, full in self._segment_steps(path, start, batcher, kernel, fp):
            yield from full

    def _segment_steps(self, path: str, start, batcher, kernel, fp):
        """After each entry of a segment, or each run of entries the kernel took: the position of
        the last one, and the batches that became full while adding it (a kernel run ends with the
        entry that fills a batch; the Python decoder takes the mutations the kernel declines)."""
        if (legacy := self._legacy(path)) is not None:
            for position, decoded in legacy.steps(path, start):
                yield position, (list(batcher.add(decoded)) if decoded is not None else [])
            return
        summary, reader = self._open_segment(path, start, None)
        unsigned_ldt = reader.header.version >= _MESSAGING_V13
        max_rows, max_bytes = batcher.max_rows, batcher.max_bytes
        fast = None
        if kernel is not None:
            self._check_plans(kernel, batcher)
            fast = kernel.run
        for item in reader.entries(fast):
            if item.__class__ is FastRun:
                summary.mutations += item.count
                summary.fast_mutations += item.count
                full = []
                if item.full:
                    full = [(b.table, b.finish()) for b in kernel.touched()
                            if len(b) >= max_rows or b.nbytes >= max_bytes]
                yield item.position, full
                continue
            yield item.position, list(self._python_path(item, path, summary, batcher, kernel, fp, unsigned_ldt))

    def _python_path(self, entry, path, summary, batcher, kernel, fp, unsigned_ldt):
        mutation = self._decode(entry, path, summary)
        if mutation is None:
            return
        at = self._at
        if self._is_system(mutation, summary):
            if kernel is not None and (self._at != at or LogSchemaTracker.is_schema_mutation(mutation)):
                self._check_plans(kernel, batcher)
            return
        summary.mutations += 1
        yield from batcher.add(DecodedMutation(entry.position, mutation, unsigned_ldt))
        if kernel is not None:
            self._learn_plans(kernel, batcher, mutation, fp)

    def changes(self, paths: Iterable[str | Path], *, start: CommitLogPosition | None = None) -> Iterator[Change]:
        """Change records of every segment, in segment-id order."""
        for path in sort_segments(paths):
            seg_start = start if start is not None and parse_segment_name(str(path))[1] == start.segment_id else None
            if start is not None and parse_segment_name(str(path))[1] < start.segment_id:
                continue
            for decoded in self.mutations(path, start=seg_start):
                yield from changes_of(decoded.mutation, decoded.position, unsigned_ldt=decoded.unsigned_ldt)

    # --- internals ---------------------------------------------------------------------------------

    def _open_segment(self, path: str, start, limit) -> tuple[SegmentSummary, SegmentReader]:
        _, segment_id = parse_segment_name(path)
        summary = SegmentSummary(path)
        self.summaries.append(summary)
        self._at = max(self._at, segment_id * 1000)
        self._decoder.invalidate()  # schema lookups are cached per table id until the schema time moves
        self._decoder_at = self._at
        reader = SegmentReader(path, keystore=self._keystore, start=start, limit=limit, on_error=self._on_error)
        summary.report = reader.report
        return summary, reader

    def _plan_table(self, table_id: UUID) -> TableSchema | None:
        """The schema the kernel may decode `table_id` with: the one the Python decoder would use
        now, for user tables only (system tables always take the Python path)."""
        if table_id in SYSTEM_TABLE_IDS or table_id in KNOWN_SYSTEM_TABLES:
            return None
        table = self.registry.get(table_id, self._at)
        if table is None or table.keyspace in _SYSTEM_KEYSPACES:
            return None
        return table

    def _check_plans(self, kernel, batcher) -> None:
        """Drop the kernel plans whose schema is no longer the one in force (registry or time moved)
        or whose builder the batcher has replaced."""
        for raw_id in kernel.plan_ids():
            plan = kernel.plan(raw_id)
            table = self._plan_table(UUID(bytes=raw_id))
            if table is not plan.table or batcher.current(table.id) is not plan.builder:
                kernel.drop_plan(raw_id)

    def _learn_plans(self, kernel, batcher, mutation: Mutation, fp) -> None:
        """After the Python path added a mutation: give the kernel a plan for each of its tables."""
        for update in mutation.updates:
            table = update.table
            raw_id = table.id.bytes
            builder = batcher.current(table.id)
            plan = kernel.plan(raw_id)
            if plan is not None:
                if plan.builder is builder and plan.table is table:
                    continue
                kernel.drop_plan(raw_id)
            if builder is None or builder.table is not table or self._plan_table(table.id) is not table:
                continue
            kernel.set_plan(fp.TablePlan(builder))

    def _decode(self, entry, path: str, summary: SegmentSummary) -> Mutation | None:
        if self._decoder_at != self._at:
            self._decoder.invalidate()
            self._decoder_at = self._at
        try:
            return self._decoder.decode(entry.body, path=path, position=entry.start)
        except UnknownTableError as e:
            if e.table_id in SYSTEM_TABLE_IDS:
                summary.system_mutations += 1
                return None
            if self._unknown_tables == "raise":
                raise
            summary.unknown_tables[str(e.table_id)] += 1
            return None
        except MutationDecodeError:
            mutation = self._decode_with_other_versions(entry, path)
            if mutation is not None:
                return mutation
            if _first_table_id(entry.body) in SYSTEM_TABLE_IDS:
                # a system table of a newer Cassandra with columns unknown here: not user data
                summary.system_mutations += 1
                return None
            if self._on_error == "raise":
                raise
            summary.undecodable += 1
            log.warning("skipped an undecodable mutation at %s:%s", path, entry.start)
            return None

    def _decode_with_other_versions(self, entry, path: str) -> Mutation | None:
        """A schema change may be newer or older than the lookup time: try each known version."""
        saved = self._at
        times = sorted(self.registry.version_times(), reverse=True)
        try:
            for at in times:
                self._at = at
                try:
                    return MutationDecoder(self._schema_for).decode(entry.body, path=path, position=entry.start)
                except (MutationDecodeError, UnknownTableError):
                    continue
            return None
        finally:
            self._at = saved

    def _is_system(self, mutation: Mutation, summary: SegmentSummary) -> bool:
        if self._tracker is not None and LogSchemaTracker.is_schema_mutation(mutation):
            self._decoder.invalidate()
            for table in self._tracker.apply(mutation):
                summary.schema_changes.append(table.qualified_name)
                log.info("schema of %s (id %s) taken from the log", table.qualified_name, table.id)
            self._at = max(self._at, _latest_timestamp(mutation))
        if self._include_system or mutation.keyspace not in ("system_schema", *_SYSTEM_TABLES):
            return False
        summary.system_mutations += 1
        return True


def change_sets_of(steps, segment_id: int, start: CommitLogPosition | None, batcher,
                   report) -> Iterator[ChangeSet]:
    """ChangeSets from a segment's steps ((position, batches that became full) after each entry or
    kernel run): a set closes at the entry that filled a batch, taking every table's open batch; the
    last set (possibly empty) carries the end position and whether the segment is `completed`
    (`report()`: the segment's read report, once the steps are exhausted)."""
    last = start
    closed: ChangeSet | None = None  # held back one step: the segment's last set says `completed`
    for position, full in steps:
        if closed is not None:
            yield closed
            closed = None
        last = position
        if full:  # some table's batch is full: close the set here, at an entry boundary
            closed = ChangeSet(segment_id, position, [*full, *batcher.flush()])
    done = report()
    completed = bool(done.completed and done.end_of_data and not done.problems)
    if closed is not None:
        closed.completed = completed
        yield closed
        return
    end = last if last is not None else CommitLogPosition(segment_id, 0)
    yield ChangeSet(segment_id, end, list(batcher.flush()), completed=completed)


def _first_table_id(body) -> UUID | None:
    """The table id of a mutation's first update (after the 1-byte update count, when < 128)."""
    if len(body) < 17 or body[0] >= 0x80:
        return None
    return UUID(bytes=bytes(body[1:17]))


def _latest_timestamp(mutation: Mutation) -> int:
    latest = 0
    for update in mutation.updates:
        if update.stats is not None:
            latest = max(latest, update.stats.min_timestamp)
        for row in update.unfiltereds:
            if getattr(row, "liveness", None) is not None:
                latest = max(latest, row.liveness.timestamp)
    return latest


def sort_segments(paths: Iterable[str | Path]) -> list[Path]:
    """Segments in segment-id order (the order Cassandra wrote them)."""
    return sorted((Path(p) for p in paths), key=lambda p: parse_segment_name(str(p))[1])
