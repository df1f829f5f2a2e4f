"""The workload generator: schemas, determinism, and whole segments decoded back into the changes
each operation was meant to produce (descriptor versions 6, 7, 8; every compressor; encryption)."""

from __future__ import annotations

import os
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from ray_cdc.commitlog import workload
from ray_cdc.commitlog.cdc_index import read_cdc_index
from ray_cdc.commitlog.changes import changes_of
from ray_cdc.commitlog.encryption import EncryptionSpec, Keystore
from ray_cdc.commitlog.mutation_decoder import MutationDecoder
from ray_cdc.commitlog.mutation_encoder import encode_mutation
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.commitlog.segment import SegmentReader
from ray_cdc.schema.cql import parse_cql_schema
from ray_cdc.schema.registry import SchemaRegistry

DECODABLE_MIX = workload.DEFAULT_MIX  # every operation, counters included

EVERY_DECODED_TYPE = {
    "ascii", "text", "blob", "boolean", "tinyint", "smallint", "int", "bigint", "varint", "float", "double",
    "decimal", "counter", "date", "time", "timestamp", "duration", "uuid", "timeuuid", "inet", "list", "set",
    "map", "tuple", "udt", "vector",
}


def _types(t) -> set[str]:
    names = {t.name}
    for p in t.params:
        names |= _types(p)
    return names


def _expected(tables, rows, seed, mix=DECODABLE_MIX, **kw) -> list:
    return [e for _, changes in workload.workload_mutations(tables, rows, seed, mix=mix, **kw) for e in changes]


def _read_back(summary, keystore=None):
    text = summary.schema_path.read_text(encoding="utf-8")
    reader = CommitLogReader(SchemaRegistry(parse_cql_schema(text)), keystore=keystore)
    return list(reader.changes(summary.segments)), reader


def _assert_same_changes(expected, decoded) -> None:
    assert len(decoded) == len(expected)
    for i, (e, d) in enumerate(zip(expected, decoded)):
        want, got = e.describe(), workload.describe_change(d)
        assert got == want, f"change {i} ({e.op} on {e.table}): " + repr(
            {k: (want[k], got[k]) for k in want if want[k] != got[k]})


# --- schemas -------------------------------------------------------------------------------------------


def test_demo_tables_cover_every_type_and_shape():
    tables = {t.name: t for t in workload.demo_tables()}
    used = set()
    for table in tables.values():
        for column in table.columns:
            used |= _types(column.type)
    assert EVERY_DECODED_TYPE <= used
    columns = [c for t in tables.values() for c in t.columns]
    assert any(c.type.name == "udt" and c.type.frozen for c in columns)
    assert any(c.type.name == "udt" and c.is_complex for c in columns)
    assert {n for c in columns if c.is_complex for n in [c.type.name]} == {"list", "set", "map", "udt"}
    assert any(len(t.partition_key) > 1 for t in tables.values())
    assert any(len(t.clustering) > 1 and any(c.reversed for c in t.clustering) for t in tables.values())
    assert any(t.static for t in tables.values())
    assert any(not t.clustering for t in tables.values())
    counter_tables = [t for t in tables.values() if any(c.type.name == "counter" for c in t.columns)]
    assert all(c.type.name == "counter" for t in counter_tables for c in t.regular) and counter_tables


def test_varchar_is_declared():
    all_types = next(t for t in workload.demo_tables() if t.name == "all_types")
    assert all_types.column("c_varchar") is not None  # varchar is text under another name


def test_wide_table_has_ten_mixed_columns():
    table = workload.wide_table()
    assert len(table.columns) == 10
    assert len({c.type.name for c in table.columns}) >= 7


def test_schema_cql_reads_back_into_the_same_tables(tmp_path):
    tables = workload.demo_tables() + [workload.wide_table()]
    from ray_cdc.schema.cql import schema_to_cql

    assert parse_cql_schema(schema_to_cql(tables)) == tables


