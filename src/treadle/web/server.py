"""The resource layer: ``Site`` finds the resource for a request and renders it.

:class:`Request` extends the wire-level :class:`treadle.web.http.Request` with traversal state
(``prepath``/``postpath``), rendering and error pages. Rendering accepts what a Twisted render
method returns — ``bytes`` or ``NOT_DONE_YET`` — and, beyond Twisted, ``str`` (UTF-8), an
awaitable (``async def render_GET``) or a Deferred resolving to those. An awaitable is run as
a task only when one is returned: a synchronous render creates no Task, Future or coroutine.
If the client leaves first, the task (or Deferred) is cancelled.

Beyond Twisted, ``getChild`` may return a Deferred or an awaitable (``async def getChild``):
:func:`traverse` then hands back a stand-in resource that waits for it and carries on down
the path. The synchronous walk pays nothing for this: a Deferred or coroutine has no
``isLeaf``, so it is noticed by the ``AttributeError`` the walk's own loop test raises
(the test reads ``isLeaf`` first, so the last resource reached is looked at too).

Also here, on :class:`Request`, Twisted's request helpers: sessions (``getSession``, with
:class:`Session` from :mod:`treadle.web._session`), conditional requests (``setLastModified``,
``setETag``), relative links (``childLink``, ``sibLink``) and Basic credentials (``getUser``,
``getPassword``). They cost nothing per request until called: their state lives in class
attributes that a call overrides on the instance.

Sessions differ from Twisted's on purpose; :mod:`treadle.web._session` says how.

Conditional requests, differences from Twisted, on purpose: ``If-Modified-Since`` is honoured
for GET and HEAD only and ignored when ``If-None-Match`` is present (RFC 9110 §13.1.3, where
Twisted answers 304 to any method); ``If-None-Match`` is a comma-separated list compared
weakly (§13.1.2, Twisted splits on spaces and compares exactly); ``If-Match`` is checked
too (§13.1.1, 412 when no tag matches strongly), which Twisted ignores.

This module knows nothing of sockets: it sees requests in and responses out.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import secrets
import sys
import traceback
from collections.abc import Callable, MutableMapping
from typing import Any, Final

from treadle.internet.defer import Deferred, ensureDeferred
from treadle.python.urlpath import URLPath
from treadle.web import http
from treadle.web._encoding import GzipEncoderFactory
from treadle.web._framing import SERVER_NAME
from treadle.web._html import (
    error_page,
    error_page_markup,
    escape_attribute,
    escape_text,
    processing_failed_page,
    traceback_page,
)
from treadle.web._session import Session
from treadle.web._types import ResourceLike
from treadle.web.error import UnsupportedMethod
from treadle.web.http import MalformedRequestBody, unquote_path_segment
from treadle.web.http_headers import Headers

__all__ = [
    "CACHED",
    "NOT_DONE_YET",
    "GzipEncoderFactory",
    "Request",
    "Session",
    "Site",
    "supportedMethods",
    "traverse",
    "version",
]

error_log = logging.getLogger("treadle.error")


class _NotDoneYet(int):
    """The marker a render method returns when it will ``write``/``finish`` later."""

    def __repr__(self) -> str:
        return "NOT_DONE_YET"


#: Return this from a render method to answer later with ``request.write``/``finish``.
#: (An int, 1, as in Twisted, for code that compares it by value.)
NOT_DONE_YET: Final = _NotDoneYet(1)

#: The server's name and version, as sent in the ``Server`` field (Twisted's
#: ``server.version``).
version: Final = SERVER_NAME

#: What ``setLastModified``/``setETag`` return when the client's cached copy will do (the
#: status is then 304 or 412): return it as the body. The same object as ``http.CACHED``.
CACHED: Final = http.CACHED

#: The methods Twisted's resources answer by default (Twisted's ``server.supportedMethods``:
#: an unsupported one of these is answered 405 there, any other 501).
supportedMethods: Final = (b"GET", b"HEAD", b"POST")

# Methods every origin server knows: an unsupported one of these is 405, anything else 501
# (CONNECT too, as in Twisted: it asks for a tunnel, which only a proxy makes).
_KNOWN_METHODS: Final = frozenset(
    (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE")
)


def _postpath(path: bytes) -> list[bytes]:
    """The percent-decoded segments of ``path`` (the root ``/`` is handled by the caller)."""
    segments = path[1:].split(b"/")
    if b"%" in path:
        return [unquote_path_segment(s) for s in segments]
    # split() leaves room for a dozen items; a request waiting for its response keeps the
    # list, so an exact copy is kept instead.
    return segments[:]


class Request(http.Request):
    """A request being answered by a resource tree (Twisted's ``server.Request``).

    Attributes:
        site: The :class:`Site` that received the request.
        prepath: Path segments already consumed by traversal.
        postpath: Path segments not yet consumed (a leaf resource sees the rest here).
        sitepath: The segments before the site's root (empty unless the site is nested).
    """

    __slots__ = ("_pending", "postpath", "prepath", "site", "sitepath")

    # Set only by the helpers that use them: class defaults cost a request nothing (a value
    # set later goes to the instance dict).
    _insecureSession: Session | None = None
    _secureSession: Session | None = None

    def __init__(self, channel: http.HTTPChannel, queued: object = None) -> None:
        super().__init__(channel, queued)
        try:
            self.site: Site = channel.factory  # type: ignore[assignment]
        except AttributeError:
            # A channel of Twisted's making (a test's DummyChannel) names only its site.
            self.site = channel.site
        self.prepath: list[bytes] = []
        self.postpath: list[bytes] = []
        self.sitepath: list[bytes] = []
        self._pending: Any = None

    def process(self) -> None:
        """Find the resource for this request and render it (errors become a 500 page)."""
        if self.prepath:
            self.prepath = []
        path = self.path
        if path == b"/":
            self.postpath = [b""]  # the site's root, the most asked-for path
        elif path == b"*":
            self._answer_asterisk()
            return
        else:
            self.postpath = _postpath(path)
        try:
            self.render(self.site.getResourceFor(self))
        except Exception:
            self.processingFailed(sys.exc_info()[1])

    def _answer_asterisk(self) -> None:
        """Answer a request for ``*`` (the server itself), as Twisted does, with no resource:
        ``OPTIONS *`` gets an empty 200 (RFC 9110 §9.3.7), any other method 405."""
        if self.method == b"OPTIONS":
            self.setResponseCode(http.OK)
        else:
            self.setResponseCode(http.NOT_ALLOWED)
            self.setHeader(b"allow", b"OPTIONS")
        self.setHeader(b"content-length", b"0")
        self.finish()

    def render(self, resrc: ResourceLike) -> None:
        """Render ``resrc`` and send what it returns."""
        try:
            body = resrc.render(self)
        except UnsupportedMethod as e:
            self._unsupported_method(resrc, e.allowedMethods)
            return
        if body is NOT_DONE_YET:
            return
        if type(body) is bytes:
            if not self.startedWriting:
                if body:
                    self._write_whole(body)
                else:
                    self._write_empty()
            else:
                self.write(body)
                self.finish()
            return
        self._handle_result(body, resrc, first=True)

    def _write_empty(self) -> None:
        """Send an empty rendered body as Twisted does: with ``Content-Length: 0``, hence
        without the default ``Content-Type`` (a HEAD response, a 204 and a 304 carry no
        length field, as ever)."""
        code = self.code
        if self.method != b"HEAD" and code >= 200 and code != 204 and code != 304:
            self.setHeader(b"content-length", b"0")
        self._write_whole(b"")

    def _handle_result(self, body: Any, resrc: object, *, first: bool) -> None:
        """Send what a render returned (``first``) or what its awaitable resolved to."""
        if body is NOT_DONE_YET:
            return
        if isinstance(body, bytes | str):
            body = body if isinstance(body, bytes) else body.encode("utf-8")
            if not self.startedWriting:
                self._write_whole(body)
            else:
                self.write(body)
                self.finish()
        elif first and isinstance(body, Deferred):
            self._pending = body
            body.addCallbacks(
                self._async_result,
                self._async_failure,
                callbackArgs=(body, resrc),
                errbackArgs=(body,),
            )
        elif first and inspect.isawaitable(body):
            task = asyncio.ensure_future(body)
            self._pending = task
            task.add_done_callback(functools.partial(self._task_done, resrc))
        elif body is None and not first:
            if not self.finished:
                self.finish()
        else:
            self._not_bytes(resrc, body)

    # -- asynchronous results ---------------------------------------------------------------

    def _task_done(self, resrc: object, task: asyncio.Future[Any]) -> None:
        # Clear only our own: a render may have started another awaitable meanwhile.
        if self._pending is task:
            self._pending = None
        if self._disconnected or task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.processingFailed(exc)
        elif not self.finished:
            self._handle_result(task.result(), resrc, first=False)

    def _async_result(self, result: Any, source: Deferred[Any], resrc: object) -> None:
        if self._pending is source:
            self._pending = None
        if not self._disconnected and not self.finished:
            try:
                self._handle_result(result, resrc, first=False)
            except Exception as e:
                self.processingFailed(e)

    def _async_failure(self, failure: Any, source: Deferred[Any]) -> None:
        if self._pending is source:
            self._pending = None
        if not self._disconnected and not self.finished:
            self.processingFailed(failure)

    def connectionLost(self, reason: Exception | Any) -> None:
        """The client left: cancel a pending awaitable or Deferred, then notify."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
        super().connectionLost(reason)

    # -- errors -----------------------------------------------------------------------------

    def _unsupported_method(self, resrc: ResourceLike, allowed: list[bytes]) -> None:
        method = self.method
        if method in _KNOWN_METHODS:
            self.setResponseCode(http.NOT_ALLOWED)
            self.setHeader(b"allow", b", ".join(allowed))
            body = error_page_markup(
                405, "Method Not Allowed", _not_allowed_detail(self.uri, method, allowed)
            )
        else:
            self.setResponseCode(http.NOT_IMPLEMENTED)
            body = error_page_markup(
                501,
                "Huh?",
                "I don't know how to treat a "
                f"{escape_attribute(method.decode('latin-1'))} request.",
            )
        self.setHeader(b"content-type", b"text/html; charset=utf-8")
        self._write_whole(body)

    def _not_bytes(self, resrc: object, body: object) -> None:
        """Answer 500 for a render result that is no body (Twisted's page, with the reprs)."""
        what = (
            f"Request did not return bytes: Resource {type(resrc).__name__} returned "
            f"{type(body).__name__}, not bytes, str or NOT_DONE_YET ({self!r})"
        )
        if self.startedWriting and not self.finished and not self._disconnected:
            # Part of the body is out (or held): an error page cannot follow it, and
            # finishing would pass the part off as the whole. End it short instead.
            error_log.error("%s; the response is ended short", what)
            self.loseConnection()
            return
        error_log.error("%s", what)
        detail = "<br />".join(
            f"{label}: <pre>{escape_attribute(_safe_repr(value))}</pre>"
            for label, value in (("Request", self), ("Resource", resrc), ("Value", body))
        )
        self._error_response(500, error_page_markup(500, "Request did not return bytes", detail))

    def processingFailed(self, reason: Any) -> None:
        """Answer 500 for an exception (or Failure) raised while rendering, and log it.

        The traceback goes to the ``treadle.error`` log, and to the client only when
        ``site.displayTracebacks`` is true. If the response had already started, it is
        ended short: what was written goes out, then the connection closes without the
        last chunk (or short of ``Content-Length``), so the client can tell it is incomplete
        (a half-sent body cannot be turned into an error page).
        """
        exc = getattr(reason, "value", reason)
        if isinstance(exc, MalformedRequestBody):
            self._error_response(400, error_page(400, "Bad Request", str(exc)))
            return
        tb = exc.__traceback__ if isinstance(exc, BaseException) else None
        error_log.error(
            "Unhandled error rendering %r",
            self,
            exc_info=(type(exc), exc, tb) if isinstance(exc, BaseException) else None,
        )
        if self._disconnected or self.finished:
            return
        if self.startedWriting:
            # Too late for an error page: end the response short, so the client can tell.
            self.loseConnection()
            return
        if self.site.displayTracebacks:
            body = traceback_page("".join(traceback.format_exception(type(exc), exc, tb)))
        else:
            body = processing_failed_page()
        # Twisted's processing-failed page goes out as plain text/html, without a charset.
        self._error_response(500, body, b"text/html")

    def _error_response(
        self, code: int, body: bytes, content_type: bytes = b"text/html; charset=utf-8"
    ) -> None:
        if self.startedWriting or self.finished or self._disconnected:
            return
        self.responseHeaders = Headers()
        self.cookies = []
        self.code_message = None
        self.setResponseCode(code)
        self.setHeader(b"content-type", content_type)
        self._write_whole(body)

    # -- URLs -------------------------------------------------------------------------------

    def _url_prefix(self) -> bytes:
        host = self.getHost()
        port = getattr(host, "port", 0)
        secure = self.isSecure()
        default = 443 if secure else 80
        hostport = b"" if port == default else b":%d" % port
        return b"http%s://%s%s/" % (b"s" if secure else b"", self.getRequestHostname(), hostport)

    def prePathURL(self) -> bytes:
        """Return the absolute URL of the resource that is rendering (path up to prepath)."""
        from urllib.parse import quote

        return self._url_prefix() + b"/".join(
            quote(s, safe=b"").encode("ascii") for s in self.prepath
        )

    def URLPath(self) -> URLPath:
        """Return :meth:`prePathURL` as a :class:`~treadle.python.urlpath.URLPath`."""
        return URLPath.fromBytes(self.prePathURL())

    def rememberRootURL(self) -> None:
        """Remember the current prepath URL as the application root (``getRootURL``)."""
        self.__dict__["appRootURL"] = self.prePathURL()

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
            if secure:
                self._secureSession = session
            else:
                self._insecureSession = session
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
        if uid:
            try:
                session = site.getSession(uid)
            except KeyError:
                pass
            else:
                if session._revive():
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


def _not_allowed_detail(uri: bytes, method: bytes, allowed: list[bytes]) -> str:
    """The paragraph of the 405 page (Twisted's wording), as escaped markup."""
    names = ", ".join(escape_text(m.decode("latin-1")) for m in allowed)
    return (
        f"Your browser approached me (at {escape_attribute(uri.decode('latin-1'))}) with the "
        f'method "{escape_text(method.decode("latin-1"))}".  I only allow the '
        f"method{'s' if len(allowed) > 1 else ''} {names} here."
    )


def _safe_repr(value: object) -> str:
    """``repr(value)``, or a placeholder naming the type if that repr raises."""
    try:
        return repr(value)
    except Exception as e:
        return f"<{type(value).__qualname__} object at 0x{id(value):x} (repr raised {e!r})>"


class Site(http.HTTPFactory):
    """Serves a resource tree: the protocol factory given to ``reactor.listenTCP``.

    Args:
        resource: The root of the resource tree.
        requestFactory: Request class to use (default :class:`Request`).
        logPath, timeout, logFormatter, reactor: As for :class:`~treadle.web.http.HTTPFactory`.

    Attributes:
        displayTracebacks: Send tracebacks to clients in 500 pages (default False).
        sessions: The live sessions by id: any ``MutableMapping[bytes, Session]`` will do
            (the storage interface of sessions, see :mod:`treadle.web._session`).
        sessionFactory: Called as ``sessionFactory(site, uid)`` to make a session.
        sessionCookieName: Cookie holding the session id on plain HTTP.
        secureSessionCookieName: Cookie holding the session id over TLS.
    """

    requestFactory = Request
    imposesRequestFactory = True
    displayTracebacks = False
    sessionFactory: Callable[[Site, bytes], Session] = Session
    sessionCookieName: bytes = b"TWISTED_SESSION"
    secureSessionCookieName: bytes = b"TWISTED_SECURE_SESSION"

    def __init__(
        self, resource: ResourceLike, requestFactory: Any = None, *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.resource = resource
        if requestFactory is not None:
            self.requestFactory = requestFactory
        self.sessions: MutableMapping[bytes, Session] = {}

    def getResourceFor(self, request: Request) -> ResourceLike:
        """Walk the tree along ``request.postpath`` and return the resource to render.

        See :func:`traverse` for children given as Deferreds or awaitables.
        """
        request.site = self
        # A fresh request's sitepath is an empty list already: copying an empty prepath would
        # only replace it with another one.
        if request.prepath or getattr(request, "sitepath", True):
            request.sitepath = request.prepath[:]
        return traverse(self.resource, request)

    # -- sessions ---------------------------------------------------------------------------

    def _mkuid(self) -> bytes:
        """Return a new session id: 256 random bits from :mod:`secrets`, as 64 hex digits."""
        return secrets.token_hex(32).encode("ascii")

    def makeSession(self) -> Session:
        """Make a new session with a fresh unguessable id, store it and start its timer.

        Returns:
            The new :class:`Session`.
        """
        uid = self._mkuid()
        session: Session = self.sessionFactory(self, uid)
        self.sessions[uid] = session
        session.startCheckingExpiration()
        return session

    def getSession(self, uid: bytes) -> Session:
        """Return the live session with id ``uid``.

        Raises:
            KeyError: No live session has that id.
        """
        return self.sessions[uid]


# -- traversal ------------------------------------------------------------------------------


def _is_pending(value: object) -> bool:
    return isinstance(value, Deferred) or inspect.isawaitable(value)


def traverse(resource: Any, request: Request) -> ResourceLike:
    """Walk from ``resource`` along ``request.postpath``, moving segments to ``prepath``.

    As :func:`treadle.web.resource.getChildForRequest`, plus: when ``getChildWithDefault``
    returns a Deferred or an awaitable (or ``resource`` is one), the walk stops there and
    the result is a stand-in resource. Rendering the stand-in waits for the child and then
    goes on walking and renders what it reaches; a failure there is answered with a 500
    page, and a client that leaves cancels the wait.

    The child's Deferred is consumed as one returned by a render method is (its result is
    taken and it is cancelled if the client leaves): return a new one for each request, not
    one shared between requests.

    Args:
        resource: Where to start (a resource, or a Deferred or awaitable of one).
        request: The request; its ``postpath`` is consumed.

    Returns:
        The resource to render.
    """
    postpath = request.postpath
    prepath = request.prepath
    try:
        # isLeaf is tested first so that the last resource reached is tested too.
        while not resource.isLeaf and postpath:
            segment = postpath.pop(0)
            prepath.append(segment)
            resource = resource.getChildWithDefault(segment, request)
    except AttributeError:
        # Deferreds and coroutines have no isLeaf: the loop test itself finds them, so the
        # synchronous walk runs no extra check at all.
        if not _is_pending(resource):
            raise
        return _PendingChild(resource)
    return resource  # type: ignore[no-any-return]


class _PendingChild:
    """Stands in for a child not known yet: renders it once its Deferred or awaitable is done."""

    __slots__ = ("_child",)
    isLeaf = True

    def __init__(self, child: Any) -> None:
        self._child = child

    def getChildWithDefault(self, name: bytes, request: Request) -> ResourceLike:
        """Never called (a leaf); given for the resource interface."""
        return self

    def render(self, request: Request) -> Any:
        """Wait for the child, then walk on and render; answers ``NOT_DONE_YET`` meanwhile."""
        child = self._child
        d: Deferred[Any] = child if isinstance(child, Deferred) else ensureDeferred(child)
        # As a pending render result: connectionLost cancels it.
        request._pending = d
        d.addCallbacks(_child_ready, _child_failed, callbackArgs=(request,), errbackArgs=(request,))
        return NOT_DONE_YET


def _child_ready(child: Any, request: Request) -> None:
    request._pending = None
    if request._disconnected or request.finished:
        return
    try:
        request.render(traverse(child, request))
    except Exception as e:
        request.processingFailed(e)


def _child_failed(failure: Any, request: Request) -> None:
    request._pending = None
    if not request._disconnected and not request.finished:
        request.processingFailed(failure)
