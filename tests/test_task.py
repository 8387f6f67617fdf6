"""Tests for treadle.internet.task: the test Clock, deferLater and LoopingCall."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from treadle.internet.base import DelayedCall
from treadle.internet.defer import CancelledError, Deferred, fail, succeed
from treadle.internet.error import AlreadyCalled, AlreadyCancelled
from treadle.internet.task import Clock, LoopingCall, deferLater
from treadle.python.failure import Failure

# -- Clock ------------------------------------------------------------------------------------


def test_clock_starts_at_zero_and_advances() -> None:
    clock = Clock()
    assert clock.seconds() == 0
    clock.advance(1.5)
    clock.pump([0.5, 1])
    assert clock.seconds() == 3


def test_call_later_runs_when_due_and_not_before() -> None:
    clock = Clock()
    calls: list[tuple[Any, ...]] = []
    call = clock.callLater(2, lambda *a, **kw: calls.append((a, kw, clock.seconds())), 1, k=2)
    assert isinstance(call, DelayedCall)
    assert call.getTime() == 2
    clock.advance(1.9)
    assert calls == []
    assert call.active()
    clock.advance(0.5)
    assert calls == [((1,), {"k": 2}, 2.4)]  # calls see the time advanced to
    assert call.called
    assert not call.active()
    assert clock.getDelayedCalls() == []


def test_calls_run_in_time_order() -> None:
    clock = Clock()
    order: list[str] = []
    clock.callLater(3, order.append, "third")
    clock.callLater(1, order.append, "first")
    clock.callLater(2, order.append, "second")
    assert [c.getTime() for c in clock.getDelayedCalls()] == [1, 2, 3]
    clock.advance(10)
    assert order == ["first", "second", "third"]


def test_calls_at_the_same_time_run_in_scheduling_order() -> None:
    clock = Clock()
    order: list[int] = []
    for i in range(20):
        clock.callLater(1, order.append, i)
    clock.advance(1)
    assert order == list(range(20))


def test_call_added_during_advance_that_is_due_runs_in_the_same_advance() -> None:
    clock = Clock()
    order: list[str] = []

    def first() -> None:
        order.append("first")
        clock.callLater(0, order.append, "now")
        clock.callLater(0.5, order.append, "later")

    clock.callLater(1, first)
    clock.advance(2)
    # Calls see the time advanced to (2), so "now" is due at 2 and "later" at 2.5.
    assert order == ["first", "now"]
    assert [c.getTime() for c in clock.getDelayedCalls()] == [2.5]


def test_cancel_reset_and_delay() -> None:
    clock = Clock()
    order: list[str] = []
    a = clock.callLater(1, order.append, "a")
    b = clock.callLater(2, order.append, "b")
    c = clock.callLater(3, order.append, "c")
    a.cancel()
    assert a not in clock.getDelayedCalls()
    with pytest.raises(AlreadyCancelled):
        a.cancel()
    c.reset(0.5)
    b.delay(5)
    clock.advance(4)
    assert order == ["c"]
    clock.advance(3)
    assert order == ["c", "b"]
    with pytest.raises(AlreadyCalled):
        b.cancel()


def test_exception_propagates_out_of_advance() -> None:
    clock = Clock()
    order: list[str] = []
    clock.callLater(1, lambda: 1 / 0)
    clock.callLater(2, order.append, "after")
    with pytest.raises(ZeroDivisionError):
        clock.advance(3)
    assert order == []
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(0)
    assert order == ["after"]


# -- deferLater -------------------------------------------------------------------------------


def results_of(d: Deferred[Any]) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def test_defer_later_fires_with_the_result() -> None:
    clock = Clock()
    d = deferLater(clock, 3, lambda a, b: a + b, 1, b=2)
    out = results_of(d)
    clock.advance(2.9)
    assert out == []
    clock.advance(0.1)
    assert out == [3]


def test_defer_later_without_callable_fires_with_none() -> None:
    clock = Clock()
    out = results_of(deferLater(clock, 1))
    clock.advance(1)
    assert out == [None]


def test_defer_later_callable_failing_or_returning_a_deferred() -> None:
    clock = Clock()
    failing = results_of(deferLater(clock, 1, lambda: 1 / 0))
    inner: Deferred[str] = Deferred()
    chained = results_of(deferLater(clock, 1, lambda: inner))
    clock.advance(1)
    assert isinstance(failing[0], Failure)
    assert failing[0].check(ZeroDivisionError)
    assert chained == []
    inner.callback("inner")
    assert chained == ["inner"]


def test_cancel_defer_later() -> None:
    clock = Clock()
    called: list[int] = []
    d = deferLater(clock, 1, called.append, 1)
    out = results_of(d)
    d.cancel()
    assert clock.getDelayedCalls() == []
    assert isinstance(out[0], Failure)
    assert out[0].check(CancelledError)
    clock.advance(2)
    assert called == []


# -- LoopingCall ------------------------------------------------------------------------------


def make_loop(f: Any, *a: Any, **kw: Any) -> tuple[LoopingCall, Clock]:
    loop = LoopingCall(f, *a, **kw)
    clock = Clock()
    loop.clock = clock
    return loop, clock


def test_looping_call_runs_every_interval() -> None:
    times: list[float] = []
    loop, clock = make_loop(lambda: times.append(clock.seconds()))
    d = loop.start(1.0)
    assert loop.running
    assert loop.interval == 1.0
    assert times == [0]
    clock.pump([1, 1, 1])
    assert times == [0, 1, 2, 3]
    out = results_of(d)
    loop.stop()
    assert out == [loop]
    assert not loop.running
    assert clock.getDelayedCalls() == []


def test_looping_call_passes_arguments() -> None:
    seen: list[tuple[int, str]] = []
    loop, _ = make_loop(lambda a, b: seen.append((a, b)), 1, b="x")
    loop.start(1)
    assert seen == [(1, "x")]
    loop.stop()


def test_looping_call_not_now_waits_one_interval() -> None:
    times: list[float] = []
    loop, clock = make_loop(lambda: times.append(clock.seconds()))
    loop.start(2, now=False)
    assert times == []
    clock.advance(2)
    assert times == [2]
    loop.stop()


def test_looping_call_failure_stops_and_errbacks() -> None:
    count: list[int] = []

    def f() -> None:
        count.append(1)
        if len(count) == 2:
            raise ValueError("second call failed")

    loop, clock = make_loop(f)
    out = results_of(loop.start(1))
    clock.advance(1)
    assert isinstance(out[0], Failure)
    assert out[0].check(ValueError)
    assert not loop.running
    clock.pump([1, 1])
    assert len(count) == 2


def test_looping_call_failure_on_the_first_call() -> None:
    loop, _ = make_loop(lambda: fail(KeyError("first")))
    out = results_of(loop.start(1))
    assert isinstance(out[0], Failure)
    assert out[0].check(KeyError)


def test_looping_call_waits_for_a_returned_deferred() -> None:
    pending: list[Deferred[None]] = []
    times: list[float] = []

    def f() -> Deferred[None]:
        times.append(clock.seconds())
        d: Deferred[None] = Deferred()
        pending.append(d)
        return d

    loop, clock = make_loop(f)
    loop.start(1)
    clock.advance(5)
    assert times == [0]  # still waiting on the first Deferred
    pending[0].callback(None)
    assert times == [0]
    clock.advance(1)
    assert times == [0, 6]
    loop.stop()


def test_looping_call_skips_missed_intervals_on_the_grid() -> None:
    pending: list[Deferred[None]] = []
    times: list[float] = []

    def f() -> Deferred[None] | None:
        times.append(clock.seconds())
        if len(times) == 2:
            d: Deferred[None] = Deferred()
            pending.append(d)
            return d
        return None

    loop, clock = make_loop(f)
    loop.start(1)  # runs at 0; next at 1
    clock.advance(1)  # second run starts at 1 and takes until 3.5
    clock.advance(2.5)
    pending[0].callback(None)
    (next_call,) = clock.getDelayedCalls()
    assert next_call.getTime() == 4  # 2 and 3 skipped: back on the 1-second grid
    clock.advance(0.5)
    assert times == [0, 1, 4]
    loop.stop()


def test_looping_call_with_slow_clock_advance_stays_on_the_grid() -> None:
    times: list[float] = []
    loop, clock = make_loop(lambda: times.append(clock.seconds()))
    loop.start(1)
    clock.advance(2.5)  # one call, at 2.5, for the missed 1 and 2
    clock.advance(0.5)
    assert times == [0, 2.5, 3]
    loop.stop()


def test_stop_from_inside_the_call() -> None:
    holder: list[LoopingCall] = []

    def f() -> None:
        holder[0].stop()

    loop, clock = make_loop(f)
    holder.append(loop)
    out = results_of(loop.start(1))
    assert out == [loop]
    assert clock.getDelayedCalls() == []


def test_stop_while_the_returned_deferred_is_pending() -> None:
    pending: Deferred[None] = Deferred()
    loop, clock = make_loop(lambda: pending)
    out = results_of(loop.start(1))
    loop.stop()
    assert out == []
    pending.callback(None)
    assert out == [loop]
    assert clock.getDelayedCalls() == []


def test_interval_zero_runs_on_every_advance() -> None:
    count: list[int] = []
    loop, clock = make_loop(lambda: count.append(1) if len(count) < 3 else loop.stop())
    loop.start(0)
    clock.advance(0)
    clock.advance(0)
    clock.advance(0)
    assert len(count) == 3
    assert not loop.running


def test_reset_restarts_the_interval() -> None:
    times: list[float] = []
    loop, clock = make_loop(lambda: times.append(clock.seconds()))
    loop.start(2)
    clock.advance(1.5)
    loop.reset()
    clock.advance(1.5)
    assert times == [0]
    clock.advance(0.5)
    assert times == [0, 3.5]
    loop.stop()


def test_misuse_raises() -> None:
    loop, _ = make_loop(lambda: None)
    with pytest.raises(RuntimeError):
        loop.stop()
    with pytest.raises(RuntimeError):
        loop.reset()
    with pytest.raises(ValueError):
        loop.start(-1)
    loop.start(1)
    with pytest.raises(RuntimeError):
        loop.start(1)
    loop.stop()


def test_looping_call_restarts_after_stop() -> None:
    times: list[float] = []
    loop, clock = make_loop(lambda: times.append(clock.seconds()))
    loop.start(1)
    loop.stop()
    clock.advance(5)
    loop.start(1, now=False)
    clock.advance(1)
    assert times == [0, 6]
    loop.stop()


def test_looping_call_clock_defaults_to_the_reactor() -> None:
    from treadle.internet import reactor

    assert LoopingCall(lambda: None).clock is reactor


def test_looping_call_repr() -> None:
    def tick() -> None:
        pass

    loop, _ = make_loop(tick)
    assert "tick" in repr(loop)
    assert "stopped" in repr(loop)
    loop.start(1)
    assert "running" in repr(loop)
    loop.stop()


def test_looping_call_accepts_succeed() -> None:
    loop, clock = make_loop(lambda: succeed(None))
    loop.start(1)
    clock.advance(1)
    assert len(clock.getDelayedCalls()) == 1
    loop.stop()


def test_defer_later_leaves_no_reference_cycle() -> None:
    # A pending deferLater is held by its timer only: once fired or cancelled, reference
    # counting alone frees it (10,000 pending responses must not wait for the cyclic GC).
    clock = Clock()
    fired = deferLater(clock, 1, lambda: 1)
    cancelled = deferLater(clock, 1, lambda: 2)
    cancelled.addErrback(lambda f: None)
    refs = [weakref.ref(fired), weakref.ref(cancelled)]
    gc.disable()
    try:
        cancelled.cancel()
        del fired, cancelled
        clock.advance(1)
        assert [ref() for ref in refs] == [None, None]
    finally:
        gc.enable()


def test_defer_later_cancelled_from_its_own_callable_keeps_the_result() -> None:
    # As in Twisted, the callable runs as the Deferred's first callback: the Deferred has
    # fired by then, so cancelling it there changes nothing.
    clock = Clock()
    d = deferLater(clock, 1, lambda: d.cancel() or "done")
    out = results_of(d)
    clock.advance(1)
    assert out == ["done"]
