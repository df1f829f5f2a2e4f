"""Damaged segments: every case gives a typed error naming the file and position, or a clean stop at
the last good position with the skipped bytes counted. Everything before the damage is delivered.

Cases run on copies of real segments (4.0.11 plain, 3.4 encrypted) and on written ones.

Layout of the 4.0.11 segment (format doc §15b): header 20 bytes; sections at 20 (entries ending at
392, 467), 467 (one entry ending at 1576), 1576 (355 entries, 1584 .. 75003), 75003 (empty); a zero
marker at 75011; file 1 MiB. The 3.4 segment: header 125 bytes, one section of 2949446 logical
bytes (14562 entries) at file offset 125, an empty one at 1452345; file 1452357 bytes.
"""

from __future__ import annotations

import random
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ray_cdc.commitlog.encryption import EncryptionSpec, Keystore
from ray_cdc.commitlog.segment import SegmentReader, header_crc, marker_crc
from ray_cdc.commitlog.segment_writer import SegmentWriter, encode_header
from ray_cdc.errors import (
    CommitLogError,
    EntryChecksumError,
    KeystoreError,
    SectionDecodeError,
    SegmentHeaderError,
    SyncMarkerError,
    TruncatedSegmentError,
    UnsupportedSegmentError,
)

F40_NAME = "CommitLog-7-1699285478684.log"
F40_SIZE = 1 << 20
F34_NAME = "CommitLog-6-1480001790338.log"
F34_PLAIN = 2949446  # logical bytes of its data section
F34_END = 125 + 8 + F34_PLAIN  # logical end of that section = position of its last entry
F34_ENTRIES = 14562
KEY = bytes(range(16))
KEYSTORE = Keystore.from_keys({"k": KEY})


# --- fixtures and helpers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def f40(shared_fixtures) -> bytes:
    path = shared_fixtures / "cassandra-commitlog" / "4.0.11" / F40_NAME
    if not path.is_file():
        pytest.skip(f"real segment not found at {path}")
    return path.read_bytes()


@pytest.fixture(scope="module")
def f34(shared_fixtures) -> tuple[bytes, Keystore]:
    folder = shared_fixtures / "cassandra-commitlog" / "3.4"
    if not (folder / F34_NAME).is_file():
        pytest.skip(f"real segment not found at {folder / F34_NAME}")
    return (folder / F34_NAME).read_bytes(), Keystore.open(folder / "cassandra.keystore", "cassandra")


@dataclass
class Outcome:
    entries: list
    report: object
    error: CommitLogError | None

    @property
    def ends(self) -> list[int]:
        return [e.position.offset for e in self.entries]


def read(path: Path, on_error: str = "raise", keystore=None, **kw) -> Outcome:
    reader = SegmentReader(path, keystore=keystore, on_error=on_error, **kw)
    got, error = [], None
    try:
        for entry in reader.entries():
            got.append(entry)  # noqa: PERF402 - keeps what came before the error
    except CommitLogError as e:
        error = e
    if on_error == "skip":
        assert error is None, "skip mode must not raise after the header"
    return Outcome(got, reader.report, error)


