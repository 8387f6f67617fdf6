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

:class:`Request` also has Twisted's request helpers: URLs, sessions (``getSession``, with
:class:`Session` from :mod:`treadle.web._session`) and relative links (``childLink``,
``sibLink``) from :mod:`treadle.web._server_helpers`; conditional requests
(``setLastModified``, ``setETag``) and Basic credentials (``getUser``, ``getPassword``) from
:mod:`treadle.web._request_helpers`. They cost nothing per request until called: their state
lives in class attributes that a call overrides on the instance.

As in Twisted, a HEAD request for a resource that raises ``UnsupportedMethod`` but allows GET
is rendered as GET and answered with the head alone (an informational event says so).

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
from typing import IO, Any, Final

from zope.interface import implementer

from treadle.internet.defer import Deferred, ensureDeferred
from treadle.logger import Logger
from treadle.web import http
from treadle.web._encoding import GzipEncoderFactory
from treadle.web._forwarded import ProxyTrust
from treadle.web._framing import SERVER_NAME
from treadle.web._html import (
    error_page,
    error_page_markup,
    escape_attribute,
    escape_text,
    processing_failed_page,
    traceback_page,
)
from treadle.web._server_helpers import ResourceRequestHelpers
from treadle.web._session import Session
from treadle.web._session_codec import SessionCodec
from treadle.web._session_store import GuardedStore, SessionStore, SessionStoreUnavailable
from treadle.web._shared_sessions import BoundedSessions, SessionSharing
from treadle.web._store_url import open_store
from treadle.web._types import ResourceLike
from treadle.web.error import UnsupportedMethod
from treadle.web.http import MalformedRequestBody, datetimeToString, unquote_path_segment
from treadle.web.http_headers import Headers
from treadle.web.iweb import IRequest

__all__ = [
    "CACHED",
    "NOT_DONE_YET",
    "GzipEncoderFactory",
    "Request",
    "Session",
    "Site",
    "datetimeToString",
    "supportedMethods",
    "traverse",
    "version",
]

error_log = logging.getLogger("treadle.error")
# Twisted's informational events (a HEAD answered by GET) go to the log observers as events.
_log = Logger()


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
    # (find() rather than ``in``: a bytes ``in`` first tries its operand as an int, and
    # raising and clearing that TypeError costs more than the search.)
    if path.find(b"%") >= 0:
        return [unquote_path_segment(s) for s in segments]
    # split() leaves room for a dozen items; a request waiting for its response keeps the
    # list, so an exact copy is kept instead.
    return segments[:]


#: ``postpath`` of a request for the site's root, until read: the most asked-for path.
_ROOT_SEGMENTS: Final[tuple[bytes, ...]] = (b"",)


