"""Tests for treadle.internet.task: the test Clock, deferLater and LoopingCall."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import heapq
import importlib
import itertools
import logging
import math
import types
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from treadle.internet import _reactor
from treadle.internet._reactor import new_event_loop
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


def tick(*args: Any, **kw: Any) -> None:
    pass


class Ticker:
    def tick(self) -> None:
        pass


@pytest.mark.parametrize("which", ["treadle", "twisted"])
def test_looping_call_repr_as_twisted(which: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module: Any = (
            task_module if which == "treadle" else importlib.import_module("twisted.internet.task")
        )
    loop = module.LoopingCall(tick, 1, key="v")
    assert repr(loop) == "LoopingCall<None>(tick, *(1,), **{'key': 'v'})"
    loop.clock = module.Clock()
    loop.start(2.5)
    assert repr(module.LoopingCall(Ticker().tick)) == "LoopingCall<None>(Ticker.tick, *(), **{})"
    assert repr(loop) == "LoopingCall<2.5>(tick, *(1,), **{'key': 'v'})"
    loop.stop()


def test_looping_call_deferred_is_deprecated() -> None:
    loop, _ = make_loop(lambda: None)
    with pytest.warns(DeprecationWarning, match="start"):
        assert loop.deferred is None
    started = loop.start(1)
    with pytest.warns(DeprecationWarning):
        assert loop.deferred is started
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


# -- deferLater on the reactor: waiting in its heap of timed calls ---------------------------


def run_on_reactor(main: Callable[[Any], Any]) -> Any:
    """``main(reactor)`` on a fresh reactor's running loop; what it returns."""
    reactor = _reactor.Reactor()

    async def runner() -> Any:
        return await main(reactor)

    loop = new_event_loop()
    try:
        return loop.run_until_complete(runner())
    finally:
        loop.close()


def test_defer_later_on_the_reactor_runs_its_call_after_the_delay() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main(reactor: Any) -> tuple[Any, float, float]:
        var.set("scheduling")
        start = reactor.seconds()
        d = deferLater(reactor, 0.05, lambda a, b: (a + b, var.get()), 1, b=2)
        var.set("changed after")
        pending = reactor.getDelayedCalls()
        result = await d
        return result, reactor.seconds() - start, pending[0].getTime() - start

    result, waited, due = run_on_reactor(main)
    # The call ran in the context it was scheduled in, as callLater's calls do.
    assert result == (3, "scheduling")
    assert waited >= 0.05 and due == pytest.approx(0.05, abs=0.01)


def test_defer_later_on_the_reactor_is_listed_and_cancelled_like_a_delayed_call() -> None:
    async def main(reactor: Any) -> None:
        ran: list[int] = []
        d = deferLater(reactor, 30, ran.append, 1)
        out = results_of(d)
        (call,) = reactor.getDelayedCalls()
        assert isinstance(call, DelayedCall) and call.active()
        assert reactor.getDelayedCalls() == [call]  # the same object each time
        d.cancel()  # the Deferred's cancel cancels its call
        assert not call.active() and call.cancelled
        assert reactor.getDelayedCalls() == []
        assert isinstance(out[0], Failure) and out[0].check(CancelledError)
        with pytest.raises(AlreadyCancelled):
            call.cancel()
        assert ran == []

    run_on_reactor(main)


def test_defer_later_on_the_reactor_obeys_its_listed_delayed_call() -> None:
    async def main(reactor: Any) -> None:
        # Cancelling the listed call stops the call; as in Twisted, the Deferred never fires.
        stopped = deferLater(reactor, 30, lambda: "never")
        out = results_of(stopped)
        (call,) = reactor.getDelayedCalls()
        call.cancel()
        assert reactor.getDelayedCalls() == [] and out == []
        # Resetting it moves the call: from half a minute to now.
        moved = deferLater(reactor, 30, lambda: "moved")
        (call,) = reactor.getDelayedCalls()
        call.reset(0.01)
        assert await moved == "moved"
        assert call.called and not call.active()
        with pytest.raises(AlreadyCalled):
            call.delay(1)
        # Delaying it pushes the call back, behind another due in between.
        order: list[str] = []
        late = deferLater(reactor, 0.01, order.append, "delayed")
        (call,) = reactor.getDelayedCalls()
        call.delay(0.03)
        await deferLater(reactor, 0.02, order.append, "between")
        await late
        assert order == ["between", "delayed"]

    run_on_reactor(main)


