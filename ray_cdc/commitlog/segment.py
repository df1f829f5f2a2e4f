"""Reading commitlog segment files: descriptor header, sync sections, mutation entries.

This is the framing layer (format doc §2, §4–§6, §18): it yields each mutation entry's body with
its logical position, after checking every CRC, and never decodes the mutation itself.

Reading is streaming: one section is in memory at a time (plain segments are read section by
section with `pread`, compressed and encrypted ones are decoded one section at a time). Damage is
reported as a typed `CommitLogError` naming the file and the *logical* position (§5.4); with
`on_error="raise"` the generator raises it after yielding every good entry before it, with
`on_error="skip"` it is recorded in `report.problems` and reading goes on where Cassandra's own
reader would (`CommitLogReader.readSection`):

* header unreadable (empty, short, bad CRC, not JSON, id/version differ from the name):
  `SegmentHeaderError` from the constructor; a CRC-valid header of another version:
  `UnsupportedSegmentError`.
* zero marker, zero entry size, end of file at a section boundary, or `limit`: normal end.
* bad marker CRC, or a marker pointing backwards: `SyncMarkerError`, reading stops (skip mode counts
  the rest of the file as skipped).
* the file ends inside a marker, a section or an entry (a plain section is clamped to the file,
  as Java does): `TruncatedSegmentError`, reading stops.
* crc1 (size) mismatch: `EntryChecksumError`, the rest of the section is skipped; an entry size
  below 10 or past the section end: `TruncatedSegmentError`, likewise.
* crc2 (body) mismatch: `EntryChecksumError`, only that entry is skipped.
* a section that does not decompress/decrypt: `SectionDecodeError`, that section is skipped -- unless
  its length field disagrees with the data, since every later logical position would then be
  wrong: reading stops instead.

`limit` is a durable logical offset (`_cdc.idx`): in a plain section entries ending after it are
not yielded; a compressed or encrypted section ending after it is not decoded at all.

`entries(fast)` hands each section to a compiled consumer first (`_fastpath.Kernel.run`): it takes
runs of whole, CRC-valid entries it can decode itself, and this module yields a `FastRun` for each
run instead of its entries. The entry where it stops (damage, padding, one it declines) is handled
by the Python loop below, with every rule above, before the consumer is asked again.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ray_cdc.commitlog.cdc_index import find_cdc_index
from ray_cdc.commitlog.codecs import LZ4, CodecError, codec_for
from ray_cdc.commitlog.encryption import IV_SIZES, CipherError, UnsupportedCipherError, cipher_for
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.primitives import UINT, crc_ints
from ray_cdc.errors import (
    CommitLogError,
    EntryChecksumError,
    KeystoreError,
    SectionDecodeError,
    SegmentHeaderError,
    SegmentNameError,
    SyncMarkerError,
    TruncatedSegmentError,
    UnsupportedSegmentError,
)

#: descriptor version -> messaging version of the mutation bodies (§1)
MESSAGING_VERSIONS = {6: 10, 7: 12, 8: 13}

HEADER_FIXED_SIZE = 18  # version, id, plen, crc (§4)
SYNC_MARKER_SIZE = 8  # nextMarker, crc (§5)
SECTION_HEADER_SIZE = 12  # compressed/encrypted: marker + uncompressed length (§5.2, §5.3)
ENTRY_OVERHEAD = 12  # size, crc1, crc2 (§6)
MIN_ENTRY_SIZE = 10  # CommitLogReader: smaller sizes are garbage (CASSANDRA-2128)
_NO_LIMIT = 1 << 63

_HEAD = struct.Struct(">iqH")  # version, segment id, plen
_MARKER = struct.Struct(">iI")  # nextMarker (int), crc
_SECTION_HEAD = struct.Struct(">iIi")  # nextMarker, crc, uncompressed length
_ENTRY_HEAD = struct.Struct(">iI")  # size, crc1
_BLOCK_HEAD = struct.Struct(">ii")  # encryptedLength, compressedLength (§5.3)
_INT = struct.Struct(">i")
_CRC = struct.Struct(">I")

# Java's reader accepts `CommitLog-<version>-<id>.log` only (the pre-1.2.5 form without a
# version is rejected, §2)
_NAME = re.compile(r"CommitLog-(\d+)-(\d+)\.log")

OnError = Literal["raise", "skip"]


def parse_segment_name(path) -> tuple[int, int]:
    """(descriptor version, segment id) from `CommitLog-<version>-<id>.log`."""
    name = Path(os.fspath(path)).name
    m = _NAME.fullmatch(name)
    if m is None or int(m[2]) >= 1 << 63:
        raise SegmentNameError(f"not a commitlog segment name (CommitLog-<version>-<id>.log): {name!r}",
                               path=str(path))
    return int(m[1]), int(m[2])


# --- header (§4) ---------------------------------------------------------------------------------


def _id_halves(segment_id: int) -> tuple[int, int]:
    return segment_id & 0xFFFFFFFF, (segment_id >> 32) & 0xFFFFFFFF


def header_crc(version: int, segment_id: int, params: bytes) -> int:
    """CRC32 of int(version), int(id low), int(id high), int(plen), params (low half first, §4)."""
    return zlib.crc32(params, crc_ints(version, *_id_halves(segment_id), len(params)))


def marker_crc(segment_id: int, position: int) -> int:
    """A sync marker's CRC covers only the segment id and its own (physical) position (§5)."""
    return crc_ints(*_id_halves(segment_id), position)


