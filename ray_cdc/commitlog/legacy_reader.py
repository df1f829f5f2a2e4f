"""Entry points for Cassandra 2.1/2.2 segments (descriptor versions 4 and 5), with the outputs of the
3.0+ path: `Change` records, per-table Arrow batches (`arrow_batches.batch_schema`), `ChangeSet`s.

    reader = LegacyCommitLogReader(registry)             # schemas by table id (2.x: cf_id)
    for change in reader.changes(paths): ...
    for table, batch in reader.arrow_batches(paths): ...
    for change_set in reader.change_sets(path, start=position): ...

Framing is `legacy_segment`, parsing `legacy_mutation`, meaning `legacy_rows` (which builds the 3.0
mutation model, so `changes.changes_of` and `arrow_batches.ArrowBatcher` do the rest unchanged).

Tables: Cassandra's own tables (2.1/2.2 `system`, `system_auth`, `system_traces`,
`system_distributed`) are skipped and counted; an unknown user table raises UnknownTableError (the
table id, file and entry position) unless `unknown_tables="skip"`, which counts it. A 2.x mutation
names each table's bytes separately, so only that table's part is skipped, never the others'.
A malformed body raises MutationDecodeError, or with `on_error="skip"` is counted and skipped.

`completed` (ChangeSet): 2.1/2.2 have no `_cdc.idx`; the commitlog archiver hands over a segment
only once it is closed, so an archived segment read to its end without damage is completed
(`archived=False` for segments still being written, e.g. a live commitlog directory).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from ray_cdc.commitlog.changes import Change, changes_of
from ray_cdc.commitlog.legacy_mutation import parse_mutation
from ray_cdc.commitlog.legacy_rows import LegacyShapeError, UnknownColumnError, to_partition_update
from ray_cdc.commitlog.legacy_segment import (
    LegacyReadReport,
    LegacySegmentReader,
    is_legacy_segment,
    legacy_segment_paths,
)
from ray_cdc.commitlog.mutation_model import Mutation
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.segment import parse_segment_name
from ray_cdc.errors import MutationDecodeError, UnknownTableError, ValueCodecError
from ray_cdc.schema.registry import SchemaRegistry
from ray_cdc.schema.system_schema import system_table_id

__all__ = [
    "LegacyCommitLogReader",
    "is_legacy_segment",
    "legacy_arrow_batches",
    "legacy_change_sets",
    "legacy_changes",
]

log = logging.getLogger(__name__)

# Cassandra 2.1/2.2's own tables: ids are name-based (CFMetaData.generateLegacyCfId)
_SYSTEM_TABLES_2X = {
    "system": ("batchlog", "range_xfers", "local", "peers", "peer_events", "hints", "IndexInfo",
               "schema_keyspaces", "schema_columnfamilies", "schema_columns", "schema_triggers",
               "schema_usertypes", "schema_functions", "schema_aggregates", "compactions_in_progress",
               "compaction_history", "paxos", "sstable_activity", "size_estimates", "available_ranges",
               "built_views", "views_builds_in_progress"),
    "system_auth": ("users", "credentials", "permissions", "roles", "role_members", "role_permissions",
                    "resource_role_permissons_index"),
    "system_traces": ("sessions", "events"),
    "system_distributed": ("repair_history", "parent_repair_history"),
}
SYSTEM_TABLE_IDS_2X = frozenset(system_table_id(ks, t) for ks, ts in _SYSTEM_TABLES_2X.items() for t in ts)


@dataclass(frozen=True, slots=True)
class LegacyDecodedMutation:
    """What `ArrowBatcher.add` takes (the shape of reader.DecodedMutation)."""

    position: CommitLogPosition
    mutation: Mutation
    unsigned_ldt: bool = False  # 2.x local deletion times are signed ints


@dataclass
class LegacySegmentSummary:
    path: str
    report: LegacyReadReport | None = None
    mutations: int = 0
    system_mutations: int = 0  # table updates of Cassandra's own tables, skipped
    unknown_tables: Counter = field(default_factory=Counter)
    undecodable: int = 0
    # the fields reader.SegmentSummary also has, so both kinds can share one summaries list
    schema_changes: list = field(default_factory=list)  # 2.x schema changes are not followed from the log
    fast_mutations: int = 0  # no compiled kernel for 2.x


class LegacyCommitLogReader:
    def __init__(self, registry: SchemaRegistry, *, unknown_tables: str = "raise", on_error: str = "raise",
                 archived: bool = True):
        if unknown_tables not in ("raise", "skip") or on_error not in ("raise", "skip"):
            raise ValueError("unknown_tables and on_error are 'raise' or 'skip'")
        self.registry = registry
        self._unknown_tables, self._on_error, self._archived = unknown_tables, on_error, archived
        self.summaries: list[LegacySegmentSummary] = []

    # --- public API -----------------------------------------------------------------------------------

    def mutations(self, path, *, start: CommitLogPosition | None = None) -> Iterator[LegacyDecodedMutation]:
        for _, decoded in self.steps(path, start):
            if decoded is not None:
                yield decoded

    def changes(self, paths, *, start: CommitLogPosition | None = None) -> Iterator[Change]:
        for path in _ordered(paths, start):
            for decoded in self.mutations(path, start=_start_in(path, start)):
                yield from changes_of(decoded.mutation, decoded.position)

    def arrow_batches(self, paths, *, start: CommitLogPosition | None = None, max_rows: int = 65536,
                      max_bytes: int = 16 << 20):
        from ray_cdc.commitlog.arrow_batches import ArrowBatcher

        batcher = ArrowBatcher(max_rows=max_rows, max_bytes=max_bytes)
        for path in _ordered(paths, start):
            for decoded in self.mutations(path, start=_start_in(path, start)):
                yield from batcher.add(decoded)
        yield from batcher.flush()

    def change_sets(self, path, *, start: CommitLogPosition | None = None, max_rows: int = 65536,
                    max_bytes: int = 16 << 20):
        """`CommitLogReader.change_sets` for one legacy segment: every table's batches of a contiguous
        run of entries, closed at an entry boundary when a batch is full and at the end; the last set
        carries the end position (also with no batches) and `completed`."""
        from ray_cdc.commitlog.arrow_batches import ArrowBatcher
        from ray_cdc.commitlog.reader import change_sets_of  # lazy: reader.py dispatches to this module

        batcher = ArrowBatcher(max_rows=max_rows, max_bytes=max_bytes)
        steps = ((position, list(batcher.add(decoded)) if decoded is not None else [])
                 for position, decoded in self.steps(path, start))
        yield from change_sets_of(steps, parse_segment_name(str(path))[1], start, batcher,
                                  lambda: self.summaries[-1].report)

    # --- internals ------------------------------------------------------------------------------------

    def steps(self, path, start=None) -> Iterator[tuple[CommitLogPosition, LegacyDecodedMutation | None]]:
        """Each entry's position, with its decoded mutation (None: nothing of a known user table);
        the hook for CommitLogReader._segment_steps. The segment's summary is appended first."""
        path = str(path)
        segment = LegacySegmentReader(path, start=start, on_error=self._on_error)
        segment.report.completed = True if self._archived else None  # see the module doc
        summary = LegacySegmentSummary(path, segment.report)
        self.summaries.append(summary)
        at = parse_segment_name(path)[1] * 1000  # segment ids are epoch millis: the schema of that time
        for entry in segment.entries():
            summary.report = segment.report
            yield entry.position, self._decode(entry, path, at, summary)
        summary.report = segment.report

    def _decode(self, entry, path: str, at: int, summary) -> LegacyDecodedMutation | None:
        try:
            parsed = parse_mutation(entry.body, path=path, position=entry.start)
            updates = []
            for update in parsed.updates:
                table = self._table(update.cf_id, at, summary, path, entry.start)
                if table is not None:
                    updates.append(self._partition_update(table, parsed.key, update, at))
        except (MutationDecodeError, LegacyShapeError, ValueCodecError) as exc:
            error = exc if isinstance(exc, MutationDecodeError) else MutationDecodeError(
                f"2.x mutation does not fit its schema: {exc}", path=path, position=entry.start)
            if self._on_error == "raise":
                raise error from None
            summary.undecodable += 1
            log.warning("skipped an undecodable mutation: %s", error)
            return None
        if not updates:
            return None
        summary.mutations += 1
        return LegacyDecodedMutation(entry.position, Mutation(updates))

    def _partition_update(self, table, key: bytes, update, at: int):
        """A column the schema lacks was added on the cluster after the schema was loaded: the
        registry loads it again (rate-limited) and the update is decoded with the new schema; a
        column still unknown then stays an UnknownColumnError (undecodable, naming table and column)."""
        try:
            return to_partition_update(table, key, update)
        except UnknownColumnError as exc:
            if not self.registry.reload_for(table.id, exc.column):
                raise
        return to_partition_update(self.registry.get(table.id, at) or table, key, update)

    def _table(self, cf_id: UUID, at: int, summary, path: str, position: int):
        table = self.registry.get(cf_id, at)
        if table is not None:
            return table
        if cf_id in SYSTEM_TABLE_IDS_2X:
            summary.system_mutations += 1
            return None
        if self._unknown_tables == "raise":
            raise UnknownTableError(cf_id, path=path, position=position)
        summary.unknown_tables[str(cf_id)] += 1
        return None