@implementer(IRequest)
class Request(ResourceRequestHelpers, http.Request):
    """A request being answered by a resource tree (Twisted's ``server.Request``).

    Args:
        channel: The channel the request arrived on.
        queued: Ignored (Twisted's deprecated argument).
        parsePOSTFormSubmission: Whether a POST form body is read into ``args``; None (the
            default) follows the site's setting.

    Attributes:
        site: The :class:`Site` that received the request.
        prepath: Path segments already consumed by traversal.
        postpath: Path segments not yet consumed (a leaf resource sees the rest here).
        sitepath: The segments before the site's root (empty unless the site is nested).
    """

    # The three paths are made lists only when first read: until then a tuple stands for
    # each (shared, empty or the root's), so that a request waiting for its response with
    # no one having read them keeps no list of its own (three lists: 176 bytes of the
    # ~4 KiB a pending request costs). Once read, a path is that same list for good, so
    # mutating it (prepath.append, postpath.pop) works as on Twisted's attributes.
    __slots__ = ("_pending", "_postpath", "_prepath", "_sitepath", "site")

    sendsServerAndDate = True

    #: Content-Type sent when the response sets none (None sends none).
    defaultContentType: bytes | None = b"text/html"

    # Set only on a site whose sessions live in a store (see treadle.web._shared_sessions):
    # the read of the cookies' sessions, and what it found.
    _loading: Deferred[None] | None = None
    _loaded_sessions: dict[bytes, Any] | None = None

    def __init__(
        self,
        channel: http.HTTPChannel,
        queued: object = None,
        parsePOSTFormSubmission: bool | None = None,
    ) -> None:
        super().__init__(channel, queued, parsePOSTFormSubmission)
        try:
            self.site: Site = channel.factory  # type: ignore[assignment]
        except AttributeError:
            # A channel of Twisted's making (a test's DummyChannel) names only its site.
            self.site = channel.site
        self._prepath: list[bytes] | tuple[bytes, ...] = ()
        self._postpath: list[bytes] | tuple[bytes, ...] = ()
        self._sitepath: list[bytes] | tuple[bytes, ...] = ()
        self._pending: Any = None

    @property
    def prepath(self) -> list[bytes]:
        """Path segments already consumed by traversal."""
        value = self._prepath
        if type(value) is not list:
            value = self._prepath = list(value)
        return value

    @prepath.setter
    def prepath(self, value: list[bytes]) -> None:
        self._prepath = value

    @property
    def postpath(self) -> list[bytes]:
        """Path segments not yet consumed (a leaf resource sees the rest here)."""
        value = self._postpath
        if type(value) is not list:
            value = self._postpath = list(value)
        return value

    @postpath.setter
    def postpath(self, value: list[bytes]) -> None:
        self._postpath = value

    @property
    def sitepath(self) -> list[bytes]:
        """The segments before the site's root (empty unless the site is nested)."""
        value = self._sitepath
        if type(value) is not list:
            value = self._sitepath = list(value)
        return value

    @sitepath.setter
    def sitepath(self, value: list[bytes]) -> None:
        self._sitepath = value

    def _parses_forms(self) -> bool:
        """As the request was told, else as its site says (``Site(parsePOSTFormSubmission=)``)."""
        explicit = self._rare_view().parse_forms
        if explicit is None:
            return getattr(self.site, "_parsePOSTFormSubmission", True) is not False
        return explicit

    def gotLength(self, length: int | None) -> None:
        """Make :attr:`content` ready for a body of ``length`` bytes (None: unknown).

        The site's ``getContentFile(length)``, when it has one, makes the file; otherwise
        as :meth:`treadle.web.http.Request.gotLength`. Only code driving a request by hand
        calls it.
        """
        make_file: Callable[[int | None], IO[bytes]] | None = getattr(
            self.site, "getContentFile", None
        )
        if make_file is None:
            super().gotLength(length)
        else:
            self.content = make_file(length)

    def process(self) -> None:
        """Find the resource for this request and render it (errors become a 500 page)."""
        site = self.site
        if site.proxyHeaders is not None and self._loading is None:
            self.use_forwarded(site.proxyHeaders)
        sharing = site.sessionSharing
        if sharing is not None and self._loading is None and self._load_sessions(sharing):
            return
        if self._prepath:
            self._prepath = ()
        path = self.path
        if path == b"/":
            self._postpath = _ROOT_SEGMENTS  # the site's root, the most asked-for path
        elif path == b"*":
            self._answer_asterisk()
            return
        else:
            self.postpath = _postpath(path)
        try:
            root = site.resource
            leaf = root.isLeaf
        except Exception:
            # A Deferred or awaitable root has no isLeaf: the walk waits for it. (Anything
            # else raised here is met again by the walk, and answered as its error.)
            leaf = False
        try:
            if leaf and type(site).getResourceFor is _GET_RESOURCE_FOR:
                # A leaf at the root (an ASGI or WSGI application, say): the walk would
                # stop where it starts, so it is not taken; what getResourceFor would
                # also do is done here (the site is this request's already).
                if self._sitepath:
                    self._sitepath = ()
                self.render(root)
            else:
                self.render(site.getResourceFor(self))
        except Exception:
            self.processingFailed(sys.exc_info()[1])

    def _load_sessions(self, sharing: SessionSharing) -> bool:
        """Read the sessions the cookies name, then ``process`` again; True when it was
        started (then this call of ``process`` is over). A store that answers without
        waiting (SQLite) has the request processed right here, within this call."""
        uids = sharing.cookies_to_load(self)
        if not uids:
            return False
        loading = self._loading = ensureDeferred(sharing.load(self, uids))
        loading.addCallbacks(self._sessions_loaded, self._sessions_failed)
        return True

    def _sessions_loaded(self, result: None) -> None:
        if not self._disconnected and not self.finished:
            self.process()

    def _sessions_failed(self, failure: Any) -> None:
        if not self._disconnected and not self.finished:
            self.processingFailed(failure)

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
            if self.method == b"HEAD" and b"GET" in e.allowedMethods:
                self._head_as_get(resrc)
            else:
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

    def _head_as_get(self, resrc: ResourceLike) -> None:
        """Answer HEAD for a resource that only knows GET: render GET, send only the head.

        RFC 9110 §9.3.2 wants HEAD wherever GET is answered. As in Twisted, what the render
        writes is dropped, and its length is sent when it returned the body.
        """
        _log.info("Using GET to fake a HEAD request for {resrc}", resrc=resrc)
        attributes = vars(self)
        attributes["write"] = _drop_body
        self.method = b"GET"
        try:
            body = resrc.render(self)
        finally:
            self.method = b"HEAD"
            attributes.pop("write", None)
        if body is NOT_DONE_YET:
            _log.info(
                "Tried to fake a HEAD request for {resrc}, but it got away from me.",
                resrc=resrc,
            )
            if not self.finished and not self._disconnected:
                # The length of what it would write is unknown: no Content-Length.
                self._start_response(b"", None)
                self._complete()
            return
        self._handle_result(body, resrc, first=True)

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
        if isinstance(exc, SessionStoreUnavailable):
            # Logged once per outage by the store's guard, not once per request.
            self._error_response(
                503, error_page(503, "Service Unavailable", str(exc)), retry_after=b"1"
            )
            return
        tb = exc.__traceback__ if isinstance(exc, BaseException) else None
        error_log.error(
            "Unhandled error rendering %r",
            self,
            exc_info=(type(exc), exc, tb) if isinstance(exc, BaseException) else None,
            # Observers get this very Failure as log_failure (frames kept), as in Twisted.
            extra={"log_failure": reason},
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
        self,
        code: int,
        body: bytes,
        content_type: bytes = b"text/html; charset=utf-8",
        retry_after: bytes | None = None,
    ) -> None:
        if self.startedWriting or self.finished or self._disconnected:
            return
        self.responseHeaders = Headers()
        self.cookies = []
        self.code_message = None
        self.setResponseCode(code)
        self.setHeader(b"content-type", content_type)
        if retry_after is not None:
            self.setHeader(b"retry-after", retry_after)
        self._write_whole(body)


