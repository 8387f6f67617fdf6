"""``Session``: state kept for one client between requests (``twisted.web.server.Session``).

A session is found by the id in its cookie and lives in ``site.sessions``, a mapping from id
to session. That mapping is the whole storage interface: ``Site.makeSession`` puts a session
in, ``Site.getSession`` reads it, :meth:`Session.expire` takes it out. Any
``MutableMapping[bytes, Session]`` can replace the default ``dict`` (an LRU, or a mapping
backed by a shared store in front of a local cache), without touching request code.

Expiry is sliding: each request that uses a session refreshes it, and it expires
``sessionTimeout`` seconds after the last one. Refreshing must cost next to nothing, since it
happens on every such request, so :meth:`Session.touch` only records the time; the single
timer per session re-checks that time when it fires and sleeps again for what is left.

Differences from Twisted, on purpose:

* The cookie is ``HttpOnly`` and ``SameSite=Lax`` as well as ``Secure`` over TLS, and its
  path is always ``/`` (Twisted's has neither flag, and a site mounted below another has its
  own cookie name anyway). Ids are 256 random bits from :mod:`secrets`.
* A session that has outlived its timeout is never handed out, even if its timer has not
  fired yet; an unknown id is never adopted (a new session with a new id is made, so a
  client cannot fix its own id).
* Sliding expiry on every request that calls ``getSession``, not only on repeated calls in
  one request; ``touch`` never cancels and reschedules the timer (unless the timeout was
  lowered), and never raises on an expired session.
* ``expire()`` may be called more than once; callbacks added after it run at once; a callback
  that raises is logged and the others still run.
* Values can also be stored by key: ``session["cart"] = cart``, ``session.get("cart")``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Protocol, cast

from treadle.internet.base import DelayedCall
from treadle.python.components import Componentized
from treadle.web._session_codec import interface_name

__all__ = ["Session", "SessionSite"]

error_log = logging.getLogger("treadle.error")


class _Scheduler(Protocol):
    """What a session needs of the reactor: the time and a timer (a ``task.Clock`` will do)."""

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., Any], /, *args: Any, **kw: Any
    ) -> DelayedCall: ...


class SessionSite(Protocol):
    """What a session needs of its site (a :class:`~treadle.web.server.Site`)."""

    @property
    def sessions(self) -> MutableMapping[bytes, Any]:
        """The live sessions by id."""
        ...


def _default_scheduler(site: SessionSite) -> _Scheduler:
    scheduler: _Scheduler | None = getattr(site, "_reactor", None)
    if scheduler is None:
        # Imported here: no module reads the reactor at import (DESIGN §2).
        from treadle.internet import reactor

        scheduler = cast(_Scheduler, reactor)
    return scheduler


class Session(Componentized):
    """The state of one client, found again on its next requests through a cookie.

    Store values as attributes (``session.cart = ...``), by key (``session["cart"] = ...``)
    or as components built by adapters (``ICounter(session)``, see
    :mod:`treadle.python.components`).

    Args:
        site: The :class:`~treadle.web.server.Site` the session belongs to.
        uid: Its id, as sent in the cookie (unguessable: see ``Site.makeSession``).
        reactor: Where time and timers come from: a ``task.Clock`` in tests. Defaults to the
            site's reactor, else the global reactor.

    Attributes:
        uid: The session id (bytes).
        site: The site it belongs to.
        sessionTimeout: Seconds without a request after which it expires (900).
        lastModified: The reactor time of the last request that used it.
        expireCallbacks: Called with no arguments when it expires.
        sessionNamespaces: A dict for frameworks to keep their state apart (as in Twisted).
    """

    sessionTimeout: float = 900
    #: Attribute names never written to a shared store (besides names starting with ``_``).
    unstoredAttributes: frozenset[str] = frozenset(
        {"site", "uid", "expireCallbacks", "sessionNamespaces", "lastModified", "sessionTimeout"}
    )
    _expireCall: DelayedCall | None = None
    _expired = False
    # With a shared store (treadle.web._shared_sessions): the fields as last read from or
    # written to the store, whether the store has yet to hear of this session, and
    # components read from the store that no code asked for yet (by interface name).
    _stored: dict[str, bytes]
    _unsaved = False

    def __init__(self, site: SessionSite, uid: bytes, reactor: _Scheduler | None = None) -> None:
        super().__init__()
        self._reactor: _Scheduler = _default_scheduler(site) if reactor is None else reactor
        self.site = site
        self.uid = uid
        self.expireCallbacks: list[Callable[[], object]] = []
        self.sessionNamespaces: dict[str, Any] = {}
        self._values: dict[Any, Any] = {}
        self._stored_components: dict[str, Any] = {}
        self.lastModified = self._reactor.seconds()

    # -- expiry ----------------------------------------------------------------------------------

    @property
    def expired(self) -> bool:
        """True once the session expired; it is then no longer found by its cookie."""
        return self._expired

    def startCheckingExpiration(self) -> None:
        """Start the expiry timer (``Site.makeSession`` calls this for new sessions).

        The session counts as used now: it expires ``sessionTimeout`` seconds from here
        unless used again. (The time is read again because the reactor may have been
        replaced since the session was made, as a test does with a ``Clock``.)
        """
        if self._expireCall is None and not self._expired:
            self.lastModified = self._reactor.seconds()
            self._expireCall = self._reactor.callLater(self.sessionTimeout, self._check_expiry)

    def _check_expiry(self) -> None:
        self._expireCall = None
        left = self.lastModified + self.sessionTimeout - self._reactor.seconds()
        if left > 0:
            # Used since the timer was set: sleep again for the rest of the timeout.
            self._expireCall = self._reactor.callLater(left, self._check_expiry)
            return
        sharing = getattr(self.site, "sessionSharing", None)
        if sharing is None:
            self.expire()
        else:
            # Other processes may have used it since: the store knows.
            sharing.check_expired(self, self._store_says)

    def _store_says(self, left: float | None) -> None:
        if self._expired or self._expireCall is not None:
            return
        if left is None or left <= 0:
            self._expired_elsewhere()
        else:
            self._expireCall = self._reactor.callLater(left, self._check_expiry)

    def _expired_elsewhere(self) -> None:
        """The store no longer has the session: expire it here, leaving the store alone."""
        self._end(delete_from_store=False)

    def _forget(self) -> None:
        """Drop this process's copy of a shared session (it lives on in the store)."""
        call, self._expireCall = self._expireCall, None
        if call is not None and call.active():
            call.cancel()

    def touch(self) -> None:
        """Record a use now, so the session lives ``sessionTimeout`` seconds from now."""
        now = self._reactor.seconds()
        self.lastModified = now
        call = self._expireCall
        # Usually the timer is left alone (it re-checks when it fires); only a timeout
        # lowered since the timer was set needs the timer brought forward.
        if call is not None and call.time > now + self.sessionTimeout:
            call.reset(self.sessionTimeout)

    def _revive(self) -> bool:
        """Touch the session for a request, or expire it if its time ran out unnoticed.

        The timer may lag behind the clock (a busy loop, a test clock not yet advanced):
        checking here guarantees a stale session is never handed out.

        Returns:
            True when the session is alive (and now touched).
        """
        if self._expired:
            return False
        if self._reactor.seconds() - self.lastModified >= self.sessionTimeout:
            self.expire()
            return False
        self.touch()
        return True

    def notifyOnExpire(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` when the session expires (at once if it already has).

        Args:
            callback: Called with no arguments; an exception it raises is logged.
        """
        if self._expired:
            self._run_callback(callback)
        else:
            self.expireCallbacks.append(callback)

    def expire(self) -> None:
        """End the session now: forget it, stop its timer and run the expiry callbacks.

        Its id is never accepted again; the client's next ``getSession`` gets a new session
        with a new id. Calling ``expire`` again does nothing.
        """
        self._end(delete_from_store=True)

    def _end(self, delete_from_store: bool) -> None:
        if self._expired:
            return
        self._expired = True
        sharing = getattr(self.site, "sessionSharing", None)
        if sharing is not None and delete_from_store and not self._unsaved:
            sharing.forget(self)
        sessions = self.site.sessions
        if sessions.get(self.uid) is self:
            del sessions[self.uid]
        call, self._expireCall = self._expireCall, None
        if call is not None and call.active():
            call.cancel()
        callbacks, self.expireCallbacks = self.expireCallbacks, []
        for callback in callbacks:
            self._run_callback(callback)

    def _run_callback(self, callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception:
            error_log.exception("Error in session expiry callback %r", callback)

    def getComponent(self, interface: Any, default: Any = None) -> Any:
        """As :meth:`Componentized.getComponent`; a component read from a shared store is
        handed out for its interface (found by name, the first time it is asked for)."""
        if self._stored_components:
            name = interface_name(interface)
            if name in self._stored_components:
                self._adapterCache[interface] = self._stored_components.pop(name)
        return super().getComponent(interface, default)

    # -- values by key ---------------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        """Return the value stored under ``key``.

        Raises:
            KeyError: Nothing is stored under ``key``.
        """
        return self._values[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        """Store ``value`` under ``key``."""
        self._values[key] = value

    def __delitem__(self, key: Any) -> None:
        """Forget the value under ``key``.

        Raises:
            KeyError: Nothing is stored under ``key``.
        """
        del self._values[key]

    def __contains__(self, key: object) -> bool:
        """Return True when a value is stored under ``key``."""
        return key in self._values

    def __iter__(self) -> Iterator[Any]:
        """Iterate over the keys of the stored values."""
        return iter(self._values)

    # No __len__ on purpose: Twisted code tests a session with ``if session:``, which must not
    # depend on how many values it holds.

    def get(self, key: Any, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default``."""
        return self._values.get(key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove and return the value under ``key`` (or ``default`` if given).

        Raises:
            KeyError: Nothing is stored under ``key`` and no default was given.
        """
        return self._values.pop(key, *default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """Return the value under ``key``, storing ``default`` there first if there is none."""
        return self._values.setdefault(key, default)
