"""CQL types: parsing, value codecs (against exact vectors and the cassandra-driver's serializers),
cell paths, Arrow and JSON forms."""

from __future__ import annotations

import hashlib
import json
import pickle
import uuid
from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address, ip_address

import pyarrow as pa
import pytest
from cassandra.cqltypes import lookup_casstype
from cassandra.util import Date as DriverDate
from cassandra.util import Duration, Time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ray_cdc.errors import CqlTypeError, ValueCodecError
from ray_cdc.schema.types import SIMPLE_TYPE_WIDTHS, CqlType, parse_cql_type

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
M = "org.apache.cassandra.db.marshal."
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
NANOS_PER_DAY = 86_400 * 10**9

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def T(text: str, **kw) -> CqlType:
    return parse_cql_type(text, **kw)


# --- canonical Python values (what decode returns) ------------------------------------------------


def canonical_timestamp(ms: int):
    try:
        return EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return ms


def canonical_date(days: int):
    try:
        return date(1970, 1, 1) + timedelta(days=days)
    except OverflowError:
        return days


def decimal_of(unscaled: int, scale: int) -> Decimal:
    sign, digits, _ = Decimal(unscaled).as_tuple()
    return Decimal((sign, digits, -scale))


SIMPLE_VALUES = {
    "ascii": st.text(alphabet=st.characters(max_codepoint=127)),
    "text": st.text(),
    "varchar": st.text(),
    "blob": st.binary(),
    "boolean": st.booleans(),
    "tinyint": st.integers(-128, 127),
    "smallint": st.integers(-(2**15), 2**15 - 1),
    "int": st.integers(*INT32),
    "bigint": st.integers(*INT64),
    "counter": st.integers(*INT64),
    "varint": st.integers(-(2**300), 2**300) | st.integers(-300, 300),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "decimal": st.builds(decimal_of, st.integers(-(2**130), 2**130), st.integers(-60, 60)),
    "date": st.one_of(st.dates(), st.integers(*INT32)).map(
        lambda d: d if isinstance(d, date) else canonical_date(d)
    ),
    "time": st.integers(0, NANOS_PER_DAY - 1).map(Time),
    "timestamp": st.one_of(st.integers(-62135596800000, 253402300799999), st.integers(*INT64)).map(
        canonical_timestamp
    ),
    "duration": st.builds(Duration, st.integers(*INT32), st.integers(*INT32), st.integers(*INT64)),
    "uuid": st.uuids(),
    "timeuuid": st.uuids(version=1),
    "inet": st.ip_addresses(),
    "empty": st.none(),
}

#: types Cassandra allows inside collections, tuples, UDTs and vectors
ELEMENT_TYPES = sorted(set(SIMPLE_TYPE_WIDTHS) - {"counter", "empty", "varchar"})
#: ... and as set elements / map keys (durations are not comparable in Cassandra)
KEY_TYPES = [n for n in ELEMENT_TYPES if n != "duration"]


def _udt_for(fields: list[CqlType], frozen: bool) -> CqlType:
    # named after its field types so two different definitions never share a name
    name = "u_" + hashlib.sha1("|".join(f.cql() for f in fields).encode()).hexdigest()[:8]
    names = tuple(f"f{i}" for i in range(len(fields)))
    return CqlType("udt", tuple(fields), frozen, "ks", name, names)


def _extend(children):
    return st.one_of(
        st.builds(lambda t, f: CqlType("list", (t,), f), children, st.booleans()),
        st.builds(lambda t, f: CqlType("set", (t,), f), children, st.booleans()),
        st.builds(lambda k, v, f: CqlType("map", (k, v), f), children, children, st.booleans()),
        st.builds(lambda ts: CqlType("tuple", tuple(ts), True), st.lists(children, min_size=1, max_size=3)),
        st.builds(_udt_for, st.lists(children, min_size=1, max_size=3), st.booleans()),
        st.builds(lambda t, n: CqlType("vector", (t,), True, dimension=n), children, st.integers(1, 3)),
    )


cql_types = st.recursive(st.sampled_from([T(n) for n in ELEMENT_TYPES]), _extend, max_leaves=5)


def _uses_only(t: CqlType, allowed) -> bool:
    if t.name in SIMPLE_TYPE_WIDTHS:
        return t.name in allowed
    return all(_uses_only(p, allowed) for p in t.params)


def _hashable(t: CqlType) -> bool:
    if t.name in ("list", "map", "udt", "vector"):
        return False
    if t.name in ("set", "tuple"):
        return all(_hashable(p) for p in t.params)
    return t.name != "duration"


def values_of(t: CqlType):
    """A strategy of canonical decoded values of `t`."""
    if t.name in SIMPLE_VALUES:
        return SIMPLE_VALUES[t.name]
    if t.name == "list":
        return st.lists(values_of(t.params[0]), max_size=3)
    if t.name == "vector":
        return st.lists(values_of(t.params[0]), min_size=t.dimension, max_size=t.dimension)
    if t.name == "tuple":
        return st.tuples(*[st.none() | values_of(p) for p in t.params])
    if t.name == "udt":
        return st.fixed_dictionaries({n: st.none() | values_of(p) for n, p in zip(t.field_names, t.params)})
    if t.name == "set":
        elem = t.params[0]
        key = elem._codec.key
        # unique by Cassandra's comparator: -0.0 / 0.0 and 1.0 / 1.00 are one element for it too
        items = st.lists(values_of(elem), max_size=3, unique_by=key)
        if _hashable(elem):
            return items.map(frozenset)
        return items.map(lambda xs: tuple(sorted(xs, key=key)))
    if t.name == "map":
        k, v = t.params
        kkey = k._codec.key
        pairs = st.lists(st.tuples(values_of(k), values_of(v)), max_size=3, unique_by=lambda kv: kkey(kv[0]))
        if _hashable(k):
            return pairs.map(dict)
        return pairs.map(lambda ps: sorted(ps, key=lambda kv: kkey(kv[0])))
    raise AssertionError(t)


def typed_values(types=cql_types):
    return types.flatmap(lambda t: st.tuples(st.just(t), values_of(t)))


def _has(t: CqlType, name: str) -> bool:
    return t.name == name or any(_has(p, name) for p in t.params)


