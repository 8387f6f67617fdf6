"""``DeferredLock``, ``DeferredSemaphore``, ``DeferredQueue``, ``DeferredFilesystemLock``.

Private: users import these names from :mod:`treadle.internet.defer`. Waiters are served in
the order they asked, and cancelling a waiter's Deferred takes it out of the line.
``DeferredFilesystemLock`` waits for a lock between processes
(:class:`~treadle.python.lockfile.FilesystemLock`) by trying again every second.

Difference from Twisted, on purpose: releasing a lock that is not held, or a semaphore more
times than it was acquired, raises ``RuntimeError`` (Twisted uses ``assert``, which
``python -O`` removes).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

from treadle.internet._deferred import (
    CancelledError,
    Deferred,
    TimeoutError,
    fail,
    maybeDeferred,
    succeed,
)
from treadle.internet.base import DelayedCall
from treadle.python.failure import Failure
from treadle.python.lockfile import FilesystemLock

__all__ = [
    "AlreadyTryingToLockError",
    "DeferredFilesystemLock",
    "DeferredLock",
    "DeferredQueue",
    "DeferredSemaphore",
    "QueueOverflow",
    "QueueUnderflow",
]

_T = TypeVar("_T")
_Self = TypeVar("_Self", bound="_ConcurrencyPrimitive")


class _ConcurrencyPrimitive:
    """What a lock and a semaphore share: ``run`` and ``async with``.

    Attributes:
        waiting: The Deferreds of the acquirers waiting, first come first.
    """

    def __init__(self) -> None:
        self.waiting: list[Deferred[Any]] = []

    def acquire(self: _Self) -> Deferred[_Self]:
        """Return a Deferred firing with this object once it is acquired."""
        raise NotImplementedError

    def release(self) -> None:
        """Give back what :meth:`acquire` got."""
        raise NotImplementedError

    def _cancel_acquire(self, d: Deferred[Any]) -> None:
        # Only a waiting Deferred can be cancelled: a granted one has fired already.
        self.waiting.remove(d)

    def _grant_next(self) -> bool:
        """Fire the first waiter, if any; return whether there was one."""
        if not self.waiting:
            return False
        self.waiting.pop(0).callback(self)
        return True

    def run(self, f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Acquire, call ``f(*args, **kwargs)``, release once its outcome is known.

        Args:
            f: The function; it may return a Deferred or a coroutine, which is waited for
                before releasing.
            *args: Its positional arguments.
            **kwargs: Its keyword arguments.

        Returns:
            A Deferred firing with ``f``'s result (or failing with its failure).
        """

        def call(_: object) -> Deferred[Any]:
            return maybeDeferred(f, *args, **kwargs).addBoth(self._release_and_return)

        return self.acquire().addCallback(call)

    def _release_and_return(self, result: _T) -> _T:
        self.release()
        return result

    def __aenter__(self: _Self) -> Deferred[_Self]:
        """``async with lock:`` acquires it."""
        return self.acquire()

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> Deferred[Literal[False]]:
        """Release; an exception from the block goes on."""
        self.release()
        return succeed(False)


class DeferredLock(_ConcurrencyPrimitive):
    """A lock for code that runs on the reactor: ``acquire()`` returns a Deferred.

    Attributes:
        locked: True while held; read it for a "try-lock", never set it.
        waiting: The Deferreds of the acquirers waiting, first come first.
    """

    def __init__(self) -> None:
        super().__init__()
        self.locked = False

    def acquire(self) -> Deferred[DeferredLock]:
        """Return a Deferred firing with this lock once it is held by the caller.

        It fires at once when the lock is free; otherwise the caller joins the line.
        Cancelling the Deferred leaves the line.
        """
        d: Deferred[DeferredLock] = Deferred(self._cancel_acquire)
        if self.locked:
            self.waiting.append(d)
        else:
            self.locked = True
            d.callback(self)
        return d

    def release(self) -> None:
        """Release the lock, handing it to the first waiter if there is one.

        Raises:
            RuntimeError: The lock is not held.
        """
        if not self.locked:
            raise RuntimeError("Tried to release an unlocked lock")
        self.locked = False
        if self.waiting:
            self.locked = True
            self._grant_next()


class DeferredSemaphore(_ConcurrencyPrimitive):
    """A semaphore for code that runs on the reactor: at most ``tokens`` holders at once.

    Args:
        tokens: How many may hold it at once (at least 1).

    Raises:
        ValueError: ``tokens`` is less than 1.

    Attributes:
        limit: The ``tokens`` given.
        tokens: How many more may acquire it now.
        waiting: The Deferreds of the acquirers waiting, first come first.
    """

    def __init__(self, tokens: int) -> None:
        super().__init__()
        if tokens < 1:
            raise ValueError("DeferredSemaphore requires tokens >= 1")
        self.tokens = tokens
        self.limit = tokens

    def acquire(self) -> Deferred[DeferredSemaphore]:
        """Return a Deferred firing with this semaphore once a token is the caller's."""
        d: Deferred[DeferredSemaphore] = Deferred(self._cancel_acquire)
        if self.tokens:
            self.tokens -= 1
            d.callback(self)
        else:
            self.waiting.append(d)
        return d

    def release(self) -> None:
        """Give a token back, handing it to the first waiter if there is one.

        Raises:
            RuntimeError: More releases than acquisitions.
        """
        if self.tokens >= self.limit:
            raise RuntimeError("Someone released me too many times: too many tokens!")
        self.tokens += 1
        if self.waiting:
            self.tokens -= 1
            self._grant_next()


