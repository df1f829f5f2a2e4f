"""Segment framing: codecs, header serialization, keystores, and writer -> reader round trips for
descriptor versions 6, 7, 8 in every segment kind (plain, preallocated, LZ4, Snappy, Deflate, Zstd,
Noop, encrypted)."""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ray_cdc.commitlog import codecs
from ray_cdc.commitlog.cdc_index import CdcIndex, index_path, parse_cdc_index, read_cdc_index
from ray_cdc.commitlog.encryption import AesCbcPkcs5, CipherError, EncryptionSpec, Keystore
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.segment import SegmentReader, parse_segment_name, read_header
from ray_cdc.commitlog.segment_writer import (
    SegmentWriter,
    encode_entry,
    encode_header,
    java_json,
    segment_params,
)
from ray_cdc.errors import CdcIndexError, KeystoreError, SegmentNameError

KEY = bytes(range(32))
ALIAS = "testing:1"
SPEC = EncryptionSpec(KEY, ALIAS, iv=bytes(range(16, 32)))
KEYSTORE = Keystore.from_keys({ALIAS: KEY})

MODES = {
    "plain": {},
    "preallocated": {"preallocate": 1 << 18},
    "lz4": {"compression": "LZ4Compressor"},
    "snappy": {"compression": "SnappyCompressor"},
    "deflate": {"compression": "DeflateCompressor"},
    "zstd": {"compression": "org.apache.cassandra.io.compress.ZstdCompressor"},
    "noop": {"compression": "NoopCompressor"},
    "encrypted": {"encryption": SPEC},
}
EXPECTED_MODE = {"plain": "plain", "preallocated": "plain", "encrypted": "encrypted"}


# --- codecs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["LZ4Compressor", "SnappyCompressor", "DeflateCompressor", "ZstdCompressor",
                                  "NoopCompressor"])
@given(data=st.binary(max_size=3000))
@settings(max_examples=30)
def test_codec_round_trip_by_short_and_qualified_name(name, data):
    for codec in (codecs.codec_for(name), codecs.codec_for(codecs.CASSANDRA_COMPRESS_PACKAGE + name)):
        packed = codec.compress(data, {})
        assert codec.decompress(packed, len(data)) == data


def test_codec_wire_formats():
    data = b"commitlog " * 50
    lz4 = codecs.codec_for("LZ4Compressor").compress(data, {})
    assert struct.unpack_from("<i", lz4)[0] == len(data)  # little-endian length prefix (§5.2)
    assert codecs.codec_for("LZ4Compressor").compress(data, {"lz4_compressor_type": "high"})[:4] == lz4[:4]
    assert zlib.decompress(codecs.codec_for("DeflateCompressor").compress(data, {})) == data
    zstd = codecs.codec_for("ZstdCompressor").compress(data, {})
    assert zstd[:4] == b"\x28\xb5\x2f\xfd" and zstd[4] & 0x04  # frame magic, content checksum flag
    assert codecs.codec_for("NoopCompressor").compress(data, {}) == data
    assert codecs.codec_for("BrotliCompressor") is None
    assert codecs.qualified_class_name("LZ4Compressor") == "org.apache.cassandra.io.compress.LZ4Compressor"


@pytest.mark.parametrize("name", ["LZ4Compressor", "SnappyCompressor", "DeflateCompressor", "ZstdCompressor",
                                  "NoopCompressor"])
def test_codec_rejects_a_wrong_length_or_garbage(name):
    codec = codecs.codec_for(name)
    packed = codec.compress(b"x" * 1000, {})
    for length in (999, 1001, 1 << 30):
        with pytest.raises(codecs.CodecError):
            codec.decompress(packed, length)
    if name != "NoopCompressor":
        with pytest.raises(codecs.CodecError):
            codec.decompress(b"\x07" * 40, 1000)


# --- header, names, entries ----------------------------------------------------------------------------


def test_java_json_matches_json_simple():
    assert java_json({"b": "x/y", "a": {}}) == '{"a":{},"b":"x\\/y"}'
    assert java_json({"k": 'q"\\\n\t\x01\x7f\u2028é'}) == '{"k":"q\\"\\\\\\n\\t\\u0001\\u007F\\u2028é"}'
    assert java_json({"n": [1, True, None]}) == '{"n":[1,true,null]}'


