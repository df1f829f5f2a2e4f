"""Lag per node and segment, segment files on disk, the coordinator's progress, snapshot progress."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ray_cdc.commitlog.cdc_index import CdcIndex, index_path, read_cdc_index
from ray_cdc.commitlog.workload import demo_tables, generate
from ray_cdc.observability.segments import SegmentFile, segment_files
from ray_cdc.observability.snapshot_status import RING_SIZE, snapshot_status
from ray_cdc.observability.status import NO_PROGRESS, destination_lag, node_statuses, segment_status
from ray_cdc.offsets import Offset
from ray_cdc.pipeline.coordination import Coordinator, Progress
from ray_cdc.snapshot.progress import range_offset
from ray_cdc.snapshot.ranges import TokenRange

NOW = 1_000_000.0


def seg(node: str, segment_id: int, end: int = 1000, age: float = 30.0, size: int | None = None) -> SegmentFile:
    return SegmentFile(node, segment_id, f"CommitLog-7-{segment_id}.log", size or end, end, NOW - age)


def test_a_segment_lags_by_what_the_slowest_destination_lacks():
    segment = seg("a", 1, end=1000, age=42.0)
    committed = {"pg": {"a/1": Offset("a", 1, 700)}, "ch": {"a/1": Offset("a", 1, 250)}}
    status = segment_status(segment, committed, ["pg", "ch"], NO_PROGRESS, NOW)
    assert status.lag_bytes == 750 and status.lag_seconds == pytest.approx(42.0)
    assert status.committed["ch"].position == 250 and not status.committed["ch"].completed
    assert destination_lag([segment], committed, "pg") == 300
    assert destination_lag([segment], committed, "ch") == 750


def test_a_destination_without_an_offset_lacks_the_whole_segment():
    segment = seg("a", 1, end=1000)
    status = segment_status(segment, {"pg": {"a/1": Offset("a", 1, 1000, True)}}, ["pg", "ch"], NO_PROGRESS, NOW)
    assert status.lag_bytes == 1000
    assert status.committed["ch"].position is None


def test_completed_everywhere_is_done_and_counted_not_listed():
    done, open_ = seg("a", 1, age=500.0), seg("a", 2, end=400, age=5.0)
    committed = {d: {"a/1": Offset("a", 1, 990, completed=True)} for d in ("pg", "ch")}
    nodes = node_statuses([done, open_], committed, ["pg", "ch"], NO_PROGRESS, NOW, ["a", "b"])
    a = nodes["a"]
    assert (a.segments_total, a.segments_done, a.lag_bytes) == (2, 1, 400)
    assert [s.segment_id for s in a.segments] == [2]
    assert a.lag_seconds == pytest.approx(5.0)  # the done segment's age does not count
    assert nodes["b"].segments_total == 0 and nodes["b"].lag_bytes == 0  # configured, empty directory


def test_node_lag_seconds_is_its_oldest_lagging_segment():
    nodes = node_statuses([seg("a", 1, age=90.0), seg("a", 2, age=3.0)], {}, ["pg"], NO_PROGRESS, NOW)
    assert nodes["a"].lag_seconds == pytest.approx(90.0)
    assert nodes["a"].lag_bytes == 2000


def test_a_position_past_the_end_is_clamped():
    """Positions are logical offsets; a compressed segment without an index is measured by its
    compressed size: the lag is then an estimate, never negative."""
    segment = seg("a", 1, end=300)
    status = segment_status(segment, {"pg": {"a/1": Offset("a", 1, 5000)}}, ["pg"], NO_PROGRESS, NOW)
    assert status.lag_bytes == 0 and status.lag_seconds == 0.0


def test_states_come_from_the_coordinators_progress():
    progress = Progress({"a/1": "run-1:reader:a:0"}, frozenset({"a/2"}), frozenset())
    states = [segment_status(seg("a", i), {}, ["pg"], progress, NOW) for i in (1, 2, 3)]
    assert [(s.state, s.reader) for s in states] == [("reading", "run-1:reader:a:0"), ("queued", None),
                                                     ("waiting", None)]


def test_coordinator_progress_follows_assignment(tmp_path):
    generate(tmp_path / "a", rows=300, tables=demo_tables(), segment_size=64 << 10, preallocate=False)
    coordinator = Coordinator({"a": tmp_path / "a"}, ["pg"])
    queued = coordinator.refresh({})
    assert len(queued) >= 2
    first = coordinator.next_assignment("r0", "a", {})
    progress = coordinator.progress()
    assert progress.reading == {first.segment.partition_id: "r0"}
    assert progress.queued == {s.partition_id for s in queued[1:]} and not progress.done
    coordinator.finished(first.segment, completed=True)
    assert coordinator.progress().done == {first.segment.partition_id}
    assert coordinator.progress().reading == {}


def test_segment_files_read_size_index_and_age(tmp_path):
    summary = generate(tmp_path / "a", rows=300, tables=demo_tables(), segment_size=64 << 10)
    first = summary.segments[0]
    files = segment_files({"a": tmp_path / "a", "b": _empty(tmp_path / "b")})
    assert [f.name for f in files] == [p.name for p in sorted(summary.segments)]
    found = files[0]
    assert found.size == first.stat().st_size == 64 << 10  # preallocated, as Cassandra's are
    assert found.end == read_cdc_index(index_path(first)).offset < found.size
    assert found.mtime == pytest.approx(first.stat().st_mtime)
    index_path(first).unlink()  # no index (a 2.1 archive): the size is all there is
    assert segment_files({"a": tmp_path / "a"})[0].end == found.size
    index_path(first).write_text("")  # caught while Cassandra rewrites it
    assert segment_files({"a": tmp_path / "a"})[0].end == found.size
    index_path(first).write_text(CdcIndex(1234, False).text())
    os.utime(first, (NOW, NOW))
    again = segment_files({"a": tmp_path / "a"})[0]
    assert (again.end, again.mtime) == (1234, NOW)


def _empty(path: Path) -> Path:
    path.mkdir()
    return path


def test_snapshot_progress_is_what_every_destination_holds():
    ring = TokenRange(-2 ** 63, 2 ** 63 - 1)
    halves = [TokenRange(-2 ** 63, -1), TokenRange(-1, 2 ** 63 - 1)]
    committed = {
        "pg": {o.partition_id: o for o in (range_offset("ks.t", halves[0], halves[0].end, True),
                                           range_offset("ks.t", halves[1], halves[1].end, True))},
        "ch": {o.partition_id: o for o in (range_offset("ks.t", halves[0], halves[0].end, True),)},
        "other": {"a/1": Offset("a", 1, 10)},  # commitlog offsets are not snapshot progress
    }
    status = snapshot_status(committed, ["pg", "ch"])
    assert list(status) == ["ks.t"]
    assert status["ks.t"].ranges_completed == {"pg": 2, "ch": 1}
    assert status["ks.t"].fraction_done == pytest.approx((halves[0].end - halves[0].start) / RING_SIZE)
    assert snapshot_status(committed, ["pg"])["ks.t"].fraction_done == pytest.approx(
        (ring.end - ring.start) / RING_SIZE)
