"""A deterministic workload of real-looking commitlog segments: for `segments generate`, tests,
benchmarks and the demo.

`workload_mutations` draws operations from a seeded mix (inserts, partial updates, collection edits,
TTLs, cell/row/partition/range deletes, static rows, counters, multi-table mutations) and yields
each mutation, built by `MutationBuilder`, with the changes it is meant to produce. Those expected
changes are worked out from the drawn operation itself, not from the built mutation, so a test can
check the whole encode → segment → decode → change-record path against them.

`generate` streams the mutations into segments (one at a time: memory does not grow with `rows`),
with a `_cdc.idx` per segment and the `schema.cql` the reader needs.

The pieces live beside this module: `workload_tables` (the schemas), `workload_values` (random values
per CQL type), `workload_expected` (the expected changes) and `workload_ops` (the operations).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.encryption import EncryptionSpec
from ray_cdc.commitlog.mutation_encoder import encode_mutation
from ray_cdc.commitlog.mutation_model import Mutation
from ray_cdc.commitlog.segment_writer import SegmentWriter
from ray_cdc.commitlog.workload_expected import ExpectedChange, describe_change
from ray_cdc.commitlog.workload_ops import (
    BASE_TIMESTAMP,
    OP_NEEDS,
    SINGLE_TABLE_OPS,
    Draw,
    Planned,
    op_multi_table,
    table_pairs,
)
from ray_cdc.commitlog.workload_tables import DEMO_KEYSPACE, demo_tables, wide_table
from ray_cdc.schema.model import TableSchema

# BASE_TIMESTAMP and DEMO_KEYSPACE are defined beside this module; listed so callers keep reading
# them from here.
__all__ = [
    "BASE_TIMESTAMP",
    "DEFAULT_MIX",
    "DEMO_KEYSPACE",
    "ExpectedChange",
    "GenerateSummary",
    "demo_tables",
    "describe_change",
    "generate",
    "wide_table",
    "workload_mutations",
]

BASE_SEGMENT_ID = 1_700_000_000_000  # ids look like epoch milliseconds, as Cassandra's do


# --- the operation mix --------------------------------------------------------------------------------

#: relative weights of the operations (the default mix of `generate`)
DEFAULT_MIX: dict[str, float] = {
    "insert": 28, "update": 14, "ttl_insert": 5, "cell_delete": 4, "row_delete": 4, "partition_delete": 2,
    "range_delete": 3, "static": 5, "counter": 8, "multi_table": 5,
    "collection_overwrite": 6, "collection_append": 6, "collection_put": 4, "collection_remove": 4,
    "collection_delete": 2,
}


class _Plan:
    """The operations of a mix that the tables allow, each with the tables it can run on."""

    def __init__(self, tables: list[TableSchema], mix: Mapping[str, float]):
        unknown = set(mix) - set(SINGLE_TABLE_OPS) - {"multi_table"}
        if unknown:
            raise ValueError(f"unknown workload operations {sorted(unknown)}; known: {sorted(DEFAULT_MIX)}")
        self.choices: list[tuple[str, list]] = []
        weights = []
        for op, weight in mix.items():
            if weight <= 0:
                continue
            if op == "multi_table":
                targets = table_pairs(tables)
            else:
                targets = [t for t in tables if OP_NEEDS[op](t)]
            if targets:
                self.choices.append((op, targets))
                weights.append(weight)
        if not self.choices:
            raise ValueError("no operation of the mix applies to these tables")
        self.cumulative = list(itertools.accumulate(weights))

    def draw(self, d: Draw, single_change: bool = False) -> Planned:
        while True:
            op, targets = d.rng.choices(self.choices, cum_weights=self.cumulative)[0]
            if op == "multi_table":
                if single_change:
                    continue
                return op_multi_table(d, *d.rng.choice(targets))
            return SINGLE_TABLE_OPS[op](d, d.rng.choice(targets))


def workload_mutations(tables: list[TableSchema] | None = None, rows: int = 1000, seed: int = 0, *,
                       mix: Mapping[str, float] | None = None,
                       descriptor_version: int = 7) -> Iterator[tuple[Mutation, list[ExpectedChange]]]:
    """`rows` row changes as mutations, each with the changes it should decode into, in order."""
    tables = demo_tables() if tables is None else list(tables)
    plan = _Plan(tables, DEFAULT_MIX if mix is None else mix)
    d = Draw(seed)
    unsigned_ldt = descriptor_version >= 8  # messaging 13 (Cassandra 5.0)
    produced = 0
    while produced < rows:
        planned = plan.draw(d, single_change=rows - produced < 2)
        builders: list[MutationBuilder] = []
        for table, pk, apply in planned.writes:
            builder = MutationBuilder(table, pk, unsigned_ldt=unsigned_ldt)
            apply(builder)
            builders.append(builder)
        produced += len(planned.expected)
        yield builders[0].mutation(*builders[1:]), planned.expected


# --- segments -----------------------------------------------------------------------------------------

_COMPRESSORS = {"lz4": "LZ4Compressor", "snappy": "SnappyCompressor", "deflate": "DeflateCompressor",
                "zstd": "ZstdCompressor", "noop": "NoopCompressor"}
_ENTRY_OVERHEAD = 12  # size, crc1, crc2 (format doc §6)
_MARKER = 8


def compressor_class(name: str | None) -> str | None:
    """'lz4', 'LZ4', 'LZ4Compressor' or the qualified class name -> what the writer takes."""
    if name is None:
        return None
    short = name.rsplit(".", 1)[-1]
    key = short.lower().removesuffix("compressor")
    if key not in _COMPRESSORS:
        raise ValueError(f"unknown commitlog compression {name!r}; known: {sorted(_COMPRESSORS)}")
    return _COMPRESSORS[key]


@dataclass
class GenerateSummary:
    out_dir: Path
    schema_path: Path
    segments: list[Path]
    cdc_indexes: list[Path]
    mutations: int = 0
    row_changes: int = 0
    bytes_written: int = 0  # size of the segment files on disk (plain ones are preallocated)
    data_bytes: int = 0  # logical bytes up to the end of the last section, summed over the segments
    descriptor_version: int = 7
    compression: str = "none"
    encrypted: bool = False
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> operation -> changes


class _SegmentSeries:
    """Segments of increasing ids, each closed (with a COMPLETED `_cdc.idx`) when the next entry
    would not fit in `segment_size`, as Cassandra moves on to a new segment."""

    def __init__(self, out_dir: Path, *, version: int, compression: str | None,
                 encryption: EncryptionSpec | None, segment_size: int, base_id: int, preallocate: bool):
        self.out_dir, self.version, self.segment_size = out_dir, version, segment_size
        self.compression, self.encryption = compression, encryption
        # Cassandra's memory-mapped segments are files of the full segment size from the start
        self.preallocate = preallocate and compression is None and encryption is None
        self.next_id = base_id
        self.paths: list[Path] = []
        self.writer: SegmentWriter | None = None
        self.end = 0
        self.data_bytes = 0

    def append(self, body: bytes) -> None:
        # room for the entry, a new section's marker, and the closing empty section plus zero marker
        need = len(body) + _ENTRY_OVERHEAD + 3 * _MARKER
        if self.writer is not None and self.end + need > self.segment_size:
            self.close()
        if self.writer is None:
            self._open()
            if self.end + need > self.segment_size:
                raise ValueError(f"a mutation of {len(body)} bytes does not fit a {self.segment_size}-byte segment")
        self.end = self.writer.append(body).offset

    def _open(self) -> None:
        self.writer = SegmentWriter(self.out_dir, segment_id=self.next_id, version=self.version,
                                    compression=self.compression, encryption=self.encryption,
                                    preallocate=self.segment_size if self.preallocate else None)
        self.next_id += 1
        self.paths.append(self.writer.path)
        self.end = self.writer.header_size + _MARKER

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer.write_cdc_index(completed=True)
            self.data_bytes += self.writer.durable_offset
            self.writer = None


def generate(out_dir, *, rows: int, tables: list[TableSchema] | None = None, seed: int = 0,
             descriptor_version: int = 7, compression: str | None = None,
             encryption: EncryptionSpec | None = None, segment_size: int = 32 * 1024 * 1024,
             mix: Mapping[str, float] | None = None, base_segment_id: int = BASE_SEGMENT_ID,
             preallocate: bool = True) -> GenerateSummary:
    """Write `rows` row changes into segments `CommitLog-<v>-<id>.log` in `out_dir`, with a
    COMPLETED `_cdc.idx` per segment and `schema.cql` (with the table ids) beside them.

    `compression`: lz4, snappy, deflate, zstd or noop (any case; Cassandra's class names work too).
    `preallocate`: plain segments are full-size files, as Cassandra's memory-mapped ones are; turn
    it off to have files only as long as their data (compressed and encrypted ones always are).
    """
    from ray_cdc.commitlog.cdc_index import index_path
    from ray_cdc.schema.cql import schema_to_cql

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = demo_tables() if tables is None else list(tables)
    schema_path = out / "schema.cql"
    schema_path.write_text(schema_to_cql(tables), encoding="utf-8")
    compressor = compressor_class(compression)
    series = _SegmentSeries(out, version=descriptor_version, compression=compressor, encryption=encryption,
                            segment_size=segment_size, base_id=base_segment_id, preallocate=preallocate)
    summary = GenerateSummary(out, schema_path, series.paths, [], descriptor_version=descriptor_version,
                              compression=compressor or "none", encrypted=encryption is not None)
    try:
        for mutation, expected in workload_mutations(tables, rows, seed, mix=mix,
                                                     descriptor_version=descriptor_version):
            series.append(encode_mutation(mutation))
            summary.mutations += 1
            for change in expected:
                per_table = summary.counts.setdefault(change.table, {})
                per_table[change.op] = per_table.get(change.op, 0) + 1
                summary.row_changes += 1
    finally:
        series.close()
    summary.cdc_indexes = [index_path(p) for p in series.paths]
    summary.bytes_written = sum(p.stat().st_size for p in series.paths)
    summary.data_bytes = series.data_bytes
    return summary