def put(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(bytes(data))
    return path


def flip(data: bytes, at: int, mask: int = 0x10) -> bytearray:
    out = bytearray(data)
    out[at] ^= mask
    return out


def assert_error(error, kind, path: Path, position: int):
    assert type(error) is kind, error
    assert error.path == str(path) and error.position == position
    assert str(path) in str(error) and f"position {position}" in str(error)


def both(path: Path, keystore=None, **kw) -> tuple[Outcome, Outcome]:
    return read(path, "raise", keystore, **kw), read(path, "skip", keystore, **kw)


# A written segment: 3 sections of 3, 4 and 3 entries of 52 bytes (40-byte bodies), then the empty
# section close() writes. Logical layout (header 20 bytes for plain, more with parameters):
#   markers at H, H+164, H+380, H+544; entries start at H+8+52k within each section.
@dataclass
class Written:
    path: Path
    raw: bytes
    ends: list[int]  # entry positions, in order
    starts: list[int]
    markers: list[tuple[int, int]]  # (physical, logical) of each section marker
    header_size: int


def write_segment(directory: Path, mode: str, segment_id: int = 1234) -> Written:
    kwargs = {"plain": {}, "deflate": {"compression": "DeflateCompressor"}, "lz4": {"compression": "LZ4Compressor"},
              "noop": {"compression": "NoopCompressor"},
              "zstd": {"compression": "ZstdCompressor"},
              "encrypted": {"encryption": EncryptionSpec(KEY, "k")}}[mode]
    w = SegmentWriter(directory, segment_id=segment_id, version=7, chunk_length=64, **kwargs)
    markers, ends = [], []
    for count in (3, 4, 3):
        markers.append(w.open_section)
        ends += [w.append(bytes([len(ends)]) * 40).offset for _ in range(count)]
        w.sync()
    markers.append(w.open_section)
    w.close()
    return Written(w.path, w.path.read_bytes(), ends, [e - 52 for e in ends], markers, w.header_size)


# --- header damage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [F40_NAME, "CommitLog-6-1.log"])
def test_zero_length_file(tmp_path, name):
    path = put(tmp_path, name, b"")
    with pytest.raises(SegmentHeaderError) as info:
        SegmentReader(path)
    assert_error(info.value, SegmentHeaderError, path, 0)


@pytest.mark.parametrize("cut", [1, 13, 14, 19])
def test_truncated_header_real(tmp_path, f40, cut):
    path = put(tmp_path, F40_NAME, f40[:cut])
    with pytest.raises(SegmentHeaderError) as info:
        SegmentReader(path)
    assert_error(info.value, SegmentHeaderError, path, cut)


def test_truncated_header_encrypted_and_written(tmp_path, f34):
    raw, keystore = f34
    path = put(tmp_path, F34_NAME, raw[:100])  # inside the parameters JSON
    with pytest.raises(SegmentHeaderError) as info:
        SegmentReader(path, keystore=keystore)
    assert_error(info.value, SegmentHeaderError, path, 100)
    w = write_segment(tmp_path, "deflate")
    put(tmp_path, w.path.name, w.raw[: w.header_size - 1])
    with pytest.raises(SegmentHeaderError) as info:
        SegmentReader(w.path)
    assert_error(info.value, SegmentHeaderError, w.path, w.header_size - 1)


@pytest.mark.parametrize("at", [16, 19, 14, 3, 8])  # header CRC, parameters '{', version, id
def test_wrong_header_crc_real(tmp_path, f40, at):
    path = put(tmp_path, F40_NAME, flip(f40, at, 0x01))
    with pytest.raises(SegmentHeaderError) as info:
        SegmentReader(path)
    assert_error(info.value, SegmentHeaderError, path, 16)


def test_wrong_header_crc_encrypted_and_written(tmp_path, f34):
    raw, keystore = f34
    path = put(tmp_path, F34_NAME, flip(raw, 70, 0x01))  # a hex digit of encIV
    with pytest.raises(SegmentHeaderError) as info:
        SegmentReader(path, keystore=keystore)
    assert_error(info.value, SegmentHeaderError, path, 121)
    w = write_segment(tmp_path, "zstd")
    put(tmp_path, w.path.name, flip(w.raw, w.header_size - 1))
    with pytest.raises(SegmentHeaderError) as info:
        SegmentReader(w.path)
    assert_error(info.value, SegmentHeaderError, w.path, w.header_size - 4)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_garbage_under_a_segment_name(tmp_path, seed):
    path = put(tmp_path, "CommitLog-7-123.log", random.Random(seed).randbytes(65536))
    with pytest.raises(SegmentHeaderError) as info:
        SegmentReader(path)
    assert info.value.path == str(path) and info.value.position is not None


def test_valid_header_then_garbage(tmp_path):
    """A good header followed by garbage: the first marker is corrupt."""
    header = encode_header(7, 123, {})
    path = put(tmp_path, "CommitLog-7-123.log", header + random.Random(7).randbytes(5000))
    strict, lenient = both(path)
    assert_error(strict.error, SyncMarkerError, path, 20)
    assert lenient.entries == [] and lenient.report.stopped_at == 20
    assert lenient.report.bytes_skipped == 5000 and not lenient.report.end_of_data


def test_header_id_differs_from_the_name(tmp_path, f40):
    for name in ("CommitLog-7-1699285478685.log", "CommitLog-8-1699285478684.log"):
        path = put(tmp_path, name, f40)
        with pytest.raises(SegmentHeaderError) as info:
            SegmentReader(path)
        assert_error(info.value, SegmentHeaderError, path, 0)
        assert "1699285478684" in str(info.value)
    w = write_segment(tmp_path, "lz4")
    other = w.path.rename(tmp_path / "CommitLog-7-99.log")
    with pytest.raises(SegmentHeaderError, match="id 1234"):
        SegmentReader(other)


def test_unsupported_version_compressor_and_cipher(tmp_path):
    path = put(tmp_path, "CommitLog-5-1.log", encode_header(5, 1, {}) + bytes(8))
    with pytest.raises(UnsupportedSegmentError) as info:
        SegmentReader(path)
    assert_error(info.value, UnsupportedSegmentError, path, 0)
    path = put(tmp_path, "CommitLog-7-2.log", encode_header(7, 2, {"compressionClass": "BrotliCompressor"}))
    with pytest.raises(UnsupportedSegmentError, match="BrotliCompressor"):
        SegmentReader(path)
    params = {"encCipher": "AES/GCM/NoPadding", "encIV": "00" * 16, "encKeyAlias": "k"}
    path = put(tmp_path, "CommitLog-7-3.log", encode_header(7, 3, params))
    with pytest.raises(UnsupportedSegmentError, match="AES/GCM"):
        SegmentReader(path, keystore=KEYSTORE)
    for n, iv in enumerate(("zz", "00" * 8)):
        params = {"encCipher": "AES/CBC/PKCS5Padding", "encIV": iv, "encKeyAlias": "k"}
        path = put(tmp_path, f"CommitLog-7-{10 + n}.log", encode_header(7, 10 + n, params))
        with pytest.raises(SegmentHeaderError, match="encIV"):
            SegmentReader(path, keystore=KEYSTORE)
    params = {"encCipher": "AES/CBC/PKCS5Padding", "encIV": "00" * 16, "encKeyAlias": "k"}
    path = put(tmp_path, "CommitLog-7-12.log", encode_header(7, 12, params))
    with pytest.raises(KeystoreError, match="does not fit"):
        SegmentReader(path, keystore=Keystore.from_keys({"k": bytes(7)}))


def test_non_object_parameters(tmp_path):
    raw = b"[1]"
    header = struct.pack(">iqH", 7, 6, len(raw)) + raw
    path = put(tmp_path, "CommitLog-7-6.log", header + struct.pack(">I", header_crc(7, 6, raw)))
    with pytest.raises(SegmentHeaderError, match="JSON object") as info:
        SegmentReader(path)
    assert info.value.position == 14


# --- truncation ------------------------------------------------------------------------------------------


def test_truncated_inside_a_marker_real(tmp_path, f40):
    path = put(tmp_path, F40_NAME, f40[:471])
    strict, lenient = both(path)
    assert_error(strict.error, TruncatedSegmentError, path, 467)
    assert strict.ends == lenient.ends == [392, 467]
    assert (lenient.report.stopped_at, lenient.report.bytes_skipped, lenient.report.end_of_data) == (467, 4, False)


@pytest.mark.parametrize("extra", [6, 10])  # inside the marker / inside the section header
def test_truncated_inside_a_marker_encrypted(tmp_path, f34, extra):
    raw, keystore = f34
    path = put(tmp_path, F34_NAME, raw[:1452345 + extra])
    strict, lenient = both(path, keystore)
    assert_error(strict.error, TruncatedSegmentError, path, F34_END)
    assert len(strict.entries) == len(lenient.entries) == F34_ENTRIES
    assert (lenient.report.stopped_at, lenient.report.bytes_skipped) == (F34_END, extra)


@pytest.mark.parametrize("mode", ["plain", "deflate", "encrypted"])
def test_truncated_inside_a_marker_written(tmp_path, mode):
    w = write_segment(tmp_path, mode)
    phys, logical = w.markers[1]
    put(tmp_path, w.path.name, w.raw[:phys + 5])
    strict, lenient = both(w.path, KEYSTORE)
    assert_error(strict.error, TruncatedSegmentError, w.path, logical)
    assert strict.ends == lenient.ends == w.ends[:3]
    assert (lenient.report.stopped_at, lenient.report.bytes_skipped) == (logical, 5)


@pytest.mark.parametrize("cut,skipped", [(2014 + 50, 50), (2014, 0)])
def test_truncated_inside_an_entry_real(tmp_path, f40, cut, skipped):
    """Java clamps a section to the file length; the partial entry then cannot be read."""
    path = put(tmp_path, F40_NAME, f40[:cut])
    strict, lenient = both(path)
    assert_error(strict.error, TruncatedSegmentError, path, 2014)
    assert strict.ends == lenient.ends == [392, 467, 1576, 1776, 2014]
    report = lenient.report
    assert (report.stopped_at, report.bytes_skipped, report.end_of_data) == (2014, skipped, False)
    assert [type(p) for p in report.problems] == [TruncatedSegmentError]


def test_truncated_inside_an_entry_encrypted(tmp_path, f34):
    raw, keystore = f34
    path = put(tmp_path, F34_NAME, raw[:700000])
    strict, lenient = both(path, keystore)
    assert_error(strict.error, TruncatedSegmentError, path, 125)
    assert strict.entries == lenient.entries == []
    assert (lenient.report.stopped_at, lenient.report.bytes_skipped) == (125, 700000 - 125)


@pytest.mark.parametrize("mode", ["plain", "deflate", "encrypted"])
def test_truncated_inside_an_entry_written(tmp_path, mode):
    w = write_segment(tmp_path, mode)
    phys, logical = w.markers[1]
    cut = phys + 8 + 52 + 30 if mode == "plain" else phys + 20
    put(tmp_path, w.path.name, w.raw[:cut])
    strict, lenient = both(w.path, KEYSTORE)
    # plain: the second entry of section 2 is cut; packed: the whole section 2 is missing
    position = w.starts[4] if mode == "plain" else logical
    assert_error(strict.error, TruncatedSegmentError, w.path, position)
    expected = w.ends[:4] if mode == "plain" else w.ends[:3]
    assert strict.ends == lenient.ends == expected
    assert lenient.report.stopped_at == position
    assert lenient.report.bytes_skipped == (30 if mode == "plain" else cut - phys)


# --- clean ends ---------------------------------------------------------------------------------------------


def test_zeros_after_the_last_marker_real(tmp_path, f40):
    for zeroed in (bytes(f40[:1576]) + bytes(F40_SIZE - 1576),  # nothing after the marker
                   bytes(f40[:1576]) + bytes(8) + bytes(f40[1584:])):  # entries written, marker not yet
        path = put(tmp_path, F40_NAME, zeroed)
        for outcome in both(path):
            assert outcome.error is None and outcome.ends == [392, 467, 1576]
            report = outcome.report
            assert report.end_of_data and report.problems == [] and report.bytes_skipped == 0
            assert report.stopped_at is None


@pytest.mark.parametrize("mode", ["plain", "deflate", "encrypted"])
def test_zeros_after_the_last_marker_written(tmp_path, mode):
    w = write_segment(tmp_path, mode)
    put(tmp_path, w.path.name, w.raw + bytes(4096))  # e.g. a copy padded to a block size
    for outcome in both(w.path, KEYSTORE):
        assert outcome.error is None and outcome.ends == w.ends and outcome.report.end_of_data
    # a still-open section: its marker is zero, whatever follows it is not read
    phys, _ = w.markers[2]
    put(tmp_path, w.path.name, w.raw[:phys] + bytes(8) + w.raw[phys + 8:])
    for outcome in both(w.path, KEYSTORE):
        assert outcome.error is None and outcome.ends == w.ends[:7] and outcome.report.end_of_data


def test_a_zero_size_entry_ends_the_data(tmp_path):
    w = write_segment(tmp_path, "plain")
    start = w.starts[5]
    put(tmp_path, w.path.name, w.raw[:start] + bytes(4) + w.raw[start + 4:])
    for outcome in both(w.path):
        assert outcome.ends == w.ends[:5] and outcome.report.end_of_data and outcome.report.problems == []


# --- entries with damage --------------------------------------------------------------------------------


def test_flipped_bit_in_an_entry_body_real(tmp_path, f40):
    path = put(tmp_path, F40_NAME, flip(f40, 2178 + 8 + 20))
    strict, lenient = both(path)
    assert_error(strict.error, EntryChecksumError, path, 2178)
    assert strict.ends[-1] == 2178 and len(strict.entries) == 6
    assert len(lenient.entries) == 357 and 2308 not in lenient.ends  # everything but that entry
    report = lenient.report
    assert (report.bytes_skipped, report.stopped_at, report.end_of_data) == (2308 - 2178, None, True)
    assert [(type(p), p.position) for p in report.problems] == [(EntryChecksumError, 2178)]
    assert strict.report.stopped_at == 2178 and not strict.report.end_of_data


@pytest.mark.parametrize("mode", ["plain", "noop"])
def test_flipped_bit_in_an_entry_body_written(tmp_path, mode):
    """NoopCompressor keeps the entries as they are inside a compressed section: crc2 catches it."""
    w = write_segment(tmp_path, mode)
    phys, logical = w.markers[1]
    # physical offset of entry 4 (the second of section 2)
    at = w.starts[4] if mode == "plain" else phys + 12 + (w.starts[4] - (logical + 8))
    put(tmp_path, w.path.name, flip(w.raw, at + 8 + 5))
    strict, lenient = both(w.path)
    assert_error(strict.error, EntryChecksumError, w.path, w.starts[4])
    assert strict.ends == w.ends[:4]
    assert lenient.ends == w.ends[:4] + w.ends[5:] and lenient.report.bytes_skipped == 52
    assert lenient.report.end_of_data and lenient.report.stopped_at is None


@pytest.mark.parametrize("mode", ["deflate", "zstd", "encrypted"])
def test_damaged_compressed_or_encrypted_section_written(tmp_path, mode):
    w = write_segment(tmp_path, mode)
    phys, logical = w.markers[1]
    middle = (phys + 12 + w.markers[2][0]) // 2
    put(tmp_path, w.path.name, flip(w.raw, middle, 0xFF))
    strict, lenient = both(w.path, KEYSTORE)
    assert_error(strict.error, SectionDecodeError, w.path, logical)
    assert strict.ends == w.ends[:3]
    assert lenient.ends == w.ends[:3] + w.ends[7:]  # section 2 skipped, section 3 still read
    assert lenient.report.bytes_skipped == 4 * 52 and lenient.report.end_of_data
    assert [(type(p), p.position) for p in lenient.report.problems] == [(SectionDecodeError, logical)]


def test_damaged_encrypted_section_real(tmp_path, f34):
    raw, keystore = f34
    path = put(tmp_path, F34_NAME, flip(raw, 5000))
    strict, lenient = both(path, keystore)
    assert_error(strict.error, SectionDecodeError, path, 125)
    assert lenient.entries == [] and lenient.report.bytes_skipped == F34_PLAIN and lenient.report.end_of_data


@pytest.mark.parametrize("mode", ["deflate", "lz4", "encrypted"])
def test_damaged_section_length_stops_reading(tmp_path, mode):
    """A wrong uncompressed length would shift every later logical position: stop, don't guess."""
    w = write_segment(tmp_path, mode)
    phys, logical = w.markers[1]
    (ulen,) = struct.unpack_from(">i", w.raw, phys + 8)
    put(tmp_path, w.path.name, w.raw[:phys + 8] + struct.pack(">i", ulen + 1) + w.raw[phys + 12:])
    strict, lenient = both(w.path, KEYSTORE)
    assert_error(strict.error, SectionDecodeError, w.path, logical)
    assert lenient.ends == w.ends[:3] and lenient.report.stopped_at == logical
    assert lenient.report.bytes_skipped == len(w.raw) - phys and not lenient.report.end_of_data
    put(tmp_path, w.path.name, w.raw[:phys + 8] + struct.pack(">i", -5) + w.raw[phys + 12:])
    strict, lenient = both(w.path, KEYSTORE)
    assert_error(strict.error, SectionDecodeError, w.path, logical)
    assert lenient.report.stopped_at == logical


def test_flipped_bit_in_an_entry_size_real(tmp_path, f40):
    path = put(tmp_path, F40_NAME, flip(f40, 2178 + 3, 0x02))
    strict, lenient = both(path)
    assert_error(strict.error, EntryChecksumError, path, 2178)
    # the rest of that section cannot be found; the next (empty) section is still read
    assert strict.ends == lenient.ends == [392, 467, 1576, 1776, 2014, 2178]
    report = lenient.report
    assert (report.bytes_skipped, report.end_of_data, report.stopped_at) == (75003 - 2178, True, None)


def test_flipped_bit_in_an_entry_size_written(tmp_path):
    w = write_segment(tmp_path, "plain")
    put(tmp_path, w.path.name, flip(w.raw, w.starts[4] + 3, 0x01))
    strict, lenient = both(w.path)
    assert_error(strict.error, EntryChecksumError, w.path, w.starts[4])
    assert lenient.ends == w.ends[:4] + w.ends[7:]  # rest of section 2 skipped, section 3 read
    assert lenient.report.bytes_skipped == w.markers[2][1] - w.starts[4]


def _with_entry_size(w: Written, index: int, size: int) -> bytes:
    start = w.starts[index]
    head = struct.pack(">i", size)
    return w.raw[:start] + head + struct.pack(">I", zlib.crc32(head)) + w.raw[start + 8:]


def test_entry_size_below_the_minimum(tmp_path):
    w = write_segment(tmp_path, "plain")
    put(tmp_path, w.path.name, _with_entry_size(w, 4, 5))  # crc1 valid, size impossible (< 10)
    strict, lenient = both(w.path)
    assert_error(strict.error, TruncatedSegmentError, w.path, w.starts[4])
    assert strict.ends == w.ends[:4]
    assert lenient.ends == w.ends[:4] + w.ends[7:]
    assert lenient.report.bytes_skipped == w.markers[2][1] - w.starts[4]


def test_entry_running_past_its_section(tmp_path):
    w = write_segment(tmp_path, "plain")
    put(tmp_path, w.path.name, _with_entry_size(w, 6, 100))  # the last entry of section 2
    strict, lenient = both(w.path)
    assert_error(strict.error, TruncatedSegmentError, w.path, w.starts[6])
    assert lenient.ends == w.ends[:6] + w.ends[7:] and lenient.report.bytes_skipped == 52


# --- sync markers ------------------------------------------------------------------------------------------


def test_corrupt_sync_marker_real(tmp_path, f40):
    path = put(tmp_path, F40_NAME, flip(f40, 1576 + 6))
    strict, lenient = both(path)
    assert_error(strict.error, SyncMarkerError, path, 1576)
    assert strict.ends == lenient.ends == [392, 467, 1576]
    report = lenient.report
    assert (report.stopped_at, report.bytes_skipped, report.end_of_data) == (1576, F40_SIZE - 1576, False)


@pytest.mark.parametrize("next_marker", [470, 100, 0])
def test_sync_marker_with_valid_crc_pointing_back(tmp_path, f40, next_marker):
    marker = struct.pack(">iI", next_marker, marker_crc(1699285478684, 467))
    path = put(tmp_path, F40_NAME, f40[:467] + marker + f40[475:])
    strict, lenient = both(path)
    assert_error(strict.error, SyncMarkerError, path, 467)
    assert lenient.ends == [392, 467] and lenient.report.stopped_at == 467


def test_nonzero_next_with_zero_crc_is_corrupt(tmp_path, f40):
    path = put(tmp_path, F40_NAME, f40[:467] + struct.pack(">iI", 1576, 0) + f40[475:])
    strict, _ = both(path)
    assert_error(strict.error, SyncMarkerError, path, 467)


def test_corrupt_sync_marker_encrypted(tmp_path, f34):
    raw, keystore = f34
    path = put(tmp_path, F34_NAME, flip(raw, 125 + 5))
    strict, lenient = both(path, keystore)
    assert_error(strict.error, SyncMarkerError, path, 125)
    assert lenient.entries == [] and lenient.report.bytes_skipped == len(raw) - 125


@pytest.mark.parametrize("mode", ["plain", "deflate", "encrypted"])
def test_corrupt_sync_marker_written(tmp_path, mode):
    w = write_segment(tmp_path, mode)
    phys, logical = w.markers[1]
    put(tmp_path, w.path.name, flip(w.raw, phys + 7))
    strict, lenient = both(w.path, KEYSTORE)
    assert_error(strict.error, SyncMarkerError, w.path, logical)
    assert strict.ends == lenient.ends == w.ends[:3]
    assert (lenient.report.stopped_at, lenient.report.bytes_skipped) == (logical, len(w.raw) - phys)


def test_packed_marker_pointing_past_the_file(tmp_path):
    w = write_segment(tmp_path, "deflate")
    phys, logical = w.markers[1]
    marker = struct.pack(">iI", len(w.raw) + 100, marker_crc(1234, phys))
    put(tmp_path, w.path.name, w.raw[:phys] + marker + w.raw[phys + 8:])
    strict, lenient = both(w.path)
    assert_error(strict.error, TruncatedSegmentError, w.path, logical)
    assert lenient.ends == w.ends[:3] and lenient.report.stopped_at == logical


# --- fuzzing -------------------------------------------------------------------------------------------------

def _ops(window: int):
    """Damage operations at offsets spread over the first `window` bytes of a file."""
    at = st.integers(0, window - 1)
    return st.lists(st.one_of(
        st.tuples(st.just("flip"), at, st.integers(0, 7)),
        st.tuples(st.just("zero"), at, st.integers(1, 64)),
        st.tuples(st.just("insert"), at, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("truncate"), at, st.just(0)),
    ), min_size=1, max_size=4)


def _mutate(raw: bytes, ops, window: int) -> tuple[bytes, bool]:
    """Apply the operations within the first `window` bytes; returns (data, offsets_kept)."""
    data = bytearray(raw)
    kept = True
    for op, where, arg in ops:
        at = where % max(1, min(window, len(data)))
        if op == "flip":
            data[at] ^= 1 << arg
        elif op == "zero":
            data[at:at + arg] = bytes(len(data[at:at + arg]))
        elif op == "insert":
            data[at:at] = arg
            kept = False
        else:
            del data[at:]
            kept = False
        if not data:
            break
    return bytes(data), kept


def _fuzz_one(directory: str, name: str, data: bytes, kept: bool, keystore, by_start) -> None:
    path = Path(directory) / name
    path.write_bytes(data)
    for on_error in ("raise", "skip"):
        try:
            reader = SegmentReader(path, keystore=keystore, on_error=on_error)
            count = 0
            for entry in reader.entries():
                count += 1
                assert count < 1_000_000  # terminates
                if kept and by_start is not None:  # same offsets: only original entries can pass both CRCs
                    assert by_start.get(entry.start) == entry.body
            event(f"{on_error}: {'no' if count == 0 else 'some'} entries, no error")
        except CommitLogError as e:
            event(f"{on_error}: {type(e).__name__}")
            assert e.path == str(path)
            assert on_error == "raise" or isinstance(e, (SegmentHeaderError, UnsupportedSegmentError))


@pytest.fixture(scope="module")
def fuzz_dir():
    with tempfile.TemporaryDirectory() as d:
        yield d


@given(ops=_ops(76000))  # the written part of the 1 MiB file
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_real_plain_segment(fuzz_dir, f40, ops):
    by_start = _entries_by_start(F40_NAME, f40, None)
    data, kept = _mutate(f40, ops, 76000)
    _fuzz_one(fuzz_dir, F40_NAME, data, kept, None, by_start)


@given(ops=_ops(1452357))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_real_encrypted_segment(fuzz_dir, f34, ops):
    raw, keystore = f34
    data, kept = _mutate(raw, ops, len(raw))
    _fuzz_one(fuzz_dir, F34_NAME, data, kept, keystore, None)


_WRITTEN: dict[str, bytes] = {}


@pytest.mark.parametrize("mode", ["plain", "deflate", "lz4", "zstd", "encrypted"])
@given(ops=_ops(1500))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_written_segments(fuzz_dir, mode, ops):
    if mode not in _WRITTEN:
        with tempfile.TemporaryDirectory() as d:
            _WRITTEN[mode] = write_segment(Path(d), mode).raw
    raw = _WRITTEN[mode]
    data, kept = _mutate(raw, ops, len(raw))
    by_start = _entries_by_start("CommitLog-7-1234.log", raw, KEYSTORE) if mode == "plain" else None
    _fuzz_one(fuzz_dir, "CommitLog-7-1234.log", data, kept, KEYSTORE, by_start)


_BY_START: dict[tuple[str, int], dict[int, bytes]] = {}


def _entries_by_start(name: str, raw: bytes, keystore) -> dict[int, bytes]:
    key = (name, zlib.crc32(raw))
    if key not in _BY_START:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / name
            path.write_bytes(raw)
            _BY_START[key] = {e.start: e.body for e in SegmentReader(path, keystore=keystore).entries()}
    return _BY_START[key]


def test_fuzz_helpers_sanity():
    data, kept = _mutate(b"abcdef", [("flip", 0, 0), ("zero", 7, 2)], 6)  # 7 % 6 = 1
    assert data == b"`\x00\x00def" and kept
    data, kept = _mutate(b"abcdef", [("truncate", 3, 0)], 6)
    assert data == b"abc" and not kept