def _valid_for_cassandra(t: CqlType) -> bool:
    """Set elements and map keys are comparable (no duration), as Cassandra requires."""
    if t.name == "set" and _has(t.params[0], "duration"):
        return False
    if t.name == "map" and _has(t.params[0], "duration"):
        return False
    return all(_valid_for_cassandra(p) for p in t.params)


valid_types = cql_types.filter(_valid_for_cassandra)


def user_types_of(t: CqlType, found=None) -> dict:
    found = {} if found is None else found
    for p in t.params:
        user_types_of(p, found)
    if t.name == "udt":
        found[(t.keyspace, t.udt_name)] = tuple(zip(t.field_names, t.params))
    return found


# --- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SIMPLE_TYPE_WIDTHS))
def test_simple_types_parse_and_round_trip(name):
    t = CqlType(name)
    assert T(t.cql()) == t
    assert t.fixed_width == SIMPLE_TYPE_WIDTHS[name]
    assert not t.is_multicell


def test_varchar_is_text():
    assert T("varchar") == T("text") == T("TEXT") == CqlType("varchar")
    assert CqlType("varchar").name == "text"


@pytest.mark.parametrize(
    "text, cql",
    [
        ("MAP<TEXT,INT>", "map<text, int>"),
        ("  map < text ,  frozen < list < int > > >  ", "map<text, frozen<list<int>>>"),
        ("map<text, list<int>>", "map<text, frozen<list<int>>>"),  # nested: implicitly frozen
        ("list<set<int>>", "list<frozen<set<int>>>"),
        ("frozen<map<text, list<int>>>", "frozen<map<text, frozen<list<int>>>>"),
        ("tuple<int, text>", "tuple<int, text>"),
        ("frozen<tuple<int, text>>", "tuple<int, text>"),
        ("list<tuple<int, list<text>>>", "list<tuple<int, frozen<list<text>>>>"),
        ("vector<float, 3>", "vector<float, 3>"),
        ("VECTOR<text,2>", "vector<text, 2>"),
        ("vector<list<int>, 2>", "vector<frozen<list<int>>, 2>"),
        ("set<frozen<tuple<int, timeuuid>>>", "set<tuple<int, timeuuid>>"),
        ("'org.apache.cassandra.db.marshal.XType'", "'org.apache.cassandra.db.marshal.XType'"),
        ("'com.example.It''s'", "'com.example.It''s'"),
    ],
)
def test_parse_cql_text(text, cql):
    t = T(text)
    assert t.cql() == cql
    assert T(cql) == t


def test_frozen_flags():
    assert T("list<int>").is_multicell
    assert not T("frozen<list<int>>").is_multicell
    inner = T("map<text, list<int>>").params[1]
    assert inner.frozen and not inner.is_multicell
    assert T("tuple<int>").frozen and not T("tuple<int>").is_multicell
    assert not T("vector<float, 2>").is_multicell
    assert T("frozen<int>") == T("int")


@pytest.mark.parametrize(
    "marshal, cql",
    [
        (M + "AsciiType", "ascii"),
        (M + "UTF8Type", "text"),
        (M + "BytesType", "blob"),
        (M + "BooleanType", "boolean"),
        (M + "ByteType", "tinyint"),
        (M + "ShortType", "smallint"),
        (M + "Int32Type", "int"),
        (M + "LongType", "bigint"),
        (M + "IntegerType", "varint"),
        (M + "FloatType", "float"),
        (M + "DoubleType", "double"),
        (M + "DecimalType", "decimal"),
        (M + "CounterColumnType", "counter"),
        (M + "SimpleDateType", "date"),
        (M + "TimeType", "time"),
        (M + "TimestampType", "timestamp"),
        (M + "DateType", "timestamp"),
        (M + "DurationType", "duration"),
        (M + "UUIDType", "uuid"),
        (M + "TimeUUIDType", "timeuuid"),
        (M + "InetAddressType", "inet"),
        (M + "EmptyType", "'org.apache.cassandra.db.marshal.EmptyType'"),
        (f"{M}ReversedType({M}TimestampType)", "timestamp"),
        (f"{M}ListType({M}Int32Type)", "list<int>"),
        (f"{M}SetType({M}UTF8Type)", "set<text>"),
        (f"{M}MapType({M}UTF8Type,{M}Int32Type)", "map<text, int>"),
        (f"{M}FrozenType({M}ListType({M}Int32Type))", "frozen<list<int>>"),
        (f"{M}MapType({M}UTF8Type,{M}FrozenType({M}ListType({M}Int32Type)))", "map<text, frozen<list<int>>>"),
        (f"{M}MapType({M}UTF8Type,{M}ListType({M}Int32Type))", "map<text, frozen<list<int>>>"),
        (f"{M}TupleType({M}Int32Type,{M}UTF8Type)", "tuple<int, text>"),
        (f"{M}VectorType({M}FloatType,3)", "vector<float, 3>"),
        (f"{M}ReversedType({M}TupleType(Int32Type, UTF8Type))", "tuple<int, text>"),
        (f"'{M}Int32Type'", "int"),
        (f"'{M}MapType({M}UTF8Type,{M}Int32Type)'", "map<text, int>"),
        ("Int32Type", "int"),
        ("'ListType(Int32Type)'", "list<int>"),
        (f"'{M}DynamicCompositeType(s=>{M}UTF8Type)'", f"'{M}DynamicCompositeType(s=>{M}UTF8Type)'"),
        (f"{M}DynamicCompositeType(s=>{M}UTF8Type)", f"'{M}DynamicCompositeType(s=>{M}UTF8Type)'"),
        (f"{M}LexicalUUIDType", f"'{M}LexicalUUIDType'"),
        (f"{M}CompositeType({M}UTF8Type,{M}Int32Type)", f"'{M}CompositeType({M}UTF8Type,{M}Int32Type)'"),
    ],
)
def test_marshal_class_names(marshal, cql):
    t = T(marshal)
    assert t.cql() == cql
    assert T(cql) == t


def test_custom_types_are_blobs():
    t = T(f"'{M}XType'")
    assert (t.name, t.custom_class, t.fixed_width) == ("custom", M + "XType", None)
    assert t.decode(b"\x01\x02") == b"\x01\x02"
    assert t.encode(b"\x01\x02") == b"\x01\x02"
    assert t.arrow_type() == pa.binary()
    # LexicalUUIDType is written without a length in the commitlog (format doc §13.1)
    assert T(f"'{M}LexicalUUIDType'").fixed_width == 16


