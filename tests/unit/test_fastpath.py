"""The compiled Arrow fast path (`ray_cdc.commitlog._fastpath`) against the pure-Python path.

- The kernel is built here (required when `RAY_CDC_REQUIRE_FASTPATH=1`, as scripts/test.sh sets).
- `CommitLogReader.arrow_batches` gives the same batches, in the same order, with the kernel and
  with `RAY_CDC_PURE_PYTHON=1`: demo workload (descriptor v6/v7/v8, a compression), the wide table,
  schema versions changing between segments, unknown tables, resume positions, and the real
  Cassandra segments of ../shared (schemas from the log).
- Fuzzing: randomly damaged mutation bodies make the kernel either decline with nothing appended,
  or append exactly what MutationDecoder + TableBatchBuilder.add_update append for that body.
"""

from __future__ import annotations

import functools
import os
import struct
from pathlib import Path
from uuid import NAMESPACE_OID, UUID, uuid5

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ray_cdc.commitlog import workload
from ray_cdc.commitlog.arrow_batches import TableBatchBuilder, arrow_batches
from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.encryption import Keystore
from ray_cdc.commitlog.mutation_decoder import MutationDecoder
from ray_cdc.commitlog.mutation_encoder import encode_mutation
from ray_cdc.commitlog.mutation_model import TIMESTAMP_EPOCH
from ray_cdc.commitlog.primitives import EXTRA_BYTES, uvint_bytes
from ray_cdc.commitlog.reader import CommitLogReader, sort_segments
from ray_cdc.errors import MutationDecodeError, UnknownTableError
from ray_cdc.schema.cql import load_cql_schema
from ray_cdc.schema.model import ColumnKind, ColumnSchema, DroppedColumn, TableSchema
from ray_cdc.schema.registry import SchemaRegistry
from ray_cdc.schema.types import parse_cql_type

try:
    from ray_cdc.commitlog import _fastpath
except ImportError as e:  # not built here
    _fastpath = None
    _IMPORT_ERROR = str(e)

needs_kernel = pytest.mark.skipif(_fastpath is None, reason="the compiled kernel is not built here")

SEG, POS = 1_700_000_000_123, 4567


def test_kernel_is_compiled():
    if _fastpath is not None:
        assert hasattr(_fastpath, "Kernel")
        return
    if os.environ.get("RAY_CDC_REQUIRE_FASTPATH") == "1":
        pytest.fail(f"RAY_CDC_REQUIRE_FASTPATH=1 but ray_cdc.commitlog._fastpath does not import: {_IMPORT_ERROR} "
                    "(pip install -e . builds it; it needs Cython and a C compiler)")
    pytest.skip(f"the compiled kernel is not built here ({_IMPORT_ERROR}); set RAY_CDC_REQUIRE_FASTPATH=1 to fail")


# --- whole readers: kernel vs pure Python ------------------------------------------------------------


def _read(monkeypatch, pure: bool, make_reader, paths, **kw):
    if pure:
        monkeypatch.setenv("RAY_CDC_PURE_PYTHON", "1")
    else:
        monkeypatch.delenv("RAY_CDC_PURE_PYTHON", raising=False)
    reader = make_reader()
    try:
        batches = list(reader.arrow_batches(paths, **kw))
    finally:
        monkeypatch.delenv("RAY_CDC_PURE_PYTHON", raising=False)
    return batches, reader


def _assert_same_batches(fast, slow) -> None:
    assert len(fast) == len(slow)
    for i, ((ft, fb), (st_, sb)) in enumerate(zip(fast, slow)):
        assert (ft.qualified_name, ft.id) == (st_.qualified_name, st_.id), f"batch {i}"
        assert fb.schema.equals(sb.schema, check_metadata=True), f"batch {i} of {ft.qualified_name}"
        if not fb.equals(sb):
            bad = [n for n in fb.schema.names if not fb.column(n).equals(sb.column(n))]
            pytest.fail(f"batch {i} of {ft.qualified_name} differs in {bad}: "
                        f"{[(fb.column(n).to_pylist()[:3], sb.column(n).to_pylist()[:3]) for n in bad[:2]]}")


def _summaries(reader):
    return [(s.path, s.mutations, s.system_mutations, dict(s.unknown_tables), s.undecodable, s.schema_changes)
            for s in reader.summaries]


def _differential(monkeypatch, make_reader, paths, *, min_fast: float = 0.0, **kw):
    fast, fast_reader = _read(monkeypatch, False, make_reader, paths, **kw)
    slow, slow_reader = _read(monkeypatch, True, make_reader, paths, **kw)
    _assert_same_batches(fast, slow)
    assert _summaries(fast_reader) == _summaries(slow_reader)
    assert sum(s.fast_mutations for s in slow_reader.summaries) == 0
    mutations = sum(s.mutations for s in fast_reader.summaries)
    by_kernel = sum(s.fast_mutations for s in fast_reader.summaries)
    assert by_kernel >= min_fast * mutations, f"the kernel took {by_kernel} of {mutations} mutations"
    return fast, fast_reader


def _registry(out: Path) -> SchemaRegistry:
    return SchemaRegistry(load_cql_schema(out / "schema.cql"))


@pytest.fixture(scope="module")
def demo_segments(tmp_path_factory):
    made = {}

    def make(version: int, compression: str | None):
        key = (version, compression)
        if key not in made:
            out = tmp_path_factory.mktemp(f"demo-v{version}-{compression}")
            workload.generate(out, rows=1500, descriptor_version=version, compression=compression, seed=version,
                              segment_size=256 * 1024, preallocate=False)
            made[key] = out
        return made[key]

    return make


