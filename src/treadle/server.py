"""The resource layer: ``Site`` finds the resource for a request and renders it.

:class:`Request` extends the wire-level :class:`treadle.http.Request` with traversal state
(``prepath``/``postpath``), rendering and error pages. Rendering accepts what a Twisted render
method returns — ``bytes`` or ``NOT_DONE_YET`` — and, beyond Twisted, ``str`` (UTF-8), an
awaitable (``async def render_GET``) or a Deferred resolving to those. An awaitable is run as
a task only when one is returned: a synchronous render creates no Task, Future or coroutine.
If the client leaves first, the task (or Deferred) is cancelled.

This module knows nothing of sockets: it sees requests in and responses out.
"""

from __future__ import annotations

import asyncio
import html
import inspect
import logging
import sys
import traceback
from typing import Any, Final

from treadle import http
from treadle.defer import Deferred
from treadle.http import MalformedRequestBody, unquote_path_segment
from treadle.http_headers import Headers
from treadle.resource import IResource, UnsupportedMethod, error_page, getChildForRequest
from treadle.urlpath import URLPath

__all__ = ["NOT_DONE_YET", "Request", "Site", "version"]

error_log = logging.getLogger("treadle.error")


class _NotDoneYet(int):
    """The marker a render method returns when it will ``write``/``finish`` later."""

    def __repr__(self) -> str:
        return "NOT_DONE_YET"


#: Return this from a render method to answer later with ``request.write``/``finish``.
#: (An int, 1, as in Twisted, for code that compares it by value.)
NOT_DONE_YET: Final = _NotDoneYet(1)

version: Final = b"treadle/0.1"

# Methods every server knows: an unsupported one of these is 405, anything else 501.
_KNOWN_METHODS: Final = frozenset(
    (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"CONNECT")
)


def _postpath(path: bytes) -> list[bytes]:
    segments = path[1:].split(b"/")
    if b"%" in path:
        return [unquote_path_segment(s) for s in segments]
    return segments


