"""The deadline heap shared by reactor.callLater and the connections' timeouts."""

from __future__ import annotations

import asyncio
import gc
import math
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from treadle.internet._timers import MAX_WAIT, SoonBatch, TimerHeap
from treadle.internet.task import Clock


class Owner:
    """Records when it was due, on the clock driving the heap."""

    def __init__(self, clock: Clock, log: list[tuple[str, float]], name: str) -> None:
        self._handle: object = None
        self.clock = clock
        self.log = log
        self.name = name

    def _due(self) -> None:
        self.log.append((self.name, self.clock.seconds()))


def heap_on(clock: Clock) -> TimerHeap:
    return TimerHeap(clock, clock.callLater, clock.seconds)


def test_owners_run_when_due_in_order() -> None:
    clock = Clock()
    heap = heap_on(clock)
    log: list[tuple[str, float]] = []
    late, first, second, early = (Owner(clock, log, n) for n in ("late", "a", "b", "early"))
    heap.add(late, 5)
    heap.add(first, 2)
    heap.add(second, 2)
    heap.add(early, 1)  # earlier than the armed timer: it is re-armed
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(0.999)
    assert log == []
    clock.advance(0.001)
    assert log == [("early", 1.0)]
    clock.advance(1)
    assert log == [("early", 1.0), ("a", 2.0), ("b", 2.0)]
    assert early._handle is None and late._handle is not None
    clock.advance(10)
    assert [name for name, _ in log] == ["early", "a", "b", "late"]
    assert clock.getDelayedCalls() == []  # nothing left: no timer armed


def test_a_discarded_owner_is_not_run_nor_kept() -> None:
    clock = Clock()
    heap = heap_on(clock)
    log: list[tuple[str, float]] = []
    gone = Owner(clock, log, "gone")
    kept = Owner(clock, log, "kept")
    heap.add(gone, 1)
    heap.add(kept, 1)
    heap.discard(gone)
    ref = weakref.ref(gone)
    del gone
    gc.collect()
    assert ref() is None  # the heap dropped its reference at once
    clock.advance(1)
    assert log == [("kept", 1.0)]


def test_rescheduling_runs_once_at_the_new_time() -> None:
    clock = Clock()
    heap = heap_on(clock)
    log: list[tuple[str, float]] = []
    owner = Owner(clock, log, "x")
    heap.add(owner, 1)
    heap.discard(owner)
    heap.add(owner, 3)
    clock.advance(1)
    assert log == []
    clock.advance(2)
    clock.advance(10)
    assert log == [("x", 3.0)]


def test_many_discarded_entries_are_dropped_from_the_heap() -> None:
    clock = Clock()
    heap = heap_on(clock)
    log: list[tuple[str, float]] = []
    owners = [Owner(clock, log, str(i)) for i in range(1000)]
    for owner in owners:
        heap.add(owner, 60)
    for owner in owners[:990]:
        heap.discard(owner)
    assert len(heap) < 100
    clock.advance(60)
    assert sorted(int(name) for name, _ in log) == list(range(990, 1000))


def test_an_owner_scheduling_another_from_its_call() -> None:
    clock = Clock()
    heap = heap_on(clock)
    log: list[tuple[str, float]] = []
    follower = Owner(clock, log, "follower")

    class Chaining(Owner):
        def _due(self) -> None:
            super()._due()
            heap.add(follower, 0)  # due now: runs in the same pass

    heap.add(Chaining(clock, log, "first"), 1)
    clock.advance(1)
    assert log == [("first", 1.0), ("follower", 1.0)]


def test_an_owner_added_while_the_heap_runs_does_not_hold_back_an_earlier_one() -> None:
    # An owner run at 0.98 schedules another for 1.02: the timer must still wake up at 1.0
    # for the owner already waiting, not at 1.02 for the newcomer.
    clock = Clock()
    heap = heap_on(clock)
    log: list[tuple[str, float]] = []
    later = Owner(clock, log, "later")

    class Chaining(Owner):
        def _due(self) -> None:
            super()._due()
            heap.add(later, 0.04)

    heap.add(Owner(clock, log, "waiting"), 1.0)
    heap.add(Chaining(clock, log, "chaining"), 0.98)
    clock.advance(0.98)
    clock.advance(0.02)
    assert log == [("chaining", 0.98), ("waiting", 1.0)]
    clock.advance(0.02)
    assert log[-1] == ("later", pytest.approx(1.02))


def test_slack_is_not_granted_to_an_owner_added_in_the_same_pass() -> None:
    # With slack, an entry a little ahead runs with the one that woke the heap; but an owner
    # that schedules itself again a little ahead must wait for the next pass, or it would run
    # over and over while the clock stands still (as libuv's does within a millisecond).
    clock = Clock()
    heap = TimerHeap(clock, clock.callLater, clock.seconds, 0.001)
    log: list[tuple[str, float]] = []

    class Repeating(Owner):
        def _due(self) -> None:
            super()._due()
            if len(log) < 50:
                heap.add(self, 0.0005)

    heap.add(Repeating(clock, log, "repeating"), 1.0)
    heap.add(Owner(clock, log, "ahead"), 1.0005)
    clock.advance(1.0)
    assert log == [("repeating", 1.0), ("ahead", 1.0)]
    clock.advance(0.0005)
    assert len(log) == 3


