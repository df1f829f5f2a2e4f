"""Retrying what is transient: the backoff policy, `retry`, and the breaker a writer opens while its
destination is down. Plain logic, light to import (the coordinator actor unpickles a `Backoff`)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ray_cdc.errors import TransientDestinationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter for transient destination errors."""

    initial: float = 0.5
    maximum: float = 30.0
    max_elapsed: float | None = None  # None: retry for as long as it takes

    def delays(self, rng: random.Random | None = None):
        rng = rng or random.Random()
        ceiling = self.initial
        while True:
            yield rng.uniform(0, ceiling)
            ceiling = min(self.maximum, ceiling * 2)

    def ceilings(self) -> Iterator[float]:
        """The un-jittered delays (the breaker's and the coordinator's waits: deterministic)."""
        ceiling = self.initial
        while True:
            yield ceiling
            ceiling = min(self.maximum, ceiling * 2)


#: what `retry` retries by default: the destinations classify their errors into this type
RETRYABLE: tuple[type[BaseException], ...] = (TransientDestinationError,)


def retry(call: Callable, policy: RetryPolicy, *, what: str, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic, budget: float | None = None,
          retry_on: tuple[type[BaseException], ...] = RETRYABLE):
    """Run `call`; on a `retry_on` error wait and try again, within the policy's budget (and within
    `budget` seconds, when given)."""
    started = clock()
    attempt = 0
    limits = [x for x in (policy.max_elapsed, budget) if x is not None]
    for delay in policy.delays():
        try:
            return call()
        except retry_on as e:
            attempt += 1
            if limits and clock() - started + delay > min(limits):
                raise
            log.warning("%s failed (attempt %d), retrying in %.1f s: %s", what, attempt, delay, e)
            sleep(delay)
    raise AssertionError("unreachable: delays() is endless")


class Breaker:
    """Open while a destination is known to be down, so callers are answered at once.

    closed: writes go through (with `detach_after` seconds of retries). open: every write is deferred
    until `retry_at`; then one attempt (half-open) closes it again, or re-opens it for longer.
    `down_for()` lets the writer give up for good after the policy's `max_elapsed`."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic):
        self._policy, self._clock = policy, clock
        self._delays: Iterator[float] | None = None
        self._retry_at = 0.0
        self._down_since: float | None = None

    @property
    def tripped(self) -> bool:
        return self._down_since is not None

    def allows(self) -> bool:
        return not self.tripped or self._clock() >= self._retry_at

    def trip(self) -> float:
        """A write gave up: stay open for the next (growing) delay; returns it."""
        now = self._clock()
        if self._down_since is None:
            self._down_since, self._delays = now, self._policy.ceilings()
        delay = next(self._delays)
        self._retry_at = now + delay
        return delay

    def reset(self) -> None:
        self._down_since, self._delays, self._retry_at = None, None, 0.0

    def down_for(self) -> float:
        return 0.0 if self._down_since is None else self._clock() - self._down_since


@dataclass(frozen=True)
class Backoff:
    """The coordinator's waits before handing a deferred segment back (a picklable factory)."""

    policy: RetryPolicy

    def __call__(self):
        return self.policy.ceilings()