def test_defer_later_uses_a_call_later_that_was_replaced() -> None:
    # A program (or a test) that intercepts the reactor's callLater sees deferLater's calls.
    async def main(reactor: Any) -> list[float]:
        seen: list[float] = []
        real = reactor.callLater

        def intercepting(delay: float, f: Any, *args: Any, **kw: Any) -> Any:
            seen.append(delay)
            return real(delay, f, *args, **kw)

        reactor.callLater = intercepting
        assert await deferLater(reactor, 0.01, lambda: "done") == "done"
        return seen

    assert run_on_reactor(main) == [0.01]


def test_defer_later_on_a_mock_clock_calls_its_call_later() -> None:
    from unittest import mock

    clock = mock.Mock()
    out = results_of(deferLater(clock, 5, lambda: "x"))
    clock.callLater.assert_called_once()
    delay, f, *args = clock.callLater.call_args.args
    assert delay == 5 and out == []
    f(*args)  # what the clock would run when the time comes
    assert out == ["x"]


def test_a_failing_defer_later_call_on_the_reactor_is_logged_and_spares_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Firing a Deferred a second time raises: the heap logs it and runs the calls after it.
    async def main(reactor: Any) -> str:
        early = deferLater(reactor, 0.01, lambda: "late")
        early.callback("early")  # fired by hand before its time
        return await deferLater(reactor, 0.02, lambda: "next")  # type: ignore[no-any-return]

    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        assert run_on_reactor(main) == "next"
    assert any("Unhandled error" in r.getMessage() for r in caplog.records)


# -- LoopingCall: counting, and one call per interval -----------------------------------------
#
# The expected calls below are those of Twisted's LoopingCall driven by its own Clock through
# the same steps (times and intervals exact in binary, so no rounding is involved).


def run_with_count(
    interval: float, now: bool, steps: list[Any], hold_second: bool = False
) -> list[tuple[float, int]]:
    """Drive ``LoopingCall.withCount`` on a Clock; return (time, count) of each call.

    A step is an amount to advance by, "reset", "fire" (the Deferred the second call returns
    if ``hold_second``), or ("set", t): the clock jumps to t without running anything, as if
    the loop were blocked.
    """
    log: list[tuple[float, int]] = []
    held: list[Deferred[None]] = []

    def counted(count: int) -> Deferred[None] | None:
        log.append((clock.seconds(), count))
        if hold_second and len(log) == 2:
            held.append(Deferred())
            return held[0]
        return None

    loop = LoopingCall.withCount(counted)
    clock = Clock()
    loop.clock = clock
    loop.start(interval, now=now)
    for step in steps:
        if step == "reset":
            loop.reset()
        elif step == "fire":
            held[0].callback(None)
        elif isinstance(step, tuple):
            clock.rightNow = step[1]
        else:
            clock.advance(step)
    loop.stop()
    return log


def test_with_count_counts_the_intervals_since_the_last_call() -> None:
    # Advancing 2.5 from 2 passes 3 and 4: one call at 4.5 for both. 9 stands for 7, 8, 9.
    assert run_with_count(1, True, [1, 1, 2.5, 0.5, 0.25, 0.75, 3]) == [
        (0, 1),
        (1, 1),
        (2, 1),
        (4.5, 2),
        (5, 1),
        (6, 1),
        (9, 3),
    ]
    assert run_with_count(0.25, True, [0.25] * 4 + [0.625, 0.125, 1.125]) == [
        (0, 1),
        (0.25, 1),
        (0.5, 1),
        (0.75, 1),
        (1, 1),
        (1.625, 2),
        (1.75, 1),
        (2.875, 4),
    ]