@needs_kernel
@pytest.mark.parametrize("version,compression", [(6, None), (7, None), (8, None), (7, "lz4"), (8, "zstd")])
@pytest.mark.parametrize("max_rows", [65536, 50])
def test_demo_workload_same_batches(monkeypatch, demo_segments, version, compression, max_rows):
    out = demo_segments(version, compression)
    paths = sort_segments(out.glob("CommitLog-*.log"))
    assert len(paths) > 1
    fast, _ = _differential(monkeypatch, lambda: CommitLogReader(_registry(out)), paths, max_rows=max_rows,
                            min_fast=0.2)
    assert sum(b.num_rows for _, b in fast) >= 1500


@needs_kernel
def test_demo_workload_matches_the_per_mutation_api(monkeypatch, demo_segments):
    """reader.arrow_batches (kernel) == arrow_batches(reader.mutations(...)) over the segments."""
    out = demo_segments(7, None)
    paths = sort_segments(out.glob("CommitLog-*.log"))
    fast, _ = _read(monkeypatch, False, lambda: CommitLogReader(_registry(out)), paths, max_rows=200)
    reader = CommitLogReader(_registry(out))
    old = list(arrow_batches((d for p in paths for d in reader.mutations(p)), max_rows=200))
    _assert_same_batches(fast, old)


@pytest.fixture(scope="module")
def wide_segments(tmp_path_factory):
    out = tmp_path_factory.mktemp("wide")
    workload.generate(out, rows=4000, tables=[workload.wide_table()], segment_size=128 * 1024, preallocate=False,
                      mix={"insert": 60, "update": 15, "ttl_insert": 5, "cell_delete": 5, "row_delete": 5,
                           "partition_delete": 2, "range_delete": 2})
    return out


@needs_kernel
@pytest.mark.parametrize("max_rows,max_bytes", [(65536, 16 << 20), (333, 16 << 20), (65536, 20_000)])
def test_wide_table_same_batches(monkeypatch, wide_segments, max_rows, max_bytes):
    paths = sort_segments(wide_segments.glob("CommitLog-*.log"))
    _differential(monkeypatch, lambda: CommitLogReader(_registry(wide_segments)), paths, max_rows=max_rows,
                  max_bytes=max_bytes, min_fast=0.8)


@needs_kernel
@pytest.mark.parametrize("max_rows", [0, 1, 3])
def test_tiny_batches_same_batches(monkeypatch, wide_segments, max_rows):
    paths = sort_segments(wide_segments.glob("CommitLog-*.log"))[:1]
    _differential(monkeypatch, lambda: CommitLogReader(_registry(wide_segments)), paths, max_rows=max_rows,
                  min_fast=0.8)


def test_without_the_kernel(monkeypatch, caplog, wide_segments):
    """No compiled module: reader.arrow_batches takes the Python path and says so once, at INFO."""
    import logging

    from ray_cdc.commitlog import arrow_batches as module

    monkeypatch.delenv("RAY_CDC_PURE_PYTHON", raising=False)
    monkeypatch.setattr(module, "_compiled", None)
    monkeypatch.setattr(module, "_absence_logged", False)
    paths = sort_segments(wide_segments.glob("CommitLog-*.log"))[:1]
    with caplog.at_level(logging.INFO, logger=module.__name__):
        reader = CommitLogReader(_registry(wide_segments))
        batches = list(reader.arrow_batches(paths)) + list(CommitLogReader(_registry(wide_segments)).arrow_batches(paths))
    assert batches and sum(s.fast_mutations for s in reader.summaries) == 0
    assert [r.levelname for r in caplog.records if "not built" in r.getMessage()] == ["INFO"]