def _ordered(paths, start) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    chosen = legacy_segment_paths(paths)
    if start is not None:
        chosen = [p for p in chosen if parse_segment_name(p)[1] >= start.segment_id]
    return chosen


def _start_in(path, start):
    return start if start is not None and parse_segment_name(path)[1] == start.segment_id else None


# --- module-level shortcuts --------------------------------------------------------------------------


def legacy_changes(paths, registry: SchemaRegistry, start: CommitLogPosition | None = None,
                   **options) -> Iterator[Change]:
    return LegacyCommitLogReader(registry, **options).changes(paths, start=start)


def legacy_arrow_batches(paths, registry: SchemaRegistry, start: CommitLogPosition | None = None, *,
                         max_rows: int = 65536, max_bytes: int = 16 << 20, **options):
    return LegacyCommitLogReader(registry, **options).arrow_batches(paths, start=start, max_rows=max_rows,
                                                                     max_bytes=max_bytes)


def legacy_change_sets(path, registry: SchemaRegistry, start: CommitLogPosition | None = None, *,
                       max_rows: int = 65536, max_bytes: int = 16 << 20, **options):
    return LegacyCommitLogReader(registry, **options).change_sets(path, start=start, max_rows=max_rows,
                                                                  max_bytes=max_bytes)


def legacy_paths(paths: Iterable) -> list[Path]:
    """The 2.1/2.2 segments among `paths` (by file name), in segment-id order."""
    return legacy_segment_paths(paths)
