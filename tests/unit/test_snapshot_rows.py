"""Snapshot rows -> change rows: the versions a read gives rows and collections without WRITETIME()
(pure logic: a result page built by hand, in the native protocol's value encoding)."""

from __future__ import annotations

import struct

from ray_cdc.schema.cql import parse_cql_schema
from ray_cdc.snapshot.protocol import RawPage
from ray_cdc.snapshot.rows import IN_FLIGHT_US, RowConverter

(TABLE,) = parse_cql_schema("CREATE TABLE ks.t (id int, ck text, v int, s set<text>, l list<int>, "
                            "PRIMARY KEY (id, ck))")
READ_US = 1_700_000_000_000_000


def _int(v: int) -> bytes:
    return struct.pack(">i", v)


def _collection(elements: list[bytes]) -> bytes:  # protocol v3: an int count, then each [int len][bytes]
    return _int(len(elements)) + b"".join(_int(len(e)) + e for e in elements)


def _page(rows: list[dict]) -> RawPage:
    """token, id, ck, v, s, l, WRITETIME(v), TTL(v) for each row."""
    names = ["token", "id", "ck", "v", "s", "l", "wt_v", "ttl_v"]
    columns = [[row.get(n) for row in rows] for n in names]
    return RawPage(names, columns, len(rows))


def _convert(rows: list[dict]):
    converter = RowConverter(TABLE)
    return converter.convert(_page(rows), read_us=READ_US, range_start=-100, read_id=-1).to_pylist()


def _key_only(ck: str, **more) -> dict:
    return {"token": struct.pack(">q", 5), "id": _int(1), "ck": ck.encode(), **more}


def test_a_row_without_scalar_cells_is_live_at_a_stand_in_below_the_read():
    (row,) = [r for r in _convert([_key_only("a")]) if r["_op"] == "insert"]
    # below the read: a delete still in flight when the page was requested wins over it
    assert row["_op"] == "insert" and row["_writetime"] == READ_US - IN_FLIGHT_US


def test_a_scalar_cell_keeps_its_own_writetime_and_ttl():
    (row,) = [r for r in _convert([_key_only("a", v=_int(7), wt_v=struct.pack(">q", 123), ttl_v=_int(60))])
              if r["_op"] == "insert"]
    assert (row["_op"], row["_writetime"], row["_ttl"], row["v"]) == ("insert", 123, 60, 7)


def test_a_set_replaces_the_column_at_the_stand_in_and_a_list_at_the_read():
    rows = _convert([_key_only("a", s=_collection([b"x", b"y"]), l=_collection([_int(1), _int(2)]))])
    (update,) = [r for r in rows if r["_op"] == "update"]
    s, lst = update["_cells.s"], update["_cells.l"]
    assert s["replaced_at"] == READ_US - IN_FLIGHT_US - 1
    assert {c["key"] for c in s["cells"]} == {"x", "y"}
    assert {c["timestamp"] for c in s["cells"]} == {READ_US - IN_FLIGHT_US}
    # list elements get made-up ids: an element the read included must not come back twice (rows.py)
    assert lst["replaced_at"] == READ_US - 1
    assert [c["value"] for c in lst["cells"]] == [1, 2] and {c["timestamp"] for c in lst["cells"]} == {READ_US}
