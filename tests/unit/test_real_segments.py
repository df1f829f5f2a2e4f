"""The decoder against segments written by real Cassandra 3.0.13, 3.0.29, 3.4 (encrypted) and 4.0.11.

Ground truth is Cassandra's own upgrade test: the `cells` count and the `hash` of every cell value
of `Keyspace1.Standard1` rows whose clustering starts with "name" (fixtures README). The table
definition and id come from the `system_schema` mutations in the log itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from uuid import UUID

import pytest

from ray_cdc.commitlog.arrow_batches import arrow_batches
from ray_cdc.commitlog.encryption import Keystore
from ray_cdc.commitlog.mutation_decoder import MutationDecoder
from ray_cdc.commitlog.mutation_encoder import encode_mutation
from ray_cdc.commitlog.reader import CommitLogReader, sort_segments
from ray_cdc.commitlog.segment import SegmentReader
from ray_cdc.errors import UnknownTableError
from ray_cdc.schema.from_log import LogSchemaTracker
from ray_cdc.schema.registry import SchemaRegistry
from ray_cdc.schema.system_schema import KNOWN_SYSTEM_TABLES

FOLDERS = ["3.0.13", "3.0.29", "3.4", "4.0.11"]
COLUMNS = {  # what the system_schema mutations in each folder's log define (fixtures README)
    "3.0.13": {"key": "ascii", "name": "ascii", "val": "ascii", "val0": "ascii"},
    "3.0.29": {"key": "ascii", "name": "ascii", "val": "ascii", "val0": "ascii"},
    "3.4": {"key": "ascii", "col": "ascii", "val": "blob"},
    "4.0.11": {"key": "ascii", "col": "ascii", "val": "blob"},
}


def _commitlog_root() -> Path:
    shared = Path(os.environ.get("RAY_CDC_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
    return shared / "fixtures" / "cassandra-commitlog"


ROOT = _commitlog_root()
pytestmark = pytest.mark.skipif(
    not ROOT.is_dir(), reason=f"real Cassandra segments not found at {ROOT} (../shared is absent; CI has it)"
)


def _expected(folder: str) -> dict[str, str]:
    lines = (ROOT / folder / "hash.txt").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def _keystore(folder: str):
    path = ROOT / folder / "cassandra.keystore"
    return Keystore.open(path, "cassandra") if path.exists() else None


def _segments(folder: str) -> list[Path]:
    return sort_segments((ROOT / folder).glob("CommitLog-*.log"))


def _value_hash(values) -> int:
    """Cassandra's CommitLogUpgradeTest hash: order-independent, wrapping signed 32-bit."""
    total = 0
    for value in values:
        shift = 0
        for b in value:
            total += (b & 0xFF) << shift
            shift = (shift + 8) & 31
    total &= 0xFFFFFFFF
    return total - (1 << 32) if total & 0x80000000 else total


def _as_bytes(value) -> bytes:
    return value.encode("ascii") if isinstance(value, str) else value


@pytest.mark.parametrize("folder", FOLDERS)
def test_cells_and_hash_match_cassandra(folder):
    expected = _expected(folder)
    reader = CommitLogReader(keystore=_keystore(folder), schema_from_log=True)
    values = []
    for change in reader.changes(_segments(folder)):
        if change.table.qualified_name != "Keyspace1.Standard1":
            continue
        first = next(iter(change.clustering.values()))
        if first.startswith("name"):
            values += [_as_bytes(c.value) for c in change.cells.values() if c.value is not None]
    assert len(values) == int(expected["cells"])
    assert _value_hash(values) == int(expected["hash"])


@pytest.mark.parametrize("folder", FOLDERS)
def test_table_definition_recovered_from_the_log(folder):
    expected = _expected(folder)
    reader = CommitLogReader(keystore=_keystore(folder), schema_from_log=True)
    for _ in reader.changes(_segments(folder)):
        pass
    table = reader.registry.by_name("Keyspace1", "Standard1")
    assert table is not None
    assert table.id == UUID(expected["cfid"])
    assert {c.name: c.type.cql() for c in table.columns} == COLUMNS[folder]
    assert [c.name for c in table.partition_key] == ["key"]
    assert len(table.clustering) == 1


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_decoded_mutation_reencodes_byte_identically(folder):
    registry = SchemaRegistry()
    tracker = LogSchemaTracker(registry)
    decoder = MutationDecoder(lambda tid: KNOWN_SYSTEM_TABLES.get(tid) or registry.get(tid))
    decoded = unknown = 0
    for path in _segments(folder):
        for entry in SegmentReader(path, keystore=_keystore(folder)).entries():
            try:
                mutation = decoder.decode(entry.body, path=str(path), position=entry.start)
            except UnknownTableError:
                unknown += 1
                continue
            assert encode_mutation(mutation) == bytes(entry.body), f"{path.name} entry at {entry.start}"
            decoded += 1
            if tracker.is_schema_mutation(mutation):
                tracker.apply(mutation)
    assert decoded >= int(_expected(folder)["cells"])


@pytest.mark.parametrize("folder", FOLDERS)
def test_arrow_fast_path_agrees_with_change_records(folder):
    expected = _expected(folder)
    reader = CommitLogReader(keystore=_keystore(folder), schema_from_log=True)
    values = []
    for path in _segments(folder):
        for table, batch in arrow_batches(reader.mutations(path), max_rows=100):
            if table.qualified_name != "Keyspace1.Standard1":
                continue
            ck = table.clustering[0].name
            for first, val in zip(batch.column(ck).to_pylist(), batch.column("val").to_pylist()):
                if first.startswith("name") and val is not None:
                    values.append(_as_bytes(val))
            assert set(batch.column("_op").to_pylist()) <= {"insert", "update"}
            assert batch.column("_segment_id").null_count == 0
    assert len(values) == int(expected["cells"])
    assert _value_hash(values) == int(expected["hash"])


def test_encrypted_segment_needs_its_keystore():
    from ray_cdc.errors import KeystoreError, UnsupportedSegmentError

    with pytest.raises((KeystoreError, UnsupportedSegmentError)) as info:
        list(CommitLogReader(schema_from_log=True).changes(_segments("3.4")))
    assert "CommitLog-6-1480001790338.log" in str(info.value)
