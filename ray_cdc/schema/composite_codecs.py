"""Native-protocol codecs of the composite types (list, set, map, tuple, UDT, vector, custom), and
the cell paths of multicell columns (format doc §13.3).

A composite codec is built from its parameters' codecs (`t.params[i]._codec`), so this module only
reads CqlType attributes and never needs the class itself at run time.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from uuid import UUID

from ray_cdc.commitlog.primitives import read_uvint, uvint_bytes
from ray_cdc.schema.type_names import MARSHAL_PACKAGE
from ray_cdc.schema.value_codecs import Codec, blob_decode, blob_encode
from ray_cdc.schema.value_order import as_uuid, null_safe

if TYPE_CHECKING:
    from ray_cdc.schema.types import CqlType

# Not imported from value_codecs: CPython compiles `name.method()` on an imported name as an
# attribute load plus a call (it assumes a module), which costs ~15% in the element loops below.
_I32 = struct.Struct(">i")
_U16 = struct.Struct(">H")
_NULL = b"\xff\xff\xff\xff"

#: custom classes Cassandra writes without a length (`valueLengthIfFixed`, format doc §13.1)
_CUSTOM_WIDTHS = {MARSHAL_PACKAGE + "LexicalUUIDType": 16}


def _read_elements(data, count: int, pos: int, decode, out: list) -> int:
    """Read `count` [int32 length][bytes] elements (length -1 = null) into `out`; return the end."""
    size = len(data)
    append = out.append
    for i in range(count):
        if pos + 4 > size:
            raise ValueError(f"truncated: element {i} of {count} has no length ({size - pos} bytes left)")
        length = _I32.unpack_from(data, pos)[0]
        pos += 4
        if length < 0:
            append(None)
            continue
        end = pos + length
        if end > size:
            raise ValueError(f"truncated: element {i} of {count} needs {length} bytes, {size - pos} left")
        append(decode(data[pos:end]))
        pos = end
    return pos


def _write_element(parts: list, value, encode) -> None:
    if value is None:
        parts.append(_NULL)
        return
    data = encode(value)
    parts.append(_I32.pack(len(data)))
    parts.append(data)


def _read_count(data) -> int:
    if len(data) < 4:
        raise ValueError(f"truncated: a collection starts with a 4-byte count, got {len(data)} bytes")
    count = _I32.unpack_from(data)[0]
    if count < 0:
        raise ValueError(f"negative element count {count}")
    return count


def _check_end(data, pos: int) -> None:
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} bytes after the last element")


def _decode_elements(data, decode) -> list | None:
    if not data:
        return None
    count = _read_count(data)
    out: list = []
    _check_end(data, _read_elements(data, count, 4, decode, out))
    return out


def _encode_elements(items, encode) -> bytes:
    parts = [_I32.pack(len(items))]
    for item in items:
        _write_element(parts, item, encode)
    return b"".join(parts)


def _check_sequence(value, what: str) -> None:
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not hasattr(value, "__len__"):
        raise TypeError(f"expected a {what}, got {type(value).__name__}")


def _list_codec(t: CqlType) -> Codec:
    elem = t.params[0]._codec
    edecode, eencode, ekey = elem.decode, elem.encode, null_safe(elem.key)

    def decode(data):
        return _decode_elements(data, edecode)

    def encode(value):
        if value is None:
            return b""
        _check_sequence(value, "list")
        return _encode_elements(value, eencode)

    def key(value):
        return tuple(map(ekey, value))

    return Codec(decode, encode, key, False, None)


def _set_codec(t: CqlType) -> Codec:
    elem = t.params[0]._codec
    edecode, eencode, ekey = elem.decode, elem.encode, null_safe(elem.key)
    container = frozenset if elem.hashable else tuple

    def decode(data):
        items = _decode_elements(data, edecode)
        return None if items is None else container(items)

    def encode(value):
        if value is None:
            return b""
        _check_sequence(value, "set")
        return _encode_elements(sorted(value, key=ekey), eencode)

    def key(value):
        return tuple(sorted(map(ekey, value)))

    return Codec(decode, encode, key, elem.hashable, None)


def _map_items(value):
    if isinstance(value, Mapping):
        return value.items()
    _check_sequence(value, "map")
    return value


def _map_codec(t: CqlType) -> Codec:
    kc, vc = t.params[0]._codec, t.params[1]._codec
    kdecode, vdecode, kencode, vencode = kc.decode, vc.decode, kc.encode, vc.encode
    kkey, vkey = null_safe(kc.key), null_safe(vc.key)
    as_dict = kc.hashable

    def decode(data):
        if not data:
            return None
        count = _read_count(data)
        pos = 4
        pairs = []
        for _ in range(count):
            slot: list = []
            pos = _read_elements(data, 1, pos, kdecode, slot)
            pos = _read_elements(data, 1, pos, vdecode, slot)
            pairs.append((slot[0], slot[1]))
        _check_end(data, pos)
        return dict(pairs) if as_dict else pairs

    def sort_key(kv):
        return kkey(kv[0])

    def encode(value):
        if value is None:
            return b""
        items = sorted(_map_items(value), key=sort_key)
        parts = [_I32.pack(len(items))]
        for k, v in items:
            _write_element(parts, k, kencode)
            _write_element(parts, v, vencode)
        return b"".join(parts)

    def key(value):
        return tuple(sorted((kkey(k), vkey(v)) for k, v in _map_items(value)))

    return Codec(decode, encode, key, False, None)


def _fields_codec(types: tuple[CqlType, ...]):
    """Decode/encode/key of a tuple-shaped value: each field [int32 length][bytes], -1 = null,
    trailing fields may be missing (a UDT that gained fields after the value was written)."""
    codecs = [p._codec for p in types]
    decoders = [c.decode for c in codecs]
    encoders = [c.encode for c in codecs]
    keys = [null_safe(c.key) for c in codecs]
    n = len(types)

    def decode(data) -> list | None:
        if not data:
            return None
        size = len(data)
        pos = 0
        out: list = []
        for dec in decoders:
            if pos == size:
                out.append(None)
            else:
                pos = _read_elements(data, 1, pos, dec, out)
        if pos != size:
            raise ValueError(f"{size - pos} bytes after the last of the {n} fields")
        return out

    def encode(values) -> bytes:
        if len(values) > n:
            raise ValueError(f"{len(values)} values for {n} fields")
        parts: list = []
        for i, enc in enumerate(encoders):
            _write_element(parts, values[i] if i < len(values) else None, enc)
        return b"".join(parts)

    def key(values):
        return tuple(k(values[i] if i < len(values) else None) for i, k in enumerate(keys))

    return decode, encode, key, all(c.hashable for c in codecs)


def _tuple_codec(t: CqlType) -> Codec:
    fdecode, fencode, fkey, hashable = _fields_codec(t.params)

    def decode(data):
        values = fdecode(data)
        return None if values is None else tuple(values)

    def encode(value):
        if value is None:
            return b""
        _check_sequence(value, "tuple")
        return fencode(value)

    return Codec(decode, encode, fkey, hashable, None)


def _udt_codec(t: CqlType) -> Codec:
    fdecode, fencode, fkey, _ = _fields_codec(t.params)
    names = t.field_names
    known = frozenset(names)

    def as_values(value):
        if isinstance(value, Mapping):
            unknown = set(value) - known
            if unknown:
                raise KeyError(f"no field(s) {sorted(unknown)} in {t.udt_name}")
            return [value.get(n) for n in names]
        _check_sequence(value, "dict of fields")
        return value

    def decode(data):
        values = fdecode(data)
        return None if values is None else dict(zip(names, values))

    def encode(value):
        return b"" if value is None else fencode(as_values(value))

    def key(value):
        return fkey(as_values(value))

    return Codec(decode, encode, key, False, None)


#: vectors of these element types unpack in one struct call
_VECTOR_STRUCT_CODES = {"float": "f", "double": "d", "int": "i", "bigint": "q"}


def _vector_codec(t: CqlType) -> Codec:
    elem_type = t.params[0]
    elem = elem_type._codec
    n = t.dimension
    ekey = elem.key
    width = elem.width
    code = _VECTOR_STRUCT_CODES.get(elem_type.name)
    if code is not None:
        decode, encode = _vector_struct_codec(n, code)
    elif width is not None:
        decode, encode = _vector_fixed_codec(n, width, elem)
    else:
        decode, encode = _vector_variable_codec(n, elem)

    def checked_encode(value):
        if value is None:
            return b""
        _check_sequence(value, "list")
        if len(value) != n:
            raise ValueError(f"vector needs {n} elements, got {len(value)}")
        if any(v is None for v in value):
            raise ValueError("vector elements cannot be null")
        return encode(value)

    def key(value):
        return tuple(map(ekey, value))

    return Codec(decode, checked_encode, key, False, None if width is None else n * width)


def _vector_struct_codec(n: int, code: str):
    st = struct.Struct(f">{n}{code}")

    def decode(data):
        if not data:
            return None
        if len(data) != st.size:
            raise ValueError(f"vector needs {st.size} bytes, got {len(data)}")
        return list(st.unpack(data))

    def encode(value):
        return st.pack(*value)

    return decode, encode


def _vector_fixed_codec(n: int, width: int, elem: Codec):
    edecode, eencode = elem.decode, elem.encode
    total = n * width

    def decode(data):
        if not data:
            return None
        if len(data) != total:
            raise ValueError(f"vector needs {total} bytes, got {len(data)}")
        return [edecode(data[i : i + width]) for i in range(0, total, width)]

    def encode(value):
        parts = [eencode(v) for v in value]
        if any(len(p) != width for p in parts):
            raise ValueError(f"vector elements must encode to {width} bytes")
        return b"".join(parts)

    return decode, encode


def _vector_variable_codec(n: int, elem: Codec):
    # VectorType.VariableLengthSerializer: each element with an unsigned vint length
    edecode, eencode = elem.decode, elem.encode

    def decode(data):
        if not data:
            return None
        size = len(data)
        pos = 0
        out = []
        for i in range(n):
            if pos >= size:
                raise ValueError(f"truncated: vector element {i} of {n} missing")
            length, pos = read_uvint(data, pos)
            end = pos + length
            if end > size:
                raise ValueError(f"truncated: vector element {i} needs {length} bytes, {size - pos} left")
            out.append(edecode(data[pos:end]))
            pos = end
        if pos != size:
            raise ValueError(f"{size - pos} bytes after the last vector element")
        return out

    def encode(value):
        parts = []
        for v in value:
            data = eencode(v)
            parts.append(uvint_bytes(len(data)))
            parts.append(data)
        return b"".join(parts)

    return decode, encode


def _custom_codec(t: CqlType) -> Codec:
    return Codec(blob_decode, blob_encode, bytes, True, _CUSTOM_WIDTHS.get(t.custom_class))


COMPOSITE_CODEC_BUILDERS: dict[str, Callable[[CqlType], Codec]] = {
    "list": _list_codec,
    "set": _set_codec,
    "map": _map_codec,
    "tuple": _tuple_codec,
    "udt": _udt_codec,
    "vector": _vector_codec,
    "custom": _custom_codec,
}


# --- cell paths ----------------------------------------------------------------------------------------


def _list_path_decode(t, path):
    if len(path) != 16:
        raise ValueError(f"a list cell path is a 16-byte timeuuid, got {len(path)} bytes")
    return UUID(bytes=bytes(path))


def _list_path_encode(t, element):
    return as_uuid(element).bytes


PATH_DECODERS = {
    "list": _list_path_decode,
    "set": lambda t, path: t.params[0]._codec.decode(path),
    "map": lambda t, path: t.params[0]._codec.decode(path),
    "udt": lambda t, path: t.field_names[t._field_index(path)],
}

PATH_ENCODERS = {
    "list": _list_path_encode,
    "set": lambda t, element: t.params[0]._codec.encode(element),
    "map": lambda t, element: t.params[0]._codec.encode(element),
    "udt": lambda t, element: _U16.pack(t.field_names.index(element)),
}
