"""CQL types: parsing type strings, and the value codecs the commitlog decoder and writer use.

A `CqlType` knows four things the commitlog format needs (format doc §13):
- `fixed_width`: the number of bytes a value takes when the type has a fixed width in the commitlog
  (written without a length), else None (written as vbytes);
- `is_multicell`: a non-frozen collection or UDT, stored as one cell per element (a complex column);
- `decode(bytes)` / `encode(value)`: the CQL native-protocol (v3+) value encoding;
- `arrow_type()`: the Arrow type of the decoded value.

Python values (lossless; `cassandra.util` value classes where Python has no exact equivalent):
ascii/text/varchar -> str; blob -> bytes; boolean -> bool; tinyint/smallint/int/bigint/varint/counter
-> int; float/double -> float; decimal -> decimal.Decimal; date -> datetime.date (int days since
1970-01-01 when outside date's range); time -> cassandra.util.Time (nanosecond precision);
timestamp -> datetime.datetime, timezone-aware UTC (int milliseconds when outside datetime's range);
duration -> cassandra.util.Duration; uuid/timeuuid -> uuid.UUID; inet -> ipaddress.IPv4Address or
IPv6Address; list -> list; set -> frozenset (tuple when an element is unhashable); map -> dict
(list of (k, v) pairs when a key is unhashable); tuple -> tuple; UDT -> dict field -> value;
vector -> list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: CQL names of the simple types, with the width they have in the commitlog (None = vbytes).
SIMPLE_TYPE_WIDTHS: dict[str, int | None] = {
    "ascii": None,
    "text": None,
    "varchar": None,
    "blob": None,
    "boolean": 1,
    "tinyint": None,
    "smallint": None,
    "int": 4,
    "bigint": 8,
    "varint": None,
    "float": 4,
    "double": 8,
    "decimal": None,
    "counter": None,
    "date": None,
    "time": None,
    "timestamp": 8,
    "duration": None,
    "uuid": 16,
    "timeuuid": 16,
    "inet": None,
    "empty": 0,
}


@dataclass(frozen=True)
class CqlType:
    """A parsed CQL type. Build with `parse_cql_type`, not directly."""

    name: str  # a key of SIMPLE_TYPE_WIDTHS, or list/set/map/tuple/udt/vector/custom
    params: tuple[CqlType, ...] = ()
    frozen: bool = False
    keyspace: str | None = None  # udt
    udt_name: str | None = None  # udt
    field_names: tuple[str, ...] = ()  # udt
    dimension: int | None = None  # vector
    custom_class: str | None = None  # custom ('org.apache...'): decoded as blob
    _codec: Any = field(default=None, compare=False, repr=False, hash=False)

    @property
    def fixed_width(self) -> int | None:
        raise NotImplementedError

    @property
    def is_multicell(self) -> bool:
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode_cell_path(self, path: bytes) -> Any:
        """For a multicell type: the element a cell path names (list: timeuuid, set: element,
        map: key, udt: field name)."""
        raise NotImplementedError

    def arrow_type(self):
        raise NotImplementedError

    def to_json(self, value: Any) -> Any:
        """A JSON-native form of a decoded value (blob -> '0x..' hex, as CQL writes blob literals)."""
        raise NotImplementedError

    def cql(self) -> str:
        """The type as CQL writes it, e.g. `frozen<map<text, int>>`."""
        raise NotImplementedError


def parse_cql_type(text: str, *, keyspace: str | None = None, user_types=None) -> CqlType:
    """Parse a CQL type string (`map<text, frozen<list<int>>>`, `vector<float, 3>`, a UDT name, or
    a quoted custom class). `user_types` maps (keyspace, name) -> ((field name, CqlType), ...)."""
    raise NotImplementedError