def test_with_count_not_now_counts_from_the_start() -> None:
    assert run_with_count(1, False, [0.5, 0.5, 1, 3.25, 0.75]) == [
        (1, 1),
        (2, 1),
        (5.25, 3),
        (6, 1),
    ]


def test_with_count_counts_the_intervals_a_deferred_was_pending() -> None:
    # The second call's Deferred is pending from 1 to 3.5: 2 and 3 are skipped, and the
    # call at 4 makes up for 2, 3 and 4.
    assert run_with_count(1, True, [1, 2.5, "fire", 0.5, 1], hold_second=True) == [
        (0, 1),
        (1, 1),
        (4, 3),
        (5, 1),
    ]
    # Fired on a time of the grid: the next call is a whole interval later.
    assert run_with_count(0.5, True, [0.5, 1.5, "fire", 0.5, 0.5], hold_second=True) == [
        (0, 1),
        (0.5, 1),
        (2.5, 4),
        (3, 1),
    ]


def test_with_count_after_reset() -> None:
    assert run_with_count(1, True, [0.5, "reset", 0.75, 0.25, 1, 1.5, "reset", 1, 0.5]) == [
        (0, 1),
        (1.5, 1),
        (2.5, 1),
        (4, 1),
        (5, 1),
    ]
    # Reset while overdue: the call missed at 1 (the clock jumped to 1.25) is counted.
    assert run_with_count(1, True, [0.5, ("set", 1.25), "reset", 1, ("set", 4.75), "reset", 1]) == [
        (0, 1),
        (2.25, 2),
        (5.75, 3),
    ]
    assert run_with_count(2, False, [1, "reset", 1.5, 0.5, 2]) == [(3, 1), (5, 1)]


def test_with_count_interval_zero_counts_one() -> None:
    counts: list[int] = []
    loop = LoopingCall.withCount(lambda n: counts.append(n) if len(counts) < 3 else loop.stop())
    clock = Clock()
    loop.clock = clock
    loop.start(0)
    clock.advance(5)
    assert counts == [1, 1, 1]
    assert not loop.running


def test_with_count_repr_names_the_function() -> None:
    def frame(count: int) -> None:
        pass

    assert "frame" in repr(LoopingCall.withCount(frame))


def test_a_time_of_the_grid_is_called_once_despite_rounding() -> None:
    # Reset at 0.02, so calls are due at 0.06, 0.1, ... 0.06 - 0.02 is a hair short of 0.04
    # in floating point, so the grid's next time looked a few 1e-18 s away, and a second
    # call was made for 0.06 at the next advance (0.08).
    times: list[float] = []
    loop, clock = make_loop(lambda: times.append(clock.seconds()))
    loop.start(0.04, now=False)
    clock.advance(0.02)
    loop.reset()
    clock.pump([0.04, 0.02, 0.02, 0.02, 0.02])
    assert times == [pytest.approx(0.06), pytest.approx(0.1), pytest.approx(0.14)]
    loop.stop()


@pytest.mark.parametrize("start", [0.0, 1_700_000_000.25, 1e6 + 1 / 3])
@pytest.mark.parametrize("interval", [0.1, 1 / 3, 0.04])
def test_advancing_by_the_interval_calls_once_per_advance(start: float, interval: float) -> None:
    # Sums of floating-point intervals drift from the grid by rounding, either way: every
    # advance by one interval still makes exactly one call.
    times: list[float] = []
    loop, clock = make_loop(lambda: times.append(clock.seconds()))
    clock.rightNow = start
    loop.start(interval)
    clock.pump([interval] * 300)
    assert len(times) == 301
    # Sub-steps that add up to the interval: one call per interval as well.
    clock.pump([interval / 7] * 7 * 30)
    assert 330 <= len(times) <= 331
    loop.stop()


