"""Bad mutation bodies and missing or wrong schemas: typed errors that name what and where."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.mutation_decoder import MutationDecoder
from ray_cdc.commitlog.mutation_encoder import encode_mutation
from ray_cdc.commitlog.reader import CommitLogReader
from ray_cdc.commitlog.segment_writer import SegmentWriter
from ray_cdc.commitlog.workload import demo_tables, workload_mutations
from ray_cdc.errors import MutationDecodeError, UnknownTableError
from ray_cdc.schema.cql import parse_cql_schema
from ray_cdc.schema.registry import SchemaRegistry

DDL = """
CREATE TABLE shop.orders (id int, line int, item text, qty int, PRIMARY KEY (id, line))
    WITH ID = 11111111-1111-1111-1111-111111111111;
CREATE TABLE shop.audit (id int PRIMARY KEY, note text)
    WITH ID = 22222222-2222-2222-2222-222222222222;
"""
ORDERS, AUDIT = parse_cql_schema(DDL)
TS = 1_700_000_000_000_000


def _two_table_mutation() -> bytes:
    orders = MutationBuilder(ORDERS, {"id": 7}).insert({"line": 1}, {"item": "tea", "qty": 2}, timestamp=TS)
    audit = MutationBuilder(AUDIT, {"id": 7}).insert({}, {"note": "created"}, timestamp=TS)
    return encode_mutation(orders.mutation(audit))


def test_unknown_table_in_a_multi_table_mutation_names_it():
    body = _two_table_mutation()
    decoder = MutationDecoder(SchemaRegistry([ORDERS]).get)
    with pytest.raises(UnknownTableError) as info:
        decoder.decode(body, path="CommitLog-7-1.log", position=1234)
    assert info.value.table_id == AUDIT.id
    assert str(AUDIT.id) in str(info.value)
    assert "CommitLog-7-1.log" in str(info.value) and "1234" in str(info.value)


def test_both_tables_known_decode_both_updates():
    mutation = MutationDecoder(SchemaRegistry([ORDERS, AUDIT]).get).decode(_two_table_mutation())
    assert [u.table.name for u in mutation.updates] == ["orders", "audit"]


def test_schema_that_does_not_match_the_bytes():
    # the same table id, but qty declared as text: the int's 4 raw bytes get read as a length
    wrong = parse_cql_schema(DDL.replace("qty int", "qty text").replace("item text", "item int"))[0]
    body = encode_mutation(MutationBuilder(ORDERS, {"id": 7}).insert(
        {"line": 1}, {"item": "a long enough item name", "qty": 2}, timestamp=TS).mutation())
    with pytest.raises(MutationDecodeError) as info:
        MutationDecoder(SchemaRegistry([wrong]).get).decode(body, path="seg.log", position=99)
    assert "shop.orders" in str(info.value) and "seg.log" in str(info.value) and "99" in str(info.value)


def test_column_missing_from_the_schema_is_named():
    narrow = parse_cql_schema(DDL.replace(", qty int", ""))[0]
    body = encode_mutation(MutationBuilder(ORDERS, {"id": 7}).insert(
        {"line": 1}, {"item": "tea", "qty": 2}, timestamp=TS).mutation())
    with pytest.raises(MutationDecodeError, match="'qty'"):
        MutationDecoder(SchemaRegistry([narrow]).get).decode(body)


def test_trailing_bytes_are_an_error():
    body = _two_table_mutation() + b"\x00"
    with pytest.raises(MutationDecodeError, match="bytes left"):
        MutationDecoder(SchemaRegistry([ORDERS, AUDIT]).get).decode(body)


def test_reader_stops_on_an_unknown_table_or_counts_it_when_asked(tmp_path):
    writer = SegmentWriter(tmp_path, segment_id=1_700_000_000_001, version=7)
    writer.append(_two_table_mutation())
    writer.close()
    reader = CommitLogReader(SchemaRegistry([ORDERS]))
    with pytest.raises(UnknownTableError, match=str(AUDIT.id)):
        list(reader.changes([writer.path]))
    skipping = CommitLogReader(SchemaRegistry([ORDERS]), unknown_tables="skip")
    assert list(skipping.changes([writer.path])) == []
    assert skipping.summaries[0].unknown_tables == {str(AUDIT.id): 1}


def test_reader_skips_an_undecodable_mutation_only_when_asked(tmp_path):
    good = MutationBuilder(ORDERS, {"id": 1}).insert({"line": 1}, {"item": "a", "qty": 1}, timestamp=TS)
    bad_body = encode_mutation(good.mutation())[:-1]  # no end-of-partition byte; the entry CRCs still match
    writer = SegmentWriter(tmp_path, segment_id=1_700_000_000_002, version=7)
    writer.append(bytes(bad_body))
    writer.append(encode_mutation(good.mutation()))
    writer.close()
    with pytest.raises(MutationDecodeError):
        list(CommitLogReader(SchemaRegistry([ORDERS])).changes([writer.path]))
    lenient = CommitLogReader(SchemaRegistry([ORDERS]), on_error="skip")
    changes = list(lenient.changes([writer.path]))
    assert len(changes) == 1 and changes[0].cells["item"].value == "a"
    assert lenient.summaries[0].undecodable == 1


_BODIES = [encode_mutation(m) for m, _ in workload_mutations(demo_tables(), rows=120, seed=3)]
_DEMO = SchemaRegistry(demo_tables())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(_BODIES) - 1), data=st.data())
def test_fuzzed_bodies_give_only_typed_errors(index, data):
    body = bytearray(_BODIES[index])
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        pos = data.draw(st.integers(0, max(len(body) - 1, 0)))
        if action == "flip" and body:
            body[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "truncate":
            del body[pos:]
        elif action == "insert":
            body[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif action == "zero":
            body[pos : pos + data.draw(st.integers(1, 16))] = bytes(min(16, len(body) - pos))
    try:
        MutationDecoder(_DEMO.get).decode(bytes(body), path="fuzz.log", position=0)
    except (MutationDecodeError, UnknownTableError) as e:
        assert e.path == "fuzz.log"


def test_unknown_table_id_is_uuid_from_the_bytes():
    table_id = uuid.UUID("33333333-3333-3333-3333-333333333333")
    body = b"\x01" + table_id.bytes + b"\x01\x00\x01"
    with pytest.raises(UnknownTableError) as info:
        MutationDecoder(SchemaRegistry().get).decode(body)
    assert info.value.table_id == table_id


def test_every_truncation_of_every_change_kind_is_a_typed_error():
    # exhaustive over cut points: a range-tombstone marker cut inside its 2-byte size once leaked struct.error
    for body in _BODIES[:60]:
        for cut in range(len(body)):
            with pytest.raises((MutationDecodeError, UnknownTableError)):
                MutationDecoder(_DEMO.get).decode(body[:cut])
