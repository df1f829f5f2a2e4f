"""Framing of pre-3.0 commitlog segments: descriptor versions 4 (Cassandra 2.1) and 5 (2.2).

Kept apart from `segment.py` (the 3.0+ framing, tuned for speed) because the legacy layout is
frozen and small, and differs from §4–§6 of the format doc only in these points (read from
Cassandra 2.1.0 / 2.2.8 `CommitLogDescriptor`, `CommitLogSegment`, `CompressedSegment`,
`CommitLogReplayer`):

* header: v4 is `version:int id:long crc:int` (16 bytes; the CRC covers int(version), int(id low),
  int(id high)); v5 is the 3.0 header (`plen:u16`, JSON parameters, CRC also over int(plen) and the
  parameters). A v5 header may name a compressor; 2.2 has no encryption.
* sync markers and entries are the 3.0 ones: marker `next:int crc:int` (CRC of id low, id high and
  the marker's own physical position), entries `size:int crc(size) body crc(size+body)`, the
  position of a change being the logical offset just after its entry. Compressed 2.2 sections carry
  the uncompressed length after the marker, and logical offsets count uncompressed bytes.
* 2.1 *recycles* segment files: a file renamed to a new id still holds the old segment's bytes after
  the last section the new one wrote. Those old markers fail the CRC (it covers the id), so a marker
  with a bad CRC after at least one good section is the end of written data, not damage -- the way
  2.1's replayer treats it. A bad CRC on the *first* marker is damage (the segment is unreadable).

Every damage is a typed `CommitLogError` naming the file and the logical position. `on_error="raise"`
raises it after the entries before it were yielded; `"skip"` records it in `report.problems` and
goes on where it safely can (after a bad body CRC: the next entry; otherwise: the next section).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ray_cdc.commitlog.codecs import CodecError, codec_for
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.primitives import crc_ints
from ray_cdc.commitlog.segment import parse_segment_name
from ray_cdc.errors import (
    CommitLogError,
    EntryChecksumError,
    SectionDecodeError,
    SegmentHeaderError,
    SyncMarkerError,
    TruncatedSegmentError,
    UnsupportedSegmentError,
)

LEGACY_VERSIONS = {4: "2.1", 5: "2.2"}  # descriptor version -> Cassandra release
MESSAGING_VERSIONS = {4: 8, 5: 9}  # MessagingService.VERSION_21 / VERSION_22

_V4_HEAD = struct.Struct(">iqI")  # version, id, crc
_V5_HEAD = struct.Struct(">iqH")  # version, id, plen (then params, crc)
_MARKER = struct.Struct(">iI")  # next marker, crc
_INT = struct.Struct(">i")
_UINT = struct.Struct(">I")
MARKER_SIZE = 8
ENTRY_OVERHEAD = 12
MIN_ENTRY_SIZE = 10  # 2.1 replayer: anything shorter is garbage (CASSANDRA-2128)


@dataclass(frozen=True)
class LegacyHeader:
    version: int
    segment_id: int
    params: dict
    size: int  # bytes of the header: where the first sync marker is

    @property
    def compression_class(self) -> str | None:
        value = self.params.get("compressionClass")
        return value if isinstance(value, str) else None

    @property
    def messaging_version(self) -> int:
        return MESSAGING_VERSIONS[self.version]


@dataclass(frozen=True, slots=True)
class LegacyEntry:
    position: CommitLogPosition  # logical offset just after the entry: where a consumer resumes
    start: int  # logical offset of the entry's size field
    body: bytes


@dataclass(slots=True)
class LegacyReadReport:
    entries: int = 0
    sections: int = 0
    last_position: CommitLogPosition | None = None
    bytes_skipped: int = 0
    stopped_at: int | None = None  # logical offset where damage ended reading early
    problems: list[CommitLogError] = field(default_factory=list)
    end_of_data: bool = False  # reached the written end (zero or stale marker, end of file, limit)
    completed: bool | None = None  # no _cdc.idx before 3.8: set by the caller's own knowledge


def is_legacy_segment(path) -> bool:
    """True for a `CommitLog-4-*.log` / `CommitLog-5-*.log` whose header agrees with its name.

    A name that says 4 or 5 over a header that says otherwise raises SegmentHeaderError (a file
    copied under the wrong name); any other version in the name is False (the 3.0+ reader's case).
    """
    version, _ = parse_segment_name(path)
    if version not in LEGACY_VERSIONS:
        return False
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) < 4:
        raise SegmentHeaderError("file ends inside the descriptor header", path=str(path), position=len(head))
    (header_version,) = _INT.unpack(head)
    if header_version != version:
        raise SegmentHeaderError(f"the file name says descriptor version {version}, the header {header_version}",
                                 path=str(path), position=0)
    return True


def read_legacy_header(f, path: str) -> LegacyHeader:
    """The descriptor header of a v4/v5 segment, CRC checked."""
    head = f.read(_V5_HEAD.size)
    if len(head) < 4:
        raise SegmentHeaderError("file ends inside the descriptor header", path=path, position=len(head))
    (version,) = _INT.unpack_from(head)
    if version == 4:
        head += f.read(_V4_HEAD.size - len(head))
        if len(head) < _V4_HEAD.size:
            raise SegmentHeaderError("file ends inside the descriptor header", path=path, position=len(head))
        _, segment_id, stored = _V4_HEAD.unpack(head)
        computed = crc_ints(version, segment_id & 0xFFFFFFFF, (segment_id >> 32) & 0xFFFFFFFF)
        params, size = {}, _V4_HEAD.size
    elif version == 5:
        if len(head) < _V5_HEAD.size:
            raise SegmentHeaderError("file ends inside the descriptor header", path=path, position=len(head))
        _, segment_id, plen = _V5_HEAD.unpack(head)
        rest = f.read(plen + 4)
        if len(rest) < plen + 4:
            raise SegmentHeaderError(f"file ends inside the descriptor header ({plen} bytes of parameters announced)",
                                     path=path, position=_V5_HEAD.size + len(rest))
        raw, (stored,) = rest[:plen], _UINT.unpack_from(rest, plen)
        computed = zlib.crc32(raw, crc_ints(version, segment_id & 0xFFFFFFFF, (segment_id >> 32) & 0xFFFFFFFF, plen))
        size = _V5_HEAD.size + plen + 4
        params = _params(raw, path) if stored == computed else {}  # parsed only when the CRC vouches for it
    else:
        raise UnsupportedSegmentError(f"descriptor version {version} is not a legacy (2.1/2.2) segment",
                                      path=path, position=0)
    if stored != computed:
        raise SegmentHeaderError(f"descriptor header CRC mismatch (stored {stored:#010x}, computed {computed:#010x})",
                                 path=path, position=size - 4)
    return LegacyHeader(version, segment_id, params, size)


def _params(raw: bytes, path: str) -> dict:
    try:
        params = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        params = None
    if not isinstance(params, dict):
        raise SegmentHeaderError(f"descriptor parameters are not a JSON object: {raw[:80]!r}", path=path, position=14)
    return params


class _Stop(Exception):
    """Reading cannot go on (raised inside, turned into the report's end state)."""


class LegacySegmentReader:
    """The CRC-valid entries of one v4/v5 segment, after `start`, up to the logical offset `limit`."""

    def __init__(self, path, *, start: CommitLogPosition | None = None, limit: int | None = None,
                 on_error: str = "raise"):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        self.path = str(os.fspath(path))
        name_version, name_id = parse_segment_name(self.path)
        with open(self.path, "rb") as f:
            self.header = read_legacy_header(f, self.path)
        h = self.header
        if (h.version, h.segment_id) != (name_version, name_id):
            raise SegmentHeaderError(f"header says version {h.version} id {h.segment_id}, the file name version "
                                     f"{name_version} id {name_id}", path=self.path, position=0)
        if start is not None and start.segment_id != h.segment_id:
            raise ValueError(f"start {start} is not in segment {h.segment_id} ({self.path})")
        self.codec = None
        if h.compression_class is not None:
            self.codec = codec_for(h.compression_class)
            if self.codec is None:
                raise UnsupportedSegmentError(f"unknown commitlog compressor {h.compression_class!r}",
                                              path=self.path, position=0)
        self.start, self.limit, self.on_error = start, limit, on_error
        self.report = LegacyReadReport()
        self._id_crc = crc_ints(h.segment_id & 0xFFFFFFFF, (h.segment_id >> 32) & 0xFFFFFFFF)

    def entries(self) -> Iterator[LegacyEntry]:
        self.report = LegacyReadReport(completed=self.report.completed)
        skip_until = self.start.offset if self.start is not None else -1
        limit = self.limit if self.limit is not None else 1 << 62
        with open(self.path, "rb") as f:
            data = f.read()  # legacy segments are small (commitlog_segment_size_in_mb, 32 MiB at most)
        pos = logical = self.header.size
        try:
            while logical < limit:
                section = self._section(data, pos, logical)
                if section is None:
                    break
                body, base, pos, logical = section
                if body is not None and logical > skip_until:
                    yield from self._entries(body, base, skip_until, limit, cut=self.codec is None and pos > len(data))
                if self.codec is None and pos > len(data):
                    # the copy was cut inside this section (2.1 pre-allocates whole files, so a
                    # shorter file is a truncated copy): what was whole is delivered, then the cut
                    self._damage(TruncatedSegmentError(
                        f"file ends ({len(data)} bytes) inside the section that ends at {pos}",
                        path=self.path, position=len(data)), 0, fatal=True)
            self.report.end_of_data = True
        except _Stop:
            pass

    # --- sections ------------------------------------------------------------------------------------

    def _section(self, data: bytes, pos: int, logical: int):
        """(section bytes or None, logical offset of its first byte, next marker pos, next logical)."""
        if pos > len(data) - MARKER_SIZE:
            if data[pos:].strip(b"\0"):
                self._damage(TruncatedSegmentError(f"file ends inside the sync marker at {pos}", path=self.path,
                                                   position=logical), len(data) - pos, fatal=True)
            return None
        nxt, crc = _MARKER.unpack_from(data, pos)
        if crc != zlib.crc32(_UINT.pack(pos), self._id_crc):
            if (nxt == 0 and crc == 0) or self.report.sections:
                return None  # zeroed by the writer, or a recycled file's stale bytes: the end of written data
            self._damage(SyncMarkerError(f"first sync marker at file offset {pos} has a bad CRC", path=self.path,
                                         position=logical), len(data) - pos, fatal=True)
        if nxt <= pos or (self.codec is None and nxt < pos + MARKER_SIZE):
            self._damage(SyncMarkerError(f"sync marker at {pos} points back to {nxt}", path=self.path,
                                         position=logical), len(data) - pos, fatal=True)
        self.report.sections += 1
        if self.codec is None:  # a section past the end of the file: see entries()
            return data[pos + MARKER_SIZE:nxt], pos + MARKER_SIZE, nxt, nxt
        return self._compressed(data, pos, nxt, logical)

    def _compressed(self, data: bytes, pos: int, nxt: int, logical: int):
        if nxt > len(data) or nxt < pos + MARKER_SIZE + 4:
            self._damage(TruncatedSegmentError(f"compressed section at file offset {pos} ends at {nxt}, outside the "
                                               f"file ({len(data)} bytes)", path=self.path, position=logical),
                         len(data) - pos, fatal=True)
        (ulen,) = _INT.unpack_from(data, pos + MARKER_SIZE)
        base = logical + MARKER_SIZE
        if ulen < 0:
            self._damage(SectionDecodeError(f"section at file offset {pos} has a negative length {ulen}",
                                            path=self.path, position=logical), len(data) - pos, fatal=True)
        try:
            body = self.codec.decompress(data[pos + MARKER_SIZE + 4:nxt], ulen)
        except CodecError as e:
            # a wrong length would make every later position wrong: stop; else go on with the next section
            self._damage(SectionDecodeError(f"section at file offset {pos}: {e}", path=self.path, position=logical),
                         ulen, fatal=e.length_mismatch)
            body = None
        return body, base, nxt, base + ulen

    # --- entries ---------------------------------------------------------------------------------------

    def _entries(self, body: bytes, base: int, skip_until: int, limit: int, cut: bool) -> Iterator[LegacyEntry]:
        """`cut`: the file ends inside this section (its bytes are what the file has)."""
        off, n, sid = 0, len(body), self.header.segment_id
        while off < n:
            if n - off < 8:
                if body[off:].strip(b"\0") or cut:
                    self._damage(TruncatedSegmentError(f"{'file' if cut else 'section'} ends inside an entry header",
                                                       path=self.path, position=base + off), n - off, fatal=cut)
                return
            size, crc1 = _MARKER.unpack_from(body, off)
            if size == 0:
                return  # zero padding: the end of this section's entries
            size_crc = zlib.crc32(body[off:off + 4])
            if size_crc != crc1:
                self._damage(EntryChecksumError(f"entry size checksum (crc1) mismatch, size field {size}",
                                                path=self.path, position=base + off), n - off)
                return
            end = off + ENTRY_OVERHEAD + size
            if size < MIN_ENTRY_SIZE or end > n:
                if base + end > limit:
                    raise _Stop  # not durable yet
                where = "the file" if cut and end > n else "its section"
                self._damage(TruncatedSegmentError(f"the entry of {size} bytes runs past the end of {where} "
                                                   f"({n - off} bytes left)", path=self.path, position=base + off),
                             n - off, fatal=cut)
                return
            if base + end > limit:
                raise _Stop
            if base + end <= skip_until:
                off = end
                continue
            payload = body[off + 8:end - 4]
            if zlib.crc32(payload, size_crc) != _UINT.unpack_from(body, end - 4)[0]:
                self._damage(EntryChecksumError(f"entry body checksum (crc2) mismatch, entry of {size} bytes",
                                                path=self.path, position=base + off), end - off)
                off = end
                continue
            entry = LegacyEntry(CommitLogPosition(sid, base + end), base + off, payload)
            self.report.entries += 1
            self.report.last_position = entry.position
            yield entry
            off = end

    def _damage(self, error: CommitLogError, skipped: int, fatal: bool = False) -> None:
        self.report.problems.append(error)
        if fatal or self.on_error == "raise":
            self.report.stopped_at = error.position
        if self.on_error == "raise":
            raise error
        self.report.bytes_skipped += skipped
        if fatal:
            raise _Stop


def legacy_segment_paths(paths) -> list[Path]:
    """The v4/v5 segments among `paths`, in segment-id order."""
    chosen = [Path(p) for p in paths if parse_segment_name(p)[0] in LEGACY_VERSIONS]
    return sorted(chosen, key=lambda p: parse_segment_name(p)[1])