def test_marshal_user_type():
    hexname = b"address".hex()
    text = f"{M}FrozenType({M}UserType(shop,{hexname},{b'street'.hex()}:{M}UTF8Type,{b'zip'.hex()}:{M}Int32Type))"
    t = T(text)
    assert (t.name, t.keyspace, t.udt_name, t.field_names, t.frozen) == (
        "udt",
        "shop",
        "address",
        ("street", "zip"),
        True,
    )
    assert t.params == (T("text"), T("int"))
    assert T(t.cql(), keyspace="shop", user_types=user_types_of(t)) == t


ADDRESS = (("street", T("text")), ("zip", T("int")), ("tags", T("list<text>")))


def test_user_types():
    types = {("shop", "address"): ADDRESS, ("shop", "Point"): (("x", T("double")), ("y", T("double")))}
    t = T("frozen<address>", keyspace="shop", user_types=types)
    assert (t.name, t.keyspace, t.udt_name, t.field_names, t.frozen) == (
        "udt",
        "shop",
        "address",
        ("street", "zip", "tags"),
        True,
    )
    assert t.params[2] == T("frozen<list<text>>")  # fields are single cells: frozen
    assert t.cql() == "frozen<address>"
    assert T(t.cql(), keyspace="shop", user_types=types) == t
    assert T("shop.address", user_types=types) == T("address", keyspace="shop", user_types=types)
    assert T("address", user_types=types) == T("address", keyspace="shop", user_types=types)  # unique name
    assert not T("frozen<ADDRESS>", keyspace="shop", user_types=types).is_multicell
    nonfrozen = T("address", keyspace="shop", user_types=types)
    assert nonfrozen.is_multicell and nonfrozen.cql() == "address"
    point = T('"Point"', keyspace="shop", user_types=types)
    assert point.udt_name == "Point" and point.cql() == '"Point"'
    assert T(point.cql(), keyspace="shop", user_types=types) == point
    assert T('shop."Point"', user_types=types) == point
    nested = T("map<text, frozen<address>>", keyspace="shop", user_types=types)
    assert nested.params[1] == t


def test_user_type_fields_may_be_type_strings():
    types = {("ks", "a"): (("x", "int"), ("y", "list<text>")), ("ks", "b"): (("a", "frozen<a>"),)}
    t = T("frozen<b>", keyspace="ks", user_types=types)
    assert t.params[0].params == (T("int"), T("frozen<list<text>>"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "list<int",
        "list<>",
        "list",
        "map<int>",
        "map<int, int, int>",
        "tuple<>",
        "frozen<>",
        "vector<float>",
        "vector<float, 0>",
        "vector<float, x>",
        "int int",
        "nosuchtype",
        "ks.nosuchtype",
        "'unterminated",
        '"unterminated',
        "list<int>>",
        "set<int,>",
        f"{M}ListType({M}Int32Type",
        f"{M}UserType(ks,zz,{b'a'.hex()}:{M}Int32Type)",
    ],
)
def test_bad_type_strings(text):
    with pytest.raises(CqlTypeError):
        T(text, keyspace="ks", user_types={("ks", "known"): (("a", T("int")),)})


def test_unknown_and_ambiguous_user_types():
    types = {("a", "t"): (("x", T("int")),), ("b", "t"): (("x", T("int")),)}
    with pytest.raises(CqlTypeError, match="several keyspaces"):
        T("t", user_types=types)
    with pytest.raises(CqlTypeError, match="unknown type"):
        T("t", keyspace="c", user_types=types)
    with pytest.raises(CqlTypeError, match="unknown type"):
        T("frozen<nope>")
    with pytest.raises(CqlTypeError, match="itself"):
        T("r", keyspace="a", user_types={("a", "r"): (("x", "frozen<r>"),)})


def test_bad_constructions():
    with pytest.raises(CqlTypeError):
        CqlType("nosuch")
    with pytest.raises(CqlTypeError):
        CqlType("list")
    with pytest.raises(CqlTypeError):
        CqlType("int", (T("int"),))
    with pytest.raises(CqlTypeError):
        CqlType("vector", (T("float"),), dimension=0)
    with pytest.raises(CqlTypeError):
        CqlType("udt", (T("int"),), udt_name="x", field_names=())


@SETTINGS
@given(valid_types)
def test_parse_round_trip_of_generated_types(t):
    assert parse_cql_type(t.cql(), keyspace="ks", user_types=user_types_of(t)) == t


def test_types_are_hashable_comparable_and_picklable():
    a, b = T("map<text, frozen<list<int>>>"), T("MAP<text, list<int>>")
    assert a == b and hash(a) == hash(b)
    assert len({a, b, T("map<text, int>")}) == 2
    assert T("list<int>") != T("frozen<list<int>>")
    assert T("vector<float, 2>") != T("vector<float, 3>")
    for t in (a, T("vector<text, 2>"), T("tuple<int, date>"), T(f"'{M}XType'")):
        clone = pickle.loads(pickle.dumps(t))
        assert clone == t and hash(clone) == hash(t)
        assert clone.fixed_width == t.fixed_width
    assert T("list<int>").decode(pickle.loads(pickle.dumps(T("list<int>"))).encode([1])) == [1]
    assert repr(a) == "CqlType('map<text, frozen<list<int>>>')"


@pytest.mark.parametrize(
    "text, width",
    [
        ("boolean", 1),
        ("int", 4),
        ("bigint", 8),
        ("float", 4),
        ("double", 8),
        ("timestamp", 8),
        ("uuid", 16),
        ("timeuuid", 16),
        ("text", None),
        ("tinyint", None),
        ("smallint", None),
        ("date", None),
        ("time", None),
        ("counter", None),
        ("varint", None),
        ("decimal", None),
        ("inet", None),
        ("duration", None),
        ("blob", None),
        ("vector<float, 3>", 12),
        ("vector<uuid, 2>", 32),
        ("vector<vector<int, 2>, 3>", 24),
        ("vector<text, 3>", None),
        ("vector<smallint, 3>", None),
        ("list<int>", None),
        ("frozen<list<int>>", None),
        ("tuple<int, int>", None),
        ("map<int, int>", None),
        (f"'{M}XType'", None),
    ],
)
def test_fixed_width(text, width):
    assert T(text).fixed_width == width


