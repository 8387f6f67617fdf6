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
* A :class:`LoopingCall` never calls its function twice for one interval (nor does one made
  by ``withCount`` skip a call as counting 0), where Twisted's can when rounding puts a call a
  hair before the time it was due for.
* The global :class:`Cooperator` runs its turns with ``callLater(0)`` and its ``stop()``
  ends every task (see :mod:`treadle.internet._cooperator`, where it lives).
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import inspect
import logging
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, Protocol, cast

from zope.interface import implementer

from treadle.internet._cooperator import (
    CooperativeTask,
    Cooperator,
    NotPaused,
    SchedulerError,
    SchedulerStopped,
    TaskDone,
    TaskFailed,
    TaskFinished,
    TaskStopped,
    coiterate,
    cooperate,
)
from treadle.internet._deferred import _PASS, Deferred, ensureDeferred, maybeDeferred, succeed
from treadle.internet.base import DelayedCall
from treadle.internet.error import ReactorNotRunning
from treadle.internet.interfaces import IReactorTime
from treadle.python.failure import Failure

__all__ = [
    "Clock",
    "CooperativeTask",
    "Cooperator",
    "LoopingCall",
    "NotPaused",
    "SchedulerError",
    "SchedulerStopped",
    "TaskDone",
    "TaskFailed",
    "TaskFinished",
    "TaskStopped",
    "coiterate",
    "cooperate",
    "deferLater",
    "react",
]

#: Where an error of a timed call is logged, as the reactor logs its calls' errors.
_error_log = logging.getLogger("treadle.error")


class _ReactorTime(Protocol):
    """What ``deferLater`` and ``LoopingCall`` need of a clock: the reactor or a Clock."""

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., Any], /, *args: Any, **kw: Any
    ) -> DelayedCall: ...


def _due_time(call: DelayedCall) -> float:
    return call.time


@implementer(IReactorTime)
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
        if kw:
            d._kw = kw
    # On treadle's reactor the Deferred waits in the reactor's heap of timed calls itself;
    # elsewhere (a test Clock, a reactor of another kind) through the clock's callLater.
    # (``is not True``: a mock standing for the clock answers any name with a truthy mock.)
    schedule = getattr(clock, "_call_owner_later", None)
    if schedule is None or schedule(d, delay) is not True:
        d._handle = clock.callLater(delay, _fire_later, d)
    return d


class _LaterDeferred(Deferred[Any]):
    """The Deferred of :func:`deferLater`, holding its own call and timer.

    Twisted's closures (a callback running ``callable``, a canceller closing over the timer,
    a bound ``callback``) would be some twenty objects per pending call, each surviving until
    the timer fires; slots on the Deferred itself hold the same state.

    ``_handle`` is what the Deferred waits on: the DelayedCall of ``clock.callLater``, or, on
    treadle's reactor, its own entry in the reactor's heap of timed calls (see
    ``Reactor._call_owner_later``), which spares a DelayedCall per pending call. The reactor's
    ``getDelayedCalls()`` then shows a DelayedCall made when asked for (``_view``), kept in
    step with the Deferred: cancelling, resetting or delaying it acts on the pending call.
    """

    __slots__ = ("_args", "_callable", "_context", "_handle")

    # Rarely set (keyword arguments; a DelayedCall asked for through getDelayedCalls()), so
    # class attributes rather than slots, stored in the instance dictionary when they are:
    # 16 bytes less for each of the many calls pending at once.
    _kw: dict[str, Any] | None = None
    _view: DelayedCall | None = None

    def __init__(self, canceller: Callable[[Deferred[Any]], None]) -> None:
        super().__init__(canceller)
        self._callable: Callable[..., Any] | None = None
        self._args: tuple[Any, ...] = ()
        # A DelayedCall, an entry of the reactor's heap, or None once fired or cancelled.
        self._handle: Any = None
        # The context the call runs in (None for a fresh, empty one), on the reactor's heap.
        self._context: contextvars.Context | None = None

    def _due(self) -> None:
        """The reactor's heap says the time came (the heap already cleared ``_handle``)."""
        view = self._view
        if view is not None:
            view.called = True
        context, self._context = self._context, None
        if context is None:
            context = contextvars.Context()
        try:
            context.run(_fire_later, self)
        except Exception:
            # As a failing callLater call is: logged, and the heap goes on with the others.
            _error_log.exception("Unhandled error in %r", self)

    def _delayed_call(self) -> DelayedCall:
        """The DelayedCall standing for this pending call in ``reactor.getDelayedCalls()``."""
        view = self._view
        if view is None:
            entry: Any = self._handle
            view = self._view = DelayedCall(
                entry.when, _fire_later, (self,), {}, _cancel_view, _reset_view, entry.heap.now
            )
        return view


