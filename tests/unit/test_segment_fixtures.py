"""The framing reader against real segments written by Cassandra 3.0.13, 3.0.29, 3.4 and 4.0.11.

Entry counts found (format doc §19, fixtures README):
- 3.0.13: 1480 entries in 2 sections (+ a second, empty segment with 1 empty section);
  1404 of them for Keyspace1.Standard1 (= `cells`).
- 3.0.29: 176 entries in 15 sections; 98 for Standard1.
- 3.4 (encrypted): 14562 entries in 2 sections (+ an empty segment with 1 empty section);
  14561 for Standard1.
- 4.0.11: 358 entries in 4 sections; 355 for Standard1, 2 system.local, 1 system_schema.
Each Standard1 write is one mutation with one cell, so these equal hash.txt's `cells`.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest

from ray_cdc.commitlog.cdc_index import index_path, read_cdc_index, write_cdc_index
from ray_cdc.commitlog.encryption import Keystore
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.segment import SegmentReader, parse_segment_name, read_header
from ray_cdc.commitlog.segment_writer import encode_header
from ray_cdc.errors import KeystoreError, SectionDecodeError

# folder -> (entries, sections, Standard1 entries), per segment file in id order
EXPECTED = {
    "3.0.13": [(1480, 2, 1404), (0, 1, 0)],
    "3.0.29": [(176, 15, 98)],
    "3.4": [(14562, 2, 14561), (0, 1, 0)],
    "4.0.11": [(358, 4, 355)],
}
FOLDERS = sorted(EXPECTED)
KEYSTORE_PASSWORD = "cassandra"


@pytest.fixture(scope="module")
def commitlogs(shared_fixtures) -> Path:
    root = shared_fixtures / "cassandra-commitlog"
    if not root.is_dir():
        pytest.skip(f"real Cassandra segments not found at {root}")
    return root


@pytest.fixture(scope="module")
def keystore(commitlogs) -> Keystore:
    return Keystore.open(commitlogs / "3.4" / "cassandra.keystore", KEYSTORE_PASSWORD)


def _segments(commitlogs: Path, folder: str) -> list[Path]:
    return sorted((commitlogs / folder).glob("CommitLog-*.log"), key=lambda p: parse_segment_name(p)[1])


def _cfid(commitlogs: Path, folder: str) -> UUID:
    for line in (commitlogs / folder / "hash.txt").read_text().splitlines():
        if line.startswith("cfid="):
            return UUID(line.split("=", 1)[1].strip())
    raise AssertionError("hash.txt has no cfid")


def _table_id(body: bytes) -> UUID:
    # mutation = vint count (one byte here), then the first update's 16-byte table id (§7, §8)
    assert body[0] < 0x80
    return UUID(bytes=bytes(body[1:17]))


# --- independent checks (zlib and struct only, not the reader's code) -------------------------------


def _crc_ints(*ints: int, crc: int = 0) -> int:
    for i in ints:
        crc = zlib.crc32(struct.pack(">I", i & 0xFFFFFFFF), crc)
    return crc


def _walk_markers(raw: bytes, segment_id: int, header_size: int, packed: bool) -> list[tuple[int, int, int]]:
    """(physical, logical, data length) of every section, checking each marker's CRC (§5)."""
    out, pos, logical = [], header_size, header_size
    while pos <= len(raw) - 8:
        nxt, crc = struct.unpack_from(">iI", raw, pos)
        if crc != _crc_ints(segment_id & 0xFFFFFFFF, segment_id >> 32, pos):
            assert nxt == 0 and crc == 0, f"bad marker at {pos}"
            break
        length = struct.unpack_from(">i", raw, pos + 8)[0] if packed else nxt - pos - 8
        out.append((pos, logical, length))
        logical += 8 + length
        pos = nxt
    return out


