"""Time-based helpers: ``deferLater``, ``LoopingCall`` and the test ``Clock``.

``twisted.internet.task`` ports to this module. :class:`Clock` stands in for the reactor in
tests: nothing happens until the test calls :meth:`Clock.advance`, so timing code is tested
without sleeping.

Differences from Twisted, on purpose:

* Misusing a :class:`LoopingCall` (starting it twice, stopping or resetting it when it is not
  running) raises ``RuntimeError`` rather than failing an ``assert``, so it is caught under
  ``python -O`` as well.
* :meth:`DelayedCall.reset <treadle.internet.base.DelayedCall.reset>` on a :class:`Clock`
  call puts it after the calls already due at its new time, as a fresh ``callLater`` would.
* ``LoopingCall.withCount`` and ``task.react``/``cooperate`` are not provided.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from treadle.internet.base import DelayedCall
from treadle.internet.defer import _PASS, Deferred, maybeDeferred
from treadle.python.failure import Failure

__all__ = ["Clock", "LoopingCall", "deferLater"]


class _ReactorTime(Protocol):
    """What ``deferLater`` and ``LoopingCall`` need of a clock: the reactor or a Clock."""

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., Any], /, *args: Any, **kw: Any
    ) -> DelayedCall: ...


def _due_time(call: DelayedCall) -> float:
    return call.time


class Clock:
    """A deterministic clock for tests, with the reactor's ``seconds``/``callLater``.

    Time starts at 0 and moves only when :meth:`advance` (or :meth:`pump`) is called.

    Attributes:
        rightNow: The current time, in seconds.
        calls: The pending calls, soonest first (same as :meth:`getDelayedCalls`).
    """

    def __init__(self) -> None:
        self.rightNow = 0.0
        self.calls: list[DelayedCall] = []
        # Bound once, shared by every call scheduled on this clock.
        self._remover: Callable[[DelayedCall], None] = self._remove
        self._rescheduler: Callable[[DelayedCall], None] = self._reschedule
        self._now: Callable[[], float] = self.seconds

    def seconds(self) -> float:
        """Return the current (fake) time in seconds."""
        return self.rightNow

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> DelayedCall:
        """Schedule ``callable(*args, **kw)`` to run ``delay`` seconds from now.

        Calls due at the same time run in the order they were scheduled.

        Args:
            delay: Seconds from now.
            callable: What to call.
            *args: Its positional arguments.
            **kw: Its keyword arguments.

        Returns:
            The :class:`~treadle.internet.base.DelayedCall`, to cancel, reset or delay it.
        """
        call = DelayedCall(
            self.rightNow + delay, callable, args, kw, self._remover, self._rescheduler, self._now
        )
        self._insert(call)
        return call

    def _insert(self, call: DelayedCall) -> None:
        # insort_right keeps the calls due at the same time in scheduling order.
        bisect.insort_right(self.calls, call, key=_due_time)

    def _remove(self, call: DelayedCall) -> None:
        self.calls.remove(call)

    def _reschedule(self, call: DelayedCall) -> None:
        self.calls.remove(call)
        self._insert(call)

    def getDelayedCalls(self) -> list[DelayedCall]:
        """Return the pending calls, soonest first."""
        return self.calls

    def advance(self, amount: float) -> None:
        """Move time forward by ``amount`` seconds and run every call that has come due.

        Calls run in time order; a call scheduled while advancing that is already due runs
        in this same advance. As with Twisted's Clock, an exception raised by a call
        propagates out of ``advance``; the calls after it stay pending.

        Args:
            amount: Seconds to move forward.
        """
        self.rightNow += amount
        calls = self.calls
        while calls and calls[0].time <= self.rightNow:
            call = calls.pop(0)
            call.called = True
            call.func(*call.args, **call.kw)

    def pump(self, timings: Iterable[float]) -> None:
        """Advance by each amount of ``timings`` in turn.

        Args:
            timings: Amounts of seconds.
        """
        for amount in timings:
            self.advance(amount)


def deferLater(
    clock: _ReactorTime,
    delay: float,
    callable: Callable[..., Any] | None = None,
    *args: Any,
    **kw: Any,
) -> Deferred[Any]:
    """Return a Deferred that fires after ``delay`` seconds with ``callable``'s result.

    Args:
        clock: The reactor, or a :class:`Clock` in tests.
        delay: Seconds to wait.
        callable: Called as ``callable(*args, **kw)`` when the time comes; its result (or
            exception, or the Deferred it returns) becomes the Deferred's. None fires with None.
        *args: Its positional arguments.
        **kw: Its keyword arguments.

    Returns:
        A Deferred. Cancelling it cancels the scheduled call; it then fails with
        :class:`~treadle.internet.defer.CancelledError`.
    """

    d = _LaterDeferred(_cancel_later)
    if callable is not None:
        d._callable = callable
        d._args = args
        d._kw = kw or None
    d._delayed = clock.callLater(delay, _fire_later, d)
    return d


class _LaterDeferred(Deferred[Any]):
    """The Deferred of :func:`deferLater`, holding its own call and timer.

    Twisted's closures (a callback running ``callable``, a canceller closing over the timer,
    a bound ``callback``) would be some twenty objects per pending call, each surviving until
    the timer fires; slots on the Deferred itself hold the same state.
    """

    __slots__ = ("_args", "_callable", "_delayed", "_kw")

    def __init__(self, canceller: Callable[[Deferred[Any]], None]) -> None:
        super().__init__(canceller)
        self._callable: Callable[..., Any] | None = None
        self._args: tuple[Any, ...] = ()
        self._kw: dict[str, Any] | None = None
        self._delayed: DelayedCall | None = None


def _fire_later(d: _LaterDeferred) -> None:
    d._delayed = None  # the timer refers to d: no cycle is left behind
    callable = d._callable
    if callable is not None:
        # As in Twisted, ``callable`` runs as the first callback of the chain: its exception
        # becomes a Failure and a Deferred it returns is waited for.
        args, kw = d._args, d._kw
        d._callable = d._kw = None
        d._args = ()
        d.callbacks.insert(0, ((_call_ignoring_result, (callable, args, kw), None), _PASS))
    d.callback(None)


def _call_ignoring_result(
    _: object, callable: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any] | None
) -> Any:
    return callable(*args) if kw is None else callable(*args, **kw)


def _cancel_later(d: Deferred[Any]) -> None:
    assert isinstance(d, _LaterDeferred)
    delayed, d._delayed = d._delayed, None
    if delayed is not None:
        delayed.cancel()
        d._callable = d._kw = None
        d._args = ()


class LoopingCall:
    """Call a function every ``interval`` seconds.

    Args:
        f: The function; if it returns a Deferred (or awaitable), the next call is scheduled
            only once that has fired.
        *a: Its positional arguments.
        **kw: Its keyword arguments.

    Attributes:
        f, a, kw: What is called.
        running: True between :meth:`start` and :meth:`stop` (or a failure of ``f``).
        interval: The interval given to :meth:`start`, or None before.
        call: The pending DelayedCall of the next run, if any.
        starttime: When :meth:`start` or :meth:`reset` was last called.

    When a run takes longer than the interval, the intervals missed are skipped: the next
    call happens at the next multiple of ``interval`` after ``starttime``, not right away.
    """

    __slots__ = (
        "_clock",
        "_deferred",
        "a",
        "call",
        "f",
        "interval",
        "kw",
        "running",
        "starttime",
    )

    def __init__(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        self.f = f
        self.a = a
        self.kw = kw
        self.running = False
        self.interval: float | None = None
        self.call: DelayedCall | None = None
        self.starttime: float | None = None
        self._deferred: Deferred[LoopingCall] | None = None
        self._clock: _ReactorTime | None = None

    @property
    def clock(self) -> _ReactorTime:
        """The clock calls are scheduled with; the global reactor unless set (tests: a Clock)."""
        if self._clock is None:
            # Imported here: the reactor module is loaded only by those who use it.
            from treadle.internet._reactor import reactor

            self._clock = reactor
        return self._clock

    @clock.setter
    def clock(self, clock: _ReactorTime) -> None:
        self._clock = clock

    def start(self, interval: float, now: bool = True) -> Deferred[LoopingCall]:
        """Start calling ``f`` every ``interval`` seconds.

        Args:
            interval: Seconds between calls; 0 means as often as possible (once per reactor
                iteration or clock advance).
            now: Call ``f`` right away rather than after the first interval.

        Returns:
            A Deferred that fires with this LoopingCall when :meth:`stop` is called, or fails
            with ``f``'s failure if ``f`` raises or its Deferred fails (which stops the loop).

        Raises:
            RuntimeError: It is already running.
            ValueError: ``interval`` is negative.
        """
        if self.running:
            raise RuntimeError("Tried to start an already running LoopingCall.")
        if interval < 0:
            raise ValueError("interval must be >= 0")
        self.running = True
        # The Deferred is made before the first call, which may already stop or fail the loop.
        deferred = self._deferred = Deferred()
        self.starttime = self.clock.seconds()
        self.interval = interval
        if now:
            self()
        else:
            self._schedule_from(self.starttime)
        return deferred

    def stop(self) -> None:
        """Stop calling ``f``; the Deferred from :meth:`start` fires with this LoopingCall.

        If ``f``'s Deferred is still pending, the Deferred from :meth:`start` fires once it has.

        Raises:
            RuntimeError: It is not running.
        """
        if not self.running:
            raise RuntimeError("Tried to stop a LoopingCall that was not running.")
        self.running = False
        if self.call is not None:
            self.call.cancel()
            self.call = None
            self._fire_stopped()

    def reset(self) -> None:
        """Restart the interval from now: the next call is one full ``interval`` away.

        Raises:
            RuntimeError: It is not running.
        """
        if not self.running:
            raise RuntimeError("Tried to reset a LoopingCall that was not running.")
        if self.call is not None:
            self.call.cancel()
            self.call = None
            self.starttime = self.clock.seconds()
            self._schedule_from(self.starttime)

    def __call__(self) -> None:
        """Run ``f`` once and schedule the next run (used by the clock; not for users)."""
        self.call = None
        d = maybeDeferred(self.f, *self.a, **self.kw)
        d.addCallbacks(self._ran, self._failed)

    def _ran(self, _: object) -> None:
        if self.running:
            self._schedule_from(self.clock.seconds())
        else:
            self._fire_stopped()

    def _failed(self, failure: Failure) -> None:
        self.running = False
        d, self._deferred = self._deferred, None
        if d is not None:
            d.errback(failure)

    def _fire_stopped(self) -> None:
        d, self._deferred = self._deferred, None
        if d is not None:
            d.callback(self)

    def _schedule_from(self, when: float) -> None:
        """Schedule the next run at the first interval boundary after ``when``."""
        self.call = self.clock.callLater(self._delay_from(when), self)

    def _delay_from(self, when: float) -> float:
        interval = self.interval
        assert interval is not None and self.starttime is not None
        if interval == 0:
            return 0.0
        # Align to the grid starttime + k * interval, skipping the boundaries already passed.
        until_next = interval - ((when - self.starttime) % interval)
        if when + until_next == when:
            # So small next to `when` that adding it changes nothing: we sit on a boundary
            # already, so wait for the following one instead of spinning.
            return interval
        return until_next

    def __repr__(self) -> str:
        name = getattr(self.f, "__qualname__", repr(self.f))
        state = "running" if self.running else "stopped"
        return f"<LoopingCall {name} every {self.interval}s ({state})>"
