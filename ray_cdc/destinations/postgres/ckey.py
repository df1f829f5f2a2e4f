"""Order-preserving byte keys of clustering prefixes, for range tombstones.

PostgreSQL cannot compare clustering values in Cassandra's order (timeuuid sorts by time, DESC
columns reverse, text sorts by bytes), so each row carries `_ck`: its clustering values encoded so
that `bytea` comparison (memcmp) gives Cassandra's clustering order. Each component is a tag byte
(0x01) plus an order-preserving encoding (fixed width, or escaped bytes with a terminator), the whole
component inverted for a DESC column (tag 0xFE then). No component starts with 0xFF, so for a prefix
P every key extending P lies in [P, P || 0xFF): that is how prefix bounds become byte bounds.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_cdc.schema.model import ColumnSchema

TAG = b"\x01"
AFTER = b"\xff"  # P || AFTER is above every key extending P
_INVERT = bytes(255 - i for i in range(256))


def _signed(fmt: str, bias: int) -> Callable:
    packer = struct.Struct(fmt)
    return lambda v: packer.pack(v + bias)


def _escaped(data: bytes) -> bytes:
    return data.replace(b"\x00", b"\x00\xff") + b"\x00\x01"


def _float(fmt: str, ufmt: str, bits: int) -> Callable:
    packer, unpacker = struct.Struct(fmt), struct.Struct(ufmt)
    sign = 1 << (bits - 1)
    mask = (1 << bits) - 1

    def encode(v: float) -> bytes:
        (u,) = unpacker.unpack(packer.pack(v))
        return unpacker.pack(u ^ mask if u & sign else u | sign)
    return encode


def _timeuuid(raw: bytes) -> bytes:
    # Cassandra's TimeUUIDType: the 60-bit timestamp, then the low 8 bytes as signed bytes
    msb = int.from_bytes(raw[:8], "big")
    ts = ((msb & 0xFFF) << 48) | (((msb >> 16) & 0xFFFF) << 32) | (msb >> 32)
    return ts.to_bytes(8, "big") + bytes(b ^ 0x80 for b in raw[8:])


def _uuid(raw: bytes) -> bytes:
    # UUIDType: the version first; time-based ones by time, others by their bytes
    version = raw[6] >> 4
    return bytes([version]) + (_timeuuid(raw) if version == 1 else raw)


_ENCODERS: dict[str, Callable] = {
    "tinyint": _signed(">B", 1 << 7), "smallint": _signed(">H", 1 << 15), "int": _signed(">I", 1 << 31),
    "bigint": _signed(">Q", 1 << 63), "counter": _signed(">Q", 1 << 63), "time": _signed(">Q", 0),
    "boolean": lambda v: b"\x01" if v else b"\x00",
    "float": _float(">f", ">I", 32), "double": _float(">d", ">Q", 64),
    "text": lambda v: _escaped(v.encode()), "ascii": lambda v: _escaped(v.encode()),
    "varchar": lambda v: _escaped(v.encode()), "blob": _escaped, "inet": None,
    "uuid": _uuid, "timeuuid": _timeuuid,
}


def _inet(v: str) -> bytes:
    import ipaddress

    return _escaped(ipaddress.ip_address(v).packed)


def _python_values(column: ColumnSchema, array: pa.Array) -> list:
    """Arrow values in the form the encoders take (timestamps as ms, dates as days, time as ns)."""
    name = column.type.name
    if name == "timestamp":
        return array.cast(pa.int64()).to_pylist()
    if name == "date":
        return array.cast(pa.int32()).to_pylist()
    if name == "time":
        return array.cast(pa.int64()).to_pylist()
    return array.to_pylist()


def component_encoder(column: ColumnSchema) -> Callable[[object], bytes]:
    name = column.type.name
    if name == "timestamp":
        base = _ENCODERS["bigint"]
    elif name == "date":
        base = _signed(">I", 1 << 31)  # SimpleDateType: unsigned days with the epoch at 2^31
    elif name == "inet":
        base = _inet
    else:
        base = _ENCODERS.get(name)
    if base is None:
        raise NotImplementedError(f"no order key for clustering type {column.type.cql()} ({column.name})")
    if column.reversed:
        return lambda v: (TAG + base(v)).translate(_INVERT)
    return lambda v: TAG + base(v)


def order_keys(columns: tuple[ColumnSchema, ...], arrays: list[pa.Array], sizes: list[int] | None = None) -> list:
    """The `_ck` of each row: the first `sizes[i]` components (all, by default); None when a needed
    component is null."""
    n = len(arrays[0]) if arrays else 0
    parts = []
    for column, array in zip(columns, arrays):
        encode = component_encoder(column)
        parts.append([None if v is None else encode(v) for v in _python_values(column, array)])
    out = []
    for i in range(n):
        size = len(columns) if sizes is None else sizes[i]
        comps = [p[i] for p in parts[:size]]
        out.append(None if None in comps else b"".join(comps))
    return out


def range_bounds(prefix_start: bytes | None, start_inclusive: bool, prefix_end: bytes | None,
                 end_inclusive: bool) -> tuple[bytes, bytes]:
    """[lo, hi) byte bounds of a range tombstone from its encoded prefix bounds (None: open)."""
    lo = b"" if prefix_start is None else (prefix_start if start_inclusive else prefix_start + AFTER)
    hi = AFTER if prefix_end is None else (prefix_end + AFTER if end_inclusive else prefix_end)
    return lo, hi


# --- the same keys, a column at a time (the write path's `_ck`) -----------------------------------------

#: integer-like clustering types -> (Arrow storage to read, big-endian unsigned width, bias), as above
_BIASED: dict[str, tuple[pa.DataType, int, int]] = {
    "tinyint": (pa.int8(), 1, 1 << 7), "smallint": (pa.int16(), 2, 1 << 15), "int": (pa.int32(), 4, 1 << 31),
    "bigint": (pa.int64(), 8, 1 << 63), "counter": (pa.int64(), 8, 1 << 63), "time": (pa.int64(), 8, 0),
    "timestamp": (pa.int64(), 8, 1 << 63), "date": (pa.int32(), 4, 1 << 31),
}


def _biased_component(column: ColumnSchema, array: pa.Array) -> pa.Array:
    storage, width, bias = _BIASED[column.type.name]
    values = pc.fill_null(array.cast(storage), 0).to_numpy(zero_copy_only=False)
    # adding the bias modulo 2^(8 * width) flips the sign bit: negative values sort first
    unsigned = (values.astype(np.int64).astype(np.uint64) + np.uint64(bias)).astype(f">u{width}")
    n = len(array)
    cells = np.empty((n, 1 + width), dtype=np.uint8)
    cells[:, 0] = TAG[0]
    cells[:, 1:] = unsigned.view(np.uint8).reshape(n, width)
    if column.reversed:
        cells = 255 - cells
    validity = None
    if array.null_count:
        validity = pa.py_buffer(np.packbits(array.is_valid().to_numpy(zero_copy_only=False), bitorder="little"))
    offsets = np.arange(n + 1, dtype=np.int32) * (1 + width)
    return pa.Array.from_buffers(pa.binary(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(cells)],
                                 null_count=array.null_count)


def _python_component(column: ColumnSchema, array: pa.Array) -> pa.Array:
    encode = component_encoder(column)
    return pa.array([None if v is None else encode(v) for v in _python_values(column, array)], pa.binary())


def order_key_array(columns: tuple[ColumnSchema, ...], arrays: list[pa.Array]) -> pa.Array:
    """`order_keys` of whole rows as one Arrow binary array (null where a component is null)."""
    parts = [(_biased_component if c.type.name in _BIASED else _python_component)(c, a)
             for c, a in zip(columns, arrays)]
    return pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.binary()))
