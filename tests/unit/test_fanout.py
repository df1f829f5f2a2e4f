"""Fan-out to destinations: a bounded window per destination (backpressure) and detaching one that
defers. Plain functions stand in for Ray's submit/get: the logic is the same, without Ray."""

from __future__ import annotations

import random

import pytest

from ray_cdc.pipeline.fanout import STORE_SHARE, Lanes, fitted_window
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


def test_poll_settles_only_what_is_answered_in_order_and_settle_oldest_makes_room():
    """What a reader does across segments: `poll` settles, without waiting, the answered prefix of
    each window; `settle_oldest` waits for one set of one destination; `idle` once all are in."""
    writers = Writers(lambda name, item: ApplyResult(rows=1) if name == "ch" or item != 3
                      else ApplyResult(status="deferred", reason="down"))
    lanes = Lanes(["ch", "pg"], 5, writers.submit, writers.collect)
    for i in range(4):
        lanes.send(i)
    answered = {("ch", 0), ("ch", 2), ("pg", 0), ("pg", 1)}  # ch 1 not answered: ch 2 waits behind it
    assert not lanes.poll(lambda handles: [h for h in handles if h in answered])
    assert (lanes.in_flight("ch"), lanes.in_flight("pg")) == (3, 2)
    assert lanes.in_flight("other") == 0
    lanes.settle_oldest("pg")
    assert lanes.in_flight("pg") == 1 and not lanes.idle()
    assert lanes.poll(lambda handles: handles)
    assert lanes.idle() and lanes.drain() == {"pg": "down"}
    assert lanes.totals["ch"].sets == 4 and lanes.totals["pg"].sets == 3


MiB = 1 << 20


def test_windows_shrink_so_every_destinations_sets_fit_the_object_store():
    store = 256 * MiB
    assert fitted_window(4, 1, 16 * MiB, store) == 4  # one destination: the requested window fits
    three = fitted_window(4, 3, 16 * MiB, store)
    assert three == 2  # three destinations at the requested 4 would need 352 MiB
    # what the windows hold at most (batches once, each destination's part 1.5 times their size)
    # fits the share of the store left for them
    assert three * 16 * MiB * (1 + 1.5 * 3) <= store * STORE_SHARE
    assert fitted_window(4, 3, 8 * MiB, store) == 4  # the default sets, half the size: all four fit
    assert fitted_window(4, 3, 16 * MiB, store, readers=3) == 1  # three readers feed the writers' store
    assert fitted_window(4, 3, 64 * MiB, 100 * MiB) == 1  # never below one set
    assert fitted_window(8, 3, 16 * MiB, None) == 8  # store unknown: as configured
    assert fitted_window(2, 1, 1 * MiB, 10_000 * MiB) == 2  # never more than configured
