"""Writing commitlog segment files the way Cassandra does (format doc §4–§6, §15).

Used by tests (round trips, and damaged files built from good ones) and by tools that need real
segments without a Cassandra node. It writes the framing only; mutation bodies come from the caller.

A plain segment behaves like Cassandra's memory-mapped one: entries reach the file as soon as they
are appended, behind a zeroed marker, and become durable when `sync()` fills in that marker.
Compressed and encrypted segments keep the open section in memory and write it whole on `sync()`.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from ray_cdc.commitlog.cdc_index import index_path, write_cdc_index
from ray_cdc.commitlog.codecs import LZ4, codec_for, qualified_class_name
from ray_cdc.commitlog.encryption import EncryptionSpec
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.segment import (
    _HEAD,
    MESSAGING_VERSIONS,
    MIN_ENTRY_SIZE,
    SECTION_HEADER_SIZE,
    SYNC_MARKER_SIZE,
    header_crc,
    marker_crc,
)

_INT = struct.Struct(">i")
_UINT = struct.Struct(">I")
_MARKER = struct.Struct(">iI")
_ZERO_MARKER = bytes(SYNC_MARKER_SIZE)

# --- the descriptor header, byte for byte as Cassandra writes it (§4) -------------------------------

# json-simple's JSONValue.escape: besides quote, backslash and the usual control escapes it writes
# `/` as `\/` and \\uXXXX (upper-case hex) for U+0000-001F, U+007F-009F and U+2000-20FF
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                 "\t": "\\t", "/": "\\/"}


def _escape_char(ch: str) -> str:
    esc = _JSON_ESCAPES.get(ch)
    if esc is not None:
        return esc
    c = ord(ch)
    if c <= 0x1F or 0x7F <= c <= 0x9F or 0x2000 <= c <= 0x20FF:
        return f"\\u{c:04X}"
    return ch


def _json_string(s: str) -> str:
    return '"' + "".join(map(_escape_char, s)) + '"'


def java_json(value) -> str:
    """Serialize as json-simple's `JSONValue.toJSONString` does: compact, objects with sorted keys
    (Cassandra passes a TreeMap), `\\/` for slashes."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, dict):
        return "{" + ",".join(_json_string(str(k)) + ":" + java_json(value[k]) for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(java_json, value)) + "]"
    raise TypeError(f"cannot write {type(value).__name__} in a commitlog header")


def encode_header(version: int, segment_id: int, params: dict) -> bytes:
    raw = java_json(params).encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("commitlog header parameters exceed 65535 bytes")
    return _HEAD.pack(version, segment_id, len(raw)) + raw + _UINT.pack(header_crc(version, segment_id, raw))


def segment_params(*, compression: str | None = None, compression_params: dict | None = None,
                   encryption: EncryptionSpec | None = None) -> dict:
    """Header parameters as `CommitLogDescriptor.constructParametersString` builds them."""
    params: dict = {}
    if compression is not None:
        params["compressionClass"] = qualified_class_name(compression)
        params["compressionParameters"] = dict(compression_params or {})
    if encryption is not None:
        params.update(encryption.header_params())
    return params


# --- entries and markers (§5, §6) --------------------------------------------------------------------


def encode_entry(body: bytes) -> bytes:
    """size, crc1 = CRC(int size), body, crc2 = the same CRC continued over the body."""
    size = _INT.pack(len(body))
    crc = zlib.crc32(size)
    return b"".join((size, _UINT.pack(crc), body, _UINT.pack(zlib.crc32(body, crc))))


def encode_marker(segment_id: int, position: int, next_marker: int) -> bytes:
    return _MARKER.pack(next_marker, marker_crc(segment_id, position))


def segment_file_name(version: int, segment_id: int) -> str:
    return f"CommitLog-{version}-{segment_id}.log"


# --- the writer ------------------------------------------------------------------------------------