@dataclass(frozen=True)
class SegmentHeader:
    version: int
    segment_id: int
    params: dict
    size: int  # bytes on disk: 18 + plen; also the logical offset of the first sync marker

    @property
    def compression_class(self) -> str | None:
        value = self.params.get("compressionClass")
        return value if isinstance(value, str) else None

    @property
    def encrypted(self) -> bool:
        # EncryptionContext: a segment is encrypted exactly when both keys are present (§4)
        return "encKeyAlias" in self.params and "encCipher" in self.params

    @property
    def messaging_version(self) -> int:
        return MESSAGING_VERSIONS[self.version]

    @property
    def mode(self) -> str:
        """"encrypted" (takes priority, §2), "compressed" or "plain"."""
        if self.encrypted:
            return "encrypted"
        return "compressed" if self.compression_class is not None else "plain"


def read_header(f, path: str) -> SegmentHeader:
    """Read and check the descriptor header from the start of an open binary file."""
    head = f.read(_HEAD.size)
    if not head:
        raise SegmentHeaderError("empty file: no descriptor header", path=path, position=0)
    if len(head) < _HEAD.size:
        raise SegmentHeaderError(f"file ends inside the descriptor header ({len(head)} bytes)",
                                 path=path, position=len(head))
    version, segment_id, plen = _HEAD.unpack(head)
    rest = f.read(plen + 4)
    if len(rest) < plen + 4:
        raise SegmentHeaderError(
            f"file ends inside the descriptor header (parameters of {plen} bytes announced)",
            path=path, position=_HEAD.size + len(rest))
    params_bytes = rest[:plen]
    (stored,) = _CRC.unpack_from(rest, plen)
    computed = header_crc(version, segment_id, params_bytes)
    if stored != computed:
        raise SegmentHeaderError(
            f"descriptor header CRC mismatch (stored {stored:#010x}, computed {computed:#010x})",
            path=path, position=_HEAD.size + plen)
    if version not in MESSAGING_VERSIONS:
        raise UnsupportedSegmentError(
            f"commitlog descriptor version {version} is not supported (only {sorted(MESSAGING_VERSIONS)})",
            path=path, position=0)
    return SegmentHeader(version, segment_id, _parse_params(params_bytes, path), HEADER_FIXED_SIZE + plen)


