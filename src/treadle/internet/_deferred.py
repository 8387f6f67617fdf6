"""The Deferred itself, its asyncio bridges, coroutines and ``inlineCallbacks``.

Private: :mod:`treadle.internet.defer` is the module users import (its docstring says what
differs from Twisted); lists and the concurrency primitives live in ``_deferlist`` and
``_deferlock``.

Coroutines given to :func:`ensureDeferred` (or ``Deferred.fromCoroutine``/``maybeDeferred``) run
as Twisted runs them: synchronously, up to the first ``await`` of something not ready, and
resumed synchronously when the awaited Deferred fires. Awaiting an unfired Deferred yields a
:class:`_DeferredAwaiter`, which the driver here recognises (it waits on the Deferred itself) and
which an asyncio Task accepts as a future. The first time such a coroutine awaits an asyncio
future (or yields to the loop), the driver hands the rest of it to an asyncio Task, so
``asyncio.current_task()``, timeouts and cancellation work from there on as asyncio code expects.
"""

from __future__ import annotations

import asyncio
import builtins
import collections.abc
import contextlib
import contextvars
import functools
import inspect
import logging
import reprlib
import traceback
import types
import warnings
from collections.abc import Awaitable, Callable, Generator
from typing import Any, ClassVar, Generic, NoReturn, ParamSpec, Protocol, TypeVar

from treadle.logger import LogLevel
from treadle.logger._report import report
from treadle.python.failure import Failure

__all__ = [
    "AlreadyCalledError",
    "CancelledError",
    "DebugInfo",
    "Deferred",
    "NotACoroutineError",
    "TimeoutError",
    "ensureDeferred",
    "execute",
    "fail",
    "getDebugging",
    "inlineCallbacks",
    "logError",
    "maybeDeferred",
    "passthru",
    "returnValue",
    "setDebugging",
    "succeed",
]

# Public classes defined here show (in reprs, tracebacks and Failure.parents) under the module
# users import, as Twisted's do under twisted.internet.defer.
_PUBLIC_MODULE = "treadle.internet.defer"

_T = TypeVar("_T")
_P = ParamSpec("_P")

_log = logging.getLogger("treadle.error")

# Exceptions a callback may raise that must end the process rather than become a Failure.
_PROPAGATE = (KeyboardInterrupt, SystemExit)


class AlreadyCalledError(Exception):
    """``callback()`` or ``errback()`` was called on a Deferred that had already fired."""


class CancelledError(Exception, asyncio.CancelledError):
    """The Deferred was cancelled (see :meth:`Deferred.cancel`).

    An ``Exception``, as in Twisted, so errbacks and ``except Exception`` see it like any other
    failure. It is also an ``asyncio.CancelledError``: code written for Twisted traps that in
    the Deferreds of :meth:`Deferred.fromFuture` (where Twisted passes asyncio's own on), and
    asyncio takes it raised in a Task for what it is, a cancellation. asyncio's own (a
    ``BaseException`` only) stays outside ``except Exception`` as ever.
    """


class TimeoutError(builtins.TimeoutError):
    """A Deferred given :meth:`Deferred.addTimeout` did not fire in time.

    Args:
        timeout: The timeout, in seconds (None: not told).
        what: What timed out, for the message.

    Attributes:
        timeout: The timeout, in seconds, or None.
    """

    def __init__(self, timeout: float | None = None, what: str = "Deferred") -> None:
        # A single argument keeps OSError from reading it as (errno, strerror).
        if timeout is None:
            super().__init__(f"{what} timed out")
        else:
            super().__init__(f"{what} timed out after {timeout} seconds")
        self.timeout = timeout


class NotACoroutineError(TypeError):
    """:func:`ensureDeferred` was given something that is neither awaitable nor a Deferred."""


class _Cancellable(Protocol):
    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class _Scheduler(Protocol):
    def callLater(
        self, delay: float, callable: Callable[..., Any], /, *args: Any, **kw: Any
    ) -> _Cancellable: ...


