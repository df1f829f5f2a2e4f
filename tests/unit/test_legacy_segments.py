"""Legacy (Cassandra 2.1/2.2, descriptor versions 4 and 5) segments, from real bytes.

`data/legacy_commitlog/CommitLog-4-1795695877709.log.gz` is the start of a segment the Cassandra
2.1.0 test node archived (whole sync sections, then a zeroed marker); `schema.cql` beside it lists
the statements it holds and the table ids. Damaged variants are made from it here; v5 (2.2)
segments are the same real mutation bodies framed the 2.2 way (plain, and LZ4-compressed sections).
"""

from __future__ import annotations

import gzip
import shutil
import struct
import zlib
from datetime import datetime, timezone
from pathlib import Path
from uuid import UUID

import pytest

from ray_cdc.commitlog.codecs import LZ4
from ray_cdc.commitlog.legacy_reader import (
    LegacyCommitLogReader,
    is_legacy_segment,
    legacy_arrow_batches,
    legacy_change_sets,
    legacy_changes,
)
from ray_cdc.commitlog.legacy_segment import LegacySegmentReader
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.primitives import crc_ints
from ray_cdc.errors import (
    EntryChecksumError,
    MutationDecodeError,
    SegmentHeaderError,
    SyncMarkerError,
    TruncatedSegmentError,
    UnknownTableError,
)
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry

DATA = Path(__file__).parent / "data" / "legacy_commitlog"
SEGMENT_ID = 1795695877709
NAME = f"CommitLog-4-{SEGMENT_ID}.log"
T2_ID = UUID("5f809550-e994-11f1-8064-4d68ff3ad20d")
# (entry start, entry end) of the user mutations, one per sync section (batch commitlog mode)
INSERT = (121587, 122027)
BATCH_END = 123755


@pytest.fixture(scope="module")
def raw() -> bytes:
    return gzip.decompress((DATA / f"{NAME}.gz").read_bytes())


@pytest.fixture
def segment(tmp_path, raw) -> Path:
    path = tmp_path / NAME
    path.write_bytes(raw)
    return path


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry(load_cql_schema(DATA / "schema.cql"))


def _changes(path, registry, **options):
    return list(LegacyCommitLogReader(registry, **options).changes([path]))


def _damaged(path: Path, raw: bytes, offset: int, value: bytes) -> Path:
    data = bytearray(raw)
    data[offset:offset + len(value)] = value
    path.write_bytes(bytes(data))
    return path


# --- decoding ---------------------------------------------------------------------------------------


def test_every_statement_decodes_to_its_change(segment, registry):
    changes = _changes(segment, registry)
    summary = [(c.table.name, c.kind, c.position.offset, tuple(c.partition_key.values()), tuple(c.clustering.values()),
                c.static, tuple(sorted(c.cells))) for c in changes]
    assert summary == [
        ("t", "row", 122027, (1,), (), True, ("s",)),
        ("t", "row", 122027, (1,), ("x",), False, ("a", "b", "l", "m", "st")),
        ("t", "row", 122607, (1,), ("x",), False, ("a",)),
        ("t", "row", 122739, (1,), ("y",), False, ("a",)),
        ("t", "row", 122912, (1,), ("x",), False, ("l", "m", "st")),
        ("t", "row", 123011, (1,), ("x",), False, ("m",)),
        ("t", "row", 123105, (1,), ("x",), False, ("b",)),
        ("t", "row", 123196, (1,), ("y",), False, ()),
        ("t", "row", 123295, (1,), ("x",), False, ("m",)),
        ("t", "partition_delete", 123362, (2,), (), False, ()),
        ("t2", "row", 123502, (1, "a"), (1, 1), False, ("v",)),
        ("t2", "range_delete", 123606, (1, "a"), (1,), False, ()),
        ("t", "row", BATCH_END, (3,), ("z",), False, ("a",)),
        ("t", "row", BATCH_END, (3,), ("z",), False, ("b",)),
    ]
    insert = changes[1]
    assert insert.timestamp is not None and insert.timestamp == insert.cells["a"].timestamp  # the row marker
    assert insert.cells["m"].value == {"k1": 1} and insert.cells["m"].replaced  # INSERT overwrites: t - 1
    assert insert.cells["st"].value == frozenset({5, 6}) and insert.cells["l"].value == ["p", "q"]
    assert changes[2].timestamp is None and changes[2].cells["a"].value == 11  # UPDATE: no row marker
    ttl = changes[3]
    assert ttl.ttl == 3600 and ttl.cells["a"].ttl == 3600
    assert ttl.expires_at == ttl.cells["a"].expires_at and ttl.expires_at.year == 2026
    assert changes[5].cells["m"].removed == ["k1"] and changes[5].cells["m"].value is None
    assert changes[6].cells["b"].deleted
    assert changes[7].deleted_at is not None  # DELETE of one CQL row: a row deletion
    assert changes[8].cells["m"].deleted and changes[8].cells["m"].replaced  # DELETE m
    rng = changes[11]
    assert rng.range_start.values == {"c1": 1} and rng.range_start.inclusive
    assert rng.range_end.values == {"c1": 1} and rng.range_end.inclusive
    # a batch writing one row at two timestamps (and one TTL): one change per (timestamp, TTL)
    old, new = changes[12], changes[13]
    assert (old.writetime, old.ttl, old.timestamp) == (1000, 0, 1000)
    assert (new.writetime, new.cells["b"].ttl, new.cells["b"].value, new.timestamp) == (2000, 500, "bb", None)