def _drop_body(data: bytes | str) -> None:
    """``request.write`` while GET renders for a HEAD request: the body is not sent."""


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
        parsePOSTFormSubmission: False keeps POST form bodies out of ``request.args`` (the
            application reads ``request.content`` itself, e.g. to stream a large upload).
        sessionStore: Where sessions live when several processes share them: a store URL
            (``"redis://host:6379/0"``, ``"sqlite:/var/lib/site/sessions.sqlite3"``,
            ``"memory:"``; see :mod:`treadle.web._store_url`) or a store object (see
            :mod:`treadle.web._shared_sessions`); None keeps them in memory.
        sessionSecret: Signs what goes to the store (required with one; 32 bytes or more).
        sessionStoreDeadline: Seconds a store may take before a request gets a 503.
        maxSessions: The most sessions kept in memory; the least recently used go first
            (in memory they expire; with a store, only this process's copy is dropped).
        proxyHeaders: Believe ``Forwarded``/``X-Forwarded-*`` from these peers: addresses
            and networks, comma-separated (``"127.0.0.1,10.0.0.0/8"``, ``"*"``, ``"unix"``),
            or a :class:`~treadle.web._forwarded.ProxyTrust`. ``getClientAddress``,
            ``isSecure``, ``getHost``, ``prePathURL`` and the access log then describe the
            client rather than the proxy.

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
    _parsePOSTFormSubmission = True
    sessionFactory: Callable[[Site, bytes], Session] = Session
    sessionCookieName: bytes = b"TWISTED_SESSION"
    secureSessionCookieName: bytes = b"TWISTED_SECURE_SESSION"
    #: Set when sessions live in a store shared with other processes (``sessionStore=``).
    sessionSharing: SessionSharing | None = None
    #: The proxies whose ``Forwarded``/``X-Forwarded-*`` headers are believed (None: no one's).
    proxyHeaders: ProxyTrust | None = None

    def __init__(
        self,
        resource: ResourceLike,
        requestFactory: Any = None,
        *args: Any,
        parsePOSTFormSubmission: bool = True,
        sessionStore: SessionStore | str | None = None,
        sessionSecret: bytes | None = None,
        sessionStoreDeadline: float = 2.0,
        maxSessions: int = 100_000,
        proxyHeaders: ProxyTrust | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.resource = resource
        if requestFactory is not None:
            self.requestFactory = requestFactory
        if not parsePOSTFormSubmission:
            self._parsePOSTFormSubmission = False
        if proxyHeaders is not None:
            self.proxyHeaders = (
                ProxyTrust.parse(proxyHeaders) if isinstance(proxyHeaders, str) else proxyHeaders
            )
        if isinstance(sessionStore, str):
            sessionStore = open_store(sessionStore, runtime_dir=None, max_sessions=maxSessions)
        self.sessions: MutableMapping[bytes, Session] = BoundedSessions(
            maxSessions, expire_evicted=sessionStore is None
        )
        if sessionStore is not None:
            if sessionSecret is None:
                raise ValueError("a session store needs sessionSecret (32 bytes or more)")
            self.sessionSharing = SessionSharing(
                GuardedStore(sessionStore, sessionStoreDeadline), SessionCodec(sessionSecret)
            )

    def getResourceFor(self, request: Request) -> ResourceLike:
        """Walk the tree along ``request.postpath`` and return the resource to render.

        See :func:`traverse` for children given as Deferreds or awaitables.
        """
        request.site = self
        # A fresh request's sitepath is empty already: copying an empty prepath would only
        # replace it with another one (and make lists of paths no one may read).
        if isinstance(request, Request):
            if request._prepath or request._sitepath:
                request.sitepath = request.prepath[:]
        elif request.prepath or getattr(request, "sitepath", True):
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


#: The stock traversal: a site whose class keeps it has a leaf root rendered without a walk.
_GET_RESOURCE_FOR: Final = Site.getResourceFor


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
    try:
        # isLeaf is tested first so that the last resource reached is tested too. The paths
        # are read only past a leaf root: reading them makes them lists (see Request).
        if not resource.isLeaf:
            postpath = request.postpath
            prepath = request.prepath
            while postpath:
                segment = postpath.pop(0)
                prepath.append(segment)
                resource = resource.getChildWithDefault(segment, request)
                if resource.isLeaf:
                    break
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
