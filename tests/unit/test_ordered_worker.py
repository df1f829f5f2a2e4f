"""OrderedWorker: the writer's loads run one at a time, each caller's in its turn order."""

from __future__ import annotations

import threading
import time

import pytest

from ray_cdc.pipeline.ordered import OrderedWorker, Turns


def _recorder():
    ran, lock = [], threading.Lock()

    def load(name, seconds=0.0):
        def call():
            with lock:
                ran.append(name)
            time.sleep(seconds)
            return name
        return call
    return ran, load


def test_turns_run_in_order_whatever_order_they_arrive_in():
    ran, load = _recorder()
    worker = OrderedWorker(max_wait=30)
    futures = [worker.submit(load(f"a{n}"), ("a", n)) for n in (2, 0, 3, 1)]
    assert [f.result(timeout=5) for f in futures] == ["a2", "a0", "a3", "a1"]
    assert ran == ["a0", "a1", "a2", "a3"]
    worker.close()


def test_callers_are_independent_and_loads_without_a_turn_do_not_wait():
    ran, load = _recorder()
    worker = OrderedWorker(max_wait=30)
    late = worker.submit(load("b1"), ("b", 1))  # waits for b0
    free = worker.submit(load("x"))
    first = worker.submit(load("a0"), ("a", 0))
    assert free.result(timeout=5) == "x" and first.result(timeout=5) == "a0"
    assert not late.done()
    worker.submit(load("b0"), ("b", 0)).result(timeout=5)
    assert late.result(timeout=5) == "b1"
    assert ran == ["x", "a0", "b0", "b1"]
    worker.close()


def test_one_load_at_a_time():
    running, most = [0], [0]
    lock = threading.Lock()

    def call():
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1

    worker = OrderedWorker()
    futures = [worker.submit(call, ("a", n)) for n in range(10)] + [worker.submit(call) for _ in range(5)]
    for f in futures:
        f.result(timeout=5)
    assert most[0] == 1
    worker.close()


def test_a_turn_that_never_comes_is_waited_for_at_most_max_wait():
    ran, load = _recorder()
    worker = OrderedWorker(max_wait=0.3, first_wait=0.3)
    worker.submit(load("a0"), ("a", 0)).result(timeout=5)
    began = time.monotonic()
    after_gap = worker.submit(load("a2"), ("a", 2))  # a1 was lost with its caller
    assert after_gap.result(timeout=5) == "a2"
    assert 0.25 <= time.monotonic() - began < 3
    # the lost turn arriving after all runs at once (the writer's gap check decides what it does)
    assert worker.submit(load("a1"), ("a", 1)).result(timeout=1) == "a1"
    assert worker.submit(load("a3"), ("a", 3)).result(timeout=1) == "a3"
    assert ran == ["a0", "a2", "a1", "a3"]
    worker.close()


def test_a_caller_first_seen_mid_count_waits_only_first_wait():
    """A restarted writer actor: its callers go on counting from where they were."""
    _, load = _recorder()
    worker = OrderedWorker(max_wait=30, first_wait=0.2)
    began = time.monotonic()
    assert worker.submit(load("a57"), ("a", 57)).result(timeout=5) == "a57"
    assert time.monotonic() - began < 5
    assert worker.submit(load("a58"), ("a", 58)).result(timeout=1) == "a58"
    worker.close()


def test_an_error_reaches_its_caller_and_the_next_turn_still_runs():
    _, load = _recorder()
    worker = OrderedWorker()

    def fail():
        raise ValueError("refused")

    bad = worker.submit(fail, ("a", 0))
    good = worker.submit(load("a1"), ("a", 1))
    with pytest.raises(ValueError, match="refused"):
        bad.result(timeout=5)
    assert good.result(timeout=5) == "a1"
    worker.close()


def test_close_runs_what_was_submitted_then_refuses_more():
    ran, load = _recorder()
    worker = OrderedWorker(max_wait=0.2)
    futures = [worker.submit(load(n, 0.01), ("a", n)) for n in range(5)]
    waiting = worker.submit(load("a9"), ("a", 9))
    worker.close()
    assert all(f.done() for f in futures) and waiting.result(timeout=0) == "a9"
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(load("late"))


def test_turns_count_per_writer_and_a_new_caller_starts_again_from_zero():
    turns = Turns("reader-1")
    assert [turns.next("pg"), turns.next("pg"), turns.next("ch"), turns.next("pg")] == [
        (turns.caller, 0), (turns.caller, 1), (turns.caller, 0), (turns.caller, 2)]
    restarted = Turns("reader-1")
    assert restarted.caller != turns.caller and restarted.caller.startswith("reader-1:")
    assert restarted.next("pg") == (restarted.caller, 0)

