"""The progress display: rewritten in place on a terminal, plain and throttled lines otherwise."""

from __future__ import annotations

import io

from ray_cdc.cli.progress import MIB, ProgressLine, applied_by_all
from ray_cdc.observability.segments import SegmentFile
from ray_cdc.offsets import Offset


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_gets_one_line_rewritten_in_place():
    out, clock = io.StringIO(), Clock()
    line = ProgressLine(out, tty=True, clock=clock)
    clock.now = 2.0
    line.update(MIB, 4 * MIB, 0, 2)
    clock.now = 2.1
    line.update(4 * MIB, 4 * MIB, 2, 2)
    line.finish()
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "applied 4.0 of 4.0 MiB, 2/2 segments done, 1.90 MiB/s" in text


def test_a_log_gets_plain_lines_at_most_every_interval():
    out, clock = io.StringIO(), Clock()
    line = ProgressLine(out, tty=False, every=10.0, clock=clock)
    for second in range(25):
        clock.now = float(second)
        line.update(second * MIB, 30 * MIB, 0, 3)
    line.finish()
    lines = out.getvalue().splitlines()
    assert [x.split(",")[0] for x in lines] == ["progress: applied 0.0 of 30.0 MiB",
                                                "progress: applied 10.0 of 30.0 MiB",
                                                "progress: applied 20.0 of 30.0 MiB"]
    assert "\r" not in out.getvalue()


def segment(seg_id: int, end: int) -> SegmentFile:
    return SegmentFile("a", seg_id, f"CommitLog-7-{seg_id}.log", end, end, 0.0)


def test_applied_counts_what_the_slowest_destination_has():
    segments = [segment(1, 100), segment(2, 100), segment(3, 100)]
    committed = {"pg": {"a/1": Offset("a", 1, 100, True), "a/2": Offset("a", 2, 60)},
                 "ch": {"a/1": Offset("a", 1, 100, True), "a/2": Offset("a", 2, 30)}}
    assert applied_by_all(committed, segments) == (130, 1)
    assert applied_by_all({**committed, "other": {}}, segments) == (0, 0)  # one destination has nothing
    assert applied_by_all({}, segments) == (0, 0)
