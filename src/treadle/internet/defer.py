"""``Deferred``: Twisted's promise of a result, with callbacks run synchronously.

``twisted.internet.defer`` ports to this module. A :class:`Deferred` is fired once, with
:meth:`~Deferred.callback` or :meth:`~Deferred.errback`; its callbacks then run at once, in the
order they were added, each one's return value becoming the next one's argument. Exceptions
switch to the errback chain as :class:`~treadle.python.failure.Failure` objects, and a callback that
returns another Deferred pauses the chain until that one fires.

Deferreds meet asyncio in both directions: ``await d`` works in any coroutine,
:meth:`Deferred.asFuture` and :meth:`Deferred.fromFuture` convert, and :func:`ensureDeferred`
runs a coroutine as an asyncio Task seen as a Deferred. Cancellation crosses the boundary as
well: a cancelled future becomes a :class:`CancelledError` failure, and a Deferred failing with
:class:`CancelledError` cancels the future it was converted to (so an awaiting coroutine sees
``asyncio.CancelledError`` and unwinds as asyncio code expects).

Differences from Twisted, on purpose:

* ``KeyboardInterrupt`` and ``SystemExit`` raised by a callback propagate instead of becoming a
  Failure, so Ctrl-C and ``sys.exit()`` are not swallowed into an errback chain.
* Cancelling a Deferred made by :meth:`Deferred.fromFuture` (and so by :func:`ensureDeferred`)
  cancels the future and fires the Deferred with :class:`CancelledError` right away, as
  ``cancel()`` promises; Twisted waits for the future to finish cancelling. Whatever the future
  ends with afterwards is ignored, except an error, which is logged.
* A Deferred that is paused when a chained Deferred hands it a result keeps that result until it
  is unpaused, while the rest of the chain carries on (Twisted stops the whole walk there).
* ``callback()`` with a Deferred raises ``TypeError`` and a callback returning its own Deferred
  fails the chain with ``TypeError`` (Twisted uses assertions and a deprecation warning).
* :class:`TimeoutError` also subclasses the built-in ``TimeoutError``, so asyncio-style
  ``except TimeoutError`` catches :meth:`Deferred.addTimeout` timeouts.
* :meth:`Deferred.fromFuture` of a future that is already done fires at once, and
  ``await`` of a fired Deferred returns (or raises) without creating a Future.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import contextvars
import functools
import inspect
import logging
import reprlib
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any, Generic, NoReturn, ParamSpec, Protocol, TypeVar

from treadle.python.failure import Failure

__all__ = [
    "AlreadyCalledError",
    "CancelledError",
    "Deferred",
    "DeferredList",
    "FirstError",
    "NotACoroutineError",
    "TimeoutError",
    "ensureDeferred",
    "fail",
    "gatherResults",
    "inlineCallbacks",
    "maybeDeferred",
    "returnValue",
    "succeed",
]

_T = TypeVar("_T")
_P = ParamSpec("_P")

_log = logging.getLogger("treadle.error")

# Exceptions a callback may raise that must end the process rather than become a Failure.
_PROPAGATE = (KeyboardInterrupt, SystemExit)


class AlreadyCalledError(Exception):
    """``callback()`` or ``errback()`` was called on a Deferred that had already fired."""


class CancelledError(Exception):
    """The Deferred was cancelled (see :meth:`Deferred.cancel`).

    Unlike ``asyncio.CancelledError`` this is an ``Exception``, as in Twisted, so errbacks see it
    like any other failure. The asyncio boundary converts between the two.
    """


class TimeoutError(builtins.TimeoutError):
    """A Deferred given :meth:`Deferred.addTimeout` did not fire in time.

    Args:
        timeout: The timeout, in seconds.
        what: What timed out, for the message.

    Attributes:
        timeout: The timeout, in seconds.
    """

    def __init__(self, timeout: float, what: str = "Deferred") -> None:
        # A single argument keeps OSError from reading it as (errno, strerror).
        super().__init__(f"{what} timed out after {timeout} seconds")
        self.timeout = timeout


class NotACoroutineError(TypeError):
    """:func:`ensureDeferred` was given something that is neither awaitable nor a Deferred."""


class FirstError(Exception):
    """The first failure among the Deferreds of a :class:`DeferredList` or :func:`gatherResults`.

    Args:
        failure: The Failure of the Deferred that failed.
        index: Its position in the list given.

    Attributes:
        subFailure: The Failure of the Deferred that failed.
        index: Its position in the list given.
    """

    def __init__(self, failure: Failure, index: int) -> None:
        super().__init__(failure, index)
        self.subFailure = failure
        self.index = index

    def __repr__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure.value!r}]"

    def __str__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure}]"


class _Cancellable(Protocol):
    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class _Scheduler(Protocol):
    def callLater(
        self, delay: float, callable: Callable[..., Any], /, *args: Any, **kw: Any
    ) -> _Cancellable: ...


class _UnhandledFailure:
    """Logs a Failure still unhandled when the Deferred holding it is garbage-collected.

    It lives only while a Deferred's chain has stopped on a Failure, so that an ordinary
    Deferred carries no finaliser: ``__del__`` here runs when its Deferred goes away.
    """

    __slots__ = ("fail_result",)

    def __init__(self) -> None:
        self.fail_result: Failure | None = None

    def __del__(self) -> None:
        failure = self.fail_result
        if failure is None:
            return
        # Logging may already be torn down at interpreter exit; a finaliser must not raise.
        with contextlib.suppress(Exception):
            _log.error("Unhandled error in Deferred:\n%s", failure.getTraceback().rstrip("\n"))


def _continue(result: object, waiter: Deferred[Any]) -> None:
    """Marker callback: hand the result on to ``waiter`` (never actually called)."""
    raise AssertionError("the chaining marker is handled by _run_callbacks")  # pragma: no cover


# A callback entry: ((callback, args, kwargs), (errback, args, kwargs)).
_Step = tuple[Callable[..., Any], tuple[Any, ...], "dict[str, Any] | None"]
_Entry = tuple[_Step, _Step]


def _passthrough(result: object) -> object:
    return result


# Shared by every one-sided entry: a pending request's Deferred should cost few allocations.
_PASS: _Step = (_passthrough, (), None)


class Deferred(Generic[_T]):
    """A result that is not there yet, with the callbacks that will process it.

    Args:
        canceller: Called with the Deferred by :meth:`cancel` if it has not fired yet; it should
            stop the work and may fire the Deferred itself. Without one, :meth:`cancel` just
            errbacks with :class:`CancelledError` and the next ``callback()``/``errback()`` of the
            abandoned work is ignored.

    Attributes:
        called: True once ``callback()`` or ``errback()`` was called.
        paused: How many :meth:`pause` calls (or chained Deferreds) are holding callbacks back.
        result: The current result; only present once fired. None after the result was handed
            on to a chained Deferred or to an awaiting coroutine.
        callbacks: The callback pairs not run yet.
    """

    __slots__ = (
        "__weakref__",
        "_canceller",
        "_chained_to",
        "_debug_info",
        "_running_callbacks",
        "_suppress_already_called",
        "callbacks",
        "called",
        "paused",
        "result",
    )

    result: Any

    def __init__(self, canceller: Callable[[Deferred[Any]], None] | None = None) -> None:
        self.callbacks: list[_Entry] = []
        self.called = False
        self.paused = 0
        self._canceller = canceller
        self._chained_to: Deferred[Any] | None = None
        self._debug_info: _UnhandledFailure | None = None
        self._running_callbacks = False
        self._suppress_already_called = False

    # -- adding callbacks -------------------------------------------------------------------

    def addCallbacks(
        self,
        callback: Callable[..., Any],
        errback: Callable[..., Any] | None = None,
        callbackArgs: tuple[Any, ...] = (),
        callbackKeywords: dict[str, Any] | None = None,
        errbackArgs: tuple[Any, ...] = (),
        errbackKeywords: dict[str, Any] | None = None,
    ) -> Deferred[Any]:
        """Add a callback and an errback at the same point of the chain.

        Only one of the two runs: ``callback`` if the result at that point is a success,
        ``errback`` if it is a :class:`~treadle.python.failure.Failure`. Whatever it returns
        (or raises) becomes the next result. If the Deferred has already fired, it runs now.

        Args:
            callback: Called as ``callback(result, *callbackArgs, **callbackKeywords)``.
            errback: Called as ``errback(failure, *errbackArgs, **errbackKeywords)``; None
                passes failures on unchanged.
            callbackArgs: Extra positional arguments for ``callback``.
            callbackKeywords: Extra keyword arguments for ``callback``.
            errbackArgs: Extra positional arguments for ``errback``.
            errbackKeywords: Extra keyword arguments for ``errback``.

        Returns:
            This Deferred, so calls can be chained.
        """
        self.callbacks.append(
            (
                (callback, callbackArgs, callbackKeywords),
                _PASS if errback is None else (errback, errbackArgs, errbackKeywords),
            )
        )
        if self.called:
            self._run_callbacks()
        return self

    def addCallback(self, callback: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
        """Add a callback for success results; failures pass it by.

        Args:
            callback: Called as ``callback(result, *args, **kw)``.
            *args: Extra positional arguments.
            **kw: Extra keyword arguments.

        Returns:
            This Deferred.
        """
        entry: _Step = (callback, args, kw or None)
        self.callbacks.append((entry, _PASS))
        if self.called:
            self._run_callbacks()
        return self

    def addErrback(self, errback: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
        """Add an errback for failures; success results pass it by.

        Args:
            errback: Called as ``errback(failure, *args, **kw)``. Returning a value other than a
                Failure recovers: the chain goes on with callbacks.
            *args: Extra positional arguments.
            **kw: Extra keyword arguments.

        Returns:
            This Deferred.
        """
        entry: _Step = (errback, args, kw or None)
        self.callbacks.append((_PASS, entry))
        if self.called:
            self._run_callbacks()
        return self

    def addBoth(self, callback: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
        """Add the same function as callback and errback (``finally``-like).

        Args:
            callback: Called as ``callback(result_or_failure, *args, **kw)``.
            *args: Extra positional arguments.
            **kw: Extra keyword arguments.

        Returns:
            This Deferred.
        """
        entry: _Step = (callback, args, kw or None)
        self.callbacks.append((entry, entry))
        if self.called:
            self._run_callbacks()
        return self

    def chainDeferred(self, d: Deferred[Any]) -> Deferred[Any]:
        """Fire ``d`` with this Deferred's result at this point of the chain.

        ``d`` gets the result; this Deferred's chain continues with None. Prefer returning ``d``
        from a callback, which is iterative and handles cancellation.

        Args:
            d: The Deferred to fire.

        Returns:
            This Deferred.
        """
        d._chained_to = self
        return self.addCallbacks(d.callback, d.errback)

    def addTimeout(
        self,
        timeout: float,
        clock: _Scheduler,
        onTimeoutCancel: Callable[[Any, float], Any] | None = None,
    ) -> Deferred[_T]:
        """Cancel this Deferred if it has not fired within ``timeout`` seconds.

        A timeout cancels the Deferred (calling its canceller); the :class:`CancelledError`
        that follows is turned into :class:`TimeoutError`. If the Deferred fires first, the
        timer is cancelled. The conversion is added at this point of the chain.

        Args:
            timeout: Seconds to wait.
            clock: Anything with ``callLater`` (the reactor, or a ``task.Clock`` in tests).
            onTimeoutCancel: Called as ``onTimeoutCancel(result, timeout)`` instead of the
                default conversion when the timeout fired; its return value (or exception)
                becomes the result. The result may be a success if the canceller fired one.

        Returns:
            This Deferred.
        """
        timed_out = False

        def on_timeout() -> None:
            nonlocal timed_out
            timed_out = True
            self.cancel()

        timer = clock.callLater(timeout, on_timeout)

        def convert(result: object) -> object:
            if timer.active():
                timer.cancel()
            if not timed_out:
                return result
            if onTimeoutCancel is not None:
                return onTimeoutCancel(result, timeout)
            if isinstance(result, Failure):
                result.trap(CancelledError)
                raise TimeoutError(timeout) from result.value
            return result

        self.addBoth(convert)
        return self

    # -- firing -----------------------------------------------------------------------------

    def callback(self, result: _T) -> None:
        """Fire the Deferred with a success result and run the callbacks.

        Args:
            result: The result; it must not be a Deferred.

        Raises:
            AlreadyCalledError: The Deferred has fired already.
            TypeError: ``result`` is a Deferred (return it from a callback to chain instead).
        """
        if isinstance(result, Deferred):
            raise TypeError("callback() needs a result, not a Deferred; chain it instead")
        self._fire(result)

    def errback(self, fail: Failure | BaseException | None = None) -> None:
        """Fire the Deferred with a failure and run the errbacks.

        Args:
            fail: A :class:`~treadle.python.failure.Failure` or an exception (wrapped into
                one). None means the exception being handled, as in ``except: d.errback()``.

        Raises:
            AlreadyCalledError: The Deferred has fired already.
            NoCurrentExceptionError: ``fail`` is None outside of an ``except`` block.
        """
        if not isinstance(fail, Failure):
            fail = Failure(fail)
        self._fire(fail)

    def _fire(self, result: object) -> None:
        if self.called:
            if self._suppress_already_called:
                # The work was cancelled without a canceller; its late result is expected.
                self._suppress_already_called = False
                return
            raise AlreadyCalledError(f"{self!r} has already fired")
        self.called = True
        self.result = result
        # The canceller is of no use any more; dropping it breaks the reference cycles that
        # cancellers closing over their own Deferred would otherwise leave to the cyclic GC.
        self._canceller = None
        if self.callbacks or self.paused or isinstance(result, Failure):
            self._run_callbacks()
        # else: nothing to run and nothing to report (succeed(), or a result nobody awaits yet).

    def pause(self) -> None:
        """Hold back the callbacks until :meth:`unpause` is called as many times."""
        self.paused += 1

    def unpause(self) -> None:
        """Undo one :meth:`pause`; run the pending callbacks if this was the last one."""
        self.paused -= 1
        if self.paused == 0 and self.called:
            self._run_callbacks()

    def cancel(self) -> None:
        """Stop waiting for the result.

        If the Deferred has not fired, its canceller runs; if it still has not fired after
        that, it errbacks with :class:`CancelledError`. If it fired but is waiting for a
        Deferred returned by one of its callbacks, that one is cancelled instead. Otherwise
        nothing happens.
        """
        if not self.called:
            canceller = self._canceller
            if canceller is not None:
                canceller(self)
            else:
                self._suppress_already_called = True
            if not self.called:
                self.errback(Failure(CancelledError()))
        elif isinstance(self.result, Deferred):
            self.result.cancel()

    def _run_callbacks(self) -> None:
        """Run callbacks, following chained Deferreds with a loop instead of recursion.

        When a callback returns an unfired Deferred, this Deferred pauses and puts a marker
        entry (``_continue``) on the inner one. Firing the inner one later reaches the marker,
        which moves the result over and pushes the waiting Deferred on ``chain``: ten thousand
        nested Deferreds cost ten thousand list items, not stack frames.
        """
        if self._running_callbacks:
            # Re-entered from one of our own callbacks (it added callbacks or fired a Deferred
            # chained to us): the loop running below us picks the new work up.
            return
        chain: list[Deferred[Any]] = [self]
        while chain:
            current = chain[-1]
            if current.paused:
                # It keeps its result until unpause(); the rest of the chain may go on.
                chain.pop()
                continue
            current._chained_to = None
            finished = True
            callbacks = current.callbacks
            while callbacks:
                on_success, on_failure = callbacks.pop(0)
                fn, args, kw = on_failure if isinstance(current.result, Failure) else on_success
                if fn is _continue:
                    waiter: Deferred[Any] = args[0]
                    waiter.result = current.result
                    current.result = None
                    if current._debug_info is not None:
                        current._debug_info.fail_result = None
                    waiter.paused -= 1
                    chain.append(waiter)
                    finished = False
                    break
                current._running_callbacks = True
                try:
                    result = fn(current.result, *args, **(kw or {}))
                except _PROPAGATE:
                    raise
                except BaseException:
                    result = Failure()
                finally:
                    current._running_callbacks = False
                if isinstance(result, Deferred):
                    if result is current:
                        result = Failure(TypeError(f"callback {fn!r} returned its own Deferred"))
                    elif (
                        result.called
                        and not result.paused
                        and not isinstance(result.result, Deferred)
                    ):
                        # Already fired: take its result now (it gives it up, like a chain would).
                        inner = result
                        result = inner.result
                        inner.result = None
                        if inner._debug_info is not None:
                            inner._debug_info.fail_result = None
                    else:
                        current.result = result
                        current.paused += 1
                        current._chained_to = result
                        marker: _Step = (_continue, (current,), None)
                        result.callbacks.append((marker, marker))
                        break
                current.result = result
            if finished:
                result = current.result
                if isinstance(result, Failure):
                    # Nobody may ever look at it: free the frames now, log it if it is dropped.
                    result.cleanFailure()
                    if current._debug_info is None:
                        current._debug_info = _UnhandledFailure()
                    current._debug_info.fail_result = result
                elif current._debug_info is not None:
                    current._debug_info.fail_result = None
                chain.pop()

    def _mark_handled(self) -> None:
        if self._debug_info is not None:
            self._debug_info.fail_result = None

    # -- asyncio ----------------------------------------------------------------------------

    @classmethod
    def fromFuture(cls, future: asyncio.Future[_T]) -> Deferred[_T]:
        """Return a Deferred that fires when ``future`` is done.

        A result becomes a callback, an exception an errback, and a cancelled future an
        errback with :class:`CancelledError`. Cancelling the Deferred cancels the future and
        errbacks the Deferred with :class:`CancelledError` at once.

        Args:
            future: An asyncio Future or Task.

        Returns:
            A new Deferred.
        """

        def cancel(d: Deferred[Any]) -> None:
            future.cancel()

        d: Deferred[_T] = cls(cancel)

        def adapt(done: asyncio.Future[Any]) -> None:
            if done.cancelled():
                outcome: object = Failure(CancelledError())
            else:
                exc = done.exception()
                outcome = done.result() if exc is None else Failure(exc)
            if not d.called:
                d._fire(outcome)
            elif isinstance(outcome, Failure) and not outcome.check(
                asyncio.CancelledError, CancelledError
            ):
                # The Deferred was cancelled but the future failed another way while stopping.
                _log.error(
                    "Error in future after its Deferred was cancelled:\n%s",
                    outcome.getTraceback().rstrip("\n"),
                )

        if future.done():
            adapt(future)
        else:
            future.add_done_callback(adapt)
        return d

    @classmethod
    def fromCoroutine(cls, coro: Awaitable[_T]) -> Deferred[_T]:
        """Run a coroutine as an asyncio Task and return it as a Deferred; see ensureDeferred.

        Args:
            coro: A coroutine or other awaitable.

        Returns:
            A Deferred firing with the coroutine's outcome.
        """
        return ensureDeferred(coro)

    def asFuture(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[_T]:
        """Return an asyncio Future on ``loop`` that resolves as this Deferred fires.

        The Deferred's result is handed to the future and the Deferred continues with None. A
        :class:`CancelledError` failure (or ``asyncio.CancelledError``) cancels the future;
        any other failure becomes its exception. Cancelling the future cancels the Deferred.

        Args:
            loop: The event loop the future belongs to; call this from that loop's thread.

        Returns:
            A new Future.
        """
        future: asyncio.Future[_T] = loop.create_future()
        delivered = False

        def on_success(result: _T) -> None:
            nonlocal delivered
            delivered = True
            if not future.done():
                future.set_result(result)

        def on_failure(failure: Failure) -> None:
            nonlocal delivered
            delivered = True
            if future.done():
                return
            if failure.check(CancelledError, asyncio.CancelledError):
                future.cancel()
                return
            exc = failure.value.with_traceback(failure.tb)
            if isinstance(exc, StopIteration):
                # Futures refuse StopIteration; asyncio turns it into RuntimeError as well.
                wrapped = RuntimeError(f"Deferred failed with {exc!r}")
                wrapped.__cause__ = exc
                exc = wrapped
            future.set_exception(exc)

        def on_future_done(done: asyncio.Future[_T]) -> None:
            if done.cancelled() and not delivered:
                self.cancel()

        future.add_done_callback(on_future_done)
        self.addCallbacks(on_success, on_failure)
        return future

    def __await__(self) -> Generator[Any, Any, _T]:
        """Wait for the result in a coroutine: ``result = await d``.

        A failure is raised as its exception. A fired Deferred is answered without creating a
        Future; otherwise one is made with :meth:`asFuture` on the running loop.
        """
        if self.called and not self.paused and not isinstance(self.result, Deferred):
            result = self.result
            if isinstance(result, Failure):
                self._mark_handled()
                result.raiseException()
            return result  # type: ignore[no-any-return]
        future = self.asFuture(asyncio.get_running_loop())
        return (yield from future.__await__())

    # -- misc -------------------------------------------------------------------------------

    def __repr__(self) -> str:
        head = f"<{type(self).__name__} at 0x{id(self):x}"
        inner = self._chained_to
        if inner is not None:
            return f"{head} waiting on {type(inner).__name__} at 0x{id(inner):x}>"
        if self.called:
            # reprlib keeps a huge result (a response body, say) from flooding logs.
            return f"{head} current result: {reprlib.repr(self.result)}>"
        return f"{head}>"


def succeed(result: _T) -> Deferred[_T]:
    """Return a Deferred that has already fired with ``result``.

    Args:
        result: The result (not a Deferred).

    Returns:
        A fired Deferred.
    """
    d: Deferred[_T] = Deferred()
    d.callback(result)
    return d


def fail(result: Failure | BaseException | None = None) -> Deferred[Any]:
    """Return a Deferred that has already failed with ``result``.

    Args:
        result: A Failure or an exception; None means the exception being handled.

    Returns:
        A failed Deferred.
    """
    d: Deferred[Any] = Deferred()
    d.errback(result)
    return d


def _event_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        # Not inside the loop yet (e.g. before reactor.run()): the Task starts when it runs.
        return asyncio.get_event_loop_policy().get_event_loop()


def ensureDeferred(coro: Awaitable[_T] | Deferred[_T]) -> Deferred[_T]:
    """Return ``coro`` as a Deferred, running it as an asyncio Task if needed.

    A coroutine (or other awaitable) is wrapped in a Task on the running loop, or on the
    policy's current loop when none is running; a Future is used as is. Cancelling the
    Deferred cancels the Task.

    Args:
        coro: A Deferred (returned unchanged), a coroutine, a Future or any awaitable.

    Returns:
        A Deferred firing with the awaitable's outcome.

    Raises:
        NotACoroutineError: ``coro`` is not awaitable.
    """
    if isinstance(coro, Deferred):
        return coro
    if asyncio.isfuture(coro):
        return Deferred.fromFuture(coro)
    if not inspect.isawaitable(coro):
        raise NotACoroutineError(f"{coro!r} is not a coroutine, awaitable or Deferred")
    return Deferred.fromFuture(asyncio.ensure_future(coro, loop=_event_loop()))


def maybeDeferred(f: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
    """Call ``f`` and return its outcome as a Deferred, whatever form it takes.

    Args:
        f: The function.
        *args: Its positional arguments.
        **kw: Its keyword arguments.

    Returns:
        ``f``'s Deferred itself; a failed Deferred if ``f`` raised or returned a Failure; a
        Deferred running the coroutine (or awaitable) it returned; otherwise a Deferred fired
        with its return value.
    """
    try:
        result = f(*args, **kw)
    except _PROPAGATE:
        raise
    except BaseException:
        return fail(Failure())
    if isinstance(result, Deferred):
        return result
    if isinstance(result, Failure):
        return fail(result)
    if inspect.isawaitable(result):
        return ensureDeferred(result)
    return succeed(result)


# -- DeferredList and gatherResults -----------------------------------------------------------


class DeferredList(Deferred[list[tuple[bool, Any]]]):
    """A Deferred firing when all (or, if asked, the first) of a list of Deferreds have fired.

    Its result is a list of ``(success, result)`` pairs in the order of ``deferredList``, with
    True and the result for a success, False and the Failure for a failure.

    Args:
        deferredList: The Deferreds to wait for.
        fireOnOneCallback: Fire with ``(result, index)`` at the first success.
        fireOnOneErrback: Errback with a :class:`FirstError` at the first failure.
        consumeErrors: Stop failures in the Deferreds of the list (they continue with None),
            so they are not logged as unhandled; they are still reported here.

    Attributes:
        resultList: The pairs so far (None where a Deferred has not fired yet).
        finishedCount: How many of the Deferreds have fired.

    Cancelling a DeferredList cancels every Deferred in it; it then fires as they report.
    """

    __slots__ = (
        "_deferred_list",
        "consumeErrors",
        "finishedCount",
        "fireOnOneCallback",
        "fireOnOneErrback",
        "resultList",
    )

    def __init__(
        self,
        deferredList: Iterable[Deferred[Any]],
        fireOnOneCallback: bool = False,
        fireOnOneErrback: bool = False,
        consumeErrors: bool = False,
    ) -> None:
        super().__init__()
        self._deferred_list = list(deferredList)
        self.resultList: list[Any] = [None] * len(self._deferred_list)
        self.finishedCount = 0
        self.fireOnOneCallback = fireOnOneCallback
        self.fireOnOneErrback = fireOnOneErrback
        self.consumeErrors = consumeErrors
        if not self._deferred_list and not fireOnOneCallback:
            self.callback([])
        for index, d in enumerate(self._deferred_list):
            d.addCallbacks(
                self._cb_deferred,
                self._cb_deferred,
                callbackArgs=(index, True),
                errbackArgs=(index, False),
            )

    def _cb_deferred(self, result: Any, index: int, succeeded: bool) -> Any:
        self.resultList[index] = (succeeded, result)
        self.finishedCount += 1
        if not self.called:
            if succeeded and self.fireOnOneCallback:
                self._fire((result, index))
            elif not succeeded and self.fireOnOneErrback:
                self._fire(Failure(FirstError(result, index)))
            elif self.finishedCount == len(self.resultList):
                self._fire(self.resultList)
        if not succeeded and self.consumeErrors:
            return None
        return result

    def cancel(self) -> None:
        """Cancel every Deferred of the list (or the chained Deferred once fired)."""
        if self.called:
            super().cancel()
            return
        for d in self._deferred_list:
            try:
                d.cancel()
            except Exception:
                _log.exception("Exception raised by a canceller in a DeferredList")


def _results_only(pairs: list[tuple[bool, Any]]) -> list[Any]:
    return [result for _, result in pairs]


def gatherResults(
    deferredList: Iterable[Deferred[Any]], consumeErrors: bool = False
) -> Deferred[list[Any]]:
    """Return a Deferred firing with the list of results, or failing at the first failure.

    Args:
        deferredList: The Deferreds to wait for.
        consumeErrors: Stop failures in the Deferreds given, so they are not also logged as
            unhandled.

    Returns:
        A Deferred firing with the results in the order given, or errbacking with a
        :class:`FirstError` (``.subFailure``, ``.index``) for the first failure. Cancelling it
        cancels all the Deferreds.
    """
    d = DeferredList(deferredList, fireOnOneErrback=True, consumeErrors=consumeErrors)
    return d.addCallback(_results_only)


# -- inlineCallbacks --------------------------------------------------------------------------


class _ReturnValue(BaseException):
    """Raised by :func:`returnValue`; a BaseException so ``except Exception`` lets it through."""

    def __init__(self, value: object) -> None:
        super().__init__(value)
        self.value = value


def returnValue(val: object) -> NoReturn:
    """End an :func:`inlineCallbacks` generator with ``val`` (for code older than ``return``).

    Args:
        val: The result of the generator's Deferred.

    Raises:
        BaseException: Always; :func:`inlineCallbacks` catches it. Call it directly in the
            generator, not inside a ``try`` that catches ``BaseException``.
    """
    raise _ReturnValue(val)


class _InlineState:
    """The Deferred an inlineCallbacks generator reports to, and what it waits for."""

    __slots__ = ("context", "deferred", "generator", "waiting_on")

    def __init__(self, generator: Generator[Any, Any, Any]) -> None:
        self.generator = generator
        self.context = contextvars.copy_context()
        self.deferred: Deferred[Any] = Deferred(self.cancel)
        self.waiting_on: Deferred[Any] | None = None

    def cancel(self, outer: Deferred[Any]) -> None:
        waiting = self.waiting_on
        if waiting is None:
            # Cancelled from inside the generator itself: cancel() errbacks right away.
            return
        # Let the generator handle the CancelledError thrown into it: the caller's Deferred now
        # follows a fresh one that the generator's eventual outcome will fire.
        follow: Deferred[Any] = Deferred(self.cancel)
        self.deferred = follow
        outer.callbacks.insert(0, ((lambda _: follow, (), None), _PASS))
        outer.callback(None)
        waiting.cancel()

    def finish(self, outcome: object) -> None:
        d = self.deferred
        if d.called:
            # Cancelled while the generator was running; it finished on its own regardless.
            if isinstance(outcome, Failure) and not outcome.check(CancelledError):
                _log.error(
                    "Unhandled error in cancelled inlineCallbacks:\n%s",
                    outcome.getTraceback().rstrip("\n"),
                )
            return
        d._fire(outcome)


_PENDING = object()


class _Waiter:
    """The callback an inlineCallbacks generator puts on the Deferred it yielded.

    If that Deferred has fired already, the callback runs inside ``addBoth``: it only stores
    the result, and the loop in :func:`_inline_step` goes on (no recursion). Later, it resumes
    the generator itself.
    """

    __slots__ = ("result", "state", "synchronous")

    def __init__(self, state: _InlineState) -> None:
        self.state = state
        self.result: object = _PENDING
        self.synchronous = True

    def __call__(self, result: object) -> None:
        if self.synchronous:
            self.result = result
        else:
            self.state.waiting_on = None
            _inline_step(self.state, result)


def _inline_step(state: _InlineState, result: object) -> None:
    """Drive the generator until it waits on an unfired Deferred or finishes."""
    gen = state.generator
    while True:
        try:
            if isinstance(result, Failure):
                yielded = state.context.run(result.throwExceptionIntoGenerator, gen)
            else:
                yielded = state.context.run(gen.send, result)
        except StopIteration as stop:
            state.finish(stop.value)
            return
        except _ReturnValue as ret:
            state.finish(ret.value)
            return
        except _PROPAGATE:
            raise
        except BaseException:
            state.finish(Failure())
            return

        if not isinstance(yielded, Deferred):
            if not inspect.isawaitable(yielded):
                # Twisted sends plain values straight back.
                result = yielded
                continue
            yielded = ensureDeferred(yielded)

        waiter = _Waiter(state)
        yielded.addBoth(waiter)
        if waiter.result is _PENDING:
            waiter.synchronous = False
            state.waiting_on = yielded
            return
        result = waiter.result


def inlineCallbacks(
    f: Callable[_P, Generator[Any, Any, _T]],
) -> Callable[_P, Deferred[_T]]:
    """Decorate a generator function so it reads like blocking code, yielding Deferreds.

    Each ``yield`` of a Deferred (or of any awaitable, run with :func:`ensureDeferred`) waits
    for it: the result is sent back into the generator, a failure is raised there. ``return
    value`` (or the older :func:`returnValue`) fires the returned Deferred; an uncaught
    exception errbacks it.

    Cancelling the returned Deferred cancels the Deferred the generator is waiting on; the
    generator sees :class:`CancelledError` and may handle it, the returned Deferred then firing
    with whatever the generator ends with.

    Args:
        f: A generator function.

    Returns:
        A function returning a Deferred.

    Raises:
        TypeError: (from the returned function) ``f`` did not return a generator.
    """

    @functools.wraps(f)
    def run(*args: _P.args, **kw: _P.kwargs) -> Deferred[_T]:
        gen = f(*args, **kw)
        if not inspect.isgenerator(gen):
            raise TypeError(f"inlineCallbacks needs a generator function, {f!r} returned {gen!r}")
        state = _InlineState(gen)
        outer = state.deferred
        _inline_step(state, None)
        return outer

    return run