def test_segment_params_as_cassandra_writes_them():
    assert segment_params() == {}
    assert segment_params(compression="LZ4Compressor") == {
        "compressionClass": "org.apache.cassandra.io.compress.LZ4Compressor", "compressionParameters": {}}
    assert segment_params(encryption=SPEC) == {
        "encCipher": "AES/CBC/PKCS5Padding", "encIV": bytes(range(16, 32)).hex(), "encKeyAlias": ALIAS}
    raw = encode_header(7, 1 << 40, segment_params(compression="SnappyCompressor", compression_params={"z": "1"}))
    assert b'"compressionClass":"org.apache.cassandra.io.compress.SnappyCompressor"' in raw
    assert b'"compressionParameters":{"z":"1"}' in raw


@pytest.mark.parametrize("name,expected", [
    ("CommitLog-7-1699285478684.log", (7, 1699285478684)),
    ("/a/b/CommitLog-6-1.log", (6, 1)),
])
def test_parse_segment_name(name, expected):
    assert parse_segment_name(name) == expected
    assert parse_segment_name(Path(name)) == expected


@pytest.mark.parametrize("name", ["CommitLog-1699285478684.log", "CommitLog-7-12.log.bak", "commitlog-7-1.log",
                                  "CommitLog-7-1_cdc.idx", "CommitLog-7-99999999999999999999.log", "x"])
def test_bad_segment_names(name):
    with pytest.raises(SegmentNameError):
        parse_segment_name(name)


def test_entry_encoding():
    body = b"0123456789abc"
    raw = encode_entry(body)
    assert struct.unpack_from(">i", raw)[0] == len(body)
    crc1 = zlib.crc32(raw[:4])
    assert struct.unpack_from(">I", raw, 4)[0] == crc1
    assert struct.unpack_from(">I", raw, 8 + len(body))[0] == zlib.crc32(body, crc1)


# --- the CDC index -------------------------------------------------------------------------------------


def test_cdc_index_text_and_parsing(tmp_path):
    assert CdcIndex(1576, False).text() == "1576"
    assert CdcIndex(1576, True).text() == "1576\nCOMPLETED"
    assert parse_cdc_index(b"1576") == CdcIndex(1576, False)
    assert parse_cdc_index(b"1576\r\nCOMPLETED\n") == CdcIndex(1576, True)
    for bad in (b"", b"\n", b"abc", b"12\nDONE", b"-5", b"1\nCOMPLETED\nx", b"\xff"):
        with pytest.raises(CdcIndexError):
            parse_cdc_index(bad, "x_cdc.idx")
    assert index_path("/d/CommitLog-7-5.log") == Path("/d/CommitLog-7-5_cdc.idx")
    p = tmp_path / "CommitLog-7-5_cdc.idx"
    p.write_bytes(b"9" * 100)
    with pytest.raises(CdcIndexError):
        read_cdc_index(p)


# --- round trips ---------------------------------------------------------------------------------------

_BODIES = st.lists(st.binary(min_size=10, max_size=400), max_size=30)


