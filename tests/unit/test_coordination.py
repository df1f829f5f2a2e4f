"""Coordinator logic: discovery, assignment per node, resume positions, lost readers, retention."""

from __future__ import annotations

import pytest

from ray_cdc.commitlog.cdc_index import index_path
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.errors import ConfigError
from ray_cdc.offsets import Offset
from ray_cdc.pipeline.coordination import (
    Coordinator,
    SegmentRef,
    Wait,
    discover_segments,
    fully_committed,
    resume_position,
    retire_segment,
)


def _touch(directory, *ids, version=7):
    directory.mkdir(parents=True, exist_ok=True)
    for segment_id in ids:
        (directory / f"CommitLog-{version}-{segment_id}.log").write_bytes(b"")
        index_path(directory / f"CommitLog-{version}-{segment_id}.log").write_text("20\nCOMPLETED")


def test_discovery_orders_by_segment_id_and_ignores_other_files(tmp_path):
    _touch(tmp_path / "a", 30, 4, 200)
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "a" / "CommitLog-x-1.log").write_text("x")
    assert [s.segment_id for s in discover_segments("a", tmp_path / "a")] == [4, 30, 200]


def test_missing_directory_names_the_node_and_path(tmp_path):
    with pytest.raises(ConfigError, match=r"node 'b'.*missing"):
        discover_segments("b", tmp_path / "missing")


def test_resume_from_the_lowest_destination_offset(tmp_path):
    seg = SegmentRef("a", 5, tmp_path / "CommitLog-7-5.log")
    pg = {"a/5": Offset("a", 5, 900)}
    ch = {"a/5": Offset("a", 5, 400)}
    assert resume_position(seg, {"pg": pg, "ch": ch}) == CommitLogPosition(5, 400)
    assert resume_position(seg, {"pg": pg, "ch": {}}) is None  # ch has nothing yet: from the start
    assert resume_position(seg, {}) is None


def test_assignment_per_node_and_requeue_of_live_segments(tmp_path):
    _touch(tmp_path / "a", 1, 2)
    _touch(tmp_path / "b", 3)
    coordinator = Coordinator({"a": tmp_path / "a", "b": tmp_path / "b"})
    assert len(coordinator.refresh({})) == 3
    first = coordinator.next_assignment("reader-a", "a", {})
    assert (first.segment.node, first.segment.segment_id, first.start) == ("a", 1, None)
    assert coordinator.next_assignment("reader-b", "b", {}).segment.segment_id == 3
    assert coordinator.next_assignment("reader-b", "b", {}) is None
    coordinator.finished(first.segment, completed=False)  # still being written: parked for this pass
    second = coordinator.next_assignment("reader-a", "a", {})
    assert second.segment.segment_id == 2
    assert coordinator.next_assignment("reader-a", "a", {}) is None  # no spinning on the live one
    committed = {"pg": {"a/1": Offset("a", 1, 77)}}
    assert coordinator.refresh(committed) == []  # nothing new, but the live segment is queued again
    again = coordinator.next_assignment("reader-a", "a", committed)
    assert again.segment.segment_id == 1 and again.start == CommitLogPosition(1, 77)


def test_lost_reader_work_goes_back_first(tmp_path):
    _touch(tmp_path / "a", 1, 2, 3)
    coordinator = Coordinator({"a": tmp_path / "a"})
    coordinator.refresh({})
    coordinator.next_assignment("r1", "a", {})
    coordinator.next_assignment("r1", "a", {})
    assert [s.segment_id for s in coordinator.reader_lost("r1")] == [1, 2]
    assert [coordinator.next_assignment("r2", "a", {}).segment.segment_id for _ in range(3)] == [1, 2, 3]
    assert not coordinator.idle()
    for segment in list(coordinator.assigned()):
        coordinator.finished(segment, completed=True)
    assert coordinator.idle() and [s.segment_id for s in coordinator.done()] == [1, 2, 3]


def test_fully_committed_segments_are_not_queued_again(tmp_path):
    _touch(tmp_path / "a", 1, 2)
    committed = {"pg": {"a/1": Offset("a", 1, 50, completed=True)},
                 "ch": {"a/1": Offset("a", 1, 50, completed=True)}}
    coordinator = Coordinator({"a": tmp_path / "a"})
    assert [s.segment_id for s in coordinator.refresh(committed)] == [2]
    seg1 = SegmentRef("a", 1, tmp_path / "a" / "CommitLog-7-1.log")
    assert fully_committed(seg1, committed)
    assert not fully_committed(seg1, {**committed, "ts": {}})