def test_arrow_batches_have_the_3_0_layout_and_one_row_per_change(segment, registry):
    batches = {t.name: b for t, b in legacy_arrow_batches([segment], registry)}
    t = batches["t"]
    assert t.schema.names[:8] == ["pk", "ck", "s", "a", "b", "m", "st", "l"]
    assert {"_op", "_writetime", "_ttl", "_expires_at", "_segment_id", "_position", "_present", "_range",
            "_cells.m", "_cells.st", "_cells.l"} <= set(t.schema.names)
    assert t.column("_op").to_pylist() == ["update", "insert", "update", "insert", "update", "update", "update",
                                           "delete", "update", "partition_delete", "insert", "update"]
    rows = t.to_pylist()
    assert rows[3]["_ttl"] == 3600 and rows[3]["_expires_at"] == datetime(2026, 11, 26, 13, 24, 50, tzinfo=timezone.utc)
    assert rows[1]["_cells.m"]["replaced_at"] == rows[1]["_writetime"] - 1
    assert [r["_writetime"] for r in rows[-2:]] == [1000, 2000] and rows[-1]["_ttl"] == 500
    assert set(t.column("_segment_id").to_pylist()) == {SEGMENT_ID}
    t2 = batches["t2"].to_pylist()
    assert [r["_op"] for r in t2] == ["insert", "range_delete"]
    assert t2[1]["_range"]["start"] == {"c1": 1, "c2": None} and t2[1]["_range"]["start_size"] == 1


def test_change_sets_close_at_entry_boundaries_and_resume(segment, registry):
    sets = list(legacy_change_sets(segment, registry, max_rows=3))
    ends = [s.end.offset for s in sets]
    assert ends == sorted(ends) and ends[-1] == BATCH_END and len(sets) > 2
    assert [s.completed for s in sets] == [False] * (len(sets) - 1) + [True]
    assert sum(s.rows for s in sets) == 14
    # a segment still being written (a live commitlog directory, not the archive) is never completed
    live = list(LegacyCommitLogReader(registry, archived=False).change_sets(segment))
    assert [s.completed for s in live] == [False] and live[-1].end.offset == BATCH_END
    resumed = list(legacy_change_sets(segment, registry, start=CommitLogPosition(SEGMENT_ID, 123362)))
    assert sum(s.rows for s in resumed) == 4 and resumed[-1].end.offset == BATCH_END  # t2 x2, the batch x2
    after_all = list(legacy_change_sets(segment, registry, start=CommitLogPosition(SEGMENT_ID, BATCH_END)))
    assert len(after_all) == 1 and after_all[0].batches == [] and after_all[0].end.offset == BATCH_END
    assert [c.position.offset for c in legacy_changes([segment], registry,
                                                      start=CommitLogPosition(SEGMENT_ID, 123606))] == [BATCH_END] * 2


def test_is_legacy_segment_reads_name_and_header(segment, raw, tmp_path):
    assert is_legacy_segment(segment)
    assert not is_legacy_segment(tmp_path / "CommitLog-7-1.log")  # 3.0+: by its name alone
    wrong = tmp_path / f"CommitLog-5-{SEGMENT_ID}.log"
    wrong.write_bytes(raw)
    with pytest.raises(SegmentHeaderError) as err:
        is_legacy_segment(wrong)
    assert err.value.path == str(wrong) and err.value.position == 0


# --- 2.2 (v5): the same bodies, framed the 2.2 way ---------------------------------------------------


def _bodies(path) -> list[bytes]:
    return [e.body for e in LegacySegmentReader(path).entries()]


