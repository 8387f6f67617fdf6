"""Running blocking code in threads, and reactor code from threads, as Twisted's ``threads``.

``twisted.internet.threads`` ports to this module. :func:`deferToThread` runs a blocking
function in the reactor's thread pool and gives its result as a Deferred that fires in the
reactor's thread; :func:`blockingCallFromThread` goes the other way, running a function in the
reactor's thread and waiting for its result in the calling thread.

Differences from Twisted, on purpose:

* :func:`blockingCallFromThread` raises :class:`RuntimeError` when called from the thread
  running the reactor's loop, where Twisted waits for ever (the loop could never run the call).
  The function it is given may also return a coroutine, which is awaited.
* Each call made in a thread runs in a copy of the caller's :mod:`contextvars` context.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from treadle.internet.defer import Deferred, maybeDeferred
from treadle.python.failure import Failure

__all__ = [
    "blockingCallFromThread",
    "callMultipleInThread",
    "deferToThread",
    "deferToThreadPool",
]

_R = TypeVar("_R")


def _attach_to_running_loop(reactor: Any) -> None:
    # treadle's reactor follows the loop running in the calling thread; reading its loop here,
    # on that thread, makes the result come back to it (a pool thread has no loop to find).
    loop = getattr(type(reactor), "loop", None)
    if isinstance(loop, property):
        reactor.loop  # noqa: B018  # the property's side effect is the point


def deferToThreadPool(
    reactor: Any, threadpool: Any, f: Callable[..., _R], *args: Any, **kwargs: Any
) -> Deferred[_R]:
    """Run ``f(*args, **kwargs)`` in ``threadpool`` and return its result as a Deferred.

    Args:
        reactor: The reactor whose thread the Deferred fires in (through its
            ``callFromThread``).
        threadpool: Anything with ``callInThreadWithCallback``, such as a
            :class:`~treadle.python.threadpool.ThreadPool` (it must be started to run ``f``).
        f: The blocking function.
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Returns:
        A Deferred fired, in the reactor's thread, with ``f``'s return value, or failed with
        the :class:`~treadle.python.failure.Failure` of what it raised.
    """
    _attach_to_running_loop(reactor)
    d: Deferred[_R] = Deferred()

    def on_result(success: bool, result: Any) -> None:
        if success:
            reactor.callFromThread(d.callback, result)
        else:
            reactor.callFromThread(d.errback, result)

    threadpool.callInThreadWithCallback(on_result, f, *args, **kwargs)
    return d


def deferToThread(f: Callable[..., _R], *args: Any, **kwargs: Any) -> Deferred[_R]:
    """Run ``f(*args, **kwargs)`` in the reactor's thread pool; return its result as a Deferred.

    Args:
        f: The blocking function.
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Returns:
        A Deferred fired in the reactor's thread with ``f``'s return value, or failed with
        what it raised.
    """
    from treadle.internet import reactor

    return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args, **kwargs)


def _run_multiple(calls: Iterable[tuple[Callable[..., Any], Any, Any]]) -> None:
    for f, args, kwargs in calls:
        f(*args, **kwargs)


def callMultipleInThread(tupleList: Iterable[tuple[Callable[..., Any], Any, Any]]) -> None:
    """Run several calls one after the other in a single thread of the reactor's pool.

    An exception is logged and ends the run: the calls after it are not made.

    Args:
        tupleList: ``(function, args, kwargs)`` tuples.
    """
    from treadle.internet import reactor

    reactor.callInThread(_run_multiple, list(tupleList))


def blockingCallFromThread(reactor: Any, f: Callable[..., Any], *a: Any, **kw: Any) -> Any:
    """Run ``f(*a, **kw)`` in the reactor's thread and wait for its result in this one.

    If ``f`` returns a Deferred or a coroutine, its outcome is waited for.

    Args:
        reactor: The reactor to run ``f`` on (through its ``callFromThread``); its loop must
            be running in another thread, or this call never returns.
        f: The function.
        *a: Its positional arguments.
        **kw: Its keyword arguments.

    Returns:
        ``f``'s result (the result of its Deferred or coroutine).

    Raises:
        RuntimeError: Called from the thread running the reactor's loop.
        BaseException: Whatever ``f`` (or its Deferred or coroutine) raised, re-raised here.
    """
    _refuse_on_the_reactor_thread(reactor)
    results: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def call() -> None:
        maybeDeferred(f, *a, **kw).addBoth(results.put)

    reactor.callFromThread(call)
    result = results.get()
    if isinstance(result, Failure):
        result.raiseException()
    return result


def _refuse_on_the_reactor_thread(reactor: Any) -> None:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return
    if running is getattr(reactor, "_loop", None):
        raise RuntimeError(
            "blockingCallFromThread() called from the reactor's own thread: it would wait "
            "for ever for a call that thread has to make"
        )
