"""MutationBuilder: what it lays out for each kind of write, and that it round-trips.

Every builder-made update must decode back (through the encoder and the decoder) into an equal
model, and its change records must give back the typed values, timestamps and TTLs put in. The
layout itself is checked against Cassandra's rules, and, as ground truth, against the mutations in
segments written by real Cassandra nodes: rebuilt from their typed values, they must come out byte
for byte the same.
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import date, datetime, timezone
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from uuid import UUID

import pytest
from cassandra.util import Duration, Time

from ray_cdc.commitlog.builder import (
    CounterShard,
    MutationBuilder,
    counter_context,
    encode_partition_key,
    list_cell_id,
)
from ray_cdc.commitlog.changes import PARTITION_DELETE, RANGE_DELETE, ROW, changes_of, decode_partition_key
from ray_cdc.commitlog.mutation_decoder import MutationDecoder
from ray_cdc.commitlog.mutation_encoder import encode_mutation
from ray_cdc.commitlog.mutation_model import (
    CELL_HAS_EMPTY_VALUE,
    CELL_IS_DELETED,
    CELL_IS_EXPIRING,
    CELL_USE_ROW_TIMESTAMP,
    CELL_USE_ROW_TTL,
    DELETION_TIME_EPOCH,
    EXCL_END_BOUND,
    EXCL_START_BOUND,
    EXT_IS_STATIC,
    EXTENSION_FLAG,
    HAS_ALL_COLUMNS,
    HAS_COMPLEX_DELETION,
    HAS_DELETION,
    HAS_TIMESTAMP,
    HAS_TTL,
    INCL_END_BOUND,
    INCL_START_BOUND,
    NO_DELETION_TIME,
    NO_TIMESTAMP,
    P_HAS_PARTITION_DELETION,
    P_HAS_ROW_ESTIMATE,
    P_HAS_STATIC_ROW,
    P_IS_EMPTY,
    ComplexColumn,
    DeletionTime,
    EncodingStats,
    Liveness,
    Mutation,
    RangeTombstoneMarker,
)
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.workload import demo_tables

TS = 1_700_000_000_123_456  # µs
NOW = TS // 1_000_000
UTC = timezone.utc
TABLES = {t.name: t for t in demo_tables()}
ALL_TYPES, COLLECTIONS, PROFILES, COUNTERS = (TABLES[n] for n in ("all_types", "collections", "profiles",
                                                                  "page_counters"))
PK_ALL = {"tenant": "acme", "bucket": 7}
CK_ALL = {"event_time": UUID("a0b1c2d0-7cbb-11ee-9858-c9aa1eb53e69"), "seq": 3, "label": "x"}
POSITION = CommitLogPosition(1, 100)


def roundtrip(mutation: Mutation) -> Mutation:
    by_id = {t.id: t for t in TABLES.values()}
    decoded = MutationDecoder(by_id.get).decode(encode_mutation(mutation))
    assert decoded == mutation
    return decoded


def changes(mutation: Mutation, **kw):
    return list(changes_of(roundtrip(mutation), POSITION, **kw))


def one_change(builder: MutationBuilder):
    (change,) = changes(builder.mutation())
    return change


def cells_of(change) -> dict:
    return {n: (c.value, c.timestamp, c.ttl, c.deleted) for n, c in change.cells.items()}


# --- every type, as a cell value -----------------------------------------------------------------------

VALUES = {
    "c_ascii": "plain ascii", "c_text": "Zürich 東京 🙂", "c_varchar": "varchar", "c_blob": b"\x00\xffblob",
    "c_boolean": True, "c_tinyint": -128, "c_smallint": 32767, "c_int": -(1 << 31), "c_bigint": (1 << 63) - 1,
    "c_varint": -(1 << 90) + 12345, "c_float": -1.5, "c_double": 3.141592653589793,
    "c_decimal": Decimal("-1234567890.0001"), "c_date": date(2024, 2, 29), "c_time": Time(13 * 3600 * 10**9 + 7),
    "c_timestamp": datetime(2023, 11, 6, 15, 44, 38, 684000, tzinfo=UTC),
    "c_duration": Duration(14, -3, 5_000_000_123), "c_uuid": UUID("3f1d6f2e-4a8b-4c5d-9e0f-112233445566"),
    "c_timeuuid": UUID("657e5210-7cbb-11ee-9858-c9aa1eb53e69"), "c_inet": IPv6Address("2001:db8::1"),
    "c_vector": [1.0, -2.5, 0.25], "c_tuple": (1, "two", False),
    "c_address": {"street": "Main St 1", "city": "Brno", "zip": 60200, "tags": frozenset({"home", "main"})},
}


def test_every_simple_and_frozen_type_round_trips():
    assert set(VALUES) == {c.name for c in ALL_TYPES.regular}  # the demo table covers them all
    change = one_change(MutationBuilder(ALL_TYPES, PK_ALL).insert(CK_ALL, VALUES, timestamp=TS))
    assert change.partition_key == PK_ALL
    assert change.clustering == CK_ALL
    assert {n: c.value for n, c in change.cells.items()} == VALUES
    assert {c.timestamp for c in change.cells.values()} == {TS}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_each_type_alone(name):
    builder = MutationBuilder(ALL_TYPES, PK_ALL).update(CK_ALL, {name: VALUES[name]}, timestamp=TS)
    change = one_change(builder)
    assert cells_of(change) == {name: (VALUES[name], TS, 0, False)}
    update = builder.build()
    assert update.regular_columns == (name,)
    assert update.unfiltereds[0].flags == HAS_ALL_COLUMNS  # no liveness: an UPDATE


def test_frozen_collections_are_simple_cells():
    values = {"f_list": [3, 1, 2], "f_set": frozenset({UUID(int=5), UUID(int=1)}), "f_map": {2: "b", 1: "a"}}
    change = one_change(MutationBuilder(COLLECTIONS, {"id": 1}).insert({"ck": 1}, values, timestamp=TS))
    assert {n: c.value for n, c in change.cells.items()} == values
    assert not any(c.replaced for c in change.cells.values())


def test_ipv4_and_empty_text_and_blob():
    builder = MutationBuilder(ALL_TYPES, PK_ALL).insert(
        CK_ALL, {"c_inet": IPv4Address("10.1.2.3"), "c_text": "", "c_blob": b""}, timestamp=TS)
    (row,) = builder.build().unfiltereds
    flags = {builder.build().regular_columns[i]: c.flags for i, c in row.columns}
    assert flags["c_text"] == flags["c_blob"] == CELL_HAS_EMPTY_VALUE | CELL_USE_ROW_TIMESTAMP
    assert flags["c_inet"] == CELL_USE_ROW_TIMESTAMP
    assert {n: c.value for n, c in one_change(builder).cells.items()} == {
        "c_inet": IPv4Address("10.1.2.3"), "c_text": "", "c_blob": b""}


# --- row writes ----------------------------------------------------------------------------------------


def test_insert_layout_is_cassandras():
    update = MutationBuilder(PROFILES, {"id": 42}).insert({}, {"name": "Ann", "age": 30}, timestamp=TS).build()
    assert update.flags == P_HAS_ROW_ESTIMATE and update.row_estimate == 1
    # EncodingStats.Collector: nothing expires or is deleted, so LDT and TTL stay at their epochs
    assert update.stats == EncodingStats(TS, DELETION_TIME_EPOCH, 0)
    (row,) = update.unfiltereds
    assert row.flags == HAS_TIMESTAMP | HAS_ALL_COLUMNS
    assert row.clustering == ()  # a table without clustering columns
    assert row.liveness == Liveness(TS)
    assert [c.flags for _, c in row.columns] == [CELL_USE_ROW_TIMESTAMP] * 2
    assert update.key == (42).to_bytes(8, "big")
    change = one_change(MutationBuilder(PROFILES, {"id": 42}).insert({}, {"name": "Ann", "age": 30}, timestamp=TS))
    assert (change.kind, change.timestamp, change.ttl, change.expires_at) == (ROW, TS, 0, None)
    assert cells_of(change) == {"name": ("Ann", TS, 0, False), "age": (30, TS, 0, False)}


def test_insert_with_ttl_shares_the_row_ttl():
    builder = MutationBuilder(PROFILES, {"id": 1}).insert({}, {"name": "Ann"}, timestamp=TS, ttl=3600, now=NOW)
    update = builder.build()
    assert update.stats == EncodingStats(TS, NOW + 3600, 3600)
    (row,) = update.unfiltereds
    assert row.flags == HAS_TIMESTAMP | HAS_TTL | HAS_ALL_COLUMNS
    assert row.liveness == Liveness(TS, 3600, NOW + 3600)
    (_, cell), = row.columns
    assert cell.flags == CELL_IS_EXPIRING | CELL_USE_ROW_TIMESTAMP | CELL_USE_ROW_TTL
    change = one_change(builder)
    expires = datetime.fromtimestamp(NOW + 3600, tz=UTC)
    assert (change.timestamp, change.ttl, change.expires_at) == (TS, 3600, expires)
    assert (change.cells["name"].ttl, change.cells["name"].expires_at) == (3600, expires)


def test_update_has_no_liveness_and_its_own_cell_timestamps():
    builder = MutationBuilder(PROFILES, {"id": 1}).update({}, {"email": "a@b"}, timestamp=TS, ttl=60, now=NOW)
    (row,) = builder.build().unfiltereds
    assert row.liveness is None and row.flags == HAS_ALL_COLUMNS
    (_, cell), = row.columns
    assert cell.flags == CELL_IS_EXPIRING  # no row to share a timestamp or TTL with
    change = one_change(builder)
    assert change.timestamp is None
    assert cells_of(change) == {"email": ("a@b", TS, 60, False)}


def test_cells_with_other_timestamps_than_the_row():
    builder = MutationBuilder(PROFILES, {"id": 1})
    builder.insert({}, {"name": "Ann"}, timestamp=TS).update({}, {"age": 5}, timestamp=TS + 10)
    (row,) = builder.build().unfiltereds
    assert [c.flags for _, c in row.columns] == [0, CELL_USE_ROW_TIMESTAMP]  # age, name (header order)
    assert cells_of(one_change(builder)) == {"age": (5, TS + 10, 0, False), "name": ("Ann", TS, 0, False)}


def test_newest_write_of_a_cell_wins():
    builder = MutationBuilder(PROFILES, {"id": 1})
    builder.update({}, {"age": 5}, timestamp=TS + 10).update({}, {"age": 6}, timestamp=TS)
    assert cells_of(one_change(builder)) == {"age": (5, TS + 10, 0, False)}


def test_null_writes_a_tombstone():
    builder = MutationBuilder(PROFILES, {"id": 1}).insert({}, {"name": None, "age": 1}, timestamp=TS, now=NOW)
    update = builder.build()
    assert update.stats == EncodingStats(TS, NOW, 0)  # the tombstone's deletion time counts
    (row,) = update.unfiltereds
    flags = dict(zip(update.regular_columns, [c.flags for _, c in row.columns]))
    assert flags["name"] == CELL_IS_DELETED | CELL_HAS_EMPTY_VALUE | CELL_USE_ROW_TIMESTAMP
    assert cells_of(one_change(builder))["name"] == (None, TS, 0, True)


def test_delete_cells():
    builder = MutationBuilder(ALL_TYPES, PK_ALL).delete_cells(CK_ALL, ["c_int", "c_text"], timestamp=TS, now=NOW)
    update = builder.build()
    assert update.regular_columns == ("c_int", "c_text")
    (row,) = update.unfiltereds
    assert row.flags == HAS_ALL_COLUMNS and row.liveness is None
    assert {c.flags for _, c in row.columns} == {CELL_IS_DELETED | CELL_HAS_EMPTY_VALUE}
    assert {c.local_deletion_time for _, c in row.columns} == {NOW}
    assert cells_of(one_change(builder)) == {"c_int": (None, TS, 0, True), "c_text": (None, TS, 0, True)}


def test_delete_row():
    builder = MutationBuilder(ALL_TYPES, PK_ALL).delete_row(CK_ALL, timestamp=TS, now=NOW)
    update = builder.build()
    assert update.stats == EncodingStats(TS, NOW, 0)
    assert update.regular_columns == ()
    (row,) = update.unfiltereds
    assert row.flags == HAS_DELETION | HAS_ALL_COLUMNS  # 0 columns of an empty header: all of them
    assert row.deletion == DeletionTime(TS, NOW)
    change = one_change(builder)
    assert (change.kind, change.clustering, change.deleted_at, change.cells) == (ROW, CK_ALL, TS, {})


def test_delete_partition():
    builder = MutationBuilder(ALL_TYPES, PK_ALL).delete_partition(timestamp=TS, now=NOW)
    update = builder.build()
    assert update.flags == P_HAS_PARTITION_DELETION | P_HAS_ROW_ESTIMATE
    assert (update.row_estimate, update.unfiltereds) == (0, [])
    assert update.partition_deletion == DeletionTime(TS, NOW)
    change = one_change(builder)
    assert (change.kind, change.partition_key, change.deleted_at) == (PARTITION_DELETE, PK_ALL, TS)


def test_empty_builder_is_an_empty_update():
    update = MutationBuilder(PROFILES, {"id": 1}).build()
    assert update.flags == P_IS_EMPTY
    assert changes(Mutation([update])) == []


def test_static_row():
    builder = MutationBuilder(ALL_TYPES, PK_ALL).static({"owner": "ops", "revision": 9}, timestamp=TS)
    update = builder.build()
    assert update.flags == P_HAS_STATIC_ROW | P_HAS_ROW_ESTIMATE and update.row_estimate == 0
    assert update.static_columns == ("owner", "revision")
    row = update.static_row
    assert (row.flags, row.ext_flags) == (EXTENSION_FLAG | HAS_ALL_COLUMNS, EXT_IS_STATIC)
    assert row.liveness is None  # INSERT's liveness goes to the clustering row, never the static one
    change = one_change(builder)
    assert change.static and change.clustering == {}
    assert cells_of(change) == {"owner": ("ops", TS, 0, False), "revision": (9, TS, 0, False)}


def test_insert_naming_a_static_column_writes_the_static_row_too():
    builder = MutationBuilder(ALL_TYPES, PK_ALL).insert(CK_ALL, {"owner": "o", "c_int": 1}, timestamp=TS)
    update = builder.build()
    assert (update.static_columns, update.regular_columns) == (("owner",), ("c_int",))
    static, row = changes(builder.mutation())
    assert static.static and cells_of(static) == {"owner": ("o", TS, 0, False)}
    assert row.timestamp == TS and cells_of(row) == {"c_int": (1, TS, 0, False)}


def test_column_subset_when_a_row_lacks_header_columns():
    builder = MutationBuilder(COLLECTIONS, {"id": 1})
    builder.insert({"ck": 1}, {"note": "a"}, timestamp=TS).update({"ck": 2}, {"f_list": [1]}, timestamp=TS)
    update = builder.build()
    assert update.regular_columns == ("f_list", "note")
    assert [r.flags & HAS_ALL_COLUMNS for r in update.unfiltereds] == [0, 0]
    first, second = changes(builder.mutation())
    assert cells_of(first) == {"note": ("a", TS, 0, False)}
    assert cells_of(second) == {"f_list": ([1], TS, 0, False)}


def test_declared_columns_join_the_header():
    update = MutationBuilder(PROFILES, {"id": 1}, columns=["email"]).insert({}, {"age": 1}, timestamp=TS).build()
    assert update.regular_columns == ("age", "email")
    assert update.unfiltereds[0].flags == HAS_TIMESTAMP  # a subset: email has no cell
    roundtrip(Mutation([update]))


def test_header_order_is_simple_first_then_complex_each_by_unsigned_name_bytes():
    everything = {"note": "n", "tags": {"a"}, "scores": [1], "attrs": {"k": 1}, "home": {"city": "c"},
                  "visits": {}, "f_list": [1], "f_set": frozenset(), "f_map": {1: "x"}}
    update = MutationBuilder(COLLECTIONS, {"id": 1}).insert({"ck": 1}, everything, timestamp=TS).build()
    assert update.regular_columns == ("f_list", "f_map", "f_set", "note",  # simple
                                      "attrs", "home", "scores", "tags", "visits")  # complex


# --- clustering order and range deletions -------------------------------------------------------------


def test_rows_follow_the_clustering_order_with_desc_columns_reversed():
    older, newer = UUID("00000000-0000-1000-8000-000000000000"), UUID("ffffffff-ffff-1fff-8000-000000000000")
    builder = MutationBuilder(ALL_TYPES, PK_ALL)
    for t, seq in ((older, 1), (newer, 2), (older, -5), (newer, 1)):
        builder.update({"event_time": t, "seq": seq, "label": "x"}, {"c_int": seq}, timestamp=TS)
    rows = [(c.clustering["event_time"], c.clustering["seq"]) for c in changes(builder.mutation())]
    assert rows == [(newer, 1), (newer, 2), (older, -5), (older, 1)]  # event_time DESC, seq ASC


def test_range_delete_markers():
    builder = MutationBuilder(ALL_TYPES, PK_ALL).delete_range(
        {"event_time": CK_ALL["event_time"], "seq": 5}, {"event_time": CK_ALL["event_time"]},
        start_inclusive=False, end_inclusive=True, timestamp=TS, now=NOW)
    update = builder.build()
    start, end = update.unfiltereds
    assert (start.kind, len(start.clustering)) == (EXCL_START_BOUND, 2)  # a prefix bound
    assert (end.kind, len(end.clustering)) == (INCL_END_BOUND, 1)
    assert start.deletion == end.deletion == DeletionTime(TS, NOW)
    assert update.stats == EncodingStats(TS, NOW, 0) and update.row_estimate == 0
    change = one_change(builder)
    assert (change.kind, change.deleted_at) == (RANGE_DELETE, TS)
    assert (change.range_start.values, change.range_start.inclusive) == (
        {"event_time": CK_ALL["event_time"], "seq": 5}, False)
    assert (change.range_end.values, change.range_end.inclusive) == ({"event_time": CK_ALL["event_time"]}, True)


def test_open_ended_range_is_inclusive_and_empty():
    builder = MutationBuilder(COLLECTIONS, {"id": 1}).delete_range(
        {"ck": 5}, {}, start_inclusive=False, end_inclusive=False, timestamp=TS)
    start, end = builder.build().unfiltereds
    assert (start.kind, start.clustering, end.kind, end.clustering) == (EXCL_START_BOUND, (b"\0\0\0\5",),
                                                                        INCL_END_BOUND, ())
    builder = MutationBuilder(COLLECTIONS, {"id": 1}).delete_range(
        {}, {"ck": 5}, start_inclusive=False, end_inclusive=False, timestamp=TS)
    start, end = builder.build().unfiltereds
    assert (start.kind, start.clustering, end.kind) == (INCL_START_BOUND, (), EXCL_END_BOUND)
    change = one_change(builder)
    assert (change.range_start.values, change.range_start.inclusive) == ({}, True)
    assert (change.range_end.values, change.range_end.inclusive) == ({"ck": 5}, False)


def test_rows_and_markers_interleave_in_clustering_order():
    builder = MutationBuilder(COLLECTIONS, {"id": 1})
    for ck in (1, 4, 6, 9):
        builder.update({"ck": ck}, {"note": str(ck)}, timestamp=TS)
    builder.delete_range({"ck": 4}, {"ck": 6}, start_inclusive=True, end_inclusive=False, timestamp=TS)
    kinds = [u.kind if isinstance(u, RangeTombstoneMarker) else u.clustering[0][-1]
             for u in builder.build().unfiltereds]
    # INCL_START at 4 sorts before the row 4; EXCL_END at 6 sorts before the row 6
    assert kinds == [1, INCL_START_BOUND, 4, EXCL_END_BOUND, 6, 9]
    assert [c.kind for c in changes(builder.mutation())] == [ROW, ROW, RANGE_DELETE, ROW, ROW]


def test_clustering_must_name_every_column_and_bounds_a_prefix():
    builder = MutationBuilder(ALL_TYPES, PK_ALL)
    with pytest.raises(ValueError, match="clustering"):
        builder.insert({"event_time": CK_ALL["event_time"]}, {"c_int": 1}, timestamp=TS)
    with pytest.raises(ValueError, match="prefix"):
        builder.delete_range({"seq": 1}, {}, timestamp=TS)
    with pytest.raises(ValueError, match="primary key"):
        builder.insert(CK_ALL, {"seq": 1}, timestamp=TS)
    with pytest.raises(ValueError, match="no column"):
        builder.insert(CK_ALL, {"nope": 1}, timestamp=TS)


# --- partition keys ------------------------------------------------------------------------------------


def test_composite_partition_key_bytes():
    key = encode_partition_key(ALL_TYPES, PK_ALL)
    assert key == b"\x00\x04acme\x00" + b"\x00\x04\x00\x00\x00\x07\x00"
    assert decode_partition_key(ALL_TYPES, key) == PK_ALL
    with pytest.raises(ValueError, match="partition key"):
        MutationBuilder(ALL_TYPES, {"tenant": "acme"})


# --- collections ---------------------------------------------------------------------------------------


def complex_column(builder: MutationBuilder, name: str) -> ComplexColumn:
    update = builder.build()
    (row,) = update.unfiltereds
    return dict(row.columns)[update.regular_columns.index(name)]


def test_overwrite_is_a_complex_deletion_just_before_the_write():
    builder = MutationBuilder(COLLECTIONS, {"id": 1}).insert(
        {"ck": 1}, {"tags": {"b", "a"}, "scores": [5, 6, 5], "attrs": {"x": 1}}, timestamp=TS, now=NOW)
    update = builder.build()
    assert update.stats == EncodingStats(TS - 1, NOW, 0)
    (row,) = update.unfiltereds
    assert row.flags == HAS_TIMESTAMP | HAS_ALL_COLUMNS | HAS_COMPLEX_DELETION
    tags = complex_column(builder, "tags")
    assert tags.deletion == DeletionTime(TS - 1, NOW)
    assert [c.path for c in tags.cells] == [b"a", b"b"]  # sorted by the element type
    assert {c.flags for c in tags.cells} == {CELL_HAS_EMPTY_VALUE | CELL_USE_ROW_TIMESTAMP}
    scores = complex_column(builder, "scores")
    assert [UUID(bytes=c.path) for c in scores.cells] == [list_cell_id(TS, i) for i in range(3)]
    change = one_change(builder)
    assert {n: (c.value, c.replaced, c.timestamp) for n, c in change.cells.items()} == {
        "tags": (frozenset({"a", "b"}), True, TS), "scores": ([5, 6, 5], True, TS), "attrs": ({"x": 1}, True, TS)}


def test_overwrite_of_a_udt_and_with_null_or_empty():
    builder = MutationBuilder(COLLECTIONS, {"id": 1}).update(
        {"ck": 1}, {"home": {"street": "s", "zip": None, "city": "c"}, "tags": None, "attrs": {}},
        timestamp=TS, now=NOW)
    home = complex_column(builder, "home")
    assert [c.path for c in home.cells] == [b"\x00\x00", b"\x00\x01"]  # field indexes; null fields skipped
    change = one_change(builder)
    assert change.cells["home"].value == {"street": "s", "city": "c"}
    for name in ("tags", "attrs"):  # deletion only: the column was cleared
        c = change.cells[name]
        assert (c.value, c.deleted, c.replaced, c.timestamp) == (None, True, True, TS - 1)


def test_a_complex_deletion_gives_every_complex_column_of_the_row_one():
    builder = MutationBuilder(COLLECTIONS, {"id": 1})
    builder.update({"ck": 1}, {"tags": {"a"}}, timestamp=TS).append_to({"ck": 1}, "scores", [1], TS)
    scores = complex_column(builder, "scores")
    assert scores.deletion == DeletionTime(NO_TIMESTAMP, NO_DELETION_TIME)  # the LIVE sentinel
    change = one_change(builder)
    assert (change.cells["scores"].replaced, change.cells["tags"].replaced) == (False, True)


def test_without_complex_deletions_no_column_carries_one():
    builder = MutationBuilder(COLLECTIONS, {"id": 1}).append_to({"ck": 1}, "tags", {"z"}, TS)
    assert complex_column(builder, "tags").deletion is None
    assert builder.build().unfiltereds[0].flags & HAS_COMPLEX_DELETION == 0


def test_unsigned_ldt_live_sentinel_for_messaging_13():
    builder = MutationBuilder(COLLECTIONS, {"id": 1}, unsigned_ldt=True)
    builder.update({"ck": 1}, {"tags": {"a"}}, timestamp=TS).append_to({"ck": 1}, "scores", [1], TS)
    assert complex_column(builder, "scores").deletion == DeletionTime(NO_TIMESTAMP, -1)
    assert one_change(builder).cells["scores"].value == [1]


def test_append_to_list_set_and_map():
    builder = MutationBuilder(COLLECTIONS, {"id": 1})
    builder.append_to({"ck": 1}, "scores", [7, 8], TS).append_to({"ck": 1}, "scores", [9], TS)
    builder.append_to({"ck": 1}, "tags", {"q"}, TS, ttl=60, now=NOW)
    builder.append_to({"ck": 1}, "attrs", {"k": 2}, TS)
    scores = complex_column(builder, "scores")
    assert [UUID(bytes=c.path) for c in scores.cells] == [list_cell_id(TS, i) for i in range(3)]
    change = one_change(builder)
    assert {n: (c.value, c.replaced, c.ttl) for n, c in change.cells.items()} == {
        "scores": ([7, 8, 9], False, 0), "tags": (frozenset({"q"}), False, 60), "attrs": ({"k": 2}, False, 0)}


def test_put_into_map_and_udt_fields():
    builder = MutationBuilder(COLLECTIONS, {"id": 1})
    builder.put({"ck": 1}, "attrs", {"a": 1, "gone": None}, TS, now=NOW)
    builder.put({"ck": 1}, "home", {"zip": 60200}, TS)
    change = one_change(builder)
    assert (change.cells["attrs"].value, change.cells["attrs"].removed) == ({"a": 1}, ["gone"])
    assert change.cells["home"].value == {"zip": 60200}
    with pytest.raises(ValueError, match="map or UDT"):
        builder.put({"ck": 1}, "tags", {"a": 1}, TS)


def test_remove_from_writes_element_tombstones():
    ids = [list_cell_id(TS - 1000, 0), list_cell_id(TS - 1000, 1)]
    builder = MutationBuilder(COLLECTIONS, {"id": 1})
    builder.remove_from({"ck": 1}, "tags", ["b", "a"], TS, now=NOW)
    builder.remove_from({"ck": 1}, "attrs", ["k"], TS, now=NOW)
    builder.remove_from({"ck": 1}, "scores", ids, TS, now=NOW)
    builder.remove_from({"ck": 1}, "home", ["city"], TS, now=NOW)
    tags = complex_column(builder, "tags")
    assert [c.flags for c in tags.cells] == [CELL_IS_DELETED | CELL_HAS_EMPTY_VALUE] * 2
    assert [c.local_deletion_time for c in tags.cells] == [NOW, NOW]
    change = one_change(builder)
    assert {n: (c.value, sorted(c.removed, key=str), c.deleted) for n, c in change.cells.items()} == {
        "tags": (None, ["a", "b"], False), "attrs": (None, ["k"], False), "scores": (None, ids, False),
        "home": (None, ["city"], False)}


def test_delete_column_is_a_complex_deletion_at_the_timestamp():
    builder = MutationBuilder(COLLECTIONS, {"id": 1}).delete_column({"ck": 1}, "tags", timestamp=TS, now=NOW)
    tags = complex_column(builder, "tags")
    assert (tags.deletion, tags.cells) == (DeletionTime(TS, NOW), ())
    c = one_change(builder).cells["tags"]
    assert (c.deleted, c.replaced, c.timestamp) == (True, True, TS)


def test_collection_with_map_of_frozen_udt_values():
    visits = {datetime(2024, 1, 1, tzinfo=UTC): {"street": "a", "city": "b", "zip": 1, "tags": frozenset()}}
    builder = MutationBuilder(COLLECTIONS, {"id": 1}).update({"ck": 1}, {"visits": visits}, timestamp=TS)
    assert one_change(builder).cells["visits"].value == visits


def test_collection_operations_need_a_non_frozen_column():
    with pytest.raises(ValueError, match="non-frozen"):
        MutationBuilder(COLLECTIONS, {"id": 1}).append_to({"ck": 1}, "f_list", [1], TS)


def test_list_cell_ids_are_ordered_timeuuids_of_the_write():
    ids = [list_cell_id(TS, i) for i in range(12)]
    assert all(u.version == 1 for u in ids)
    assert [u.time for u in ids] == sorted(u.time for u in ids)
    assert ids[0].time == TS * 10 + 0x01B21DD213814000


# --- counters ------------------------------------------------------------------------------------------


def test_counter_context_layout():
    ctx = counter_context(42, clock=3, counter_id=UUID(int=1))
    assert ctx == b"\x00\x01\x80\x00" + UUID(int=1).bytes + (3).to_bytes(8, "big") + (42).to_bytes(8, "big")


def test_counter_update_layout():
    builder = MutationBuilder(COUNTERS, {"site": "s", "page": "p"})
    builder.update({"day": date(2024, 1, 2)}, {"hits": CounterShard(10, 2), "bytes_served": 5}, timestamp=TS)
    (row,) = builder.build().unfiltereds
    assert row.liveness is None
    assert len(dict(row.columns)[1].value) == 36  # hits: one global shard
    roundtrip(builder.mutation())


def test_counter_values_decode_as_their_total():
    builder = MutationBuilder(COUNTERS, {"site": "s", "page": "p"})
    builder.update({"day": date(2024, 1, 2)}, {"hits": CounterShard(10, 2)}, timestamp=TS)
    assert cells_of(one_change(builder)) == {"hits": (10, TS, 0, False)}


# --- multi-table mutations -----------------------------------------------------------------------------


def test_mutation_of_two_tables_with_one_key():
    a = MutationBuilder(PROFILES, {"id": 9}).insert({}, {"name": "n"}, timestamp=TS)
    b = MutationBuilder(COLLECTIONS, {"id": 9}).insert({"ck": 1}, {"note": "x"}, timestamp=TS)
    mutation = a.mutation(b)
    assert [u.table.name for u in mutation.updates] == ["profiles", "collections"]
    assert [(c.table.name, c.partition_key) for c in changes(mutation)] == [("profiles", {"id": 9}),
                                                                           ("collections", {"id": 9})]
    with pytest.raises(ValueError, match="partition key"):
        a.mutation(MutationBuilder(COLLECTIONS, {"id": 10}))
    with pytest.raises(ValueError, match="one update per table"):
        a.mutation(MutationBuilder(PROFILES, {"id": 9}))


# --- ground truth: mutations written by real Cassandra nodes -------------------------------------------


def _fixtures_root() -> Path:
    shared = Path(os.environ.get("RAY_CDC_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
    return shared / "fixtures" / "cassandra-commitlog"


def _rebuild(update) -> MutationBuilder:
    """The statements that wrote `update`, replayed through the builder from typed values only."""
    table = update.table
    builder = MutationBuilder(table, decode_partition_key(table, update.key),
                              columns=update.regular_columns + update.static_columns)
    if update.partition_deletion is not None:
        d = update.partition_deletion
        builder.delete_partition(timestamp=d.marked_for_delete_at, now=d.local_deletion_time)
    rows = ([update.static_row] if update.static_row is not None else []) + update.unfiltereds
    for row in rows:
        assert not isinstance(row, RangeTombstoneMarker)
        names = update.static_columns if row.is_static else update.regular_columns
        ck = {c.name: c.type.decode(v) for c, v in zip(table.clustering, row.clustering)}
        writes = defaultdict(dict)  # one statement per (timestamp, ttl, now)
        for index, cell in row.columns:
            assert not isinstance(cell, ComplexColumn)
            column = table.column(names[index])
            now = cell.local_deletion_time - cell.ttl if cell.flags & 3 else None
            value = None if cell.is_tombstone else column.type.decode(cell.value)
            writes[(cell.timestamp, cell.ttl, now)][column.name] = value
        if row.liveness is not None:
            lv = row.liveness
            now = lv.local_expiration_time - lv.ttl if lv.ttl else None
            builder.insert(ck, writes.pop((lv.timestamp, lv.ttl, now), {}), timestamp=lv.timestamp, ttl=lv.ttl,
                           now=now)
        for (ts, ttl, now), cells in writes.items():
            if row.is_static:
                builder.static(cells, timestamp=ts, ttl=ttl, now=now)
            else:
                builder.update(ck, cells, timestamp=ts, ttl=ttl, now=now)
        if row.deletion is not None:
            builder.delete_row(ck, timestamp=row.deletion.marked_for_delete_at, now=row.deletion.local_deletion_time)
    return builder


@pytest.mark.parametrize("folder", ["3.0.13", "3.0.29", "3.4", "4.0.11"])
def test_real_cassandra_mutations_rebuild_byte_for_byte(folder):
    from ray_cdc.commitlog.encryption import Keystore
    from ray_cdc.commitlog.reader import sort_segments
    from ray_cdc.commitlog.segment import SegmentReader
    from ray_cdc.errors import UnknownTableError
    from ray_cdc.schema.from_log import LogSchemaTracker
    from ray_cdc.schema.registry import SchemaRegistry
    from ray_cdc.schema.system_schema import KNOWN_SYSTEM_TABLES

    root = _fixtures_root() / folder
    if not root.is_dir():
        pytest.skip(f"real Cassandra segments not found at {root}")
    keystore_path = root / "cassandra.keystore"
    keystore = Keystore.open(keystore_path, "cassandra") if keystore_path.exists() else None
    registry = SchemaRegistry()
    tracker = LogSchemaTracker(registry)
    decoder = MutationDecoder(lambda tid: KNOWN_SYSTEM_TABLES.get(tid) or registry.get(tid))
    rebuilt = 0
    for path in sort_segments(root.glob("CommitLog-*.log")):
        for entry in SegmentReader(path, keystore=keystore).entries():
            try:
                mutation = decoder.decode(entry.body)
            except UnknownTableError:
                continue
            builders = [_rebuild(u) for u in mutation.updates]
            body = encode_mutation(builders[0].mutation(*builders[1:]))
            assert body == bytes(entry.body), f"{path.name} entry at {entry.start}: {mutation.updates[0].table}"
            rebuilt += 1
            if tracker.is_schema_mutation(mutation):
                tracker.apply(mutation)
    assert rebuilt > 90