def _parse_params(raw: bytes, path: str) -> dict:
    try:
        params = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        params = None
    if not isinstance(params, dict):
        raise SegmentHeaderError(f"descriptor parameters are not a JSON object: {raw[:80]!r}",
                                 path=path, position=_HEAD.size)
    return params


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One mutation entry whose two CRCs matched."""

    position: CommitLogPosition  # logical offset just after crc2: the replay/resume position (§6)
    start: int  # logical offset of the entry's size field
    body: bytes  # the serialized mutation (§7)


# Frozen dataclasses set each field through object.__setattr__ in __init__; on the hot path (one
# Entry and one CommitLogPosition per mutation) writing the slots directly costs half as much.
_new = object.__new__
_set_segment_id, _set_offset = CommitLogPosition.segment_id.__set__, CommitLogPosition.offset.__set__
_set_position, _set_start, _set_body = Entry.position.__set__, Entry.start.__set__, Entry.body.__set__


@dataclass(frozen=True, slots=True)
class FastRun:
    """Consecutive good entries the fast consumer of `entries(fast)` decoded itself."""

    position: CommitLogPosition  # of the last entry of the run
    count: int  # entries in the run
    full: bool  # its last entry filled a batch (the consumer stopped right after it)


def _make_entry(segment_id: int, offset: int, start: int, body: bytes) -> Entry:
    """`Entry(CommitLogPosition(segment_id, offset), start, body)`, faster."""
    position = _new(CommitLogPosition)
    _set_segment_id(position, segment_id)
    _set_offset(position, offset)
    entry = _new(Entry)
    _set_position(entry, position)
    _set_start(entry, start)
    _set_body(entry, body)
    return entry


@dataclass(slots=True)
class ReadReport:
    entries: int = 0  # entries yielded
    sections: int = 0  # sync sections whose marker was valid (empty ones included)
    last_position: CommitLogPosition | None = None  # position of the last entry yielded
    bytes_skipped: int = 0  # bytes of damaged data passed over (logical, or physical past a bad marker)
    stopped_at: int | None = None  # logical offset where damage ended reading early
    problems: list[CommitLogError] = field(default_factory=list)
    end_of_data: bool = False  # reached the normal end: zero marker, zero size, end of file or limit
    completed: bool | None = None  # from `_cdc.idx`; None when there is none

    def _reset(self) -> None:
        self.entries, self.sections, self.last_position, self.bytes_skipped = 0, 0, None, 0
        self.stopped_at, self.end_of_data = None, False
        self.problems.clear()


# --- internal control flow -------------------------------------------------------------------------

# what reading does after a section
_NEXT, _END, _STOP = "next", "end", "stop"


class _Damage(Exception):
    """Damage found while locating or decoding a section; `resume` = (physical, logical) of the
    next section when reading may go on past it (skip mode), else None."""

    def __init__(self, error: CommitLogError, skipped: int, resume: tuple[int, int] | None = None):
        self.error, self.skipped, self.resume = error, skipped, resume


@dataclass(slots=True)
class _Section:
    data_start: int  # logical offset of data[0]
    next_pos: int  # physical offset of the next sync marker
    next_logical: int  # logical offset of the next sync marker
    clamp: str | None = None  # "file" (file ends inside the section) or "limit" (durable offset inside it)
    data: bytes | None = None  # None: not read (section wholly before `start`)


# --- the reader ------------------------------------------------------------------------------------


class SegmentReader:
    """Entries of one segment file, in order, with CRCs checked (see module doc)."""

    def __init__(self, path, *, keystore=None, start: CommitLogPosition | None = None,
                 limit: int | None = None, on_error: OnError = "raise", cdc_index: bool = True):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        self.path = Path(os.fspath(path))
        self._where = str(self.path)
        name_version, name_id = parse_segment_name(self.path)
        with open(self.path, "rb") as f:
            self.header = read_header(f, self._where)
        self._check_name(name_version, name_id)
        if start is not None and start.segment_id != self.header.segment_id:
            raise ValueError(f"start {start} is not in segment {self.header.segment_id} ({self.path})")
        self.report = ReadReport()
        if cdc_index and limit is None:
            index = find_cdc_index(self.path)
            if index is not None:
                limit, self.report.completed = index.offset, index.completed
        self.limit = limit
        self.start = start
        self.on_error = on_error
        self._id_crc = crc_ints(*_id_halves(self.header.segment_id))
        self._locate, self._decode = self._mode_functions(keystore)

    def _check_name(self, name_version: int, name_id: int) -> None:
        h = self.header
        if h.segment_id != name_id or h.version != name_version:
            raise SegmentHeaderError(
                f"header says version {h.version} id {h.segment_id}, the file name version "
                f"{name_version} id {name_id}", path=self._where, position=0)

    def _mode_functions(self, keystore):
        mode = self.header.mode
        if mode == "plain":
            return self._locate_plain, self._decode_plain
        if mode == "compressed":
            self._codec = codec_for(self.header.compression_class)
            if self._codec is None:
                raise UnsupportedSegmentError(
                    f"unknown commitlog compressor {self.header.compression_class!r}", path=self._where, position=0)
            return self._locate_packed, self._decode_compressed
        self._cipher = self._make_cipher(keystore)
        return self._locate_packed, self._decode_encrypted

    def _make_cipher(self, keystore):
        p = self.header.params
        alias, cipher = str(p["encKeyAlias"]), str(p["encCipher"])
        if keystore is None:
            raise KeystoreError(f"segment {self.path} is encrypted ({cipher}, key alias {alias!r}) "
                                "but no keystore was given")
        try:
            iv = bytes.fromhex(str(p.get("encIV", "")))
        except ValueError:
            iv = None
        if iv is None or (cipher in IV_SIZES and len(iv) != IV_SIZES[cipher]):
            raise SegmentHeaderError(f"encIV is not a {IV_SIZES.get(cipher, '?')}-byte hex IV: {p.get('encIV')!r}",
                                     path=self._where, position=0)
        try:
            key = keystore.key(alias)
        except KeystoreError as e:
            raise KeystoreError(f"{e} (needed by segment {self.path})") from None
        try:
            return cipher_for(cipher, key, iv)
        except UnsupportedCipherError as e:
            raise UnsupportedSegmentError(str(e), path=self._where, position=0) from None
        except ValueError as e:
            raise KeystoreError(f"key {alias!r} does not fit {cipher} for segment {self.path}: {e}") from None

    # --- iteration -------------------------------------------------------------------------------

    def entries(self, fast=None) -> Iterator[Entry | FastRun]:
        """Yield every good entry after `start` and up to `limit`; see the module doc for damage.

        `fast(data, off, base, skip_until, segment_id) -> (off, taken, last_end, full)`
        (`_fastpath.Kernel.run`), when given, takes runs of entries first: a `FastRun` is yielded
        for each run it took, in place of those entries (they count in `report` all the same).

        Each call reads the file again (and resets `report`); run one iteration at a time.
        """
        self.report._reset()
        with open(self.path, "rb") as f:
            self._fd = f.fileno()
            self._file_size = os.fstat(self._fd).st_size
            self._limit = _NO_LIMIT if self.limit is None else self.limit
            self._skip_until = -1 if self.start is None else self.start.offset
            yield from self._walk(fast)

    def _pread(self, n: int, offset: int) -> bytes:
        return os.pread(self._fd, n, offset) if n > 0 else b""

    def _walk(self, fast) -> Iterator[Entry | FastRun]:
        pos = logical = self.header.size
        while True:
            status, section = self._next_section(pos, logical)
            if status is not _NEXT:
                break
            if section.data is not None:
                status = yield from self._entries_in(section, fast)
                if status is not _NEXT:
                    break
            pos, logical = section.next_pos, section.next_logical
        self.report.end_of_data = status is _END

    def _next_section(self, pos: int, logical: int) -> tuple[str, _Section | None]:
        """Read the marker at `pos` and the section after it; (status, section)."""
        while True:
            if logical >= self._limit:
                return _END, None
            try:
                return self._read_section(pos, logical)
            except _Damage as d:
                self._problem(d.error, d.skipped, fatal=d.resume is None)
                if d.resume is None:
                    return _STOP, None
                pos, logical = d.resume

    def _read_section(self, pos: int, logical: int) -> tuple[str, _Section | None]:
        head = self._pread(SECTION_HEADER_SIZE, pos)
        if len(head) < SYNC_MARKER_SIZE:
            if head.strip(b"\0"):  # a partial, non-zero marker: the file was cut here
                raise _Damage(TruncatedSegmentError(
                    f"file ends inside the sync marker at {pos} ({len(head)} of 8 bytes)",
                    path=self._where, position=logical), len(head))
            return _END, None  # Java: P > fileLength - 8 means no more sections
        nxt, crc = _MARKER.unpack_from(head)
        if crc != zlib.crc32(UINT.pack(pos), self._id_crc):
            if nxt == 0 and crc == 0:
                return _END, None  # zeroed by the writer: the end of written data (§5.1)
            raise _Damage(SyncMarkerError(
                f"sync marker at file offset {pos} has a bad CRC (next={nxt}, crc={crc:#010x})",
                path=self._where, position=logical), self._rest(pos, logical))
        section = self._locate(pos, nxt, logical, head)
        if section is None:
            return _END, None  # the section ends beyond the durable limit
        self.report.sections += 1
        if section.next_logical > self._skip_until or section.clamp is not None:
            section.data = self._decode(pos, nxt, logical, section)
        return _NEXT, section

    def _rest(self, pos: int, logical: int) -> int:
        """Bytes left in the file from `pos` (up to the limit, where logical = physical)."""
        end = self._file_size
        if logical == pos:
            end = min(end, self._limit)
        return max(0, end - pos)

    # --- plain (mmap / direct-IO) sections (§5.1) --------------------------------------------------

    def _locate_plain(self, pos: int, nxt: int, logical: int, head: bytes) -> _Section:
        if nxt < pos + SYNC_MARKER_SIZE:
            raise _Damage(SyncMarkerError(f"sync marker at {pos} points back to {nxt}", path=self._where,
                                          position=logical), self._rest(pos, logical))
        section = _Section(pos + SYNC_MARKER_SIZE, nxt, nxt)
        # Java clamps a section to the file length (a truncated copy); a durable limit inside the
        # section is not damage, the entries after it are just not durable yet
        if self._file_size < min(nxt, self._limit):
            section.clamp = "file"
        elif self._limit < nxt:
            section.clamp = "limit"
        return section

    def _decode_plain(self, pos: int, nxt: int, logical: int, section: _Section) -> bytes:
        end = min(nxt, self._file_size, self._limit)
        return self._pread(end - section.data_start, section.data_start)

    # --- compressed and encrypted sections (§5.2, §5.3) ----------------------------------------------

    def _locate_packed(self, pos: int, nxt: int, logical: int, head: bytes) -> _Section | None:
        if len(head) < SECTION_HEADER_SIZE:
            raise _Damage(TruncatedSegmentError(f"file ends inside the section header at {pos}",
                                                path=self._where, position=logical), len(head))
        (ulen,) = _INT.unpack_from(head, SYNC_MARKER_SIZE)
        if nxt < pos + SECTION_HEADER_SIZE:
            raise _Damage(SyncMarkerError(f"sync marker at {pos} points back to {nxt}", path=self._where,
                                          position=logical), self._rest(pos, logical))
        if nxt > self._file_size:
            raise _Damage(TruncatedSegmentError(
                f"section at file offset {pos} ends at {nxt}, past the end of the file ({self._file_size})",
                path=self._where, position=logical), self._rest(pos, logical))
        if ulen < 0:
            raise _Damage(SectionDecodeError(f"section at file offset {pos} has a negative length {ulen}",
                                             path=self._where, position=logical), self._rest(pos, logical))
        next_logical = logical + SYNC_MARKER_SIZE + ulen
        if next_logical > self._limit:
            return None  # not durable: do not even decode it
        return _Section(logical + SYNC_MARKER_SIZE, nxt, next_logical)

    def _section_error(self, error: CodecError | CipherError, pos: int, logical: int, section: _Section) -> _Damage:
        if error.length_mismatch:
            # the length field itself may be what is damaged: every later logical position would be
            # wrong, so reading stops here rather than hand out bad resume points
            err = SectionDecodeError(f"section at file offset {pos}: {error}; later positions cannot be "
                                     "trusted", path=self._where, position=logical)
            return _Damage(err, self._rest(pos, logical))
        # the marker chain is intact, so reading can resume at the next section
        err = SectionDecodeError(f"section at file offset {pos}: {error}", path=self._where, position=logical)
        return _Damage(err, section.next_logical - section.data_start, (section.next_pos, section.next_logical))

    def _decode_compressed(self, pos: int, nxt: int, logical: int, section: _Section) -> bytes:
        raw = self._pread(nxt - pos - SECTION_HEADER_SIZE, pos + SECTION_HEADER_SIZE)
        try:
            return self._codec.decompress(raw, section.next_logical - section.data_start)
        except CodecError as e:
            raise self._section_error(e, pos, logical, section) from None

    def _decode_encrypted(self, pos: int, nxt: int, logical: int, section: _Section) -> bytes:
        raw = self._pread(nxt - pos - SECTION_HEADER_SIZE, pos + SECTION_HEADER_SIZE)
        try:
            return _decrypt_blocks(raw, self._cipher, section.next_logical - section.data_start)
        except (CipherError, CodecError) as e:
            raise self._section_error(e, pos, logical, section) from None

    # --- entries (§6): the hot loop ----------------------------------------------------------------

    def _entries_in(self, section: _Section, fast=None) -> Iterator[Entry | FastRun]:
        data, base = section.data, section.data_start
        n = len(data)
        mv = memoryview(data)
        crc32, unpack, crc_at, make_entry = zlib.crc32, _ENTRY_HEAD.unpack_from, _CRC.unpack_from, _make_entry
        segment_id, report = self.header.segment_id, self.report
        skip_until = self._skip_until - base  # relative: entries ending at or before it were consumed
        off = 0
        while off < n:
            if fast is not None:
                off, taken, last_end, full = fast(data, off, base, skip_until, segment_id)
                if taken:
                    position = CommitLogPosition(segment_id, base + last_end)
                    report.entries += taken
                    report.last_position = position
                    yield FastRun(position, taken, full)
                if full or off >= n:
                    continue  # a batch to close first; or the section is done
            # one entry, by the reference loop: damage, padding, or one the fast consumer left
            if n - off < 8:
                if not any(mv[off:off + 4]):
                    return _END  # zero padding too short for a whole entry header
                return self._cut(section, off, "the next entry header")
            size, crc1 = unpack(data, off)
            if size == 0:
                return _END  # zero padding: end of written data (§6)
            size_crc = crc32(mv[off:off + 4])
            if size_crc != crc1:
                # the size itself is damaged: nothing after it in this section can be found
                self._problem(EntryChecksumError(
                    f"entry size checksum (crc1) mismatch, size field {size}", path=self._where,
                    position=base + off), n - off)
                return _NEXT
            if size < MIN_ENTRY_SIZE:
                return self._cut(section, off, f"an entry of {size} bytes (minimum {MIN_ENTRY_SIZE})", short=True)
            end = off + ENTRY_OVERHEAD + size
            if end > n:
                return self._cut(section, off, f"the entry of {size} bytes")
            body_end = end - 4
            if end <= skip_until:
                off = end
                continue
            body = data[off + 8:body_end]
            if crc32(body, size_crc) != crc_at(data, body_end)[0]:
                # only the body is damaged; the next entry is still found by the size (Java: continue)
                self._problem(EntryChecksumError(
                    f"entry body checksum (crc2) mismatch, entry of {size} bytes", path=self._where,
                    position=base + off), end - off)
                off = end
                continue
            entry = make_entry(segment_id, base + end, base + off, body)
            report.entries += 1
            report.last_position = entry.position
            yield entry
            off = end
        if section.clamp == "file":
            return self._cut(section, off, "the rest of the section")
        return _NEXT

    def _cut(self, section: _Section, off: int, what: str, short: bool = False) -> str:
        """An entry that does not fit its section: truncated file, durable limit, or garbage."""
        n = len(section.data)
        position = section.data_start + off
        if section.clamp == "limit" and not short:
            return _END  # the rest is beyond the durable offset: not ours to read yet
        if section.clamp == "file" and not short:
            self._problem(TruncatedSegmentError(
                f"file ends ({self._file_size} bytes) inside {what}", path=self._where, position=position),
                n - off, fatal=True)
            return _STOP
        self._problem(TruncatedSegmentError(f"{what} runs past the end of its section", path=self._where,
                                            position=position), n - off)
        return _NEXT

    def _problem(self, error: CommitLogError, skipped: int, fatal: bool = False) -> None:
        """Record damage; raise it (on_error="raise") or count what is passed over ("skip")."""
        report = self.report
        report.problems.append(error)
        if fatal or self.on_error == "raise":
            report.stopped_at = error.position
        if self.on_error == "raise":
            raise error
        report.bytes_skipped += skipped


def _decrypt_blocks(raw: bytes, cipher, total: int) -> bytes:
    """The blocks of one encrypted section, decrypted and LZ4-decompressed, joined (§5.3)."""
    parts, produced, off, n = [], 0, 0, len(raw)
    while off < n:
        if n - off < _BLOCK_HEAD.size:
            raise CipherError(f"{n - off} stray bytes after the last block")
        enc_len, comp_len = _BLOCK_HEAD.unpack_from(raw, off)
        start = off + _BLOCK_HEAD.size
        if enc_len <= 0 or start + enc_len > n or not 4 <= comp_len <= enc_len:
            raise CipherError(f"bad block header (encryptedLength {enc_len}, compressedLength {comp_len})")
        plain = cipher.decrypt(raw[start:start + enc_len])
        if comp_len > len(plain):
            raise CipherError(f"block decrypts to {len(plain)} bytes, header says {comp_len}")
        # the compressed block: 4-byte big-endian raw length, then LZ4Compressor's own output
        (block_len,) = _INT.unpack_from(plain, 0)
        if not 0 <= block_len <= total - produced:
            raise CipherError(f"block length {block_len} exceeds the section's remaining {total - produced}",
                              length_mismatch=True)
        parts.append(LZ4.decompress(plain[4:comp_len], block_len))
        produced += block_len
        off = start + enc_len
    if produced != total:
        raise CipherError(f"blocks hold {produced} bytes, section header says {total}", length_mismatch=True)
    return b"".join(parts)
