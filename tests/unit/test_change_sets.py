"""ChangeSets: a segment cut into sets at entry boundaries, each safe to commit as one offset."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ray_cdc.commitlog.reader import CommitLogReader, sort_segments
from ray_cdc.commitlog.workload import demo_tables, generate
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.registry import SchemaRegistry


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    out = tmp_path_factory.mktemp("sets")
    generate(out, rows=3000, tables=demo_tables(), seed=11, segment_size=256 << 10, preallocate=False)
    return out, sort_segments(out.glob("CommitLog-*.log"))


def _reader(out):
    return CommitLogReader(SchemaRegistry(load_cql_schema(out / "schema.cql")))


@pytest.mark.parametrize("max_rows", [1, 7, 500, 65536])
def test_sets_partition_the_stream_at_entry_boundaries(workload, max_rows):
    out, segments = workload
    reader = _reader(out)
    by_table: dict[str, list[pa.RecordBatch]] = {}
    for path in segments:
        previous_end = None
        sets = list(reader.change_sets(path, max_rows=max_rows))
        assert sets[-1].completed and not any(s.completed for s in sets[:-1])
        for change_set in sets:
            assert previous_end is None or change_set.end > previous_end
            for table, batch in change_set.batches:
                positions = batch.column("_position").to_pylist()
                assert max(positions) <= change_set.end.offset
                assert previous_end is None or min(positions) > previous_end.offset
                by_table.setdefault(table.qualified_name, []).append(batch)
            previous_end = change_set.end
    expected: dict[str, list[pa.RecordBatch]] = {}
    for table, batch in _reader(out).arrow_batches(segments):
        expected.setdefault(table.qualified_name, []).append(batch)
    assert by_table.keys() == expected.keys()
    for name, batches in expected.items():
        assert pa.Table.from_batches(by_table[name]).equals(pa.Table.from_batches(batches))


def test_resuming_after_a_set_end_gives_the_rest(workload):
    out, segments = workload
    path = segments[0]
    sets = list(_reader(out).change_sets(path, max_rows=50))
    middle = sets[len(sets) // 2]
    rest = list(_reader(out).change_sets(path, start=middle.end, max_rows=50))
    rows_after = sum(s.rows for s in sets[len(sets) // 2 + 1:])
    assert sum(s.rows for s in rest) == rows_after
    assert rest[-1].end == sets[-1].end and rest[-1].completed
