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
from collections.abc import Callable, Collection, Coroutine, Mapping
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

    Field names are ``str``; field values are bytes the store keeps as they are.
    """

    #: Shown in log lines: the store's kind and address, never a password.
    description: str
    # Optionally ``runs_inline = True``: its calls usually complete without waiting and need
    # no asyncio Task, so they are run eagerly within the request's own callback.

    async def load(self, uid: bytes, timeout: float) -> dict[str, bytes] | None:
        """Return the fields of session ``uid`` and push its expiry ``timeout`` s ahead.

        Returns:
            The fields (perhaps empty), or None when no such session exists or it expired.
        """
        ...

    async def save(
        self,
        uid: bytes,
        changed: Mapping[str, bytes],
        removed: Collection[str],
        timeout: float,
    ) -> None:
        """Create the record if needed, set ``changed``, delete ``removed``, push its expiry."""
        ...

    async def delete(self, uid: bytes) -> None:
        """Forget session ``uid`` (nothing happens when it is unknown)."""
        ...

    async def remaining(self, uid: bytes) -> float | None:
        """Seconds until session ``uid`` expires, or None when it is gone."""
        ...

    async def close(self) -> None:
        """Release connections and files (the store is not used afterwards)."""
        ...


class GuardedStore:
    """A :class:`SessionStore` with deadlines, outage logging and backoff around it.

    Args:
        store: The backend.
        deadline: Seconds each call may take.
        clock: Monotonic time source (tests pass their own).
    """

    def __init__(
        self,
        store: SessionStore,
        deadline: float = DEFAULT_DEADLINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.deadline = deadline
        # A store whose calls usually finish without waiting (SQLite) is run eagerly.
        self._inline = bool(getattr(store, "runs_inline", False))
        self._clock = clock
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._backoff = FIRST_BACKOFF

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
        return self._call(lambda: self.store.load(uid, timeout))

    def save(
        self, uid: bytes, changed: Mapping[str, bytes], removed: Collection[str], timeout: float
    ) -> Deferred[None]:
        """The backend's ``save``, guarded."""
        return self._call(lambda: self.store.save(uid, changed, removed, timeout))

    def delete(self, uid: bytes) -> Deferred[None]:
        """The backend's ``delete``, guarded."""
        return self._call(lambda: self.store.delete(uid))

    def remaining(self, uid: bytes) -> Deferred[float | None]:
        """The backend's ``remaining``, guarded."""
        return self._call(lambda: self.store.remaining(uid))

    async def close(self) -> None:
        """Close the backend."""
        await self.store.close()

    def _call(self, call: Callable[[], Coroutine[Any, Any, T]]) -> Deferred[T]:
        """Run ``call()`` at once, as far as it goes without waiting (a SQLite call usually
        finishes there: no Task, no turn of the loop); if it has to wait, the deadline runs.

        Returns:
            A Deferred (already fired when the store did not wait) that fails with
            :class:`SessionStoreUnavailable` when the store fails or misses the deadline.
        """
        if self._down_since is not None:
            now = self._clock()
            if now < self._next_probe:
                return fail(SessionStoreUnavailable(f"session store {self.description} is down"))
            # This call is the probe; until it ends, the others keep failing fast.
            self._next_probe = now + self._backoff
            self._backoff = min(self._backoff * 2, LONGEST_BACKOFF)
        try:
            d: Deferred[T]
            if self._inline:
                d = ensureDeferred(call())
            else:
                # A client library may need a Task from its first line (redis-py's timeouts).
                d = Deferred.fromFuture(asyncio.ensure_future(call()))
        except Exception as error:
            return fail(self._unavailable(error))
        if not d.called:
            timer = asyncio.get_running_loop().call_later(self.deadline, d.cancel)
            d.addBoth(_stop_timer, timer)
        return d.addCallbacks(self._answered, self._not_answered)

    def _answered(self, result: T) -> T:
        if self._down_since is not None:
            self._recovered()
        return result

    def _not_answered(self, failure: Failure) -> Failure:
        error = failure.value
        if isinstance(error, CancelledError):
            error = TimeoutError()  # the deadline cancelled the call
        return Failure(self._unavailable(error))

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


def _stop_timer(result: T, timer: asyncio.TimerHandle) -> T:
    timer.cancel()
    return result
