"""The deadline heap shared by reactor.callLater and the connections' timeouts."""

from __future__ import annotations

import gc
import weakref

from treadle.internet._timers import TimerHeap
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
