"""Sessions every worker and machine shares: loading before the render, storing at the end.

Twisted's ``request.getSession()`` answers at once, but a session kept in a store (SQLite,
Redis: :mod:`treadle.web._session_store`) takes a round trip to read. So a site with a store
reads the sessions a request's cookies name *before* rendering it (only requests that carry
such a cookie wait, and only for that one read), and ``getSession`` then finds them ready.

A request that used a shared session stores what changed when it finishes, and its response
goes out only once the store has acknowledged: the client's next request, wherever it
lands, sees what this one wrote. To do that without a cost for the other requests, the
request's ``finish`` and ``_write_whole`` are replaced *on that request instance only* (the
first time it calls ``getSession``) by versions that store first.

What the application sees when things go wrong:

* a value that cannot be pickled: the error names it (``session value attribute 'conn'
  cannot be stored: ...``), in the log and as a 500 (or, once the response has started, a
  response cut short), and nothing of that request is stored;
* a store that is down or slow: ``getSession`` raises
  :class:`~treadle.web._session_store.SessionStoreUnavailable`, answered with 503, and a
  request that could not store its changes gets 503 too (or is cut short) — requests that do
  not touch a session are served as usual;
* a cookie naming no session (forged, expired, from another site) gets a fresh session.

Concurrent requests of one session: last writer wins, per value (attribute, key, component).

Each process keeps the session objects it used in ``site.sessions`` (bounded, least
recently used out first), so code that keeps a reference or registers ``notifyOnExpire``
works as on one process; the expiry timer of such an object asks the store whether the
session really expired before running its callbacks.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from treadle.internet.defer import Deferred, FirstError, gatherResults
from treadle.python.failure import Failure
from treadle.web._session_codec import (
    ForgedField,
    SessionCodec,
    UnstorableValue,
    field_values,
    set_field,
    unset_field,
)
from treadle.web._session_store import GuardedStore, SessionStoreUnavailable

if TYPE_CHECKING:
    from treadle.web._session import Session

__all__ = ["BoundedSessions", "SessionSharing"]

error_log = logging.getLogger("treadle.error")

#: Sessions a request may ask the store for (a cookie per name at most; more are ignored).
_MAX_LOADS = 4


class BoundedSessions(OrderedDict[bytes, "Session"]):
    """A site's sessions by id, at most ``limit`` of them: the least recently used go first.

    A session pushed out is expired (its callbacks run) when the sessions live only here; with
    a shared store it is only forgotten by this process (it lives on in the store).

    Args:
        limit: The most sessions kept.
        expire_evicted: Expire a session pushed out (True for in-memory sessions).
    """

    def __init__(self, limit: int, expire_evicted: bool = True) -> None:
        super().__init__()
        if limit < 1:
            raise ValueError("the session limit must be at least 1")
        self.limit = limit
        self._expire_evicted = expire_evicted

    def __setitem__(self, uid: bytes, session: Session) -> None:
        super().__setitem__(uid, session)
        while len(self) > self.limit:
            _, oldest = self.popitem(last=False)
            if self._expire_evicted:
                oldest.expire()
            else:
                oldest._forget()

    def touch(self, uid: bytes) -> None:
        """Mark session ``uid`` as just used (it goes last)."""
        if uid in self:
            self.move_to_end(uid)


class SessionSharing:
    """A site's link to its session store: loading, storing and expiring shared sessions.

    Args:
        store: The guarded store.
        codec: Signs and pickles values (made from the site's secret).
    """

    #: Seconds between two purges of expired sessions (stores that need one: SQLite).
    purge_interval = 60.0

    def __init__(self, store: GuardedStore, codec: SessionCodec) -> None:
        self.store = store
        self.codec = codec
        self._purging: asyncio.TimerHandle | None = None

    def _keep_purging(self) -> None:
        """Remove expired sessions every ``purge_interval`` seconds, from the first use on
        (a store whose records expire by themselves, as Redis's do, has no ``purge``)."""
        if self._purging is not None or not hasattr(self.store.store, "purge"):
            return
        loop = asyncio.get_running_loop()
        self._purging = loop.call_later(self.purge_interval, self._purge)

    def _purge(self) -> None:
        self._purging = None
        task = asyncio.ensure_future(self.store.store.purge())  # type: ignore[attr-defined]
        task.add_done_callback(_log_failed_purge)
        self._keep_purging()

    # -- before the render ----------------------------------------------------------------

    def cookies_to_load(self, request: Any) -> list[bytes]:
        """The session ids the request's cookies name (for any of the site's cookie names)."""
        site = request.site
        names = (site.sessionCookieName, site.secureSessionCookieName)
        uids = [
            value
            for name, value in request.received_cookies.items()
            if name.startswith(names) and 0 < len(value) <= 128
        ]
        return uids[:_MAX_LOADS]

    def load(self, request: Any, uids: list[bytes]) -> Deferred[None]:
        """Read the sessions ``uids`` into ``request._loaded_sessions`` (id -> fields, None
        when unknown, or the :class:`SessionStoreUnavailable` met).

        The reads go out together (a Redis connection pipelines them); the Deferred fires
        once all are in (already fired when the store answered at once, as SQLite does).
        """
        timeout = request.site.sessionFactory.sessionTimeout
        loaded: dict[bytes, Any] = {}
        request._loaded_sessions = loaded
        store = self.store
        if len(uids) == 1:  # the usual case: one cookie
            uid = uids[0]
            return store.load_unchecked(uid, timeout).addCallbacks(
                _keep, self._keep_unavailable, (loaded, uid), None, (loaded, uid)
            )
        reads = [
            store.load_unchecked(uid, timeout).addCallbacks(
                _keep, self._keep_unavailable, (loaded, uid), None, (loaded, uid)
            )
            for uid in uids
        ]
        return gatherResults(reads, consumeErrors=True).addCallback(_nothing)

    def _keep_unavailable(self, failure: Failure, loaded: dict[bytes, Any], uid: bytes) -> None:
        loaded[uid] = self.store.unavailable(failure).value

    # -- getSession -----------------------------------------------------------------------

    def find(self, request: Any, uid: bytes | None) -> Session | None:
        """The live session ``uid`` from what was loaded, or None to make a new one.

        Raises:
            SessionStoreUnavailable: The store could not be read for this request.
        """
        self._watch(request)
        if uid is None:
            return None
        loaded = getattr(request, "_loaded_sessions", None) or {}
        if uid not in loaded:
            return None
        fields = loaded[uid]
        if isinstance(fields, SessionStoreUnavailable):
            raise fields
        site = request.site
        cached: Session | None = site.sessions.get(uid)
        if fields is None:
            if cached is not None:
                cached._expired_elsewhere()
            return None
        session = cached if cached is not None and not cached._expired else None
        if session is None:
            session = site.sessionFactory(site, uid)
            session._stored = {}
            site.sessions[uid] = session
            session.startCheckingExpiration()
        if fields or session._stored:
            self._refresh(session, fields)
        session.touch()
        site.sessions.touch(uid)
        return session

    def made(self, request: Any, session: Session) -> None:
        """A new session was made for ``request``: it is stored when the request ends."""
        session._stored = {}
        session._unsaved = True
        self._watch(request)

    def _refresh(self, session: Session, fields: dict[str, bytes]) -> None:
        """Bring ``session`` up to date with the store: values changed elsewhere replace
        ours, values removed elsewhere go (values only this process changed are kept)."""
        stored = session._stored
        site = session.site
        skipped = 0
        for name, data in fields.items():
            if stored.get(name) == data:
                continue
            skipped += 1  # until it is in ``stored``
            try:
                value = self.codec.decode(session.uid, name, data, session, site)
            except ForgedField as error:
                error_log.error(
                    "ignoring a session value from %s: %s", self.store.description, error
                )
                continue
            except Exception as error:
                error_log.error(
                    "a session value in %s cannot be loaded (%s: %s); ignoring it",
                    self.store.description,
                    type(error).__name__,
                    error,
                )
                continue
            set_field(session, name, value)
            stored[name] = data
            skipped -= 1
        # Every field read is in ``stored`` now (but those skipped): more means some went.
        if len(stored) > len(fields) - skipped:
            for name in [n for n in stored if n not in fields]:
                unset_field(session, name)
                del stored[name]

    # -- at the end of the request --------------------------------------------------------

    def _watch(self, request: Any) -> None:
        """Make ``request`` store its sessions before its response completes (once)."""
        if "finish" in vars(request):
            return
        if self._purging is None:
            self._keep_purging()
        finish_class = type(request).finish
        whole_class = type(request)._write_whole

        def finish() -> None:
            held = request._held
            if held is not None:
                request._held = None
                request.startedWriting = False
                body: bytes | None = b"".join(held)
            elif not request.startedWriting:
                body = b""
            else:
                body = None  # streaming: only the end is left to send
            self._commit(request, lambda: _complete(request, body, finish_class, whole_class))

        def write_whole(body: bytes) -> None:
            self._commit(request, lambda: whole_class(request, body))

        request.finish = finish
        request._write_whole = write_whole

    def _commit(self, request: Any, complete: Callable[[], None]) -> None:
        # Once only: what follows sends the response with the class's own methods.
        del request.finish, request._write_whole
        insecure, secure = request._insecureSession, request._secureSession
        try:
            if secure is None or insecure is None:  # the usual case: one session
                write = self._changes(insecure if secure is None else secure)
                writes = [] if write is None else [write]
            else:
                writes = [w for w in (self._changes(insecure), self._changes(secure)) if w]
        except UnstorableValue as error:
            error_log.error("%s (request %r); nothing of it was stored", error, request)
            _fail(request, 500, str(error), complete)
            return
        if not writes:
            complete()
            return
        saves = [
            self.store.save_unchecked(session.uid, changed, removed, session.sessionTimeout)
            for session, changed, removed in writes
        ]
        saving = saves[0] if len(saves) == 1 else gatherResults(saves, consumeErrors=True)
        saving.addBoth(self._saved, request, writes, complete)

    def _changes(
        self, session: Session | None
    ) -> tuple[Session, dict[str, bytes], list[str]] | None:
        if session is None or session._expired:
            return None
        codec = self.codec
        site = session.site
        uid = session.uid
        stored = session._stored
        values = field_values(session)
        changed: dict[str, bytes] = {}
        pickle, holds = codec.pickle, codec.holds
        known = 0  # values the store has (changed or not)
        for name, value in values.items():
            payload = pickle(name, value, session, site)
            data = stored.get(name)
            if data is not None:
                known += 1
                # Unchanged values are compared unsigned: only what changed gets a signature.
                if holds(data, payload):
                    continue
            changed[name] = codec.sign(uid, name, payload)
        removed = [n for n in stored if n not in values] if len(stored) > known else []
        if not changed and not removed and not session._unsaved:
            return None
        return session, changed, removed

    def _saved(
        self,
        outcome: object,
        request: Any,
        writes: list[tuple[Session, dict[str, bytes], list[str]]],
        complete: Callable[[], None],
    ) -> None:
        if isinstance(outcome, Failure):
            if isinstance(outcome.value, FirstError):  # several sessions saved at once
                outcome = outcome.value.subFailure
            reason = self.store.unavailable(outcome).value
            _fail(request, 503, f"the session could not be stored: {reason}", complete)
            return
        for session, changed, removed in writes:
            session._unsaved = False
            session._stored.update(changed)
            for name in removed:
                session._stored.pop(name, None)
        if not request._disconnected:
            complete()

    # -- expiry ---------------------------------------------------------------------------

    def forget(self, session: Session) -> None:
        """``session.expire()`` was called here: delete it from the store too."""
        self.store.delete(session.uid).addErrback(_log_failed_delete)

    def check_expired(self, session: Session, then: Callable[[float | None], None]) -> None:
        """Ask the store how long ``session`` has left; ``then(seconds or None)``."""

        def unknown(failure: Failure) -> None:
            then(session.sessionTimeout / 10)  # unknown: ask again a little later

        self.store.remaining(session.uid).addCallbacks(then, unknown)


def _keep(fields: dict[str, bytes] | None, loaded: dict[bytes, Any], uid: bytes) -> None:
    loaded[uid] = fields


def _nothing(result: object) -> None:
    return None


def _complete(
    request: Any,
    body: bytes | None,
    finish_class: Callable[[Any], None],
    whole_class: Callable[[Any, bytes], None],
) -> None:
    if body is None:
        finish_class(request)
    else:
        whole_class(request, body)


def _fail(request: Any, code: int, reason: str, complete: Callable[[], None]) -> None:
    """Answer ``code`` instead of the response, or cut a started response short."""
    if request._disconnected or request.finished:
        return
    if request.startedWriting:
        request.loseConnection()
        return
    from treadle.web._html import error_page  # the page markup every error response uses

    title = "Internal Server Error" if code == 500 else "Service Unavailable"
    request.responseHeaders.removeHeader(b"content-length")
    request.code_message = None
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    if code == 503:
        request.setHeader(b"retry-after", b"1")
    request._write_whole(error_page(code, title, reason))


def _log_failed_delete(failure: Failure) -> None:
    error_log.warning("an expired session could not be deleted: %s", failure.value)


def _log_failed_purge(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        error_log.warning("expired sessions could not be purged: %s", task.exception())