@pytest.mark.parametrize("version", [6, 7, 8])
@pytest.mark.parametrize("mode", sorted(MODES))
@given(bodies=_BODIES, section_size=st.integers(1, 3000), chunk=st.integers(16, 700), data=st.data())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip(version, mode, bodies, section_size, chunk, data):
    segment_id = 1_700_000_000_000 + version
    with tempfile.TemporaryDirectory() as d:
        w = SegmentWriter(d, segment_id=segment_id, version=version, section_size=section_size,
                          chunk_length=chunk, **MODES[mode])
        positions = [w.append(b) for b in bodies]
        w.close()
        assert w.path.name == f"CommitLog-{version}-{segment_id}.log"
        reader = SegmentReader(w.path, keystore=KEYSTORE)
        assert reader.header.mode == EXPECTED_MODE.get(mode, "compressed")
        assert reader.header.messaging_version == {6: 10, 7: 12, 8: 13}[version]
        got = list(reader.entries())
        assert [e.body for e in got] == bodies
        assert [e.position for e in got] == positions
        assert all(e.position.offset == e.start + 12 + len(e.body) for e in got)
        report = reader.report
        assert (report.entries, report.problems, report.bytes_skipped) == (len(bodies), [], 0)
        assert report.end_of_data and report.stopped_at is None
        assert report.last_position == (positions[-1] if positions else None)
        if bodies:  # resume exactly after any position
            k = data.draw(st.integers(0, len(bodies) - 1))
            rest = list(SegmentReader(w.path, keystore=KEYSTORE, start=positions[k]).entries())
            assert [e.position for e in rest] == positions[k + 1:]
            assert [e.body for e in rest] == bodies[k + 1:]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_sections_and_logical_positions(mode, tmp_path):
    w = SegmentWriter(tmp_path, segment_id=42, version=7, section_size=100, **MODES[mode])
    header_size = w.header_size
    p1 = w.append(b"a" * 40)  # 52-byte entry
    p2 = w.append(b"b" * 40)  # would exceed 100 bytes: syncs the first section first
    assert p1 == CommitLogPosition(42, header_size + 8 + 52)
    assert p2 == CommitLogPosition(42, header_size + 8 + 52 + 8 + 52)
    assert w.sync() == p2.offset == w.durable_offset
    assert w.sync() == p2.offset  # nothing new: no empty section
    w.close()
    reader = SegmentReader(w.path, keystore=KEYSTORE)
    assert [e.position for e in reader.entries()] == [p1, p2]
    assert reader.report.sections == 3  # two with data, and the empty one close() writes
    w.close()  # idempotent


@pytest.mark.parametrize("mode", sorted(MODES))
def test_limit_and_cdc_index_are_respected(mode, tmp_path):
    w = SegmentWriter(tmp_path, segment_id=7, version=7, **MODES[mode])
    durable_part = [w.append(bytes([i]) * 30) for i in range(5)]
    durable = w.sync()
    w.write_cdc_index(completed=False)
    size_at_index = os.path.getsize(w.path)
    later = [w.append(bytes([i]) * 30) for i in range(5, 9)]
    assert w.sync() > durable  # written and synced, but the index still says `durable`
    assert os.path.getsize(w.path) > size_at_index or mode == "preallocated"

    reader = SegmentReader(w.path, keystore=KEYSTORE)
    assert [e.position for e in reader.entries()] == durable_part
    assert reader.report.completed is False and reader.report.end_of_data
    assert reader.report.bytes_skipped == 0 and reader.report.problems == []
    # an explicit limit wins over the index; inside a plain section it cuts between entries, while a
    # compressed/encrypted section that does not end by the limit is not decoded at all
    inside = SegmentReader(w.path, keystore=KEYSTORE, limit=later[1].offset)
    assert len(list(inside.entries())) == (7 if "plain" in EXPECTED_MODE.get(mode, "") else 5)
    assert inside.report.end_of_data and inside.report.problems == []
    ignoring = SegmentReader(w.path, keystore=KEYSTORE, cdc_index=False)
    assert len(list(ignoring.entries())) == 9 and ignoring.report.completed is None

    w.close()
    w.write_cdc_index(completed=True)
    assert read_cdc_index(index_path(w.path)) == CdcIndex(w.durable_offset, True)
    reader = SegmentReader(w.path, keystore=KEYSTORE)
    assert [e.position for e in reader.entries()] == durable_part + later
    assert reader.report.completed is True


@pytest.mark.parametrize("mode", ["plain", "preallocated"])
def test_unsynced_plain_entries_are_in_the_file_but_not_read(mode, tmp_path):
    w = SegmentWriter(tmp_path, segment_id=9, version=8, **MODES[mode])
    synced = [w.append(b"s" * 20) for _ in range(3)]
    w.sync()
    w.append(b"u" * 20)  # like an mmap segment: bytes are there, behind a zeroed marker (§5.1)
    assert b"u" * 20 in w.path.read_bytes()
    reader = SegmentReader(w.path)
    assert [e.position for e in reader.entries()] == synced
    assert reader.report.end_of_data and reader.report.problems == []
    w.close()
    assert len(list(SegmentReader(w.path).entries())) == 4


def test_preallocated_segment_is_padded_and_fills_up(tmp_path):
    w = SegmentWriter(tmp_path, segment_id=3, version=7, preallocate=4096)
    assert os.path.getsize(w.path) == 4096
    with pytest.raises(ValueError, match="full"):
        for _ in range(100):
            w.append(b"z" * 100)
    w.close()
    assert os.path.getsize(w.path) == 4096
    assert len(list(SegmentReader(w.path).entries())) > 30


