"""Commitlog section compressors (format doc §5.2), chosen by Cassandra's `compressionClass`.

Each codec turns a section's entry bytes into exactly what Cassandra's `ICompressor` writes, and
back. Decompression is told the length the section header promises (`uncompressedLength`) and
never produces, or allocates for, more than that: a damaged length field must not make the reader
allocate gigabytes (the issue asks for bounded memory on any input).

Errors are plain `CodecError`s here (no file or position is known at this level); the segment
reader turns them into `SectionDecodeError` naming the file and section.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import cramjam
import lz4.block
import zstandard

CASSANDRA_COMPRESS_PACKAGE = "org.apache.cassandra.io.compress."

_LE_INT = struct.Struct("<i")


class CodecError(Exception):
    """Compressed bytes are malformed or do not decompress to the promised length.

    `length_mismatch`: the data disagrees with the section header's length. Then that length may be
    the damaged field, and the logical positions of every later section with it (§5.4).
    """

    def __init__(self, message: str, *, length_mismatch: bool = False):
        super().__init__(message)
        self.length_mismatch = length_mismatch


@dataclass(frozen=True, slots=True)
class Codec:
    """One compressor: `compress(data, params) -> bytes`, `decompress(data, length) -> bytes`."""

    name: str  # Cassandra's short class name, e.g. "LZ4Compressor"
    compress: Callable[[bytes, dict], bytes]
    decompress: Callable[[bytes, int], bytes]

    @property
    def class_name(self) -> str:
        return CASSANDRA_COMPRESS_PACKAGE + self.name


def _expect_length(out: bytes, length: int, *, corroborated: bool = False) -> bytes:
    """`corroborated`: the stream's own length header already agreed with `length`, so a different
    output size means damaged data, not a damaged length field."""
    if len(out) != length:
        raise CodecError(f"decompressed {len(out)} bytes, section header says {length}",
                         length_mismatch=not corroborated)
    return out


# --- LZ4: 4-byte little-endian length, then a raw LZ4 block (LZ4Compressor, §5.2) ---------------


def _lz4_compress(data: bytes, params: dict) -> bytes:
    # `lz4_compressor_type: high` selects LZ4 HC; both decompress the same way
    if str(params.get("lz4_compressor_type", "fast")).lower() == "high":
        level = int(params.get("lz4_high_compressor_level", 9))
        return lz4.block.compress(data, mode="high_compression", compression=level, store_size=True)
    return lz4.block.compress(data, store_size=True)


def _lz4_decompress(data: bytes, length: int) -> bytes:
    if len(data) < 4:
        raise CodecError("LZ4 block shorter than its 4-byte length prefix")
    (stored,) = _LE_INT.unpack_from(data, 0)
    if stored != length:
        raise CodecError(f"LZ4 length prefix {stored} differs from the expected {length}", length_mismatch=True)
    if length == 0:
        return b""
    try:
        out = lz4.block.decompress(memoryview(data)[4:], uncompressed_size=length)
    except lz4.block.LZ4BlockError as e:
        raise CodecError(f"LZ4: {e}") from None
    return _expect_length(out, length, corroborated=True)


# --- Snappy: raw block (Snappy.rawCompress) --------------------------------------------------------


def _snappy_declared_length(data: bytes) -> int:
    """The little-endian base-128 length that starts a raw Snappy block."""
    value = shift = 0
    for i in range(min(len(data), 5)):
        b = data[i]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value
        shift += 7
    raise CodecError("Snappy block has no valid length header")


def _snappy_compress(data: bytes, params: dict) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def _snappy_decompress(data: bytes, length: int) -> bytes:
    declared = _snappy_declared_length(data)
    if declared != length:  # checked first: the library would allocate whatever the header says
        raise CodecError(f"Snappy length header {declared} differs from the expected {length}",
                         length_mismatch=True)
    try:
        out = bytes(cramjam.snappy.decompress_raw(data))
    except Exception as e:  # noqa: BLE001 - cramjam raises its own DecompressionError, and others
        raise CodecError(f"Snappy: {e}") from None
    return _expect_length(out, length, corroborated=True)


# --- Deflate: a zlib stream (java.util.zip.Deflater defaults) ------------------------------------


def _deflate_compress(data: bytes, params: dict) -> bytes:
    return zlib.compress(data)


def _deflate_decompress(data: bytes, length: int) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, length + 1)  # bounded: one byte more than promised proves a lie
    except zlib.error as e:
        raise CodecError(f"Deflate: {e}") from None
    if not d.eof:
        raise CodecError("Deflate stream is incomplete or longer than the section header says",
                         length_mismatch=True)
    return _expect_length(out, length)


# --- Zstd: a standard frame with content checksum (ZstdCompressor) ------------------------------


def _zstd_compress(data: bytes, params: dict) -> bytes:
    level = int(params.get("compression_level", 3))
    return zstandard.ZstdCompressor(level=level, write_checksum=True).compress(data)


def _zstd_decompress(data: bytes, length: int) -> bytes:
    try:
        declared = zstandard.frame_content_size(data)
        if declared not in (-1, length):  # -1: size not in the frame header
            raise CodecError(f"Zstd frame content size {declared} differs from the expected {length}",
                             length_mismatch=True)
        reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=False)
        out = reader.read(length + 1) if length else reader.read(1)
    except zstandard.ZstdError as e:
        raise CodecError(f"Zstd: {e}") from None
    return _expect_length(out, length, corroborated=declared == length)


# --- Noop ------------------------------------------------------------------------------------------


def _noop_compress(data: bytes, params: dict) -> bytes:
    return bytes(data)


def _noop_decompress(data: bytes, length: int) -> bytes:
    return _expect_length(bytes(data), length)


_CODECS = (
    Codec("LZ4Compressor", _lz4_compress, _lz4_decompress),
    Codec("SnappyCompressor", _snappy_compress, _snappy_decompress),
    Codec("DeflateCompressor", _deflate_compress, _deflate_decompress),
    Codec("ZstdCompressor", _zstd_compress, _zstd_decompress),
    Codec("NoopCompressor", _noop_compress, _noop_decompress),
)

#: short and fully qualified class names -> codec (Cassandra accepts both in `commitlog_compression`)
CODECS: dict[str, Codec] = {
    **{c.name: c for c in _CODECS},
    **{c.class_name: c for c in _CODECS},
}

LZ4 = CODECS["LZ4Compressor"]


def codec_for(compression_class: str) -> Codec | None:
    """The codec for a `compressionClass` value (short or fully qualified), or None if unknown."""
    return CODECS.get(compression_class)


def qualified_class_name(name: str) -> str:
    """What Cassandra writes in the header: short names get the `io.compress` package (§4)."""
    return name if "." in name else CASSANDRA_COMPRESS_PACKAGE + name