def write_v5(path: Path, segment_id: int, bodies: list[bytes], compressed: bool) -> None:
    """A 2.2 segment: header with JSON parameters, one sync section per entry (as batch mode does),
    each LZ4-compressed with its uncompressed length after the marker when `compressed`."""
    params = b'{"compressionClass":"LZ4Compressor","compressionParameters":{}}' if compressed else b"{}"
    halves = (segment_id & 0xFFFFFFFF, segment_id >> 32)
    out = bytearray(struct.pack(">iqH", 5, segment_id, len(params)) + params)
    out += struct.pack(">I", zlib.crc32(params, crc_ints(5, *halves, len(params))))
    for body in bodies:
        size = struct.pack(">i", len(body))
        crc1 = zlib.crc32(size)
        entry = size + struct.pack(">I", crc1) + body + struct.pack(">I", zlib.crc32(body, crc1))
        pos = len(out)
        payload = struct.pack(">i", len(entry)) + LZ4.compress(entry, {}) if compressed else entry
        out += struct.pack(">iI", pos + 8 + len(payload), crc_ints(*halves, pos)) + payload
    out += bytes(8)
    path.write_bytes(bytes(out))


@pytest.mark.parametrize("compressed", [False, True])
def test_v5_segments_decode_to_the_same_changes(segment, registry, tmp_path, compressed):
    path = tmp_path / "v5" / f"CommitLog-5-{SEGMENT_ID + 1}.log"
    path.parent.mkdir()
    write_v5(path, SEGMENT_ID + 1, _bodies(segment), compressed)
    assert is_legacy_segment(path)
    reader = LegacyCommitLogReader(registry)
    got = [c.to_json() for c in reader.changes([path])]
    want = [c.to_json() for c in _changes(segment, registry)]
    assert [{k: v for k, v in c.items() if k not in ("segment_id", "position")} for c in got] == \
           [{k: v for k, v in c.items() if k not in ("segment_id", "position")} for c in want]
    assert {c["segment_id"] for c in got} == {SEGMENT_ID + 1}
    offsets = [c["position"] for c in got]
    assert offsets == sorted(offsets) and reader.summaries[-1].report.end_of_data


# --- damage: typed errors naming the file and the position --------------------------------------------


def test_cut_inside_an_entry(segment, raw, registry):
    segment.write_bytes(raw[:INSERT[0] + 100])
    with pytest.raises(TruncatedSegmentError) as err:
        _changes(segment, registry)
    assert err.value.path == str(segment) and err.value.position == INSERT[0]
    reader = LegacyCommitLogReader(registry, on_error="skip")
    assert list(reader.changes([segment])) == []  # everything before the cut is system tables
    report = reader.summaries[-1].report
    assert [type(p) for p in report.problems] == [TruncatedSegmentError] and not report.end_of_data
    assert report.entries > 10  # the whole entries before it were read


def test_cut_between_entries_and_inside_the_header(segment, raw, registry, tmp_path):
    segment.write_bytes(raw[:INSERT[1] + 4])  # after a whole section, inside the next sync marker
    reader = LegacyCommitLogReader(registry, on_error="skip")
    assert [c.position.offset for c in reader.changes([segment])] == [INSERT[1]] * 2
    [problem] = reader.summaries[-1].report.problems
    assert isinstance(problem, TruncatedSegmentError) and problem.position == INSERT[1]
    segment.write_bytes(raw[:10])
    with pytest.raises(SegmentHeaderError) as err:
        LegacySegmentReader(segment)
    assert err.value.path == str(segment) and err.value.position == 10


def test_header_crc(segment, raw):
    _damaged(segment, raw, 12, bytes([raw[12] ^ 0xFF]))
    with pytest.raises(SegmentHeaderError, match="CRC") as err:
        LegacySegmentReader(segment)
    assert err.value.position == 12 and err.value.path == str(segment)


def test_body_checksum_skips_only_that_entry(segment, raw, registry):
    _damaged(segment, raw, INSERT[0] + 40, bytes([raw[INSERT[0] + 40] ^ 0x01]))
    with pytest.raises(EntryChecksumError, match="crc2") as err:
        _changes(segment, registry)
    assert err.value.position == INSERT[0] and err.value.path == str(segment)
    reader = LegacyCommitLogReader(registry, on_error="skip")
    changes = list(reader.changes([segment]))
    assert len(changes) == 12 and changes[0].position.offset == 122607  # the INSERT's two changes are gone
    report = reader.summaries[-1].report
    assert len(report.problems) == 1 and report.bytes_skipped == INSERT[1] - INSERT[0] and report.end_of_data