def test_writer_rejects_misuse(tmp_path):
    with pytest.raises(ValueError):
        SegmentWriter(tmp_path, segment_id=1, version=5)
    with pytest.raises(ValueError):
        SegmentWriter(tmp_path, segment_id=1, compression="BrotliCompressor")
    with pytest.raises(ValueError):
        SegmentWriter(tmp_path, segment_id=1, compression="LZ4Compressor", preallocate=1 << 16)
    w = SegmentWriter(tmp_path / "CommitLog-7-2.log", segment_id=2)
    with pytest.raises(ValueError):
        w.append(b"short")
    w.close()
    with pytest.raises(ValueError):
        w.append(b"0123456789")


def test_report_is_reset_when_iterating_again(tmp_path):
    w = SegmentWriter(tmp_path, segment_id=11, compression="LZ4Compressor")
    for _ in range(4):
        w.append(b"r" * 16)
    w.close()
    reader = SegmentReader(w.path)
    report = reader.report
    for _ in range(2):
        assert len(list(reader.entries())) == 4
        assert reader.report is report and report.entries == 4


def test_header_round_trip_through_the_reader(tmp_path):
    w = SegmentWriter(tmp_path, segment_id=(1 << 62) + 5, version=8, compression="ZstdCompressor",
                      compression_params={"compression_level": "5"})
    w.close()
    with open(w.path, "rb") as f:
        h = read_header(f, str(w.path))
    assert h.segment_id == (1 << 62) + 5 and h.version == 8
    assert h.compression_class == "org.apache.cassandra.io.compress.ZstdCompressor"
    assert h.params["compressionParameters"] == {"compression_level": "5"}
    assert encode_header(h.version, h.segment_id, h.params) == w.path.read_bytes()[:h.size]


# --- encryption and keystores ------------------------------------------------------------------------


def test_block_cipher_round_trip_and_padding_errors():
    c = AesCbcPkcs5(bytes(16), bytes(16))
    for n in (0, 1, 15, 16, 17, 100):
        data = os.urandom(n)
        enc = c.encrypt(data)
        assert len(enc) % 16 == 0 and len(enc) > n
        assert c.decrypt(enc) == data
    with pytest.raises(CipherError):
        c.decrypt(b"x" * 15)
    with pytest.raises(CipherError):
        AesCbcPkcs5(bytes(range(16)), bytes(16)).decrypt(c.encrypt(b"0123456789" * 3))
    with pytest.raises(ValueError):
        AesCbcPkcs5(bytes(7), bytes(16))