def libuv_call_later(clock: Clock, wake_ups: list[float]) -> Callable[..., Any]:
    """A ``call_later`` firing as libuv's timers: whole milliseconds from a truncated clock."""

    def call_later(delay: float, callback: Callable[[], None]) -> Any:
        def wake_up() -> None:
            wake_ups.append(clock.seconds())
            callback()

        truncated = math.floor(round(clock.seconds() * 1e6) / 1000) / 1000
        fires_at = truncated + round(delay * 1000) / 1000
        return clock.callLater(max(0.0, fires_at - clock.seconds()), wake_up)

    return call_later


def test_without_slack_nothing_runs_before_its_time_when_the_timer_fires_early() -> None:
    clock = Clock()
    clock.advance(0.0007)
    wake_ups: list[float] = []
    heap = TimerHeap(clock, libuv_call_later(clock, wake_ups), clock.seconds, 0.0, 0.001)
    log: list[tuple[str, float]] = []
    heap.add_at(Owner(clock, log, "x"), 0.0107)
    heap.add_at(Owner(clock, log, "y"), 0.0112)
    while clock.calls and len(wake_ups) < 10:
        clock.advance(clock.calls[0].time - clock.seconds())
    # The loop's timer fires at 0.010, 0.7 ms early: nothing runs then. The heap asks to be
    # woken up a whole millisecond later (a shorter timer would be a ready callback, the
    # loop spinning until 0.0107), and runs both at 0.011 and 0.012.
    assert [round(t, 4) for t in wake_ups] == [0.01, 0.011, 0.012]
    assert [(name, round(t, 4)) for name, t in log] == [("x", 0.011), ("y", 0.012)]
    assert all(t >= due for (_, t), due in zip(log, (0.0107, 0.0112), strict=True))


def test_add_at_keeps_the_time_given() -> None:
    clock = Clock()
    heap = heap_on(clock)
    log: list[tuple[str, float]] = []
    owner = Owner(clock, log, "x")
    heap.add_at(owner, 2.5)
    assert owner._handle.when == 2.5
    clock.advance(2.4)
    assert log == []
    clock.advance(0.1)
    assert log == [("x", 2.5)]


class SoonOwner:
    """Records that it ran; raises if told to."""

    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log = log
        self.name = name
        self.fail = fail

    def _run_soon(self) -> None:
        self.log.append(self.name)
        if self.fail:
            raise ValueError(self.name)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh event loop of the test's own, closed after it."""
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def recording_call_soon(
    loop: asyncio.AbstractEventLoop,
) -> tuple[list[object], Callable[[Callable[[], object]], object]]:
    """``loop.call_soon``, and the list of the callbacks it was given."""
    scheduled: list[object] = []

    def call_soon(callback: Callable[[], object]) -> object:
        scheduled.append(callback)
        return loop.call_soon(callback)

    return scheduled, call_soon


def test_a_soon_batch_runs_a_turn_s_owners_in_order_from_one_loop_callback(
    loop: asyncio.AbstractEventLoop,
) -> None:
    scheduled, call_soon = recording_call_soon(loop)

    log: list[str] = []
    batch = SoonBatch(call_soon)
    for name in "abc":
        batch.add(SoonOwner(log, name))
    assert log == [] and len(scheduled) == 1
    loop.run_until_complete(asyncio.sleep(0))
    assert log == ["a", "b", "c"]
    batch.add(SoonOwner(log, "d"))  # a later turn schedules its own callback
    loop.run_until_complete(asyncio.sleep(0))
    assert log == ["a", "b", "c", "d"] and len(scheduled) == 2


def test_a_soon_batch_called_with_a_callback_is_the_loops_call_soon(
    loop: asyncio.AbstractEventLoop,
) -> None:
    ran: list[str] = []
    handle = SoonBatch(loop.call_soon)(lambda: ran.append("x"))
    assert isinstance(handle, asyncio.Handle)
    loop.run_until_complete(asyncio.sleep(0))
    assert ran == ["x"]


def test_a_discarded_soon_owner_does_not_run(loop: asyncio.AbstractEventLoop) -> None:
    log: list[str] = []
    batch = SoonBatch(loop.call_soon)
    first, last = SoonOwner(log, "first"), SoonOwner(log, "last")
    batch.add(first)
    batch.add(last)
    batch.discard(first)  # not the last added: kept (running it twice is harmless)
    batch.discard(last)
    loop.run_until_complete(asyncio.sleep(0))
    assert log == ["first"]


