"""``Deferred``: Twisted's promise of a result, with callbacks run synchronously.

``twisted.internet.defer`` ports to this module. A :class:`Deferred` is fired once, with
:meth:`~Deferred.callback` or :meth:`~Deferred.errback`; its callbacks then run at once, in the
order they were added, each one's return value becoming the next one's argument. Exceptions
switch to the errback chain as :class:`~treadle.python.failure.Failure` objects, and a callback that
returns another Deferred pauses the chain until that one fires.

Coroutines run as in Twisted: :func:`ensureDeferred` (``Deferred.fromCoroutine``,
``maybeDeferred``) runs one at once, synchronously, until it awaits a Deferred that has not fired,
and resumes it synchronously when that Deferred fires; one that waits on nothing pending has
finished when the call returns.

Deferreds meet asyncio in both directions: ``await d`` works in any coroutine (an asyncio Task
included), :meth:`Deferred.asFuture` and :meth:`Deferred.fromFuture` convert, and a coroutine
run by :func:`ensureDeferred` may await asyncio futures too (Twisted's cannot): from its first
such await on, it runs as an asyncio Task. Cancellation crosses the boundary as well: a
cancelled future becomes a :class:`CancelledError` failure, and a Deferred failing with
:class:`CancelledError` cancels the future it was converted to (so an awaiting asyncio Task sees
``asyncio.CancelledError`` and unwinds as asyncio code expects). :class:`CancelledError` is an
``Exception``, as Twisted's, and also an ``asyncio.CancelledError``: errbacks written for
Twisted, which traps asyncio's in the Deferreds of :meth:`Deferred.fromFuture`, work unchanged.

:func:`setDebugging` records where each Deferred was created and first fired, for
:class:`AlreadyCalledError` messages and unhandled-error logs.

Differences from Twisted, on purpose:

* ``KeyboardInterrupt`` and ``SystemExit`` raised by a callback propagate instead of becoming a
  Failure, so Ctrl-C and ``sys.exit()`` are not swallowed into an errback chain.
* Cancelling a Deferred made by :meth:`Deferred.fromFuture` (or by :func:`ensureDeferred` once
  its coroutine runs as an asyncio Task) cancels the future and fires the Deferred with
  :class:`CancelledError` right away, as ``cancel()`` promises; Twisted waits for the future to
  finish cancelling. Whatever the future ends with afterwards is ignored, except an error, which
  is logged.
* :class:`AlreadyCalledError` always says which Deferred fired twice (Twisted's has no message
  unless debugging is on, and then only the stacks).
* Releasing a :class:`DeferredLock` that is not held (or a :class:`DeferredSemaphore` too many
  times) raises ``RuntimeError`` rather than failing an ``assert``.
* A coroutine given to :func:`ensureDeferred` runs outside any asyncio Task until its first
  await of an asyncio future, so ``asyncio.current_task()`` is None there (``asyncio.timeout()``
  needs a Task): code that needs one from its first line should be started with
  ``asyncio.ensure_future`` and converted with :meth:`Deferred.fromFuture`.
* A Deferred that is paused when a chained Deferred hands it a result keeps that result until it
  is unpaused, while the rest of the chain carries on (Twisted stops the whole walk there).
* ``callback()`` with a Deferred raises ``TypeError`` (Twisted uses an assertion). A callback
  returning its own Deferred gets Twisted's ``DeprecationWarning`` and then fails the chain
  with ``TypeError`` (Twisted's waits forever).
* :class:`TimeoutError` also subclasses the built-in ``TimeoutError``, so asyncio-style
  ``except TimeoutError`` catches :meth:`Deferred.addTimeout` timeouts.
* :meth:`Deferred.fromFuture` of a future that is already done fires at once, and
  ``await`` of a fired Deferred returns (or raises) without creating a Future.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from treadle.internet._deferlist import (
    FAILURE,
    SUCCESS,
    DeferredList,
    FailureGroup,
    FirstError,
    gatherResults,
    race,
)
from treadle.internet._deferlock import (
    AlreadyTryingToLockError,
    DeferredFilesystemLock,
    DeferredLock,
    DeferredQueue,
    DeferredSemaphore,
    QueueOverflow,
    QueueUnderflow,
)
from treadle.internet._deferred import (
    AlreadyCalledError,
    CancelledError,
    DebugInfo,
    Deferred,
    NotACoroutineError,
    TimeoutError,
    ensureDeferred,
    execute,
    fail,
    getDebugging,
    inlineCallbacks,
    logError,
    maybeDeferred,
    passthru,
    returnValue,
    setDebugging,
    succeed,
)
from treadle.python.failure import Failure

__all__ = [
    "FAILURE",
    "SUCCESS",
    "AlreadyCalledError",
    "AlreadyTryingToLockError",
    "CancelledError",
    "DebugInfo",
    "Deferred",
    "DeferredCallback",
    "DeferredErrback",
    "DeferredFilesystemLock",
    "DeferredList",
    "DeferredLock",
    "DeferredQueue",
    "DeferredSemaphore",
    "FailureGroup",
    "FirstError",
    "NotACoroutineError",
    "QueueOverflow",
    "QueueUnderflow",
    "TimeoutError",
    "ensureDeferred",
    "execute",
    "fail",
    "gatherResults",
    "getDebugging",
    "inlineCallbacks",
    "logError",
    "maybeDeferred",
    "passthru",
    "race",
    "returnValue",
    "setDebugging",
    "succeed",
    "timeout",
]

#: The type of a callback (its first argument is the result), for annotations.
DeferredCallback = Callable[..., object]
#: The type of an errback (its first argument is a Failure), for annotations.
DeferredErrback = Callable[..., object]


def timeout(deferred: Deferred[object]) -> None:
    """Fail ``deferred`` with :class:`TimeoutError` now (deprecated, as in Twisted).

    Use :meth:`Deferred.addTimeout` instead.

    Args:
        deferred: A Deferred that has not fired.

    Raises:
        AlreadyCalledError: It has fired.
    """
    warnings.warn(
        "treadle.internet.defer.timeout is deprecated; use Deferred.addTimeout",
        DeprecationWarning,
        stacklevel=2,
    )
    deferred.errback(Failure(TimeoutError(None, "Callback")))