# --- tests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", FOLDERS)
def test_headers_parse_and_rewrite_byte_for_byte(commitlogs, folder):
    for path in _segments(commitlogs, folder):
        with open(path, "rb") as f:
            header = read_header(f, str(path))
        raw = path.read_bytes()[: header.size]
        assert (header.version, header.segment_id) == parse_segment_name(path)
        assert header.size == 18 + struct.unpack_from(">H", raw, 12)[0]
        # the writer reproduces Cassandra's json-simple serialization (sorted keys, `\/`) exactly
        assert encode_header(header.version, header.segment_id, header.params) == raw
        assert header.messaging_version == {6: 10, 7: 12}[header.version]
        assert header.encrypted == (folder == "3.4")
        assert header.compression_class is None


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_entry_is_read_with_valid_crcs(commitlogs, keystore, folder):
    cfid = _cfid(commitlogs, folder)
    for path, (n_entries, n_sections, n_standard1) in zip(_segments(commitlogs, folder), EXPECTED[folder]):
        reader = SegmentReader(path, keystore=keystore)
        entries = list(reader.entries())
        report = reader.report
        assert (len(entries), report.sections) == (n_entries, n_sections), path
        assert report.entries == n_entries and report.problems == [] and report.bytes_skipped == 0
        assert report.end_of_data and report.stopped_at is None and report.completed is None
        assert Counter(_table_id(e.body) == cfid for e in entries)[True] == n_standard1
        previous = reader.header.size
        for e in entries:
            assert e.position.segment_id == reader.header.segment_id
            assert e.position.offset == e.start + 8 + len(e.body) + 4
            assert e.start >= previous  # in order, never overlapping
            previous = e.position.offset
        assert report.last_position == (entries[-1].position if entries else None)


@pytest.mark.parametrize("folder", ["3.0.13", "3.0.29", "4.0.11"])
def test_plain_entries_match_the_raw_bytes_and_markers(commitlogs, folder):
    for path in _segments(commitlogs, folder):
        raw = path.read_bytes()
        reader = SegmentReader(path)
        sections = _walk_markers(raw, reader.header.segment_id, reader.header.size, packed=False)
        entries = list(reader.entries())
        assert len(sections) == reader.report.sections
        ends = {p + 8 + n for p, _, n in sections}
        for e in entries:
            size, crc1 = struct.unpack_from(">iI", raw, e.start)
            assert size == len(e.body) and raw[e.start + 8: e.start + 8 + size] == e.body
            assert crc1 == zlib.crc32(raw[e.start:e.start + 4])
            assert struct.unpack_from(">I", raw, e.start + 8 + size)[0] == zlib.crc32(e.body, crc1)
        # sections are packed with entries: each section ends exactly at an entry end
        section_entry_ends = {e.position.offset for e in entries} | {p + 8 for p, _, _ in sections}
        assert ends <= section_entry_ends


def test_4_0_11_layout_matches_the_walkthrough(commitlogs):
    (path,) = _segments(commitlogs, "4.0.11")
    raw = path.read_bytes()
    sections = _walk_markers(raw, 1699285478684, 20, packed=False)
    assert [p for p, _, _ in sections] == [20, 467, 1576, 75003]  # §15b
    assert raw[75011:75019] == bytes(8)
    entries = list(SegmentReader(path).entries())
    first = entries[0]
    assert (first.start, len(first.body), first.position.offset) == (28, 352, 392)
    assert _table_id(first.body) == UUID("7ad54392-bcdd-35a6-8417-4e047860b377")  # system.local
    at_1584 = next(e for e in entries if e.start == 1584)
    assert len(at_1584.body) == 180 and _table_id(at_1584.body) == UUID("657e5210-7cbb-11ee-9858-c9aa1eb53e69")
    assert entries[-1].position.offset == 75003


def test_encrypted_logical_positions_are_consistent(commitlogs, keystore):
    """§5.4: logical = header + Σ(8 + totalPlainTextLength); entries are dense in that stream."""
    for path in _segments(commitlogs, "3.4"):
        raw = path.read_bytes()
        reader = SegmentReader(path, keystore=keystore)
        h = reader.header
        assert h.params["encCipher"] == "AES/CBC/PKCS5Padding" and h.params["encKeyAlias"] == "testing:1"
        sections = _walk_markers(raw, h.segment_id, h.size, packed=True)
        assert sections[-1][0] + 12 <= len(raw)
        entries = list(reader.entries())
        # entries fill each section's plaintext exactly, starting 8 logical bytes after its marker
        expected_starts = []
        for _, logical, length in sections:
            offset = logical + 8
            section_entries = [e for e in entries if logical + 8 <= e.start < logical + 8 + length]
            for e in section_entries:
                expected_starts.append(offset)
                offset = e.position.offset
            assert offset == logical + 8 + length
        assert [e.start for e in entries] == expected_starts
        if entries:  # the last data section ends where the final empty section's marker sits
            _, last_logical, last_length = [s for s in sections if s[2]][-1]
            assert entries[-1].position.offset == last_logical + 8 + last_length
            assert sections[-1][1] == last_logical + 8 + last_length and sections[-1][2] == 0