def test_a_failing_soon_owner_is_reported_and_the_rest_run_at_the_next_turn(
    loop: asyncio.AbstractEventLoop,
) -> None:
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    log: list[str] = []
    batch = SoonBatch(loop.call_soon)
    batch.add(SoonOwner(log, "a"))
    batch.add(SoonOwner(log, "b", fail=True))
    batch.add(SoonOwner(log, "c"))
    loop.run_until_complete(asyncio.sleep(0))
    loop.run_until_complete(asyncio.sleep(0))
    assert log == ["a", "b", "c"]
    assert [str(e["exception"]) for e in errors] == ["b"]


def batch_on_a_still_clock(
    call_soon: Callable[[Callable[[], object]], object], start: float, on_loop: bool = True
) -> tuple[list[float], SoonBatch]:
    """A batch whose clock reads ``now[0]`` (the list returned), moved only by the test."""
    now = [start]
    return now, SoonBatch(call_soon, on_loop=on_loop, now=lambda: now[0])


def test_bounded_owners_run_at_once_once_the_first_waited_max_wait(
    loop: asyncio.AbstractEventLoop,
) -> None:
    now, batch = batch_on_a_still_clock(loop.call_soon, 100.0)
    log: list[str] = []
    batch.add_bounded(SoonOwner(log, "a"))
    now[0] += MAX_WAIT / 2
    batch.add_bounded(SoonOwner(log, "b"))
    assert log == []  # a turn of fast callbacks: all wait for its end
    now[0] += MAX_WAIT
    batch.add_bounded(SoonOwner(log, "c"))
    assert log == ["a", "b", "c"]  # a slow turn: they ran at once
    batch.add_bounded(SoonOwner(log, "d"))  # the rest of the turn waits afresh
    assert log == ["a", "b", "c"]
    loop.run_until_complete(asyncio.sleep(0))
    assert log == ["a", "b", "c", "d"]


def test_owners_that_need_their_callback_over_wait_for_the_turn_however_slow(
    loop: asyncio.AbstractEventLoop,
) -> None:
    now, batch = batch_on_a_still_clock(loop.call_soon, 0.0)
    log: list[str] = []
    batch.add(SoonOwner(log, "held"))  # a response written, maybe to be finished next
    batch.add_bounded(SoonOwner(log, "a"))
    now[0] += 2 * MAX_WAIT
    batch.add(SoonOwner(log, "held too"))
    batch.add_bounded(SoonOwner(log, "b"))
    assert log == ["a", "b"]
    loop.run_until_complete(asyncio.sleep(0))
    assert log == ["a", "b", "held", "held too"]


def test_one_loop_callback_serves_both_kinds_of_owner(loop: asyncio.AbstractEventLoop) -> None:
    scheduled, call_soon = recording_call_soon(loop)

    log: list[str] = []
    batch = SoonBatch(call_soon, on_loop=True)
    batch.add(SoonOwner(log, "plain"))
    batch.add_bounded(SoonOwner(log, "bounded"))
    loop.run_until_complete(asyncio.sleep(0))
    assert log == ["bounded", "plain"] and len(scheduled) == 1


def test_a_bounded_owner_failing_in_an_early_run_is_reported_by_the_loop_not_its_caller(
    loop: asyncio.AbstractEventLoop,
) -> None:
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    now, batch = batch_on_a_still_clock(loop.call_soon, 0.0)
    log: list[str] = []
    batch.add_bounded(SoonOwner(log, "a", fail=True))
    now[0] += 2 * MAX_WAIT
    batch.add_bounded(SoonOwner(log, "b"))  # runs both, raises nothing here
    assert log == ["a", "b"]
    loop.run_until_complete(asyncio.sleep(0))
    assert [str(e["exception"]) for e in errors] == ["a"]


def test_a_soon_batch_on_a_test_clock_has_no_wait_to_bound(
    loop: asyncio.AbstractEventLoop,
) -> None:
    now, batch = batch_on_a_still_clock(loop.call_soon, 0.0, on_loop=False)
    log: list[str] = []
    batch.add_bounded(SoonOwner(log, "a"))
    now[0] += 10 * MAX_WAIT
    batch.add_bounded(SoonOwner(log, "b"))
    assert log == []  # the test's next advance runs them
    loop.run_until_complete(asyncio.sleep(0))
    assert log == ["a", "b"]


def test_turn_numbers_hold_within_a_turn_and_for_at_most_max_wait(
    loop: asyncio.AbstractEventLoop,
) -> None:
    scheduled, call_soon = recording_call_soon(loop)
    now, batch = batch_on_a_still_clock(call_soon, 0.0)
    first = batch.turn()
    now[0] += MAX_WAIT / 2
    assert batch.turn() == first and len(scheduled) == 1
    now[0] += MAX_WAIT
    second = batch.turn()
    assert second != first  # a turn lasting longer than MAX_WAIT
    loop.run_until_complete(asyncio.sleep(0))
    third = batch.turn()
    assert third not in (first, second) and len(scheduled) == 2  # the next turn