class QueueOverflow(Exception):
    """:meth:`DeferredQueue.put` on a queue holding ``size`` objects already."""


class QueueUnderflow(Exception):
    """:meth:`DeferredQueue.get` with ``backlog`` getters waiting already."""


class DeferredQueue(Generic[_T]):
    """A queue whose ``get()`` returns a Deferred firing when an object is there.

    Args:
        size: At most this many objects waiting in the queue (None: no limit).
        backlog: At most this many ``get()`` Deferreds waiting (None: no limit).

    Attributes:
        pending: The objects put and not taken yet.
        waiting: The Deferreds of the getters waiting, first come first.
        size: As given.
        backlog: As given.
    """

    def __init__(self, size: int | None = None, backlog: int | None = None) -> None:
        self.waiting: list[Deferred[_T]] = []
        self.pending: list[_T] = []
        self.size = size
        self.backlog = backlog

    def _cancel_get(self, d: Deferred[Any]) -> None:
        self.waiting.remove(d)

    def put(self, obj: _T) -> None:
        """Add ``obj``: the first waiting getter gets it, or it waits in :attr:`pending`.

        Raises:
            QueueOverflow: ``size`` objects are waiting already.
        """
        if self.waiting:
            self.waiting.pop(0).callback(obj)
        elif self.size is None or len(self.pending) < self.size:
            self.pending.append(obj)
        else:
            raise QueueOverflow()

    def get(self) -> Deferred[_T]:
        """Return a Deferred firing with the next object (at once if one is there).

        Cancelling a waiting Deferred leaves the line.

        Raises:
            QueueUnderflow: ``backlog`` getters are waiting already.
        """
        if self.pending:
            return succeed(self.pending.pop(0))
        if self.backlog is not None and len(self.waiting) >= self.backlog:
            raise QueueUnderflow()
        d: Deferred[_T] = Deferred(self._cancel_get)
        self.waiting.append(d)
        return d


class AlreadyTryingToLockError(Exception):
    """:meth:`DeferredFilesystemLock.deferUntilLocked` while an earlier call still waits."""


class _Scheduler(Protocol):
    def callLater(
        self, delay: float, callable: Callable[..., Any], /, *args: Any, **kw: Any
    ) -> DelayedCall: ...


class DeferredFilesystemLock(FilesystemLock):
    """A :class:`~treadle.python.lockfile.FilesystemLock` that can be waited for.

    Args:
        name: The path of the lock file.
        scheduler: What retries are scheduled with (anything with ``callLater``: a
            ``task.Clock`` in tests); the global reactor when None.
    """

    # The names are Twisted's: its tests, and programs tuning the retry, read them.
    #: Seconds between two attempts to take the lock.
    _interval: float = 1
    _tryLockCall: DelayedCall | None = None
    _timeoutCall: DelayedCall | None = None

    def __init__(self, name: str, scheduler: _Scheduler | None = None) -> None:
        super().__init__(name)
        if scheduler is None:
            from treadle.internet import reactor

            scheduler = cast(_Scheduler, reactor)
        self._scheduler = scheduler

    def deferUntilLocked(self, timeout: float | None = None) -> Deferred[None]:
        """Return a Deferred that fires (with None) once this process holds the lock.

        The lock is tried now, then every second until it is taken. One wait at a time:
        this is not for several waiters of one object.

        Args:
            timeout: Give up after this many seconds (None: never). A last attempt is made
                then, so a lock freed at that very moment is still taken.

        Returns:
            A Deferred firing with None once the lock is held; failing with
            :class:`~treadle.internet.defer.TimeoutError` at the timeout, or with
            :class:`AlreadyTryingToLockError` at once when an earlier call still waits.
            Cancelling it stops the attempts (it fails with
            :class:`~treadle.internet.defer.CancelledError`, unless the lock could be
            taken right then, when it fires with None).
        """
        if self._tryLockCall is not None:
            return fail(AlreadyTryingToLockError("deferUntilLocked is already waiting"))
        d: Deferred[None] = Deferred(lambda _: self._give_up(d, Failure(CancelledError())))
        if timeout is not None:
            reason = Failure(TimeoutError(timeout, f"Acquiring lock {self.name!r}"))
            self._timeoutCall = self._scheduler.callLater(timeout, self._give_up, d, reason)
        self._try_lock(d)
        return d

    def _try_lock(self, d: Deferred[None]) -> None:
        self._tryLockCall = None
        if self.lock():
            self._stop_timeout()
            d.callback(None)
        else:
            self._tryLockCall = self._scheduler.callLater(self._interval, self._try_lock, d)

    def _stop_timeout(self) -> None:
        call, self._timeoutCall = self._timeoutCall, None
        if call is not None and call.active():
            call.cancel()

    def _give_up(self, d: Deferred[None], reason: Failure) -> None:
        """Stop trying (timeout or cancel): a last attempt, else fail with ``reason``."""
        call, self._tryLockCall = self._tryLockCall, None
        if call is not None and call.active():
            call.cancel()
        self._stop_timeout()
        if self.lock():
            d.callback(None)
        else:
            d.errback(reason)


for _public in (
    AlreadyTryingToLockError,
    DeferredFilesystemLock,
    DeferredLock,
    DeferredQueue,
    DeferredSemaphore,
    QueueOverflow,
    QueueUnderflow,
):
    _public.__module__ = "treadle.internet.defer"