class Request(http.Request):
    """A request being answered by a resource tree (Twisted's ``server.Request``).

    Attributes:
        site: The :class:`Site` that received the request.
        prepath: Path segments already consumed by traversal.
        postpath: Path segments not yet consumed (a leaf resource sees the rest here).
        sitepath: The segments before the site's root (empty unless the site is nested).
    """

    __slots__ = ("_pending", "postpath", "prepath", "site", "sitepath")

    def __init__(self, channel: http.HTTPChannel, queued: object = None) -> None:
        super().__init__(channel, queued)
        self.site: Site = channel.factory  # type: ignore[assignment]
        self.prepath: list[bytes] = []
        self.postpath: list[bytes] = []
        self.sitepath: list[bytes] = []
        self._pending: Any = None

    def process(self) -> None:
        """Find the resource for this request and render it (errors become a 500 page)."""
        self.prepath = []
        self.postpath = _postpath(self.path)
        try:
            self.render(self.site.getResourceFor(self))
        except Exception:
            self.processingFailed(sys.exc_info()[1])

    def render(self, resrc: IResource) -> None:
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
                self._write_whole(body)
            else:
                self.write(body)
                self.finish()
            return
        self._handle_result(body, first=True)

    def _handle_result(self, body: Any, *, first: bool) -> None:
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
            body.addCallbacks(self._async_result, self._async_failure)
        elif first and inspect.isawaitable(body):
            task = asyncio.ensure_future(body)
            self._pending = task
            task.add_done_callback(self._task_done)
        elif body is None and not first:
            if not self.finished:
                self.finish()
        else:
            self._render_error(
                "Request did not return bytes",
                f"Resource {self.site and type(body).__name__!s} returned "
                f"{type(body).__name__}, not bytes, str or NOT_DONE_YET.",
            )

    # -- asynchronous results ---------------------------------------------------------------

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._pending = None
        if self._disconnected or task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.processingFailed(exc)
        elif not self.finished:
            self._handle_result(task.result(), first=False)

    def _async_result(self, result: Any) -> None:
        self._pending = None
        if not self._disconnected and not self.finished:
            try:
                self._handle_result(result, first=False)
            except Exception as e:
                self.processingFailed(e)

    def _async_failure(self, failure: Any) -> None:
        self._pending = None
        if not self._disconnected and not self.finished:
            self.processingFailed(failure)

    def connectionLost(self, reason: Exception) -> None:
        """The client left: cancel a pending awaitable or Deferred, then notify."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
        super().connectionLost(reason)

    # -- errors -----------------------------------------------------------------------------

    def _unsupported_method(self, resrc: IResource, allowed: list[bytes]) -> None:
        method = self.method
        if method in _KNOWN_METHODS:
            self.setResponseCode(http.NOT_ALLOWED)
            self.setHeader(b"allow", b", ".join(allowed))
            body = error_page(
                405,
                "Method Not Allowed",
                f"This resource does not answer {method.decode('latin-1')}; "
                f"it allows {', '.join(m.decode() for m in allowed)}.",
            )
        else:
            self.setResponseCode(http.NOT_IMPLEMENTED)
            body = error_page(
                501,
                "Not Implemented",
                f"{method.decode('latin-1')} is not implemented by this server.",
            )
        self.setHeader(b"content-type", b"text/html; charset=utf-8")
        self._write_whole(body)

    def _render_error(self, brief: str, detail: str) -> None:
        error_log.error("%s: %s (%r)", brief, detail, self)
        if self.site.displayTracebacks:
            self._error_response(500, error_page(500, brief, detail))
        else:
            self._error_response(500, _processing_failed_page())

    def processingFailed(self, reason: Any) -> None:
        """Answer 500 for an exception (or Failure) raised while rendering, and log it.

        The traceback goes to the ``treadle.error`` log, and to the client only when
        ``site.displayTracebacks`` is true. If the response had already started, the
        connection is dropped (a half-sent body cannot be turned into an error page).
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
            self.channel.abort()
            return
        if self.site.displayTracebacks:
            text = "".join(traceback.format_exception(type(exc), exc, tb))
            body = (
                "<!DOCTYPE html>\n<html><head><title>Processing Failed</title></head><body>"
                f"<b>Processing Failed</b><pre>{html.escape(text)}</pre></body></html>\n"
            ).encode()
        else:
            body = _processing_failed_page()
        self._error_response(500, body)

    def _error_response(self, code: int, body: bytes) -> None:
        if self.startedWriting or self.finished or self._disconnected:
            return
        self.responseHeaders = Headers()
        self.cookies = []
        self.code_message = None
        self.setResponseCode(code)
        self.setHeader(b"content-type", b"text/html; charset=utf-8")
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
        """Return :meth:`prePathURL` as a :class:`~treadle.urlpath.URLPath`."""
        return URLPath.fromBytes(self.prePathURL())

    def rememberRootURL(self) -> None:
        """Remember the current prepath URL as the application root (``getRootURL``)."""
        self.__dict__["appRootURL"] = self.prePathURL()

    def getRootURL(self) -> bytes | None:
        """Return the URL remembered by :meth:`rememberRootURL`, or None."""
        return self.__dict__.get("appRootURL")


def _processing_failed_page() -> bytes:
    return (
        b"<!DOCTYPE html>\n<html><head><title>Processing Failed</title></head>"
        b"<body><b>Processing Failed</b></body></html>\n"
    )


class Site(http.HTTPFactory):
    """Serves a resource tree: the protocol factory given to ``reactor.listenTCP``.

    Args:
        resource: The root of the resource tree.
        requestFactory: Request class to use (default :class:`Request`).
        logPath, timeout, logFormatter, reactor: As for :class:`~treadle.http.HTTPFactory`.

    Attributes:
        displayTracebacks: Send tracebacks to clients in 500 pages (default False).
    """

    requestFactory = Request
    displayTracebacks = False

    def __init__(
        self, resource: IResource, requestFactory: Any = None, *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.resource = resource
        if requestFactory is not None:
            self.requestFactory = requestFactory

    def getResourceFor(self, request: Request) -> IResource:
        """Walk the tree along ``request.postpath`` and return the resource to render."""
        request.site = self
        request.sitepath = request.prepath[:]
        return getChildForRequest(self.resource, request)