# --- value codecs: properties -----------------------------------------------------------------------


@SETTINGS
@given(typed_values())
def test_decode_encode_round_trip(tv):
    t, value = tv
    data = t.encode(value)
    assert isinstance(data, bytes)
    assert t.decode(data) == value
    assert t.encode(t.decode(data)) == data
    assert t.decode(memoryview(data)) == value


@pytest.mark.parametrize("name", sorted(SIMPLE_VALUES))
@SETTINGS
@given(data=st.data())
def test_simple_round_trip(name, data):
    t = CqlType(name)
    value = data.draw(SIMPLE_VALUES[name])
    encoded = t.encode(value)
    if t.fixed_width is not None:
        assert len(encoded) == t.fixed_width
    assert t.decode(encoded) == value
    assert t.encode(t.decode(encoded)) == encoded


@pytest.mark.parametrize("name", sorted(set(SIMPLE_TYPE_WIDTHS) - {"ascii", "text", "varchar", "blob"}))
def test_empty_value_is_none(name):
    t = CqlType(name)
    assert t.decode(b"") is None
    assert t.encode(None) == b""


@pytest.mark.parametrize("text", ["list<int>", "set<int>", "map<int, int>", "tuple<int>", "vector<float, 2>"])
def test_empty_composite_is_none(text):
    assert T(text).decode(b"") is None
    assert T(text).encode(None) == b""


def test_empty_strings_stay_strings():
    assert T("text").decode(b"") == ""
    assert T("ascii").decode(b"") == ""
    assert T("blob").decode(b"") == b""
    assert T("text").encode("") == b""


# --- value codecs: exact vectors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value, hexbytes",
    [
        ("varint", 0, "00"),
        ("varint", 1, "01"),
        ("varint", -1, "ff"),
        ("varint", 127, "7f"),
        ("varint", 128, "0080"),
        ("varint", -128, "80"),
        ("varint", -129, "ff7f"),
        ("varint", 255, "00ff"),
        ("varint", 256, "0100"),
        ("varint", 2**64, "010000000000000000"),
        ("decimal", Decimal("1.25"), "00000002" + "7d"),
        ("decimal", Decimal("-1.25"), "00000002" + "83"),
        ("decimal", Decimal(0), "00000000" + "00"),
        ("decimal", Decimal("1E+3"), "fffffffd" + "01"),
        ("decimal", Decimal("128.0"), "00000001" + "0500"),
        ("int", -1, "ffffffff"),
        ("int", 2**31 - 1, "7fffffff"),
        ("bigint", -2, "fffffffffffffffe"),
        ("smallint", -2, "fffe"),
        ("tinyint", -128, "80"),
        ("boolean", True, "01"),
        ("boolean", False, "00"),
        ("float", 1.5, "3fc00000"),
        ("double", -2.0, "c000000000000000"),
        ("date", date(1970, 1, 1), "80000000"),
        ("date", date(1969, 12, 31), "7fffffff"),
        ("date", date(1970, 1, 2), "80000001"),
        ("date", -(2**31), "00000000"),
        ("date", 2**31 - 1, "ffffffff"),
        ("time", Time(1), "0000000000000001"),
        ("time", Time(NANOS_PER_DAY - 1), "00004e94914effff"),
        ("timestamp", EPOCH, "0000000000000000"),
        ("timestamp", EPOCH - timedelta(milliseconds=1), "ffffffffffffffff"),
        ("timestamp", datetime(2020, 1, 1, 1, 2, 3, 4000, tzinfo=UTC), "0000016f5e9fb6fc"),
        ("timestamp", -(2**63), "8000000000000000"),
        ("duration", Duration(1, -2, 3), "020306"),
        ("duration", Duration(0, 0, -1), "000001"),
        ("duration", Duration(12, 0, 64), "18008080"),
        ("uuid", uuid.UUID("00112233-4455-6677-8899-aabbccddeeff"), "00112233445566778899aabbccddeeff"),
        ("inet", IPv4Address("10.0.0.1"), "0a000001"),
        ("inet", IPv6Address("::1"), "00000000000000000000000000000001"),
        ("text", "é", "c3a9"),
        ("blob", b"\x00\xff", "00ff"),
        ("list<int>", [1, 2], "0000000200000004000000010000000400000002"),
        ("set<int>", frozenset({3, -1}), "0000000200000004ffffffff0000000400000003"),
        ("map<text, int>", {"b": 2, "a": 1}, "000000020000000161000000040000000100000001620000000400000002"),
        ("tuple<int, text>", (1, None), "0000000400000001ffffffff"),
        ("vector<float, 2>", [1.5, -2.0], "3fc00000c0000000"),
        ("vector<text, 2>", ["a", "bc"], "0161026263"),
        ("list<text>", [], "00000000"),
    ],
)
def test_known_bytes(text, value, hexbytes):
    t = T(text)
    assert t.encode(value).hex() == hexbytes
    decoded = t.decode(bytes.fromhex(hexbytes))
    assert decoded == value
    if isinstance(value, Decimal):
        assert decoded.as_tuple().exponent == value.as_tuple().exponent


def test_decimal_keeps_scale_and_precision():
    d = Decimal("3.14159265358979323846264338327950288419716939937510")
    t = T("decimal")
    assert t.decode(t.encode(d)).as_tuple() == d.as_tuple()
    assert t.decode(t.encode(Decimal("1.000"))).as_tuple().exponent == -3


def test_out_of_range_dates_and_timestamps_decode_to_ints():
    assert T("date").decode(b"\x00\x00\x00\x00") == -(2**31)
    assert T("date").decode(bytes.fromhex("80000000")) == date(1970, 1, 1)
    assert T("timestamp").decode(bytes.fromhex("7fffffffffffffff")) == 2**63 - 1
    assert T("timestamp").encode(2**63 - 1) == bytes.fromhex("7fffffffffffffff")
    ts = T("timestamp").decode(bytes.fromhex("0000016f5e9fb6fc"))
    assert ts.tzinfo is not None and ts.utcoffset() == timedelta(0)