def _der(tag: int, *parts: bytes) -> bytes:
    content = b"".join(parts)
    n = len(content)
    length = bytes((n,)) if n < 0x80 else bytes((0x80 | ((n.bit_length() + 7) // 8),)) + n.to_bytes(
        (n.bit_length() + 7) // 8, "big")
    return bytes((tag,)) + length + content


def _seq(*p):
    return _der(0x30, *p)


def _oct(b):
    return _der(0x04, b)


def _int(v):
    return _der(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))


def _oid(dotted):
    a, b, *rest = map(int, dotted.split("."))
    out = bytearray((40 * a + b,))
    for v in rest:
        chunk = [v & 0x7F]
        while v > 0x7F:
            v >>= 7
            chunk.append(0x80 | (v & 0x7F))
        out += bytes(reversed(chunk))
    return _der(0x06, bytes(out))


def _explicit0(*p):
    return _der(0xA0, *p)


_NULL = b"\x05\x00"
_DATA = "1.2.840.113549.1.7.1"


def build_pkcs12(alias: str, key: bytes, password: str) -> bytes:
    """A PKCS12 keystore holding one AES secret key the way JDK 11+ keytool writes it: a secret bag
    with a PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) shrouded key, and an HMAC-SHA256 MAC."""
    from jks import rfc7292

    salt, iv, iterations = os.urandom(20), os.urandom(16), 2048
    kek = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(password.encode())
    key_info = _seq(_int(0), _seq(_oid("2.16.840.1.101.3.4.1")), _oct(key))
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(kek), modes.CBC(iv)).encryptor()
    shrouded = enc.update(padder.update(key_info) + padder.finalize()) + enc.finalize()
    pbes2 = _seq(_oid("1.2.840.113549.1.5.13"), _seq(
        _seq(_oid("1.2.840.113549.1.5.12"), _seq(_oct(salt), _int(iterations), _seq(_oid("1.2.840.113549.2.9"), _NULL))),
        _seq(_oid("2.16.840.1.101.3.4.1.42"), _oct(iv))))
    secret_bag = _seq(_oid("1.2.840.113549.1.12.10.1.2"), _explicit0(_oct(_seq(pbes2, _oct(shrouded)))))
    friendly = _seq(_oid("1.2.840.113549.1.9.20"), _der(0x31, _der(0x1E, alias.encode("utf-16-be"))))
    bag = _seq(_oid("1.2.840.113549.1.12.10.1.5"), _explicit0(secret_bag), _der(0x31, friendly))
    auth_safe = _seq(_seq(_oid(_DATA), _explicit0(_oct(_seq(bag)))))
    mac_salt = os.urandom(20)
    mac_key = rfc7292.derive_key(hashlib.sha256, 3, password, mac_salt, iterations, 32)
    mac = hmac.new(mac_key, auth_safe, hashlib.sha256).digest()
    mac_data = _seq(_seq(_seq(_oid("2.16.840.1.101.3.4.2.1"), _NULL), _oct(mac)), _oct(mac_salt), _int(iterations))
    return _seq(_int(3), _seq(_oid(_DATA), _explicit0(_oct(auth_safe))), mac_data)


def _encrypted_round_trip(tmp_path: Path, keystore: Keystore, alias: str) -> None:
    spec = EncryptionSpec(keystore.key(alias), alias)
    w = SegmentWriter(tmp_path, segment_id=77, version=7, encryption=spec, chunk_length=100)
    bodies = [os.urandom(40 + i) for i in range(20)]
    positions = [w.append(b) for b in bodies]
    w.close()
    got = list(SegmentReader(w.path, keystore=keystore).entries())
    assert [(e.position, e.body) for e in got] == list(zip(positions, bodies))


def test_pkcs12_keystore_with_a_secret_key(tmp_path):
    key = os.urandom(16)
    path = tmp_path / "keystore.p12"
    path.write_bytes(build_pkcs12(ALIAS, key, "s3cret"))
    keystore = Keystore.open(path, "s3cret")
    assert keystore.aliases == [ALIAS] and keystore.key(ALIAS) == key and keystore.key("TESTING:1") == key
    _encrypted_round_trip(tmp_path, keystore, ALIAS)
    with pytest.raises(KeystoreError) as info:
        Keystore.open(path, "wrong")
    assert str(path) in str(info.value) and "wrong" not in str(info.value).replace("wrong password", "")
    with pytest.raises(KeystoreError, match="no secret key with alias 'nope'"):
        keystore.key("nope")


@pytest.mark.skipif(shutil.which("keytool") is None, reason="keytool (a JDK) is not on PATH")
@pytest.mark.parametrize("store_type", ["JCEKS", "PKCS12"])
def test_keytool_generated_keystores(tmp_path, store_type):
    """Keystores as an operator makes them for `transparent_data_encryption_options`."""
    path = tmp_path / f"ks.{store_type.lower()}"
    subprocess.run(["keytool", "-genseckey", "-alias", ALIAS, "-keyalg", "AES", "-keysize", "128",
                    "-storetype", store_type, "-keystore", str(path), "-storepass", "cassandra",
                    "-keypass", "cassandra"], check=True, capture_output=True, timeout=120)
    keystore = Keystore.open(path, "cassandra")
    assert keystore.aliases == [ALIAS] and len(keystore.key(ALIAS)) == 16
    _encrypted_round_trip(tmp_path, keystore, ALIAS)


def test_keystore_errors(tmp_path):
    with pytest.raises(KeystoreError, match="cannot read keystore"):
        Keystore.open(tmp_path / "missing.jceks", "pw")
    garbage = tmp_path / "garbage.p12"
    garbage.write_bytes(b"\x30\x03\x02\x01\x03")
    with pytest.raises(KeystoreError, match="garbage.p12"):
        Keystore.open(garbage, "pw")