@needs_kernel
def test_resume_position_same_batches(monkeypatch, wide_segments):
    paths = sort_segments(wide_segments.glob("CommitLog-*.log"))
    reader = CommitLogReader(_registry(wide_segments))
    positions = [d.position for d in reader.mutations(paths[1])]
    start = positions[len(positions) // 2]
    fast, _ = _differential(monkeypatch, lambda: CommitLogReader(_registry(wide_segments)), paths, start=start)
    first = min(b.column("_segment_id")[0].as_py() for _, b in fast)
    assert first == start.segment_id
    assert all(p > start.offset for _, b in fast for s, p in zip(b.column("_segment_id").to_pylist(),
                                                                  b.column("_position").to_pylist())
               if s == start.segment_id)


@needs_kernel
def test_schema_version_changes_between_segments(monkeypatch, wide_segments):
    """A second schema version (c_text2 dropped) in force from the third segment: plans are rebuilt,
    the batch of the old version is closed at the same row on both paths."""
    paths = sort_segments(wide_segments.glob("CommitLog-*.log"))
    assert len(paths) >= 4
    from ray_cdc.commitlog.segment import parse_segment_name

    switch = parse_segment_name(str(paths[2]))[1] * 1000

    def make_reader():
        registry = _registry(wide_segments)
        (v1,) = registry.tables()
        kept = tuple(c for c in v1.columns if c.name != "c_text2")
        dropped = DroppedColumn("c_text2", v1.column("c_text2").type, switch)
        registry.add(TableSchema(v1.keyspace, v1.name, v1.id, kept, (dropped,)), since=switch)
        return CommitLogReader(registry)

    fast, _ = _differential(monkeypatch, make_reader, paths, min_fast=0.8)
    widths = [len(b.schema) for _, b in fast]
    assert widths[0] == widths[-1] + 1 and len(set(widths)) == 2


@needs_kernel
@pytest.mark.parametrize("mode", ["skip", "raise"])
def test_unknown_tables_same_on_both_paths(monkeypatch, demo_segments, mode):
    out = demo_segments(7, None)
    paths = sort_segments(out.glob("CommitLog-*.log"))

    def make_reader():
        registry = SchemaRegistry([t for t in _registry(out).tables() if t.name != "profiles"])
        return CommitLogReader(registry, unknown_tables=mode)

    if mode == "skip":
        _, reader = _differential(monkeypatch, make_reader, paths, min_fast=0.2)
        assert sum(sum(s.unknown_tables.values()) for s in reader.summaries) > 0
        return
    errors = []
    for pure in (False, True):
        monkeypatch.setenv("RAY_CDC_PURE_PYTHON", "1" if pure else "0")
        got = []
        with pytest.raises(UnknownTableError) as info:
            for item in make_reader().arrow_batches(paths, max_rows=20):
                got.append(item)  # noqa: PERF402  (what came out before the error)
        errors.append((str(info.value), len(got)))
    assert errors[0] == errors[1]


def _shared_commitlogs() -> Path:
    shared = Path(os.environ.get("RAY_CDC_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
    return shared / "fixtures" / "cassandra-commitlog"


REAL = _shared_commitlogs()


@needs_kernel
@pytest.mark.skipif(not REAL.is_dir(), reason=f"real Cassandra segments not found at {REAL}")
@pytest.mark.parametrize("folder", ["3.0.13", "3.0.29", "3.4", "4.0.11"])
@pytest.mark.parametrize("include_system", [False, True])
def test_real_segments_same_batches(monkeypatch, folder, include_system):
    keystore_path = REAL / folder / "cassandra.keystore"
    keystore = Keystore.open(keystore_path, "cassandra") if keystore_path.exists() else None
    paths = sort_segments((REAL / folder).glob("CommitLog-*.log"))
    fast, reader = _differential(
        monkeypatch, lambda: CommitLogReader(keystore=keystore, schema_from_log=True, include_system=include_system),
        paths, max_rows=100)
    assert sum(s.fast_mutations for s in reader.summaries) > 0
    assert any(t.qualified_name == "Keyspace1.Standard1" for t, _ in fast)


# --- one body at a time: the kernel appends what the Python path appends, or nothing --------------------


def _snapshot(builder: TableBatchBuilder):
    builder.to_lists()  # the kernel's rows, back in the form the Python path appends
    return (tuple(tuple(c) for c in builder.raw), tuple(builder.op), tuple(builder.writetime), tuple(builder.ttl),
            tuple(builder.expires), tuple(builder.segment), tuple(builder.position),
            tuple(tuple(p) for p in builder.present), builder.nbytes, builder.decoded, builder.ranges)


def _python_appends(body: bytes, tables: dict):
    decoder = MutationDecoder(tables.get)
    builders = {}
    try:
        mutation = decoder.decode(body)
        for update in mutation.updates:
            builder = builders.get(update.table.id)
            if builder is None:
                builder = builders[update.table.id] = TableBatchBuilder(update.table)
            builder.add_update(update, SEG, POS)
    except (MutationDecodeError, UnknownTableError):  # the Python path's typed errors: the kernel declines
        return None
    return {tid: _snapshot(b) for tid, b in builders.items() if len(b) or b.nbytes}


def _kernel_appends(body: bytes, tables: dict):
    kernel = _fastpath.Kernel(1 << 40, 1 << 60)
    builders = {}
    for tid, table in tables.items():
        builders[tid] = TableBatchBuilder(table)
        kernel.set_plan(_fastpath.TablePlan(builders[tid]))
    done = kernel.add(body, SEG, POS)
    for builder in builders.values():
        assert all(v is None or type(v) is bytes for column in builder.raw for v in column)
        assert all(type(p) is list and all(type(n) is str for n in p) for p in builder.present)
    return done, {tid: _snapshot(b) for tid, b in builders.items() if len(b) or b.nbytes}


def _finished(builders: dict) -> dict:
    """Each builder's batch, or the error finish() raised (invalid UTF-8, a value of the wrong width)."""
    import pyarrow as pa

    from ray_cdc.errors import RayCdcError

    out = {}
    for tid, builder in builders.items():
        if len(builder) or builder.nbytes:
            try:
                out[tid] = builder.finish()
            except (RayCdcError, pa.ArrowException, OverflowError) as e:  # OverflowError: see test_list_rows_...
                out[tid] = (type(e), str(e))
    return out


def _canonical(value):
    """A Python value with every float replaced by its bits: damaged bytes make NaNs (also inside
    lists and structs), which `equals` never finds equal, and the bits must match anyway."""
    if isinstance(value, float):
        return ("float", struct.pack(">d", value))
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _assert_same_finished(got: dict, expected: dict) -> None:
    import pyarrow as pa

    assert got.keys() == expected.keys()
    for tid, batch in got.items():
        if isinstance(batch, pa.RecordBatch) and isinstance(expected[tid], pa.RecordBatch):
            assert batch.schema.equals(expected[tid].schema, check_metadata=True)
            if not batch.equals(expected[tid]):
                assert _canonical(batch.to_pylist()) == _canonical(expected[tid].to_pylist())
        else:
            assert batch == expected[tid]


def _python_batches(body: bytes, tables: dict) -> dict:
    decoder = MutationDecoder(tables.get)
    builders = {}
    for update in decoder.decode(body).updates:
        builder = builders.setdefault(update.table.id, TableBatchBuilder(update.table))
        builder.add_update(update, SEG, POS)
    return _finished(builders)


def _kernel_batches(body: bytes, tables: dict) -> dict:
    """The batches the kernel's buffers make (ColumnStore -> from_buffers)."""
    kernel = _fastpath.Kernel(1 << 40, 1 << 60)
    builders = {tid: TableBatchBuilder(table) for tid, table in tables.items()}
    for builder in builders.values():
        kernel.set_plan(_fastpath.TablePlan(builder))
    assert kernel.add(body, SEG, POS)
    return _finished(builders)


def _check_body(body: bytes, tables: dict) -> bool:
    done, appended = _kernel_appends(body, tables)
    if not done:
        assert appended == {}, "the kernel declined but appended"
        return False
    assert done == 1
    expected = _python_appends(body, tables)
    assert expected is not None, "the kernel accepted a body the Python path rejects"
    assert appended == expected
    _assert_same_finished(_kernel_batches(body, tables), _python_batches(body, tables))
    return True


def _table(name: str, pk, ck, regular, dropped=()) -> TableSchema:
    cols = [ColumnSchema(n, parse_cql_type(t), ColumnKind.PARTITION_KEY, i) for i, (n, t) in enumerate(pk)]
    cols += [ColumnSchema(n, parse_cql_type(t), ColumnKind.CLUSTERING, i) for i, (n, t) in enumerate(ck)]
    cols += [ColumnSchema(n, parse_cql_type(t), ColumnKind.REGULAR) for n, t in regular]
    return TableSchema("fuzz", name, uuid5(NAMESPACE_OID, f"fuzz.{name}"), tuple(cols), tuple(dropped))


_TYPES = ["int", "text", "bigint", "boolean", "double", "uuid", "blob", "timestamp", "float", "varint"]
_VALUES = {"int": 7, "text": "héllo", "bigint": -(1 << 40), "boolean": True, "double": 2.5,
           "uuid": UUID(int=12345), "blob": b"\x00\xff", "timestamp": 1_700_000_000_000, "float": 0.25,
           "varint": 1 << 70}


def _value(t: str, i: int):
    if t == "text":
        return "" if i % 7 == 0 else f"t{i}"
    if t == "int":
        return i
    return _VALUES[t]


def _wide70() -> TableSchema:
    regular = [(f"c{i:02d}", _TYPES[i % len(_TYPES)]) for i in range(70)]
    return _table("wide70", [("id", "bigint")], [("a", "int"), ("b", "text")], regular)


def _ck34() -> TableSchema:
    ck = [(f"k{i:02d}", "int" if i % 3 else "text") for i in range(34)]
    return _table("ck34", [("p1", "text"), ("p2", "int")], ck, [("v", "text"), ("w", "int")])


def _crafted_bodies() -> list[tuple[bytes, dict]]:
    """Multi-row updates with different column sets (subset bitmaps and both >= 64-column forms),
    TTLs, tombstones, row deletions, many clustering columns, a dropped column."""
    out = []
    ts = workload.BASE_TIMESTAMP
    wide70 = _wide70()
    cols = [c.name for c in wide70.regular]
    types = {c.name: c.type.name for c in wide70.regular}
    for k in range(6):
        b = MutationBuilder(wide70, {"id": k}, unsigned_ldt=k % 2 == 1)
        b.insert({"a": 1, "b": "x"}, {c: _value(types[c], k) for c in cols[: 5 + k]}, timestamp=ts + k)
        b.update({"a": 2, "b": ""}, {c: _value(types[c], k) for c in cols[10:60]}, timestamp=ts - 5 - k, ttl=300)
        b.insert({"a": 3, "b": "z"}, {c: _value(types[c], k) for c in cols}, timestamp=ts + 9, ttl=60 * (k + 1))
        b.delete_cells({"a": 4, "b": "w"}, cols[3:7], timestamp=ts + 11)
        b.delete_row({"a": 5, "b": "v"}, timestamp=ts + 20 + k)
        b.update({"a": 6, "b": "u"}, {cols[69]: _value(types[cols[69]], k)}, timestamp=ts + 1)
        out.append((encode_mutation(b.mutation()), {wide70.id: wide70}))
    ck34 = _ck34()
    for k in range(4):
        b = MutationBuilder(ck34, {"p1": f"p{k}", "p2": k})
        for r in range(3):
            ck = {c.name: (r + i if c.type.name == "int" else ("" if (r + i) % 5 == 0 else f"s{i}"))
                  for i, c in enumerate(ck34.clustering)}
            b.insert(ck, {"v": f"v{r}"} if r != 1 else {"w": r}, timestamp=ts + r)
        out.append((encode_mutation(b.mutation()), {ck34.id: ck34}))
    wide = workload.wide_table()
    kept = tuple(c for c in wide.columns if c.name != "c_text2")
    dropped = TableSchema(wide.keyspace, wide.name, wide.id, kept,
                          (DroppedColumn("c_text2", wide.column("c_text2").type, ts),))
    mix = {"insert": 5, "update": 3, "ttl_insert": 1, "cell_delete": 1, "row_delete": 1}
    for mutation, _ in workload.workload_mutations([wide], 60, seed=3, mix=mix):
        out.append((encode_mutation(mutation), {wide.id: dropped}))
    return out


def _base_bodies() -> list[tuple[bytes, dict]]:
    demo = {t.id: t for t in workload.demo_tables()}
    wide = workload.wide_table()
    out = []
    for version, seed in ((7, 1), (8, 2)):
        for mutation, _ in workload.workload_mutations(None, 400, seed, descriptor_version=version):
            out.append((encode_mutation(mutation), demo))
    for mutation, _ in workload.workload_mutations([wide], 200, seed=5, mix=workload.DEFAULT_MIX):
        out.append((encode_mutation(mutation), {wide.id: wide}))
    return out + _crafted_bodies()


BASES = _base_bodies() if _fastpath is not None else []
BASES_WIDE_INSERT = encode_mutation(next(workload.workload_mutations([workload.wide_table()], 1, 0,
                                                                    mix={"insert": 1}))[0])


@needs_kernel
def test_unchanged_bodies_same_appends():
    accepted = sum(_check_body(body, tables) for body, tables in BASES)
    assert accepted >= len(BASES) // 3, f"the kernel took {accepted} of {len(BASES)} bodies"
    crafted = _crafted_bodies()
    assert sum(_check_body(body, tables) for body, tables in crafted) == len(crafted)


@needs_kernel
def test_huge_mutation_then_small_ones():
    """A partition update of 105k rows (more scratch than the kernel keeps), then ordinary ones."""
    wide = workload.wide_table()
    tables = {wide.id: wide}
    decoded = MutationDecoder(tables.get).decode(BASES_WIDE_INSERT)
    (update,) = decoded.updates
    row = update.unfiltereds[0]
    one, two = encode_mutation(decoded), None
    update.unfiltereds = [row, row]
    two = encode_mutation(decoded)
    size = len(two) - len(one)
    prefix = two[: len(two) - 1 - 2 * size]
    huge = prefix + two[len(prefix): len(prefix) + size] * 105_000 + b"\x01"
    assert _check_body(huge, tables)
    assert _check_body(one, tables) and _check_body(huge[:-1], tables) is False


@needs_kernel
def test_declines_what_it_does_not_handle():
    demo = {t.id: t for t in workload.demo_tables()}
    declined_ops = {"static", "partition_delete", "range_delete", "counter", "collection_overwrite"}
    for op in declined_ops:
        for mutation, _ in workload.workload_mutations(None, 20, 1, mix={op: 1}):
            done, appended = _kernel_appends(encode_mutation(mutation), demo)
            assert (done, appended) == (0, {}), op
    # a table without a plan: declined
    wide = workload.wide_table()
    (mutation, _), *_ = workload.workload_mutations([wide], 1, 0, mix={"insert": 1})
    kernel = _fastpath.Kernel()
    assert kernel.add(encode_mutation(mutation), SEG, POS) == 0


def _edit(body: bytes, edits) -> bytes:
    data = bytearray(body)
    for kind, at, arg in edits:
        if not data:
            break
        at %= len(data)
        if kind == "set":
            data[at] = arg
        elif kind == "xor":
            data[at] ^= arg
        elif kind == "insert":
            data[at:at] = arg
        elif kind == "delete":
            del data[at:at + arg]
        elif kind == "truncate":
            del data[at:]
        elif kind == "dup":
            data[at:at] = data[at:at + arg]
        elif kind == "vint":  # the vint starting at `at` (if one does) replaced by `arg`
            data[at:at + 1 + EXTRA_BYTES[data[at]]] = uvint_bytes(arg)
    return bytes(data)


# vints at the edges of what the decoder accepts: vint32 range, 64-bit wrapping, a minimum timestamp
# so high that a 1-byte delta leaves the int64 range (the Python decoder does not wrap those)
_INT64_MAX = (1 << 63) - 1
EXTREMES = sorted({
    0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, _INT64_MAX, 1 << 63,
    (1 << 64) - 1, (1 << 64) - 0x7F, 0xFFFFFFFF80000000, 0xFFFFFFFF7FFFFFFF, 0xFFFFFFFF80000001,
    *(_INT64_MAX - TIMESTAMP_EPOCH - k for k in (0, 1, 2, 5, 0x40, 0x7F, 0x80, 1000)),
    *((-TIMESTAMP_EPOCH - (1 << 63) + k) % (1 << 64) for k in (0, 1, 0x7F)),
})


_EDITS = st.lists(st.one_of(
    st.tuples(st.just("set"), st.integers(0, 1 << 20), st.sampled_from([0, 1, 2, 0x7F, 0x80, 0xBF, 0xC0, 0xFE, 0xFF])),
    st.tuples(st.just("set"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("xor"), st.integers(0, 1 << 20), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=9)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 9)),
    st.tuples(st.just("dup"), st.integers(0, 1 << 20), st.integers(1, 40)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.just(0)),
    st.tuples(st.just("vint"), st.integers(0, 1 << 20), st.sampled_from(EXTREMES)),
), min_size=1, max_size=4)


def _sample_bases() -> list[tuple[bytes, dict]]:
    """Some accepted bodies of each kind (plain, TTL, v8, deletes, dropped column), and the crafted
    multi-row ones (rows at different timestamps: deltas of several units)."""
    picked, seen = [], set()
    for body, tables in BASES:
        done, _ = _kernel_appends(body, tables)
        key = (next(iter(tables)), len(body) // 40, body[18:20])
        if done and key not in seen:
            seen.add(key)
            picked.append((body, tables))
    crafted = _crafted_bodies()
    return picked[::max(1, len(picked) // 30)] + crafted[:2] + crafted[6:8]


@needs_kernel
def test_extreme_vints_everywhere_decline_or_match():
    """Every field of some accepted bodies (their first 160 bytes) replaced by each edge-case vint."""
    accepted = checked = 0
    for body, tables in _sample_bases():
        for at in range(min(len(body), 160)):
            for value in EXTREMES:
                accepted += _check_body(_edit(body, [("vint", at, value)]), tables)
                checked += 1
    assert accepted > checked // 50


@needs_kernel
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.integers(min_value=0), edits=_EDITS)
def test_damaged_bodies_decline_or_match(base, edits):
    body, tables = BASES[base % len(BASES)]
    _check_body(_edit(body, edits), tables)


@needs_kernel
@settings(max_examples=500, deadline=None)
@given(body=st.binary(max_size=200))
def test_random_bytes_decline_or_match(body):
    tables = {t.id: t for t in workload.demo_tables()}
    wide = workload.wide_table()
    tables[wide.id] = wide
    if len(body) > 17:  # aim at a known table sometimes
        body = body[:1] + wide.id.bytes + body[17:]
    _check_body(body, tables)


# --- the kernel's CRC-32 ---------------------------------------------------------------------------------


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), value=st.integers(0, (1 << 32) - 1), skew=st.integers(0, 7))
def test_kernel_crc32_is_zlib_crc32(data, value, skew):
    import zlib

    assert _fastpath.crc32(data, value) == zlib.crc32(data, value)
    # any alignment of the buffer (the 8-byte loop reads unaligned words)
    view = memoryview(b"\0" * skew + data)[skew:]
    assert _fastpath.crc32(view, value) == zlib.crc32(data, value)


# --- damaged segments: the kernel's section walk against the Python loop --------------------------------------

_DAMAGE_MIX = {"insert": 60, "update": 15, "ttl_insert": 5, "cell_delete": 5, "row_delete": 5,
               "partition_delete": 5, "range_delete": 5}


@functools.lru_cache(maxsize=1)
def _framing_base():
    """A plain segment of the wide table (several 64 KiB sections, kernel and Python mutations
    interleaved), its bytes, and the (start, end) of every entry (made once per session; not a
    fixture, so hypothesis does not print it with every example)."""
    import tempfile

    from ray_cdc.commitlog.segment import SegmentReader

    out = Path(tempfile.mkdtemp(prefix="ray-cdc-framing-"))
    workload.generate(out, rows=900, tables=[workload.wide_table()], seed=7, mix=_DAMAGE_MIX,
                      segment_size=1 << 20, preallocate=False)
    (path,) = sort_segments(out.glob("CommitLog-*.log"))
    spans = [(e.start, e.position.offset) for e in SegmentReader(path, cdc_index=False).entries()]
    assert len(spans) > 300
    return out, path.name, path.read_bytes(), spans


@pytest.fixture
def framing_base():
    return _framing_base()


def _damage(data: bytes, spans, edits) -> bytes:
    """Edits at entries: flip a byte anywhere in it; set a body byte and fix crc2 (a valid entry
    whose mutation is damaged); set the size and fix crc1; zero a stretch; cut the file."""
    import zlib

    out = bytearray(data)
    for kind, which, at, arg in edits:
        start, end = spans[which % len(spans)]
        if end > len(out):
            continue  # cut off by an earlier edit
        if kind == "flip":
            out[start + at % (end - start)] ^= arg or 1
        elif kind == "body":
            body_end = end - 4
            out[start + 8 + at % (body_end - start - 8)] = arg & 0xFF
            crc = zlib.crc32(bytes(out[start + 8:body_end]), zlib.crc32(bytes(out[start:start + 4])))
            out[body_end:end] = struct.pack(">I", crc)
        elif kind == "size":
            size = arg % (end - start + 64) - 8
            out[start:start + 4] = struct.pack(">i", size)
            out[start + 4:start + 8] = struct.pack(">I", zlib.crc32(bytes(out[start:start + 4])))
        elif kind == "zero":
            out[start:start + arg] = bytes(len(out[start:start + arg]))
        elif kind == "cut":
            del out[start + at % (end - start):]
    return bytes(out)


def _run(make_reader, paths, pure: bool, api: str, **kw):
    """What a reader gives (batches or change sets, then the typed error if any) and its reports."""
    import pyarrow as pa

    from ray_cdc.errors import CommitLogError

    os.environ["RAY_CDC_PURE_PYTHON"] = "1" if pure else "0"
    try:
        reader = make_reader()
        got, error = [], None
        try:
            if api == "batches":
                got.extend(reader.arrow_batches(paths, **kw))
            else:
                for path in paths:
                    for s in reader.change_sets(path, **kw):
                        got.append((s.end, s.completed, s.batches))
        except (CommitLogError, pa.ArrowInvalid) as e:  # ArrowInvalid: invalid UTF-8 in a text value
            error = (type(e), getattr(e, "position", None), str(e))
    finally:
        os.environ.pop("RAY_CDC_PURE_PYTHON", None)
    reports = []
    for s in reader.summaries:
        r = s.report
        reports.append((s.mutations, s.undecodable, s.system_mutations, r.entries, r.sections, r.last_position,
                        r.bytes_skipped, r.stopped_at, r.end_of_data,
                        [(type(p), p.position, str(p)) for p in r.problems]))
    return got, error, reports, sum(s.fast_mutations for s in reader.summaries)


def _same_sets(fast, slow) -> None:
    assert [(end, completed) for end, completed, _ in fast] == [(end, completed) for end, completed, _ in slow]
    for (_, _, fb), (_, _, sb) in zip(fast, slow):
        _assert_same_batches(fb, sb)


def _differential_damaged(directory: Path, name: str, on_error: str, api: str, start=None, **kw):
    paths = [directory / name]

    def make_reader():
        return CommitLogReader(_registry(directory), on_error=on_error)

    if start is not None:
        kw["start"] = start
    fast = _run(make_reader, paths, False, api, **kw)
    slow = _run(make_reader, paths, True, api, **kw)
    (_same_sets if api == "sets" else _assert_same_batches)(fast[0], slow[0])
    assert fast[1:3] == slow[1:3]
    return fast


_DAMAGE_EDITS = st.lists(st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(st.just("body"), st.integers(0, 10_000), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(st.just("size"), st.integers(0, 10_000), st.just(0), st.integers(0, 1 << 16)),
    st.tuples(st.just("zero"), st.integers(0, 10_000), st.just(0), st.integers(1, 300)),
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.integers(0, 1 << 16), st.just(0)),
), min_size=1, max_size=3)


@needs_kernel
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=_DAMAGE_EDITS, on_error=st.sampled_from(["raise", "skip"]), api=st.sampled_from(["batches", "sets"]),
       max_rows=st.sampled_from([65536, 37]))