class DebugInfo:
    """What a Deferred knows for reports: its unhandled failure and, when debugging, stacks.

    A Deferred gets one only when it needs one: when its chain stops on a Failure (so that an
    ordinary Deferred carries no finaliser), or at creation while debugging is on
    (:func:`setDebugging`). ``__del__`` here runs when its Deferred goes away and logs a
    Failure still unhandled then.

    Attributes:
        failResult: The Failure the chain stopped on, or None once handled.
        creator: The stack (formatted lines) where the Deferred was created, when debugging.
        invoker: The stack where it was first fired, when debugging.
    """

    __slots__ = ("creator", "failResult", "invoker")

    def __init__(self) -> None:
        self.failResult: Failure | None = None
        self.creator: list[str] | None = None
        self.invoker: list[str] | None = None

    def _getDebugTracebacks(self) -> str:
        """Return the creation and first-firing stacks, each line marked ``C:`` or ``I:``."""
        info = ""
        if self.creator is not None:
            info += " C: Deferred was created:\n C:"
            info += "".join(self.creator).rstrip().replace("\n", "\n C:") + "\n"
        if self.invoker is not None:
            info += " I: First Invoker was:\n I:"
            info += "".join(self.invoker).rstrip().replace("\n", "\n I:") + "\n"
        return info

    def __del__(self) -> None:
        failure = self.failResult
        if failure is None:
            return
        # Logging may already be torn down at interpreter exit; a finaliser must not raise.
        with contextlib.suppress(Exception):
            debug = self._getDebugTracebacks()
            # Observers get Twisted's two critical events; logging keeps one record.
            report(
                _log,
                logging.ERROR,
                [
                    {
                        "log_format": "Unhandled error in Deferred:",
                        "isError": True,
                        "log_level": LogLevel.critical,
                    },
                    {
                        "log_format": "(debug: {debugInfo})" if debug else "",
                        "debugInfo": debug,
                        "log_failure": failure,
                        "log_level": LogLevel.critical,
                    },
                ],
                "Unhandled error in Deferred:\n%s%s",
                failure.getTraceback().rstrip("\n"),
                f"\n(debug: {debug})" if debug else "",
            )


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

    # ``__dict__`` as well: Twisted's Deferreds take any attribute (programs hang their own
    # state on them, and ``d.debug = True`` turns debugging on for one), and the dictionary
    # costs one pointer until something is stored in it.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_canceller",
        "_chained_to",
        "_running_callbacks",
        "callbacks",
        "called",
        "paused",
        "result",
    )

    result: Any

    # Rarely set, so class attributes rather than slots: a pending Deferred is 16 bytes
    # smaller, and the instance dictionary is made only where one is set (debugging, and a
    # Deferred cancelled without a canceller).
    _debug_info: DebugInfo | None = None
    # Cancelled without a canceller: the late result of the abandoned work is to be ignored.
    _suppress_already_called = False

    #: Record creation and firing stacks, and capture variables in Failures (see
    #: :func:`setDebugging`; a class attribute, as in Twisted, that code may also set).
    debug: ClassVar[bool] = False

    def __init__(self, canceller: Callable[[Deferred[Any]], None] | None = None) -> None:
        self.callbacks: list[_Entry] = []
        self.called = False
        self.paused = 0
        self._canceller = canceller
        self._chained_to: Deferred[Any] | None = None
        self._running_callbacks = False
        if self.debug:
            info = self._debug_info = DebugInfo()
            info.creator = traceback.format_stack()[:-1]

    # -- adding callbacks -------------------------------------------------------------------

    def addCallbacks(
        self,
        callback: Callable[..., Any],
        errback: Callable[..., Any] | None = None,
        callbackArgs: tuple[Any, ...] | None = (),
        callbackKeywords: dict[str, Any] | None = None,
        errbackArgs: tuple[Any, ...] | None = (),
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
            callbackArgs: Extra positional arguments for ``callback`` (None: none).
            callbackKeywords: Extra keyword arguments for ``callback`` (None: none).
            errbackArgs: Extra positional arguments for ``errback`` (None: none).
            errbackKeywords: Extra keyword arguments for ``errback`` (None: none).

        Returns:
            This Deferred, so calls can be chained.
        """
        self.callbacks.append(
            (
                (callback, callbackArgs or (), callbackKeywords),
                _PASS if errback is None else (errback, errbackArgs or (), errbackKeywords),
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
        if fail is None:
            fail = Failure(captureVars=self.debug)
        elif not isinstance(fail, Failure):
            fail = Failure(fail)
        self._fire(fail)

    def _fire(self, result: object) -> None:
        if self.called:
            if self._suppress_already_called:
                # The work was cancelled without a canceller; its late result is expected.
                self._suppress_already_called = False
                return
            raise AlreadyCalledError(self._already_called_message())
        if self.debug:
            if self._debug_info is None:
                self._debug_info = DebugInfo()
            # Without this frame and callback()/errback().
            self._debug_info.invoker = traceback.format_stack()[:-2]
        self.called = True
        self.result = result
        # Fired by chainDeferred(): it no longer waits on the Deferred that fed it.
        self._chained_to = None
        # The canceller is of no use any more; dropping it breaks the reference cycles that
        # cancellers closing over their own Deferred would otherwise leave to the cyclic GC.
        self._canceller = None
        if self.callbacks or self.paused or isinstance(result, Failure):
            self._run_callbacks()
        # else: nothing to run and nothing to report (succeed(), or a result nobody awaits yet).

    def _already_called_message(self) -> str:
        message = f"{self!r} has already fired"
        if self.debug:
            info = self._debug_info
            if info is None:
                info = self._debug_info = DebugInfo()
            message += "\n" + info._getDebugTracebacks()
        return message

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
                        current._debug_info.failResult = None
                    waiter.paused -= 1
                    chain.append(waiter)
                    finished = False
                    break
                current._running_callbacks = True
                try:
                    # Most callbacks take the result alone: spare them the general call,
                    # which builds an argument tuple and a keyword dict each time.
                    if kw:
                        result = fn(current.result, *args, **kw)
                    elif args:
                        result = fn(current.result, *args)
                    else:
                        result = fn(current.result)
                except _PROPAGATE:
                    raise
                except BaseException:
                    result = Failure(captureVars=current.debug)
                finally:
                    current._running_callbacks = False
                if isinstance(result, Deferred):
                    if result is current:
                        result = _circular_failure(fn)
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
                            inner._debug_info.failResult = None
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
                        current._debug_info = DebugInfo()
                    current._debug_info.failResult = result
                elif current._debug_info is not None:
                    current._debug_info.failResult = None
                chain.pop()

    @property
    def _chainedTo(self) -> Deferred[Any] | None:
        # The Deferred this one waits on, under the name Twisted's own tests read.
        return self._chained_to

    def _mark_handled(self) -> None:
        if self._debug_info is not None:
            self._debug_info.failResult = None

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
        """Run a coroutine (or generator) now and return its outcome as a Deferred.

        The coroutine runs synchronously up to its first wait on something not ready, as in
        Twisted: the Deferred may have fired when this returns. See :func:`ensureDeferred`.

        Args:
            coro: A coroutine object, or a generator yielding Deferreds.

        Returns:
            A Deferred firing with the coroutine's outcome.

        Raises:
            NotACoroutineError: ``coro`` is neither.
        """
        if not isinstance(coro, types.CoroutineType | types.GeneratorType):
            raise NotACoroutineError(f"{coro!r} is not a coroutine")
        return _run_coroutine(coro)

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
            future.set_exception(_future_exception(failure))

        def on_future_done(done: asyncio.Future[_T]) -> None:
            if done.cancelled() and not delivered:
                self.cancel()

        future.add_done_callback(on_future_done)
        self.addCallbacks(on_success, on_failure)
        return future

    def __await__(self) -> Generator[Any, Any, _T]:
        """Wait for the result in a coroutine: ``result = await d``.

        A failure is raised as its exception. A fired Deferred is answered at once, without
        suspending. Otherwise the coroutine waits: under :func:`ensureDeferred` it resumes
        synchronously when the Deferred fires (Twisted's way); in an asyncio Task it resumes
        on the loop's next turn, with the result taken as :meth:`asFuture` takes it (a
        :class:`CancelledError` failure raises ``asyncio.CancelledError`` there, and
        cancelling the Task cancels the Deferred).
        """
        if self.called and not self.paused and not isinstance(self.result, Deferred):
            result = self.result
            if isinstance(result, Failure):
                self._mark_handled()
                result.raiseException()
            return result  # type: ignore[no-any-return]
        awaiter = _DeferredAwaiter(self)
        sent = yield awaiter
        if awaiter._outcome is _PENDING:
            # Driven by _inline_step, which waited on the Deferred itself and sent its result.
            return sent  # type: ignore[no-any-return]
        return awaiter.result()  # type: ignore[no-any-return]

    # ``yield from d`` in a generator-based coroutine, as Twisted allows.
    __iter__ = __await__

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


_PENDING: Any = object()

_CIRCULAR = (
    "Callback returned the Deferred it was attached to; the chain fails with TypeError "
    "rather than waiting on itself forever"
)


def _circular_failure(fn: Callable[..., Any]) -> Failure:
    """The result of a callback ``fn`` that returned its own Deferred.

    Twisted warns (``DeprecationWarning``, pointing at ``fn``) and then waits forever; the
    warning is kept, so that a program running with warnings as errors gets that error as
    the failure, as it would under Twisted, and otherwise the chain fails with ``TypeError``.
    """
    try:
        _warn_at(fn, _CIRCULAR)
    except _PROPAGATE:
        raise
    except BaseException:
        return Failure()
    return Failure(TypeError(f"callback {fn!r} returned its own Deferred"))


def _warn_at(fn: Callable[..., Any], message: str) -> None:
    """Issue a ``DeprecationWarning`` located in ``fn``'s source rather than in the caller."""
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None:
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return
    lines = [line for _, _, line in code.co_lines() if line is not None]
    module = getattr(fn, "__module__", None) or "<unknown>"
    registry = getattr(fn, "__globals__", {}).setdefault("__warningregistry__", {})
    warnings.warn_explicit(
        message,
        DeprecationWarning,
        filename=code.co_filename,
        lineno=max(lines, default=code.co_firstlineno),
        module=module,
        registry=registry,
    )


def _future_exception(failure: Failure) -> BaseException:
    """The exception an asyncio future (or awaiting Task) is given for ``failure``."""
    exc = failure.value.with_traceback(failure.tb)
    if isinstance(exc, StopIteration):
        # Futures refuse StopIteration; asyncio turns it into RuntimeError as well.
        wrapped = RuntimeError(f"Deferred failed with {exc!r}")
        wrapped.__cause__ = exc
        return wrapped
    return exc


class _DeferredAwaiter:
    """What ``await`` of an unfired Deferred yields: a future to asyncio, a Deferred to us.

    An asyncio Task accepts any object with ``_asyncio_future_blocking``, ``get_loop``,
    ``add_done_callback``, ``cancel`` and ``result`` as a future; this one takes the
    Deferred's result (the Deferred goes on with None, as with :meth:`Deferred.asFuture`) only
    when a Task asks for it, and wakes the Task with ``call_soon`` as asyncio futures do. The
    coroutine driver of :func:`ensureDeferred` never touches it beyond ``deferred``. Cheaper
    than a Future made by ``asFuture``: one small object and one callback entry.
    """

    __slots__ = ("_asyncio_future_blocking", "_callbacks", "_loop", "_outcome", "deferred")

    def __init__(self, deferred: Deferred[Any]) -> None:
        self.deferred = deferred
        # asyncio's mark of a future a Task may wait on (the Task sets it back to False).
        self._asyncio_future_blocking = True
        self._outcome: object = _PENDING
        self._callbacks: list[tuple[Callable[..., Any], contextvars.Context | None]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (a Task asks from inside it)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def add_done_callback(
        self, fn: Callable[..., Any], *, context: contextvars.Context | None = None
    ) -> None:
        """Call ``fn(self)`` on the loop once the Deferred has fired."""
        loop = self.get_loop()
        if self._outcome is not _PENDING:
            loop.call_soon(fn, self, context=context)
            return
        if self._callbacks is None:
            self._callbacks = [(fn, context)]
            self.deferred.addBoth(self._settle)
        else:
            self._callbacks.append((fn, context))

    def _settle(self, outcome: object) -> None:
        self._outcome = outcome
        loop = self.get_loop()
        for fn, context in self._callbacks or ():
            loop.call_soon(fn, self, context=context)
        self._callbacks = None

    def done(self) -> bool:
        """True once the Deferred's result was taken."""
        return self._outcome is not _PENDING

    def cancelled(self) -> bool:
        """True if the Deferred ended with a cancellation."""
        outcome = self._outcome
        return isinstance(outcome, Failure) and bool(
            outcome.check(CancelledError, asyncio.CancelledError)
        )

    def cancel(self, msg: object = None) -> bool:
        """Cancel the Deferred (the waiting Task is woken by its outcome)."""
        if self._outcome is not _PENDING:
            return False
        self.deferred.cancel()
        return True

    def result(self) -> Any:
        """The Deferred's result; its failure raised (a cancellation as asyncio's)."""
        outcome = self._outcome
        if outcome is _PENDING:
            raise asyncio.InvalidStateError("the Deferred has not fired")
        if isinstance(outcome, Failure):
            if outcome.check(CancelledError):
                # Twisted's CancelledError is also asyncio's: the Task sees a cancellation,
                # and code awaiting can still catch it as the Exception Twisted code expects.
                raise outcome.value
            if outcome.check(asyncio.CancelledError):
                raise asyncio.CancelledError
            raise _future_exception(outcome)
        return outcome

    def __repr__(self) -> str:
        return f"<awaiting {self.deferred!r}>"


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
    """Return ``coro`` as a Deferred, running it now if it is a coroutine.

    As in Twisted, a coroutine runs synchronously until it waits on a Deferred that has not
    fired, and resumes synchronously when that one fires; a coroutine that never waits on
    anything pending has finished (and the Deferred fired) when this returns. Beyond Twisted,
    it may await asyncio futures and tasks: at the first one (or a bare yield to the loop,
    ``asyncio.sleep(0)``) the rest of it runs as an asyncio Task on the future's loop (the
    running loop, else the policy's current one).

    Cancelling the Deferred cancels what the coroutine waits on: a Deferred (the coroutine
    sees :class:`CancelledError` and may handle it, the Deferred then firing with its
    outcome, as in Twisted) or, once it runs as a Task, the Task (the Deferred fails with
    :class:`CancelledError` at once).

    Args:
        coro: A Deferred (returned unchanged), a coroutine, a generator yielding Deferreds (as
            ``inlineCallbacks`` runs them), an asyncio Future or Task, or any awaitable.

    Returns:
        A Deferred firing with the outcome; ``asyncio.CancelledError`` becomes
        :class:`CancelledError`.

    Raises:
        NotACoroutineError: ``coro`` is not awaitable.
    """
    if isinstance(coro, Deferred):
        return coro
    if isinstance(coro, types.CoroutineType | types.GeneratorType):
        return _run_coroutine(coro)
    if asyncio.isfuture(coro):
        return Deferred.fromFuture(coro)
    if not inspect.isawaitable(coro):
        raise NotACoroutineError(f"{coro!r} is not a coroutine, awaitable or Deferred")
    return _run_coroutine(_await(coro))


async def _await(awaitable: Awaitable[_T]) -> _T:
    return await awaitable


def maybeDeferred(f: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
    """Call ``f`` and return its outcome as a Deferred, whatever form it takes.

    Args:
        f: The function.
        *args: Its positional arguments.
        **kw: Its keyword arguments.

    Returns:
        ``f``'s Deferred itself; a failed Deferred if ``f`` raised or returned a Failure; the
        Deferred of :func:`ensureDeferred` for a coroutine (run at once, as in Twisted) or
        other awaitable it returned; otherwise a Deferred fired with its return value.
    """
    try:
        result = f(*args, **kw)
    except _PROPAGATE:
        raise
    except BaseException:
        return fail(Failure(captureVars=Deferred.debug))
    if isinstance(result, Deferred):
        return result
    if isinstance(result, Failure):
        return fail(result)
    if inspect.isawaitable(result):
        return ensureDeferred(result)
    return succeed(result)


def execute(callable: Callable[..., _T], *args: Any, **kw: Any) -> Deferred[_T]:
    """Call ``callable`` now and return a fired Deferred with its result or exception.

    Unlike :func:`maybeDeferred`, the return value is taken as is, even a Deferred or a
    coroutine.

    Args:
        callable: The function.
        *args: Its positional arguments.
        **kw: Its keyword arguments.

    Returns:
        A Deferred that has fired.
    """
    try:
        result = callable(*args, **kw)
    except _PROPAGATE:
        raise
    except BaseException:
        return fail()
    d: Deferred[_T] = Deferred()
    # Set directly: callback() refuses a Deferred, and execute() passes any value through.
    d.called = True
    d.result = result
    return d


def passthru(arg: _T) -> _T:
    """Return ``arg`` (a no-op callback)."""
    return arg


def logError(err: Failure) -> Failure:
    """Log ``err`` and return it (an errback that reports a failure and passes it on).

    If it is left at the end of the chain, it is logged again as unhandled when the Deferred
    goes away, as in Twisted.

    Args:
        err: The Failure.

    Returns:
        ``err``.
    """
    report(
        _log,
        logging.ERROR,
        [{"log_format": "", "log_failure": err, "log_level": LogLevel.critical}],
        "%s",
        err.getTraceback().rstrip("\n"),
    )
    return err


def setDebugging(on: bool) -> None:
    """Turn Deferred debugging on or off (off by default; costly, for development).

    While on, each new Deferred records the stack where it was created and where it was first
    fired; :class:`AlreadyCalledError` shows both, as does the log of an unhandled failure. The
    Failures made by ``errback()`` and by raising callbacks capture their frames' variables.

    Args:
        on: True to turn it on.
    """
    Deferred.debug = bool(on)


def getDebugging() -> bool:
    """Return whether Deferred debugging is on (see :func:`setDebugging`)."""
    return Deferred.debug


# -- inlineCallbacks and coroutines -----------------------------------------------------------


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
    """The Deferred a generator or coroutine reports to, and what it waits for."""

    __slots__ = ("context", "coroutine", "deferred", "generator", "task", "waiting_on")

    def __init__(self, generator: Any, coroutine: bool = False) -> None:
        self.generator = generator
        # A coroutine hands asyncio yields to a Task; a generator gets them back as values.
        self.coroutine = coroutine
        self.context = contextvars.copy_context()
        self.deferred: Deferred[Any] = Deferred(self.cancel)
        self.waiting_on: Deferred[Any] | None = None
        self.task: asyncio.Task[Any] | None = None

    def cancel(self, outer: Deferred[Any]) -> None:
        task = self.task
        if task is not None:
            # Run by asyncio now: cancel the Task; cancel() then errbacks the Deferred at once.
            task.cancel()
            return
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
        if (
            isinstance(outcome, Failure)
            and outcome.check(asyncio.CancelledError)
            and not outcome.check(CancelledError)
        ):
            # Deferreds speak Twisted's CancelledError (an Exception, unlike asyncio's).
            outcome = Failure(CancelledError())
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

    def task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            outcome: object = Failure(CancelledError())
        else:
            exc = task.exception()
            outcome = task.result() if exc is None else Failure(exc)
        self.finish(outcome)


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
            if isinstance(yielded, _DeferredAwaiter):
                # ``await d``: wait on the Deferred itself, resumed synchronously.
                yielded = yielded.deferred
            elif state.coroutine:
                # An asyncio future, or a yield to the loop: asyncio's business from now on.
                _hand_to_task(state, yielded)
                return
            elif inspect.isawaitable(yielded):
                yielded = ensureDeferred(yielded)
            else:
                # Twisted sends plain values straight back.
                result = yielded
                continue

        waiter = _Waiter(state)
        yielded.addBoth(waiter)
        if waiter.result is _PENDING:
            waiter.synchronous = False
            state.waiting_on = yielded
            return
        result = waiter.result


def _run_coroutine(coro: Any) -> Deferred[Any]:
    """Start ``coro`` (a coroutine or generator) now; return the Deferred of its outcome."""
    coroutine = isinstance(coro, types.CoroutineType) or bool(
        coro.gi_code.co_flags & inspect.CO_ITERABLE_COROUTINE
    )
    state = _InlineState(coro, coroutine)
    outer = state.deferred
    _inline_step(state, None)
    return outer


def _hand_to_task(state: _InlineState, yielded: object) -> None:
    """Run the rest of a coroutine, suspended on ``yielded``, as an asyncio Task."""
    if getattr(yielded, "_asyncio_future_blocking", None) is not None:
        loop = yielded.get_loop()  # type: ignore[attr-defined]
    else:
        loop = _event_loop()
    rest = _Resumed(state.generator, yielded)
    # Run in the coroutine's context: the Task takes a copy of it.
    task = state.context.run(loop.create_task, rest)
    state.task = task
    task.add_done_callback(state.task_done)


class _Resumed(collections.abc.Coroutine):  # type: ignore[type-arg]
    """A coroutine already suspended on ``yielded``, as an asyncio Task can run it.

    The Task's first step is handed ``yielded`` (the future the coroutine waits on); every
    later step goes to the coroutine itself. A Task cancelled before its first step throws
    into the coroutine where it waits (after cancelling that future), so its ``except
    asyncio.CancelledError`` runs as it would under a Task from the start; a fresh wrapper
    coroutine would never get that far.
    """

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Any, yielded: object) -> None:
        self._coro = coro
        self._first = yielded

    def send(self, value: Any) -> Any:
        """Resume the coroutine with ``value`` (the first step: give the Task its future)."""
        first = self._first
        if first is not _PENDING:
            self._first = _PENDING
            return first
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Raise an exception where the coroutine waits."""
        first, self._first = self._first, _PENDING
        if first is not _PENDING:
            cancel = getattr(first, "cancel", None)
            if cancel is not None:
                cancel()
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self) -> None:
        """Close the coroutine."""
        self._coro.close()

    def __next__(self) -> Any:
        return self.send(None)

    def __await__(self) -> Any:
        return self

    def __repr__(self) -> str:
        return f"<resumed {self._coro!r}>"


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


for _public in (AlreadyCalledError, CancelledError, DebugInfo, Deferred, NotACoroutineError):
    _public.__module__ = _PUBLIC_MODULE
TimeoutError.__module__ = _PUBLIC_MODULE
