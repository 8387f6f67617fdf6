"""What a resource-tree request offers besides rendering: URLs, sessions and relative links.

:class:`ResourceRequestHelpers` is a base of :class:`treadle.web.server.Request`: Twisted's
``prePathURL``/``URLPath``/``rememberRootURL``, ``getSession`` and ``childLink``/``sibLink``.
Nothing here runs unless called: the session state lives in class attributes that a call
overrides on the instance, so a request that uses no session pays nothing for them.

Sessions differ from Twisted's on purpose; :mod:`treadle.web._session` says how.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from treadle.python.urlpath import URLPath
from treadle.web._session import Session

if TYPE_CHECKING:
    from treadle.internet.address import IPv4Address, IPv6Address, UNIXAddress

__all__ = ["ResourceRequestHelpers"]


class _SessionSite(Protocol):
    """What sessions need of the request's site (a :class:`~treadle.web.server.Site`)."""

    sessionCookieName: bytes
    secureSessionCookieName: bytes

    def getSession(self, uid: bytes) -> Session: ...

    def makeSession(self) -> Session: ...

    @property
    def sessions(self) -> Any: ...

    @property
    def sessionSharing(self) -> Any: ...


class ResourceRequestHelpers:
    """URLs, sessions and links of a request walking a resource tree."""

    __slots__ = ()

    _insecureSession: Session | None = None
    _secureSession: Session | None = None

    if TYPE_CHECKING:  # provided by the request class this is a base of
        site: _SessionSite
        prepath: list[bytes]
        postpath: list[bytes]
        sitepath: list[bytes]
        __dict__: dict[str, Any]

        def getHost(self) -> IPv4Address | IPv6Address | UNIXAddress: ...

        def isSecure(self) -> bool: ...

        def getRequestHostname(self) -> bytes: ...

        def getCookie(self, key: bytes) -> bytes | None: ...

        def addCookie(
            self,
            k: str | bytes,
            v: str | bytes,
            expires: str | bytes | None = None,
            domain: str | bytes | None = None,
            path: str | bytes | None = None,
            max_age: str | bytes | int | None = None,
            comment: str | bytes | None = None,
            secure: bool | None = None,
            httpOnly: bool = False,
            sameSite: str | None = None,
        ) -> None: ...

    # -- URLs -------------------------------------------------------------------------------

    def _url_of(self, segments: list[bytes]) -> bytes:
        """The absolute URL of the path ``segments`` on this request's host."""
        return self._url_prefix() + b"/".join(quote(s, safe=b"").encode("ascii") for s in segments)

    def _url_prefix(self) -> bytes:
        host = self.getHost()
        port = getattr(host, "port", 0)
        secure = self.isSecure()
        default = 443 if secure else 80
        hostport = b"" if port == default else b":%d" % port
        return b"http%s://%s%s/" % (b"s" if secure else b"", self.getRequestHostname(), hostport)

    def prePathURL(self) -> bytes:
        """Return the absolute URL of the resource that is rendering (path up to prepath)."""
        return self._url_of(self.prepath)

    def URLPath(self) -> URLPath:
        """Return :meth:`prePathURL` as a :class:`~treadle.python.urlpath.URLPath`."""
        return URLPath.fromBytes(self.prePathURL())

    def rememberRootURL(self) -> None:
        """Remember the URL of the application root for :meth:`getRootURL`.

        Called from a resource's ``getChildWithDefault`` (or ``getChild``), it remembers
        the URL of that resource: the traversed path without the segment being looked up.
        """
        self.__dict__["appRootURL"] = self._url_of(self.prepath[:-1])

    def getRootURL(self) -> bytes | None:
        """Return the URL remembered by :meth:`rememberRootURL`, or None."""
        return self.__dict__.get("appRootURL")

    # -- sessions ---------------------------------------------------------------------------

    def getSession(self, sessionInterface: Any = None, forceNotSecure: bool = False) -> Any:
        """Return the client's session, making one (and its cookie) if it has none.

        The session is found by the id in the cookie named ``site.sessionCookieName``
        (``TWISTED_SESSION``), or ``site.secureSessionCookieName``
        (``TWISTED_SECURE_SESSION``) on a TLS connection, so a session made over TLS is
        never sent in clear. A new session sets that cookie with ``Path=/``, ``HttpOnly``,
        ``SameSite=Lax`` and, over TLS, ``Secure``. An unknown or expired id is not
        adopted: the client gets a new session with a new id. Every request that uses a
        session refreshes it (it expires ``sessionTimeout`` seconds after the last one).
        Call it before the response starts, or a new session's cookie cannot be sent.

        Args:
            sessionInterface: If given, return ``session.getComponent(sessionInterface)``
                instead of the session (Twisted's shortcut for ``ICounter(session)``).
            forceNotSecure: On a TLS connection, use the non-TLS session and cookie anyway
                (for pages that must share state with their plain-HTTP counterparts).

        Returns:
            The :class:`Session` (the same object for repeated calls in one request), or its
            component for ``sessionInterface``.
        """
        secure = self.isSecure() and not forceNotSecure
        session = self._secureSession if secure else self._insecureSession
        if session is None or session.expired:
            session = self._find_session(secure)
            # The request class has a __dict__: the instance value hides the class default.
            if secure:
                self._secureSession = session  # type: ignore[misc]
            else:
                self._insecureSession = session  # type: ignore[misc]
        if sessionInterface is not None:
            return session.getComponent(sessionInterface)
        return session

    def _find_session(self, secure: bool) -> Session:
        site = self.site
        name = site.secureSessionCookieName if secure else site.sessionCookieName
        if self.sitepath:
            # Twisted's naming: a site mounted below another keeps its sessions apart.
            name = b"_".join([name, *self.sitepath])
        uid = self.getCookie(name)
        sharing = site.sessionSharing
        if sharing is not None:
            # Shared through a store: read before the render, stored when it ends.
            shared: Session | None = sharing.find(self, uid)
            if shared is not None:
                return shared
            session = site.makeSession()
            sharing.made(self, session)
        else:
            if uid:
                try:
                    session = site.getSession(uid)
                except KeyError:
                    pass
                else:
                    if session._revive():
                        touch = getattr(site.sessions, "touch", None)
                        if touch is not None:
                            touch(uid)
                        return session
            session = site.makeSession()
        self.addCookie(name, session.uid, path=b"/", secure=secure, httpOnly=True, sameSite="lax")
        return session

    @property
    def session(self) -> Session | None:
        """The session :meth:`getSession` found for this request's security, or None."""
        return self._secureSession if self.isSecure() else self._insecureSession

    # -- links ------------------------------------------------------------------------------

    def childLink(self, name: bytes) -> bytes:
        """Return a relative link from this page to its child ``name``.

        Args:
            name: The child's path segment (used as given: quote it if needed).

        Returns:
            A relative URL that works whether or not the request's URL ended with ``/``.
        """
        remaining = len(self.postpath)
        if remaining > 1:
            return b"../" * (remaining - 1) + name
        if remaining == 1:
            return name
        if self.prepath and self.prepath[-1]:
            return self.prepath[-1] + b"/" + name
        return name

    def sibLink(self, name: bytes) -> bytes:
        """Return a relative link from this page to its sibling ``name``.

        Args:
            name: The sibling's path segment (used as given: quote it if needed).

        Returns:
            A relative URL.
        """
        if self.postpath:
            return b"../" * len(self.postpath) + name
        return name