def test_damaged_segments_same_on_both_paths(edits, on_error, api, max_rows):
    """Same batches (or change sets) before the damage, the same typed error with its position, the
    same report (entries, problems, bytes skipped, where reading stopped) with and without the kernel."""
    import shutil
    import tempfile

    directory, name, data, spans = _framing_base()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shutil.copy(directory / "schema.cql", tmp / "schema.cql")
        (tmp / name).write_bytes(_damage(data, spans, edits))
        _differential_damaged(tmp, name, on_error, api, max_rows=max_rows)


@needs_kernel
@pytest.mark.parametrize("api", ["batches", "sets"])
@pytest.mark.parametrize("on_error", ["raise", "skip"])
@pytest.mark.parametrize("edit", [
    ("flip", 40, 2, 0x10),  # crc1
    ("flip", 41, 6, 0x01),  # crc1 itself
    ("flip", 42, 30, 0x20),  # the body: crc2
    ("flip", 43, -1, 0x80),  # crc2 itself
    ("body", 44, 17, 0xFF),  # a valid entry whose mutation is damaged
    ("size", 45, 0, 8 + 4),  # a size below 10 with a valid crc1
    ("size", 46, 0, 8 + 40_000),  # runs past its section
    ("zero", 47, 0, 8),  # size 0: the end of the data
    ("cut", 48, 100, 0),  # the file ends inside an entry
])
def test_each_framing_damage_same_on_both_paths(framing_base, tmp_path, api, on_error, edit):
    import shutil

    directory, name, data, spans = framing_base
    shutil.copy(directory / "schema.cql", tmp_path / "schema.cql")
    (tmp_path / name).write_bytes(_damage(data, spans, [edit]))
    _, error, reports, by_kernel = _differential_damaged(tmp_path, name, on_error, api, max_rows=50)
    assert by_kernel > 0
    undecodable, problems = reports[0][1], reports[0][-1]
    assert error is not None or problems or undecodable or edit[0] == "zero", "the damage went unnoticed"