def test_encrypted_without_keystore_names_file_and_alias(commitlogs):
    path = _segments(commitlogs, "3.4")[0]
    with pytest.raises(KeystoreError) as info:
        SegmentReader(path)
    assert str(path) in str(info.value) and "testing:1" in str(info.value)


def test_encrypted_keystore_without_the_alias(commitlogs):
    path = _segments(commitlogs, "3.4")[0]
    with pytest.raises(KeystoreError, match="testing:1"):
        SegmentReader(path, keystore=Keystore.from_keys({"other": bytes(16)}))


def test_wrong_key_gives_section_decode_errors(commitlogs):
    path = _segments(commitlogs, "3.4")[0]
    wrong = Keystore.from_keys({"testing:1": bytes(range(16))})
    with pytest.raises(SectionDecodeError) as info:
        list(SegmentReader(path, keystore=wrong).entries())
    assert info.value.path == str(path) and info.value.position == 125
    reader = SegmentReader(path, keystore=wrong, on_error="skip")
    assert list(reader.entries()) == []
    assert reader.report.bytes_skipped == 2949446 and reader.report.end_of_data
    assert [type(p) for p in reader.report.problems] == [SectionDecodeError]


def test_wrong_keystore_password(commitlogs):
    with pytest.raises(KeystoreError) as info:
        Keystore.open(commitlogs / "3.4" / "cassandra.keystore", "not-the-password")
    assert "cassandra.keystore" in str(info.value) and "not-the-password" not in str(info.value)


@pytest.mark.parametrize("folder", FOLDERS)
def test_start_resumes_right_after_a_position(commitlogs, keystore, folder):
    path = _segments(commitlogs, folder)[0]
    entries = list(SegmentReader(path, keystore=keystore).entries())
    for k in (0, len(entries) // 3, len(entries) - 2, len(entries) - 1):
        start = entries[k].position
        rest = list(SegmentReader(path, keystore=keystore, start=start).entries())
        assert [e.position for e in rest] == [e.position for e in entries[k + 1:]]
    header_start = CommitLogPosition(entries[0].position.segment_id, 0)
    assert len(list(SegmentReader(path, keystore=keystore, start=header_start).entries())) == len(entries)
    with pytest.raises(ValueError):
        SegmentReader(path, keystore=keystore, start=CommitLogPosition(1, 0))


def test_limit_and_cdc_index_on_a_real_segment(commitlogs, tmp_path):
    (src,) = _segments(commitlogs, "4.0.11")
    path = tmp_path / src.name
    shutil.copyfile(src, path)
    full = list(SegmentReader(path).entries())
    first_two = [e for e in full if e.position.offset <= 1576]
    by_limit = SegmentReader(path, limit=1576)
    assert [e.position for e in by_limit.entries()] == [e.position for e in first_two]
    assert by_limit.report.end_of_data and by_limit.report.completed is None

    write_cdc_index(index_path(path), 1576, completed=False)
    assert read_cdc_index(index_path(path)).offset == 1576
    reader = SegmentReader(path)
    assert len(list(reader.entries())) == len(first_two) and reader.report.completed is False
    # a limit inside a section: entries ending after it are not durable yet, and not damage
    middle = full[len(first_two) + 10]
    reader = SegmentReader(path, limit=middle.position.offset + 5)
    got = list(reader.entries())
    assert got[-1].position == middle.position and reader.report.problems == []
    assert reader.report.bytes_skipped == 0

    write_cdc_index(index_path(path), 75011, completed=True)
    reader = SegmentReader(path)
    assert len(list(reader.entries())) == len(full) and reader.report.completed is True
    assert len(list(SegmentReader(path, cdc_index=False, limit=None).entries())) == len(full)


def test_plain_reading_is_section_by_section(commitlogs, monkeypatch):
    """Memory stays bounded by one section: no read of the whole (1 MiB, zero-padded) file."""
    import ray_cdc.commitlog.segment as segment_module

    (path,) = _segments(commitlogs, "4.0.11")
    sizes = []
    real_pread = segment_module.os.pread

    def spy(fd, n, offset):
        sizes.append(n)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(segment_module.os, "pread", spy)
    assert len(list(SegmentReader(path).entries())) == 358
    assert max(sizes) == 75003 - 1576 - 8
