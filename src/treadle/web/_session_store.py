"""Where sessions live when several processes share them: the store interface and its guard.

A :class:`~treadle.web.server.Site` keeps its sessions in memory by default, as Twisted's
does. With ``--workers`` or several machines, every process must see the same sessions, so
their values go to a *store* instead: an embedded SQLite file for the workers of one machine
(:mod:`treadle.web._sqlite_store`), Redis for several machines
(:mod:`treadle.web._redis_store`).

A store keeps, per session id, a record of named *fields*: opaque bytes the site has already
encoded and signed (:mod:`treadle.web._session_codec`), one per session attribute, so two
requests of one session that change different attributes never undo each other (the rule is
last writer wins, per attribute). Records expire ``timeout`` seconds after their last load or
save (sliding expiry, done by the store itself).

Every backend call goes through :class:`GuardedStore`, which gives the site what it needs
when a store is slow or down: a deadline on each call, :class:`SessionStoreUnavailable`
instead of a hang, one log line when an outage starts and one when it ends, and, while it
lasts, an immediate failure for all but one probe per backoff period — so only requests that
touch a session fail (503), quickly, and the rest of the site keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Protocol, TypeVar

from treadle.internet.defer import CancelledError, Deferred, ensureDeferred, fail
from treadle.python.failure import Failure

__all__ = [
    "GuardedStore",
    "SessionStore",
    "SessionStoreUnavailable",
]

error_log = logging.getLogger("treadle.error")

T = TypeVar("T")

#: Seconds a store call may take before the request that needed it gets a 503.
DEFAULT_DEADLINE = 2.0
#: First and longest wait between probes of a store that is down.
FIRST_BACKOFF = 0.1
LONGEST_BACKOFF = 5.0


class SessionStoreUnavailable(Exception):
    """The session store could not answer in time; the request that needed it gets a 503."""


class SessionStore(Protocol):
    """What a session store does; every method may raise ``OSError`` or any backend error.

    Field names are ``str``; field values are bytes the store keeps as they are. Each method
    returns an awaitable: a coroutine (``async def``), or better a Deferred, which the guard
    follows without a Task or a turn of the loop.
    """

    #: Shown in log lines: the store's kind and address, never a password.
    description: str
    # Optionally ``runs_inline = True``: its calls need no asyncio Task (they return Deferreds,
    # or coroutines that wait only on Deferreds), so they are run eagerly within the
    # request's own callback. Without it, each call runs as a Task (a client library may need
    # one from its first line, for its own timeouts).

    def load(self, uid: bytes, timeout: float) -> Awaitable[dict[str, bytes] | None]:
        """Return the fields of session ``uid`` and push its expiry ``timeout`` s ahead.

        Returns:
            The fields (perhaps empty), or None when no such session exists or it expired.
        """
        ...

    def save(
        self,
        uid: bytes,
        changed: Mapping[str, bytes],
        removed: Collection[str],
        timeout: float,
    ) -> Awaitable[None]:
        """Create the record if needed, set ``changed``, delete ``removed``, push its expiry."""
        ...

    def delete(self, uid: bytes) -> Awaitable[None]:
        """Forget session ``uid`` (nothing happens when it is unknown)."""
        ...

    def remaining(self, uid: bytes) -> Awaitable[float | None]:
        """Seconds until session ``uid`` expires, or None when it is gone."""
        ...

    def close(self) -> Awaitable[None]:
        """Release connections and files (the store is not used afterwards)."""
        ...


class GuardedStore:
    """A :class:`SessionStore` with deadlines, outage logging and backoff around it.

    Args:
        store: The backend.
        deadline: Seconds each call may take.
        clock: Monotonic time source for the outage's backoff (tests pass their own).
    """

    def __init__(
        self,
        store: SessionStore,
        deadline: float = DEFAULT_DEADLINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.deadline = deadline
        # A store whose calls need no Task (SQLite, Redis) is run eagerly.
        self._inline = bool(getattr(store, "runs_inline", False))
        self._clock = clock
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._backoff = FIRST_BACKOFF
        # Calls still waiting, oldest first, with the loop time of their deadline: one timer
        # watches them all (a timer per call would cost more than a store's round trip).
        self._pending: deque[tuple[float, Deferred[Any]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        # The loop of the calls (asking asyncio for it costs a system call on Python 3.11).
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def description(self) -> str:
        """The backend's description."""
        return self.store.description

    @property
    def down(self) -> bool:
        """True while an outage is going on (the last call failed)."""
        return self._down_since is not None

    def load(self, uid: bytes, timeout: float) -> Deferred[dict[str, bytes] | None]:
        """The backend's ``load``, guarded (see the class)."""
        return self._call(self.store.load, uid, timeout).addErrback(self.unavailable)

    def save(
        self, uid: bytes, changed: Mapping[str, bytes], removed: Collection[str], timeout: float
    ) -> Deferred[None]:
        """The backend's ``save``, guarded."""
        d = self._call(self.store.save, uid, changed, removed, timeout)
        return d.addErrback(self.unavailable)

    def load_unchecked(self, uid: bytes, timeout: float) -> Deferred[dict[str, bytes] | None]:
        """:meth:`load` with the deadline and the backoff, but whose failure (any exception,
        or :class:`CancelledError` at the deadline) the caller must pass to
        :meth:`unavailable`: one callback less per call, for the per-request path."""
        return self._call(self.store.load, uid, timeout)

    def save_unchecked(
        self, uid: bytes, changed: Mapping[str, bytes], removed: Collection[str], timeout: float
    ) -> Deferred[None]:
        """:meth:`save`, unchecked as :meth:`load_unchecked` is."""
        return self._call(self.store.save, uid, changed, removed, timeout)

    def delete(self, uid: bytes) -> Deferred[None]:
        """The backend's ``delete``, guarded."""
        return self._call(self.store.delete, uid).addErrback(self.unavailable)

    def remaining(self, uid: bytes) -> Deferred[float | None]:
        """The backend's ``remaining``, guarded."""
        return self._call(self.store.remaining, uid).addErrback(self.unavailable)

    async def close(self) -> None:
        """Close the backend."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.store.close()

    def _call(self, method: Callable[..., Awaitable[T]], *args: Any) -> Deferred[T]:
        """Run ``method(*args)`` at once, as far as it goes without waiting (a SQLite call
        usually finishes there: no Task, no turn of the loop); if it has to wait, the
        deadline runs.

        Returns:
            A Deferred (already fired when the store did not wait), failing as the store
            failed, or with :class:`CancelledError` at the deadline, or with
            :class:`SessionStoreUnavailable` while an outage lasts: pass its failure to
            :meth:`unavailable`.
        """
        if self._down_since is not None:
            now = self._clock()
            if now < self._next_probe:
                return fail(SessionStoreUnavailable(f"session store {self.description} is down"))
            # This call is the probe; until it ends, the others keep failing fast.
            self._next_probe = now + self._backoff
            self._backoff = min(self._backoff * 2, LONGEST_BACKOFF)
            probing = True
        else:
            probing = False
        try:
            d: Deferred[T]
            if self._inline:
                answer = method(*args)
                d = answer if isinstance(answer, Deferred) else ensureDeferred(answer)
            else:
                # A client library may need a Task from its first line (redis-py's timeouts).
                d = Deferred.fromFuture(asyncio.ensure_future(method(*args)))
        except Exception as error:
            return fail(error)
        if not d.called:
            self._watch(d)
            if probing:
                # Only the probe ends an outage (a call that succeeds during an outage it
                # was started before is no news), so only the probe needs a callback.
                d.addCallback(self._answered)
        elif probing and not isinstance(d.result, Failure | Deferred):
            self._recovered()  # answered at once
        return d

    def unavailable(self, failure: Failure) -> Failure:
        """Turn the failure of a call into :class:`SessionStoreUnavailable`, noting the outage
        (an errback for the Deferreds of the ``*_unchecked`` calls)."""
        error = failure.value
        if isinstance(error, SessionStoreUnavailable):
            return failure
        if isinstance(error, CancelledError):
            error = TimeoutError()  # the deadline cancelled the call
        return Failure(self._unavailable(error))

    def _watch(self, d: Deferred[Any]) -> None:
        """Cancel ``d`` if it has not fired ``deadline`` seconds from now."""
        pending = self._pending
        while pending and pending[0][1].called:
            pending.popleft()
        loop = self._loop
        if loop is None or not loop.is_running():
            loop = self._loop = asyncio.get_running_loop()
        pending.append((loop.time() + self.deadline, d))
        if self._timer is None:
            self._timer = loop.call_at(pending[0][0], self._deadlines)

    def _deadlines(self) -> None:
        """The oldest pending call's deadline came: cancel the calls past theirs."""
        self._timer = None
        pending = self._pending
        loop = asyncio.get_running_loop()
        now = loop.time()
        while pending:
            deadline, d = pending[0]
            if not d.called:
                if deadline > now:
                    self._timer = loop.call_at(deadline, self._deadlines)
                    return
                d.cancel()
            pending.popleft()

    def _answered(self, result: T) -> T:
        if self._down_since is not None:
            self._recovered()
        return result

    def _unavailable(self, error: BaseException) -> SessionStoreUnavailable:
        self._failed(error)
        unavailable = SessionStoreUnavailable(
            f"session store {self.description} failed: {_describe(error)}"
        )
        unavailable.__cause__ = error
        return unavailable

    def _failed(self, error: BaseException) -> None:
        if self._down_since is None:
            self._down_since = self._clock()
            self._next_probe = self._down_since + FIRST_BACKOFF
            self._backoff = FIRST_BACKOFF * 2
            error_log.error(
                "session store %s is unavailable (%s): requests that use a session get 503 "
                "until it answers again",
                self.description,
                _describe(error),
            )

    def _recovered(self) -> None:
        assert self._down_since is not None
        lasted = self._clock() - self._down_since
        self._down_since = None
        self._backoff = FIRST_BACKOFF
        error_log.warning("session store %s answers again after %.1f s", self.description, lasted)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no answer in time"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