def _fire_later(d: _LaterDeferred) -> None:
    d._handle = None  # the timer refers to d: no cycle is left behind
    callable = d._callable
    if callable is not None:
        # As in Twisted, ``callable`` runs as the first callback of the chain: its exception
        # becomes a Failure and a Deferred it returns is waited for.
        args, kw = d._args, d._kw
        d._callable = None
        if kw is not None:
            d._kw = None
        d._args = ()
        d.callbacks.insert(0, ((_call_ignoring_result, (callable, args, kw), None), _PASS))
    d.callback(None)


def _call_ignoring_result(
    _: object, callable: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any] | None
) -> Any:
    return callable(*args) if kw is None else callable(*args, **kw)


def _cancel_later(d: Deferred[Any]) -> None:
    assert isinstance(d, _LaterDeferred)
    handle = d._handle
    if handle is None:
        return
    if isinstance(handle, DelayedCall):
        d._handle = None
        handle.cancel()
    else:  # its entry in the reactor's heap
        _leave_heap(d)
        view = d._view
        if view is not None:
            view.cancelled = True
    d._callable = None
    if d._kw is not None:
        d._kw = None
    d._args = ()


def _cancel_view(view: DelayedCall) -> None:
    """``cancel()`` of the DelayedCall shown for a pending deferLater: the call never runs
    (and, as in Twisted, the Deferred never fires)."""
    _leave_heap(view.args[0])


def _leave_heap(d: _LaterDeferred) -> None:
    """Take ``d``'s pending call out of the reactor's heap (nothing if it ran already)."""
    entry: Any = d._handle
    if entry is not None:
        entry.heap.discard(d)
    d._context = None