def test_table_ids_are_stable_time_based_uuids():
    first, second = workload.demo_tables(), workload.demo_tables("other_ks")
    assert [t.id for t in first] == [t.id for t in workload.demo_tables()]
    assert all(t.id.version == 1 for t in first)
    assert not {t.id for t in first} & {t.id for t in second}


# --- the mutation stream -------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes():
    def bodies(seed):
        return [encode_mutation(m) for m, _ in workload.workload_mutations(None, 300, seed)]

    assert bodies(3) == bodies(3)
    assert bodies(3) != bodies(4)


def test_row_changes_count_exactly():
    for rows in (1, 2, 7, 250):
        assert len(_expected(None, rows, 1, mix=workload.DEFAULT_MIX)) == rows


def test_every_operation_of_the_mix_occurs():
    ops = Counter(e.op for e in _expected(None, 3000, 5, mix=workload.DEFAULT_MIX))
    assert set(ops) == set(workload.DEFAULT_MIX)


def test_in_memory_round_trip_of_every_mutation():
    tables = workload.demo_tables()
    by_id = {t.id: t for t in tables}
    decoder = MutationDecoder(by_id.get)
    position = CommitLogPosition(1, 1)
    for mutation, expected in workload.workload_mutations(tables, 1500, 11, mix=DECODABLE_MIX):
        decoded = decoder.decode(encode_mutation(mutation))
        assert decoded == mutation
        _assert_same_changes(expected, list(changes_of(decoded, position)))


def test_multi_table_mutations_share_keyspace_and_key():
    seen = 0
    for mutation, expected in workload.workload_mutations(None, 600, 2, mix={"multi_table": 1}):
        assert len(mutation.updates) == 2 and len(expected) == 2
        assert len({u.key for u in mutation.updates}) == 1
        assert len({u.table.keyspace for u in mutation.updates}) == 1
        seen += 1
    assert seen == 300


def test_mix_selects_operations_and_skips_those_a_table_cannot_run():
    ops = {e.op for e in _expected([workload.wide_table()], 500, 1, mix=workload.DEFAULT_MIX)}
    assert ops == {"insert", "update", "ttl_insert", "cell_delete", "row_delete", "partition_delete",
                   "range_delete"}
    assert {e.op for e in _expected(None, 50, 1, mix={"static": 1})} == {"static"}
    with pytest.raises(ValueError, match="unknown workload operations"):
        list(workload.workload_mutations(None, 5, 1, mix={"upsert": 1}))
    with pytest.raises(ValueError, match="no operation"):
        list(workload.workload_mutations([workload.wide_table()], 5, 1, mix={"counter": 1}))


def test_descriptor_v8_uses_the_unsigned_live_sentinel():
    from ray_cdc.commitlog.mutation_model import ComplexColumn

    sentinels = set()
    for mutation, _ in workload.workload_mutations(None, 2000, 1, descriptor_version=8):
        for update in mutation.updates:
            for row in update.unfiltereds:
                for _, data in getattr(row, "columns", ()):
                    if isinstance(data, ComplexColumn) and data.deletion is not None and data.deletion.is_live:
                        sentinels.add(data.deletion.local_deletion_time)
    assert sentinels == {-1}


# --- whole segments ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [6, 7, 8])
@pytest.mark.parametrize("compression", [None, "lz4", "snappy", "deflate", "zstd"])
def test_generated_segments_decode_into_the_expected_changes(tmp_path, version, compression):
    tables = workload.demo_tables()
    summary = workload.generate(tmp_path, rows=400, tables=tables, seed=version, descriptor_version=version,
                                compression=compression, segment_size=48 * 1024, mix=DECODABLE_MIX)
    expected = _expected(tables, 400, version, descriptor_version=version)
    decoded, reader = _read_back(summary)
    _assert_same_changes(expected, decoded)
    assert summary.row_changes == 400
    assert summary.mutations == sum(s.mutations for s in reader.summaries)
    assert len(summary.segments) > 1
    assert all(s.report is None or not s.report.problems for s in reader.summaries)