class SegmentWriter:
    """Appends mutation entries to a new segment and syncs them into sections."""

    def __init__(self, path_or_dir, *, segment_id: int, version: int = 7, compression: str | None = None,
                 compression_params: dict | None = None, encryption: EncryptionSpec | None = None,
                 section_size: int = 64 * 1024, preallocate: int | None = None, chunk_length: int = 64 * 1024):
        if version not in MESSAGING_VERSIONS:
            raise ValueError(f"unsupported descriptor version {version}")
        if compression is not None and codec_for(compression) is None:
            raise ValueError(f"unknown compressor {compression!r}")
        target = Path(path_or_dir)
        self.path = target / segment_file_name(version, segment_id) if target.is_dir() else target
        self.segment_id = segment_id
        self.version = version
        self.section_size = section_size
        self.chunk_length = chunk_length
        self._params = dict(compression_params or {})
        self._encryption = encryption
        self._cipher = encryption.block_cipher() if encryption is not None else None
        self._codec = codec_for(compression) if compression is not None else None
        self.mode = "encrypted" if encryption else ("compressed" if compression else "plain")
        if preallocate is not None and self.mode != "plain":
            raise ValueError("only plain (mmap-like) segments are preallocated")
        self.preallocate = preallocate

        header = encode_header(version, segment_id, segment_params(
            compression=compression, compression_params=compression_params, encryption=encryption))
        self._f = open(self.path, "w+b", buffering=0)  # noqa: SIM115 - open until close()
        self._fd = self._f.fileno()
        if preallocate is not None:
            if preallocate < len(header) + 2 * SYNC_MARKER_SIZE:
                raise ValueError(f"preallocate={preallocate} leaves no room for a section")
            os.ftruncate(self._fd, preallocate)
        self._write(header, 0)
        self.header_size = len(header)
        self._pos = self._logical = self.header_size  # the open section's marker (physical, logical)
        self._pending = bytearray()  # compressed/encrypted: the open section's entries
        self._pending_len = 0
        self._durable = self.header_size  # Cassandra's lastSyncedOffset (logical)
        self.closed = False
        if self.mode == "plain":
            self._write(_ZERO_MARKER, self._pos)  # a reader stops here until sync() (§5.1)

    # --- public API --------------------------------------------------------------------------------

    @property
    def open_section(self) -> tuple[int, int]:
        """(physical, logical) offset of the marker of the section being filled."""
        return self._pos, self._logical

    @property
    def durable_offset(self) -> int:
        """Logical offset up to which entries are synced (what `_cdc.idx` holds)."""
        return self._durable

    def append(self, body: bytes) -> CommitLogPosition:
        """Add one mutation entry; returns its position (logical offset just after crc2)."""
        self._check_open()
        if len(body) < MIN_ENTRY_SIZE:
            raise ValueError(f"a mutation body has at least {MIN_ENTRY_SIZE} bytes, not {len(body)}")
        entry = encode_entry(bytes(body))
        if self._pending_len and self._pending_len + len(entry) > self.section_size:
            self.sync()
        if self.mode == "plain":
            self._append_plain(entry)
        else:
            self._pending += entry
        self._pending_len += len(entry)
        return CommitLogPosition(self.segment_id, self._logical + SYNC_MARKER_SIZE + self._pending_len)

    def sync(self) -> int:
        """Close the open section (write its marker, or the whole compressed/encrypted section);
        returns the durable logical offset. Without new entries it writes nothing."""
        self._check_open()
        if self._pending_len:
            self._write_section()
        return self._durable

    def close(self, *, final_empty_section: bool = True) -> None:
        """Sync, then (as Cassandra closes a segment) an empty section; a plain segment ends with a
        zeroed marker after it. Idempotent."""
        if self.closed:
            return
        self.sync()
        if final_empty_section:
            self._write_section()
        self.closed = True
        self._f.close()

    def write_cdc_index(self, completed: bool) -> None:
        """`<name>_cdc.idx` beside the segment, with the durable offset (§15)."""
        write_cdc_index(index_path(self.path), self._durable, completed)

    def __enter__(self) -> SegmentWriter:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- sections --------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"segment writer for {self.path} is closed")

    def _write(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written

    def _append_plain(self, entry: bytes) -> None:
        at = self._pos + SYNC_MARKER_SIZE + self._pending_len
        # room must stay for the next marker, like Cassandra's allocate()
        if self.preallocate is not None and at + len(entry) + SYNC_MARKER_SIZE > self.preallocate:
            raise ValueError(f"segment {self.path} is full ({self.preallocate} bytes)")
        self._write(entry, at)

    def _write_section(self) -> None:
        {"plain": self._sync_plain, "compressed": self._sync_compressed,
         "encrypted": self._sync_encrypted}[self.mode]()
        self._pending.clear()
        self._pending_len = 0
        self._durable = self._logical

    def _sync_plain(self) -> None:
        nxt = self._pos + SYNC_MARKER_SIZE + self._pending_len
        # zero the next marker first so a reader stops cleanly there (MemoryMappedSegment.write)
        if self.preallocate is None or nxt + SYNC_MARKER_SIZE <= self.preallocate:
            self._write(_ZERO_MARKER, nxt)
        self._write(encode_marker(self.segment_id, self._pos, nxt), self._pos)
        self._pos = self._logical = nxt

    def _sync_compressed(self) -> None:
        data = bytes(self._pending)
        self._write_packed(self._codec.compress(data, self._params), len(data))

    def _sync_encrypted(self) -> None:
        data = bytes(self._pending)
        blocks = [self._encrypt_block(data[i:i + self.chunk_length])
                  for i in range(0, len(data), self.chunk_length)]
        self._write_packed(b"".join(blocks), len(data))

    def _encrypt_block(self, chunk: bytes) -> bytes:
        # EncryptionUtils.compress (int raw length + LZ4Compressor output), then encryptAndWrite
        plain = _INT.pack(len(chunk)) + LZ4.compress(chunk, {})
        encrypted = self._cipher.encrypt(plain)
        return _INT.pack(len(encrypted)) + _INT.pack(len(plain)) + encrypted

    def _write_packed(self, payload: bytes, plain_length: int) -> None:
        nxt = self._pos + SECTION_HEADER_SIZE + len(payload)
        # the marker's CRC covers the physical position; the length is the logical section size
        head = encode_marker(self.segment_id, self._pos, nxt) + _INT.pack(plain_length)
        self._write(head + payload, self._pos)
        self._pos = nxt
        self._logical += SYNC_MARKER_SIZE + plain_length