# -- LoopingCall on the reactor, over a simulated event loop ----------------------------------


class FakeHandle:
    """A callback scheduled on a :class:`FakeLoop`."""

    def __init__(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """The part of an event loop the reactor's timers use, on a simulated clock.

    With ``ms_timers``, timers behave as libuv's (uvloop's): the loop's clock is kept in
    whole milliseconds, truncated, and a timer's delay is rounded to whole milliseconds from
    that clock, so it can fire up to 1.5 ms before the delay asked for. Otherwise timers fire
    on time, as the stdlib loop's. Every callback run takes ``cost_us`` microseconds.
    """

    def __init__(self, ms_timers: bool, cost_us: int = 20) -> None:
        self.ms_timers = ms_timers
        self.cost_us = cost_us
        # The simulated monotonic clock, in whole microseconds: 0.7 ms into a millisecond.
        self.now_us = 1_000_000_700
        self.ready: list[FakeHandle] = []
        self.timers: list[tuple[int, int, FakeHandle]] = []
        self.seq = 0
        self.callbacks_run = 0

    def is_closed(self) -> bool:
        return False

    def time(self) -> float:
        if self.ms_timers:
            return self.now_us // 1000 / 1000
        return self.now_us / 1e6

    def call_soon(self, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
        handle = FakeHandle(callback, args)
        self.ready.append(handle)
        return handle

    def call_later(
        self, delay: float, callback: Callable[..., Any], *args: Any, context: Any = None
    ) -> Any:
        if self.ms_timers:
            ms = round(max(delay, 0) * 1000)
            if ms == 0:
                return self.call_soon(callback, *args)
            when_us = (self.now_us // 1000 + ms) * 1000
        else:
            when_us = self.now_us + math.ceil(max(delay, 0) * 1e6)
        handle = FakeHandle(callback, args)
        self.seq += 1
        heapq.heappush(self.timers, (when_us, self.seq, handle))
        return handle

    def run_for(self, seconds: float) -> None:
        end_us = self.now_us + round(seconds * 1e6)
        while True:
            if not self.ready:
                while self.timers and self.timers[0][2].cancelled:
                    heapq.heappop(self.timers)
                if not self.timers or self.timers[0][0] > end_us:
                    break
                self.now_us = max(self.now_us, self.timers[0][0])
                while self.timers and self.timers[0][0] <= self.now_us:
                    self.ready.append(heapq.heappop(self.timers)[2])
            ready, self.ready = self.ready, []
            for handle in ready:
                if not handle.cancelled:
                    self.callbacks_run += 1
                    assert self.callbacks_run < 100_000, "the loop spins"
                    self.now_us += self.cost_us
                    handle.callback(*handle.args)


@pytest.mark.parametrize("ms_timers", [True, False], ids=["libuv-timers", "exact-timers"])
def test_looping_call_beside_a_busy_timer_is_called_once_per_interval(
    ms_timers: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A LoopingCall(1.0) run for 6.5 s beside a timer every 40 ms: called 7 times, at 0, 1,
    # ... 6 s, none before its time. The timer's calls fall 0.4 ms before each second, where
    # the reactor's heap, woken up for them, used to run the LoopingCall early (its 1 ms of
    # slack), and the LoopingCall, seeing its second not yet come by the wall clock, asked to
    # be called again a fraction of a millisecond later: which ran in the same pass, over
    # and over until the second had passed.
    loop = FakeLoop(ms_timers)
    # The wall clock, reactor.seconds(): not aligned with the loop's milliseconds.
    monkeypatch.setattr(
        _reactor,
        "time",
        types.SimpleNamespace(time=lambda: loop.now_us / 1e6 + 1_699_999_000.00037),
    )
    reactor = _reactor.Reactor()
    reactor._loop = loop  # type: ignore[assignment]
    times: list[float] = []
    ticks_early: list[float] = []

    def f() -> None:
        times.append(reactor.seconds())
        loop.now_us += 5  # the work done

    looping = LoopingCall(f)
    looping.clock = reactor
    looping.start(1.0)
    start = looping.starttime
    assert start is not None

    def tick(due: float) -> None:
        if reactor.seconds() < due:
            ticks_early.append(due - reactor.seconds())
        due += 0.04  # on a grid of its own, not drifting: 0.4 ms before each second
        reactor.callLater(due - reactor.seconds(), tick, due)

    first_tick = start + 0.04 - 0.0004
    reactor.callLater(first_tick - reactor.seconds(), tick, first_tick)
    loop.run_for(6.5)
    looping.stop()

    assert len(times) == 7, [t - start for t in times]
    for k, t in enumerate(times):
        assert start + k - 1e-6 <= t < start + k + 0.01
    assert ticks_early == []
    # Woken up early (libuv's timers, here before every tick), the heap waits for what is not
    # due yet with another timer of the loop's, rather than by turning the loop over and over
    # until it is: for 162 ticks and 7 calls, at most two wake-ups each.
    assert loop.callbacks_run <= 2 * (162 + 7), loop.callbacks_run


def test_looping_call_on_a_real_loop_is_called_once_per_interval(loop_kind: str) -> None:
    # The same on a running loop of either kind, briefly: a LoopingCall every 50 ms beside a
    # callLater chain every 3 ms, until its 8th interval. No call is early, none comes twice
    # in one interval; one may be skipped if the machine stalls the loop for an interval.
    from treadle.internet import reactor

    interval = 0.05
    last_slot = 7
    loop = asyncio.new_event_loop() if loop_kind == "asyncio" else new_event_loop()

    async def main() -> tuple[float, list[float]]:
        times: list[float] = []
        done = asyncio.Event()
        busy = True

        def f() -> None:
            times.append(reactor.seconds())
            assert looping.starttime is not None
            if times[-1] - looping.starttime >= last_slot * interval:
                done.set()

        def tick() -> None:
            if busy:
                reactor.callLater(0.003, tick)

        looping = LoopingCall(f)
        looping.start(interval)
        start = looping.starttime
        assert start is not None
        tick()
        try:
            await asyncio.wait_for(done.wait(), 10)
        finally:
            busy = False
            looping.stop()
        return start, times

    try:
        start, times = loop.run_until_complete(main())
    finally:
        loop.close()
    slots = [math.floor((t - start) / interval + 1e-9) for t in times]
    assert slots[0] == 0
    assert slots == sorted(set(slots)), slots  # one call per interval at most
    for previous, t in itertools.pairwise(times):
        # Each call no earlier than the time of the grid following the call before it.
        due_slot = math.floor((previous - start) / interval + 1e-9) + 1
        assert t >= start + due_slot * interval - 1e-6, (t - start, due_slot)
    assert slots[-1] >= last_slot


# -- Cooperator, cooperate, coiterate --------------------------------------------------------

from treadle.internet import task as task_module  # noqa: E402
from treadle.internet.task import (  # noqa: E402
    Cooperator,
    NotPaused,
    SchedulerStopped,
    TaskDone,
    TaskFailed,
    TaskStopped,
)


def stepping_cooperator(steps_per_turn: int = 1) -> tuple[Cooperator, Clock]:
    """A Cooperator whose turns run on a Clock and end after ``steps_per_turn`` steps."""
    clock = Clock()

    def predicate_factory() -> Callable[[], bool]:
        steps = itertools.count(1)
        return lambda: next(steps) >= steps_per_turn

    # A turn a second: Clock.advance(0) would run the turns a turn schedules as well.
    return Cooperator(predicate_factory, lambda f: clock.callLater(1, f)), clock


def recording(name: str, n: int, log: list[str]) -> Any:
    for i in range(n):
        log.append(f"{name}{i}")
        yield None


def test_coiterate_runs_to_the_end_and_fires_with_the_iterator() -> None:
    coop, clock = stepping_cooperator()
    log: list[str] = []
    iterator = recording("a", 3, log)
    results: list[Any] = []
    coop.coiterate(iterator).addCallback(results.append)
    assert log == []  # nothing before the first turn
    for _ in range(4):
        clock.advance(1)
    assert log == ["a0", "a1", "a2"] and results == [iterator]


def test_tasks_take_turns() -> None:
    coop, clock = stepping_cooperator(steps_per_turn=2)
    log: list[str] = []
    coop.cooperate(recording("a", 3, log))
    coop.cooperate(recording("b", 3, log))
    clock.advance(1)
    assert log == ["a0", "b0"]
    clock.advance(1)
    assert log == ["a0", "b0", "a1", "b1"]


def test_pause_resume_stop() -> None:
    coop, clock = stepping_cooperator()
    log: list[str] = []
    task = coop.cooperate(recording("a", 10, log))
    clock.advance(1)
    task.pause()
    task.pause()
    clock.advance(1)
    task.resume()
    clock.advance(1)
    assert log == ["a0"]  # paused twice: resumed once is still paused
    task.resume()
    clock.advance(1)
    assert log == ["a0", "a1"]
    with pytest.raises(NotPaused):
        task.resume()
    results: list[Any] = []
    task.whenDone().addErrback(results.append)
    task.stop()
    assert results[0].check(TaskStopped)
    with pytest.raises(TaskStopped):
        task.stop()
    with pytest.raises(TaskStopped):
        task.pause()
    late: list[Any] = []
    task.whenDone().addErrback(late.append)
    assert late[0].check(TaskStopped)


def test_a_finished_task_refuses_changes() -> None:
    coop, clock = stepping_cooperator()
    task = coop.cooperate(iter([]))
    clock.advance(1)
    with pytest.raises(TaskDone):
        task.pause()


def test_a_failing_iterator_fails_the_task() -> None:
    coop, clock = stepping_cooperator()

    def broken() -> Any:
        yield None
        raise ZeroDivisionError("step failed")

    task = coop.cooperate(broken())
    results: list[Any] = []
    task.whenDone().addErrback(results.append)
    clock.advance(1)
    clock.advance(1)
    assert results[0].check(ZeroDivisionError)
    with pytest.raises(TaskFailed):
        task.stop()


def test_a_yielded_deferred_pauses_the_task() -> None:
    coop, clock = stepping_cooperator()
    log: list[str] = []
    gate: Deferred[None] = Deferred()

    def waits() -> Any:
        log.append("before")
        yield gate
        log.append("after")

    results: list[Any] = []
    coop.coiterate(waits()).addCallback(results.append)
    for _ in range(3):
        clock.advance(1)
    assert log == ["before"] and clock.getDelayedCalls() == []  # nothing to do: no turns
    gate.callback(None)
    for _ in range(2):
        clock.advance(1)
    assert log == ["before", "after"] and len(results) == 1


def test_a_failed_yielded_deferred_fails_the_task() -> None:
    coop, clock = stepping_cooperator()
    results: list[Any] = []
    coop.coiterate(iter([fail(KeyError("gone"))])).addErrback(results.append)
    clock.advance(1)
    assert results[0].check(KeyError)


def test_stopping_the_cooperator_ends_every_task() -> None:
    coop, clock = stepping_cooperator()
    results: list[Any] = []
    for i in range(4):
        coop.cooperate(iter(range(10))).whenDone().addErrback(lambda f, i=i: results.append(i))
    coop.stop()
    # Every task, where Twisted's stop() skips every other one.
    assert sorted(results) == [0, 1, 2, 3]
    assert not coop.running and clock.getDelayedCalls() == []
    late: list[Any] = []
    coop.coiterate(iter(range(3))).addErrback(late.append)
    assert late[0].check(SchedulerStopped)


def test_a_cooperator_not_started_waits_for_start() -> None:
    clock = Clock()
    coop = Cooperator(scheduler=lambda f: clock.callLater(1, f), started=False)
    log: list[str] = []
    coop.cooperate(recording("a", 2, log))
    clock.advance(1)
    assert log == [] and not coop.running
    coop.start()
    assert coop.running
    clock.advance(1)
    assert log == ["a0", "a1"]


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_global_cooperate_runs_on_the_reactor(loop_kind: str) -> None:
    loop = asyncio.new_event_loop() if loop_kind == "asyncio" else new_event_loop()

    async def main() -> tuple[list[str], list[str]]:
        log: list[str] = []
        ticks: list[str] = []

        def tick() -> None:
            ticks.append("tick")

        _reactor.reactor.callLater(0, tick)
        first = task_module.coiterate(recording("a", 3, log))
        second = task_module.cooperate(recording("b", 3, log)).whenDone()
        await first
        await second
        return log, ticks

    try:
        log, ticks = loop.run_until_complete(asyncio.wait_for(main(), 10))
    finally:
        loop.close()
    assert sorted(log) == ["a0", "a1", "a2", "b0", "b1", "b2"] and ticks == ["tick"]


# -- react ------------------------------------------------------------------------------------

import subprocess  # noqa: E402
import sys  # noqa: E402

REACT_PROGRAM = """\
import sys
from twisted_or_treadle import task, defer

async def succeeding(reactor, word):
    await task.deferLater(reactor, 0.01, lambda: None)
    print("main ran with", word, flush=True)

def failing(reactor, word):
    return task.deferLater(reactor, 0.01, lambda: 1 / 0)

def exiting(reactor, word):
    d = defer.Deferred()
    reactor.callLater(0.01, d.errback, SystemExit(7))
    return d

task.react({"ok": succeeding, "fail": failing, "exit": exiting}[sys.argv[1]], ["hello"])
print("not reached")
"""


@pytest.mark.parametrize("library", ["twisted", "treadle"])
@pytest.mark.parametrize(("which", "code"), [("ok", 0), ("fail", 1), ("exit", 7)])
def test_react_exit_status_agrees_with_twisted(library: str, which: str, code: int) -> None:
    program = REACT_PROGRAM.replace(
        "from twisted_or_treadle import", f"from {library}.internet import"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, which], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == code, result.stderr
    assert "not reached" not in result.stdout
    if which == "ok":
        assert result.stdout == "main ran with hello\n"
    if which == "fail":
        assert "main function encountered error" in result.stderr
        assert "ZeroDivisionError" in result.stderr


class FakeReactor:
    """The reactor surface react() uses, run by hand."""

    def __init__(self) -> None:
        self.triggers: list[Callable[[], Any]] = []
        self.when_running: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.running = False
        self.stops = 0
        self.during_run: Callable[[], None] = lambda: None

    def addSystemEventTrigger(self, phase: str, event: str, f: Callable[[], Any]) -> None:
        self.triggers.append(f)

    def callWhenRunning(self, f: Callable[..., Any], *args: Any) -> None:
        if self.running:
            f(*args)
        else:
            self.when_running.append((f, args))

    def stop(self) -> None:
        from treadle.internet.error import ReactorNotRunning

        if not self.running:
            raise ReactorNotRunning()
        self.stops += 1
        self.running = False

    def run(self) -> None:
        self.running = True
        for f, args in self.when_running:
            f(*args)
        self.during_run()
        if self.running:  # stopped from outside (a signal): shutdown triggers run
            self.running = False
            for trigger in self.triggers:
                trigger()


def test_react_stops_the_reactor_once() -> None:
    fake = FakeReactor()
    with pytest.raises(SystemExit) as exit:
        task_module.react(lambda reactor: succeed("done"), _reactor=fake)
    assert exit.value.code == 0 and fake.stops == 1


def test_react_when_the_reactor_is_stopped_first() -> None:
    # The reactor stops (a signal), then main's Deferred fails during shutdown: no second
    # stop, and the failure decides the status.
    fake = FakeReactor()
    pending: Deferred[None] = Deferred()
    # Added while running, so after react's own trigger, as a program's would be.
    fake.during_run = lambda: fake.triggers.append(lambda: pending.errback(ValueError("late")))
    with pytest.raises(SystemExit) as exit:
        task_module.react(lambda reactor: pending, _reactor=fake)
    assert exit.value.code == 1 and fake.stops == 0


# -- issue 12: Twisted parity -----------------------------------------------------------------


def test_clock_and_its_calls_provide_twisteds_interfaces() -> None:
    from treadle.internet.interfaces import IDelayedCall, IReactorTime

    clock = Clock()
    assert IReactorTime.providedBy(clock)
    assert IDelayedCall.providedBy(clock.callLater(1, lambda: None))


def test_install_reactor_replaces_the_global_reactor_once() -> None:
    import subprocess
    import sys
    import textwrap

    program = textwrap.dedent(
        """
        from treadle.internet import reactor as original
        from treadle.internet.error import ReactorAlreadyInstalledError
        from treadle.internet.main import installReactor
        from treadle.internet.task import Clock, LoopingCall, react

        fake = Clock()
        installReactor(fake)
        from treadle.internet import reactor
        print(reactor is fake, LoopingCall(lambda: None).clock is fake)
        try:
            installReactor(original)
        except ReactorAlreadyInstalledError:
            print("refused")
        from treadle.internet import asyncioreactor
        try:
            asyncioreactor.install()
        except ReactorAlreadyInstalledError as e:
            print(e)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n") == [
        "True True",
        "refused",
        "reactor already installed (by treadle.internet.main.installReactor())",
        "",
    ]


def test_connection_reasons_of_internet_main() -> None:
    from treadle.internet import error, main

    assert main.CONNECTION_DONE.check(error.ConnectionDone)
    assert main.CONNECTION_LOST.check(error.ConnectionLost)


def test_clock_offers_twisteds_api() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from twisted.internet.task import Clock as TwistedClock
    public = {name for name in dir(TwistedClock) if not name.startswith("_")}
    ours = Clock()
    assert sorted(name for name in public if not hasattr(ours, name)) == []
    ours.callLater(1, lambda: None)
    ours.pump([0.5, 0.5])
    assert ours.seconds() == ours.rightNow == 1.0
    assert ours.getDelayedCalls() == []


@pytest.mark.parametrize("which", ["treadle", "twisted"])
def test_defer_later_and_with_count_as_twisted(which: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module: Any = (
            task_module if which == "treadle" else importlib.import_module("twisted.internet.task")
        )
    clock = module.Clock()
    d = module.deferLater(clock, 2)  # no callable: fires with None
    counts: list[int] = []
    loop = module.LoopingCall.withCount(counts.append)
    loop.clock = clock
    loop.start(1, now=False)
    seen: list[Any] = []
    for step in (1, 1, 3):
        clock.advance(step)
        seen.append((d.called, list(counts)))
    loop.stop()
    assert d.result is None
    assert seen == [(False, [1]), (True, [1, 1]), (True, [1, 1, 3])]


def test_react_starts_an_async_main_once_the_reactor_runs() -> None:
    fake = FakeReactor()
    started: list[bool] = []

    async def main(reactor: Any) -> None:
        started.append(reactor.running)

    with pytest.raises(SystemExit) as exit:
        task_module.react(main, _reactor=fake)
    assert exit.value.code == 0 and started == [True]