def test_encode_accepts_alternative_inputs():
    assert T("timestamp").encode(datetime(1970, 1, 1, 0, 0, 1)) == T("timestamp").encode(1000)  # naive = UTC
    assert T("timestamp").encode(datetime(1970, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == bytes(8)
    assert T("date").encode(0) == bytes.fromhex("80000000")
    assert T("date").encode(DriverDate(1)) == bytes.fromhex("80000001")
    assert T("time").encode(time(0, 0, 1)) == T("time").encode(10**9)
    assert T("time").encode(5) == T("time").encode(Time(5))
    assert (
        T("uuid").encode("00112233-4455-6677-8899-aabbccddeeff").hex() == "00112233445566778899aabbccddeeff"
    )
    assert T("inet").encode("127.0.0.1") == b"\x7f\x00\x00\x01"
    assert T("decimal").encode(5) == T("decimal").encode(Decimal(5))
    assert T("list<int>").encode((1, 2)) == T("list<int>").encode([1, 2])
    assert T("set<int>").encode([2, 1]) == T("set<int>").encode({1, 2})
    assert T("map<int, int>").encode([(2, 0), (1, 0)]) == T("map<int, int>").encode({1: 0, 2: 0})
    udt = T("frozen<a>", keyspace="k", user_types={("k", "a"): (("x", T("int")), ("y", T("text")))})
    assert udt.encode({"x": 1}) == udt.encode((1, None)) == udt.encode({"x": 1, "y": None})


def test_boolean_decodes_any_nonzero_as_true():
    assert T("boolean").decode(b"\x02") is True
    assert T("boolean").decode(b"\x00") is False


def test_udt_and_tuple_trailing_fields_may_be_missing():
    udt = T("frozen<a>", keyspace="k", user_types={("k", "a"): (("x", T("int")), ("y", T("text")))})
    assert udt.decode(bytes.fromhex("0000000400000007")) == {"x": 7, "y": None}
    assert T("tuple<int, text>").decode(bytes.fromhex("0000000400000007")) == (7, None)


def test_unhashable_set_elements_and_map_keys():
    t = T("set<frozen<list<int>>>")
    value = t.decode(t.encode([[2], [1, 5], [1]]))
    assert value == ([1], [1, 5], [2])  # a tuple, in Cassandra's order
    m = T("map<frozen<map<int, int>>, int>")
    assert m.decode(m.encode({})) == []
    pairs = m.decode(m.encode([({2: 0}, 1), ({1: 0}, 2)]))
    assert pairs == [({1: 0}, 2), ({2: 0}, 1)]


def test_nulls_inside_collections():
    assert T("list<int>").decode(bytes.fromhex("00000001ffffffff")) == [None]
    assert T("list<int>").encode([None]) == bytes.fromhex("00000001ffffffff")
    # a zero-length int inside a collection is Cassandra's empty value: None
    assert T("list<int>").decode(bytes.fromhex("0000000100000000")) == [None]


# --- set and map order: Cassandra's comparators -----------------------------------------------------


def _elements(t: CqlType, data: bytes) -> list[bytes]:
    count = int.from_bytes(data[:4], "big")
    pos, out = 4, []
    for _ in range(count):
        n = int.from_bytes(data[pos : pos + 4], "big")
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def test_sets_are_written_in_comparator_order():
    assert _elements(T("set<int>"), T("set<int>").encode({5, -3, 0})) == [
        (-3).to_bytes(4, "big", signed=True),
        bytes(4),
        (5).to_bytes(4, "big"),
    ]
    # text: by UTF-8 bytes
    assert [
        e.decode() for e in _elements(T("set<text>"), T("set<text>").encode({"b", "a", "é", "Z", ""}))
    ] == ["", "Z", "a", "b", "é"]
    # varint: numerically, not by bytes
    assert [
        T("varint").decode(e) for e in _elements(T("set<varint>"), T("set<varint>").encode({256, -1, 3}))
    ] == [-1, 3, 256]
    # double: numerically
    assert [
        T("double").decode(e) for e in _elements(T("set<double>"), T("set<double>").encode({1.5, -2.0, 0.0}))
    ] == [-2.0, 0.0, 1.5]
    # date: chronologically
    dates = {date(2020, 1, 1), date(1960, 1, 1), date(1970, 1, 1)}
    assert [T("date").decode(e) for e in _elements(T("set<date>"), T("set<date>").encode(dates))] == sorted(
        dates
    )
    # tuples: component-wise, null first
    t = T("set<tuple<int, text>>")
    assert [
        T("tuple<int, text>").decode(e) for e in _elements(t, t.encode({(2, "a"), (1, "b"), (1, None)}))
    ] == [(1, None), (1, "b"), (2, "a")]


def test_timeuuid_sets_are_ordered_by_time():
    # time_low of the later uuid is smaller: byte order would be wrong
    early = uuid.UUID("ffffffff-0000-1000-8000-000000000000")
    late = uuid.UUID("00000000-0001-1000-8000-000000000000")
    t = T("set<timeuuid>")
    assert [uuid.UUID(bytes=e) for e in _elements(t, t.encode({late, early}))] == [early, late]
    # equal times: the low bytes compare as signed bytes (0x80 < 0x00)
    a = uuid.UUID("00000000-0000-1000-8000-000000000000")
    b = uuid.UUID("00000000-0000-1000-0000-000000000000")
    assert [uuid.UUID(bytes=e) for e in _elements(t, t.encode({b, a}))] == [a, b]


def test_uuid_sets_are_ordered_by_version_first():
    v4 = uuid.UUID("00000000-0000-4000-8000-000000000000")
    v1 = uuid.UUID("ffffffff-ffff-1fff-bfff-ffffffffffff")
    t = T("set<uuid>")
    assert [uuid.UUID(bytes=e) for e in _elements(t, t.encode({v4, v1}))] == [v1, v4]


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, hexbytes, fragment",
    [
        ("int", "000001", "int"),
        ("int", "0000000001", "int"),
        ("bigint", "00", "bigint"),
        ("double", "00", "double"),
        ("boolean", "0000", "boolean"),
        ("uuid", "00", "uuid"),
        ("inet", "000000", "inet"),
        ("date", "00", "date"),
        ("time", "0000000000000001ff", "time"),
        ("time", "ffffffffffffffff", "time"),
        ("decimal", "00000001", "decimal"),
        ("duration", "0203", "duration"),
        ("duration", "02030400", "duration"),
        ("text", "ff", "text"),
        ("ascii", "c3", "ascii"),
        ("list<int>", "00000002000000040000000100", "list<int>"),
        ("list<int>", "0000000100000004000000", "list<int>"),
        ("list<int>", "000000", "list<int>"),
        ("list<int>", "ffffffff", "list<int>"),
        ("list<int>", "000000000000", "list<int>"),
        ("list<int>", "0000000100000003000000", "list<int>"),
        ("map<text, int>", "0000000100000001610000000400", "map<text, int>"),
        ("tuple<int>", "000000040000000100000000", "tuple<int>"),
        ("vector<float, 2>", "3fc00000", "vector<float, 2>"),
        ("vector<text, 2>", "0161", "vector<text, 2>"),
        ("vector<text, 2>", "016102626364", "vector<text, 2>"),
        ("vector<smallint, 1>", "03000100", "vector<smallint, 1>"),
        ("'org.apache.cassandra.db.marshal.EmptyType'", "00", "EmptyType"),
    ],
)
def test_bad_bytes_raise_value_codec_error(text, hexbytes, fragment):
    with pytest.raises(ValueCodecError, match=fragment.replace("(", r"\(")):
        T(text).decode(bytes.fromhex(hexbytes))


@pytest.mark.parametrize(
    "text, value",
    [
        ("int", 2**31),
        ("int", "1"),
        ("int", 1.5),
        ("tinyint", 128),
        ("text", b"x"),
        ("blob", "x"),
        ("blob", 5),
        ("boolean", "false"),
        ("varint", 1.0),
        ("decimal", Decimal("NaN")),
        ("decimal", 1.5),
        ("date", 2**31),
        ("time", NANOS_PER_DAY),
        ("time", -1),
        ("timestamp", 2**63),
        ("duration", Duration(2**31, 0, 0)),
        ("duration", 5),
        ("uuid", "not-a-uuid"),
        ("inet", "not-an-ip"),
        ("list<int>", "12"),
        ("list<int>", {1: 2}),
        ("tuple<int>", (1, 2)),
        ("vector<float, 2>", [1.0]),
        ("vector<float, 2>", [1.0, None]),
        ("map<int, int>", [1, 2]),
    ],
)
def test_bad_values_raise_value_codec_error(text, value):
    with pytest.raises(ValueCodecError, match="as " + text.replace("(", r"\(")):
        T(text).encode(value)


def test_udt_rejects_unknown_fields():
    udt = T("frozen<a>", keyspace="k", user_types={("k", "a"): (("x", T("int")),)})
    with pytest.raises(ValueCodecError, match="nope"):
        udt.encode({"nope": 1})


def test_decode_none_is_none():
    assert T("int").decode(None) is None
    assert T("list<int>").decode(None) is None


# --- differential: cassandra-driver's serializers -----------------------------------------------------


def _driver(marshal: str):
    return lookup_casstype(marshal)


#: (our type, driver marshal class, strategy of our canonical values, our value -> driver's input)
DIFFERENTIAL = [
    ("ascii", M + "AsciiType", SIMPLE_VALUES["ascii"], None),
    ("text", M + "UTF8Type", SIMPLE_VALUES["text"], None),
    ("blob", M + "BytesType", SIMPLE_VALUES["blob"], None),
    ("boolean", M + "BooleanType", SIMPLE_VALUES["boolean"], None),
    ("tinyint", M + "ByteType", SIMPLE_VALUES["tinyint"], None),
    ("smallint", M + "ShortType", SIMPLE_VALUES["smallint"], None),
    ("int", M + "Int32Type", SIMPLE_VALUES["int"], None),
    ("bigint", M + "LongType", SIMPLE_VALUES["bigint"], None),
    ("counter", M + "CounterColumnType", SIMPLE_VALUES["counter"], None),
    ("varint", M + "IntegerType", SIMPLE_VALUES["varint"], None),
    ("float", M + "FloatType", SIMPLE_VALUES["float"], None),
    ("double", M + "DoubleType", SIMPLE_VALUES["double"], None),
    ("decimal", M + "DecimalType", SIMPLE_VALUES["decimal"], None),
    ("date", M + "SimpleDateType", SIMPLE_VALUES["date"], DriverDate),
    ("time", M + "TimeType", SIMPLE_VALUES["time"], None),
    (
        "timestamp",
        M + "TimestampType",
        st.integers(*INT64).map(canonical_timestamp),
        lambda v: v if isinstance(v, int) else (v - EPOCH) // timedelta(milliseconds=1),
    ),
    ("duration", M + "DurationType", SIMPLE_VALUES["duration"], None),
    ("uuid", M + "UUIDType", SIMPLE_VALUES["uuid"], None),
    ("timeuuid", M + "TimeUUIDType", SIMPLE_VALUES["timeuuid"], None),
    ("inet", M + "InetAddressType", SIMPLE_VALUES["inet"], str),
    ("frozen<list<int>>", f"{M}ListType({M}Int32Type)", st.lists(SIMPLE_VALUES["int"]), None),
    ("frozen<list<text>>", f"{M}ListType({M}UTF8Type)", st.lists(SIMPLE_VALUES["text"]), None),
    ("frozen<set<int>>", f"{M}SetType({M}Int32Type)", st.frozensets(SIMPLE_VALUES["int"]), sorted),
    ("frozen<set<text>>", f"{M}SetType({M}UTF8Type)", st.frozensets(SIMPLE_VALUES["text"]), sorted),
    (
        "frozen<map<text, int>>",
        f"{M}MapType({M}UTF8Type,{M}Int32Type)",
        st.dictionaries(SIMPLE_VALUES["text"], SIMPLE_VALUES["int"]),
        lambda d: dict(sorted(d.items())),
    ),
    (
        "frozen<map<int, frozen<list<double>>>>",
        f"{M}MapType({M}Int32Type,{M}ListType({M}DoubleType))",
        st.dictionaries(SIMPLE_VALUES["int"], st.lists(SIMPLE_VALUES["double"], max_size=3)),
        lambda d: dict(sorted(d.items())),
    ),
    (
        "tuple<int, text, double>",
        f"{M}TupleType({M}Int32Type,{M}UTF8Type,{M}DoubleType)",
        st.tuples(
            st.none() | SIMPLE_VALUES["int"],
            st.none() | SIMPLE_VALUES["text"],
            st.none() | SIMPLE_VALUES["double"],
        ),
        None,
    ),
    (
        "tuple<uuid, frozen<list<bigint>>>",
        f"{M}TupleType({M}UUIDType,{M}ListType({M}LongType))",
        st.tuples(SIMPLE_VALUES["uuid"], st.lists(SIMPLE_VALUES["bigint"], max_size=3)),
        None,
    ),
    (
        "vector<float, 3>",
        f"{M}VectorType({M}FloatType,3)",
        st.lists(SIMPLE_VALUES["float"], min_size=3, max_size=3),
        None,
    ),
    (
        "vector<bigint, 2>",
        f"{M}VectorType({M}LongType,2)",
        st.lists(SIMPLE_VALUES["bigint"], min_size=2, max_size=2),
        None,
    ),
    (
        "vector<text, 2>",
        f"{M}VectorType({M}UTF8Type,2)",
        st.lists(SIMPLE_VALUES["text"], min_size=2, max_size=2),
        None,
    ),
    (
        "vector<varint, 2>",
        f"{M}VectorType({M}IntegerType,2)",
        st.lists(SIMPLE_VALUES["varint"], min_size=2, max_size=2),
        None,
    ),
]


@pytest.mark.parametrize("ours, marshal, values, to_driver", DIFFERENTIAL, ids=[d[0] for d in DIFFERENTIAL])
@SETTINGS
@given(data=st.data())
def test_matches_cassandra_driver(ours, marshal, values, to_driver, data):
    t = T(ours)
    driver = _driver(marshal)
    assert replace(T(marshal), frozen=t.frozen) == t  # marshal names say nothing of frozenness
    value = data.draw(values)
    driver_bytes = driver.serialize(to_driver(value) if to_driver else value, 4)
    assert t.encode(value) == driver_bytes
    assert t.decode(driver_bytes) == value


def test_matches_cassandra_driver_user_type():
    # (the driver's parser reads an all-digit hex name as a number: pick one with letters)
    marshal = f"{M}UserType(ks,{b'kz'.hex()},{b'street'.hex()}:{M}UTF8Type,{b'zip'.hex()}:{M}Int32Type)"
    t = T(marshal)
    driver = _driver(marshal)
    for value in ({"street": "Main", "zip": 12345}, {"street": None, "zip": -1}, {"street": "", "zip": None}):
        driver_bytes = driver.serialize((value["street"], value["zip"]), 4)
        assert t.encode(value) == driver_bytes
        assert t.decode(driver_bytes) == value


REVERSE = [d for d in DIFFERENTIAL if d[0] in SIMPLE_TYPE_WIDTHS and d[0] != "timestamp"]


@pytest.mark.parametrize("ours, marshal, values, to_driver", REVERSE, ids=[d[0] for d in REVERSE])
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_driver_decodes_our_bytes(ours, marshal, values, to_driver, data):
    value = data.draw(values)
    decoded = _driver(marshal).deserialize(T(ours).encode(value), 4)
    expected = to_driver(value) if to_driver else value
    if ours == "date":
        decoded, expected = decoded.days_from_epoch, expected.days_from_epoch
    if ours == "inet":  # the driver's text form of an address differs from Python's
        decoded, expected = ip_address(decoded), value
    assert decoded == expected


@settings(max_examples=50, deadline=None)
@given(st.integers(-(2**40), 2**40))
def test_driver_decodes_our_timestamps(ms):
    # the driver divides by 1000.0, so only a moderate range is exact
    decoded = _driver(M + "TimestampType").deserialize(T("timestamp").encode(ms), 4)
    assert (decoded.replace(tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1) == ms


# --- multicell cells ---------------------------------------------------------------------------------


def test_cell_paths():
    lst = T("list<text>")
    u = uuid.uuid1()
    assert lst.decode_cell_path(u.bytes) == u
    assert lst.encode_cell_path(u) == u.bytes
    assert lst.element_value_type == T("text")
    assert lst.cell_value_type(u.bytes) == T("text")

    s = T("set<int>")
    assert s.decode_cell_path(b"\x00\x00\x00\x07") == 7
    assert s.encode_cell_path(7) == b"\x00\x00\x00\x07"
    assert s.element_value_type is None
    assert s.cell_value_type(b"\x00\x00\x00\x07") is None

    m = T("map<text, frozen<list<int>>>")
    assert m.decode_cell_path(b"key") == "key"
    assert m.encode_cell_path("key") == b"key"
    assert m.element_value_type == T("frozen<list<int>>")

    udt = T("a", keyspace="k", user_types={("k", "a"): (("x", T("int")), ("y", T("list<text>")))})
    assert udt.is_multicell
    assert udt.decode_cell_path(b"\x00\x01") == "y"
    assert udt.encode_cell_path("y") == b"\x00\x01"
    assert udt.cell_value_type(b"\x00\x01") == T("frozen<list<text>>")
    assert udt.cell_value_type(b"\x00\x00") == T("int")
    assert udt.element_value_type is None


def test_bad_cell_paths():
    with pytest.raises(ValueCodecError, match="list<text>"):
        T("list<text>").decode_cell_path(b"\x00" * 15)
    with pytest.raises(ValueCodecError, match="set<int>"):
        T("set<int>").decode_cell_path(b"\x00")
    udt = T("a", keyspace="k", user_types={("k", "a"): (("x", T("int")),)})
    with pytest.raises(ValueCodecError, match="field 3"):
        udt.decode_cell_path(b"\x00\x03")
    with pytest.raises(ValueCodecError):
        udt.cell_value_type(b"\x00")
    with pytest.raises(ValueCodecError):
        udt.encode_cell_path("nope")
    for frozen in (T("frozen<list<int>>"), T("int"), T("tuple<int>")):
        with pytest.raises(CqlTypeError, match="not a multicell"):
            frozen.decode_cell_path(b"")


# --- Arrow -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, arrow",
    [
        ("ascii", pa.string()),
        ("text", pa.string()),
        ("blob", pa.binary()),
        ("boolean", pa.bool_()),
        ("tinyint", pa.int8()),
        ("smallint", pa.int16()),
        ("int", pa.int32()),
        ("bigint", pa.int64()),
        ("counter", pa.int64()),
        ("varint", pa.string()),
        ("decimal", pa.string()),
        ("float", pa.float32()),
        ("double", pa.float64()),
        ("date", pa.date32()),
        ("time", pa.time64("ns")),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("duration", pa.month_day_nano_interval()),
        ("uuid", pa.binary(16)),
        ("timeuuid", pa.binary(16)),
        ("inet", pa.string()),
        (f"'{M}XType'", pa.binary()),
        ("list<int>", pa.list_(pa.int32())),
        ("set<text>", pa.list_(pa.string())),
        ("vector<float, 3>", pa.list_(pa.float32())),
        ("map<text, int>", pa.map_(pa.string(), pa.int32())),
        ("tuple<int, text>", pa.struct([("0", pa.int32()), ("1", pa.string())])),
    ],
)
def test_arrow_types(text, arrow):
    assert T(text).arrow_type() == arrow


def test_arrow_udt_struct():
    udt = T("frozen<a>", keyspace="k", user_types={("k", "a"): (("x", T("int")), ("y", T("text")))})
    assert udt.arrow_type() == pa.struct([("x", pa.int32()), ("y", pa.string())])
    arr = pa.array([udt.to_arrow_value({"x": 1, "y": None})], type=udt.arrow_type())
    assert arr.to_pylist() == [{"x": 1, "y": None}]


@SETTINGS
@given(typed_values())
def test_arrow_conversion_works_for_every_type(tv):
    t, value = tv
    arr = pa.array([t.to_arrow_value(value), t.to_arrow_value(None)], type=t.arrow_type())
    assert len(arr) == 2 and arr.null_count >= 1


@pytest.mark.parametrize(
    "text, value, expected",
    [
        ("int", -5, -5),
        ("varint", 2**100, str(2**100)),
        ("decimal", Decimal("-1.250"), "-1.250"),
        ("time", Time(3_723_000_000_005), 3_723_000_000_005),  # exact nanoseconds (checked as int64)
        ("date", date(2020, 2, 29), date(2020, 2, 29)),
        (
            "timestamp",
            datetime(2020, 1, 1, 0, 0, 0, 123000, tzinfo=UTC),
            datetime(2020, 1, 1, 0, 0, 0, 123000, tzinfo=UTC),
        ),
        ("uuid", uuid.UUID(int=1), uuid.UUID(int=1).bytes),
        ("inet", IPv6Address("::1"), "::1"),
        ("set<int>", frozenset({3, 1, 2}), [1, 2, 3]),
        ("map<text, int>", {"a": 1}, [("a", 1)]),
        ("tuple<int, text>", (1, "x"), {"0": 1, "1": "x"}),
        ("duration", Duration(1, 2, 3), pa.MonthDayNano([1, 2, 3])),
    ],
)
def test_arrow_values(text, value, expected):
    t = T(text)
    arr = pa.array([t.to_arrow_value(value)], type=t.arrow_type())
    if pa.types.is_time(arr.type):  # as_py of time64[ns] needs pandas and truncates: compare the raw ns
        arr = arr.cast(pa.int64())
    assert arr.to_pylist()[0] == expected


def test_arrow_time_is_nanoseconds():
    arr = pa.array([T("time").to_arrow_value(Time(1_000_000_001))], type=T("time").arrow_type())
    assert arr.cast(pa.int64()).to_pylist() == [1_000_000_001]


# --- JSON --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value, expected",
    [
        ("blob", b"\x00\xab", "0x00ab"),
        ("text", "x", "x"),
        ("boolean", True, True),
        ("varint", 2**80, 2**80),
        ("decimal", Decimal("1.50"), "1.50"),
        ("double", float("nan"), "NaN"),
        ("double", float("inf"), "Infinity"),
        ("float", float("-inf"), "-Infinity"),
        ("double", 1.5, 1.5),
        ("date", date(2020, 1, 2), "2020-01-02"),
        ("date", -(2**31), -(2**31)),
        ("time", Time(3_723_000_000_001), "01:02:03.000000001"),
        ("timestamp", datetime(2020, 1, 2, 3, 4, 5, 6000, tzinfo=UTC), "2020-01-02T03:04:05.006Z"),
        ("timestamp", datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000Z"),
        ("timestamp", 2**62, 2**62),
        ("duration", Duration(14, 3, 3_723_004_005_006), "1y2mo3d1h2m3s4ms5us6ns"),
        ("duration", Duration(0, -1, 0), "-1d"),
        ("duration", Duration(0, 0, 0), "0s"),
        ("duration", Duration(12, 0, 0), "1y"),
        ("uuid", uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ("inet", IPv4Address("1.2.3.4"), "1.2.3.4"),
        ("list<blob>", [b"\x01"], ["0x01"]),
        ("set<int>", frozenset({3, -1, 2}), [-1, 2, 3]),
        ("map<text, int>", {"a": 1}, {"a": 1}),
        ("map<int, text>", {2: "b", 1: "a"}, [[2, "b"], [1, "a"]]),
        ("tuple<int, date>", (1, date(2000, 1, 1)), [1, "2000-01-01"]),
        ("vector<float, 2>", [1.0, 2.0], [1.0, 2.0]),
        ("list<int>", None, None),
    ],
)
def test_json_values(text, value, expected):
    assert T(text).to_json(value) == expected


def test_json_udt():
    udt = T("frozen<a>", keyspace="k", user_types={("k", "a"): (("x", T("int")), ("y", T("uuid")))})
    assert udt.to_json({"x": 1, "y": None}) == {"x": 1, "y": None}


@SETTINGS
@given(typed_values())
def test_json_is_serializable_for_every_type(tv):
    t, value = tv
    json.dumps(t.to_json(value), allow_nan=False)


# --- CqlType surface ---------------------------------------------------------------------------------


def test_decode_error_names_type_and_bytes():
    with pytest.raises(ValueCodecError) as info:
        T("map<text, int>").decode(bytes.fromhex("00000001000000016100000004000000"))
    message = str(info.value)
    assert "map<text, int>" in message and "0x00000001" in message


def test_ip_address_strategy_sanity():
    # ipaddress values round-trip through both widths
    for text in ("0.0.0.0", "255.255.255.255", "::ffff:1.2.3.4", "2001:db8::1"):
        value = ip_address(text)
        assert T("inet").decode(T("inet").encode(value)) == value