@needs_kernel
@pytest.mark.parametrize("api", ["batches", "sets"])
def test_resume_inside_a_section_same_on_both_paths(framing_base, tmp_path, api):
    """A start position in the middle of a section: entries up to it are passed over in C too."""
    import shutil

    from ray_cdc.commitlog.position import CommitLogPosition
    from ray_cdc.commitlog.segment import parse_segment_name

    directory, name, data, spans = framing_base
    shutil.copy(directory / "schema.cql", tmp_path / "schema.cql")
    (tmp_path / name).write_bytes(data)
    segment_id = parse_segment_name(name)[1]
    for which in (0, 1, 150, len(spans) // 2, len(spans) - 2):
        start = CommitLogPosition(segment_id, spans[which][1])
        _, error, reports, by_kernel = _differential_damaged(tmp_path, name, "raise", api, start=start,
                                                             max_rows=100)
        assert error is None and (by_kernel > 0 or len(spans) - which < 10)
        assert reports[0][3] == len(spans) - which - 1  # entries after the start


@needs_kernel
def test_fast_runs_count_like_entries(framing_base):
    """SegmentReader.entries(fast): runs stand for their entries in the report and positions."""
    from ray_cdc.commitlog.arrow_batches import ArrowBatcher
    from ray_cdc.commitlog.segment import FastRun, SegmentReader

    directory, name, _, spans = framing_base
    table = workload.wide_table()
    builder = ArrowBatcher().builder(table)[0]
    kernel = _fastpath.Kernel(1 << 40, 1 << 60)
    kernel.set_plan(_fastpath.TablePlan(builder))
    reader = SegmentReader(directory / name, cdc_index=False)
    ends, runs = [], 0
    for item in reader.entries(kernel.run):
        if isinstance(item, FastRun):
            runs += 1
            ends.append(item.position.offset)
        else:
            ends.append(item.position.offset)
    assert runs > 5 and len(ends) < len(spans)
    assert set(ends) <= {end for _, end in spans} and ends == sorted(ends) and ends[-1] == spans[-1][1]
    assert reader.report.entries == len(spans) and reader.report.last_position.offset == spans[-1][1]
    assert len(builder) > 0 and builder.store is not None and len(builder.store) == len(builder)


# --- the column store: rows of the Python path between kernel rows, values it cannot hold --------------------


def _wide_bodies(n: int, mix=None) -> list[bytes]:
    return [encode_mutation(m) for m, _ in workload.workload_mutations([workload.wide_table()], n, seed=21,
                                                                        mix=mix or {"insert": 3, "update": 1})]


def _both_builders(steps) -> tuple[dict, dict, list]:
    """Run `steps` on a kernel-backed builder and on a Python-only one; each step is ("body", bytes)
    (kernel first on the kernel side, the Python decoder where it declines; the Python decoder on
    the other side) or ("row", args of TableBatchBuilder._meta_row). Returns both batches (or
    errors) and what kernel.add returned per body."""
    wide = workload.wide_table()
    tables = {wide.id: wide}
    fast, slow = TableBatchBuilder(wide), TableBatchBuilder(wide)
    kernel = _fastpath.Kernel(1 << 40, 1 << 60)
    kernel.set_plan(_fastpath.TablePlan(fast))
    decoder = MutationDecoder(tables.get)
    taken = []
    for kind, arg in steps:
        if kind == "row":
            fast._meta_row(*arg)
            slow._meta_row(*arg)
            continue
        (update,) = decoder.decode(arg).updates
        slow.add_update(update, SEG, POS)
        done = kernel.add(arg, SEG, POS)
        taken.append(done)
        if not done:
            fast.add_update(update, SEG, POS)
    return _finished({wide.id: fast}), _finished({wide.id: slow}), taken


@needs_kernel
@pytest.mark.parametrize("odd", [
    ([b"\0" * 8], [b""]),  # an empty clustering value (int): the column turns VAR, decoded value by value
    ([b"\1\2\3"], [b"\0\0\0\5"]),  # a bigint key of 3 bytes: the same typed error on both paths
    ([b"\0" * 8], [None]),
])
def test_odd_list_rows_between_kernel_rows(odd):
    pk, ck = odd
    a, b, c = _wide_bodies(3)
    row = (pk, ck, "partition_delete", 5, None, None, SEG, POS, ())
    fast, slow, taken = _both_builders([("body", a), ("row", row), ("body", b), ("row", row), ("body", c)])
    assert taken == [1, 1, 1]
    _assert_same_finished(fast, slow)


@needs_kernel
@pytest.mark.parametrize("row", [
    ([bytearray(8)], [b"\0\0\0\1"], "partition_delete", 5, None, None, SEG, POS, ()),  # not bytes: fine as a list
    ([b"\0" * 8], [], "partition_delete", 1 << 70, None, None, SEG, POS, ()),  # beyond int64: an error on both
    ([b"\0" * 8], [], "range_delete", 5, 1 << 40, None, SEG, POS, ()),  # a ttl beyond int32
    ([b"\0" * 8], [], "partition_delete", 5, None, None, SEG, POS, ("no_such_column",)),
])
def test_list_rows_the_store_cannot_hold(row):
    """The store refuses them (absorb() moves nothing): the kernel declines this table's mutations
    until the batch is finished, finish() builds it from the lists, and the kernel takes the next."""
    a, b, c, d = _wide_bodies(4)
    fast, slow, taken = _both_builders([("body", a), ("row", row), ("body", b), ("body", c)])
    assert taken == [1, 0, 0]
    _assert_same_finished(fast, slow)
    if isinstance(next(iter(fast.values())), tuple):
        return  # finish raised (as it does without the kernel): this batch is lost either way
    fast2, slow2, taken2 = _both_builders([("body", d), ("body", a)])
    assert taken2 == [1, 1]
    _assert_same_finished(fast2, slow2)


@needs_kernel
def test_store_holds_the_builder_rows_across_batches():
    """Counts, bytes and the reuse of the buffers after finish()."""
    wide = workload.wide_table()
    builder = TableBatchBuilder(wide)
    kernel = _fastpath.Kernel(1 << 40, 1 << 60)
    kernel.set_plan(_fastpath.TablePlan(builder))
    bodies = _wide_bodies(300)
    for rnd in range(3):
        for body in bodies[rnd * 100:(rnd + 1) * 100]:
            assert kernel.add(body, SEG, POS) == 1
        assert len(builder) == len(builder.store) == 100 and not builder.op
        nbytes = builder.nbytes
        assert nbytes > 0
        batch = builder.finish()
        assert batch.num_rows == 100 and len(builder) == 0 and builder.nbytes == 0
        slow = TableBatchBuilder(wide)
        for body in bodies[rnd * 100:(rnd + 1) * 100]:
            for update in MutationDecoder({wide.id: wide}.get).decode(body).updates:
                slow.add_update(update, SEG, POS)
        assert slow.nbytes == nbytes
        assert batch.equals(slow.finish())


@needs_kernel
def test_column_back_to_fixed_after_a_batch_in_var_mode():
    """A clustering column in VAR mode (empty values) through a batch that grows its row capacity
    with little value data, then, after finish(), FIXED again for a batch of as many kernel rows."""
    wide = workload.wide_table()
    bodies = _wide_bodies(1200)
    empty = ([b"\0" * 8], [b""], "partition_delete", 5, None, None, SEG, POS, ())
    steps = [("row", empty)] * 1000 + [("body", b) for b in bodies[:200]]
    fast, slow, _ = _both_builders(steps)
    _assert_same_finished(fast, slow)
    builder = TableBatchBuilder(wide)
    kernel = _fastpath.Kernel(1 << 40, 1 << 60)
    kernel.set_plan(_fastpath.TablePlan(builder))
    for _ in range(1000):
        builder._meta_row(*empty)
    assert kernel.add(bodies[0], SEG, POS) == 1 and builder.store.width(1) == -1  # ck: VAR mode
    builder.finish()
    assert builder.store.width(1) == 4
    for body in bodies[200:1200]:
        assert kernel.add(body, SEG, POS) == 1
    slow = TableBatchBuilder(wide)
    for body in bodies[200:1200]:
        for update in MutationDecoder({wide.id: wide}.get).decode(body).updates:
            slow.add_update(update, SEG, POS)
    _assert_same_finished(_finished({wide.id: builder}), _finished({wide.id: slow}))
