"""Fan-out to destinations: a bounded window per destination (backpressure) and detaching one that
defers. Plain functions stand in for Ray's submit/get: the logic is the same, without Ray."""

from __future__ import annotations

import random

import pytest

from ray_cdc.pipeline.fanout import Lanes
from ray_cdc.pipeline.writing import ApplyResult


class Writers:
    """Answers like writer actors do; `answer` decides each (destination, set) outcome."""

    def __init__(self, answer):
        self.answer = answer
        self.submitted: list[tuple[str, int]] = []
        self.outstanding: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def submit(self, name, item):
        self.submitted.append((name, item))
        self.outstanding[name] = self.outstanding.get(name, 0) + 1
        self.peak[name] = max(self.peak.get(name, 0), self.outstanding[name])
        return name, item

    def collect(self, handle):
        name, item = handle
        self.outstanding[name] -= 1
        return self.answer(name, item)


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_in_flight_never_exceeds_the_window(limit):
    writers = Writers(lambda name, item: ApplyResult(rows=10))
    lanes = Lanes(["ch", "pg"], limit, writers.submit, writers.collect)
    for i in range(40):
        lanes.send(i)
        assert all(lanes.in_flight(n) <= limit for n in ("ch", "pg"))
    assert lanes.drain() == {}
    assert writers.peak == {"ch": limit, "pg": limit}  # memory bounded by the window, not by the backlog
    assert lanes.totals["pg"].sets == 40 and lanes.totals["pg"].rows == 400


def test_a_deferring_destination_is_detached_and_the_others_get_everything():
    seed = random.randrange(1 << 30)
    print(f"seed={seed}")
    down_from = random.Random(seed).randrange(0, 30)

    def answer(name, item):
        if name == "pg" and item >= down_from:
            return ApplyResult(status="deferred", reason="pg is unavailable")
        return ApplyResult(rows=1)

    writers = Writers(answer)
    lanes = Lanes(["ch", "pg"], 3, writers.submit, writers.collect)
    for i in range(30):
        lanes.send(i)
    assert lanes.drain() == {"pg": "pg is unavailable"}
    assert [i for n, i in writers.submitted if n == "ch"] == list(range(30))
    sent_to_pg = [i for n, i in writers.submitted if n == "pg"]
    assert sent_to_pg == list(range(len(sent_to_pg)))  # in order, stopped soon after the deferral
    assert len(sent_to_pg) <= down_from + 3 + 1
    assert lanes.attached() == ["ch"] and lanes.totals["pg"].sets == down_from
