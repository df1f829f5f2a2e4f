"""Cassandra's binary primitives (format doc §3): unsigned/signed vints, vbytes, CRC helpers.

Readers take `(buf, pos)` and return `(value, new_pos)`: plain functions over ints are the fastest
shape CPython offers for a byte walk. They raise IndexError/ValueError on short input; the mutation
decoder turns those into a typed error with the entry's position.
"""

from __future__ import annotations

import struct
import zlib

_U64 = (1 << 64) - 1
_I64_SIGN = 1 << 63


INT = struct.Struct(">i")
UINT = struct.Struct(">I")
LONG = struct.Struct(">q")
USHORT = struct.Struct(">H")
TWO_INTS = struct.Struct(">ii")


def _leading_ones(b: int) -> int:
    n = 0
    while n < 8 and b & (0x80 >> n):
        n += 1
    return n


#: number of extra bytes after the first byte of a vint, and the mask of its value bits
EXTRA_BYTES = bytes(_leading_ones(b) for b in range(256))
_FIRST_MASK = bytes((0xFF >> n) if n < 8 else 0 for n in (_leading_ones(b) for b in range(256)))


def read_uvint(buf, pos: int) -> tuple[int, int]:
    """An unsigned vint as an unsigned 64-bit value."""
    b0 = buf[pos]
    if b0 < 0x80:
        return b0, pos + 1
    n = EXTRA_BYTES[b0]
    end = pos + 1 + n
    if end > len(buf):
        raise IndexError("vint runs past the end of the buffer")
    return ((b0 & _FIRST_MASK[b0]) << (8 * n)) | int.from_bytes(buf[pos + 1 : end], "big"), end


def read_svint64(buf, pos: int) -> tuple[int, int]:
    """An unsigned vint reinterpreted as a signed 64-bit value (how deltas are stored, §3.1)."""
    v, pos = read_uvint(buf, pos)
    return (v - (1 << 64) if v & _I64_SIGN else v), pos


def read_vint32(buf, pos: int) -> tuple[int, int]:
    """`readUnsignedVInt32`: signed 64-bit reinterpretation that must fit a signed int."""
    v, pos = read_svint64(buf, pos)
    if not -0x80000000 <= v <= 0x7FFFFFFF:
        raise ValueError(f"vint32 out of range: {v}")
    return v, pos


def read_zigzag_vint(buf, pos: int) -> tuple[int, int]:
    """A signed (zig-zag) vint, as `duration` values use."""
    v, pos = read_uvint(buf, pos)
    return (v >> 1) ^ -(v & 1), pos


def read_vbytes(buf, pos: int) -> tuple[bytes, int]:
    n, pos = read_uvint(buf, pos)
    end = pos + n
    if end > len(buf):
        raise IndexError("value runs past the end of the buffer")
    return bytes(buf[pos:end]), end


def uvint_bytes(value: int) -> bytes:
    """Encode an unsigned vint; negative values are taken as their 64-bit two's complement."""
    v = value & _U64
    if v < 0x80:
        return bytes((v,))
    n = 1
    while n < 8 and v >= 1 << (7 * (n + 1)):
        n += 1
    if n == 8:
        return b"\xff" + v.to_bytes(8, "big")
    # n extra bytes; the first byte carries n leading ones and the top bits of the value
    prefix = (0xFF << (8 - n)) & 0xFF
    raw = v.to_bytes(n + 1, "big")
    return bytes((raw[0] | prefix,)) + raw[1:]


def zigzag_vint_bytes(value: int) -> bytes:
    return uvint_bytes((value << 1) ^ (value >> 63))


def vbytes(data: bytes) -> bytes:
    return uvint_bytes(len(data)) + data


def crc_ints(*ints: int, crc: int = 0) -> int:
    """CRC32 fed with each int as 4 big-endian bytes (`FBUtilities.updateChecksumInt`)."""
    return zlib.crc32(b"".join(UINT.pack(i & 0xFFFFFFFF) for i in ints), crc)


def signed32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def wrap64(v: int) -> int:
    """Wrap to a signed 64-bit value (Java long arithmetic)."""
    v &= _U64
    return v - (1 << 64) if v & _I64_SIGN else v