def test_counts_per_table_and_operation(tmp_path):
    summary = workload.generate(tmp_path, rows=500, seed=9, mix=DECODABLE_MIX, segment_size=1 << 20)
    expected = Counter((e.table, e.op) for e in _expected(None, 500, 9))
    assert {(t, op): n for t, ops in summary.counts.items() for op, n in ops.items()} == dict(expected)
    assert sum(sum(ops.values()) for ops in summary.counts.values()) == summary.row_changes == 500


def test_encrypted_segments(tmp_path):
    key = os.urandom(16)
    spec = EncryptionSpec(key=key, key_alias="testing:1")
    summary = workload.generate(tmp_path, rows=300, seed=4, encryption=spec, segment_size=64 * 1024,
                                mix=DECODABLE_MIX)
    assert summary.encrypted and len(summary.segments) > 1
    decoded, _ = _read_back(summary, keystore=Keystore.from_keys({"testing:1": key}))
    _assert_same_changes(_expected(None, 300, 4), decoded)


def test_segments_roll_over_with_increasing_ids_and_completed_indexes(tmp_path):
    size = 32 * 1024
    summary = workload.generate(tmp_path, rows=600, seed=1, segment_size=size, base_segment_id=1_000)
    names = [p.name for p in summary.segments]
    assert names == [f"CommitLog-7-{1_000 + i}.log" for i in range(len(names))] and len(names) > 3
    assert all(p.stat().st_size == size for p in summary.segments)  # preallocated like mmap segments
    assert summary.bytes_written == size * len(names)
    assert summary.data_bytes <= summary.bytes_written
    for segment, index_path in zip(summary.segments, summary.cdc_indexes):
        assert index_path == segment.with_name(segment.name[:-4] + "_cdc.idx")
        index = read_cdc_index(index_path)
        assert index.completed and index.offset <= size
        entries = list(SegmentReader(segment).entries())
        assert entries and entries[-1].position.offset <= index.offset
    assert (tmp_path / "schema.cql").is_file() and summary.schema_path == tmp_path / "schema.cql"


def test_without_preallocation_files_hold_only_their_data(tmp_path):
    summary = workload.generate(tmp_path, rows=200, seed=1, segment_size=1 << 20, preallocate=False)
    assert summary.bytes_written == summary.data_bytes + 8  # + the zeroed marker after the last section


def test_compressed_segments_stay_within_the_segment_size(tmp_path):
    size = 40 * 1024
    summary = workload.generate(tmp_path, rows=500, seed=2, compression="zstd", segment_size=size)
    assert len(summary.segments) > 1
    for segment in summary.segments:
        entries = list(SegmentReader(segment).entries())
        assert entries[-1].position.offset <= size  # logical positions, as Cassandra counts them


@pytest.mark.parametrize("name", ["lz4", "LZ4", "LZ4Compressor", "org.apache.cassandra.io.compress.LZ4Compressor"])
def test_compression_names(name):
    assert workload.compressor_class(name) == "LZ4Compressor"


def test_unknown_compression_is_refused():
    with pytest.raises(ValueError, match="unknown commitlog compression"):
        workload.compressor_class("brotli")


def test_memory_does_not_grow_with_rows(tmp_path):
    def peak(rows: int, where: Path) -> int:
        tracemalloc.start()
        workload.generate(where, rows=rows, tables=[workload.wide_table()], seed=1, segment_size=256 * 1024,
                          preallocate=False)
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return high

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    small, large = peak(3000, tmp_path / "a"), peak(12000, tmp_path / "b")
    assert large < small * 1.3 + (256 << 10)


def test_counter_workload_decodes_to_running_totals(tmp_path):
    summary = workload.generate(tmp_path, rows=100, seed=1, mix={"counter": 1})
    decoded, _ = _read_back(summary)
    expected = _expected(None, 100, 1, mix={"counter": 1})
    _assert_same_changes(expected, decoded)
    # each cell holds the shard's new total, so a counter written again reads its running sum
    writes = Counter((repr(e.partition_key), repr(e.clustering), n) for e in expected for n in e.cells)
    assert max(writes.values()) > 1
