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


def _sets(monkeypatch, out, segments, pure: bool, **kw):
    monkeypatch.setenv("RAY_CDC_PURE_PYTHON", "1" if pure else "0")
    reader = _reader(out)
    sets = [s for path in segments for s in reader.change_sets(path, **kw)]
    fast = sum(s.fast_mutations for s in reader.summaries)
    return sets, fast


@pytest.mark.parametrize("max_rows,max_bytes", [(1, 16 << 20), (37, 16 << 20), (65536, 16 << 20), (65536, 3000)])
def test_sets_same_with_and_without_the_kernel(monkeypatch, workload, max_rows, max_bytes):
    """The kernel takes runs of entries at a time; the sets still close at the same entries, with the
    same batches, as when every entry takes the Python path."""
    from ray_cdc.commitlog.arrow_batches import fastpath

    out, segments = workload
    fast, by_kernel = _sets(monkeypatch, out, segments, False, max_rows=max_rows, max_bytes=max_bytes)
    slow, by_python = _sets(monkeypatch, out, segments, True, max_rows=max_rows, max_bytes=max_bytes)
    monkeypatch.delenv("RAY_CDC_PURE_PYTHON")
    assert by_python == 0 and (by_kernel > 0 or fastpath() is None)
    assert [(s.segment_id, s.end, s.completed, s.rows) for s in fast] == \
        [(s.segment_id, s.end, s.completed, s.rows) for s in slow]
    for a, b in zip(fast, slow):
        assert [t.qualified_name for t, _ in a.batches] == [t.qualified_name for t, _ in b.batches]
        for (_, x), (_, y) in zip(a.batches, b.batches):
            assert x.equals(y)