@pytest.mark.parametrize("policy", ["delete", "archive", "keep"])
def test_retention(tmp_path, policy):
    _touch(tmp_path / "a", 9)
    [segment] = discover_segments("a", tmp_path / "a")
    retire_segment(segment, policy, tmp_path / "archive")
    left = sorted(p.name for p in (tmp_path / "a").iterdir())
    archive = tmp_path / "archive" / "a"
    archived = sorted(p.name for p in archive.iterdir()) if archive.exists() else []
    names = ["CommitLog-7-9.log", "CommitLog-7-9_cdc.idx"]
    assert (left, archived) == {"delete": ([], []), "archive": ([], names), "keep": (names, [])}[policy]


def test_archive_without_a_directory_is_a_config_error(tmp_path):
    _touch(tmp_path / "a", 9)
    [segment] = discover_segments("a", tmp_path / "a")
    with pytest.raises(ConfigError, match="archive_dir"):
        retire_segment(segment, "archive", None)


# --- destinations progress independently -------------------------------------------------------------


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_deferred_segment_comes_back_for_the_deferring_destination_only(tmp_path):
    _touch(tmp_path / "a", 1, 2)
    clock = _Clock()
    coordinator = Coordinator({"a": tmp_path / "a"}, ["pg", "ch"], backoff=lambda: iter([5.0, 10.0]),
                              clock=clock)
    coordinator.refresh({})
    first = coordinator.next_assignment("r", "a", {})
    assert first.destinations == {"pg", "ch"} and first.start is None
    assert not coordinator.finished(first.segment, completed=True, deferred=["pg"])  # pg was down
    second = coordinator.next_assignment("r", "a", {})
    assert second.segment.segment_id == 2  # the others are not held up by pg
    assert coordinator.finished(second.segment, completed=True)
    wait = coordinator.next_assignment("r", "a", {})
    assert isinstance(wait, Wait) and wait.seconds == 5.0  # segment 1 is owed to pg, after a backoff
    assert not coordinator.idle()
    clock.now = 5.0
    committed = {"pg": {"a/1": Offset("a", 1, 300)}, "ch": {"a/1": Offset("a", 1, 900, completed=True)}}
    again = coordinator.next_assignment("r", "a", committed)
    assert again.destinations == {"pg"} and again.start == CommitLogPosition(1, 300)  # pg's own offset
    coordinator.finished(again.segment, completed=True, deferred=["pg"])  # still down: waits longer
    clock.now = 10.0
    assert coordinator.next_assignment("r", "a", committed).seconds == 5.0
    clock.now = 15.0
    last = coordinator.next_assignment("r", "a", committed)
    assert coordinator.finished(last.segment, completed=True)
    assert coordinator.next_assignment("r", "a", committed) is None and coordinator.idle()
    assert [s.segment_id for s in coordinator.done()] == [1, 2]


def test_lost_reader_requeues_with_the_destinations_it_was_feeding(tmp_path):
    _touch(tmp_path / "a", 1)
    coordinator = Coordinator({"a": tmp_path / "a"}, ["pg", "ch"], backoff=lambda: iter([0.0]))
    coordinator.refresh({})
    coordinator.finished(coordinator.next_assignment("r1", "a", {}).segment, completed=True, deferred=["ch"])
    assert coordinator.next_assignment("r1", "a", {}).destinations == {"ch"}
    coordinator.reader_lost("r1")
    assert coordinator.next_assignment("r2", "a", {}).destinations == {"ch"}


def test_a_destination_without_any_offset_has_not_committed_anything(tmp_path):
    seg = SegmentRef("a", 1, tmp_path / "CommitLog-7-1.log")
    ch_only = {"ch": {"a/1": Offset("a", 1, 50, completed=True)}}
    assert fully_committed(seg, ch_only)  # every destination *that reported*
    assert not fully_committed(seg, ch_only, ["pg", "ch"])  # pg never reported: not retired
    assert fully_committed(seg, {**ch_only, "pg": {"a/1": Offset("a", 1, 50, completed=True)}}, ["pg", "ch"])
    assert resume_position(seg, {"pg": {"a/1": Offset("a", 1, 7)}, **ch_only}, ["pg"]) == CommitLogPosition(1, 7)
