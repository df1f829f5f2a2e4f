"""Retrying transient destination errors with capped, jittered exponential backoff."""

from __future__ import annotations

import random

import pytest

from ray_cdc.errors import FatalDestinationError, TransientDestinationError
from ray_cdc.pipeline.writing import RetryPolicy, retry


def test_delays_grow_to_the_cap():
    policy = RetryPolicy(initial=1, maximum=8)
    rng = random.Random(1)
    delays = [d for _, d in zip(range(8), policy.delays(rng))]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings))


def test_transient_errors_are_retried_until_success():
    attempts, slept = [], []

    def flaky():
        attempts.append(1)
        if len(attempts) < 4:
            raise TransientDestinationError("connection refused", destination="pg")
        return "ok"

    assert retry(flaky, RetryPolicy(initial=0.1, maximum=1), what="write", sleep=slept.append) == "ok"
    assert len(attempts) == 4 and len(slept) == 3


def test_fatal_errors_are_not_retried():
    attempts = []

    def fatal():
        attempts.append(1)
        raise FatalDestinationError("password authentication failed", destination="pg")

    with pytest.raises(FatalDestinationError):
        retry(fatal, RetryPolicy(), what="write", sleep=lambda _: None)
    assert len(attempts) == 1


def test_the_time_budget_ends_retrying():
    now = [0.0]

    def down():
        raise TransientDestinationError("down", destination="pg")

    def sleep(seconds):
        now[0] += seconds

    with pytest.raises(TransientDestinationError):
        retry(down, RetryPolicy(initial=1, maximum=4, max_elapsed=20), what="write", sleep=sleep,
              clock=lambda: now[0])
    assert now[0] <= 20


# --- the breaker and the retry budget (destinations progress independently) ----------------------------


def test_the_budget_bounds_retrying_in_place():
    now, calls = [0.0], []

    def down():
        calls.append(now[0])
        raise TransientDestinationError("down", destination="pg")

    def sleep(seconds):
        now[0] += seconds

    with pytest.raises(TransientDestinationError):
        retry(down, RetryPolicy(initial=1, maximum=2), what="write", sleep=sleep, clock=lambda: now[0], budget=5)
    assert now[0] <= 5 and len(calls) >= 2
    calls.clear()
    with pytest.raises(TransientDestinationError):  # budget 0: one attempt, no wait (a half-open probe)
        retry(down, RetryPolicy(), what="write", sleep=sleep, clock=lambda: now[0], budget=0)
    assert len(calls) == 1


def test_retry_on_other_error_types():
    from ray_cdc.dlq import DeadLetterError

    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 2:
            raise DeadLetterError("store unreachable")
        return 3

    assert retry(flaky, RetryPolicy(), what="dlq", sleep=lambda _: None, retry_on=(DeadLetterError,)) == 3


def test_breaker_opens_for_growing_delays_and_closes_on_success():
    from ray_cdc.pipeline.writing import Breaker

    now = [100.0]
    breaker = Breaker(RetryPolicy(initial=1, maximum=4), clock=lambda: now[0])
    assert breaker.allows() and not breaker.tripped
    assert [breaker.trip() for _ in range(4)] == [1, 2, 4, 4]
    assert not breaker.allows()
    now[0] += 4
    assert breaker.allows() and breaker.tripped and breaker.down_for() == 4  # half-open: one probe
    breaker.reset()
    assert breaker.allows() and not breaker.tripped and breaker.down_for() == 0
    assert breaker.trip() == 1  # a new outage starts from the initial delay again