def _reset_view(view: DelayedCall) -> None:
    """``reset()``/``delay()`` of the DelayedCall shown for a pending deferLater."""
    d: _LaterDeferred = view.args[0]
    entry: Any = d._handle
    heap = entry.heap
    heap.discard(d)
    heap.add_at(d, view.time)


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

    Calls happen at ``starttime + k * interval`` for k = 1, 2, ... by the clock's
    ``seconds()``, not before (the reactor runs no call before its time). When a run takes
    longer than the interval (or the loop is late), the intervals missed are skipped: the
    next call happens at the next of those times after the run, not right away. No time of
    that grid is called twice.
    """

    __slots__ = (
        "_clock",
        "_counting",
        "_deferred",
        "_due_slot",
        "_last_time",
        "_slot",
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
        self._counting = False
        # Places on the grid (k in starttime + k * interval): the one the pending call is
        # for, and the one the last call was made for (when none was: -1 if started `now`,
        # else 0), with the clock's time of that call.
        self._due_slot = 0
        self._slot = 0
        self._last_time: float | None = None

    @classmethod
    def withCount(cls, countCallable: Callable[[int], Any]) -> LoopingCall:
        """Make a LoopingCall that tells its function how many intervals have gone by.

        ``countCallable(count)`` is called where ``f()`` would be, ``count`` being the number
        of intervals that have elapsed since its last call (since the loop started, for the
        first call): normally 1, more when calls were missed because the loop was blocked, or
        ``countCallable`` ran or its Deferred was pending for longer than an interval. With
        an interval of 0 it is always 1.

        Args:
            countCallable: Called with the count as its only argument; it may return a
                Deferred, as ``f`` may.

        Returns:
            A LoopingCall, not started, whose ``f`` is ``countCallable``.
        """
        loop = cls(countCallable)
        loop._counting = True
        return loop

    @property
    def clock(self) -> _ReactorTime:
        """The clock calls are scheduled with; the global reactor unless set (tests: a Clock)."""
        if self._clock is None:
            # Imported here: the reactor module is loaded only by those who use it (and an
            # object installed with main.installReactor is found).
            from treadle.internet import reactor

            self._clock = cast(_ReactorTime, reactor)
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
        self._last_time = None
        self._due_slot = 0
        # A call right away stands for the interval that ends now: it counts as one.
        self._slot = -1 if now else 0
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
            now = self.starttime = self.clock.seconds()
            interval = self.interval
            last = self._last_time
            # The last call's place on the new grid, for the next count: truncated towards
            # zero as Twisted's count is (so a call less than an interval back is at 0).
            if last is None or not interval:
                self._slot = 0
            else:
                self._slot = int((last - now) / interval)
            self._schedule_from(now)

    def __call__(self) -> None:
        """Run ``f`` once and schedule the next run (used by the clock; not for users)."""
        self.call = None
        count = self._take_slot()
        if not self._counting:
            d = maybeDeferred(self.f, *self.a, **self.kw)
        elif count > 0:
            d = maybeDeferred(self.f, count)
        else:
            # Only a clock set back gets here: as with Twisted, no interval has gone by, so
            # the function is not called, and the loop goes on.
            d = succeed(None)
        d.addCallbacks(self._ran, self._failed)

    def _take_slot(self) -> int:
        """Record this call's place on the grid; return how many intervals it makes up."""
        interval = self.interval
        if not interval:
            return 1
        now = self.clock.seconds()
        # The call runs no earlier than its DelayedCall's time, yet rounding can leave that
        # a hair short of the time of the grid it is for: that place is the floor.
        slot = max(self._place(now)[0], self._due_slot)
        count = slot - self._slot
        if count > 0 or not self._counting:
            self._slot = slot
            self._last_time = now
        return count

    def _place(self, when: float) -> tuple[int, float]:
        """Return the intervals elapsed from ``starttime`` to ``when``, and the time to the next.

        Args:
            when: A time of the clock.
        """
        interval = self.interval
        assert interval and self.starttime is not None
        elapsed = when - self.starttime
        # The remainder is exact; the quotient is made to agree with it.
        until = interval - elapsed % interval
        return round((elapsed - interval + until) / interval), until

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

    def _schedule_from(self, now: float) -> None:
        """Schedule the next run at the first time of the grid after ``now``.

        Args:
            now: The clock's present time.
        """
        interval = self.interval
        if not interval:
            self.call = self.clock.callLater(0, self)
            return
        elapsed, delay = self._place(now)
        slot = elapsed + 1
        if now + delay == now:
            # Too close to tell apart from `now`: `now` is on that time of the grid, and the
            # next one is a whole interval away.
            slot += 1
            delay = interval
        if slot == self._slot:
            # `now` is a hair short of the time of the grid the last call was made for, by
            # rounding (its DelayedCall's time is a sum): that time must not be called twice,
            # so `now` is taken for it, as above. (A full interval from the exact time of the
            # grid could fall a hair after a test clock advanced by intervals.)
            slot += 1
            delay = interval
        self._due_slot = slot
        self.call = self.clock.callLater(delay, self)

    @property
    def deferred(self) -> Deferred[LoopingCall] | None:
        """The Deferred :meth:`start` returned, while running (deprecated, as in Twisted).

        Use the Deferred returned by :meth:`start` instead.
        """
        warnings.warn(
            "LoopingCall.deferred is deprecated; use the Deferred returned by start() instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._deferred

    def __repr__(self) -> str:
        # Twisted's form: the interval, the function's qualified name, its arguments.
        f = self.f
        name = getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or _safe(f)
        return f"LoopingCall<{self.interval!r}>({name}, *{_safe(self.a)}, **{_safe(self.kw)})"


def _safe(obj: object) -> str:
    """``repr(obj)``, never raising (a repr may be broken)."""
    try:
        return repr(obj)
    except Exception:
        return f"<{type(obj).__name__} object at 0x{id(obj):x} (repr failed)>"


def react(main: Callable[..., Any], argv: Iterable[Any] = (), _reactor: Any = None) -> NoReturn:
    """Run ``main(reactor, *argv)`` until its result is ready, then exit the process.

    The way to write a client or a one-off job: ``main`` returns a Deferred or a coroutine
    (an ``async def``, whose body starts once the reactor runs); the reactor runs until it
    completes, is stopped exactly once, and the process exits with status 0 on success and 1
    on failure (the failure is logged to ``treadle.error``, "main function encountered
    error"). A ``SystemExit`` from ``main``
    exits with its code. If the reactor is stopped first (a signal), the process exits once
    it has stopped, with the same rule applied to ``main``'s result if it has one by then
    (0 otherwise).

    Args:
        main: Called with the reactor and the items of ``argv``.
        argv: The further arguments of ``main``.
        _reactor: The reactor to run (tests only); the global one when None.

    Raises:
        SystemExit: Always, at the end, with the exit status.
    """
    if _reactor is None:
        from treadle.internet import reactor as global_reactor

        _reactor = global_reactor
    # The reactor picks (and installs) its loop now, so that a coroutine ``main`` returns
    # is scheduled on the loop the reactor will run rather than on another one.
    getattr(_reactor, "loop", None)
    outcome = main(_reactor, *argv)
    if inspect.iscoroutine(outcome):
        # Its body starts once the reactor runs (Twisted's starts at once): a coroutine may
        # then await asyncio futures from its first line, which need a running loop.
        finished: Deferred[Any] = Deferred()
        _reactor.callWhenRunning(_start_main, outcome, finished)
    else:
        finished = ensureDeferred(outcome)
    exit_code: Any = 0
    stopping = False

    def on_shutdown() -> None:
        nonlocal stopping
        stopping = True

    _reactor.addSystemEventTrigger("before", "shutdown", on_shutdown)

    def settle(result: object, stop_reactor: bool) -> None:
        nonlocal exit_code
        if stop_reactor:
            with contextlib.suppress(ReactorNotRunning):
                _reactor.stop()
        if isinstance(result, Failure):
            if isinstance(result.value, SystemExit):
                exit_code = result.value.code
            else:
                from treadle.python import log

                log.err(result, "main function encountered error")
                exit_code = 1

    def finish(result: object) -> None:
        if stopping:
            settle(result, False)
        else:
            _reactor.callWhenRunning(settle, result, True)

    finished.addBoth(finish)
    _reactor.run()
    sys.exit(exit_code)


def _start_main(coroutine: Any, finished: Deferred[Any]) -> None:
    ensureDeferred(coroutine).chainDeferred(finished)