def test_size_checksum(segment, raw, registry):
    _damaged(segment, raw, INSERT[0] + 3, bytes([raw[INSERT[0] + 3] ^ 0x10]))
    with pytest.raises(EntryChecksumError, match="crc1") as err:
        _changes(segment, registry)
    assert err.value.position == INSERT[0]
    assert len(_changes(segment, registry, on_error="skip")) == 12


def test_first_sync_marker_crc(segment, raw):
    _damaged(segment, raw, 20, bytes([raw[20] ^ 0xFF]))
    reader = LegacySegmentReader(segment)
    with pytest.raises(SyncMarkerError) as err:
        list(reader.entries())
    assert err.value.position == 16 and err.value.path == str(segment)


def test_a_stale_marker_after_good_sections_is_the_end_of_a_recycled_file(segment, raw, registry):
    """2.1 reuses segment files: past the last section it wrote lie the old segment's bytes, whose
    markers' CRCs cover the old id. That is the end of the data, as for 2.1's own replayer."""
    section = INSERT[0] - 8
    _damaged(segment, raw, section + 4, bytes([raw[section + 4] ^ 0xFF]))
    reader = LegacySegmentReader(segment)
    entries = list(reader.entries())
    assert entries[-1].position.offset == section and reader.report.end_of_data and not reader.report.problems


def test_malformed_body_with_valid_checksums(segment, raw, registry):
    start, end = INSERT
    body = bytearray(raw[start + 8:end - 4])
    body[-4 - 40:] = b"\xff" * 44  # the last cell's value length and more: garbage, CRCs recomputed
    crc1 = zlib.crc32(raw[start:start + 4])
    data = bytearray(raw)
    data[start + 8:end - 4] = body
    data[end - 4:end] = struct.pack(">I", zlib.crc32(bytes(body), crc1))
    segment.write_bytes(bytes(data))
    with pytest.raises(MutationDecodeError) as err:
        _changes(segment, registry)
    assert err.value.position == start and err.value.path == str(segment)
    reader = LegacyCommitLogReader(registry, on_error="skip")
    assert len(list(reader.changes([segment]))) == 12 and reader.summaries[-1].undecodable == 1


def test_unknown_table_and_schema_mismatch(segment, registry):
    only_t = SchemaRegistry([t for t in registry.tables() if t.name == "t"])
    with pytest.raises(UnknownTableError) as err:
        _changes(segment, only_t)
    assert err.value.table_id == T2_ID and err.value.position == 123362 + 8 and err.value.path == str(segment)
    reader = LegacyCommitLogReader(only_t, unknown_tables="skip")
    assert len(list(reader.changes([segment]))) == 12
    assert reader.summaries[-1].unknown_tables == {str(T2_ID): 2}
    # a schema without column b: the data cannot be the table's, named with the column
    [t] = [t for t in registry.tables() if t.name == "t"]
    narrowed = type(t)(t.keyspace, t.name, t.id, tuple(c for c in t.columns if c.name != "b"))
    with pytest.raises(MutationDecodeError, match="no column 'b'") as err:
        _changes(segment, SchemaRegistry([narrowed, *[x for x in registry.tables() if x.name == "t2"]]))
    assert err.value.position == INSERT[0]


def test_copy_under_another_name(segment, tmp_path, raw):
    other = tmp_path / "x" / f"CommitLog-4-{SEGMENT_ID + 5}.log"
    other.parent.mkdir()
    shutil.copy(segment, other)
    with pytest.raises(SegmentHeaderError, match="file name") as err:
        LegacySegmentReader(other)
    assert err.value.path == str(other)


# --- the main reader dispatches to the legacy one ---------------------------------------------------


def test_commit_log_reader_reads_legacy_segments_like_the_legacy_reader(segment, registry):
    from ray_cdc.commitlog.reader import CommitLogReader

    reader = CommitLogReader(registry)
    assert [c.position for c in reader.changes([segment])] == [c.position for c in _changes(segment, registry)]
    mine = {t.name: b for t, b in reader.arrow_batches([segment])}
    theirs = {t.name: b for t, b in legacy_arrow_batches([segment], registry)}
    assert mine.keys() == theirs.keys() and all(mine[n].equals(theirs[n]) for n in mine)
    sets = list(reader.change_sets(segment, max_rows=3))
    expected = list(legacy_change_sets(segment, registry, max_rows=3))
    assert [(s.end, s.completed, s.rows) for s in sets] == [(s.end, s.completed, s.rows) for s in expected]
    assert len(list(reader.mutations(segment, limit=2))) == 2
    assert reader.summaries and all(s.path == str(segment) for s in reader.summaries)
